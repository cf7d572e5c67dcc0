"""Audio decoding with soundfile and resampling with soxr (no torchaudio, no sox binary)."""
from __future__ import annotations

import os
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
    """Read the header of an audio file; raise AudioError if it is unreadable or empty."""
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError
        raise AudioError(f"unreadable: {_short(e)}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError("empty: no audio frames")
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))


def load(path: str | os.PathLike, sr: int | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` to mono float32 in [-1, 1], resampled to ``sr`` with soxr if given."""
    import soxr

    try:
        y, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"unreadable: {_short(e)}") from None
    if y.shape[0] == 0:
        raise AudioError("empty: no audio frames")
    y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
    if sr is not None and sr != file_sr:
        y = soxr.resample(y, file_sr, sr, quality="HQ").astype(np.float32, copy=False)
        file_sr = sr
    return np.ascontiguousarray(y), file_sr


def _short(e: Exception) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__
