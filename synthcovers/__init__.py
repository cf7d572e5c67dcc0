"""Offline demo corpus: cover sets of real works from the music21 corpus rendered to audio.

``python -m tools.make_synth_covers --out DIR --works N --seed S`` is the entry point;
:func:`synthcovers.synth.make_synth_covers` does the work.
"""
from __future__ import annotations

import importlib.util

INSTALL_HINT = "run `bash utils/install.sh` to install the demo extras (music21, pretty_midi, tinysoundfont)"


class DemoDependencyError(ImportError):
    """An optional package of the demo corpus is missing."""


def check_dependencies() -> None:
    """Raise DemoDependencyError naming the missing packages and how to install them."""
    missing = [m for m in ("music21", "pretty_midi", "tinysoundfont") if importlib.util.find_spec(m) is None]
    if missing:
        raise DemoDependencyError(f"missing package(s) {', '.join(missing)}: {INSTALL_HINT}")
