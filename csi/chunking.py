"""The chunking primitives and policy: how a recording's features are cut into the model's input chunks.

Chunks of ``chunk_frames`` stored frames start every ``hop_frames``; the last one is aligned
to the end of the recording (every frame covered, no padding), a recording shorter than one
chunk is one chunk padded with ``pad_value``; each chunk is then mean-pooled over
``mean_size`` frames (CoverHunter's ``mean_size``), as in training.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from csi.features.cqt import mean_pool_frames

def chunk_starts(feat_len: int, chunk_frames: int, hop_frames: int) -> list[int]:
    """Start frames of chunks covering a recording of ``feat_len`` frames.

    Chunks start every ``hop_frames``; the last one is aligned to the end of the recording
    so that every frame is covered without padding. A recording no longer than one chunk
    gives ``[0]`` (that chunk is padded).
    """
    if chunk_frames < 1 or hop_frames < 1:
        raise ValueError(f"chunk_frames and hop_frames must be positive, got {chunk_frames}, {hop_frames}")
    last = int(feat_len) - chunk_frames
    if last <= 0:
        return [0]
    starts = list(range(0, last + 1, hop_frames))
    if starts[-1] != last:
        starts.append(last)
    return starts


def read_chunk(feat: np.ndarray, start: int, chunk_frames: int, pad_value: float = -100.0) -> torch.Tensor:
    """Frames ``[start, start + chunk_frames)`` of ``feat`` as a float32 tensor, padded at the end
    with ``pad_value``; only those frames of a memory-mapped array are read. (float16 → float32
    is done by torch, an order of magnitude faster than NumPy's conversion.)"""
    piece = torch.from_numpy(np.array(feat[start:start + chunk_frames]))
    if piece.shape[0] == chunk_frames:
        return piece.float()
    out = torch.full((chunk_frames, feat.shape[1]), pad_value, dtype=torch.float32)
    out[:piece.shape[0]] = piece
    return out


@dataclass(frozen=True)
class ChunkPolicy:
    chunk_frames: int           # stored feature frames a chunk (model frames × mean_size)
    hop_frames: int             # stored frames between chunk starts
    mean_size: int = 1
    pad_value: float = -100.0

    def __post_init__(self) -> None:
        if self.mean_size < 1 or self.chunk_frames < self.mean_size or self.hop_frames < 1:
            raise ValueError(f"chunking: need mean_size >= 1, a chunk of at least mean_size frames and a hop "
                             f"of at least one frame (chunk_frames {self.chunk_frames}, hop_frames "
                             f"{self.hop_frames}, mean_size {self.mean_size})")

    def to_dict(self) -> dict:
        return asdict(self)

    def starts(self, n_frames: int) -> list[int]:
        return chunk_starts(n_frames, self.chunk_frames, self.hop_frames)

    def chunks(self, feat: np.ndarray) -> torch.Tensor:
        """(chunks, chunk_frames // mean_size, bins) float32 chunks of a (frames, bins) feature."""
        return torch.stack([mean_pool_frames(read_chunk(feat, s, self.chunk_frames, self.pad_value), self.mean_size)
                            for s in self.starts(len(feat))])
