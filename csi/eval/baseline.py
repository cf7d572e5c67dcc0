"""Non-learned reference points for MAP: the cosine distance of time-averaged CQTs, and
chance (random ranking)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from csi.eval.metrics import mean_average_precision
from csi.features.store import load_feature


def mean_cqt_map(queries: Sequence[dict], refs: Sequence[dict]) -> float:
    """MAP when tracks are compared by the cosine distance of their mean CQT frame."""
    def means(records):
        m = np.stack([np.asarray(load_feature(r["feat"]), dtype=np.float32).mean(axis=0) for r in records])
        m -= m.mean(axis=1, keepdims=True)
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9)
    q, r = means(queries), means(refs)
    return _map(1.0 - q @ r.T, queries, refs)


def chance_map(queries: Sequence[dict], refs: Sequence[dict], repeats: int = 20, seed: int = 0) -> float:
    """Mean MAP of random rankings."""
    rng = np.random.default_rng(seed)
    return float(np.mean([_map(rng.random((len(queries), len(refs))), queries, refs) for _ in range(repeats)]))


def _map(distances: np.ndarray, queries, refs) -> float:
    q_utts = np.array([q["utt"] for q in queries])
    r_utts = np.array([r["utt"] for r in refs])
    return mean_average_precision(distances, [q["song"] for q in queries], [r["song"] for r in refs],
                                  exclude=q_utts[:, None] == r_utts[None, :])
