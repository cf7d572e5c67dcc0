"""The dominant time map of chunk matches: ``t_b = scale * t_a + shift``.

Each match (t_a, t_b) votes for the shift ``t_b - scale * t_a`` at every candidate scale; the
(scale, shift) with the most votes within ``tol_s`` of each other wins (a mode with a
tolerance window), its shift refined as the median of the agreeing votes, and its confidence
is the share of agreeing votes. A zero shift is as good as any other (CoverHunter's script
never allows it). Among equally supported scales the one whose agreeing votes spread least
(mean absolute deviation from their median) is kept, then the one nearest 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_SCALES = (1.0,)


@dataclass(frozen=True)
class TimeMap:
    scale: float
    shift_s: float
    confidence: float      # agreeing votes / votes
    votes: int

    def __call__(self, t_a: float) -> float:
        return self.scale * t_a + self.shift_s


def tempo_scales(max_ratio: float, steps_per_octave: int = 24) -> tuple[float, ...]:
    """1 and geometric steps up to ``max_ratio`` and down to ``1 / max_ratio``."""
    if max_ratio < 1.0:
        raise ValueError(f"max tempo ratio must be >= 1, got {max_ratio}")
    n = int(np.floor(np.log2(max_ratio) * steps_per_octave + 1e-9))
    return tuple(sorted({1.0, *(float(2.0 ** (k / steps_per_octave)) for k in range(-n, n + 1))}))


def dominant_map(t_a: np.ndarray, t_b: np.ndarray, tol_s: float, scales=DEFAULT_SCALES) -> TimeMap:
    """The (scale, shift) most of the matches ``(t_a[k], t_b[k])`` agree on (module docstring)."""
    t_a, t_b = np.asarray(t_a, np.float64), np.asarray(t_b, np.float64)
    if t_a.shape != t_b.shape or t_a.ndim != 1 or not len(t_a):
        raise ValueError(f"need two equal-length 1-d arrays of matched times, got {t_a.shape} and {t_b.shape}")
    scales = np.asarray(scales, np.float64)
    offsets = t_b[None, :] - scales[:, None] * t_a[None, :]                       # (scales, votes)
    agree = np.abs(offsets[:, :, None] - offsets[:, None, :]) <= tol_s             # (scales, votes, votes)
    support = agree.sum(axis=2)                                                    # (scales, votes)
    best_vote = support.argmax(axis=1)                                             # per scale
    best_per_scale = support[np.arange(len(scales)), best_vote]
    top = best_per_scale.max()
    spread = []
    for s in np.flatnonzero(best_per_scale == top):
        kept = offsets[s][agree[s, best_vote[s]]]
        spread.append((float(np.mean(np.abs(kept - np.median(kept)))), abs(float(np.log(scales[s]))), int(s)))
    _, _, s = min(spread)
    kept = offsets[s][agree[s, best_vote[s]]]
    return TimeMap(float(scales[s]), float(np.median(kept)), float(top) / len(t_a), len(t_a))
