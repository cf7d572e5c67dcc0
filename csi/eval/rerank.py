"""Two-stage retrieval: an embedding search ranks every reference, then an alignment system
re-scores each query's ``top_k`` (``tools.eval_testset --rerank``, ``tools.identify --rerank``).

Alignment methods compare every pair of tracks and do not reach a large collection
(Serrà's Qmax at ~1,500 pairs/s: 15k tracks all-vs-all take ~21 h); embeddings do, and a
first stage that puts the versions of the query's work in its top K lets the alignment order
them. The re-ranked order of one query: its top K by the alignment distance (ties and
unalignable tracks after the aligned ones, by the embedding distance), then every other
reference by the embedding distance. The distances returned encode that order only, each
distance squashed into (0, 1) by ``squash(x) = 1/2 + arctan(x)/pi`` (monotone; the metrics
read float32 rows, so a large offset would merge distances into ties):

    aligned:     squash(d_align)              (d_align = sqrt(n_r)/Qmax)
    not aligned: 1 + squash(d_embed)          (in the top K, but d_align is infinite)
    the rest:    2 + squash(d_embed)

The alignment reads each record's features through the model's own reader (stored ``feat``,
or ``wav`` through the model's front end), so a query and its references are aligned on the
same features; a front end that is not a 12-bins-per-octave CQT is refused with the reason.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Mapping, Sequence

import numpy as np

from csi.baselines.chroma import BaselineError

log = logging.getLogger("csi.eval")

RERANK_SYSTEMS = ("qmax",)


def squash(x: np.ndarray) -> np.ndarray:
    """A monotone map of the real line (and +inf) into (0, 1]."""
    return 0.5 + np.arctan(x) / np.pi


def check_rerank_frontend(frontend, system: str = "qmax") -> tuple[float, float]:
    """(fmin, frames per second) of a model front end ``system`` can align on, else
    BaselineError naming the front end."""
    if system not in RERANK_SYSTEMS:
        raise BaselineError(f"--rerank {system!r}: known re-ranking systems: {', '.join(RERANK_SYSTEMS)}")
    params = dict(getattr(frontend, "params", {}) or {})
    if frontend.name not in ("coverhunter_cqt", "nnaudio_cqt") or int(params.get("bins_per_octave", 12)) != 12 \
            or frontend.n_bins % 12:
        raise BaselineError(f"--rerank {system} aligns chroma of a 12-bins-per-octave CQT; the model's front end "
                            f"is {frontend.name} {params} ({frontend.n_bins} bins)")
    return float(params.get("fmin", 32.0)), float(frontend.frames_per_s)


class ChromaSource:
    """Qmax chroma of records through a model's feature reader (cached by utt)."""

    def __init__(self, reader, system: str = "qmax"):
        self.reader = reader
        self.fmin, self.frames_per_s = check_rerank_frontend(reader.frontend, system)
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, rec: Mapping[str, Any]) -> np.ndarray:
        from csi.baselines.qmax import qmax_chroma
        from csi.features.reader import EmbedInputError

        utt = str(rec["utt"])
        if utt not in self.cache:
            try:
                feat = self.reader(rec)
            except EmbedInputError as e:     # an unalignable track: infinite Qmax distance, logged
                log.warning("rerank: %s: %s", utt, e)
                feat = np.zeros((0, 12 * 8), np.float32)
            self.cache[utt] = qmax_chroma(feat, self.fmin, self.frames_per_s)
        return self.cache[utt]


def top_k_pairs(first: np.ndarray, top_k: int) -> np.ndarray:
    """(n, 2) (row, column) of each row's ``top_k`` smallest finite distances."""
    rows, cols = [], []
    k = min(int(top_k), first.shape[1])
    if k < 1:
        return np.zeros((0, 2), dtype=np.int64)
    part = np.argpartition(first, k - 1, axis=1)[:, :k]
    for i, c in enumerate(part):
        c = c[np.isfinite(first[i, c])]
        rows.append(np.full(len(c), i))
        cols.append(c)
    return np.stack([np.concatenate(rows), np.concatenate(cols)], axis=1).astype(np.int64)


def reranked_rows(first: np.ndarray, aligned: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Rows in the two-stage order (module docstring): ``first`` embedding distances,
    ``aligned`` alignment distances at ``pairs`` (rows, columns)."""
    out = 2.0 + squash(first)
    r, c = pairs[:, 0], pairs[:, 1]
    a = aligned[r, c]
    out[r, c] = np.where(np.isfinite(a), squash(a), 1.0 + squash(first[r, c]))
    return out


class RerankedDistances:
    """A ``csi.scoring.metrics.DistanceRows``: the rows of ``first`` (another DistanceRows) with
    each query's ``top_k`` references, excluded pairs left out, re-scored by Qmax on
    ``q_chroma`` / ``r_chroma`` (tracks named ``q_ids`` / ``r_ids``). ``stats()``: pairs
    aligned, seconds of the first stage and of the alignment."""

    def __init__(self, first, q_chroma: Sequence[np.ndarray], r_chroma: Sequence[np.ndarray],
                 q_ids: Sequence[str], r_ids: Sequence[str], exclude: tuple[np.ndarray, np.ndarray] | None,
                 top_k: int):
        self.first, self.top_k = first, int(top_k)
        self.q_chroma, self.r_chroma = list(q_chroma), list(r_chroma)
        self.q_ids, self.r_ids = list(q_ids), list(r_ids)
        self.n_queries, self.n_refs = first.n_queries, first.n_refs
        self.excluded: dict[int, list[int]] = {}
        if exclude is not None:
            for q, r in zip(*exclude):
                self.excluded.setdefault(int(q), []).append(int(r))
        from csi.baselines.qmax import usable
        for ident, seq in dict(zip([*self.q_ids, *self.r_ids], [*self.q_chroma, *self.r_chroma])).items():
            why = usable(seq)
            if why:
                log.warning("rerank: track %s is %s: not aligned (ranked after the aligned ones)", ident, why)
        self.pairs = 0
        self.first_s = 0.0
        self.align_s = 0.0

    def rows(self, start: int, stop: int) -> np.ndarray:
        from csi.baselines.qmax import qmax_distances

        t0 = time.time()
        first = np.array(self.first.rows(start, stop), dtype=np.float64)
        masked = first.copy()
        for q in range(start, stop):
            if q in self.excluded:
                masked[q - start, self.excluded[q]] = np.inf
        pairs = top_k_pairs(masked, self.top_k)
        t1 = time.time()
        aligned = qmax_distances(self.q_chroma[start:stop], self.r_chroma, self.q_ids[start:stop], self.r_ids,
                                 pairs=pairs, max_pairs=None, warn=False)
        self.first_s += t1 - t0
        self.align_s += time.time() - t1
        self.pairs += len(pairs)
        return reranked_rows(first, aligned, pairs)

    def stats(self) -> dict[str, Any]:
        n = max(self.n_queries, 1)
        return {"top_k": self.top_k, "pairs_aligned": self.pairs, "time_first_stage_s": round(self.first_s, 3),
                "time_align_s": round(self.align_s, 3),
                "ms_per_query": round(1000 * (self.first_s + self.align_s) / n, 2),
                "align_ms_per_query": round(1000 * self.align_s / n, 2)}


def rerank_ranking(ranking: dict[str, Any], query_chroma: np.ndarray, ref_chroma: Sequence[np.ndarray],
                   topk: int) -> dict[str, Any]:
    """A search answer (``csi.index.aggregate.Ranking.to_dict()`` of the first stage's top K
    recordings) re-ordered by Qmax between the query and each recording (``ref_chroma``, in
    the answer's recording order): recordings by Qmax distance (unaligned ones after, by their
    score), each with ``qmax_distance`` (None when not aligned); works by their best recording
    in that order, with its ``score`` and ``qmax_distance``; ``topk`` of each."""
    from csi.baselines.qmax import qmax_distances

    recs = list(ranking.get("recordings", []))
    dist = qmax_distances([query_chroma], list(ref_chroma), ["<query>"], [r["utt"] for r in recs],
                          max_pairs=None, warn=False)[0] if recs else np.zeros(0)
    order = sorted(range(len(recs)), key=lambda i: (not np.isfinite(dist[i]), dist[i] if np.isfinite(dist[i]) else 0.0,
                                                   -recs[i]["score"], i))
    recordings, works, seen = [], [], {}
    counts: dict[str, int] = {}
    for r in recs:
        counts[r["song"]] = counts.get(r["song"], 0) + 1
    for i in order:
        d = float(dist[i]) if np.isfinite(dist[i]) else None
        rec = {**recs[i], "rank": len(recordings) + 1, "qmax_distance": None if d is None else round(d, 6)}
        recordings.append(rec)
        if rec["song"] not in seen:
            seen[rec["song"]] = True
            works.append({"rank": len(works) + 1, "song": rec["song"], "score": rec["score"], "utt": rec["utt"],
                          "recordings": counts[rec["song"]], "qmax_distance": rec["qmax_distance"]})
    return {"works": works[:topk], "recordings": recordings[:topk]}


class IndexReranker:
    """``tools.identify --rerank``: a query's first-stage answer from a ``ChunkIndex``
    (``top_k`` recordings) re-ordered by the alignment, the recordings' features read
    through the model's reader from what the index keeps of them (``feat`` or ``wav``)."""

    def __init__(self, index, reader, system: str, top_k: int):
        self.index, self.top_k = index, int(top_k)
        self.chroma_of = ChromaSource(reader, system)
        self.by_utt = {r["utt"]: r for r in index.recordings}

    def rank(self, emb: np.ndarray, query: Mapping[str, Any], topk: int, k_chunks: int | None,
             matching) -> dict[str, Any]:
        """``query``: the query's record (``wav`` or in-memory ``samples``), read for its chroma."""
        first = self.index.rank(emb, max(self.top_k, topk), k_chunks, matching).to_dict()
        first["recordings"] = first["recordings"][:self.top_k]
        query = self.chroma_of(dict(query, utt=f"<query {query.get('utt', '')}>"))
        refs = [self.chroma_of(self.by_utt[r["utt"]]) for r in first["recordings"]]
        return rerank_ranking(first, query, refs, topk)
