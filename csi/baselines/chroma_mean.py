"""``chroma_mean``: key-invariant mean chroma, the simplest tonal baseline.

A track is summarised by its time-averaged chroma (a global pitch-class profile, as in key
finding; Krumhansl 1990, Gomez 2006), and two tracks are compared at their best relative
transposition: the distance is the smallest cosine distance over the 12 circular shifts of
one profile — the optimal transposition index (OTI) idea of Serra, Gomez & Herrera 2008,
which picks the shift maximising the similarity of the two global profiles:

    d(a, b) = 1 - max_{s in 0..11} <a, roll(b, s)> / (|a| |b|)

Per track (choices measured on two rendered demo corpora, see ``csi.baselines``):
octave-folded *power* chroma (``csi.baselines.chroma``); each frame L2-normalised
(so loud passages do not dominate; frames quieter than 1/1000 of the loudest frame's norm
are divided by that floor instead, so near-silence counts little); time mean; then the
logarithmic compression ``log(1 + 10 v / max v)`` of the chroma toolbox's CLP features
(Muller & Ewert 2011), which raised MAP from 0.32 / 0.35 to 0.35 / 0.38 on those corpora.
"""
from __future__ import annotations

import numpy as np

from csi.baselines.chroma import fold_chroma

FRAME_FLOOR = 1e-3       # frame norms below this fraction of the track's largest are floored
COMPRESSION = 10.0       # log(1 + COMPRESSION * v / max v)


def chroma_mean_vector(feat_db: np.ndarray, fmin: float = 32.0) -> np.ndarray:
    """(12,) unit-norm compressed mean chroma of a (frames, 12*octaves) dB CQT (zeros for a
    silent or empty track)."""
    chroma = fold_chroma(feat_db, fmin, "power")
    if len(chroma) == 0:
        return np.zeros(12, dtype=np.float32)
    norms = np.linalg.norm(chroma, axis=1, keepdims=True)
    top = float(norms.max())
    if top <= 0.0:
        return np.zeros(12, dtype=np.float32)
    mean = (chroma / np.maximum(norms, FRAME_FLOOR * top)).mean(axis=0)
    v = np.log1p(COMPRESSION * mean / mean.max())
    return (v / np.linalg.norm(v)).astype(np.float32)


def shift_min_cosine_distances(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(len(q), len(r)) smallest cosine distance over the 12 circular shifts of the rows of
    ``r`` (rows of ``q``/``r``: 12-bin profiles; all-zero rows get distance 1)."""
    q = _unit(np.asarray(q, dtype=np.float32))
    r = _unit(np.asarray(r, dtype=np.float32))
    best = q @ r.T
    for s in range(1, 12):
        np.maximum(best, q @ np.roll(r, s, axis=1).T, out=best)
    return 1.0 - best


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
