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


class PhaseVocoder:
    """Tempo changes that keep pitch (phase vocoder; Flanagan & Golden 1966, Laroche &
    Dolson 1999). The STFT, magnitudes and phases of the input are computed once, so
    several tempo factors of one recording share them.

    For ``rate`` r, output frame j takes the magnitude interpolated at input position
    j·r and a phase advanced by each bin's measured instantaneous frequency, locked to
    its spectral peak; frames are overlap-added with a Hann window (hop n_fft/4).
    Arrays are kept (frames, bins) so that every step reads contiguous memory.
    """

    def __init__(self, y: np.ndarray, n_fft: int = 2048, hop: int = 512):
        if n_fft % hop:
            raise ValueError("n_fft must be a multiple of hop")
        self.n_fft, self.hop, self.length = n_fft, hop, len(y)
        self.window = torch.hann_window(n_fft)
        x = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
        spec = torch.stft(x, n_fft, hop, window=self.window, center=True, return_complex=True).T
        spec = torch.nn.functional.pad(spec, (0, 0, 0, 2))  # room for interpolation past the end
        self.n_frames = spec.shape[0] - 2
        self.magnitude = spec.abs().contiguous()
        self.phase = torch.angle(spec).contiguous()
        self.expected = (2 * math.pi * hop / n_fft) * torch.arange(spec.shape[1], dtype=torch.float32)

    def stretch(self, rate: float) -> np.ndarray:
        """The input played ``rate`` times faster (length ≈ len(y)/rate), pitch unchanged."""
        if rate <= 0:
            raise ValueError(f"tempo rate must be positive, got {rate}")
        positions = torch.arange(0, self.n_frames, rate, dtype=torch.float64)
        left = positions.floor().long()
        frac = (positions - left).to(torch.float32)[:, None]
        phase_left = self.phase[left]
        magnitude = torch.lerp(self.magnitude[left], self.magnitude[left + 1], frac)
        deviation = self.phase[left + 1] - phase_left - self.expected
        deviation -= (2 * math.pi) * torch.round(deviation / (2 * math.pi))
        advance = deviation.add_(self.expected)
        accumulated = self.phase[:1] + torch.cumsum(torch.nn.functional.pad(advance[:-1], (0, 0, 1, 0)), dim=0)
        phase = self._lock_to_peaks(magnitude, accumulated, phase_left)
        frames = torch.fft.irfft(torch.polar(magnitude, phase), n=self.n_fft, dim=1) * self.window
        return self._overlap_add(frames, int(round(self.length / rate))).numpy()

    @staticmethod
    def _lock_to_peaks(magnitude: torch.Tensor, accumulated: torch.Tensor, analysis: torch.Tensor) -> torch.Tensor:
        """Identity phase locking (Laroche & Dolson 1999), with the peak region of a bin
        taken as the ±2 bins around it (a Hann main lobe): every bin takes the accumulated
        phase of the strongest bin of its region plus its analysis phase offset from it,
        so the bins of one partial stay coherent. (Without it they drift apart and a
        steady sine loses ~10 dB.)"""
        _, owner = torch.nn.functional.max_pool1d(magnitude.unsqueeze(1), 5, stride=1, padding=2,
                                                  return_indices=True)
        owner = owner.squeeze(1)
        return accumulated.gather(1, owner) + analysis - analysis.gather(1, owner)

    def _overlap_add(self, frames: torch.Tensor, out_len: int) -> torch.Tensor:
        """Sum windowed frames (T, n_fft) at hop spacing and divide by the summed squared
        window; n_fft is a multiple of hop, so each frame is added as n_fft/hop hop-blocks."""
        n_fft, hop = self.n_fft, self.hop
        parts = n_fft // hop
        n_frames = frames.shape[0]
        blocks = frames.reshape(n_frames, parts, hop)
        signal = torch.zeros(n_frames + parts - 1, hop)
        envelope = torch.zeros(n_frames + parts - 1, hop)
        window_sq = self.window.pow(2).reshape(parts, hop)
        for i in range(parts):
            signal[i:i + n_frames] += blocks[:, i]
            envelope[i:i + n_frames] += window_sq[i]
        half = n_fft // 2  # undo the centring of the analysis STFT
        signal = signal.reshape(-1)[half:half + out_len] / envelope.reshape(-1)[half:half + out_len].clamp_min(1e-8)
        return torch.nn.functional.pad(signal, (0, out_len - signal.shape[0]))


def time_stretch(y: np.ndarray, rate: float) -> np.ndarray:
    """Play ``y`` ``rate`` times faster without changing its pitch (see PhaseVocoder)."""
    if abs(rate - 1.0) < 1e-9:
        return y
    return PhaseVocoder(y).stretch(rate)


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
