"""Manifests from audio trees laid out as ``<root>/<work>/<performance>.<ext>``.

This is the covers80 layout (``covers32k/<work>/<performance>.mp3``) and a common way to
store private collections. Unreadable or empty files are reported, never fatal.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from csi.utils import progress_bar

from csi.io.audio import AudioError, probe_many
from csi.io.manifest import Record, atomic_write_text

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")

_UNSAFE = re.compile(r"[^A-Za-z0-9._+\-]+")


def safe_name(text: str) -> str:
    """A file-system and utt-safe form of ``text`` (runs of other characters become ``_``)."""
    return _UNSAFE.sub("_", text).strip("_") or "_"


def scan_work_tree(root: str | os.PathLike, extensions: Iterable[str] = AUDIO_EXTENSIONS,
                   utt_prefix: str = "", progress: bool = True) -> tuple[list[Record], list[tuple[str, str]]]:
    """Build manifest records for every audio file two levels below ``root``.

    Returns ``(records, bad)``; ``bad`` lists ``(path, reason)`` for files that cannot be
    read or hold no audio. Records are sorted by work, then performance; ``utt`` is
    ``<prefix><work>-<performance>``, ``dur_s`` comes from the file header.
    """
    root = Path(root)
    exts = {e.lower() for e in extensions}
    files = sorted(p for p in root.glob("*/*") if p.is_file() and p.suffix.lower() in exts)
    records: list[Record] = []
    bad: list[tuple[str, str]] = []
    bar = progress_bar(total=len(files), desc=f"scan {root.name}", unit="file", disable=not progress)
    for path, info in zip(files, probe_many(files, progress=lambda: bar.update(1))):
        if isinstance(info, AudioError):
            bad.append((str(path), str(info)))
            continue
        work, performance = path.parent.name, path.stem
        records.append({
            "utt": f"{utt_prefix}{safe_name(work)}-{safe_name(performance)}",
            "wav": str(path),
            "dur_s": round(info.duration, 3),
            "song": work,
            "version": performance,
        })
    bar.close()
    return records, bad


def write_bad_list(path: str | os.PathLike, bad: list[tuple[str, str]]) -> None:
    """Write ``path<TAB>reason`` lines (an empty file when nothing was bad)."""
    atomic_write_text(path, "".join(f"{p}\t{reason}\n" for p, reason in bad))
