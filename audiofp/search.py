"""Identifying a snippet: its 1-s fingerprints every ``hop_s`` (0.1 s, so that some of them
fall close to the database's grid whatever the snippet's start) are searched in the
database, and the hits vote for (recording, offset): a hit of query segment i (at q_i
seconds) on reference segment j of recording r (at t_j) votes with its similarity for
offset t_j - q_i. Votes are summed in ``bin_s`` (0.1 s) offset bins and over a window of
±``window_bins`` bins (consistent hits accumulate, chance hits scatter; two hits of one
query segment in one recording are a database hop apart, so the window never counts a
segment twice); a window's offset is the similarity-weighted mean of its hits.

The ``verify`` best windows are then checked along the whole query (the sequence search of
Chang et al. 2021, §4.3): every query segment is compared with the reference fingerprint at
its place under that offset (interpolated between the two nearest stored fingerprints), not
only the segments whose hits voted; each candidate's offset moves to its best place within
±0.15 s, and the candidates are ranked by that mean similarity. Votes find the candidates;
the path decides between passages of one recording that look alike in a few segments.
"""
from __future__ import annotations

import numpy as np

from audiofp.inference import LoadedFingerprinter, fingerprints
from csi.index import ChunkIndex

QUERY_HOP_S = 0.1


def identify_snippet(index: ChunkIndex, loaded: LoadedFingerprinter, audio: np.ndarray, topk: int = 1,
                     k: int = 20, hop_s: float | None = None, bin_s: float = 0.1,
                     window_bins: int = 1, verify: int = 10) -> list[dict]:
    """``[{"recording", "offset_s", "score", "segments"}]`` best first (one answer a
    recording); [] when the snippet is shorter than one segment."""
    fp, starts = fingerprints(loaded, audio, hop_s or QUERY_HOP_S)
    return identify_fingerprints(index, fp, starts, topk, k, bin_s, window_bins, verify)


def identify_fingerprints(index: ChunkIndex, fp: np.ndarray, starts: np.ndarray, topk: int = 1, k: int = 20,
                          bin_s: float = 0.1, window_bins: int = 1, verify: int = 10) -> list[dict]:
    """The answers for query fingerprints ``fp`` taken at ``starts`` (s), from the
    ``max(verify, topk)`` best vote windows. With ``verify`` > 0 they are verified along the
    path and ``score`` is the mean cosine similarity there; else it is the vote per query
    segment."""
    db_hop = float(index.model["hop_s"])
    if 2 * window_bins * bin_s >= db_hop:
        raise ValueError(f"the vote window (±{window_bins} bins of {bin_s} s) must be narrower than the "
                         f"database hop {db_hop} s")
    if not len(fp):
        return []
    candidates = vote(index, fp, starts, k, db_hop, bin_s, window_bins, max(verify, topk))
    if verify:                                           # every candidate, so that scores compare
        candidates = verify_candidates(index, fp, starts, candidates, db_hop)
        candidates.sort(key=lambda c: -c[2])
    else:
        candidates = [(r, offset, v / len(fp)) for r, offset, v in candidates]
    answers, seen = [], set()
    for r, offset, score in candidates:
        if r in seen:
            continue
        seen.add(r)
        answers.append({"recording": index.utts[r], "offset_s": round(offset, 3), "score": round(score, 4),
                        "segments": len(fp)})
        if len(answers) == topk:
            break
    return answers


def vote(index: ChunkIndex, fp: np.ndarray, starts: np.ndarray, k: int, db_hop: float, bin_s: float,
         window_bins: int, limit: int) -> list[tuple[int, float, float]]:
    """Up to ``limit`` (recording, offset s, vote) best first, about a database hop apart
    within a recording."""
    scores, ids = index.search(fp, k)
    hit = ids >= 0
    vid = ids[hit]
    if not len(vid):
        return []
    rec = index.owner[vid]
    offset = (vid - index.first_vector[rec]) * db_hop - np.broadcast_to(starts[:, None], ids.shape)[hit]
    sim = scores[hit].astype(np.float64)
    b = np.round(offset / bin_s).astype(np.int64)
    pad = window_bins + 1
    span = int(b.max() - b.min()) + 2 * pad + 1
    key = rec * span + (b - b.min() + pad)
    votes = np.bincount(key, weights=sim, minlength=len(index) * span)
    window = votes.copy()
    for d in range(1, window_bins + 1):
        window[d:] += votes[:-d]
        window[:-d] += votes[d:]
    apart = int(round(db_hop / bin_s))
    out: list[tuple[int, float, float]] = []
    taken: dict[int, list[int]] = {}
    for best in np.argsort(-window, kind="stable"):
        if window[best] <= 0 or len(out) == limit:
            break
        r = int(best // span)
        if any(abs(int(best) - t) < apart for t in taken.get(r, ())):
            continue
        taken.setdefault(r, []).append(int(best))
        near = (rec == r) & (np.abs(key - best) <= window_bins)
        if not near.any():                               # a window lit only by its neighbours' votes
            continue
        out.append((r, float(np.average(offset[near], weights=sim[near])), float(window[best])))
    return out


def verify_candidates(index: ChunkIndex, fp: np.ndarray, starts: np.ndarray,
                      candidates: list[tuple[int, float, float]], db_hop: float, radius_s: float = 0.15,
                      step_s: float = 0.025) -> list[tuple[int, float, float]]:
    """(recording, offset, path similarity) of each candidate, its offset moved to the best
    place within ±``radius_s`` (steps of ``step_s``): a vote window's mean offset can be a
    tenth of a second off, and a passage that looks alike can win on a path that is."""
    shifts = np.arange(-radius_s, radius_s + step_s / 2, step_s)
    sims: dict[int, np.ndarray] = {}
    out = []
    for r, offset, _ in candidates:
        if r not in sims:
            ref, _ = index.recording_vectors(np.array([r]))
            sims[r] = fp @ ref.T
        scores = [path_similarity(sims[r], starts, offset + d, db_hop) for d in shifts]
        best = int(np.argmax(scores))
        out.append((r, float(offset + shifts[best]), float(scores[best])))
    return out


def path_similarity(sims: np.ndarray, starts: np.ndarray, offset: float, db_hop: float) -> float:
    """Mean similarity of the query's fingerprints with a recording's at ``starts + offset``,
    from ``sims`` (query segments × the recording's stored fingerprints): linear between the
    two stored fingerprints around each place; places outside the recording count as 0."""
    place = (starts + offset) / db_hop
    lower = np.floor(place).astype(np.int64)
    frac = place - lower
    rows = np.arange(len(sims))
    total = np.zeros(len(sims))
    for j, weight in ((lower, 1.0 - frac), (lower + 1, frac)):
        inside = (j >= 0) & (j < sims.shape[1])
        total[inside] += weight[inside] * sims[rows[inside], j[inside]]
    return float(total.mean())
