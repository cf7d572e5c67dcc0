"""Small helpers every part of the toolkit shares: atomic writes, file hashing, device choice."""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

SILENCE_PEAK = 1e-4  # -80 dBFS: audio whose peak is below this is "silent" (stage 2 and queries)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary name and ``os.replace``: a reader sees
    the old file or the whole new one, never a part."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(binary file)`` on a temporary file beside ``path``, flush it to disk and
    rename it to ``path`` (``np.save``, ``torch.save``, ``np.savez`` take the file object);
    on any error the temporary file is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
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


_DEVICE_NAME = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_name(name: str) -> str:
    """``name`` if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, else a ConfigError (no torch)."""
    from csi.registry import ConfigError

    if not isinstance(name, str) or not _DEVICE_NAME.match(name):
        raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}")
    return name


def resolve_device(name: "str | object | None" = "auto"):
    """The ``torch.device`` for ``name``: ``auto``/None → ``cuda`` when available, else ``cpu``;
    ``cpu``, ``cuda``, ``cuda:N`` as given. A bad spelling or a CUDA device this machine does
    not have is a ConfigError naming it."""
    import torch

    from csi.registry import ConfigError

    name = check_device_name("auto" if name is None else str(name))
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device {name}: this machine has {count} CUDA device(s)")
    return device
