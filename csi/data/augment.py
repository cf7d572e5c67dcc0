"""Online feature-domain augmentation used by the training datasets.

Online tempo augmentation: instead of storing one CQT per tempo factor (5× the storage
with ``aug_speed_mode: [0.8, 0.9, 1.0, 1.1, 1.2]``), a chunk is read from the stored CQT
and resampled along time by a random factor per sample. A CQT frame hop is 40 ms, so
linear interpolation between frames is the feature-domain counterpart of a tempo change
that keeps pitch (the bins, i.e. pitch, are untouched).
"""
from __future__ import annotations

import numpy as np
import torch


def stretch_time(feat: torch.Tensor, factor: float, length: int | None = None) -> torch.Tensor:
    """Resample ``feat`` (frames, bins) along time as if played ``factor`` times faster.

    The result has ``round(frames / factor)`` frames, or ``length`` if given.
    """
    if length is None:
        length = max(1, int(round(feat.shape[0] / factor)))
    x = feat.T.unsqueeze(0).float()  # (1, bins, frames)
    y = torch.nn.functional.interpolate(x, size=length, mode="linear", align_corners=False)
    return y[0].T.to(feat.dtype)


def random_stretched_chunk(feat: np.ndarray, chunk_frames: int, factors: tuple[float, float],
                           rng: np.random.Generator, pad_value: float = -100.0) -> tuple[torch.Tensor, float]:
    """A chunk of ``chunk_frames`` frames at a random tempo factor drawn uniformly in ``factors``.

    Reads ``round(chunk_frames * factor)`` stored frames from a random start (only those
    are touched, so memory-mapped features stay cheap), pads short recordings with
    ``pad_value`` as the reference does, and resamples them to ``chunk_frames``.
    """
    factor = float(rng.uniform(*factors))
    span = max(1, int(round(chunk_frames * factor)))
    start = int(rng.integers(0, max(1, feat.shape[0] - span + 1)))
    return stretched_chunk_at(feat, start, chunk_frames, factor, pad_value), factor


def stretched_chunk_at(feat: np.ndarray, start: int, chunk_frames: int, factor: float,
                       pad_value: float = -100.0) -> torch.Tensor:
    """``round(chunk_frames * factor)`` stored frames from ``start`` (padded past the end),
    resampled to ``chunk_frames``: the chunk at ``start`` played ``factor`` times faster."""
    span = max(1, int(round(chunk_frames * factor)))
    piece = torch.from_numpy(np.asarray(feat[start:start + span], dtype=np.float32))
    if piece.shape[0] < span:
        piece = torch.nn.functional.pad(piece, (0, 0, 0, span - piece.shape[0]), value=pad_value)
    return stretch_time(piece, factor, length=chunk_frames)
