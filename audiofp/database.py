"""The fingerprint database: every reference recording's 1-s fingerprints every ``hop_s``
(0.5 s) in a faiss index (csi.index.ChunkIndex: IVF-PQ by default with the seed system's
``m = 32`` sub-quantisers and ``nlist = 256`` lists, more lists for larger collections as
csi.index.params chooses), with the fingerprinter's identity (checkpoint hash, front end),
so a database is refused for another model, and the map from vector ids to (recording,
time) written beside it as ``<name>.json``.

Fingerprint files (``tools.generate_fingerprints``): ``FP_DIR/<n>.npy`` (segments, dim)
per recording and ``FP_DIR/fingerprints.jsonl`` with ``{"recording", "file", "count",
"duration_s"}`` a line and a header ``{"model": identity, "hop_s": h}``. Shard jobs
(``--shard K/N``: every N-th recording) write the same files in ``FP_DIR/shards/part-K-of-N/``
with the shard and a digest of the whole recording list in the header; ``merge_parts``
joins them into ``FP_DIR/fingerprints.jsonl`` (recordings in id order, as one job writes
them), refusing a missing part, one of another recording list or hop, or one made by
another fingerprinter.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from csi.index import ChunkIndex, auto_params
from csi.index.identity import ModelMismatchError
from csi.utils import atomic_write, atomic_write_text

if TYPE_CHECKING:
    from audiofp.inference import LoadedFingerprinter

FP_LIST = "fingerprints.jsonl"
SEED_M, SEED_NLIST = 32, 256
AUTO_ABOVE = 100_000


def write_fingerprints(out_dir: str | os.PathLike, identity: dict[str, Any], hop_s: float,
                       items: Iterable[tuple[str, np.ndarray, float]], **header: Any) -> int:
    """Write ``(recording, fingerprints, duration_s)`` items (``header``: more header keys);
    returns how many were written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"model": identity, "hop_s": hop_s, **header})]
    for n, (recording, fp, duration) in enumerate(items):
        name = f"{n:06d}.npy"
        atomic_write(out_dir / name, lambda f: np.save(f, fp.astype(np.float32)))
        lines.append(json.dumps({"recording": recording, "file": name, "count": len(fp),
                                 "duration_s": round(duration, 3)}, ensure_ascii=False))
    atomic_write_text(out_dir / FP_LIST, "\n".join(lines) + "\n")
    return len(lines) - 1


def read_fingerprints(fp_dir: str | os.PathLike) -> tuple[dict, float, list[dict], np.ndarray, np.ndarray]:
    """``(identity, hop_s, recordings, vectors, owner)`` of a fingerprint directory."""
    fp_dir = Path(fp_dir)
    path = fp_dir / FP_LIST
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path} (tools.generate_fingerprints writes it)")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    header, recordings = lines[0], lines[1:]
    vectors = [np.load(fp_dir / r["file"]) for r in recordings]
    owner = np.concatenate([np.full(len(v), i) for i, v in enumerate(vectors)]) if vectors else np.zeros(0, int)
    stacked = np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32)
    return header["model"], float(header["hop_s"]), recordings, stacked, owner


def part_dir(fp_dir: str | os.PathLike, k: int, n: int) -> Path:
    return Path(fp_dir) / "shards" / f"part-{k}-of-{n}"


def recordings_digest(recordings: list[tuple[str, str]]) -> str:
    """What the parts of one fingerprint directory share: the whole recording list."""
    return hashlib.sha256("\n".join(f"{r}\t{p}" for r, p in recordings).encode("utf-8")).hexdigest()[:16]


def merge_parts(fp_dir: str | os.PathLike, n: int, identity: dict[str, Any], hop_s: float, digest: str) -> int:
    """Join the ``n`` parts of ``fp_dir/shards`` into ``fp_dir/fingerprints.jsonl`` and
    ``skipped.txt``; returns the number of recordings. Every bad part is named."""
    fp_dir = Path(fp_dir)
    lines, skipped, problems, other = [], [], [], []
    for k in range(1, n + 1):
        part = part_dir(fp_dir, k, n)
        if not (part / FP_LIST).is_file():
            problems.append(f"shard {k}/{n}: not finished ({part}/{FP_LIST} missing)")
            continue
        head, *rows = [json.loads(x) for x in (part / FP_LIST).read_text(encoding="utf-8").splitlines() if x.strip()]
        theirs = head.get("model", {})
        if theirs.get("checkpoint_sha256") != identity.get("checkpoint_sha256") or theirs.get("mel") != identity.get("mel"):
            other.append(f"shard {k}/{n} ({part}): made by another fingerprinter ({theirs.get('model_dir')}, "
                         f"sha256 {str(theirs.get('checkpoint_sha256'))[:12]})")
            continue
        for key, mine, what in (("hop_s", hop_s, "another hop"), ("recordings", digest, "another recording list"),
                                ("shard", [k, n], "another shard")):
            if head.get(key) != mine:
                problems.append(f"shard {k}/{n} ({part}): made with {what} ({head.get(key)} vs {mine})")
        lines += [dict(r, file=f"{part.relative_to(fp_dir)}/{r['file']}") for r in rows]
        if (part / "skipped.txt").is_file():
            skipped += (part / "skipped.txt").read_text(encoding="utf-8").splitlines()
    if other:
        raise ModelMismatchError(f"cannot merge the fingerprints of {fp_dir}: " + "; ".join(other)
                                 + " — fingerprint those shards again with this model")
    if problems:
        raise ValueError(f"cannot merge the fingerprints of {fp_dir}: " + "; ".join(problems))
    lines.sort(key=lambda r: r["recording"])
    header = json.dumps({"model": identity, "hop_s": hop_s})
    atomic_write_text(fp_dir / "skipped.txt", "".join(line + "\n" for line in sorted(skipped)))
    atomic_write_text(fp_dir / FP_LIST, "\n".join([header, *(json.dumps(r, ensure_ascii=False) for r in lines)]) + "\n")
    return len(lines)


def fingerprint_params(n: int, dim: int, kind: str = "ivfpq", m: int | None = None, nlist: int | None = None,
                       nprobe: int | None = None) -> dict[str, int]:
    """The seed's IVF-PQ parameters (m 32, nlist 256; fewer lists when there are fewer than
    39 training vectors a list) up to ``AUTO_ABOVE`` vectors, the automatic lists of
    csi.index.params above; nprobe a sixteenth of the lists (at least 16): recall matters
    more than speed for short noisy queries."""
    if kind != "ivfpq":
        return {}
    nlist = nlist or (max(1, min(SEED_NLIST, n // 39)) if n <= AUTO_ABOVE else auto_params("ivfpq", n, dim).nlist)
    return {"m": m or min(SEED_M, dim), "nlist": nlist, "nprobe": nprobe or min(nlist, max(16, nlist // 16))}


def build_database(fp_dir: str | os.PathLike, out_dir: str | os.PathLike, name: str, kind: str = "ivfpq",
                   m: int | None = None, dim: int | None = None, nlist: int | None = None,
                   nprobe: int | None = None) -> ChunkIndex:
    identity, hop_s, recordings, vectors, owner = read_fingerprints(fp_dir)
    if not len(vectors):
        raise ValueError(f"{fp_dir}: no fingerprints (every recording shorter than one segment?)")
    if dim is not None and dim != vectors.shape[1]:
        raise ValueError(f"-d {dim}: the fingerprints are {vectors.shape[1]}-d")
    params = fingerprint_params(len(vectors), vectors.shape[1], kind, m, nlist, nprobe)
    records = [{"utt": r["recording"], "song": r["recording"]} for r in recordings]
    index = ChunkIndex.build(vectors, owner, records, kind=kind, model={**identity, "hop_s": hop_s}, **params)
    out_dir = Path(out_dir)
    index.save(out_dir)
    ids = [[r["utt"], round(j * hop_s, 3)] for r in index.recordings for j in range(r["count"])]
    atomic_write_text(out_dir / f"{name}.json", json.dumps({"hop_s": hop_s, "ids": ids}, ensure_ascii=False) + "\n")
    return index


def open_with_model(db_dir: str | os.PathLike, model_dir: str | os.PathLike | None = None,
                    device: str = "cpu") -> tuple["LoadedFingerprinter", ChunkIndex]:
    """The fingerprinter recorded in ``db_dir``'s index.json (or ``model_dir``) and the
    database, refused (ModelMismatchError) if another fingerprinter built it."""
    from audiofp.inference import load_fingerprinter
    from csi.index import read_info

    loaded = load_fingerprinter(model_dir or Path(read_info(db_dir)["model"]["model_dir"]), device)
    return loaded, open_database(db_dir, loaded.identity)


def open_database(db_dir: str | os.PathLike, identity: dict[str, Any]) -> ChunkIndex:
    """The database of ``db_dir``; ModelMismatchError if another fingerprinter made it."""
    index = ChunkIndex.load(db_dir)
    theirs, mine = index.model.get("checkpoint_sha256"), identity.get("checkpoint_sha256")
    if theirs != mine or index.model.get("mel") != identity.get("mel"):
        raise ModelMismatchError(f"{db_dir}: built with another fingerprinter ({index.model.get('model_dir')}, "
                                 f"checkpoint sha256 {str(theirs)[:12]}); this model is {identity.get('model_dir')} "
                                 f"({str(mine)[:12]}): rebuild the database with it")
    return index
