"""The fingerprinter's input: a log-power mel spectrogram of 1-s segments at 8 kHz, 256 mel
bands × 32 frames (Chang et al. 2021, "Neural Audio Fingerprint for High-Specific Audio
Retrieval Based on Contrastive Learning", §4.1: STFT of 1024 samples every 256 (32 ms),
mel bands over 300-4000 Hz, log power).

The mel filterbank is the HTK-style triangular bank (mel = 2595·log10(1 + f/700)), each
band normalised to unit area. Power is floored at 1e-10 before the log; the dB values are
then shifted so that a segment's maximum is 0 dB (level invariance, as the fingerprint
must not depend on the playback volume).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

SR = 8000


@dataclass(frozen=True)
class MelConfig:
    sr: int = SR
    segment_s: float = 1.0
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 256
    fmin: float = 300.0
    fmax: float = 4000.0

    @property
    def segment_samples(self) -> int:
        return round(self.segment_s * self.sr)

    @property
    def frames(self) -> int:
        return 1 + self.segment_samples // self.hop                 # centred STFT frames

    def to_dict(self) -> dict:
        return asdict(self)


def mel_filterbank(cfg: MelConfig) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, unit area each."""
    def to_mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def to_hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(cfg.fmin), to_mel(cfg.fmax), cfg.n_mels + 2))
    freqs = np.linspace(0, cfg.sr / 2, cfg.n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - freqs[None, :]) / np.maximum(upper - centre, 1e-9)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    area = bank.sum(axis=1, keepdims=True)
    return (bank / np.where(area > 0, area, 1.0)).astype(np.float32)


class LogMel(torch.nn.Module):
    """(batch, samples) audio → (batch, n_mels, frames) log-power mel, max 0 dB per item."""

    def __init__(self, cfg: MelConfig = MelConfig()):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("bank", torch.from_numpy(mel_filterbank(cfg)), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio.float(), self.cfg.n_fft, self.cfg.hop, window=self.window, center=True,
                          pad_mode="constant", return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2                         # (batch, bins, frames)
        db = 10.0 * torch.log10(torch.clamp(self.bank @ power, min=1e-10))
        return db - db.amax(dim=(1, 2), keepdim=True)
