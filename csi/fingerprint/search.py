"""Identifying a snippet: its 1-s fingerprints every ``hop_s`` are searched in the database,
and the hits vote for (recording, offset): a hit of query segment i (at q_i seconds) on
reference segment j of recording r (at t_j) votes for offset t_j - q_i, rounded to the
database hop. Each query segment gives a key at most its best similarity; the key with the
largest sum wins (sequence voting: consistent hits accumulate, chance hits scatter), and
its score is that sum divided by the number of query segments (1.0: every segment found
its place with similarity 1).
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from csi.fingerprint.train import LoadedFingerprinter, fingerprints
from csi.index import ChunkIndex


def identify_snippet(index: ChunkIndex, loaded: LoadedFingerprinter, audio: np.ndarray, topk: int = 1,
                     k: int = 20, hop_s: float | None = None) -> list[dict]:
    """``[{"recording", "offset_s", "score", "segments"}]`` best first; [] when the snippet
    is shorter than one segment."""
    db_hop = float(index.model["hop_s"])
    fp, starts = fingerprints(loaded, audio, hop_s or db_hop)
    if not len(fp):
        return []
    scores, ids = index.search(fp, k)
    first = np.array([r["start"] for r in index.recordings])
    votes: dict[tuple[int, int], float] = defaultdict(float)
    for i in range(len(fp)):
        best: dict[tuple[int, int], float] = {}
        for score, vid in zip(scores[i], ids[i]):
            if vid < 0:
                continue
            rec = int(index.owner[vid])
            offset = (vid - first[rec]) * db_hop - starts[i]
            key = (rec, int(round(offset / db_hop)))
            best[key] = max(best.get(key, -1.0), float(score))
        for key, score in best.items():
            votes[key] += score
    ranked = sorted(votes.items(), key=lambda kv: -kv[1])
    answers, seen = [], set()
    for (rec, step), total in ranked:
        if rec in seen:
            continue
        seen.add(rec)
        answers.append({"recording": index.utts[rec], "offset_s": round(step * db_hop, 3),
                        "score": round(total / len(fp), 4), "segments": len(fp)})
        if len(answers) == topk:
            break
    return answers
