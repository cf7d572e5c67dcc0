"""Chunk dataset over stored CQT features (CoverHunter's training ``AudioFeatDataset``, mode "random").

Each item is a ``chunk_frames`` chunk of one recording from ``DATA_DIR/full.txt``: a random
start in ``[0, frames - chunk_frames)`` (0 if the recording is shorter, which is then padded
at the end with ``pad_value`` = -100 dB), optionally stretched in time online
(``tempo_stretch``, train only), averaged over groups of ``mean_size`` frames
(``mean_size: 3`` turns 1125 frames into 375), and optionally SpecAugment-ed per item.

Reproducibility: the random numbers of item ``index`` come from
``np.random.default_rng([seed, epoch, index])`` (``set_epoch`` before each epoch; DataLoader
workers are forked with the dataset at each epoch unless ``persistent_workers``), so batches
do not depend on the number of workers. Evaluation datasets (``train=False``) use epoch 0
whatever ``set_epoch`` says, so their chunks are the same every epoch. An index
``>= len(dataset)`` stands for item ``index % len(dataset)`` with its own random draw (see
``MPerClassSampler(distinct_repeats=True)``).

Broken features: a missing or unreadable ``.npy`` does not stop training. The item is
replaced by another recording of the same song when there is one (else by the next readable
recording), a warning naming the file is logged once per worker, and the item's fourth
element ``ok`` is False. ``collate`` sums those flags into ``n_replaced`` so the trainer can
count replaced samples per epoch; ``self.failures`` only counts the ones loaded in the
current process (with ``num_workers > 0`` they happen in the workers).

Evaluation helpers: ``chunk_starts`` (chunk start frames covering a recording) and
``load_chunk`` (one padded, mean-pooled chunk).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from csi.data.augment import random_stretched_chunk
from csi.data.specaug import SpecAugment
from csi.chunking import chunk_starts, read_chunk  # noqa: F401  (re-exported: the dataset API)
from csi.features.cqt import mean_pool_frames
from csi.features.store import load_feature

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("feat", "feat_len", "song_id")
MAX_REPLACEMENT_TRIES = 64

Item = tuple[str, torch.Tensor, int, bool]


class FeatureReadError(RuntimeError):
    """No readable feature could be found to replace a broken one."""



def load_chunk(path: str | os.PathLike, start: int, chunk_frames: int, mean_size: int = 1,
               pad_value: float = -100.0) -> torch.Tensor:
    """The chunk of ``chunk_frames`` frames at ``start`` of a stored feature, padded and
    mean-pooled: float32 tensor ``(chunk_frames // mean_size, bins)``."""
    chunk = read_chunk(load_feature(path), int(start), int(chunk_frames), pad_value)
    return mean_pool_frames(chunk, mean_size).contiguous()


def _check_records(records: Sequence[dict[str, Any]]) -> None:
    for i, rec in enumerate(records):
        name = rec.get("utt", f"#{i}")
        missing = [k for k in REQUIRED_KEYS if k not in rec]
        if missing:
            raise ValueError(f"record {name!r}: missing key(s) {', '.join(missing)}")
        for key in ("feat_len", "song_id"):
            value = rec[key]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"record {name!r}: {key} must be a non-negative integer, got {value!r}")


class ChunkDataset(Dataset):
    """Random chunks of stored CQTs: items ``(utt, feat (chunk_frames // mean_size, bins), song_id, ok)``."""

    def __init__(self, records: Sequence[dict[str, Any]], chunk_frames: int, mean_size: int = 1,
                 train: bool = True, spec_augment: SpecAugment | None = None,
                 tempo_stretch: tuple[float, float] | None = None, pad_value: float = -100.0,
                 seed: int = 0, n_bins: int | None = None):
        _check_records(records)
        if not records:
            raise ValueError("ChunkDataset needs at least one record")
        if chunk_frames < mean_size or mean_size < 1:
            raise ValueError(f"need 1 <= mean_size <= chunk_frames, got {mean_size}, {chunk_frames}")
        if tempo_stretch is not None and not 0 < tempo_stretch[0] <= tempo_stretch[1]:
            raise ValueError(f"tempo_stretch must be (low, high) with 0 < low <= high, got {tempo_stretch}")
        self.records = list(records)
        self.chunk_frames = int(chunk_frames)
        self.mean_size = int(mean_size)
        self.train = train
        self.spec_augment = spec_augment if train and spec_augment is not None and spec_augment.enabled else None
        self.tempo_stretch = tuple(tempo_stretch) if train and tempo_stretch is not None else None
        self.pad_value = float(pad_value)
        self.seed = int(seed)
        self.n_bins = n_bins
        self.epoch = 0
        self.failures = 0
        self.labels = [int(r["song_id"]) for r in self.records]
        self._same_song: dict[int, list[int]] = {}
        for i, label in enumerate(self.labels):
            self._same_song.setdefault(label, []).append(i)
        self._broken: set[int] = set()    # per process: indices known to be unreadable

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def frames_out(self) -> int:
        return self.chunk_frames // self.mean_size

    def rng(self, index: int, epoch: int | None = None) -> np.random.Generator:
        """The random generator of item ``index`` in ``epoch`` (default: the current epoch)."""
        epoch = self.epoch if epoch is None else epoch
        return np.random.default_rng([self.seed, epoch if self.train else 0, int(index)])

    def __getitem__(self, key: int | tuple[int, int]) -> Item:
        """Item ``key``: an index, or ``(epoch, index)`` as ``MPerClassSampler(with_epoch=True)``
        yields, so persistent DataLoader workers need no ``set_epoch``."""
        epoch, index = (int(key[0]), int(key[1])) if isinstance(key, tuple) else (None, int(key))
        rng = self.rng(index, epoch)
        position = index % len(self.records)
        ok = True
        for candidate in self._candidates(position):
            feat = self._open(candidate)
            if feat is None:
                ok = False
                continue
            chunk = self._chunk(feat, rng)
            rec = self.records[candidate]
            return rec.get("utt", str(candidate)), chunk, self.labels[candidate], ok
        raise FeatureReadError(f"no readable feature found to replace {self.records[position]['feat']}")

    def _candidates(self, position: int) -> Iterator[int]:
        """The item itself, then other recordings of its song, then the following recordings."""
        yield position
        song = self._same_song[self.labels[position]]
        at = song.index(position)
        yield from (song[(at + k) % len(song)] for k in range(1, len(song)))
        n = len(self.records)
        yield from ((position + k) % n for k in range(1, min(n, MAX_REPLACEMENT_TRIES)))

    def _open(self, position: int) -> np.ndarray | None:
        """The memory-mapped feature of a record, or None (logged once) if it is unusable."""
        if position in self._broken:
            return None
        path = self.records[position]["feat"]
        try:
            feat = load_feature(path)
            if feat.ndim != 2 or feat.shape[0] < 1 or (self.n_bins is not None and feat.shape[1] != self.n_bins):
                raise ValueError(f"unexpected feature shape {feat.shape}")
            return feat
        except (OSError, ValueError, EOFError) as e:
            self._broken.add(position)
            self.failures += 1
            logger.warning("unreadable feature %s (%s: %s); using another recording instead",
                           path, type(e).__name__, e)
            return None

    def _chunk(self, feat: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        if self.tempo_stretch is not None:
            chunk, _ = random_stretched_chunk(feat, self.chunk_frames, self.tempo_stretch, rng, self.pad_value)
        else:
            start = int(rng.integers(0, max(1, feat.shape[0] - self.chunk_frames)))
            chunk = read_chunk(feat, start, self.chunk_frames, self.pad_value)
        chunk = mean_pool_frames(chunk, self.mean_size)
        if self.spec_augment is not None:
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            chunk = self.spec_augment(chunk, generator)
        return chunk.contiguous()


def collate(batch: Sequence[Item]) -> tuple[list[str], torch.Tensor, torch.Tensor, int]:
    """Stack items into ``(utts, feats (B, T, F), labels LongTensor (B,), n_replaced)``;
    ``n_replaced`` counts items that stand in for an unreadable feature."""
    utts = [item[0] for item in batch]
    feats = torch.stack([item[1] for item in batch])
    labels = torch.tensor([item[2] for item in batch], dtype=torch.long)
    n_replaced = sum(1 for item in batch if not item[3])
    return utts, feats, labels, n_replaced
