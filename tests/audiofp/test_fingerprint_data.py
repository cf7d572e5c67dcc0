"""Fingerprint training data: degradations (SNR, rooms, noises), segment placement, the
train/val split, online pairs and the static dataset tool."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofp.augment import (SR, Augmenter, add_noise, babble, coloured_noise, make_ir_set, make_noise_set,
                                     read_audio_folder, reverberate, spec_mask, synthetic_room_ir)
from audiofp.segments import PairDataset, StaticPairDataset, segment_starts, split_files
from tests.helpers import REPO


def _tone(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f = rng.uniform(200, 1500, size=3)
    y = sum(np.sin(2 * np.pi * fk * t) for fk in f) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t)) ** 2
    return (0.2 * y + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _snr(clean, noisy):
    clean = clean.astype(np.float64)
    noise = noisy.astype(np.float64) - clean
    return 10 * np.log10(np.mean(clean ** 2) / np.mean(noise ** 2))


def test_add_noise_hits_the_snr():
    rng = np.random.default_rng(1)
    clean = _tone(1.0)
    for noise in (rng.standard_normal(3 * SR), 0.01 * rng.standard_normal(300)):   # longer; shorter: looped
        for snr in (-5.0, 0.0, 3.0, 10.0, 20.0):
            noisy = add_noise(clean, noise, snr, rng)
            assert noisy.dtype == np.float32 and noisy.shape == clean.shape
            assert abs(_snr(clean, noisy) - snr) < 0.01
    silent = np.zeros(SR, np.float32)
    assert np.array_equal(add_noise(silent, noise, 5.0, rng), silent)


def test_reverberate_keeps_length_and_level_and_the_ir_decays():
    rng = np.random.default_rng(2)
    x = _tone(1.0)
    for _ in range(5):
        ir = synthetic_room_ir(rng, SR, (0.2, 0.8))
        assert ir.dtype == np.float32 and abs(np.sum(ir.astype(np.float64) ** 2) - 1) < 1e-4
        assert np.argmax(np.abs(ir)) == 0                    # the direct path first
        q = ir.size // 4
        assert np.sum(ir[-q:] ** 2) < 1e-3 * np.sum(ir[:q] ** 2)
        y = reverberate(x, ir)
        assert y.shape == x.shape and y.dtype == np.float32
        assert abs(np.mean(y.astype(np.float64) ** 2) / np.mean(x.astype(np.float64) ** 2) - 1) < 1e-4
        assert not np.allclose(y, x)
    long = synthetic_room_ir(np.random.default_rng(0), SR, (0.8, 0.8))
    assert long.size == int(0.8 * SR)


def test_noises_and_files(tmp_path):
    rng = np.random.default_rng(3)
    spectra = {}
    for kind in ("white", "pink", "brown"):
        y = coloured_noise(rng, 4 * SR, SR, kind)
        assert abs(np.mean(y.astype(np.float64) ** 2) - 1) < 1e-3
        power = np.abs(np.fft.rfft(y)) ** 2
        spectra[kind] = power[: power.size // 8].sum() / power.sum()      # share below 500 Hz
    assert spectra["white"] < spectra["pink"] < spectra["brown"]
    with pytest.raises(ValueError, match="noise kind"):
        coloured_noise(rng, 10, SR, "blue")
    b = babble(rng, [_tone(2.0, seed=k) for k in range(4)], SR, voices=(3, 6))
    assert b.shape == (SR,) and np.isfinite(b).all()
    noises = make_noise_set(tmp_path / "noise", 4, 1.5, SR, rng, tracks=[_tone(2.0, seed=9)])
    irs = make_ir_set(tmp_path / "ir", 2, SR, rng)
    assert [p.name for p in noises][-1].endswith("babble.wav") and len(irs) == 2
    read = read_audio_folder(tmp_path / "noise", SR)
    assert len(read) == 4 and all(r.shape == (int(1.5 * SR),) for r in read)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"noise folder .*empty holds no audio file \(\.wav, \.flac"):
        read_audio_folder(tmp_path / "empty", SR)
    with pytest.raises(ValueError, match="missing_noise"):
        read_audio_folder(tmp_path / "missing_noise", SR)


def test_spec_mask():
    rng = np.random.default_rng(4)
    mel = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    masked = spec_mask(mel, rng, max_time=6, max_freq=16)
    assert masked.shape == mel.shape and not np.shares_memory(masked, mel)
    changed = masked != mel
    assert np.all(masked[changed] == mel.min())
    assert changed.any(axis=0).sum() <= 32 and changed.sum() <= 6 * 64 + 16 * 32


def test_segment_starts():
    rng = np.random.default_rng(5)
    starts = segment_starts(10 * SR, 5, SR, rng)
    assert len(starts) == 5 and starts == sorted(starts)
    assert all(0 <= s <= 9 * SR for s in starts) and all(b - a >= SR for a, b in zip(starts, starts[1:]))
    assert len(segment_starts(int(3.5 * SR), 5, SR, rng)) == 3       # as many as fit
    assert segment_starts(SR, 5, SR, rng) == [0]
    assert segment_starts(SR - 1, 5, SR, rng) == []
    assert segment_starts(SR // 2, 5, SR, rng) == []


def test_split_files():
    files = [f"f{i}.wav" for i in range(10)]
    train, val = split_files(files, 0.8, seed=1)
    assert (train, val) == split_files(list(reversed(files)), 0.8, seed=1)
    assert len(train) == 8 and len(val) == 2 and not set(train) & set(val) and set(train) | set(val) == set(files)
    assert split_files(files, 0.8, seed=2) != (train, val) or split_files(files, 0.8, seed=3) != (train, val)
    for fraction in (0.0, 0.99, 1.0):
        t, v = split_files(files[:2], fraction, seed=0)
        assert len(t) == 1 and len(v) == 1
    assert split_files(["a"], 0.8, 0) == (["a"], [])


def _augmenter(seed=0):
    rng = np.random.default_rng(seed)
    return Augmenter([coloured_noise(rng, 2 * SR, SR, "pink")], [synthetic_room_ir(rng, SR)], snr_db=(0, 10),
                     p_reverb=0.8, max_offset_s=0.2, seed=seed)


def test_augmenter_pairs():
    aug, x = _augmenter(), _tone(4.0)
    anchor, positive = aug(x, 2 * SR, np.random.default_rng(7))
    assert anchor.shape == positive.shape == (SR,) and anchor.dtype == positive.dtype == np.float32
    assert np.array_equal(anchor, x[2 * SR:3 * SR]) and not np.allclose(anchor, positive)
    again = aug(x, 2 * SR, np.random.default_rng(7))
    assert np.array_equal(again[0], anchor) and np.array_equal(again[1], positive)
    other = aug(x, 2 * SR, np.random.default_rng(8))
    assert not np.array_equal(other[1], positive)
    for start in (0, 3 * SR):                                 # offsets clipped to the recording
        a, p = aug(x, start, np.random.default_rng(start))
        assert a.shape == p.shape == (SR,) and np.isfinite(p).all()
    clean = Augmenter([], [], max_offset_s=0.0)(x, SR, np.random.default_rng(0))
    assert np.array_equal(clean[0], clean[1])


def test_pair_dataset_is_reproducible_per_epoch(tmp_path):
    sf.write(tmp_path / "a.wav", _tone(5.0, 16000, seed=1), 16000)
    recordings = [_tone(5.0, seed=2), str(tmp_path / "a.wav"), _tone(0.5, seed=3)]
    ds = PairDataset(recordings, _augmenter(), segments_per_file=4, seed=3)
    assert len(ds) == 8 and ds.skipped == ["#2"]
    a, p = ds[5]
    assert a.shape == p.shape == (SR,) and a.dtype == p.dtype == torch.float32
    twin = PairDataset(recordings, _augmenter(), segments_per_file=4, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(ds[5], twin[5]))
    ds.set_epoch(1)
    assert not torch.equal(ds[5][0], a)
    twin.set_epoch(1)
    assert all(torch.equal(x, y) for x, y in zip(ds[5], twin[5]))
    with pytest.raises(IndexError):
        ds[8]
    starts = [float(ds.recordings[1][:SR] @ ds[k][0].numpy()) for k in range(4, 8)]     # one file's segments
    assert len(set(np.round(starts, 3))) == 4 and list(ds.groups) == [0, 0, 0, 0, 1, 1, 1, 1]


def _write_corpus(folder):
    folder.mkdir()
    (folder / "sub").mkdir()
    for k, seconds in enumerate((3.0, 4.0, 5.0, 3.5)):
        sf.write(folder / ("sub" if k == 3 else "") / f"song{k}.wav", _tone(seconds, 16000, seed=k), 16000)
    sf.write(folder / "short.wav", _tone(0.5, 16000, seed=9), 16000)


def _run_tool(argv, cwd):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "tools.generate_training_dataset", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_tool_writes_shards_maps_samples_and_skipped(tmp_path):
    _write_corpus(tmp_path / "wavs")
    r = _run_tool(["--input", "wavs", "--segments", "3", "--train_fraction", "0.5", "--seed", "1", "--no_progress", "--shard_size", "4"],
                  tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "Dataset_5"
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["skipped"] == 1 and summary["train"]["files"] == 2 and summary["val"]["files"] == 2
    assert summary["train"]["babble"] == summary["val"]["babble"] == 6 and summary["train"]["noises"] == 6
    maps = {s: json.loads((out / f"{s}_data.json").read_text()) for s in ("train", "val")}
    assert not set(maps["train"]) & set(maps["val"])
    assert set(maps["train"]) | set(maps["val"]) == {"song0.wav", "song1.wav", "song2.wav", "sub/song3.wav"}
    assert all(len(v) == 3 for m in maps.values() for v in m.values())    # every file fits 3 segments
    assert "short.wav\tshorter than one segment" in (out / "skipped.txt").read_text()
    for s in ("train", "val"):
        shards = sorted((out / f"{s}_set").glob("pairs_*.npz"))
        assert [p.name for p in shards] == ["pairs_00000.npz", "pairs_00001.npz"]   # 6 pairs, 4 a shard
        with np.load(shards[0]) as z:
            assert z["anchor"].shape == z["positive"].shape == (4, SR) and z["anchor"].dtype == np.float16
            assert z["file_index"].dtype == np.int32 and z["start_s"].shape == (4,)
        ds = StaticPairDataset(out / f"{s}_set")
        assert len(ds) == 6 and ds.info["pairs"] == 6
        a, p = ds[0]
        assert a.shape == p.shape == (SR,) and a.dtype == torch.float32 and not torch.equal(a, p)
        starts = {(ds.files[f], t) for f, t in zip(ds.file_index, ds.start_s)}
        assert starts == {(name, t) for name, ts in maps[s].items() for t in ts}
    assert len(list((out / "Samples").glob("*_anchor.wav"))) == 4
    assert len(list((out / "Samples").glob("*_positive.wav"))) == 4
    assert (out / "generate_training_dataset.yaml").exists()
    again = _run_tool(["--input", "wavs", "--segments", "3", "--train_fraction", "0.5", "--seed", "1", "--no_progress", "--shard_size", "4",
                       "--out_dir", "again"], tmp_path)
    assert again.returncode == 0, again.stderr
    with np.load(out / "val_set" / "pairs_00001.npz") as x, np.load(tmp_path / "again/val_set/pairs_00001.npz") as y:
        assert all(np.array_equal(x[k], y[k]) for k in ("anchor", "positive", "file_index", "start_s"))


def test_tool_with_noise_and_ir_folders(tmp_path):
    from audiofp.dataset_gen import generate

    _write_corpus(tmp_path / "wavs")
    rng = np.random.default_rng(0)
    make_noise_set(tmp_path / "noise", 3, 2.0, SR, rng)
    make_ir_set(tmp_path / "ir", 2, SR, rng)
    summary = generate(tmp_path / "wavs", tmp_path / "out", segments=2, train_fraction=0.75, ir_dir=tmp_path / "ir",
                       noise_dir=tmp_path / "noise", progress=False, samples=1)
    assert summary["train"]["pairs"] == 6 and summary["val"]["pairs"] == 2
    assert summary["train"]["noises"] == 2 and summary["val"]["noises"] == 1 and summary["val"]["irs"] == 1
    assert summary["train"]["babble"] == 0
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="noise folder .*empty holds no audio file"):
        generate(tmp_path / "wavs", tmp_path / "out2", noise_dir=tmp_path / "empty", progress=False)
    assert not (tmp_path / "out2").exists()
