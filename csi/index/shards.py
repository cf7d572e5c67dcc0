"""Embedding shards of an index build: ``tools.build_index --shard K/N`` embeds every N-th
record of the manifest (records K-1, K-1+N, ...) into ``OUT_DIR/shards/part-K-of-N/`` and
``--merge N`` builds the index from the N parts (Kaldi-style job arrays, ``python3 -m jobs``).

A part is a directory written under a temporary name and renamed when complete:
``vectors.f32`` (the shard's L2-normalised chunk embeddings, record by record, float32 rows),
``owners.npy`` (each row's position in the whole manifest) and ``part.json`` (the model's
identity, the chunk hop, a digest of the manifest's ids, the shard, its unusable records).
The merge refuses a missing part, a part of another manifest or chunking, and a part
embedded by another model (ModelMismatchError, saying which part and how it differs);
it copies the parts' rows into one file in manifest order, so the index equals the one a
single ``tools.build_index`` builds, and memory holds one record's rows at a time.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from csi.index.identity import ModelMismatchError, check_model
from csi.index.store import IndexFileError
from csi.index.vectors import VectorFile

PART_FILE = "part.json"


def part_dir(out_dir: Path, k: int, n: int) -> Path:
    return Path(out_dir) / "shards" / f"part-{k}-of-{n}"


def shard_records(n_records: int, k: int, n: int) -> np.ndarray:
    """Positions in the manifest of shard ``k`` of ``n`` (1-based k): every n-th record."""
    return np.arange(k - 1, n_records, n)


def manifest_digest(records: Sequence[dict[str, Any]]) -> str:
    """What the parts of one build share: the manifest's ids and works, in order."""
    text = "\n".join(f"{r['utt']}\t{r['song']}" for r in records)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def write_part(out_dir: Path, k: int, n: int, header: dict[str, Any],
               blocks: Iterable[tuple[np.ndarray, np.ndarray]],
               failed: Callable[[], dict[int, str]]) -> tuple[Path, int]:
    """Write part ``k`` of ``n`` from ``(embeddings, manifest positions)`` blocks (record by
    record); ``failed()`` (manifest position → reason) is asked once ``blocks`` is spent.
    Returns the part's directory and its number of rows."""
    final = part_dir(out_dir, k, n)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    owners = []
    with open(tmp / "vectors.f32", "wb") as f:
        for emb, owner in blocks:
            VectorFile.append(f, emb)
            owners.append(np.asarray(owner, np.int64))
    owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
    np.save(tmp / "owners.npy", owner)
    info = {**header, "shard": [k, n], "rows": int(len(owner)),
            "failed": [[int(i), reason] for i, reason in sorted(failed().items())]}
    (tmp / PART_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final, len(owner)


def check_parts(out_dir: Path, n: int, header: dict[str, Any], dim: int) -> list[dict[str, Any]]:
    """The ``part.json`` of the ``n`` parts, each checked against the merge's ``header``
    (model identity, hop, manifest digest); every problem is named, parts by number."""
    infos, problems, other_model = [], [], []
    for k in range(1, n + 1):
        path = part_dir(out_dir, k, n)
        if not (path / PART_FILE).is_file():
            problems.append(f"shard {k}/{n}: not finished ({path}/{PART_FILE} missing)")
            continue
        info = json.loads((path / PART_FILE).read_text(encoding="utf-8"))
        try:
            check_model(info.get("model", {}), header["model"], dim if info.get("rows") else None)
        except ModelMismatchError as e:
            other_model.append(f"shard {k}/{n} ({path}): {e}")
            continue
        for key, what in (("manifest", "another manifest"), ("hop_frames", "another chunk hop")):
            if info.get(key) != header[key]:
                problems.append(f"shard {k}/{n} ({path}): made from {what} ({info.get(key)} vs {header[key]})")
        if info.get("shard") != [k, n]:
            problems.append(f"shard {k}/{n} ({path}): its part.json says shard {info.get('shard')}")
        infos.append(info)
    if other_model:
        raise ModelMismatchError(f"cannot merge the index shards of {out_dir}: " + "; ".join(other_model)
                                 + " — embed those shards again with this model")
    if problems:
        raise IndexFileError(f"cannot merge the index shards of {out_dir}: " + "; ".join(problems))
    return infos


@contextlib.contextmanager
def merged_parts(out_dir: Path, n: int, header: dict[str, Any], dim: int,
                 n_records: int) -> Iterator[tuple[VectorFile, np.ndarray, dict[int, str]]]:
    """The ``n`` checked parts as one :class:`VectorFile` in manifest order (a temporary
    file, removed afterwards), its owners (manifest positions) and the unusable records."""
    infos = check_parts(out_dir, n, header, dim)
    failed = {int(i): reason for info in infos for i, reason in info["failed"]}
    parts = []
    for k in range(1, n + 1):
        path = part_dir(out_dir, k, n)
        owner = np.load(path / "owners.npy")
        parts.append((VectorFile(path / "vectors.f32", dim), owner))
    # rows of each record in its part: (part, first row, count), looked up by manifest position
    where: dict[int, tuple[int, int, int]] = {}
    for p, (_, owner) in enumerate(parts):
        present, first, counts = np.unique(owner, return_index=True, return_counts=True)
        for rec, f, c in zip(present.tolist(), first.tolist(), counts.tolist()):
            where[rec] = (p, f, c)
    merged = Path(out_dir) / f".chunks.merged.{os.getpid()}.f32"
    owners = []
    try:
        with open(merged, "wb") as f:
            for rec in range(n_records):
                if rec in where:
                    p, first, count = where[rec]
                    VectorFile.append(f, parts[p][0][first:first + count])
                    owners.append(np.full(count, rec, np.int64))
        yield VectorFile(merged, dim), (np.concatenate(owners) if owners else np.zeros(0, np.int64)), failed
    finally:
        merged.unlink(missing_ok=True)
