"""CQT front ends: equality with the CoverHunter reference fixture, batching, registry."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from csi.features.cqt import (FRONTENDS, CoverHunterCQT, NnAudioCQT, mean_pool_frames,
                              peak_normalize)
from csi.registry import ConfigError
from tests.bench.cqt_reference import reference_cqt
from tests.helpers import REPO

FIXTURES = REPO.parent / "shared" / "fixtures" / "coverhunter_ref"
SR = 16000
LOUD_DB = -80.0     # the fixture tolerance applies to bins above this level
TOL_DB = 0.05


@pytest.fixture(scope="module")
def fixture_dir() -> Path:
    if not (FIXTURES / "expected_cqt.npy").exists():
        pytest.skip(f"CoverHunter reference fixture not found at {FIXTURES} (../shared is absent in a user's clone)")
    return FIXTURES


@pytest.fixture(scope="module")
def fixture_audio(fixture_dir: Path) -> np.ndarray:
    import soundfile as sf
    y, sr = sf.read(fixture_dir / "audio_16k.wav", dtype="float32")
    assert sr == SR and y.ndim == 1
    return y


@pytest.fixture(scope="module")
def frontend() -> CoverHunterCQT:
    return CoverHunterCQT()


def tone_mix(seconds: float, freqs: list[float], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = sum(np.sin(2 * np.pi * f * t + i) / (i + 1) for i, f in enumerate(freqs))
    return (0.3 * y + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def assert_close_db(got: np.ndarray, expected: np.ndarray, tol: float = TOL_DB) -> None:
    assert got.shape == expected.shape
    loud = expected > LOUD_DB
    assert loud.mean() > 0.9
    err = np.abs(got.astype(np.float64) - expected)[loud].max()
    assert err < tol, f"max |error| {err:.4g} dB on bins above {LOUD_DB} dB"


def assert_same_float32_db(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Two float32 computations of one CQT (other batching or blocks: another summation order)
    agree to float32 precision. Their rounding errors are relative to the clip's full scale,
    not to each bin, so the comparison is of linear magnitudes relative to the peak (0 dB):
    a bin at -80 dB may differ by 2e-4 dB (seen) while full scale differs by 1e-9."""
    got_lin = torch.pow(10.0, got.double() / 20)
    expected_lin = torch.pow(10.0, expected.double() / 20)
    torch.testing.assert_close(got_lin, expected_lin, atol=64 * torch.finfo(torch.float32).eps, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference_fixture(fixture_dir, fixture_audio, dtype):
    frontend = CoverHunterCQT().to(dtype)
    got = frontend(torch.from_numpy(fixture_audio))
    assert got.dtype == dtype
    assert_close_db(got.numpy(), np.load(fixture_dir / "expected_cqt.npy"), tol=0.005)


def test_mean3_matches_reference_fixture(fixture_dir, fixture_audio, frontend):
    expected = np.load(fixture_dir / "expected_cqt_mean3.npy")
    pooled = mean_pool_frames(frontend(torch.from_numpy(fixture_audio)), 3).numpy()
    assert_close_db(pooled, expected, tol=0.005)
    # the fixture's own frames pooled give the pooled fixture (mean in the dB domain)
    full = np.load(fixture_dir / "expected_cqt.npy")
    np.testing.assert_allclose(mean_pool_frames(full, 3), expected, atol=1e-4)


def test_matches_numpy_reference_without_fixture(frontend):
    y = tone_mix(4.0, [110.0, 440.0, 1234.5, 5000.0])
    expected = reference_cqt(y.astype(np.float64), SR)
    assert_close_db(frontend(torch.from_numpy(y)).numpy(), expected, tol=0.005)


def test_batch_equals_each_clip(frontend):
    clips = np.stack([tone_mix(3.0, [220.0], seed=1), 0.05 * tone_mix(3.0, [330.0, 2000.0], seed=2)])
    batch = frontend(torch.from_numpy(clips))
    assert batch.shape == (2, 3 * SR // 640, 96)
    for clip, out in zip(clips, batch):
        assert_same_float32_db(out, frontend(torch.from_numpy(clip)))
        assert out.max().item() == 0.0      # each clip scaled to its own maximum


def test_block_size_does_not_change_result():
    y = torch.from_numpy(tone_mix(5.0, [100.0, 700.0]))
    whole = CoverHunterCQT(block_frames=1000)(y)
    assert_same_float32_db(CoverHunterCQT(block_frames=7)(y), whole)


def test_output_size_and_shapes(frontend):
    assert frontend.n_bins == frontend.output_size == 96
    assert (frontend.hop_length, frontend.fft_len) == (640, 16384)
    assert frontend(torch.zeros(SR * 2 + 639)).shape == (50, 96)
    assert frontend(torch.zeros(100)).shape == (0, 96)
    narrow = CoverHunterCQT(fmin=64.0, fmax=4000.0, hop_s=0.02)
    assert narrow.output_size == round(12 * np.log2(4000 / 64))
    assert narrow(torch.from_numpy(tone_mix(1.0, [440.0]))).shape == (50, narrow.output_size)


def test_kernel_is_not_in_state_dict(frontend):
    assert frontend.state_dict() == {}        # checkpoints of models holding a front end stay clean
    assert len(list(frontend.buffers())) > 0  # but .to(device) moves the kernel


@pytest.mark.parametrize("bin_index", [10, 40, 75])
def test_sine_peaks_at_its_bin(frontend, bin_index):
    freq = 32.0 * 2 ** (bin_index / 12)
    t = np.arange(3 * SR) / SR
    cqt = frontend(torch.from_numpy(0.5 * np.sin(2 * np.pi * freq * t)))
    middle = cqt[len(cqt) // 4: 3 * len(cqt) // 4]
    assert (middle.argmax(dim=1) == bin_index).all()


def test_peak_normalize():
    y = torch.tensor([[0.5, -2.0, 1.0], [0.0001, 0.0, -0.0002]])
    out = peak_normalize(y)
    torch.testing.assert_close(out[0], torch.tensor([0.5, -2.0, 1.0]) / 2.0 * 0.999)
    torch.testing.assert_close(out[1], y[1] / 0.001 * 0.999)   # quiet clips are not blown up
    np.testing.assert_allclose(peak_normalize(y.numpy()), out.numpy(), rtol=1e-6)


def test_mean_pool_drops_incomplete_tail():
    cqt = torch.arange(7 * 2, dtype=torch.float32).reshape(7, 2)
    pooled = mean_pool_frames(cqt, 3)
    torch.testing.assert_close(pooled, torch.tensor([[2.0, 3.0], [8.0, 9.0]]))
    assert mean_pool_frames(cqt, 1) is cqt
    assert mean_pool_frames(cqt[None].repeat(2, 1, 1), 3).shape == (2, 2, 2)
    with pytest.raises(ValueError):
        mean_pool_frames(cqt, 0)


def test_registry_builds_and_rejects_unknown_keys():
    built = FRONTENDS.build({"name": "coverhunter_cqt", "hop_s": 0.02, "fmin": 64.0})
    assert isinstance(built, CoverHunterCQT) and built.hop_length == 320 and built.output_size == 84
    assert isinstance(FRONTENDS.build({"name": "nnaudio_cqt", "n_bins": 84}), NnAudioCQT)
    with pytest.raises(ConfigError, match="n_fft"):
        FRONTENDS.build({"name": "coverhunter_cqt", "n_fft": 4096})
    with pytest.raises(ConfigError, match="unknown frontend"):
        FRONTENDS.build({"name": "mel"})


def test_nnaudio_frontend_runs():
    frontend = NnAudioCQT(n_bins=84, fmin=32.7, hop_length=512)
    assert frontend.output_size == 84 and frontend.hop_length == 512
    y = torch.from_numpy(tone_mix(2.0, [440.0]))
    out = frontend(y)
    assert out.shape == (len(y) // 512 + 1, 84)
    assert out.max().item() == 0.0 and torch.isfinite(out).all()
    assert abs(out[len(out) // 2].argmax().item() - round(12 * np.log2(440 / 32.7))) <= 1
    assert frontend(torch.stack([y, 0.5 * y])).shape == (2, len(y) // 512 + 1, 84)
