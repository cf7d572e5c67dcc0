"""Audio decoding with soundfile (PyAV for .mp4/.m4a/.webm) and resampling with soxr (no torchaudio, no sox binary)."""
from __future__ import annotations

import concurrent.futures
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import soundfile as sf

# containers soundfile cannot read (what YouTube serves: AAC in MP4, Opus in WebM); decoded by PyAV
AV_SUFFIXES = (".mp4", ".m4a", ".webm")


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


class DecoderUnavailable(RuntimeError):
    """The file needs PyAV and it is not installed. Not an AudioError: the file may be fine,
    so it is never counted as unreadable; the message names the file and ``pip install av``."""


def probe(path: str | os.PathLike) -> AudioInfo:
    """Read the header of an audio file; raise AudioError if it is missing, unreadable or empty
    (DecoderUnavailable for an .mp4/.m4a/.webm file without PyAV)."""
    _check_file(path)
    if _needs_av(path):
        return _av_probe(path)
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError
        raise AudioError(f"unreadable: {_short(e)}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError("empty: no audio frames")
    return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))


PROBE_THREADS = 16       # header reads in flight: they wait on the disk or the network file system


def probe_many(paths: Iterable[str | os.PathLike], threads: int = PROBE_THREADS,
               progress: Callable[[], None] | None = None) -> Iterator[AudioInfo | AudioError]:
    """:func:`probe` of every path, ``threads`` at a time, in the order given: the AudioInfo,
    or the AudioError of a file that cannot be used (DecoderUnavailable is raised). Stage 1
    reads ~340k headers on SHS100K; one at a time, each waits out the file system's latency.
    ``progress`` is called once a file."""
    def one(path):
        try:
            return probe(path)
        except AudioError as e:
            return e

    with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:
        for result in pool.map(one, paths):
            if progress is not None:
                progress()
            yield result


def load(path: str | os.PathLike, sr: int | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` to mono float32 (in [-1, 1] for integer formats; float files are
    not clipped), resampled to ``sr`` with soxr if given.

    Raise AudioError if the file is missing, unreadable, empty, or holds a non-finite
    sample (NaN or Inf, possible in float formats such as 32-bit float WAV): such audio would
    only give NaN features downstream. .mp4/.m4a/.webm files are decoded by PyAV
    (DecoderUnavailable naming the file when it is not installed).
    """
    import soxr

    _check_file(path)
    if _needs_av(path):
        y, file_sr = _av_read(path)
    else:
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


def _needs_av(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in AV_SUFFIXES


def _av(path: str | os.PathLike):
    try:
        import av
    except ImportError:
        raise DecoderUnavailable(f"{path}: {Path(path).suffix} audio is decoded by PyAV, which is not installed: "
                                 f"pip install av") from None
    return av


def _av_open(path: str | os.PathLike):
    """(PyAV, open container, its first audio stream); AudioError if there is none."""
    av = _av(path)
    try:
        container = av.open(str(path))
    except Exception as e:  # av.error.FFmpegError (InvalidDataError, ...), OSError
        raise AudioError(f"unreadable: {_short(e)}") from None
    if not container.streams.audio:
        container.close()
        raise AudioError("unreadable: no audio stream")
    return av, container, container.streams.audio[0]


def _av_probe(path: str | os.PathLike) -> AudioInfo:
    """Rate and channels from the stream, frames from the stream's (else the container's)
    duration; a file whose duration is not recorded is decoded to count them."""
    av, container, stream = _av_open(path)
    try:
        rate, channels = int(stream.codec_context.sample_rate or 0), int(stream.codec_context.channels or 0)
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / av.time_base
        else:
            seconds = None
        if seconds is None:
            frames = sum(frame.samples for frame in _decoded(container, stream))
        else:
            next(iter(_decoded(container, stream)), None)   # the codec opens and one packet decodes
            frames = int(round(seconds * rate))
    except AudioError:
        raise
    except Exception as e:
        raise AudioError(f"unreadable: {_short(e)}") from None
    finally:
        container.close()
    if frames <= 0 or rate <= 0:
        raise AudioError("empty: no audio frames")
    return AudioInfo(rate, frames, channels)


def _av_read(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """``(samples, channels)`` float32 and the stream's rate (channels kept: ``load`` mixes down)."""
    av, container, stream = _av_open(path)
    chunks: list[np.ndarray] = []
    try:
        rate = int(stream.codec_context.sample_rate or 0)
        to_float = av.AudioResampler(format="fltp")      # planar float, layout and rate kept
        for frame in _decoded(container, stream):
            for out in to_float.resample(frame):
                chunks.append(out.to_ndarray())
        for out in to_float.resample(None):
            chunks.append(out.to_ndarray())
    except Exception as e:
        raise AudioError(f"unreadable: {_short(e)}") from None
    finally:
        container.close()
    if not chunks or rate <= 0:
        return np.zeros((0, 1), dtype=np.float32), rate
    channels = {c.shape[0] for c in chunks}
    if len(channels) > 1:
        raise AudioError(f"unreadable: the channel count changes within the stream ({sorted(channels)})")
    return np.ascontiguousarray(np.concatenate(chunks, axis=1).T, dtype=np.float32), rate


def _decoded(container, stream):
    for packet in container.demux(stream):
        yield from packet.decode()


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
