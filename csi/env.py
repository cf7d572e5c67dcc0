"""Run records: every tool writes the resolved config and its environment beside its outputs."""
from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import socket
import sys
from typing import Any

import yaml

from csi.io.manifest import atomic_write_text

_PACKAGES = ("torch", "numpy", "scipy", "soundfile", "soxr", "nnAudio", "faiss-cpu", "music21", "pretty_midi",
             "tinysoundfont")


def environment() -> dict[str, Any]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "cwd": os.getcwd(),
        "host": socket.gethostname(),
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
    }


def write_run_info(path: str | os.PathLike, config: Any, **extra: Any) -> None:
    """Write ``{config, environment, **extra}`` as YAML to ``path`` (atomically)."""
    doc = {"config": config, **extra, "environment": environment()}
    atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
