"""``qmax``: Serra, Serra & Andrzejak 2009, "Cross recurrence quantification for cover song
identification" (New J. Phys. 11, 093017) — chroma, optimal transposition, a binarised
cross-recurrence plot and the Qmax local alignment, with no learning.

Per track (``qmax_chroma``): a chroma of the stored CQT as close to acoss's HPCP as a
12-bins-per-octave CQT allows — the bins within HPCP's 100-3500 Hz folded into pitch classes
(magnitudes), the CQT's leak into the neighbouring pitch class undone (``unsmear``), each frame
scaled to a maximum of 1 (HPCP's ``unitMax``), then the median of every
``round(STEP_S * frames_per_s)`` frames (acoss: the median of 40 HPCP frames of hop 512 at
44.1 kHz, 0.464 s; 12 CQT frames at 25 frames/s). Choices measured on the demo's test split
(236 tracks, all-vs-all MAP): power 0.236 / magnitude 0.265; the 100-3500 Hz band 0.268;
spectral peaks only, harmonic summation or envelope whitening did not help; unsmearing 0.337.
essentia's HPCP of the audio through the same alignment gives 0.398: the rest is the front
end (a 4096-point FFT at 44.1 kHz with peak interpolation, whitening and harmonic weighting,
tuned to A440).

Per pair of tracks (query q, reference r), with the parameters of essentia's example and
acoss (``ChromaCrossSimilarity(frameStackSize=9, frameStackStride=1, binarizePercentile=0.095,
oti=True)``, ``CoverSongSimilarity('serra09', disOnset=0.5, disExtension=0.5)``):

1. optimal transposition index (Serra, Gomez & Herrera 2008): the global chromas
   ``g = sum_t x_t / max`` and the shift ``k = argmax_k <g_q, roll(g_r, k)>``; r is rolled by k;
2. delay embedding: frames ``t, t+tau, ..., t+(m-1) tau`` stacked into one 12m vector, for
   ``t < n - m tau`` (essentia's count);
3. the cross-recurrence plot: ``R[i, j] = 1`` when the Euclidean distance of stacked frames i
   and j is within the ``kappa`` quantile of its row and of its column (mutual nearest
   neighbours, eq. 3 of the paper; the quantile taken as the order statistic
   ``floor((n - 1) kappa)``, which a linear-interpolation percentile reduces to);
4. the Qmax recursion (eq. 5), rows and columns 0 and 1 left at 0::

       Q[i,j] = max(Q[i-1,j-1], Q[i-2,j-1], Q[i-1,j-2]) + 1                    if R[i,j] = 1
       Q[i,j] = max(0, Q[i-1,j-1] - g(R[i-1,j-1]), Q[i-2,j-1] - g(R[i-2,j-1]),
                       Q[i-1,j-2] - g(R[i-1,j-2]))                              otherwise

   with ``g(1) = onset`` (a disruption starts) and ``g(0) = extension``;
5. the distance ``sqrt(n_r) / max Q`` (``n_r`` the reference's stacked frames; infinite when no
   frame matches).

``Q(q, r) = Q(r, q)`` (the shift of (r, q) is the opposite one and R is transposed), so every
unordered pair is aligned once. Pairs run in parallel (numba ``prange``, ``qmax_kernels.py``,
imported on first use so that importing the baselines stays cheap), one
``(n_q, n_r)`` plot at a time per thread. A track that is empty, silent or shorter than one
stacked frame plus two gets an infinite distance to every other, with a line in the log.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from csi.baselines.chroma import C0_HZ, DB_FLOOR, BaselineError, fold_chroma


log = logging.getLogger("csi.eval")

STEP_S = 0.464           # chroma step: 40 HPCP frames of 512 samples at 44.1 kHz (acoss)
BAND_HZ = (100.0, 3500.0)  # HPCP's band in acoss (minFrequency, maxFrequency)
LEAK = (0.17, 1.0, 0.86, 0.13)  # CoverHunter CQT magnitudes of a tuned sine, bins -1..+2 of its peak
LEAK_TUNING_CENTS = 63.0   # where that was measured: fmin 32 Hz, 63 cents above the grid below it
WIENER_NOISE = 0.1         # regulariser of the deconvolution (0.01: MAP 0.318, 0.1: 0.319, 0.3: 0.293)
STACK = 9                # m: frames stacked (essentia frameStackSize)
STRIDE = 1               # tau: their spacing (frameStackStride)
KAPPA = 0.095            # share of nearest neighbours kept per row and column (binarizePercentile)
ONSET = 0.5              # disruption onset penalty (disOnset)
EXTENSION = 0.5          # disruption extension penalty (disExtension)
MAX_PAIRS = 2_000_000    # unordered pairs a call aligns at most (~20 min at 1,500 pairs/s)
PAIR_BLOCK = 4096        # pairs per parallel call (progress and interruptions between them)


@dataclass(frozen=True)
class QmaxParams:
    """Parameters of the cross-recurrence plot and the alignment (module docstring)."""
    stack: int = STACK
    stride: int = STRIDE
    kappa: float = KAPPA
    onset: float = ONSET
    extension: float = EXTENSION

    def span(self) -> int:
        """Chroma steps lost to stacking: ``stack * stride`` (essentia's count), none unstacked."""
        return self.stack * self.stride if self.stack > 1 else 0

    def min_frames(self) -> int:
        """Chroma steps a track needs: the recursion starts at the third stacked frame."""
        return self.span() + 3


def qmax_chroma(feat_db: np.ndarray, fmin: float = 32.0, frames_per_s: float = 25.0,
                step_s: float = STEP_S) -> np.ndarray:
    """(steps, 12) float32 HPCP-style chroma of a (frames, 12*octaves) dB CQT (module
    docstring): magnitudes of the bins within HPCP's 100-3500 Hz folded into pitch classes,
    the CQT's leak into the next pitch class undone (``unsmear``), each frame scaled to a
    maximum of 1 (silent frames stay 0), the median of every ``round(step_s * frames_per_s)``
    frames (an incomplete last block too)."""
    db = np.asarray(feat_db, dtype=np.float32)
    if db.ndim != 2 or db.shape[1] % 12:
        raise ValueError(f"expected (frames, 12*octaves) CQT, got shape {db.shape}")
    freqs = fmin * 2.0 ** (np.arange(db.shape[1]) / 12.0)
    in_band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
    chroma = fold_chroma(np.where(in_band, db, DB_FLOOR - 1.0), fmin, "magnitude")
    chroma = unsmear(chroma, fmin)
    peak = chroma.max(axis=1, keepdims=True) if len(chroma) else np.zeros((0, 1), np.float32)
    chroma = np.divide(chroma, peak, out=np.zeros_like(chroma), where=peak > 0)
    per_step = max(1, int(round(step_s * frames_per_s)))
    n = len(chroma)
    full = n // per_step
    steps = [np.median(chroma[:full * per_step].reshape(full, per_step, 12), axis=1)] if full else []
    if n > full * per_step:
        steps.append(np.median(chroma[full * per_step:], axis=0, keepdims=True))
    return (np.concatenate(steps) if steps else np.zeros((0, 12))).astype(np.float32)


def unsmear(chroma: np.ndarray, fmin: float) -> np.ndarray:
    """Undo the leak of the CoverHunter CQT into the next pitch class (its bins lie 37 cents
    below the A440 grid, so a tuned note falls between two bins): Wiener deconvolution over the
    pitch-class circle by the magnitude response of a tuned sine, ``LEAK`` (``[-1, 0, +1, +2]``
    bins), with ``WIENER_NOISE``; negative values are set to 0. Other bin tunings are returned
    as they are (no response measured). On the demo's test split this raised the Qmax MAP
    from 0.27 to 0.34 (essentia's HPCP from the audio: 0.40)."""
    offset = (1200.0 * math.log2(fmin / C0_HZ)) % 100.0
    if abs(offset - LEAK_TUNING_CENTS) > 5.0 or not len(chroma):
        return chroma
    kernel = np.zeros(12)
    kernel[[11, 0, 1, 2]] = LEAK
    response = np.fft.fft(kernel)
    inverse = np.conj(response) / (np.abs(response) ** 2 + WIENER_NOISE)
    out = np.real(np.fft.ifft(np.fft.fft(chroma, axis=1) * inverse[None], axis=1))
    return np.maximum(out, 0.0).astype(np.float32)


def global_chroma(chroma: np.ndarray) -> np.ndarray:
    """(12,) sum over frames divided by its maximum (zeros for a silent track)."""
    total = np.asarray(chroma, dtype=np.float64).sum(axis=0)
    top = total.max() if total.size else 0.0
    return (total / top if top > 0 else np.zeros(12)).astype(np.float32)


def transposition_indices(g_q: np.ndarray, g_r: np.ndarray) -> np.ndarray:
    """(len(g_q), len(g_r)) optimal transposition index: the first ``k`` in 0..11 maximising
    ``<g_q, roll(g_r, k)>`` (float32 dot products)."""
    rolled = np.stack([np.roll(g_r, k, axis=1) for k in range(12)], axis=1)        # (n_r, 12, 12)
    dots = np.einsum("qc,rkc->qrk", g_q.astype(np.float32), rolled.astype(np.float32))
    return dots.argmax(axis=2).astype(np.int64)


def usable(chroma: np.ndarray, params: QmaxParams = QmaxParams()) -> str | None:
    """Why a track cannot be aligned (None when it can): empty, silent or too short."""
    if len(chroma) == 0:
        return "empty"
    if not np.any(chroma > 0):
        return "silent"
    if len(chroma) < params.min_frames():
        return f"{len(chroma)} chroma steps, fewer than {params.min_frames()}"
    return None


# ---- tracks and pairs ----------------------------------------------------------------------
def qmax_pair(q: np.ndarray, r: np.ndarray, params: QmaxParams = QmaxParams()) -> tuple[float, np.ndarray]:
    """(distance, plot) of one pair of chroma sequences (for tests and plots)."""
    if usable(q, params) or usable(r, params):
        return math.inf, np.zeros((0, 0), np.uint8)
    from csi.baselines.qmax_kernels import cross_recurrence, qmax_score

    shift = int(transposition_indices(global_chroma(q)[None], global_chroma(r)[None])[0, 0])
    plot = cross_recurrence(np.ascontiguousarray(q, np.float32), np.ascontiguousarray(r, np.float32), shift,
                            params.stack, params.stride, params.kappa)
    best = qmax_score(plot, params.onset, params.extension)
    return (math.sqrt(plot.shape[1]) / best if best > 0 else math.inf), plot


def qmax_distances(q_tracks: Sequence[np.ndarray], r_tracks: Sequence[np.ndarray],
                   q_ids: Sequence[str] | None = None, r_ids: Sequence[str] | None = None, *,
                   pairs: np.ndarray | None = None, params: QmaxParams = QmaxParams(),
                   max_pairs: int | None = MAX_PAIRS, progress: bool = False,
                   stats: dict | None = None, warn: bool = True) -> np.ndarray:
    """(queries, refs) Qmax distances of chroma sequences (``qmax_chroma``), smaller is closer.

    Tracks with the same id (default: the same object) are one track, so an all-vs-all set
    aligns each unordered pair once. ``pairs`` (an (n, 2) array of (query, ref) indices)
    restricts the work to those entries (re-ranking); the others are +inf. More unordered
    pairs than ``max_pairs`` raise BaselineError (None: no limit). ``stats`` gets ``pairs``
    (aligned), ``time_s`` and ``pairs_per_s``. Each unusable track gets a log line (unless
    ``warn`` is False) and infinite distances."""
    q_ids = [str(id(t)) for t in q_tracks] if q_ids is None else list(q_ids)
    r_ids = [str(id(t)) for t in r_tracks] if r_ids is None else list(r_ids)
    index: dict[str, int] = {}
    seqs: list[np.ndarray] = []
    for ident, seq in [*zip(q_ids, q_tracks), *zip(r_ids, r_tracks)]:
        if ident not in index:
            index[ident] = len(seqs)
            seqs.append(np.ascontiguousarray(seq, dtype=np.float32))
    q_tr = np.array([index[i] for i in q_ids], dtype=np.int64)
    r_tr = np.array([index[i] for i in r_ids], dtype=np.int64)
    out = np.full((len(q_ids), len(r_ids)), np.inf)
    bad = {t: usable(s, params) for t, s in enumerate(seqs)}
    bad = {t: why for t, why in bad.items() if why}
    names = {t: ident for ident, t in index.items()}
    for t, why in bad.items() if warn else ():
        log.warning("qmax: track %s is %s: infinite distance to every other", names[t], why)
    if pairs is None:
        qi, rj = np.meshgrid(np.arange(len(q_ids)), np.arange(len(r_ids)), indexing="ij")
        pairs = np.stack([qi.ravel(), rj.ravel()], axis=1)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    ta, tb = q_tr[pairs[:, 0]], r_tr[pairs[:, 1]]
    lo, hi = np.minimum(ta, tb), np.maximum(ta, tb)
    keep = (lo != hi) & ~np.isin(lo, list(bad)) & ~np.isin(hi, list(bad))
    unique, inverse = np.unique(np.stack([lo[keep], hi[keep]], axis=1).reshape(-1, 2), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    if max_pairs is not None and len(unique) > max_pairs:
        raise BaselineError(f"qmax: {len(unique):,} track pairs to align, over the limit of {max_pairs:,} "
                            f"(~{len(unique) / 1500 / 60:.0f} min at 1,500 pairs/s); evaluate a smaller set, "
                            "or re-rank an embedding search (--rerank qmax)")
    scores, align_s = _align_pairs(seqs, unique, params, progress)
    lengths = np.array([max(len(s) - params.span(), 0) for s in seqs], dtype=np.float64)
    rows, cols = pairs[keep, 0], pairs[keep, 1]
    pair_scores = scores[inverse]
    ref_len = lengths[r_tr[cols]]
    with np.errstate(divide="ignore"):
        out[rows, cols] = np.where(pair_scores > 0, np.sqrt(ref_len) / np.maximum(pair_scores, 1e-300), np.inf)
    same = pairs[q_tr[pairs[:, 0]] == r_tr[pairs[:, 1]]]
    out[same[:, 0], same[:, 1]] = 0.0          # a track against itself (normally excluded)
    if stats is not None:
        stats.update(pairs=int(len(unique)), time_s=round(align_s, 3),
                     pairs_per_s=round(len(unique) / max(align_s, 1e-9), 1))
    return out


def _align_pairs(seqs: list[np.ndarray], pairs: np.ndarray, params: QmaxParams,
                 progress: bool) -> tuple[np.ndarray, float]:
    """(max Q of every (track a, track b) row of ``pairs``, seconds), in parallel blocks."""
    import numba

    from csi.baselines.qmax_kernels import pair_scores

    t0 = time.time()
    scores = np.zeros(len(pairs), dtype=np.float64)
    if len(pairs):
        frames = np.concatenate(seqs) if seqs else np.zeros((0, 12), np.float32)
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
        g = np.stack([global_chroma(s) for s in seqs])
        numba.set_num_threads(max(1, min(os.cpu_count() or 1, numba.config.NUMBA_NUM_THREADS)))
        from csi.utils import progress_bar
        with progress_bar(total=len(pairs), desc="qmax", unit="pair", disable=not progress, file=sys.stderr,
                  dynamic_ncols=True) as bar:
            for start in range(0, len(pairs), PAIR_BLOCK):
                block = pairs[start:start + PAIR_BLOCK]
                a, b = np.ascontiguousarray(block[:, 0]), np.ascontiguousarray(block[:, 1])
                shifts = _shifts(g, a, b)
                pair_scores(frames, offsets, a, b, shifts, params.stack, params.stride, params.kappa,
                                    params.onset, params.extension, scores[start:start + len(block)])
                bar.update(len(block))
    return scores, time.time() - t0


def _shifts(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Optimal transposition index of each pair (g[a], g[b]) (``transposition_indices``)."""
    rolled = np.stack([np.roll(g[b], k, axis=1) for k in range(12)], axis=1)     # (n, 12, 12)
    return np.einsum("nc,nkc->nk", g[a], rolled).argmax(axis=1).astype(np.int64)
