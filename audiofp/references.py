"""Reference recordings for fingerprinting: every audio file under a folder (recursively;
the recording id is its path relative to the folder, without extension) or the ``wav``
records of a manifest (the id is the record's ``utt``)."""
from __future__ import annotations

import os
from pathlib import Path

from csi.io.tree import AUDIO_EXTENSIONS


def list_recordings(source: str | os.PathLike) -> list[tuple[str, str]]:
    """``[(recording id, audio path)]`` sorted by id; ValueError naming ``source`` if empty."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        out = [(str(p.relative_to(source).with_suffix("")), str(p)) for p in files]
    elif source.is_file():
        from csi.io.manifest import read_manifest

        out = sorted((str(r["utt"]), str(r["wav"])) for r in read_manifest(source, required=("utt", "wav")))
    else:
        raise FileNotFoundError(f"file not found: {source}")
    if not out:
        raise ValueError(f"{source}: no audio file ({', '.join(AUDIO_EXTENSIONS)})")
    return out
