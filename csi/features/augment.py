"""Signal-domain augmentation for the feature stage, in memory (no temporary audio files).

- tempo change that keeps pitch: a phase vocoder (Flanagan & Golden 1966; Laroche &
  Dolson 1999) on a torch STFT, vectorised over frames — replaces the reference's
  ``sox tempo`` subprocess writing temporary wav files;
- pitch shift: tempo change by 2**(s/12) followed by soxr resampling back to the length;
- additive noise from a noise manifest at a random SNR, gated per chunk as in CoverHunter;
- reverberation with impulse responses from a manifest, or synthetic exponentially
  decaying noise IRs (the deep audio fingerprinting recipe) when none are given;
- volume.

Every random choice takes a ``numpy.random.Generator``; callers derive it from a seed and
the utterance id, so results do not depend on worker count or order.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import scipy.signal
import torch


def time_stretch(y: np.ndarray, rate: float, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
    """Play ``y`` ``rate`` times faster without changing its pitch (length ≈ len(y)/rate).

    Phase vocoder: magnitudes are interpolated between neighbouring STFT frames at the
    fractional positions 0, rate, 2·rate, …; phases advance by each bin's measured
    instantaneous frequency, so partials stay at their frequency.
    """
    if rate <= 0:
        raise ValueError(f"tempo rate must be positive, got {rate}")
    if abs(rate - 1.0) < 1e-9:
        return y
    x = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    window = torch.hann_window(n_fft)
    spec = torch.stft(x, n_fft, hop, window=window, center=True, return_complex=True)  # (bins, frames)
    n_bins, n_frames = spec.shape
    positions = torch.arange(0, n_frames, rate, dtype=torch.float64)
    spec = torch.nn.functional.pad(spec, (0, 2))
    left = positions.floor().long()
    frac = (positions - left).to(torch.float32)
    s0, s1 = spec[:, left], spec[:, left + 1]
    magnitude = (1 - frac) * s0.abs() + frac * s1.abs()
    expected = 2 * math.pi * hop * torch.arange(n_bins, dtype=torch.float32) / n_fft
    deviation = torch.angle(s1) - torch.angle(s0) - expected[:, None]
    deviation -= 2 * math.pi * torch.round(deviation / (2 * math.pi))
    advance = expected[:, None] + deviation
    phase = torch.angle(spec[:, :1]) + torch.cumsum(
        torch.nn.functional.pad(advance[:, :-1], (1, 0)), dim=1)
    stretched = torch.polar(magnitude, phase)
    out_len = int(round(len(y) / rate))
    out = torch.istft(stretched, n_fft, hop, window=window, center=True, length=out_len)
    return out.numpy()


def pitch_shift(y: np.ndarray, semitones: float, sr: int) -> np.ndarray:
    """Shift pitch by ``semitones`` keeping the duration (tempo change + resampling)."""
    import soxr

    if abs(semitones) < 1e-9:
        return y
    ratio = 2.0 ** (semitones / 12.0)
    longer = time_stretch(y, 1.0 / ratio)
    shifted = soxr.resample(longer, sr * ratio, sr, quality="HQ").astype(np.float32)
    return _fit_length(shifted, len(y))


def add_noise(y: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator,
              gate_prob: float = 1.0, gate_samples: int | None = None) -> np.ndarray:
    """Add ``noise`` (looped from a random offset) at ``snr_db`` relative to ``y``'s power.

    With ``gate_samples``, the noise is kept in each chunk of that many samples with
    probability ``gate_prob`` (CoverHunter's ``add_noise.prob`` / ``add_noise.chunk``).
    """
    if len(noise) == 0:
        return y
    start = int(rng.integers(len(noise)))
    reps = int(math.ceil((start + len(y)) / len(noise)))
    segment = np.tile(noise, reps)[start:start + len(y)].astype(np.float32)
    if gate_samples:
        n_chunks = int(math.ceil(len(y) / gate_samples))
        keep = rng.random(n_chunks) < gate_prob
        segment *= np.repeat(keep, gate_samples)[:len(y)].astype(np.float32)
    signal_power = float(np.mean(y.astype(np.float64) ** 2))
    noise_power = float(np.mean(segment.astype(np.float64) ** 2))
    if signal_power <= 0 or noise_power <= 0:
        return y
    scale = math.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (y + scale * segment).astype(np.float32)


def synthetic_ir(rng: np.random.Generator, sr: int, rt60_s: float) -> np.ndarray:
    """A room impulse response: a direct path then Gaussian noise decaying by 60 dB in ``rt60_s``."""
    n = max(1, int(rt60_s * sr))
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * np.exp(-math.log(1000.0) * t / rt60_s)
    ir[0] = 1.0
    return (ir / np.sqrt(np.sum(ir ** 2))).astype(np.float32)


def reverberate(y: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """Convolve with ``ir`` (aligned on its strongest tap), same length and peak as ``y``."""
    delay = int(np.argmax(np.abs(ir)))
    wet = scipy.signal.fftconvolve(y, ir)[delay:delay + len(y)]
    peak_in, peak_out = np.max(np.abs(y)), np.max(np.abs(wet))
    if peak_out > 0:
        wet = wet * (peak_in / peak_out)
    return _fit_length(wet.astype(np.float32), len(y))


@functools.lru_cache(maxsize=64)
def load_cached(path: str, sr: int) -> np.ndarray:
    """Decode a noise or impulse-response file once per process."""
    from csi.io.audio import load

    return load(path, sr)[0]


def _fit_length(y: np.ndarray, n: int) -> np.ndarray:
    if len(y) >= n:
        return y[:n]
    return np.pad(y, (0, n - len(y)))


def volume_envelope(y: np.ndarray, rng: np.random.Generator, sr: int,
                    gain_db: tuple[float, float] = (-12.0, 0.0), segment_s: float = 5.0) -> np.ndarray:
    """Vary the level over time: gains drawn in ``gain_db`` every ``segment_s`` seconds,
    interpolated linearly. (A constant gain would change nothing in a CQT measured in dB
    relative to the clip maximum.)"""
    n_points = int(len(y) / (segment_s * sr)) + 2
    gains_db = rng.uniform(gain_db[0], gain_db[1], n_points)
    control = np.linspace(0, len(y), n_points)
    envelope = 10.0 ** (np.interp(np.arange(len(y)), control, gains_db) / 20.0)
    return (y * envelope).astype(np.float32)
