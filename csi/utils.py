"""Small helpers every part of the toolkit shares: atomic writes, file hashing, device choice."""
from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Callable

from tqdm import tqdm

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



LOG_PROGRESS_EVERY_S = 30.0   # a progress line this often when the output is a file, not a terminal


class _LineProgress:
    """A progress display for log files: tqdm's status line, written as a whole line at most
    every ``mininterval`` seconds and once at the end (no ``\r`` frames). Iterates, and takes
    ``update``/``close`` and ``with``, like the tqdm bars the code uses."""

    def __init__(self, iterable=None, total=None, desc="", unit="it", unit_scale=False, mininterval=30.0,
                 file=None, **_ignored):
        self.iterable, self.desc, self.unit, self.unit_scale = iterable, desc or "", unit, unit_scale
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.fp, self.mininterval = file, mininterval
        self.n, self.start = 0, time.monotonic()
        self._last_write, self._shown, self._closed = self.start, None, False

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        if time.monotonic() - self._last_write >= self.mininterval:
            self._write()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._write()

    def _write(self) -> None:
        self._last_write = time.monotonic()
        if self.n == self._shown:
            return
        self._shown = self.n
        self.fp.write(tqdm.format_meter(self.n, self.total, self._last_write - self.start, ncols=100,
                                        prefix=self.desc, unit=self.unit, unit_scale=self.unit_scale, ascii=True) + "\n")
        self.fp.flush()


def progress_bar(iterable=None, **kwargs):
    """A tqdm progress bar on a terminal; written to a file (a recipe's log), one whole line
    at most every ``LOG_PROGRESS_EVERY_S`` seconds instead of carriage-return frames. Takes
    tqdm's arguments (``disable``, ``total``, ``desc``, ``unit``, ``file``, ...)."""
    stream = kwargs.pop("file", None) or sys.stderr
    if kwargs.get("disable") or _is_terminal(stream):
        return tqdm(iterable, file=stream, **kwargs)
    kwargs.update(mininterval=max(float(kwargs.get("mininterval", 0)), LOG_PROGRESS_EVERY_S), ncols=100)
    return _LineProgress(iterable, file=stream, **kwargs)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
