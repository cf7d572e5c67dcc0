"""The one chunk-embedding path: every consumer (evaluation, dev MAP in training, the search
index, identification, alignment, the HEAR API) embeds recordings through it.

    from csi.embed import open_model, embed_records
    loaded = open_model("exp/demo")                  # model + its card (front end, chunking)
    policy = loaded.card.chunking(chunk_s=None, hop_s=None)   # the model's training chunk
    reader = loaded.reader()                         # stored features, or audio via the front end
    result = embed_records(loaded.model, records, policy, reader)
    result.emb, result.owner, result.failed          # (chunks, dim), track of each chunk, reasons

Modules: ``frontend`` (which front end made a model's features), ``card`` (a model
directory's self-description, ``config/model_card.yaml``), ``chunks`` (the chunking policy), ``matching`` (segment hop and track distance),
``reader`` (features of a record), ``embedder`` (batched, streaming chunk embeddings).
"""
from csi.embed.card import CARD_FILE, LoadedModel, ModelCard, best_or_given, open_model, read_card, write_card
from csi.embed.chunks import ChunkPolicy
from csi.embed.embedder import ChunkEmbeddings, embed_records, embed_stream
from csi.embed.frontend import FrontEnd, resolve_frontend
from csi.embed.matching import DISTANCES, Matching
from csi.embed.reader import EmbedInputError, FeatureReader

__all__ = ["CARD_FILE", "DISTANCES", "Matching", "best_or_given", "ChunkEmbeddings", "ChunkPolicy", "EmbedInputError", "FeatureReader", "FrontEnd",
           "LoadedModel", "ModelCard", "embed_records", "embed_stream", "open_model", "read_card",
           "resolve_frontend", "write_card"]
