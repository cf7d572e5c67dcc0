"""``ChunkIndex``: a faiss index of chunk embeddings that knows each vector's recording and work.

Vector ids are positions: the vectors of a recording are contiguous and recordings are
appended, so ``meta.jsonl`` holds one line per recording with its vector range
(``start``, ``count``). A saved index is a directory:

    index.faiss   the faiss index (``faiss.write_index``)
    meta.jsonl    {"utt", "song", "start", "count", [version, wav, dur_s]} a recording
    index.json    {"format", "type", "params", "dim", "count", "recordings", "works",
                   "model": identity of the embedding model, "faiss", "updated"}

Files are written through temporary names and ``index.json`` last; loading checks that the
three agree (an interrupted save is reported, not half-used).
"""
from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any, Sequence

import faiss
import numpy as np

from csi.scoring.matching import Matching
from csi.index.aggregate import Ranking, aggregate, rank_recordings
from csi.index.params import IndexParams, auto_params
from csi.io.manifest import atomic_write_text

FORMAT = "csi-index/1"
INDEX_FILE, META_FILE, INFO_FILE = "index.faiss", "meta.jsonl", "index.json"
KEPT_KEYS = ("version", "wav", "feat", "dur_s")   # record keys copied into meta.jsonl
STREAM_BATCH_ROWS = 1 << 17                        # vectors normalised and added at a time when streaming


class IndexFileError(ValueError):
    """A saved index that cannot be used; the message names the directory and the problem."""


def _as_vectors(vectors: np.ndarray, dim: int | None = None) -> np.ndarray:
    x = np.array(vectors, dtype=np.float32, copy=True, order="C")
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        raise ValueError(f"expected vectors (n, {dim or 'dim'}), got shape {x.shape}")
    faiss.normalize_L2(x)
    return x


class ChunkIndex:
    """Search chunk embeddings; rank the recordings and works they belong to."""

    def __init__(self, index: faiss.Index, params: IndexParams, recordings: list[dict[str, Any]],
                 model: dict[str, Any] | None = None):
        self.index = index
        self.params = params
        self.recordings = recordings
        self.model = dict(model or {})
        self._refresh()
        self.set_search_params(params.nprobe, params.ef_search)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def build(cls, vectors: np.ndarray, owners: np.ndarray, records: Sequence[dict[str, Any]], kind: str = "flat",
              model: dict[str, Any] | None = None, seed: int = 0, **overrides: Any) -> "ChunkIndex":
        """An index of ``vectors`` (n, dim); ``owners[i]`` is the position in ``records``
        (dicts with ``utt`` and ``song``) of vector i. Parameters follow
        ``csi.index.params.auto_params(kind, n, dim, **overrides)``; ``model`` is the
        identity recorded for ``check_model``."""
        x = _as_vectors(vectors)
        params = auto_params(kind, len(x), x.shape[1], **overrides)
        index = faiss.index_factory(x.shape[1], params.factory_string(), faiss.METRIC_INNER_PRODUCT)
        if kind == "hnsw":
            index.hnsw.efConstruction = params.ef_construction
        if kind == "ivfpq":
            _train_ivfpq(index, _training_sample(x, params, seed, streamed=False), params, seed)
        out = cls(index, params, [], model)
        out._append(x, owners, records)
        return out

    @classmethod
    def build_streaming(cls, vectors: np.ndarray, owners: np.ndarray, records: Sequence[dict[str, Any]],
                        kind: str = "ivfpq", model: dict[str, Any] | None = None, seed: int = 0,
                        batch_rows: int = STREAM_BATCH_ROWS, **overrides: Any) -> "ChunkIndex":
        """:meth:`build` in bounded memory, for vectors read from disk (``vectors``: anything
        with ``shape`` whose slices are arrays, e.g. :class:`csi.index.vectors.VectorFile`;
        ``owners`` non-decreasing: written recording by recording): an ivfpq index is trained
        on the same seeded sample and the vectors are normalised and added ``batch_rows`` at a
        time, so the index equals :meth:`build`'s while memory holds one batch, the sample
        and the index itself (codes, not vectors)."""
        n, dim = vectors.shape
        params = auto_params(kind, n, dim, **overrides)
        index = faiss.index_factory(dim, params.factory_string(), faiss.METRIC_INNER_PRODUCT)
        if kind == "hnsw":
            index.hnsw.efConstruction = params.ef_construction
        if kind == "ivfpq":
            _train_ivfpq(index, _training_sample(vectors, params, seed, streamed=True, batch_rows=batch_rows), params, seed)
        out = cls(index, params, [], model)
        out.add_streaming(vectors, owners, records, batch_rows)
        return out

    def add(self, vectors: np.ndarray, owners: np.ndarray, records: Sequence[dict[str, Any]]) -> int:
        """Append recordings without rebuilding (an IVF index keeps its trained lists and
        codebooks); returns the number of recordings added."""
        return self._append(_as_vectors(vectors, self.dim), owners, records)

    def add_streaming(self, vectors: np.ndarray, owners: np.ndarray, records: Sequence[dict[str, Any]],
                      batch_rows: int = STREAM_BATCH_ROWS) -> int:
        """:meth:`add` for vectors read from disk, ``batch_rows`` at a time (``owners``
        non-decreasing); returns the number of recordings added."""
        owners = self._check_owners(vectors, owners, records)
        if len(owners) and np.any(np.diff(owners) < 0):
            raise ValueError("streamed vectors must come recording by recording (owners non-decreasing)")
        return self._append_sorted(vectors, owners, records, normalize=True, batch_rows=batch_rows)

    def _check_owners(self, x: np.ndarray, owners: np.ndarray, records: Sequence[dict[str, Any]]) -> np.ndarray:
        owners = np.asarray(owners, dtype=np.int64)
        if len(owners) != len(x):
            raise ValueError(f"{len(x)} vectors but {len(owners)} owners")
        if len(owners) and (owners.min() < 0 or owners.max() >= len(records)):
            raise ValueError("an owner is not a position in records")
        if len(x.shape) != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected vectors (n, {self.dim}), got shape {x.shape}")
        return owners

    def _append(self, x: np.ndarray, owners: np.ndarray, records: Sequence[dict[str, Any]]) -> int:
        owners = self._check_owners(x, owners, records)
        order = np.argsort(owners, kind="stable")
        return self._append_sorted(x[order], owners[order], records, normalize=False)

    def _append_sorted(self, x: np.ndarray, owners: np.ndarray, records: Sequence[dict[str, Any]],
                       normalize: bool, batch_rows: int | None = None) -> int:
        present, counts = np.unique(owners, return_counts=True)
        seen: set[str] = set()
        new_meta = []
        start = self.ntotal
        for pos, count in zip(present.tolist(), counts.tolist()):
            rec = records[pos]
            utt = str(rec["utt"])
            if utt in self._utt_set or utt in seen:
                raise ValueError(f"recording {utt!r} is already in the index")
            seen.add(utt)
            meta = {"utt": utt, "song": str(rec["song"]), "start": start, "count": count}
            meta.update({k: rec[k] for k in KEPT_KEYS if rec.get(k) is not None})
            new_meta.append(meta)
            start += count
        step = batch_rows or max(len(x), 1)
        for b in range(0, len(x), step):
            self.index.add(_as_vectors(x[b:b + step]) if normalize else x[b:b + step])
        self.recordings.extend(new_meta)
        self._refresh()
        return len(new_meta)

    def _refresh(self) -> None:
        counts = np.array([r["count"] for r in self.recordings], dtype=np.int64)
        self.owner = np.repeat(np.arange(len(self.recordings), dtype=np.int64), counts)
        self.first_vector = np.array([r["start"] for r in self.recordings], dtype=np.int64)  # of each recording
        self.utts = [r["utt"] for r in self.recordings]
        self._utt_set = set(self.utts)
        song_index: dict[str, int] = {}
        for r in self.recordings:
            song_index.setdefault(r["song"], len(song_index))
        self.songs = list(song_index)
        self.recording_song = np.array([song_index[r["song"]] for r in self.recordings], dtype=np.int64)
        if len(self.owner) != self.index.ntotal:
            raise IndexFileError(f"{self.index.ntotal} vectors in the faiss index but {len(self.owner)} "
                                 "in the metadata")

    # ---- properties -------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def kind(self) -> str:
        return self.params.kind

    def __contains__(self, utt: str) -> bool:
        return utt in self._utt_set

    def __len__(self) -> int:
        return len(self.recordings)

    # ---- search -------------------------------------------------------------------------------
    def set_search_params(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change the search-time settings (recorded on save)."""
        if self.kind == "ivfpq" and nprobe:
            self.params.nprobe = min(int(nprobe), int(self.params.nlist))
            faiss.extract_index_ivf(self.index).nprobe = self.params.nprobe
        if self.kind == "hnsw" and ef_search:
            self.params.ef_search = int(ef_search)
            self.index.hnsw.efSearch = self.params.ef_search

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` vectors of each query: ``(scores (nq, k), ids (nq, k))``, cosine
        similarity (approximate for ivfpq), id -1 where fewer than k were found."""
        q = _as_vectors(np.atleast_2d(queries), self.dim)
        k = max(1, min(int(k), max(1, self.ntotal)))
        if self.kind == "hnsw" and self.index.hnsw.efSearch < k:
            params = faiss.SearchParametersHNSW(efSearch=k)
            return self.index.search(q, k, params=params)
        return self.index.search(q, k)

    def rank(self, queries: np.ndarray, topk: int = 10, k_chunks: int | None = None,
             matching: Matching | None = None) -> Ranking:
        """Works and recordings ranked for the chunk embeddings of one query recording:
        each query chunk retrieves ``k_chunks`` vectors (default max(100, 10·topk)). With
        CoverHunter's minimum chunk distance (the default) a recording scores its best hit;
        with another ``matching`` distance (best pairs, mean embedding) every recording hit
        is scored ``1 - distance`` over all its chunks (csi.scoring.distance; the chunks as the
        index stores them: exact for flat and hnsw, PQ-decoded for ivfpq)."""
        k = k_chunks or max(100, 10 * topk)
        scores, ids = self.search(queries, k)
        if matching is None or matching.distance == "min":
            return aggregate(scores, ids, self.owner, self.recording_song, self.utts, self.songs, topk)
        from csi.scoring.distance import ChunkDistances

        hit = np.unique(self.owner[ids[ids >= 0]])
        if not len(hit):
            return Ranking()
        vectors, owners = self.recording_vectors(hit)
        q = _as_vectors(np.atleast_2d(queries), self.dim)
        distance = ChunkDistances(q, np.zeros(len(q), dtype=np.int64), 1, vectors, owners, len(hit),
                                  mode=matching.distance, best_k=matching.best_k, device="cpu").full()[0]
        return rank_recordings(hit, 1.0 - distance, self.recording_song, self.utts, self.songs, topk)

    def recording_vectors(self, recordings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stored chunk vectors of ``recordings`` (positions) and, for each vector, the
        position of its recording in ``recordings``."""
        if self.kind == "ivfpq" and not getattr(self, "_direct_map", False):
            faiss.extract_index_ivf(self.index).make_direct_map()
            self._direct_map = True
        parts = [self.index.reconstruct_n(self.recordings[r]["start"], self.recordings[r]["count"])
                 for r in recordings]
        owners = np.repeat(np.arange(len(recordings)), [len(p) for p in parts])
        return np.concatenate(parts).astype(np.float32), owners

    # ---- persistence -----------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {"format": FORMAT, "type": self.kind, "params": self.params.to_dict(), "dim": self.dim,
                "count": self.ntotal, "recordings": len(self.recordings), "works": len(self.songs),
                "model": self.model, "faiss": faiss.__version__,
                "updated": datetime.datetime.now().isoformat(timespec="seconds")}

    def save(self, directory: str | os.PathLike) -> None:
        """Write ``index.faiss``, ``meta.jsonl``, then ``index.json`` to ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{INDEX_FILE}.tmp"
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, directory / INDEX_FILE)
        atomic_write_text(directory / META_FILE,
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.recordings))
        atomic_write_text(directory / INFO_FILE, json.dumps(self.info(), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "ChunkIndex":
        """Read a saved index; IndexFileError if files are missing or disagree."""
        directory = Path(directory)
        info = read_info(directory)
        for name in (INDEX_FILE, META_FILE):
            if not (directory / name).is_file():
                raise IndexFileError(f"{directory}: {name} is missing")
        recordings = []
        with open(directory / META_FILE, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rec = json.loads(line)
                        _ = rec["utt"], rec["song"], int(rec["start"]), int(rec["count"])
                    except (ValueError, KeyError, TypeError) as e:
                        raise IndexFileError(f"{directory / META_FILE}:{lineno}: bad line ({e})") from None
                    recordings.append(rec)
        try:
            index = faiss.read_index(str(directory / INDEX_FILE))
        except RuntimeError as e:
            raise IndexFileError(f"{directory / INDEX_FILE}: unreadable ({' '.join(str(e).split())[:200]})") from None
        if index.ntotal != info.get("count") or index.d != info.get("dim") or len(recordings) != info.get("recordings"):
            raise IndexFileError(f"{directory}: index.faiss ({index.ntotal} × {index.d}), meta.jsonl "
                                 f"({len(recordings)} recordings) and index.json disagree (interrupted save?)")
        params = IndexParams.from_dict(dict(info.get("params", {}), kind=info.get("type", "flat")))
        try:
            return cls(index, params, recordings, info.get("model"))
        except IndexFileError as e:
            raise IndexFileError(f"{directory}: {e}") from None


def read_info(directory: str | os.PathLike) -> dict[str, Any]:
    """``index.json`` of a saved index (cheap: no faiss read)."""
    path = Path(directory) / INFO_FILE
    if not path.is_file():
        raise IndexFileError(f"{directory}: not an index directory ({INFO_FILE} is missing)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise IndexFileError(f"{path}: malformed ({e})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise IndexFileError(f"{path}: not a {FORMAT} index description")
    return info


TRAIN_POINTS_PER_LIST = 40       # coarse k-means sample: vectors a list (faiss asks >= 39)
TRAIN_POINTS_PER_CODE = 64       # PQ k-means sample: vectors a code word (64 · 256 = 16384)


def _training_sample(x, params: IndexParams, seed: int, streamed: bool,
                     batch_rows: int = STREAM_BATCH_ROWS) -> np.ndarray:
    """The seeded rows of ``x`` an ivfpq index is trained on; ``streamed``: ``x`` is read
    ``batch_rows`` at a time (a file on disk) and the sample normalised."""
    n_train = min(len(x), max(TRAIN_POINTS_PER_LIST * params.nlist, TRAIN_POINTS_PER_CODE * 2 ** params.nbits))
    rows = None if n_train == len(x) else np.sort(np.random.default_rng(seed).choice(len(x), n_train, replace=False))
    if not streamed:
        return x if rows is None else x[rows]
    parts = []
    for b in range(0, len(x), batch_rows):
        block = np.asarray(x[b:b + batch_rows])
        if rows is None:
            parts.append(block)
        else:
            lo, hi = np.searchsorted(rows, [b, b + len(block)])
            parts.append(block[rows[lo:hi] - b])
    return _as_vectors(np.concatenate(parts))


def _train_ivfpq(index: faiss.Index, sample: np.ndarray, params: IndexParams, seed: int) -> None:
    """Train the coarse quantiser and the PQ codebooks on the (normalised) training sample."""
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    ivf.cp.seed = seed
    ivf.cp.min_points_per_centroid = 1       # sizes are chosen by auto_params: no faiss warnings
    ivf.cp.max_points_per_centroid = TRAIN_POINTS_PER_LIST
    ivf.pq.cp.seed = seed
    ivf.pq.cp.min_points_per_centroid = 1
    ivf.pq.cp.max_points_per_centroid = TRAIN_POINTS_PER_CODE
    index.train(sample)
