"""Retrieval metrics for cover song identification, defined as the field defines them
(Serra et al. 2009; MIREX audio cover song; Da-TACOS/acoss, Yesiler et al. 2020; CLEWS,
Serra et al. 2025):

- every query ranks all references except the pairs excluded for it (``exclude``);
- AP (average precision) of a query = mean of precision@k over the ranks k of *all* its
  relevant references (same work), however deep — no top-k truncation;
- MAP = mean AP over the queries with at least one relevant reference; queries without
  one are counted and reported separately (``queries_without_relevant``), never averaged
  in as zeros;
- MR1 = mean 1-based rank of the first relevant reference;
- P@10 = (relevant references in the top 10) / 10;
- HR@k = fraction of queries with a relevant reference in the top k (HR@1 is top-1 accuracy).

MR1, P@10 and HR@k also average over the queries with at least one relevant reference.

**Excluded pairs: same source recording.** A query is never ranked against its own
recording. The feature stage writes tempo-augmented copies of a recording as utts
``sp_<k>-<utt>`` (csi.io.tempo_copy); they are the same performance, so a
query must not be rewarded for finding them. :func:`same_source_pairs` gives, in the
format ``exclude`` accepts, every (query, reference) pair whose utts have the same source
recording (:func:`source_of_utt`: ``sp_0.9-work1-v0`` → ``work1-v0``): the query itself
and all its tempo copies, in both directions. Every evaluation in the toolkit uses it by
default (tools.eval_testset, the trainer's dev MAP, the baselines);
``keep_tempo_copies=True`` (``--keep_tempo_copies``) restores the older rule, which
excludes only the identical utt.

**Ties: expected values under a random order of the tied references.** References at
equal distance from a query are in no order; a rule that breaks ties by reference index
makes a model that outputs constant distances score whatever the file order gives. Here
every metric is its exact expectation when each group of tied references is put in a
uniformly random order (McSherry & Najork, ECIR 2008): for a tie group occupying ranks
s+1 .. s+n, holding r of the query's relevant references, with c relevant references
ranked before it, the relevant references of the group add

    (r/n) * sum_{j=s+1}^{s+n} (c + 1 + (j-s-1)(r-1)/(n-1)) / j

to the sum of precisions (AP's numerator; the second term is 0 when n = 1), each adds
``min(max(10 - s, 0), n) / n`` relevant references to the top 10, the first relevant rank
of a query whose first relevant group is this one is ``s + (n+1)/(r+1)`` on average, and it
is within the top k with probability ``1 - C(n-r, m) / C(n, m)``, ``m = min(max(k - s, 0), n)``.
Without ties these are the usual values (integer ranks); with ties they do not depend on the
order of the references, and constant distances give exactly the chance expectation.
``first_rank`` is then a (possibly fractional) expected rank.

Everything is computed from the relevant references only: a block of query rows is sorted
once and each relevant distance located with two binary searches (the references ranked
strictly before it and those tied with it), so memory is bounded by the block
(``block_size`` rows × references) and a 15,000 × 15,000 evaluation needs no full matrix.
``distances`` may be an array or any object with ``n_queries``, ``n_refs`` and
``rows(start, stop)`` returning the distance rows of those queries
(``csi.scoring.distance.ChunkDistances`` computes them on the fly).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Protocol, Sequence

import numpy as np

__all__ = ["DistanceRows", "RetrievalResult", "retrieval_metrics", "average_precisions", "mean_average_precision",
           "label_codes", "pairs_from_mask", "source_of_utt", "same_source_pairs"]

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

    ``ap`` is NaN and ``first_rank`` 0 for a query without relevant reference. With tied
    distances the values are expectations (module docstring): ``first_rank`` may be
    fractional, and ``hits[k]`` (probability of a relevant reference in the top k) lies in
    [0, 1].
    """
    metrics: dict[str, Any]
    ap: np.ndarray
    first_rank: np.ndarray
    n_relevant: np.ndarray
    precision_at_10: np.ndarray
    query_ids: list[str] = field(default_factory=list)
    hits: dict[int, np.ndarray] = field(default_factory=dict)

    def per_query(self) -> list[dict[str, Any]]:
        """One row per query: query, AP, rank of first relevant, n relevant, P@10."""
        ids = self.query_ids or [str(i) for i in range(len(self.ap))]
        return [{"query": q, "ap": None if math.isnan(a) else float(a), "first_rank": _number(r) if n else None,
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
                                 "" if row["first_rank"] is None else f"{row['first_rank']:.6g}", row["n_relevant"],
                                 "" if row["p_at_10"] is None else f"{row['p_at_10']:.4g}",
                                 *(col[i] for col in extra.values())])

    def summary_line(self) -> str:
        m = self.metrics
        ci = f" (95% CI {m['MAP_ci95'][0]:.4f}-{m['MAP_ci95'][1]:.4f})" if "MAP_ci95" in m else ""
        return (f"MAP {m['MAP']:.4f}{ci}  MR1 {m['MR1']:.2f}  P@10 {m['P@10']:.4f}  "
                + "  ".join(f"{k} {m[k]:.4f}" for k in m if k.startswith("HR@"))
                + f"  queries {m['queries']} (without relevant reference: {m['queries_without_relevant']})"
                + f"  references {m['references']}")


def _number(x) -> int | float:
    """An integral value as int (ranks without ties), else float (expected ranks)."""
    x = float(x)
    return int(x) if x.is_integer() else x


def source_of_utt(utt: str) -> str:
    """The source recording of an utt: the tempo copy ``sp_0.9-work1-v0`` comes from
    ``work1-v0``; any other utt is its own source (csi.io.tempo_copy.source, the rule
    tools.check_leakage uses too)."""
    from csi.io import tempo_copy
    return tempo_copy.source(str(utt))


def same_source_pairs(query_utts: Sequence[str], ref_utts: Sequence[str], *,
                      keep_tempo_copies: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The (query index, reference index) pairs to exclude from the rankings, as the tuple of
    two int64 arrays ``retrieval_metrics(exclude=...)`` accepts: the pairs whose utts have the
    same source recording (:func:`source_of_utt`: a recording and its tempo copies), or with
    ``keep_tempo_copies=True`` only the pairs with the identical utt (the older rule).

    Sorted by query, then reference. Linear in the number of utts and pairs (a dict of
    source codes and one sort), never a (queries, refs) matrix.
    """
    key = (lambda u: str(u)) if keep_tempo_copies else source_of_utt
    table: dict[str, int] = {}
    q_codes = np.fromiter((table.setdefault(key(u), len(table)) for u in query_utts), dtype=np.int64,
                          count=len(query_utts))
    n_query_codes = len(table)
    r_codes = np.fromiter((table.get(key(u), n_query_codes) for u in ref_utts), dtype=np.int64,
                          count=len(ref_utts))       # sources no query has get one code no query shares
    if len(q_codes) == 0 or len(r_codes) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    q_idx, r_idx = _RelevantPairs(q_codes, r_codes).block(0, len(q_codes))
    return q_idx.astype(np.int64), r_idx.astype(np.int64)


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


def _block_ties(dist: np.ndarray, rows: np.ndarray, values: np.ndarray, ordered: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """For the entries of value ``values`` in rows ``rows`` (grouped by row) of a block of
    distance rows: how many ranked references of their row are strictly closer, and how many
    are at the same distance (themselves included). ``dist`` holds NaN at excluded entries
    (they are not ranked: NaN sorts last and equals nothing); ``ordered`` is a work buffer
    of the shape of ``dist``."""
    less = np.empty(len(rows), dtype=np.int64)
    equal = np.empty(len(rows), dtype=np.int64)
    if len(rows) == 0:
        return less, equal
    np.copyto(ordered, dist)
    ordered.sort(axis=1)
    bounds = np.searchsorted(rows, np.arange(dist.shape[0] + 1))
    for i in np.flatnonzero(np.diff(bounds)):
        a, b = bounds[i], bounds[i + 1]
        less[a:b] = ordered[i].searchsorted(values[a:b], side="left")
        equal[a:b] = ordered[i].searchsorted(values[a:b], side="right") - less[a:b]
    return less, equal


def _harmonic_numbers(n: int) -> np.ndarray:
    """H[k] = 1 + 1/2 + ... + 1/k for k = 0 .. n (float64)."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1, dtype=np.float64))])


def _miss_probability(n: np.ndarray, r: np.ndarray, m: np.ndarray) -> np.ndarray:
    """C(n-r, m) / C(n, m): the probability that none of the r relevant references of a tie
    group of n lands in its first m positions under a uniformly random order."""
    from scipy.special import gammaln

    rest = n - r
    possible = m <= rest
    value = np.exp(gammaln(rest + 1.0) - gammaln(np.maximum(rest - m, 0) + 1.0)
                   - gammaln(n + 1.0) + gammaln(n - m + 1.0))
    return np.where(possible, value, 0.0)


def _tie_aware_block(rows: np.ndarray, values: np.ndarray, less: np.ndarray, equal: np.ndarray, n_rows: int,
                     harmonic: np.ndarray, hit_ks: Sequence[int]):
    """Per-row expected values (module docstring) from the relevant entries of a block:
    (sum of precisions, first relevant rank, relevant in the top 10, {k: P(hit in top k)});
    rows without relevant entry get 0."""
    order = np.lexsort((values, rows))
    rows, values, less, equal = rows[order], values[order], less[order], equal[order]
    new_group = np.ones(len(rows), dtype=bool)
    new_group[1:] = (rows[1:] != rows[:-1]) | (values[1:] != values[:-1])
    starts = np.flatnonzero(new_group)
    g_rows = rows[starts]
    s = less[starts]                                           # references ranked before the group
    n = equal[starts]                                          # the group's size
    r = np.diff(np.append(starts, len(rows)))                  # relevant references in it
    c = starts - np.searchsorted(rows, g_rows)                 # relevant references ranked before it
    sf, nf, rf, cf = (x.astype(np.float64) for x in (s, n, r, c))
    tied = n > 1
    d_harmonic = np.where(tied, harmonic[s + n] - harmonic[s], 1.0 / (sf + 1.0))
    slope = np.where(tied, (rf - 1.0) / np.maximum(nf - 1.0, 1.0), 0.0)
    precisions = np.where(tied, rf / nf * ((cf + 1.0) * d_harmonic + slope * (nf - (sf + 1.0) * d_harmonic)),
                          (cf + 1.0) / (sf + 1.0))
    precision_sum = np.bincount(g_rows, weights=precisions, minlength=n_rows)
    top10 = np.bincount(g_rows, weights=rf * np.clip(10.0 - sf, 0.0, nf) / nf, minlength=n_rows)
    first = c == 0                                             # the group holding the first relevant reference
    f_rows, fs, fn, fr = g_rows[first], sf[first], nf[first], rf[first]
    first_rank = np.zeros(n_rows)
    first_rank[f_rows] = fs + (fn + 1.0) / (fr + 1.0)
    hits = {}
    for k in hit_ks:
        hit = np.zeros(n_rows)
        m = np.clip(k - fs, 0.0, fn)
        hit[f_rows] = np.where(fn > 1, 1.0 - _miss_probability(fn, fr, m), (fs < k).astype(np.float64))
        hits[k] = hit
    return precision_sum, first_rank, top10, hits


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
    ranks last; ties count as expectations over a random order (module docstring).
    ``exclude``: pairs not ranked for their query — a bool (queries, refs) mask, a tuple of
    two index ndarrays ``(query_idx, ref_idx)`` (e.g. :func:`same_source_pairs`) or an
    iterable of ``(i, j)`` pairs.
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
    hit_ks = sorted(set(int(k) for k in hit_ks))
    harmonic = _harmonic_numbers(n_refs)
    ap = np.full(n_queries, np.nan)
    first_rank = np.zeros(n_queries)
    n_relevant = np.zeros(n_queries, dtype=np.int64)
    p10 = np.zeros(n_queries)
    hits = {k: np.zeros(n_queries) for k in hit_ks}
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
        n_rel = np.bincount(rows, minlength=bq)
        n_relevant[start:stop] = n_rel
        if len(rows) == 0:
            continue
        values = dist[rows, cols]
        less, equal = _block_ties(dist, rows, values, ordered[:bq])
        precision_sum, first, top10, block_hits = _tie_aware_block(rows, values, less, equal, bq, harmonic, hit_ks)
        has = n_rel > 0
        ap[start:stop][has] = precision_sum[has] / n_rel[has]
        first_rank[start:stop] = first
        p10[start:stop] = top10 / 10.0
        for k in hit_ks:
            hits[k][start:stop] = block_hits[k]
    return _summarise(ap, first_rank, n_relevant, p10, hits, n_refs, bootstrap, seed,
                      list(query_ids) if query_ids is not None else [])


def _shape(distances) -> tuple[int, int]:
    if isinstance(distances, np.ndarray):
        if distances.ndim != 2:
            raise ValueError(f"distances must be 2-D, got shape {distances.shape}")
        return distances.shape
    return int(distances.n_queries), int(distances.n_refs)


def _summarise(ap, first_rank, n_relevant, p10, hits, n_refs, bootstrap, seed, query_ids) -> RetrievalResult:
    valid = n_relevant > 0
    n = int(valid.sum())

    def mean(x):
        return float(np.mean(x[valid])) if n else float("nan")
    metrics: dict[str, Any] = {"MAP": mean(ap), "MR1": mean(first_rank.astype(float)), "P@10": mean(p10)}
    for k, hit in hits.items():
        metrics[f"HR@{k}"] = mean(hit)
    metrics.update({"queries": n, "queries_without_relevant": int(len(ap) - n), "queries_total": int(len(ap)),
                    "references": int(n_refs), "mean_relevant_per_query": mean(n_relevant.astype(float))})
    if bootstrap and n:
        metrics.update(bootstrap_map(ap[valid], bootstrap, seed))
    if len(query_ids) not in (0, len(ap)):
        raise ValueError(f"{len(query_ids)} query ids for {len(ap)} queries")
    return RetrievalResult(metrics, ap, first_rank, n_relevant, p10, query_ids, hits)


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

    ``distances`` (queries, refs), smaller is closer; ``exclude`` marks pairs that are not
    ranked (see :func:`retrieval_metrics`; :func:`same_source_pairs` gives the usual ones).
    Tied distances count as the expected AP over a random order of the tied references.
    """
    return retrieval_metrics(np.asarray(distances), list(query_labels), list(ref_labels), exclude).ap


def mean_average_precision(distances: np.ndarray, query_labels, ref_labels, exclude=None) -> float:
    """MAP over the queries that have at least one relevant reference (NaN if none has)."""
    return float(retrieval_metrics(np.asarray(distances), list(query_labels), list(ref_labels), exclude).metrics["MAP"])
