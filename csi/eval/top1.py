"""The calibration data of a model (csi.scoring.calibration): each query's best match over a
collection, all-vs-all through the one chunk-embedding path, and whether it is of the same work."""
from __future__ import annotations

import numpy as np

from csi.embed import embed_records
from csi.scoring.distance import ChunkDistances
from csi.scoring.metrics import same_source_pairs


def top1_matches(loaded, records: list[dict], batch_size: int = 32, progress: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All-vs-all over ``records`` (one embedding path, the model's own track distance and
    chunking from its card's ``matching``, a query's own recording and tempo copies
    excluded): each query's best distance, whether that match is of the same work, and the
    query's work."""
    result = embed_records(loaded.model, records, loaded.card.chunking(), loaded.reader(), batch_size,
                           loaded.device, progress=progress)
    keep = [i for i in range(len(records)) if i not in result.failed]
    renumber = np.full(len(records), -1, dtype=np.int64)
    renumber[keep] = np.arange(len(keep))
    rows = renumber[result.owner] >= 0
    owner = renumber[result.owner[rows]]
    matching = loaded.card.matching
    dist = ChunkDistances(result.emb[rows], owner, len(keep), mode=matching.distance, best_k=matching.best_k,
                          device="cpu").full()
    utts = [records[i]["utt"] for i in keep]
    same_q, same_r = same_source_pairs(utts, utts)
    dist[same_q, same_r] = np.inf
    best = dist.argmin(axis=1)
    works = [str(records[i]["song"]) for i in keep]
    correct = np.array([works[b] == works[q] for q, b in enumerate(best)])
    return dist[np.arange(len(keep)), best], correct, works
