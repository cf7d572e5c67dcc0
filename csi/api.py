"""The public Python API: a trained model directory and a built index in three lines.

    import csi
    model = csi.load("exp/demo_quick")              # g_best, else the latest epoch
    emb = model.embed("song.flac")                  # (chunks, dim) L2-normalised chunk embeddings
    index = csi.open_index("exp/demo_quick/index")  # tools.build_index's directory
    index.search(emb, topk=5)["works"]              # [{"rank", "song", "score", "utt", ...}, ...]
    index.identify("song.flac")                     # the same as ``tools.identify --json``
    model.distance(emb, model.embed("cover.flac"))  # the card's track distance (0 = same)

Everything goes through the model-directory owner (csi.modeldir: card, checkpoint rule) and
the one embedding path (csi.embed); search and identification are csi.identify's
``Identifier``, which ``tools.identify``, ``csi identify`` and ``tools.serve_identify`` use too.
Audio is a file path (decoded and resampled by the front end) or mono samples with their
``sample_rate`` (default: the model's).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from csi.identify import Audio, Identifier, SearchOptions, query_record
from csi.modeldir import LoadedModel, open_model


class Model:
    """A model directory opened for embedding (``csi.load``)."""

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        self.card = loaded.card
        self._reader = loaded.reader()

    @property
    def sample_rate(self) -> int:
        return int(self.card.frontend.sr)

    @property
    def dim(self) -> int:
        return int(self.card.embed_dim)

    def __repr__(self) -> str:
        return (f"csi.Model({str(self.loaded.model_dir)!r}, {self.loaded.checkpoint.name}, {self.card.model}, "
                f"{self.dim}-d, chunks of {self.card.chunk_s:g} s at {self.sample_rate} Hz)")

    @property
    def last_duration_s(self) -> float:
        """Seconds of features of the last audio embedded."""
        return round(self._reader.last_frames / self.card.frontend.frames_per_s, 2)

    def embed(self, audio: Audio, sample_rate: int | None = None, hop_s: float | None = None,
              batch_size: int = 32) -> np.ndarray:
        """(chunks, dim) float32 L2-normalised embeddings of the model's training chunks,
        every ``hop_s`` (default: the card's matching hop). EmbedInputError (a ValueError)
        with the reason when the audio cannot be used (missing, unreadable, silent)."""
        from csi.embed import embed_records
        from csi.features.reader import EmbedInputError

        record = query_record(audio, self.sample_rate, sample_rate)
        policy = self.card.chunking(hop_s=hop_s)
        result = embed_records(self.loaded.model, [record], policy, self._reader, batch_size, self.loaded.device)
        if result.failed:
            raise EmbedInputError(f"{record['utt']}: {result.failed[0]}")
        return result.emb

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """The track distance of two recordings' chunk embeddings, by the card's ``matching``
        (CoverHunter's minimum chunk distance unless the model says otherwise)."""
        from csi.scoring.distance import ChunkDistances

        a, b = np.atleast_2d(a).astype(np.float32), np.atleast_2d(b).astype(np.float32)
        m = self.card.matching
        d = ChunkDistances(a, np.zeros(len(a), np.int64), 1, b, np.zeros(len(b), np.int64), 1, mode=m.distance,
                           best_k=m.best_k, device="cpu").full()
        return float(d[0, 0])


class Index:
    """A built index with its model (``csi.open_index``)."""

    def __init__(self, identifier: Identifier):
        self.identifier = identifier
        self.model = Model(identifier.loaded)

    def __len__(self) -> int:
        return len(self.identifier.index)

    def __repr__(self) -> str:
        ix = self.identifier.index
        return f"csi.Index({str(self.identifier.index_dir)!r}, {ix.kind}, {len(ix.songs)} works, {len(ix)} recordings)"

    def search(self, emb: np.ndarray, topk: int = 10) -> dict[str, Any]:
        """Ranked ``works`` and ``recordings`` for one query's chunk embeddings (``Model.embed``)."""
        return self.identifier.search(emb, topk)

    def identify(self, audio: Audio, topk: int = 10, sample_rate: int | None = None,
                 offsets: bool = False) -> dict[str, Any]:
        """One query's answer, as ``tools.identify --json`` prints it (``offsets``: where the
        best chunk pair of each work's best recording starts in the query and in it)."""
        return self.identifier.identify(audio, topk, sample_rate, offsets)


def load(model_dir: str | os.PathLike, checkpoint: str | int | None = None, device: Any = "cpu") -> Model:
    """The model of a model directory (csi.modeldir's default checkpoint unless named)."""
    return Model(open_model(Path(model_dir), checkpoint, device))


def open_index(index_dir: str | os.PathLike, model: Model | str | os.PathLike | None = None,
               checkpoint: str | int | None = None, device: Any = "cpu", **options: Any) -> Index:
    """A built index and its model: the one recorded in ``index.json`` unless ``model`` (a
    ``Model`` or a model directory) is given — a model other than the index's is refused
    (csi.index.ModelMismatchError). ``options``: csi.identify.SearchOptions' fields
    (``nprobe``, ``distance``, ``rerank="qmax"``, ...)."""
    unknown = sorted(set(options) - set(SearchOptions.__dataclass_fields__))
    if unknown:
        raise TypeError(f"open_index: unknown option(s) {', '.join(unknown)}; known: "
                        f"{', '.join(SearchOptions.__dataclass_fields__)}")
    search = SearchOptions(**options)
    if isinstance(model, Model):
        return Index(Identifier(index_dir, options=search, loaded=model.loaded))
    return Index(Identifier(index_dir, model, checkpoint, device, search))
