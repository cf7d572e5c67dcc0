"""The feature store: one ``.npy`` file per utterance, written atomically, with a
fingerprint of the config that made it.

Files live in ``<root>/<xx>/<utt>.cqt.npy`` (``xx``: two hex digits of a hash of the utt,
so a 500k-file corpus does not sit in one directory). float16 halves the size of float32
at an error of at most 0.03 dB for values in [-128, 0] dB (float16 has 11 significant
bits: the spacing near 100 is 0.0625, so rounding is within 0.031), far below what a
CQT-based model resolves. ``<root>/fingerprint.json`` records the settings; a store made
with other settings is refused instead of silently reused.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from csi.io.manifest import atomic_write_text
from csi.io.tree import safe_name


class FeatureStoreError(RuntimeError):
    """A store that was made with other settings than the ones asked for."""


class NonFiniteFeatureError(ValueError):
    """A feature with NaN or Inf values (after conversion to the store's dtype), refused by
    :meth:`FeatureStore.save`: it would poison every batch it is drawn into."""


def stable_hash(text: str) -> int:
    """A 64-bit hash of ``text`` that is the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "little")


class FeatureStore:
    def __init__(self, root: str | os.PathLike, fingerprint: dict[str, Any], dtype: str = "float16"):
        self.root = Path(root)
        self.fingerprint = fingerprint
        self.dtype = np.dtype(dtype)

    def open(self, overwrite: bool = False, clean_temporaries: bool = True) -> "FeatureStore":
        """Create the store, or check that an existing one was made with the same settings.

        With ``overwrite``, a store made with other settings is emptied first. Temporary
        files left by an interrupted run (killed while writing a feature) are removed: call
        this before any writer starts, as the feature stage does; a shard job, which other
        jobs may be writing beside, passes ``clean_temporaries=False``.
        """
        marker = self.root / "fingerprint.json"
        old = json.loads(marker.read_text(encoding="utf-8")) if marker.exists() else None
        if old is not None and old != self.fingerprint:
            if not overwrite:
                changed = sorted(k for k in set(old) | set(self.fingerprint) if old.get(k) != self.fingerprint.get(k))
                details = "; ".join(f"{k}: {old.get(k)!r} -> {self.fingerprint.get(k)!r}" for k in changed)
                raise FeatureStoreError(
                    f"features in {self.root} were made with other settings ({details}); "
                    "remove that directory or pass --overwrite to recompute them")
            marker.unlink()
            for sub in self.root.iterdir():
                if sub.is_dir() and len(sub.name) == 2:
                    shutil.rmtree(sub)
        self.root.mkdir(parents=True, exist_ok=True)
        for tmp in self.root.glob("??/.*.tmp") if clean_temporaries else ():
            tmp.unlink(missing_ok=True)
        if old != self.fingerprint:
            atomic_write_text(marker, json.dumps(self.fingerprint, indent=1, sort_keys=True) + "\n")
        return self

    def path(self, utt: str) -> Path:
        return self.root / f"{stable_hash(utt) % 256:02x}" / f"{safe_name(utt)}.cqt.npy"

    def length(self, utt: str, source: str | None = None) -> int | None:
        """Frames in the stored feature of ``utt``, or None if it is missing, unreadable or,
        when ``source`` is given, was made from another source (another audio file, or the
        same file changed since: see :func:`source_signature`)."""
        path = self.path(utt)
        if source is not None:
            try:
                if path.with_suffix(".src").read_text(encoding="utf-8") != source:
                    return None
            except OSError:
                return None
        try:
            return int(np.load(path, mmap_mode="r").shape[0])
        except (OSError, ValueError, EOFError):  # EOFError: an empty file
            return None

    def save(self, utt: str, feat: np.ndarray, source: str | None = None) -> Path:
        """Write ``feat`` (frames, bins) through a temporary file and rename it into place;
        then record its ``source`` beside it (an interruption in between leaves a feature
        without its record, which :meth:`length` treats as missing).

        Raise NonFiniteFeatureError, storing nothing, if ``feat`` has NaN or Inf values in
        the store's dtype (float16 overflows beyond 65504)."""
        path = self.path(utt)
        with np.errstate(over="ignore"):  # an overflow becomes inf, refused just below
            data = np.ascontiguousarray(feat, dtype=self.dtype)
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            bad = data.size - int(np.count_nonzero(np.isfinite(data)))
            raise NonFiniteFeatureError(f"{utt}: non-finite feature values (NaN/Inf): {bad} of {data.size}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".src").unlink(missing_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.save(f, data)
                f.flush()
                os.fsync(f.fileno())  # on disk before the rename: a crash never leaves a torn .npy in place
            os.replace(tmp, path)
            if source is not None:
                atomic_write_text(path.with_suffix(".src"), source)
        finally:
            tmp.unlink(missing_ok=True)
        return path


def source_signature(wav: str | os.PathLike) -> str | None:
    """What a stored feature was made from: the audio file's absolute path, size and
    modification time (None when it cannot be read; extraction then reports the file)."""
    try:
        st = os.stat(wav)
    except OSError:
        return None
    return f"{os.path.abspath(wav)} {st.st_size} {st.st_mtime_ns}"


def load_feature(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    """Load a stored feature (memory-mapped by default)."""
    return np.load(path, mmap_mode="r" if mmap else None)
