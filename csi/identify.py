"""Identify the work of a recording against a built index (tools.build_index): the one
query path behind ``tools.identify``, ``csi identify``, the Python API (``csi.open_index``)
and the identify service (tools.serve_identify).

A query (an audio file, or mono samples at a given rate) is cut into the index's chunks
through the model's own front end and embedded (csi.embed, the one embedding path); the
chunk hits are aggregated to recordings and works (csi.index.aggregate, or the model card's
``matching`` distance recomputed over the recordings hit), optionally re-ordered by Qmax
(csi.eval.rerank) and given ``p_same_work`` when the index has a calibration
(csi.scoring.calibration). ``offsets`` adds, for each work's best recording, where the
best-matching chunk pair starts in the query and in that recording.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csi.chunking import chunk_starts
from csi.embed import ChunkEmbeddings, embed_records
from csi.features.reader import EmbedInputError
from csi.index import ChunkIndex
from csi.index.identity import check_model, index_model
from csi.modeldir import LoadedModel
from csi.scoring.calibration import Calibration
from csi.scoring.matching import Matching

Audio = str | os.PathLike | np.ndarray


@dataclass
class SearchOptions:
    """How a query is searched (None: the index's or the model card's value)."""
    nprobe: int | None = None
    ef_search: int | None = None
    k_chunks: int | None = None
    distance: str | None = None          # min | mean | best_pairs
    best_pairs_k: int | None = None
    centroids: bool = False              # rank works by their centroids (build_index --centroids)
    rerank: str | None = None            # qmax
    rerank_top: int = 20
    batch_size: int = 32


def query_record(audio: Audio, model_rate: int, sample_rate: int | None = None,
                 name: str | None = None) -> dict[str, Any]:
    """The record a model's reader takes: ``wav`` for a path, ``samples`` at ``model_rate``
    for an array (resampled from ``sample_rate`` when it differs; channels mixed down)."""
    if isinstance(audio, (str, os.PathLike)):
        return {"utt": name or str(audio), "wav": str(audio)}
    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 2:                       # (channels, n) or (n, channels): the shorter axis
        samples = samples.mean(axis=0 if samples.shape[0] < samples.shape[1] else 1)
    if samples.ndim != 1 or not len(samples):
        raise EmbedInputError(f"expected mono samples (n,) or (channels, n), got shape {samples.shape}")
    if sample_rate is not None and int(sample_rate) != int(model_rate):
        import soxr
        samples = soxr.resample(samples, int(sample_rate), int(model_rate), quality="HQ").astype(np.float32)
    return {"utt": name or "<samples>", "samples": samples}


class Identifier:
    """An opened index with its model: ``identify(audio, topk)`` answers one query."""

    def __init__(self, index_dir: str | os.PathLike, model_dir: str | os.PathLike | None = None,
                 checkpoint: str | int | None = None, device: Any = "cpu", options: SearchOptions | None = None,
                 loaded: LoadedModel | None = None):
        """The index's own model unless ``model_dir``/``checkpoint`` name another, or ``loaded``
        is an opened one; a model other than the index's is refused (ModelMismatchError)."""
        self.index_dir = Path(index_dir)
        self.options = options = options or SearchOptions()
        self.index = ChunkIndex.load(self.index_dir)
        if loaded is not None:
            check_model(self.index.model, loaded.identity(), self.index.dim)
            self.loaded = loaded
        else:
            self.loaded = index_model(self.index.model, self.index.dim, model_dir, checkpoint, device)
        self.index.set_search_params(options.nprobe, options.ef_search)
        card = self.loaded.card
        self.frames_per_s = card.frontend.frames_per_s
        self.hop_frames = int(self.index.model.get("hop_frames") or card.chunk_frames)
        self.policy = card.chunking(hop_s=self.hop_frames / self.frames_per_s)
        self.reader = self.loaded.reader()
        self.matching = Matching.from_dict(self.index.model.get("matching"), f"{self.index_dir}/index.json") \
            .with_overrides(distance=options.distance, best_k=options.best_pairs_k)
        self.centroids = None
        if options.centroids:
            from csi.index.centroids import WorkCentroids
            self.centroids = WorkCentroids.load(self.index_dir, self.index.model)
        self.reranker = None
        if options.rerank:
            from csi.eval.rerank import IndexReranker
            self.reranker = IndexReranker(self.index, self.reader, options.rerank, options.rerank_top)
        self.calibration = Calibration.load(self.index_dir)
        if self.calibration is not None:
            self.calibration.check(self.index.model, self.matching.to_dict(), str(self.index_dir / "calibration.json"))
        self._by_utt = {r["utt"]: i for i, r in enumerate(self.index.recordings)}

    @property
    def sample_rate(self) -> int:
        return int(self.loaded.card.frontend.sr)

    def embed(self, record: dict[str, Any]) -> ChunkEmbeddings:
        """The query's chunk embeddings; EmbedInputError with the reason if it cannot be used."""
        result = embed_records(self.loaded.model, [record], self.policy, self.reader, self.options.batch_size,
                               self.loaded.device)
        if result.failed:
            raise EmbedInputError(result.failed[0])
        return result

    def search(self, emb: np.ndarray, topk: int = 10, query: dict[str, Any] | None = None) -> dict[str, Any]:
        """Ranked ``works`` and ``recordings`` for chunk embeddings (n_chunks, dim) of one query
        (``query``: its record, needed by ``rerank``), with ``p_same_work`` when calibrated."""
        emb = np.atleast_2d(np.asarray(emb, dtype=np.float32))
        if self.centroids is not None:
            return {"works": self.centroids.rank(emb, topk), "recordings": []}
        if self.reranker is not None:
            if query is None:
                raise ValueError("rerank needs the query's audio: use identify(audio)")
            ranked = self.reranker.rank(emb, query, topk, self.options.k_chunks, self.matching)
        else:
            ranked = self.index.rank(emb, topk, self.options.k_chunks, self.matching).to_dict()
        if self.calibration is not None:               # a cosine similarity: distance 1 - score
            for work in ranked["works"]:
                work["p_same_work"] = round(float(self.calibration.probability(1.0 - work["score"])), 4)
        return ranked

    def identify(self, audio: Audio, topk: int = 10, sample_rate: int | None = None, offsets: bool = False,
                 name: str | None = None) -> dict[str, Any]:
        """One query's answer: ``{"query", "duration_s", "chunks", "works", "recordings"}``
        (tools.identify --json); ``offsets`` adds ``query_offset_s``/``offset_s`` to each work
        with a best recording. EmbedInputError if the audio cannot be used."""
        record = query_record(audio, self.sample_rate, sample_rate, name)
        result = self.embed(record)
        answer = {"query": record["utt"], "duration_s": round(self.reader.last_frames / self.frames_per_s, 2),
                  "chunks": len(result.emb), **self.search(result.emb, topk, record)}
        if offsets:
            for work in answer["works"]:
                if work.get("utt") in self._by_utt:
                    work.update(self.best_pair(result, work["utt"]))
        return answer

    def best_pair(self, query: ChunkEmbeddings, utt: str) -> dict[str, float]:
        """Where the most similar (query chunk, recording chunk) pair starts in each, in
        seconds: the recording's chunks as the index cut them (every hop, the last aligned to
        its end, from its ``dur_s``; without ``dur_s`` every hop)."""
        position = self._by_utt[utt]
        vectors, _ = self.index.recording_vectors(np.array([position]))
        sim = np.asarray(query.emb, np.float32) @ vectors.T
        qi, ri = np.unravel_index(int(np.argmax(sim)), sim.shape)
        dur_s = self.index.recordings[position].get("dur_s")
        if dur_s:
            starts = chunk_starts(int(round(float(dur_s) * self.frames_per_s)), self.policy.chunk_frames,
                                  self.hop_frames)
            ref_start = starts[ri] if ri < len(starts) and len(starts) == len(vectors) else ri * self.hop_frames
        else:
            ref_start = ri * self.hop_frames
        q_start = int(query.start[qi]) if query.start is not None else qi * self.hop_frames
        return {"query_offset_s": round(q_start / self.frames_per_s, 2),
                "offset_s": round(ref_start / self.frames_per_s, 2),
                "pair_score": round(float(sim[qi, ri]), 6)}
