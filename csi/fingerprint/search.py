"""Identifying a snippet: its 1-s fingerprints every ``hop_s`` (a fifth of the database hop
by default, so that some of them fall close to the database's grid whatever the snippet's
start) are searched in the database, and the hits vote for (recording, offset): a hit of
query segment i (at q_i seconds) on reference segment j of recording r (at t_j) votes with
its similarity for offset t_j - q_i. Votes are summed in ``bin_s`` (0.1 s) offset bins
and over a window of ±``window_bins`` bins (consistent hits accumulate, chance hits
scatter; two hits of one query segment in one recording are a database hop apart, so the
window never counts a segment twice); the best window wins, its offset is the
similarity-weighted mean of its hits, and its score is its vote divided by the number of
query segments.
"""
from __future__ import annotations

import numpy as np

from csi.fingerprint.inference import LoadedFingerprinter, fingerprints
from csi.index import ChunkIndex

QUERY_SUBSTEPS = 5


def identify_snippet(index: ChunkIndex, loaded: LoadedFingerprinter, audio: np.ndarray, topk: int = 1,
                     k: int = 20, hop_s: float | None = None, bin_s: float = 0.1,
                     window_bins: int = 1) -> list[dict]:
    """``[{"recording", "offset_s", "score", "segments"}]`` best first; [] when the snippet
    is shorter than one segment."""
    db_hop = float(index.model["hop_s"])
    if 2 * window_bins * bin_s >= db_hop:
        raise ValueError(f"the vote window (±{window_bins} bins of {bin_s} s) must be narrower than the "
                         f"database hop {db_hop} s")
    fp, starts = fingerprints(loaded, audio, hop_s or db_hop / QUERY_SUBSTEPS)
    if not len(fp):
        return []
    scores, ids = index.search(fp, k)
    hit = ids >= 0
    vid = ids[hit]
    rec = index.owner[vid]
    offset = (vid - index.first_vector[rec]) * db_hop - np.broadcast_to(starts[:, None], ids.shape)[hit]
    sim = scores[hit].astype(np.float64)
    if not len(sim):
        return []
    b = np.round(offset / bin_s).astype(np.int64)
    pad = window_bins + 1
    span = int(b.max() - b.min()) + 2 * pad + 1
    key = rec * span + (b - b.min() + pad)
    votes = np.bincount(key, weights=sim, minlength=len(index) * span)
    window = votes.copy()
    for d in range(1, window_bins + 1):
        window[d:] += votes[:-d]
        window[:-d] += votes[d:]
    answers, seen = [], set()
    for best in np.argsort(-window, kind="stable"):
        r = int(best // span)
        if window[best] <= 0:
            break
        if r in seen:                                    # a recording's best window only
            continue
        seen.add(r)
        near = (rec == r) & (np.abs(key - best) <= window_bins)
        answers.append({"recording": index.utts[r],
                        "offset_s": round(float(np.average(offset[near], weights=sim[near])), 3),
                        "score": round(float(window[best]) / len(fp), 4), "segments": len(fp)})
        if len(answers) == topk:
            break
    return answers
