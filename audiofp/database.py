"""The fingerprint database: every reference recording's 1-s fingerprints every ``hop_s``
(0.5 s) in a faiss index (csi.index.ChunkIndex: IVF-PQ by default with the seed system's
``m = 32`` sub-quantisers and ``nlist = 256`` lists, more lists for larger collections as
csi.index.params chooses), with the fingerprinter's identity (checkpoint hash, front end),
so a database is refused for another model, and the map from vector ids to (recording,
time) written beside it as ``<name>.json``.

Fingerprint files (``tools.generate_fingerprints``): ``FP_DIR/<n>.npy`` (segments, dim)
per recording and ``FP_DIR/fingerprints.jsonl`` with ``{"recording", "file", "count",
"duration_s"}`` a line and a header ``{"model": identity, "hop_s": h}``.
"""
from __future__ import annotations

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
                       items: Iterable[tuple[str, np.ndarray, float]]) -> int:
    """Write ``(recording, fingerprints, duration_s)`` items; returns how many were written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"model": identity, "hop_s": hop_s})]
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
