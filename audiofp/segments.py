"""Training segments for fingerprinting: where segments are cut, which files train or
validate, and the two datasets of (anchor, positive) pairs — online (:class:`PairDataset`,
a fresh segment and degradation per call) and static (:class:`StaticPairDataset`, the
shards written by ``tools.generate_training_dataset``)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from audiofp.augment import SEGMENT_S, SR, Augmenter

__all__ = ["segment_starts", "split_files", "PairDataset", "StaticPairDataset", "SHARD_PATTERN"]

SHARD_PATTERN = "pairs_{:05d}.npz"


def segment_starts(n_samples: int, n_segments: int, sr: int, rng: np.random.Generator,
                   seg_s: float = SEGMENT_S) -> list[int]:
    """Sorted start samples of up to ``n_segments`` whole, non-overlapping segments of
    ``seg_s`` placed at random in a recording of ``n_samples``: as many as fit
    (``n_samples // segment``) when fewer. A recording shorter than one segment gives []."""
    seg = int(round(seg_s * sr))
    count = min(int(n_segments), int(n_samples) // seg) if seg > 0 else 0
    if count <= 0:
        return []
    slack = int(n_samples) - count * seg                 # samples left between the segments
    gaps = np.sort(rng.integers(0, slack + 1, size=count))
    return [int(g) + k * seg for k, g in enumerate(gaps)]


def split_files(files: Sequence, train_fraction: float, seed: int = 0) -> tuple[list, list]:
    """(train, val): the files shuffled by ``seed`` (from their sorted order, so the split
    does not depend on the order given) and cut at ``round(train_fraction · n)``, with at
    least one file in each when there are two or more. Each part is returned sorted."""
    if not 0.0 <= train_fraction <= 1.0:
        raise ValueError(f"train_fraction {train_fraction}: expected a value in [0, 1]")
    ordered = sorted(files, key=str)
    if len(ordered) < 2:
        return list(ordered), []
    n_train = min(max(int(round(train_fraction * len(ordered))), 1), len(ordered) - 1)
    order = np.random.default_rng(seed).permutation(len(ordered))
    train = sorted((ordered[i] for i in order[:n_train]), key=str)
    val = sorted((ordered[i] for i in order[n_train:]), key=str)
    return train, val


class PairDataset(Dataset):
    """Online pairs: item ``i`` is a random whole segment of recording ``i // segments_per_file``
    and its degraded copy from ``augmenter``, as two float32 tensors of one segment each.

    ``recordings`` are arrays (mono at ``sr``) or audio paths (loaded at ``sr`` once, here).
    Recordings shorter than one segment are left out and listed in ``skipped``. The draw
    uses ``numpy.random.default_rng((seed, epoch, i))``: call ``set_epoch(e)`` before each
    epoch for new pairs that are the same on every run (with DataLoader workers, keep
    ``persistent_workers`` off so that the workers see the new epoch)."""

    def __init__(self, recordings: Sequence, augmenter: Augmenter, segments_per_file: int = 5, seed: int = 0,
                 sr: int = SR, seg_s: float = SEGMENT_S):
        from csi.io.audio import load

        if segments_per_file < 1:
            raise ValueError(f"segments_per_file {segments_per_file}: expected >= 1")
        self.augmenter = augmenter
        self.segments_per_file = int(segments_per_file)
        self.seed = int(seed)
        self.epoch = 0
        self.sr, self.seg_s = sr, seg_s
        self.segment = int(round(seg_s * sr))
        self.recordings: list[np.ndarray] = []
        self.names: list[str] = []
        self.skipped: list[str] = []
        for k, rec in enumerate(recordings):
            if isinstance(rec, (str, os.PathLike)):
                name, audio = str(rec), load(rec, sr)[0]
            else:
                name, audio = f"#{k}", np.asarray(rec, dtype=np.float32)
            if audio.size < self.segment:
                self.skipped.append(name)
                continue
            self.recordings.append(audio)
            self.names.append(name)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.recordings) * self.segments_per_file

    @property
    def groups(self) -> np.ndarray:
        """The recording of each item (for batches of several moments of one recording)."""
        return np.arange(len(self)) // self.segments_per_file

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} pairs")
        rng = np.random.default_rng((self.seed, self.epoch, int(index)))
        file, k = divmod(int(index), self.segments_per_file)
        audio = self.recordings[file]
        # the file's segments of this epoch do not overlap (no false negatives within a batch)
        starts = segment_starts(audio.size, self.segments_per_file, self.sr,
                                np.random.default_rng((self.seed, self.epoch, file, 7)), self.seg_s)
        start = starts[k % len(starts)]
        anchor, positive = self.augmenter(audio, start, rng)
        return torch.from_numpy(anchor), torch.from_numpy(positive)


class StaticPairDataset(Dataset):
    """The pairs of one split directory written by ``tools.generate_training_dataset``
    (``OUT/train_set`` or ``OUT/val_set``): every ``pairs_*.npz`` shard, read into memory
    (float16, 32 kB a pair), served as float32 tensors (anchor, positive). ``file_index`` and
    ``start_s`` give each pair's recording (a line of ``files.txt``, in ``files``) and start."""

    def __init__(self, split_dir: str | os.PathLike):
        split_dir = Path(split_dir)
        shards = sorted(split_dir.glob("pairs_*.npz"))
        if not shards:
            raise ValueError(f"{split_dir}: no pairs_*.npz shard (written by tools.generate_training_dataset)")
        anchors, positives, files, starts = [], [], [], []
        for shard in shards:
            with np.load(shard) as z:
                anchors.append(z["anchor"])
                positives.append(z["positive"])
                files.append(z["file_index"])
                starts.append(z["start_s"])
        self.anchor = np.concatenate(anchors)
        self.positive = np.concatenate(positives)
        self.file_index = np.concatenate(files)
        self.start_s = np.concatenate(starts)
        listing = split_dir / "files.txt"
        self.files = listing.read_text(encoding="utf-8").splitlines() if listing.exists() else []
        info = split_dir / "info.json"
        self.info = json.loads(info.read_text(encoding="utf-8")) if info.exists() else {}

    def __len__(self) -> int:
        return int(self.anchor.shape[0])

    @property
    def groups(self) -> np.ndarray:
        """The recording of each pair (``file_index``)."""
        return self.file_index

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.from_numpy(self.anchor[index].astype(np.float32)),
                torch.from_numpy(self.positive[index].astype(np.float32)))
