"""The one chunk-embedding path: every consumer (evaluation, dev MAP in training, the search
index, identification, alignment, the HEAR API) embeds recordings through it.

    from csi.modeldir import open_model
    from csi.embed import embed_records
    loaded = open_model("exp/demo")                  # model + its card (front end, chunking)
    policy = loaded.card.chunking(chunk_s=None, hop_s=None)   # the model's training chunk
    reader = loaded.reader()                         # stored features, or audio via the front end
    result = embed_records(loaded.model, records, policy, reader)
    result.emb, result.owner, result.failed          # (chunks, dim), track of each chunk, reasons

The pieces it stands on sit below it: the model directory and its card (``csi.modeldir``),
the chunking policy (``csi.chunking``), the features of a record (``csi.features.reader``)
and how recordings are compared (``csi.scoring.matching``).
"""
from csi.embed.embedder import ChunkEmbeddings, embed_records, embed_stream

__all__ = ["ChunkEmbeddings", "embed_records", "embed_stream"]
