"""The embedding cache of stage 6: chunk embeddings of each track, reused while the model,
its front end, the chunking and the track's source file are unchanged."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

CACHE_VERSION = 2


class CacheError(RuntimeError):
    """A cache directory whose key does not match its name."""


def source_of(rec: dict) -> dict[str, Any]:
    """What the embeddings of a record are computed from: the feature file, else the audio
    file, with its size and modification time (a changed file is embedded again)."""
    kind = "feat" if rec.get("feat") else "wav" if rec.get("wav") else None
    if kind is None:
        return {"kind": None}
    path = str(rec[kind])
    try:
        st = os.stat(path)
        return {"kind": kind, "path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except OSError:
        return {"kind": kind, "path": path, "size": None, "mtime_ns": None}


def cache_key(model_identity: dict[str, Any], policy: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The cache directory name and what it hashes: checkpoint content, the model card
    (front end included) and the chunking."""
    ingredients = {"version": CACHE_VERSION, "checkpoint_sha256": model_identity["checkpoint_sha256"],
                   "frontend": model_identity["frontend"], "input_dim": model_identity["input_dim"],
                   "chunking": policy}
    digest = hashlib.sha256(json.dumps(ingredients, sort_keys=True).encode()).hexdigest()[:16]
    return digest, ingredients


class EmbeddingCache:
    """``chunks.npy`` (chunks, dim) float32 + ``index.jsonl`` (utt, source, first, last) in a
    directory named by the cache key."""

    def __init__(self, directory: Path, ingredients: dict[str, Any]):
        self.dir = directory
        self.ingredients = ingredients
        self.emb = np.zeros((0, 0), dtype=np.float32)
        self.index: dict[str, dict[str, Any]] = {}
        key_file = directory / "key.json"
        if key_file.is_file() and (directory / "chunks.npy").is_file() and (directory / "index.jsonl").is_file():
            if json.loads(key_file.read_text(encoding="utf-8")) != ingredients:
                raise CacheError(f"{directory}: embedding cache made with other settings (key.json differs)")
            self.emb = np.load(directory / "chunks.npy")
            with open(directory / "index.jsonl", encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        entry = json.loads(line)
                        self.index[entry["utt"]] = entry

    def lookup(self, utt: str, source: dict[str, Any]) -> np.ndarray | None:
        entry = self.index.get(utt)
        if entry is None or entry["source"] != source or source.get("size") is None:
            return None
        return self.emb[entry["first"]:entry["last"] + 1]

    def others(self, utts: set[str]) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
        """Cached tracks not in ``utts`` (kept when the cache is rewritten)."""
        return {u: (e["source"], self.emb[e["first"]:e["last"] + 1]) for u, e in self.index.items() if u not in utts}

    def save(self, tracks: dict[str, tuple[dict[str, Any], np.ndarray]]) -> None:
        """Rewrite the cache with ``tracks`` (utt -> (source, chunk embeddings)), atomically."""
        from csi.io.manifest import atomic_write_text

        self.dir.mkdir(parents=True, exist_ok=True)
        mats, lines, at = [], [], 0
        for utt, (source, emb) in tracks.items():
            mats.append(emb)
            lines.append(json.dumps({"utt": utt, "source": source, "first": at, "last": at + len(emb) - 1}))
            at += len(emb)
        dim = mats[0].shape[1] if mats else 0
        matrix = np.concatenate(mats).astype(np.float32, copy=False) if mats else np.zeros((0, dim), np.float32)
        tmp = self.dir / ".chunks.npy.tmp"
        with open(tmp, "wb") as f:
            np.save(f, matrix)
        os.replace(tmp, self.dir / "chunks.npy")
        atomic_write_text(self.dir / "index.jsonl", "".join(line + "\n" for line in lines))
        atomic_write_text(self.dir / "key.json", json.dumps(self.ingredients, indent=1) + "\n")
