"""The recordings to align and the pairs of a work.

Tempo copies from the feature stage (``sp_<k>-<utt>``: the source recording played k times
faster) are the same performance: only one recording per source is aligned (the original,
else the first copy, whose times are scaled back to source time), and alignments are
stated in source time, so they serve every copy. A work with hundreds of versions gives
``n(n-1)/2`` pairs: at most ``max_pairs`` per work are aligned, drawn with a fixed seed.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from csi.io import tempo_copy
from csi.io.manifest import source_utt



def tempo_of(rec: Mapping[str, Any]) -> float:
    """The tempo factor of a record: ``aug.tempo``, else from an ``sp_<k>-`` utt, else 1."""
    return tempo_copy.factor(rec)


def representatives(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """``{work: {source utt: record index of its representative}}`` in manifest order; the
    representative is the untransformed recording when present."""
    chosen: dict[str, int] = {}
    work_of: dict[str, str] = {}
    for i, rec in enumerate(records):
        src = source_utt(str(rec["utt"]))
        work_of.setdefault(src, str(rec["song"]))
        if src not in chosen or (tempo_of(records[chosen[src]]) != 1.0 and tempo_of(rec) == 1.0):
            chosen[src] = i
    works: dict[str, dict[str, int]] = {}
    for src, i in chosen.items():
        works.setdefault(work_of[src], {})[src] = i
    return works


def work_pairs(n: int, max_pairs: int | None, rng: np.random.Generator) -> list[tuple[int, int]]:
    """All ``(i, j)``, i < j, of n recordings, or ``max_pairs`` of them drawn without replacement."""
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if max_pairs is not None and len(pairs) > max_pairs:
        keep = np.sort(rng.choice(len(pairs), size=max_pairs, replace=False))
        pairs = [pairs[k] for k in keep]
    return pairs
