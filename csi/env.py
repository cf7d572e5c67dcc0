"""Run records: every tool writes the resolved config and its environment beside its outputs.

``write_run_info(path, config, **extra)`` writes ``{config, **extra, environment}``: the
values actually used (defaults filled, overrides applied; dataclasses, paths and tuples
become plain YAML), then the command line, host, time, versions and the csi source commit.
"""
from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
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
        "command": " ".join([os.path.basename(sys.executable), *_command_line()]),
        "cwd": os.getcwd(),
        "host": socket.gethostname(),
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        **_source(),
    }


def _command_line() -> list[str]:
    """``sys.argv`` as typed: ``-m tools.train EXP`` rather than ``/path/tools/train.py EXP``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = getattr(spec, "name", None)
    if name and name != "__main__" and sys.argv and sys.argv[0].endswith(".py"):
        return ["-m", name.removesuffix(".__main__"), *sys.argv[1:]]
    return list(sys.argv)


def _source() -> dict[str, Any]:
    """``csi_commit`` (and ``csi_dirty``: uncommitted changes) of the csi checkout, if it is one."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return {}
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
                                 "csi", "tools"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"csi_commit": commit, "csi_dirty": bool(status.strip())} if commit else {}


def plain(obj: Any) -> Any:
    """``obj`` as plain YAML data: dataclasses as dicts, paths as strings, tuples as lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (set, frozenset)):
        obj = sorted(obj, key=str)
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def write_run_info(path: str | os.PathLike, config: Any, **extra: Any) -> None:
    """Write ``{config, **extra, environment}`` as YAML to ``path`` (atomically)."""
    doc = plain({"config": config, **extra, "environment": environment()})
    atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
