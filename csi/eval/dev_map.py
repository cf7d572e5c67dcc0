"""MAP of a model on a query/reference set, in memory (the dev MAP of training, benchmarks):
chunk embeddings through the one embedding path (csi.embed), the distance of two tracks by
default the minimum cosine distance over their chunk pairs (CoverHunter's evaluation), or the
model's own track distance (``distance``/``best_k``, csi.scoring.distance)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from csi.chunking import ChunkPolicy
from csi.embed import ChunkEmbeddings, embed_records
from csi.features.reader import FeatureReader
from csi.scoring.distance import ChunkDistances
from csi.scoring.metrics import retrieval_metrics, same_source_pairs


def track_distances(q_emb, q_owner, n_queries: int, r_emb, r_owner, n_refs: int) -> np.ndarray:
    """(queries, refs) minimum cosine distance over chunk pairs (+inf for a track without
    chunk), computed block by block (csi.scoring.distance.ChunkDistances)."""
    return ChunkDistances(q_emb, q_owner, n_queries, r_emb, r_owner, n_refs, mode="min", device="cpu").full()


def evaluate_map(model: torch.nn.Module, queries: Sequence[Mapping[str, Any]], refs: Sequence[Mapping[str, Any]],
                 policy: ChunkPolicy, reader: FeatureReader, batch_size: int = 32, device: Any = "cpu", *,
                 keep_tempo_copies: bool = False, distance: str = "min", best_k: int = 3) -> float:
    """MAP of ``queries`` against ``refs`` (relevance: same ``song``). A query never ranks its
    own recording: references with the same source recording (itself and its tempo copies
    ``sp_<k>-<utt>``, csi.scoring.metrics.same_source_pairs) are excluded, or with
    ``keep_tempo_copies=True`` only the identical ``utt``. Records that cannot be read are
    left out (and logged)."""
    q = embed_records(model, queries, policy, reader, batch_size, device)
    same = [x["utt"] for x in queries] == [x["utt"] for x in refs]
    r = q if same else embed_records(model, refs, policy, reader, batch_size, device)
    keep_q = np.setdiff1d(np.arange(len(queries)), list(q.failed))
    keep_r = np.setdiff1d(np.arange(len(refs)), list(r.failed))
    q_emb, q_owner = _renumber(q, keep_q)
    how = dict(mode=distance, best_k=best_k, device=device)
    distances = ChunkDistances(q_emb, q_owner, len(keep_q), **how) if same else \
        ChunkDistances(q_emb, q_owner, len(keep_q), *_renumber(r, keep_r), len(keep_r), **how)
    exclude = same_source_pairs([queries[i]["utt"] for i in keep_q], [refs[j]["utt"] for j in keep_r],
                                keep_tempo_copies=keep_tempo_copies)
    result = retrieval_metrics(distances, [queries[i]["song"] for i in keep_q], [refs[j]["song"] for j in keep_r],
                               exclude=exclude)
    return result.metrics["MAP"]


def _renumber(chunks: ChunkEmbeddings, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chunk embeddings and owners renumbered to positions in ``keep`` (failed tracks have no chunk)."""
    new_index = np.full(int(keep.max()) + 1 if len(keep) else 1, -1, dtype=np.int64)
    new_index[keep] = np.arange(len(keep))
    owner = new_index[chunks.owner] if len(chunks.owner) else chunks.owner
    return chunks.emb, owner
