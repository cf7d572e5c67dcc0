"""``2dftm``: the 2D Fourier transform magnitude of chroma patches (Bertin-Mahieux & Ellis,
"Large-scale cover song recognition using the 2D Fourier transform magnitude", ISMIR 2012).

The paper's pipeline, and what is done here:

1. beat-synchronous chroma (Echo Nest, each vector scaled to a maximum of 1). No beat
   tracker here: the octave-folded power chroma (``csi.baselines.chroma``) is averaged
   over fixed blocks of ``frames_per_step`` = 12 CQT frames (0.48 s at 25 frames/s, about
   one beat at 125 bpm), and each step is scaled to a maximum of 1 (steps quieter than
   1/1000 of the loudest are scaled by that floor). Unlike beat-synchronous chroma this is
   not tempo-invariant: a cover at another tempo gets a stretched patch;
2. values raised to the power 1.96 (their power-law expansion, which enhances contrast);
3. every patch of 75 steps x 12 (hop ``patch_hop`` = 1 step): ``|FFT2|`` of the patch —
   invariant to circular shifts of the pitch axis (key) and of the time axis (phase only);
4. the element-wise median over the patches (900 values per track; the paper then projects
   on 50 principal components fitted on a training set — not done here: it needs training
   data, and the full 900 dimensions lose nothing);
5. the vector is L2-normalised (not in the paper: it makes a short, padded track comparable
   to a long one; it raised MAP on the demo corpora) and tracks are compared by Euclidean
   distance.

A track shorter than one patch is zero-padded to 75 steps (silence after the end).
"""
from __future__ import annotations

import numpy as np

from csi.baselines.chroma import fold_chroma

FRAMES_PER_STEP = 12
PATCH_STEPS = 75
POWER = 1.96
STEP_FLOOR = 1e-3


def beat_rate_chroma(feat_db: np.ndarray, fmin: float = 32.0, frames_per_step: int = FRAMES_PER_STEP) -> np.ndarray:
    """(steps, 12) chroma averaged over blocks of ``frames_per_step`` frames (an incomplete
    last block is averaged too), each step scaled to a maximum of 1."""
    chroma = fold_chroma(feat_db, fmin, "power")
    n = len(chroma)
    if n == 0:
        return np.zeros((0, 12), dtype=np.float32)
    starts = np.arange(0, n, frames_per_step)
    steps = np.add.reduceat(chroma, starts, axis=0) / np.diff(np.append(starts, n))[:, None]
    peak = steps.max(axis=1, keepdims=True)
    top = float(peak.max())
    if top <= 0.0:
        return np.zeros_like(steps, dtype=np.float32)
    return (steps / np.maximum(peak, STEP_FLOOR * top)).astype(np.float32)


def ftm2d_patches(steps: np.ndarray, patch: int = PATCH_STEPS, hop: int = 1, power: float = POWER) -> np.ndarray:
    """(patches, patch, 12) magnitudes ``|FFT2|`` of every ``patch``-step window of
    ``steps ** power`` (zero-padded to one patch when shorter)."""
    x = np.power(np.asarray(steps, dtype=np.float64), power)
    if len(x) < patch:
        x = np.concatenate([x, np.zeros((patch - len(x), x.shape[1]))])
    windows = np.lib.stride_tricks.sliding_window_view(x, patch, axis=0)[::hop]   # (n, 12, patch)
    return np.abs(np.fft.fft2(windows.transpose(0, 2, 1), axes=(1, 2)))


def ftm2d_vector(feat_db: np.ndarray, fmin: float = 32.0, frames_per_step: int = FRAMES_PER_STEP,
                 patch: int = PATCH_STEPS, hop: int = 1, power: float = POWER) -> np.ndarray:
    """(patch * 12,) unit-norm median 2DFTM of a (frames, 12*octaves) dB CQT."""
    steps = beat_rate_chroma(feat_db, fmin, frames_per_step)
    median = np.median(ftm2d_patches(steps, patch, hop, power), axis=0).ravel()
    norm = np.linalg.norm(median)
    return (median / norm if norm > 0 else median).astype(np.float32)


def euclidean_distances(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(len(q), len(r)) Euclidean distances of the rows."""
    q = np.asarray(q, dtype=np.float32)
    r = np.asarray(r, dtype=np.float32)
    sq = (q * q).sum(axis=1)[:, None] + (r * r).sum(axis=1)[None, :] - 2.0 * (q @ r.T)
    return np.sqrt(np.maximum(sq, 0.0))
