"""Per-work centroids: fast work-level identification from one vector a work.

A work's centroid is the spherical mean of its recordings' chunk embeddings (the normalised
mean vector, the maximum-likelihood mean direction of a von Mises-Fisher distribution,
Mardia & Jupp 2000, §10.3.1); its radius is the ``quantile`` of its chunks' cosine
distances to the centroid. A query (its chunks' spherical mean) is compared with every
centroid by one matrix product: works are ranked by cosine similarity, and each answer says
whether the query lies within the work's radius. Built from an index's stored vectors
(exact for flat and hnsw, PQ-decoded for ivfpq) and saved beside it with the index's model
identity, so centroids of another model are refused.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csi.index.store import ChunkIndex, IndexFileError
from csi.utils import atomic_write, atomic_write_text

CENTROIDS_FILE = "centroids.npy"
CENTROIDS_META = "centroids.json"


@dataclass
class WorkCentroids:
    songs: list[str]
    centroids: np.ndarray          # (works, dim) float32, unit norm
    radius: np.ndarray             # (works,) cosine distance
    recordings: np.ndarray         # (works,) recordings of each work
    quantile: float
    model: dict[str, Any]

    @classmethod
    def from_index(cls, index: ChunkIndex, quantile: float = 0.9) -> "WorkCentroids":
        if not 0 < quantile <= 1:
            raise ValueError(f"quantile must be in (0, 1], got {quantile}")
        vectors, owners = index.recording_vectors(np.arange(len(index)))
        work = index.recording_song[owners]
        n_works, dim = len(index.songs), index.dim
        sums = np.zeros((n_works, dim), np.float64)
        np.add.at(sums, work, vectors)
        centroids = (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        spread = 1.0 - np.einsum("ij,ij->i", vectors, centroids[work])
        order = np.argsort(work, kind="stable")
        bounds = np.searchsorted(work[order], np.arange(n_works + 1))
        radius = np.array([np.quantile(spread[order[a:b]], quantile) for a, b in zip(bounds[:-1], bounds[1:])],
                          dtype=np.float32)
        return cls(list(index.songs), centroids, radius, np.bincount(index.recording_song, minlength=n_works),
                   quantile, dict(index.model))

    def rank(self, query_chunks: np.ndarray, topk: int = 10) -> list[dict[str, Any]]:
        """Works nearest to the spherical mean of a query's chunk embeddings."""
        mean = np.asarray(query_chunks, np.float64).sum(axis=0)
        mean /= max(np.linalg.norm(mean), 1e-12)
        scores = self.centroids @ mean.astype(np.float32)
        best = np.argsort(-scores, kind="stable")[:topk]
        return [{"rank": i + 1, "song": self.songs[w], "score": round(float(scores[w]), 6),
                 "radius": round(float(self.radius[w]), 6), "within": bool(1.0 - scores[w] <= self.radius[w]),
                 "recordings": int(self.recordings[w])} for i, w in enumerate(best)]

    def save(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        atomic_write(directory / CENTROIDS_FILE, lambda f: np.save(f, self.centroids))
        meta = {"songs": self.songs, "radius": self.radius.tolist(), "recordings": self.recordings.tolist(),
                "quantile": self.quantile, "model": self.model}
        atomic_write_text(directory / CENTROIDS_META, json.dumps(meta, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, directory: str | os.PathLike, index_model: dict[str, Any]) -> "WorkCentroids":
        """The centroids saved in ``directory``; IndexFileError if missing, inconsistent or
        made with another model than ``index_model``."""
        directory = Path(directory)
        if not (directory / CENTROIDS_META).is_file() or not (directory / CENTROIDS_FILE).is_file():
            raise IndexFileError(f"{directory}: no work centroids (tools.build_index ... --centroids)")
        meta = json.loads((directory / CENTROIDS_META).read_text(encoding="utf-8"))
        centroids = np.load(directory / CENTROIDS_FILE)
        if len(centroids) != len(meta["songs"]):
            raise IndexFileError(f"{directory}: {len(centroids)} centroids but {len(meta['songs'])} works")
        if meta["model"].get("checkpoint_sha256") != index_model.get("checkpoint_sha256"):
            raise IndexFileError(f"{directory}: the centroids were made with another model than the index's "
                                 f"(checkpoint sha256 {str(meta['model'].get('checkpoint_sha256'))[:12]} vs "
                                 f"{str(index_model.get('checkpoint_sha256'))[:12]}): run build_index --centroids")
        return cls(meta["songs"], centroids, np.asarray(meta["radius"], np.float32),
                   np.asarray(meta["recordings"]), float(meta["quantile"]), meta["model"])
