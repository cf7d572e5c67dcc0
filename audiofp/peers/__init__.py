"""Other projects' fingerprinters as peers on the fingerprint bench (``tools.eval_fingerprint
--peer NAME``): each is one adapter module whose class has the interface of
``audiofp.landmark.LandmarkIndex`` -- ``add(recording, audio)``, ``identify(snippet, topk)``
giving ``[{"recording", "offset_s", "score"}]`` and ``size_bytes()`` -- plus ``describe()`` (its
parameters) and ``save(path)`` (its own database file). The peer gets the bench's reference and
query audio in memory, so it answers exactly the queries the other systems answer.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from csi.cli import ToolError

# name -> (adapter module, class, the Python package it runs)
PEERS: dict[str, tuple[str, str, str]] = {
    "audfprint": ("audiofp.peers.audfprint", "AudfprintPeer", "audfprint2"),
}


class PeerUnavailableError(ToolError):
    """The package a peer runs is not installed."""


def require_package(peer: str, package: str) -> Any:
    """Import ``package`` for ``peer``, or PeerUnavailableError naming the package to install."""
    try:
        return importlib.import_module(package)
    except ImportError as e:
        raise PeerUnavailableError(f"peer {peer!r} needs the Python package {package!r}, which is not "
                                   f"installed ({e}): pip install {package}") from None


def check_peer(name: str) -> None:
    """ValueError for an unknown peer, PeerUnavailableError when its package is missing."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(sorted(PEERS))}")
    require_package(name, PEERS[name][2])


def build_peer(name: str, sr: int) -> Any:
    """An empty peer index for audio at ``sr`` Hz (errors as ``check_peer``)."""
    check_peer(name)
    module, cls, _package = PEERS[name]
    return getattr(importlib.import_module(module), cls)(sr)


def evaluate_peer(peer: Any, references: list, queries: list[dict], seconds: float, out_dir: Path) -> dict:
    """The peer's database built from ``references`` and scored on ``queries`` (the fields of
    audiofp.evaluate.build_and_score), its database file written to ``out_dir`` and its size per
    reference audio-second, and its parameters."""
    from audiofp.evaluate import build_and_score

    result = build_and_score(peer, references, queries, seconds)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = peer.save(out_dir / f"{peer.name}_db")
    result.update(database_file=path.name, file_bytes_per_audio_s=round(path.stat().st_size / seconds, 1),
                  params=peer.describe())
    return result
