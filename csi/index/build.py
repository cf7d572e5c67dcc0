"""Build a search index of a reference collection, or extend one (``tools.build_index``).

Every record is cut into the model's chunks (csi.embed, the model card's front end and
chunking), embedded and indexed with its recording and work. The embeddings stream to a
file beside the index and are indexed from there in batches (an ivfpq index trained on a
sample), so memory holds the index, not the collection's chunk vectors. Extending (``add=True``) keeps
the index's type, parameters, chunk hop and model, and skips recordings already in it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from csi.index import shards
from csi.index.identity import check_model
from csi.index.store import ChunkIndex
from csi.index.vectors import VectorFile
from csi.registry import ConfigError

log = logging.getLogger("csi.index")

BUILD_PARAMS = ("nlist", "m", "nbits", "hnsw_m", "ef_construction")   # fixed once an index exists
SEARCH_PARAMS = ("nprobe", "ef_search")


@dataclass
class BuildResult:
    index: ChunkIndex | None
    added: int
    chunks: int
    failed: list[tuple[int, str]] = field(default_factory=list)
    records: Sequence[dict] = ()
    seconds: float = 0.0


def build_index(model_dir: Path, records: Sequence[dict[str, Any]], out_dir: Path, *, kind: str | None = None,
                params: dict[str, Any] | None = None, add: bool = False, hop_s: float | None = None,
                checkpoint: str | None = None, batch_size: int = 32, device: Any = "cpu",
                progress: bool = True, shard: tuple[int, int] | None = None,
                merge: int | None = None) -> BuildResult:
    """Index ``records`` (or, with ``add``, append those not yet in ``out_dir``'s index).
    ``shard=(k, n)`` only embeds every n-th record into a part (csi.index.shards; the
    result has no index); ``merge=n`` builds from the n parts instead of embedding."""
    from csi.embed import embed_stream
    from csi.modeldir import open_model

    t0 = time.time()
    params = {k: v for k, v in (params or {}).items() if v is not None}
    loaded = open_model(model_dir, checkpoint, device, load=merge is None)
    identity = loaded.identity()
    index = None
    if add:
        index = ChunkIndex.load(out_dir)
        check_model(index.model, identity, index.dim)
        hop_frames = int(index.model["hop_frames"])
        if hop_s is not None and loaded.card.seconds_to_frames(hop_s) != hop_frames:
            raise ConfigError(f"--hop_s {hop_s}: the index uses a hop of {hop_frames} frames "
                             f"({hop_frames / loaded.card.frontend.frames_per_s:g} s)")
        ignored = [k for k in BUILD_PARAMS if k in params] + (["type"] if kind and kind != index.kind else [])
        if ignored:
            log.warning("--add keeps the index's type and parameters (%s %s); ignoring %s", index.kind,
                        index.params.to_dict(), ", ".join(f"--{k}" for k in ignored))
        index.set_search_params(params.get("nprobe"), params.get("ef_search"))
        known = [r for r in records if r["utt"] in index]
        if known:
            log.info("%d recordings already in the index are skipped", len(known))
        records = [r for r in records if r["utt"] not in index]
        policy = loaded.card.chunking(hop_s=hop_frames / loaded.card.frontend.frames_per_s)
    else:
        policy = loaded.card.chunking(hop_s=hop_s)
        if (out_dir / "index.json").exists():
            log.info("replacing the index in %s", out_dir)
    identity["hop_frames"] = policy.hop_frames
    failures: dict[int, str] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    header = {"model": identity, "hop_frames": policy.hop_frames, "manifest": shards.manifest_digest(records)}
    dim = loaded.card.embed_dim
    if shard is not None:
        k, n = shard
        positions = shards.shard_records(len(records), k, n)
        mine = [records[i] for i in positions]
        stream = embed_stream(loaded.model, mine, policy, loaded.reader(), batch_size, loaded.device, failures,
                              progress=progress)
        path, rows = shards.write_part(out_dir, k, n, header, ((emb, positions[owner]) for emb, owner, _ in stream),
                                       lambda: {int(positions[i]): r for i, r in failures.items()})
        log.info("%s: shard %d/%d: %d records, %d chunks, %d unusable", path, k, n, len(mine), rows, len(failures))
        return BuildResult(None, 0, rows, sorted((int(positions[i]), r) for i, r in failures.items()), records,
                           time.time() - t0)
    if merge is not None:
        source = shards.merged_parts(out_dir, merge, header, dim, len(records))
    else:
        stream = embed_stream(loaded.model, records, policy, loaded.reader(), batch_size, loaded.device, failures,
                              progress=progress)
        source = spilled(stream, out_dir / f".chunks.{os.getpid()}.f32", dim)
    with source as (vectors, owners, found_failures):
        failures.update(found_failures)
        if index is not None:
            added = index.add_streaming(vectors, owners, records)
        elif len(vectors):
            index = ChunkIndex.build_streaming(vectors, owners, records, kind=kind or "flat", model=identity, **params)
            added = len(index)
        else:
            added = 0
        chunks = len(vectors)
    if index is not None and (added or not add):
        index.save(out_dir)
    return BuildResult(index, added, chunks, sorted(failures.items()), records, time.time() - t0)


@contextlib.contextmanager
def spilled(stream: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path, dim: int):
    """Write the embedding blocks of ``stream`` to ``path`` as they come and yield them as a
    :class:`VectorFile` with their owners (and no failures: the stream reports its own); the
    file is removed afterwards. The chunk
    embeddings of a collection never sit in memory at once."""
    owners: list[np.ndarray] = []
    try:
        with open(path, "wb") as f:
            for emb, owner, _ in stream:
                VectorFile.append(f, emb)
                owners.append(owner)
        yield VectorFile(path, dim), (np.concatenate(owners) if owners else np.zeros(0, np.int64)), {}
    finally:
        path.unlink(missing_ok=True)
