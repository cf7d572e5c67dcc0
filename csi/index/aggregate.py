"""From chunk hits to ranked recordings and works.

A recording scores the best (highest cosine) of its chunks' hits over all query chunks —
CoverHunter's track distance, the minimum chunk distance — or, for a model that compares
recordings otherwise (``matching`` of its card: best pairs, mean embedding), the similarity
``1 - distance`` recomputed over all the chunks of the recordings hit (ChunkIndex.rank);
a work scores its best recording.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class RecordingMatch:
    utt: str
    song: str
    score: float


@dataclass
class WorkMatch:
    song: str
    score: float
    utt: str                 # its best recording
    recordings: int = 1      # its recordings among the hits


@dataclass
class Ranking:
    works: list[WorkMatch] = field(default_factory=list)
    recordings: list[RecordingMatch] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"works": [dict(rank=i + 1, **asdict(w)) for i, w in enumerate(self.works)],
                "recordings": [dict(rank=i + 1, **asdict(r)) for i, r in enumerate(self.recordings)]}


def best_per_group(groups: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(group, best score, position of the best item)`` for each group present, by best
    score descending (ties: earlier position first)."""
    order = np.argsort(-scores, kind="stable")
    _, first = np.unique(groups[order], return_index=True)
    first.sort()
    best = order[first]
    return groups[best], scores[best], best


def aggregate(scores: np.ndarray, ids: np.ndarray, owner: np.ndarray, recording_song: np.ndarray,
              utts: list[str], songs: list[str], topk: int | None = 10) -> Ranking:
    """Rank recordings and works from chunk search results.

    ``scores``/``ids``: (query chunks, k) from the index (id -1 = no hit); ``owner``: the
    recording of each vector id; ``recording_song``: the work (index into ``songs``) of each
    recording; ``topk``: how many works and recordings to keep (None: all).
    """
    ids = np.asarray(ids).ravel()
    scores = np.asarray(scores, dtype=np.float32).ravel()
    hit = ids >= 0
    if not hit.any():
        return Ranking()
    rec, rec_score, _ = best_per_group(owner[ids[hit]], scores[hit])
    return rank_recordings(rec, rec_score, recording_song, utts, songs, topk)


def rank_recordings(rec: np.ndarray, rec_score: np.ndarray, recording_song: np.ndarray, utts: list[str],
                    songs: list[str], topk: int | None = 10) -> Ranking:
    """Works and recordings ranked from recording scores (``rec``: recording positions,
    ``rec_score`` their scores, any order)."""
    order = np.argsort(-np.asarray(rec_score), kind="stable")
    rec, rec_score = np.asarray(rec)[order], np.asarray(rec_score, dtype=np.float32)[order]
    song = recording_song[rec]
    song_ids, song_score, best = best_per_group(song, rec_score)
    n_recordings = np.bincount(song, minlength=len(songs))
    works = [WorkMatch(songs[s], round(float(sc), 6), utts[rec[b]], int(n_recordings[s]))
             for s, sc, b in zip(song_ids[:topk], song_score[:topk], best[:topk])]
    recordings = [RecordingMatch(utts[r], songs[recording_song[r]], round(float(sc), 6))
                  for r, sc in zip(rec[:topk], rec_score[:topk])]
    return Ranking(works, recordings)
