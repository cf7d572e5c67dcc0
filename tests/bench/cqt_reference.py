"""Slow baseline for benchmarks: the CoverHunter reference CQT computed the reference way.

A plain NumPy float64 reimplementation of the facts in the fixture README (not the
toolkit's code): build the sparse spectral kernel, then for every frame in a Python loop
take the full complex FFT and the sparse-kernel product. Used only to measure the
speedup of ``csi.features.cqt.CoverHunterCQT``.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.sparse


def reference_kernel(sr: int = 16000, fmin: float = 32.0, fmax: float | None = None,
                     bins_per_octave: int = 12, threshold: float = 0.01) -> scipy.sparse.csr_matrix:
    """The sparse spectral kernel, ``(n_bins, fft_len)`` complex, conjugated and / fft_len."""
    fmax = sr / 2 if fmax is None else fmax
    q = 1 / (2 ** (1 / bins_per_octave) - 1)
    n_bins = round(bins_per_octave * math.log2(fmax / fmin))
    fft_len = 2 ** math.ceil(math.log2(q * sr / fmin))
    rows = []
    for k in range(n_bins):
        length = 2 * round(q * sr / (fmin * 2 ** (k / bins_per_octave)) / 2) + 1
        window = np.hamming(length)
        phase = np.exp(2j * np.pi * q * np.arange(-(length - 1) // 2, (length - 1) // 2 + 1) / length)
        temporal = np.zeros(fft_len, dtype=complex)
        offset = (fft_len - length + 1) // 2
        temporal[offset:offset + length] = window * phase / length
        spectral = np.fft.fft(temporal)
        spectral[np.abs(spectral) < threshold] = 0
        rows.append(spectral)
    return scipy.sparse.csr_matrix(np.conj(np.array(rows)) / fft_len)


def reference_cqt(y: np.ndarray, sr: int = 16000, hop_s: float = 0.04,
                  kernel: scipy.sparse.csr_matrix | None = None) -> np.ndarray:
    """Reference CQT of a 1-D signal: (frames, n_bins) float64 dB, 0 dB at the clip maximum."""
    kernel = reference_kernel(sr) if kernel is None else kernel
    y = np.asarray(y, dtype=np.float64)
    y = y / max(0.001, float(np.max(np.abs(y)))) * 0.999
    hop = round(sr * hop_s)
    fft_len = kernel.shape[1]
    n_frames = len(y) // hop
    padded = np.pad(y, (math.ceil((fft_len - hop) / 2), (fft_len - hop) // 2))
    cqt = np.zeros((n_frames, kernel.shape[0]))
    for j in range(n_frames):
        spectrum = np.fft.fft(padded[j * hop:j * hop + fft_len])
        cqt[j] = np.abs(kernel @ spectrum)
    cqt += 1e-9
    return 20 * np.log10(cqt) - 20 * np.log10(cqt.max())
