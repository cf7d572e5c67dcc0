"""Audio decoding with soundfile and resampling with soxr (no torchaudio, no sox binary)."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass

import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class AudioInfo:
    samplerate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.samplerate if self.samplerate else 0.0


class AudioError(RuntimeError):
    """An audio file that cannot be used; the message says why."""


def probe(path: str | os.PathLike) -> AudioInfo:
    """Read the header of an audio file; raise AudioError if it is missing, unreadable or empty."""
    _check_file(path)
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError
        raise AudioError(f"unreadable: {_short(e)}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError("empty: no audio frames")
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))


def load(path: str | os.PathLike, sr: int | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` to mono float32 (in [-1, 1] for integer formats; float files are
    not clipped), resampled to ``sr`` with soxr if given.

    Raise AudioError if the file is missing, unreadable, empty, or holds a non-finite
    sample (NaN or Inf, possible in float formats such as 32-bit float WAV): such audio would
    only give NaN features downstream.
    """
    import soxr

    _check_file(path)
    try:
        y, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"unreadable: {_short(e)}") from None
    if y.shape[0] == 0:
        raise AudioError("empty: no audio frames")
    bad = y.size - int(np.count_nonzero(np.isfinite(y)))
    if bad:
        raise AudioError(f"non-finite samples (NaN/Inf) in the audio: {bad} of {y.size}")
    y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
    if sr is not None and sr != file_sr:
        y = soxr.resample(y, file_sr, sr, quality="HQ").astype(np.float32, copy=False)
        file_sr = sr
    if not np.isfinite(y).all():  # finite samples near the float32 limit can overflow here
        raise AudioError("non-finite samples (NaN/Inf) after downmix/resampling: sample values too large")
    return np.ascontiguousarray(y), file_sr


def _check_file(path: str | os.PathLike) -> None:
    """A clear reason for a path that is not a readable file (soundfile says "System error")."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise AudioError(f"file not found: {path}") from None
    except OSError as e:
        raise AudioError(f"unreadable: {path}: {e.strerror or _short(e)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(f"unreadable: {path} is a directory")
    if not os.access(path, os.R_OK):
        raise AudioError(f"unreadable: {path}: permission denied")


def _short(e: Exception) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__
