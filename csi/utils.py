"""Small helpers every part of the toolkit shares: atomic writes, file hashing, device choice."""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

SILENCE_PEAK = 1e-4  # -80 dBFS: audio whose peak is below this is "silent" (stage 2 and queries)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary name and ``os.replace``: a reader sees
    the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def file_sha256(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_device(name: "str | object | None" = "auto"):
    """``auto``/None → ``cuda`` when available, else ``cpu``; any other name (``cpu``,
    ``cuda``, ``cuda:1``) as given. A CUDA device on a machine without CUDA is a ValueError."""
    import torch

    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(str(name))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name}: CUDA is not available on this machine")
    return device
