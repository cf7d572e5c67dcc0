"""Aligned chunks for fine training (CoverHunter's coarse-to-fine, arXiv 2306.09025 §3.3).

In an M-per-class batch the ``m`` items of a work are consecutive; the first is the group's
anchor. The anchor's chunk starts at a random frame t (drawn from its own seed); every other
version of the group starts at the position the stage-4 alignment maps t to
(csi.align.AlignmentTable, in source time, tempo copies scaled), so the positives of a batch
hold the same passage of the work. A pair without a confident alignment falls back to a
random start (counted). Tempo stretching and SpecAugment still apply to every item.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import torch

from csi.io import tempo_copy
from csi.io.alignment import AlignmentTable
from csi.data.augment import stretched_chunk_at
from csi.data.dataset import ChunkDataset, read_chunk
from csi.data.sampler import MPerClassSampler
from csi.features.cqt import mean_pool_frames


class AnchoredSampler(MPerClassSampler):
    """``MPerClassSampler`` yielding ``(epoch, index, anchor)``: the anchor is the first index
    of the item's group of ``m_per_class`` (same work, consecutive)."""

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        indices = self.epoch_indices()[self.start_batch * self.batch_size:]
        m = self.m_per_class
        anchors = np.repeat(indices[::m], m)[:len(indices)]
        return iter([(self.epoch, int(i), int(a)) for i, a in zip(indices, anchors)])


class AlignedChunkDataset(ChunkDataset):
    """``ChunkDataset`` whose items ``(epoch, index, anchor)`` start at aligned positions."""

    def __init__(self, records: Sequence[dict[str, Any]], chunk_frames: int, alignment: AlignmentTable,
                 frames_per_s: float, min_confidence: float = 0.3, **kwargs: Any):
        super().__init__(records, chunk_frames, **kwargs)
        self.alignment = alignment
        self.frames_per_s = float(frames_per_s)
        self.min_confidence = float(min_confidence)
        self.aligned = 0          # per process: items placed by the alignment
        self.fallback = 0         # items of a pair without a confident alignment

    def anchor_start(self, anchor: int, epoch: int) -> int:
        """The anchor's chunk start (its own random stream, the same in every worker)."""
        n_frames = int(self.records[anchor % len(self.records)]["feat_len"])
        rng = np.random.default_rng([self.seed, epoch, int(anchor), 1])
        return int(rng.integers(0, max(1, n_frames - self.chunk_frames)))

    def aligned_start(self, position: int, anchor: int, epoch: int) -> int | None:
        """Start frame of ``position`` aligned to the anchor's chunk, or None without alignment."""
        a, b = self.records[anchor % len(self.records)], self.records[position]
        t_a = self.anchor_start(anchor, epoch) / self.frames_per_s * tempo_copy.factor(a)      # source seconds
        t_b = self.alignment.map_time(a["utt"], b["utt"], t_a, self.min_confidence)
        if t_b is None:
            return None
        start = int(round(t_b / tempo_copy.factor(b) * self.frames_per_s))
        return min(max(0, start), max(0, int(b["feat_len"]) - self.chunk_frames))

    def __getitem__(self, key):
        if not (isinstance(key, tuple) and len(key) == 3):
            return super().__getitem__(key)
        epoch, index, anchor = (int(k) for k in key)
        position = index % len(self.records)
        start = self.anchor_start(anchor, epoch) if index == anchor else self.aligned_start(position, anchor, epoch)
        feat = self._open(position)
        if start is None or feat is None:
            self.fallback += start is None
            return super().__getitem__((epoch, index))
        self.aligned += index != anchor
        rng = self.rng(index, epoch)
        if self.tempo_stretch is not None:
            chunk = stretched_chunk_at(feat, start, self.chunk_frames, float(rng.uniform(*self.tempo_stretch)),
                                       self.pad_value)
        else:
            chunk = read_chunk(feat, start, self.chunk_frames, self.pad_value)
        chunk = mean_pool_frames(chunk, self.mean_size)
        if self.spec_augment is not None:
            chunk = self.spec_augment(chunk, torch.Generator().manual_seed(int(rng.integers(2**62))))
        rec = self.records[position]
        return rec.get("utt", str(position)), chunk.contiguous(), self.labels[position], True
