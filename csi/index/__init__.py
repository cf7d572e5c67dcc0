"""Search index of chunk embeddings (faiss) for identifying the work of a recording.

    from csi.index import ChunkIndex
    index = ChunkIndex.build(vectors, owners, records, kind="ivfpq", model=model_identity(model_dir))
    index.save("exp/index")
    ranking = ChunkIndex.load("exp/index").rank(query_chunk_embeddings, topk=10)
    ranking.works[0].song, ranking.works[0].score, ranking.works[0].utt

Modules: ``params`` (index types and the size rules), ``store`` (``ChunkIndex``: build,
add, search, save/load), ``aggregate`` (chunk hits → recordings → works), ``identity``
(which model made an index; refusing another; opening it), ``build`` (build or extend an
index from a manifest through the one embedding path, csi.embed).
"""
from csi.index.aggregate import Ranking, RecordingMatch, WorkMatch, aggregate
from csi.index.identity import ModelMismatchError, check_model, checkpoint_path, model_identity
from csi.index.params import KINDS, IndexParams, auto_params
from csi.index.store import ChunkIndex, IndexFileError, read_info

__all__ = ["ChunkIndex", "IndexFileError", "IndexParams", "KINDS", "ModelMismatchError", "Ranking",
           "RecordingMatch", "WorkMatch", "aggregate", "auto_params", "check_model", "checkpoint_path",
           "model_identity", "read_info"]
