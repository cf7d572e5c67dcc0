"""Landmark hashing (Wang 2003) on synthetic recordings: the right recording and offset for
noisy snippets, a low score for audio not in the index, nothing for silence, save/load."""
import numpy as np
import pytest

from audiofp.landmark import SR, LandmarkIndex, landmarks

N_RECORDINGS = 6
DURATION_S = 20.0
OFFSET_S = 7.3


def synthetic_recording(seed: int, duration_s: float = DURATION_S, sr: int = SR) -> np.ndarray:
    """Three voices of random notes (with two harmonics), a few chirps and noise bursts."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * sr)
    out = np.zeros(n, np.float64)
    for _voice in range(3):
        pos = 0
        while pos < n:
            length = int(rng.uniform(0.12, 0.5) * sr)
            f0 = rng.uniform(120.0, 1200.0)
            t = np.arange(min(length, n - pos)) / sr
            envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01) * np.exp(-t * rng.uniform(0.5, 4.0))
            note = sum(rng.uniform(0.3, 1.0) / h * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi))
                       for h in (1, 2, 3) if h * f0 < sr / 2 - 100)
            out[pos:pos + len(t)] += rng.uniform(0.2, 1.0) * envelope * note
            pos += length + int(rng.uniform(0.0, 0.15) * sr)
    for _chirp in range(int(duration_s / 2)):
        start, length = int(rng.uniform(0, n - sr)), int(rng.uniform(0.3, 1.0) * sr)
        t = np.arange(length) / sr
        f_a, f_b = rng.uniform(200, 3500, size=2)
        phase = 2 * np.pi * (f_a * t + (f_b - f_a) * t ** 2 / (2 * t[-1]))
        out[start:start + length] += 0.4 * np.sin(phase) * np.hanning(length)
    for _burst in range(int(duration_s)):
        start, length = int(rng.uniform(0, n - sr)), int(rng.uniform(0.02, 0.1) * sr)
        out[start:start + length] += 0.3 * rng.standard_normal(length) * np.hanning(length)
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def with_noise(audio: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """``audio`` plus white noise at ``snr_db`` (signal power over noise power)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(audio))
    noise *= np.sqrt(np.mean(audio.astype(np.float64) ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    return (audio + noise).astype(np.float32)


def cut(audio: np.ndarray, start_s: float, length_s: float) -> np.ndarray:
    start = int(round(start_s * SR))
    return audio[start:start + int(round(length_s * SR))]


@pytest.fixture(scope="module")
def recordings() -> dict[str, np.ndarray]:
    return {f"rec{k}": synthetic_recording(100 + k) for k in range(N_RECORDINGS)}


@pytest.fixture(scope="module")
def index(recordings) -> LandmarkIndex:
    index = LandmarkIndex()
    for name, audio in recordings.items():
        assert index.add(name, audio) > 0
    return index


def test_storage(index):
    assert len(index) == N_RECORDINGS
    assert index.n_hashes > 0
    assert index.size_bytes() == 12 * index.n_hashes
    assert np.all(np.diff(index._hashes.astype(np.int64)) >= 0)
    with pytest.raises(ValueError):
        index.add("rec0", np.zeros(SR, np.float32))


@pytest.mark.parametrize("k", range(N_RECORDINGS))
def test_noisy_snippet_found_at_its_offset(index, recordings, k):
    snippet = with_noise(cut(recordings[f"rec{k}"], OFFSET_S, 3.0), 10.0, seed=k)
    best = index.identify(snippet, topk=3)
    assert best[0]["recording"] == f"rec{k}"
    assert abs(best[0]["offset_s"] - OFFSET_S) <= 0.1
    assert len(best) == 1 or best[0]["score"] > 3 * best[1]["score"]


@pytest.mark.parametrize("k", [0, 3])
def test_snippet_at_0db_still_wins(index, recordings, k):
    snippet = with_noise(cut(recordings[f"rec{k}"], OFFSET_S, 5.0), 0.0, seed=10 + k)
    best = index.identify(snippet, topk=2)
    assert best[0]["recording"] == f"rec{k}"
    assert abs(best[0]["offset_s"] - OFFSET_S) <= 0.1
    assert len(best) == 1 or best[0]["score"] > best[1]["score"]


def test_recording_not_in_index_scores_low(index, recordings):
    true = index.identify(with_noise(cut(recordings["rec2"], OFFSET_S, 3.0), 10.0, seed=1))[0]["score"]
    stranger = with_noise(cut(synthetic_recording(999), OFFSET_S, 3.0), 10.0, seed=1)
    found = index.identify(stranger, topk=1)
    assert not found or found[0]["score"] < true / 4


def test_silence_and_too_short(index):
    assert index.identify(np.zeros(3 * SR, np.float32)) == []
    assert index.identify(np.full(3 * SR, 1e-6, np.float32)) == []
    assert index.identify(np.zeros(100, np.float32)) == []
    assert len(landmarks(np.zeros(0, np.float32))[0]) == 0


def test_save_load_round_trip(index, recordings, tmp_path):
    path = tmp_path / "sub" / "landmarks.npz"
    index.save(path)
    loaded = LandmarkIndex.load(path)
    assert loaded.names == index.names and loaded.params == index.params
    assert loaded.n_hashes == index.n_hashes and loaded.size_bytes() == index.size_bytes()
    for k in (1, 4):
        snippet = with_noise(cut(recordings[f"rec{k}"], 2.0 + k, 3.0), 5.0, seed=k)
        assert loaded.identify(snippet, topk=3) == index.identify(snippet, topk=3)
    assert [p.name for p in path.parent.iterdir()] == ["landmarks.npz"]  # no temporary left
