"""The music21 corpus files that demo *sources* name (``bach/bwv1.6.mxl``,
``essenFolksong/altdeu10.abc:12``): where the corpus is, reading its text files, splitting
ABC files into tunes, and picking the SATB parts of a chorale.

Shared by :mod:`synthcovers.corpus` (discovery, from the files as text) and
:mod:`synthcovers.extract` (music21 parses); it imports neither, so neither imports the other
to get these.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

_SATB = ("soprano", "alto", "tenor", "bass")


def corpus_root() -> Path:
    """The ``corpus`` directory of the installed music21 (ImportError if it is missing)."""
    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("music21 is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "corpus"


def read_text(path: Path) -> str:
    """A corpus text file: UTF-8, else Latin-1 (some ABC collections)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def abc_tunes(text: str) -> list[str]:
    """The tunes of an ABC file, each from its ``X:`` line to the next."""
    return [b for b in re.split(r"\n(?=X:)", "\n" + text.replace("\r\n", "\n")) if b.startswith("X:")]


def satb_parts(parts: list) -> list:
    """The soprano, alto, tenor and bass parts of ``(name, part)`` pairs by name (first
    match each), else all parts."""
    found = []
    for voice in _SATB:
        match = next((p for p in parts if p[0].strip().lower().startswith(voice)), None)
        if match is not None:
            found.append(match)
    return found if len(found) == 4 else parts
