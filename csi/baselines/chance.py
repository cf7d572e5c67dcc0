"""``chance``: the metrics of a uniformly random ranking, computed exactly (no sampling).

For a query that ranks ``n`` references (the excluded pairs left out) of which ``R`` are
relevant, under a uniformly random permutation:

- E[AP] = H_n / n + (R - 1) (n - H_n) / (n (n - 1)), with H_n the n-th harmonic number
  (Bestgen 2015, "Exact expected average precision of the random baseline for system
  evaluation"). Derivation: AP = (1/R) sum_{j rel} sum_{k rel} [rank_k <= rank_j] / rank_j;
  the k = j terms have E[1 / rank_j] = H_n / n, the k != j terms
  E[[rank_k < rank_j] / rank_j] = sum_r (1/n) ((r - 1)/(n - 1)) / r = (n - H_n) / (n (n - 1));
- E[rank of the first relevant] = (n + 1) / (R + 1);
- E[P@10] = R min(10, n) / (10 n);
- E[HR@k] = 1 - C(n - R, k) / C(n, k) (no relevant reference among the first k).

MAP, MR1, P@10 and HR@k are then means over the queries with R >= 1, as in
``csi.scoring.metrics`` — the expectation of each metric, by linearity. ``random_distances``
gives one seeded random ranking instead; averaging the MAP of many of them converges to the
exact value (tested).
"""
from __future__ import annotations

from typing import Any, Hashable, Iterable, Sequence

import numpy as np

from csi.scoring.metrics import label_codes


def expected_average_precision(n: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """E[AP] of a random ranking of ``n`` items with ``relevant`` relevant ones (NaN where
    ``relevant`` is 0)."""
    n = np.asarray(n, dtype=np.float64)
    rel = np.asarray(relevant, dtype=np.float64)
    top = int(n.max(initial=0))
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, top + 1))])[n.astype(np.int64)]
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = np.where(n > 1, (rel - 1) * (n - harmonic) / (n * np.maximum(n - 1, 1)), 0.0)
        ap = harmonic / n + cross
    return np.where(rel > 0, ap, np.nan)


def expected_hit_rate(n: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """P(at least one relevant item among the first ``k``) = 1 - C(n - R, k) / C(n, k)."""
    n = np.asarray(n, dtype=np.float64)
    miss = np.ones_like(n)
    for i in range(k):
        miss *= np.clip((n - np.asarray(relevant, dtype=np.float64) - i) / np.maximum(n - i, 1), 0.0, 1.0)
    return 1.0 - miss


def chance_metrics(query_labels: Sequence[Hashable], ref_labels: Sequence[Hashable], exclude=None,
                   hit_ks: Iterable[int] = (1, 10)) -> dict[str, Any]:
    """Expected MAP, MR1, P@10, HR@k of a random ranking, with the keys and query counting of
    ``csi.scoring.metrics.retrieval_metrics``. ``exclude``: a bool (queries, refs) mask or
    ``(query_idx, ref_idx)`` index arrays of pairs that are not ranked."""
    q_codes, r_codes = label_codes(query_labels, ref_labels)
    n_q, n_r = len(q_codes), len(r_codes)
    ranked = np.full(n_q, n_r, dtype=np.int64)
    top_code = int(max(q_codes.max(initial=-1), r_codes.max(initial=-1)))
    per_code = np.bincount(r_codes[r_codes >= 0], minlength=top_code + 1)
    relevant = np.where(q_codes >= 0, per_code[np.maximum(q_codes, 0)] if len(per_code) else 0, 0)
    relevant = relevant.astype(np.int64)
    qi, ri = _pairs(exclude, n_q, n_r)
    if len(qi):
        np.subtract.at(ranked, qi, 1)
        same = (q_codes[qi] == r_codes[ri]) & (q_codes[qi] >= 0)
        np.subtract.at(relevant, qi[same], 1)
    valid = (relevant > 0) & (ranked > 0)
    n, rel = ranked[valid], relevant[valid]
    metrics: dict[str, Any] = {"MAP": float("nan"), "MR1": float("nan"), "P@10": float("nan")}
    if len(n):
        metrics["MAP"] = float(np.mean(expected_average_precision(n, rel)))
        metrics["MR1"] = float(np.mean((n + 1) / (rel + 1)))
        metrics["P@10"] = float(np.mean(rel * np.minimum(10, n) / (10.0 * n)))
    for k in sorted(set(hit_ks)):
        metrics[f"HR@{k}"] = float(np.mean(expected_hit_rate(n, rel, k))) if len(n) else float("nan")
    metrics.update({"queries": int(valid.sum()), "queries_without_relevant": int(n_q - valid.sum()),
                    "queries_total": n_q, "references": n_r})
    return metrics


def random_distances(n_queries: int, n_refs: int, seed: int = 0) -> np.ndarray:
    """One uniformly random ranking per query: i.i.d. uniform distances from a seeded generator."""
    return np.random.default_rng(seed).random((n_queries, n_refs))


def _pairs(exclude, n_q: int, n_r: int) -> tuple[np.ndarray, np.ndarray]:
    if exclude is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if isinstance(exclude, np.ndarray) and exclude.dtype == bool:
        if exclude.shape != (n_q, n_r):
            raise ValueError(f"exclude mask has shape {exclude.shape}, expected {(n_q, n_r)}")
        qi, ri = np.nonzero(exclude)
    elif isinstance(exclude, tuple) and len(exclude) == 2:
        qi, ri = np.asarray(exclude[0], dtype=np.int64).ravel(), np.asarray(exclude[1], dtype=np.int64).ravel()
    else:
        pairs = np.asarray(list(exclude), dtype=np.int64).reshape(-1, 2)
        qi, ri = pairs[:, 0], pairs[:, 1]
    pairs = np.unique(np.stack([qi, ri], axis=1).astype(np.int64).reshape(-1, 2), axis=0)   # a pair counts once
    return pairs[:, 0], pairs[:, 1]
