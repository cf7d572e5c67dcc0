"""Degradations for contrastive fingerprint training: a clean 1-s segment (the anchor) and a
degraded copy (the positive) that is slightly shifted in time, played in a room and mixed
with noise.

Everything takes a ``numpy.random.Generator``: the same generator state gives the same
output. Audio is mono float32 at ``SR`` Hz. Noises and room impulse responses (IRs) come
either from folders of audio files (:func:`read_audio_folder`) or are synthesised
(:func:`coloured_noise`, :func:`babble`, :func:`synthetic_room_ir`); :func:`make_noise_set`
and :func:`make_ir_set` write synthesised ones to WAV files for a recipe to prepare offline.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

try:
    from csi.io.tree import AUDIO_EXTENSIONS
except ImportError:  # pragma: no cover - the toolkit defines it
    AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")

SR = 8000
SEGMENT_S = 1.0
NOISE_KINDS = ("white", "pink", "brown")

__all__ = ["SR", "SEGMENT_S", "NOISE_KINDS", "add_noise", "synthetic_room_ir", "reverberate", "coloured_noise",
           "babble", "make_noise_set", "make_ir_set", "list_audio_files", "read_audio_folder", "Augmenter",
           "spec_mask"]


def _power(x: np.ndarray) -> float:
    """Mean square, in float64."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x * x)) if x.size else 0.0


def _excerpt(rng: np.random.Generator, x: np.ndarray, n: int) -> np.ndarray:
    """``n`` samples of ``x`` from a random start; ``x`` is repeated end to end when shorter."""
    x = np.asarray(x, dtype=np.float32)
    if x.size == 0:
        raise ValueError("cannot take an excerpt of an empty signal")
    if x.size >= n:
        start = int(rng.integers(0, x.size - n + 1))
        return x[start:start + n]
    start = int(rng.integers(0, x.size))
    reps = -(-(start + n) // x.size)
    return np.tile(x, reps)[start:start + n]


# ---- noise -------------------------------------------------------------------------------
def add_noise(clean: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``clean`` plus a random excerpt of ``noise`` (looped if shorter) scaled so that
    10·log10(P_clean / P_noise) = ``snr_db`` over the segment (P: mean square). A silent
    ``clean`` (or a silent excerpt of ``noise``) is returned unchanged (as a copy)."""
    clean = np.asarray(clean, dtype=np.float32)
    p_clean = _power(clean)
    if p_clean == 0.0 or clean.size == 0:
        return clean.copy()
    part = _excerpt(rng, noise, clean.size).astype(np.float64)
    p_noise = _power(part)
    if p_noise == 0.0:
        return clean.copy()
    gain = np.sqrt(p_clean / (p_noise * 10.0 ** (snr_db / 10.0)))
    return (clean.astype(np.float64) + gain * part).astype(np.float32)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    p = _power(x)
    return (x / np.sqrt(p)).astype(np.float32) if p > 0 else np.asarray(x, dtype=np.float32)


def coloured_noise(rng: np.random.Generator, n: int, sr: int = SR, kind: str = "white") -> np.ndarray:
    """``n`` samples of white, pink (power ∝ 1/f) or brown (∝ 1/f²) noise at unit RMS.
    Below 20 Hz the spectrum stays flat (no DC drift)."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise kind {kind!r}: expected one of {', '.join(NOISE_KINDS)}")
    white = rng.standard_normal(n)
    if kind == "white" or n < 2:
        return _unit_rms(white)
    spectrum = np.fft.rfft(white)
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / sr), 20.0)
    exponent = 0.5 if kind == "pink" else 1.0          # amplitude slope: power slope / 2
    spectrum = spectrum / freqs ** exponent
    spectrum[0] = 0.0
    return _unit_rms(np.fft.irfft(spectrum, n))


def babble(rng: np.random.Generator, tracks: Sequence[np.ndarray], n: int,
           voices: int | tuple[int, int] = (3, 6)) -> np.ndarray:
    """The sum of random excerpts (``n`` samples, each at unit RMS) of ``voices`` tracks
    (an int, or a (min, max) range drawn from), at unit RMS. The tracks are drawn without
    replacement when there are enough of them. Silent excerpts are left out."""
    tracks = [t for t in tracks if np.asarray(t).size]
    if not tracks:
        raise ValueError("babble needs at least one non-empty track")
    count = voices if isinstance(voices, int) else int(rng.integers(voices[0], voices[1] + 1))
    count = max(1, count)
    chosen = rng.choice(len(tracks), size=count, replace=count > len(tracks))
    mix = np.zeros(n, dtype=np.float64)
    for i in chosen:
        part = _excerpt(rng, tracks[int(i)], n)
        if _power(part) > 0:
            mix += _unit_rms(part)
    return _unit_rms(mix)


# ---- rooms -------------------------------------------------------------------------------
def synthetic_room_ir(rng: np.random.Generator, sr: int = SR, rt60_s: tuple[float, float] = (0.2, 0.8),
                      early_reflections: bool = True) -> np.ndarray:
    """A room impulse response: a direct-path impulse at sample 0, a few early reflections
    (5-50 ms, optional) and a diffuse tail of Gaussian noise whose amplitude decays
    exponentially to -60 dB at RT60 (drawn uniformly from ``rt60_s``). The tail starts
    after a short pre-delay and carries a random share of the energy (direct-to-reverberant
    ratio -6...+6 dB). Length RT60·sr samples; normalised to unit energy (sum of squares)."""
    rt60 = float(rng.uniform(*rt60_s))
    n = max(int(round(rt60 * sr)), 8)
    t = np.arange(n) / sr
    envelope = 10.0 ** (-3.0 * t / rt60)                 # 20·log10(envelope) = -60 dB at t = rt60
    tail = rng.standard_normal(n) * envelope
    predelay = min(int(round(rng.uniform(0.002, 0.01) * sr)), n - 1)
    tail[:max(predelay, 1)] = 0.0
    drr_db = rng.uniform(-6.0, 6.0)
    tail_energy = float(np.sum(tail ** 2))
    if tail_energy > 0:
        tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / tail_energy)   # direct path has energy 1
    ir = tail
    ir[0] = 1.0
    if early_reflections:
        for _ in range(int(rng.integers(2, 7))):
            k = int(round(rng.uniform(0.005, 0.05) * sr))
            if 0 < k < n:
                ir[k] += rng.choice((-1.0, 1.0)) * rng.uniform(0.2, 0.7) * envelope[k]
    return (ir / np.sqrt(np.sum(ir ** 2))).astype(np.float32)


def reverberate(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``ir`` (FFT), cut to ``len(x)`` and rescaled to ``x``'s mean square."""
    from scipy.signal import fftconvolve

    x = np.asarray(x, dtype=np.float32)
    if x.size == 0:
        return x.copy()
    y = fftconvolve(x.astype(np.float64), np.asarray(ir, dtype=np.float64))[:x.size]
    p_x, p_y = _power(x), _power(y)
    if p_y > 0:
        y *= np.sqrt(p_x / p_y)
    return y.astype(np.float32)


# ---- files -------------------------------------------------------------------------------
def _write_wav(path: Path, y: np.ndarray, sr: int, subtype: str) -> None:
    """Write a WAV file through a temporary name and ``os.replace``."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        sf.write(str(tmp), np.asarray(y, dtype=np.float32), sr, subtype=subtype, format="WAV")
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def _peak(y: np.ndarray, peak: float) -> np.ndarray:
    top = float(np.max(np.abs(y))) if y.size else 0.0
    return (y * (peak / top)).astype(np.float32) if top > 0 else y


def make_noise_set(out_dir: str | os.PathLike, n: int, seconds: float, sr: int, rng: np.random.Generator,
                   tracks: Sequence[np.ndarray] | None = None) -> list[Path]:
    """Write ``n`` noise files of ``seconds`` each to ``out_dir`` (16-bit WAV, peak 0.9):
    white, pink and brown in turn, and babble as every fourth kind when ``tracks`` (other
    recordings at ``sr``) are given. Returns the paths written."""
    kinds = list(NOISE_KINDS) + (["babble"] if tracks else [])
    length = int(round(seconds * sr))
    paths = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        y = babble(rng, tracks, length) if kind == "babble" else coloured_noise(rng, length, sr, kind)
        path = Path(out_dir) / f"noise_{i:05d}_{kind}.wav"
        _write_wav(path, _peak(y, 0.9), sr, "PCM_16")
        paths.append(path)
    return paths


def make_ir_set(out_dir: str | os.PathLike, n: int, sr: int, rng: np.random.Generator,
                rt60_s: tuple[float, float] = (0.2, 0.8)) -> list[Path]:
    """Write ``n`` synthetic room IRs (:func:`synthetic_room_ir`) to ``out_dir`` as 32-bit
    float WAV files ``ir_00000.wav``...; returns the paths written."""
    paths = []
    for i in range(n):
        path = Path(out_dir) / f"ir_{i:05d}.wav"
        _write_wav(path, synthetic_room_ir(rng, sr, rt60_s), sr, "FLOAT")
        paths.append(path)
    return paths


def list_audio_files(folder: str | os.PathLike, what: str = "audio") -> list[Path]:
    """The audio files under ``folder`` (recursively, by extension, sorted); ValueError
    naming the folder when it is missing or holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{what} folder {folder} does not exist (or is not a folder)")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
                   and not p.name.startswith("."))
    if not files:
        raise ValueError(f"{what} folder {folder} holds no audio file ({', '.join(AUDIO_EXTENSIONS)})")
    return files


def read_audio_folder(folder: str | os.PathLike, sr: int = SR, what: str = "noise") -> list[np.ndarray]:
    """Every audio file under ``folder`` (recursively, sorted by path) as mono float32 at
    ``sr``. ValueError naming the folder when it is missing, holds no audio file, or a file
    cannot be decoded."""
    from csi.io.audio import AudioError, load

    out = []
    for path in list_audio_files(folder, what):
        try:
            out.append(load(path, sr)[0])
        except AudioError as e:
            raise ValueError(f"{what} folder {folder}: {path.name}: {e}") from None
    return out


# ---- pairs -------------------------------------------------------------------------------
class Augmenter:
    """Make an (anchor, positive) pair from a recording (mono float32 at ``sr``).

    The anchor is the clean segment at ``start``. The positive is the segment at a random
    offset within ±``max_offset_s`` (clipped to the recording), played in a room (a random IR
    of ``irs``, with probability ``p_reverb``; the audio before the segment rings into it) and
    mixed with a random noise of ``noises`` at an SNR drawn uniformly from ``snr_db``. With
    no IRs (no noises) that step is skipped. ``seed`` seeds the generator used when a call
    passes none; a given generator state always gives the same pair."""

    def __init__(self, noises: Sequence[np.ndarray], irs: Sequence[np.ndarray], snr_db: tuple[float, float] = (0, 10),
                 p_reverb: float = 0.8, max_offset_s: float = 0.2, seed: int = 0, sr: int = SR,
                 segment_s: float = SEGMENT_S):
        if snr_db[0] > snr_db[1]:
            raise ValueError(f"snr_db range {snr_db}: min > max")
        if not 0.0 <= p_reverb <= 1.0:
            raise ValueError(f"p_reverb {p_reverb}: expected a probability in [0, 1]")
        self.noises = [np.asarray(x, dtype=np.float32) for x in noises if np.asarray(x).size]
        self.irs = [np.asarray(x, dtype=np.float32) for x in irs if np.asarray(x).size]
        self.snr_db = (float(snr_db[0]), float(snr_db[1]))
        self.p_reverb = float(p_reverb)
        self.max_offset = int(round(max_offset_s * sr))
        self.sr = sr
        self.segment = int(round(segment_s * sr))
        self.rng = np.random.default_rng(seed)

    def _cut(self, recording: np.ndarray, start: int) -> np.ndarray:
        seg = recording[start:start + self.segment]
        if seg.size < self.segment:                       # a recording shorter than a segment
            seg = np.pad(seg, (0, self.segment - seg.size))
        return seg.astype(np.float32, copy=True)

    def __call__(self, recording: np.ndarray, start: int, rng: np.random.Generator | None = None,
                 noises: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(anchor, positive), each ``segment`` samples of float32. ``noises`` replaces the
        augmenter's noise list for this call (e.g. babble without the recording itself)."""
        rng = self.rng if rng is None else rng
        recording = np.asarray(recording, dtype=np.float32)
        start = int(start)
        anchor = self._cut(recording, start)
        last = max(recording.size - self.segment, 0)
        shift = int(rng.integers(-self.max_offset, self.max_offset + 1)) if self.max_offset else 0
        p_start = min(max(start + shift, 0), last)
        positive = self._cut(recording, p_start)
        if self.irs and rng.random() < self.p_reverb:
            ir = self.irs[int(rng.integers(len(self.irs)))]
            lead = min(p_start, ir.size - 1)             # earlier audio still ringing in the room
            context = np.concatenate([recording[p_start - lead:p_start], positive])
            wet = reverberate(context, ir)[lead:]
            p_wet = _power(wet)
            positive = (wet * np.sqrt(_power(positive) / p_wet)).astype(np.float32) if p_wet > 0 else wet
        pool = self.noises if noises is None else noises
        if len(pool):
            noise = pool[int(rng.integers(len(pool)))]
            positive = add_noise(positive, noise, float(rng.uniform(*self.snr_db)), rng)
        return anchor, positive


def spec_mask(mel: np.ndarray, rng: np.random.Generator, max_time: int = 6, max_freq: int = 32,
              n_time: int = 1, n_freq: int = 1) -> np.ndarray:
    """SpecAugment-style masking of a (n_mels, frames) array: ``n_time`` bands of 0..max_time
    frames and ``n_freq`` bands of 0..max_freq mel bins, each at a random place, set to the
    array's minimum. Returns a copy."""
    out = np.array(mel, copy=True)
    if out.ndim != 2:
        raise ValueError(f"spec_mask expects (n_mels, frames), got shape {out.shape}")
    fill = out.min() if out.size else 0
    n_mels, frames = out.shape
    for axis, size, widest, count in ((1, frames, max_time, n_time), (0, n_mels, max_freq, n_freq)):
        for _ in range(count):
            width = int(rng.integers(0, min(widest, size) + 1))
            lo = int(rng.integers(0, size - width + 1))
            if axis == 1:
                out[:, lo:lo + width] = fill
            else:
                out[lo:lo + width, :] = fill
    return out
