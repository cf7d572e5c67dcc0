"""Retrieval metrics for cover song identification, defined as the field defines them
(Serra et al. 2009; MIREX audio cover song; Da-TACOS/acoss, Yesiler et al. 2020; CLEWS,
Serra et al. 2025):

- every query ranks all references except the pairs excluded for it (itself in an
  all-vs-all protocol, or listed "same recording" pairs); ties are broken by reference
  index (the lower index ranks first), so results never depend on the sort algorithm;
- AP (average precision) of a query = mean of precision@k over the ranks k of *all* its
  relevant references (same work), however deep — no top-k truncation;
- MAP = mean AP over the queries with at least one relevant reference; queries without
  one are counted and reported separately (``queries_without_relevant``), never averaged
  in as zeros;
- MR1 = mean 1-based rank of the first relevant reference;
- P@10 = (relevant references in the top 10) / 10;
- HR@k = fraction of queries with a relevant reference in the top k (HR@1 is top-1 accuracy).

MR1, P@10 and HR@k also average over the queries with at least one relevant reference.

Everything is computed from the ranks of the relevant references only: a block of query
rows is sorted once and each relevant distance located with a binary search (plus an exact
count of equal distances with a lower index), so memory is bounded by the block
(``block_size`` rows × references) and a 15,000 × 15,000 evaluation needs no full matrix.
``distances`` may be an array or any object with ``n_queries``, ``n_refs`` and
``rows(start, stop)`` returning the distance rows of those queries
(``csi.eval.distance.ChunkDistances`` computes them on the fly).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Protocol, Sequence

import numpy as np

__all__ = ["DistanceRows", "RetrievalResult", "retrieval_metrics", "average_precisions", "mean_average_precision",
           "label_codes", "pairs_from_mask"]

DEFAULT_BLOCK_ELEMENTS = 1 << 24   # ~16M distances per block (64 MB in float32)


class DistanceRows(Protocol):
    """Rows of a (queries, refs) distance matrix, computed on demand; smaller is closer.
    An optional ``rows_into(start, stop, out)`` filling a reused float32 buffer is used
    when present."""
    n_queries: int
    n_refs: int

    def rows(self, start: int, stop: int) -> np.ndarray: ...


BlockHook = Callable[[int, int, np.ndarray, np.ndarray], None]


@dataclass
class RetrievalResult:
    """Summary ``metrics`` and per-query values (index = query position).

    ``ap`` is NaN and ``first_rank`` 0 for a query without relevant reference.
    """
    metrics: dict[str, Any]
    ap: np.ndarray
    first_rank: np.ndarray
    n_relevant: np.ndarray
    precision_at_10: np.ndarray
    query_ids: list[str] = field(default_factory=list)

    def per_query(self) -> list[dict[str, Any]]:
        """One row per query: query, AP, rank of first relevant, n relevant, P@10."""
        ids = self.query_ids or [str(i) for i in range(len(self.ap))]
        return [{"query": q, "ap": None if math.isnan(a) else float(a), "first_rank": int(r) or None,
                 "n_relevant": int(n), "p_at_10": float(p) if n else None}
                for q, a, r, n, p in zip(ids, self.ap, self.first_rank, self.n_relevant, self.precision_at_10)]

    def write_tsv(self, path, extra: dict[str, Sequence] | None = None) -> None:
        """The per-query table as TSV (empty cells for queries without relevant reference);
        ``extra`` adds columns (name -> one value per query)."""
        extra = extra or {}
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(["query", "ap", "first_rank", "n_relevant", "p_at_10", *extra])
            for i, row in enumerate(self.per_query()):
                writer.writerow([row["query"], "" if row["ap"] is None else f"{row['ap']:.6f}",
                                 row["first_rank"] or "", row["n_relevant"],
                                 "" if row["p_at_10"] is None else f"{row['p_at_10']:.2f}",
                                 *(col[i] for col in extra.values())])

    def summary_line(self) -> str:
        m = self.metrics
        ci = f" (95% CI {m['MAP_ci95'][0]:.4f}-{m['MAP_ci95'][1]:.4f})" if "MAP_ci95" in m else ""
        return (f"MAP {m['MAP']:.4f}{ci}  MR1 {m['MR1']:.2f}  P@10 {m['P@10']:.4f}  "
                + "  ".join(f"{k} {m[k]:.4f}" for k in m if k.startswith("HR@"))
                + f"  queries {m['queries']} (without relevant reference: {m['queries_without_relevant']})"
                + f"  references {m['references']}")


def label_codes(query_labels: Sequence[Hashable], ref_labels: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of the labels, shared by both sides. ``None`` is never relevant:
    a query labelled None gets -1, a reference labelled None gets -2."""
    table: dict[Hashable, int] = {}

    def encode(labels, none_code):
        return np.fromiter((none_code if x is None else table.setdefault(_plain(x), len(table)) for x in labels),
                           dtype=np.int64, count=len(labels))
    return encode(list(query_labels), -1), encode(list(ref_labels), -2)


def _plain(x):
    return x.item() if isinstance(x, np.generic) else x


def pairs_from_mask(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(query indices, reference indices) of the True entries of a (queries, refs) mask."""
    q, r = np.nonzero(np.asarray(mask, dtype=bool))
    return q.astype(np.int64), r.astype(np.int64)


def _exclusion_by_query(exclude, n_queries: int, n_refs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Excluded pairs sorted by query: (row offsets (n_queries + 1), query idx, ref idx)."""
    if exclude is None:
        q = r = np.zeros(0, dtype=np.int64)
    elif isinstance(exclude, np.ndarray) and exclude.dtype == bool:
        if exclude.shape != (n_queries, n_refs):
            raise ValueError(f"exclude mask has shape {exclude.shape}, expected {(n_queries, n_refs)}")
        q, r = pairs_from_mask(exclude)
    else:
        if isinstance(exclude, tuple) and len(exclude) == 2 and all(isinstance(e, np.ndarray) for e in exclude):
            q, r = (np.asarray(exclude[0], dtype=np.int64).ravel(), np.asarray(exclude[1], dtype=np.int64).ravel())
        else:
            pairs = np.asarray(list(exclude), dtype=np.int64).reshape(-1, 2)
            q, r = pairs[:, 0], pairs[:, 1]
        if len(q) != len(r):
            raise ValueError("exclude: query and reference index arrays differ in length")
        if len(q) and (q.min() < 0 or q.max() >= n_queries or r.min() < 0 or r.max() >= n_refs):
            raise ValueError(f"exclude: index out of range for {n_queries} queries x {n_refs} references")
    order = np.lexsort((r, q))
    q, r = q[order], r[order]
    offsets = np.searchsorted(q, np.arange(n_queries + 1))
    return offsets, q, r


def _block_ranks(dist: np.ndarray, rows: np.ndarray, cols: np.ndarray, ordered: np.ndarray) -> np.ndarray:
    """1-based ranks of the entries ``(rows, cols)`` of a block of distance rows, ties broken
    by column index. ``dist`` holds NaN at excluded entries (they are not ranked: NaN sorts
    last and equals nothing); ``rows`` is grouped by row; ``ordered`` is a work buffer of
    the shape of ``dist``."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    values = dist[rows, cols]
    np.copyto(ordered, dist)
    ordered.sort(axis=1)
    less = np.empty(len(rows), dtype=np.int64)
    equal = np.empty(len(rows), dtype=np.int64)
    bounds = np.searchsorted(rows, np.arange(dist.shape[0] + 1))
    for i in np.flatnonzero(np.diff(bounds)):
        a, b = bounds[i], bounds[i + 1]
        less[a:b] = ordered[i].searchsorted(values[a:b], side="left")
        equal[a:b] = ordered[i].searchsorted(values[a:b], side="right") - less[a:b]
    ranks = less + 1
    for k in np.flatnonzero(equal > 1):    # ties: the entries of equal distance with a lower index rank first
        ranks[k] += np.count_nonzero(dist[rows[k], :cols[k]] == values[k])
    return ranks


class _RelevantPairs:
    """The (query, reference) pairs with equal label codes, by blocks of queries, without a
    (queries, refs) matrix: references sorted by code, each query takes its code's run."""

    def __init__(self, q_codes: np.ndarray, r_codes: np.ndarray):
        self.r_order = np.argsort(r_codes, kind="stable")
        sorted_codes = r_codes[self.r_order]
        self.first = np.searchsorted(sorted_codes, q_codes, side="left")
        self.count = np.searchsorted(sorted_codes, q_codes, side="right") - self.first

    def block(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(row in block, reference index), grouped by row, references ascending."""
        count = self.count[start:stop]
        rows = np.repeat(np.arange(stop - start), count)
        offsets = np.concatenate([[0], np.cumsum(count)[:-1]])
        within = np.arange(len(rows)) - np.repeat(offsets, count)
        return rows, self.r_order[np.repeat(self.first[start:stop], count) + within]


def retrieval_metrics(distances: np.ndarray | DistanceRows, query_labels: Sequence[Hashable],
                      ref_labels: Sequence[Hashable], exclude=None, *, query_ids: Sequence[str] | None = None,
                      hit_ks: Iterable[int] = (1, 10), block_size: int | None = None, bootstrap: int = 0,
                      seed: int = 0, on_block: BlockHook | None = None) -> RetrievalResult:
    """MAP, MR1, P@10, HR@k and per-query values (definitions in the module docstring).

    ``distances``: (queries, refs) array or a :class:`DistanceRows`; NaN is an error, +inf
    ranks last. ``exclude``: pairs not ranked for their query — a bool (queries, refs) mask,
    a tuple of two index ndarrays ``(query_idx, ref_idx)`` or an iterable of ``(i, j)`` pairs.
    Labels equal means relevant; None is never relevant (see :func:`label_codes`).
    ``bootstrap``: number of resamplings of the queries (seeded by ``seed``) for a 95%
    percentile confidence interval of MAP. ``on_block(start, stop, dist, relevant)`` is
    called for each block of query rows (``dist`` has NaN at excluded pairs, ``relevant`` is
    the bool mask of relevant pairs; both are reused buffers) — e.g. to collect histograms.
    """
    n_queries, n_refs = _shape(distances)
    q_codes, r_codes = label_codes(query_labels, ref_labels)
    if len(q_codes) != n_queries or len(r_codes) != n_refs:
        raise ValueError(f"labels ({len(q_codes)} queries, {len(r_codes)} refs) do not match the distances "
                         f"({n_queries} x {n_refs})")
    ex_offsets, _, ex_refs = _exclusion_by_query(exclude, n_queries, n_refs)
    relevant_pairs = _RelevantPairs(q_codes, r_codes)
    if block_size is None:
        block_size = max(1, DEFAULT_BLOCK_ELEMENTS // max(n_refs, 1))
    block_size = min(block_size, max(n_queries, 1))
    dtype = np.result_type(distances.dtype, np.float32) if isinstance(distances, np.ndarray) else np.float32
    buffer = np.empty((block_size, n_refs), dtype=dtype)      # reused: the distance rows of a block
    ordered = np.empty_like(buffer)                          # reused: the same rows sorted
    mask = np.empty(buffer.shape, dtype=bool) if on_block is not None else None
    rows_into = getattr(distances, "rows_into", None)
    ap = np.full(n_queries, np.nan)
    first_rank = np.zeros(n_queries, dtype=np.int64)
    n_relevant = np.zeros(n_queries, dtype=np.int64)
    p10 = np.zeros(n_queries)
    for start in range(0, n_queries, block_size):
        stop = min(start + block_size, n_queries)
        bq = stop - start
        dist = buffer[:bq]
        if isinstance(distances, np.ndarray):
            np.copyto(dist, distances[start:stop])
        elif rows_into is not None:
            rows_into(start, stop, dist)
        else:
            block = np.asarray(distances.rows(start, stop))
            if block.shape != (bq, n_refs):
                raise ValueError(f"rows({start}, {stop}) returned shape {block.shape}, expected {(bq, n_refs)}")
            np.copyto(dist, block)
        if dist.size and np.isnan(dist.min()):
            raise ValueError(f"NaN distance in query rows {start}-{stop}")
        a, b = ex_offsets[start], ex_offsets[stop]
        dist[np.repeat(np.arange(bq), np.diff(ex_offsets[start:stop + 1])), ex_refs[a:b]] = np.nan
        rows, cols = relevant_pairs.block(start, stop)
        kept = ~np.isnan(dist[rows, cols])
        rows, cols = rows[kept], cols[kept]
        if on_block is not None:
            relevant = mask[:bq]
            relevant.fill(False)
            relevant[rows, cols] = True
            on_block(start, stop, dist, relevant)
        ranks = _block_ranks(dist, rows, cols, ordered[:bq])
        n_rel = np.bincount(rows, minlength=bq)
        n_relevant[start:stop] = n_rel
        if len(rows) == 0:
            continue
        order = np.lexsort((ranks, rows))
        rows, ranks = rows[order], ranks[order]
        row_start = np.searchsorted(rows, np.arange(bq))
        position = np.arange(len(rows)) - row_start[rows] + 1           # m-th relevant reference of its query
        has = n_rel > 0
        precision_sum = np.bincount(rows, weights=position / ranks, minlength=bq)
        ap[start:stop][has] = precision_sum[has] / n_rel[has]
        first_rank[start:stop][has] = ranks[row_start[has]]
        p10[start:stop] = np.bincount(rows, weights=(ranks <= 10).astype(float), minlength=bq) / 10.0
    return _summarise(ap, first_rank, n_relevant, p10, n_refs, sorted(set(hit_ks)), bootstrap, seed,
                      list(query_ids) if query_ids is not None else [])


def _shape(distances) -> tuple[int, int]:
    if isinstance(distances, np.ndarray):
        if distances.ndim != 2:
            raise ValueError(f"distances must be 2-D, got shape {distances.shape}")
        return distances.shape
    return int(distances.n_queries), int(distances.n_refs)


def _summarise(ap, first_rank, n_relevant, p10, n_refs, hit_ks, bootstrap, seed, query_ids) -> RetrievalResult:
    valid = n_relevant > 0
    n = int(valid.sum())

    def mean(x):
        return float(np.mean(x[valid])) if n else float("nan")
    metrics: dict[str, Any] = {"MAP": mean(ap), "MR1": mean(first_rank.astype(float)), "P@10": mean(p10)}
    for k in hit_ks:
        metrics[f"HR@{k}"] = mean((first_rank <= k).astype(float))
    metrics.update({"queries": n, "queries_without_relevant": int(len(ap) - n), "queries_total": int(len(ap)),
                    "references": int(n_refs), "mean_relevant_per_query": mean(n_relevant.astype(float))})
    if bootstrap and n:
        metrics.update(bootstrap_map(ap[valid], bootstrap, seed))
    if len(query_ids) not in (0, len(ap)):
        raise ValueError(f"{len(query_ids)} query ids for {len(ap)} queries")
    return RetrievalResult(metrics, ap, first_rank, n_relevant, p10, query_ids)


def bootstrap_map(aps: np.ndarray, n_resamples: int, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Percentile bootstrap confidence interval of MAP, resampling queries with replacement
    (Efron & Tibshirani 1993), with a seeded generator."""
    rng = np.random.default_rng(seed)
    aps = np.asarray(aps, dtype=np.float64)
    means = np.empty(n_resamples)
    step = max(1, (1 << 22) // max(len(aps), 1))
    for s in range(0, n_resamples, step):
        k = min(step, n_resamples - s)
        means[s:s + k] = aps[rng.integers(0, len(aps), size=(k, len(aps)))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return {"MAP_ci95" if level == 0.95 else f"MAP_ci{round(level * 100)}": [float(lo), float(hi)],
            "bootstrap": int(n_resamples), "bootstrap_seed": int(seed)}


def average_precisions(distances: np.ndarray, query_labels: np.ndarray, ref_labels: np.ndarray,
                       exclude: np.ndarray | None = None) -> np.ndarray:
    """AP per query (NaN for a query without relevant reference).

    ``distances`` (queries, refs), smaller is closer; ``exclude`` (queries, refs) bool marks
    pairs that are not ranked (the query itself). Ties are broken by reference index.
    """
    return retrieval_metrics(np.asarray(distances), list(query_labels), list(ref_labels), exclude).ap


def mean_average_precision(distances: np.ndarray, query_labels, ref_labels, exclude=None) -> float:
    """MAP over the queries that have at least one relevant reference (NaN if none has)."""
    return float(retrieval_metrics(np.asarray(distances), list(query_labels), list(ref_labels), exclude).metrics["MAP"])
