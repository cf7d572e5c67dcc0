"""The numba kernels of ``csi.baselines.qmax`` (steps 3-4 of its docstring): the
cross-recurrence plot of one pair, the Qmax recursion over it, and both over many pairs in
parallel. Kept apart so that numba is imported only when something is aligned."""
from __future__ import annotations

import math
import os

import numba
import numpy as np

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"   # beside torch's OpenMP (csi.scoring.best_pairs)


def _cross_recurrence(q, r, shift, stack, stride, kappa):
    """(n_q, n_r) uint8 cross-recurrence plot of chroma q, r (r rolled by ``shift``)."""
    span = stack * stride if stack > 1 else 0
    n_q, n_r = q.shape[0] - span, r.shape[0] - span
    frame = np.empty((q.shape[0], r.shape[0]), dtype=np.float64)   # squared distances of frames
    for a in range(q.shape[0]):
        for b in range(r.shape[0]):
            acc = 0.0
            for c in range(12):
                d = q[a, c] - r[b, (c - shift) % 12]
                acc += d * d
            frame[a, b] = acc
    dist = np.zeros((n_q, n_r), dtype=np.float64)                   # squared distances of stacks
    for i in range(n_q):
        for j in range(n_r):
            acc = 0.0
            for k in range(stack):
                acc += frame[i + k * stride, j + k * stride]
            dist[i, j] = acc
    row_k = int(math.floor((n_r - 1) * kappa))
    col_k = int(math.floor((n_q - 1) * kappa))
    row_t = np.empty(n_q, dtype=np.float64)
    col_t = np.empty(n_r, dtype=np.float64)
    for i in range(n_q):
        row_t[i] = np.partition(dist[i, :].copy(), row_k)[row_k]
    for j in range(n_r):
        col_t[j] = np.partition(dist[:, j].copy(), col_k)[col_k]
    plot = np.zeros((n_q, n_r), dtype=np.uint8)
    for i in range(n_q):
        for j in range(n_r):
            if dist[i, j] <= row_t[i] and dist[i, j] <= col_t[j]:
                plot[i, j] = 1
    return plot


def _qmax_score(plot, onset, extension):
    """max Q of the Qmax recursion over a binary plot (module docstring, step 4)."""
    n_q, n_r = plot.shape
    score = np.zeros((n_q, n_r), dtype=np.float64)
    best = 0.0
    for i in range(2, n_q):
        for j in range(2, n_r):
            if plot[i, j]:
                v = max(score[i - 1, j - 1], score[i - 2, j - 1], score[i - 1, j - 2]) + 1.0
            else:
                v = max(0.0,
                        score[i - 1, j - 1] - (onset if plot[i - 1, j - 1] else extension),
                        score[i - 2, j - 1] - (onset if plot[i - 2, j - 1] else extension),
                        score[i - 1, j - 2] - (onset if plot[i - 1, j - 2] else extension))
            score[i, j] = v
            if v > best:
                best = v
    return best


cross_recurrence = numba.njit(cache=True, nogil=True)(_cross_recurrence)
qmax_score = numba.njit(cache=True, nogil=True)(_qmax_score)


def _pair_scores(frames, offsets, pair_a, pair_b, shifts, stack, stride, kappa, onset, extension, out):
    """max Q of every pair (``pair_a[p]``, ``pair_b[p]``) of the concatenated chroma ``frames``."""
    for p in numba.prange(len(pair_a)):
        q = frames[offsets[pair_a[p]]:offsets[pair_a[p] + 1]]
        r = frames[offsets[pair_b[p]]:offsets[pair_b[p] + 1]]
        out[p] = qmax_score(cross_recurrence(q, r, shifts[p], stack, stride, kappa), onset, extension)


pair_scores = numba.njit(parallel=True, cache=True, nogil=True)(_pair_scores)
