"""``mean_cqt``: the cosine distance of time-averaged CQT frames — a timbre/level baseline,
**not key-invariant**.

Each track is its mean dB CQT frame, centred (its mean over bins removed, so a global level
offset does not count) and L2-normalised; distance = 1 - cosine. It compares spectral
envelopes (instrumentation, register, mix), so a transposed cover is usually far from its
original: it is kept as a reference for "what does the sound alone give", not as a cover
detector. Any number of bins and any front end are accepted.
"""
from __future__ import annotations

import numpy as np


def mean_cqt_vector(feat_db: np.ndarray) -> np.ndarray:
    """(bins,) centred unit-norm mean frame of a (frames, bins) feature."""
    feat = np.asarray(feat_db, dtype=np.float32)
    m = feat.mean(axis=0) if len(feat) else np.zeros(feat.shape[1], dtype=np.float32)
    m = m - m.mean()
    return (m / max(float(np.linalg.norm(m)), 1e-9)).astype(np.float32)


def cosine_distances(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """1 - q @ r.T for unit-norm rows."""
    return 1.0 - np.asarray(q, dtype=np.float32) @ np.asarray(r, dtype=np.float32).T
