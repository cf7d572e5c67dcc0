"""Stage 2: augmentation, feature store, extraction CLI (bad input, resume, sharding)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from csi.config import from_dict
from csi.data.augment import random_stretched_chunk, stretch_time
from csi.features import augment
from csi.features.config import FeatureConfig
from csi.features.cqt import CoverHunterCQT
from csi.features.store import FeatureStore, FeatureStoreError
from csi.io.manifest import read_manifest
from csi.registry import ConfigError
from tests.helpers import REPO

SR = 16000


def sine(freq, seconds, sr=SR, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_data(root, n_works=3, versions=2, seconds=4.0, hparams="aug_speed_mode: [0.8, 1.0, 1.2]\n"):
    """A small data dir: tonal recordings of a few works (22.05 kHz flac/wav) + dataset.txt + hparams.yaml."""
    data = root / "data"
    data.mkdir(parents=True)
    lines = []
    for w in range(n_works):
        for v in range(versions):
            y = sine(110 * 2 ** (w * 5 / 12), seconds + v, sr=22050) + sine(330 * 2 ** (w / 12), seconds + v, sr=22050, amp=0.2)
            path = root / f"w{w}_v{v}.{'flac' if v else 'wav'}"
            sf.write(path, y, 22050)
            lines.append({"utt": f"w{w}v{v}", "wav": str(path), "dur_s": round(len(y) / 22050, 3),
                          "song": f"work{w}", "version": f"v{v}", "keep_me": [w, v]})
    (data / "dataset.txt").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (data / "hparams.yaml").write_text(hparams)
    return data


def extract(data, *args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "tools.extract_csi_features", str(data), "--no_progress", *args],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=300, **kw)


def cqt_peak_bin(y):
    return int(CoverHunterCQT()(torch.from_numpy(y)).mean(0).argmax())


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_tempo_change_scales_duration_and_keeps_pitch(factor):
    y = sine(440.0, 5.0)
    z = augment.time_stretch(y, factor)
    assert abs(len(z) - len(y) / factor) <= 1
    assert cqt_peak_bin(z) == cqt_peak_bin(y) == round(12 * np.log2(440 / 32))


def test_pitch_shift_moves_the_peak_by_the_semitones():
    y = sine(440.0, 4.0)
    z = augment.pitch_shift(y, 3, SR)
    assert len(z) == len(y)
    assert cqt_peak_bin(z) == cqt_peak_bin(y) + 3


def test_noise_reverb_volume_keep_length_and_are_seeded():
    y = sine(220.0, 3.0)
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    a = augment.add_noise(y, noise, 10.0, np.random.default_rng(1))
    b = augment.add_noise(y, noise, 10.0, np.random.default_rng(1))
    assert np.array_equal(a, b) and len(a) == len(y)
    snr = 10 * np.log10(np.mean(y ** 2) / np.mean((a - y) ** 2))
    assert abs(snr - 10.0) < 0.5
    ir = augment.synthetic_ir(np.random.default_rng(2), SR, 0.5)
    assert len(ir) == SR // 2 and abs(np.sum(ir ** 2) - 1) < 1e-4
    wet = augment.reverberate(y, ir)
    assert len(wet) == len(y) and not np.allclose(wet, y)
    env = augment.volume_envelope(y, np.random.default_rng(3), SR, (-12, 0), 1.0)
    assert len(env) == len(y) and np.max(np.abs(env)) <= np.max(np.abs(y)) + 1e-6


def test_online_time_stretch_of_stored_cqt():
    feat = torch.arange(100, dtype=torch.float32)[:, None].repeat(1, 96)
    assert stretch_time(feat, 1.25).shape == (80, 96)
    assert stretch_time(feat, 0.8).shape == (125, 96)
    chunk, factor = random_stretched_chunk(feat.numpy(), 50, (0.8, 1.2), np.random.default_rng(0))
    assert chunk.shape == (50, 96) and 0.8 <= factor <= 1.2
    slope = float(chunk[-1, 0] - chunk[0, 0]) / 49
    assert abs(slope - factor) < 0.05  # frames advance `factor` stored frames per output frame
    short, _ = random_stretched_chunk(feat[:10].numpy(), 50, (1.0, 1.0), np.random.default_rng(0))
    assert float(short[-1, 0]) == -100.0  # padded as the reference pads


def test_float16_store_error_is_tiny(tmp_path):
    feat = -np.random.default_rng(0).uniform(0, 120, (50, 96)).astype(np.float32)
    store = FeatureStore(tmp_path, {"x": 1}).open()
    path = store.save("u/1", feat)
    back = np.load(path)
    assert back.dtype == np.float16 and np.max(np.abs(back - feat)) <= 0.032
    assert store.length("u/1") == 50 and store.length("missing") is None
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    with pytest.raises(FeatureStoreError, match="x: 1 -> 2"):
        FeatureStore(tmp_path, {"x": 2}).open()
    FeatureStore(tmp_path, {"x": 2}).open(overwrite=True)
    assert not path.exists()


def test_config_unknown_key_names_it():
    with pytest.raises(ConfigError, match=r"h\.yaml: unknown key\(s\) aug_sped_mode"):
        from_dict(FeatureConfig, {"aug_sped_mode": [1.0]}, where="h.yaml")
    with pytest.raises(ConfigError, match=r"h\.yaml: reverb: unknown key\(s\) rt60"):
        from_dict(FeatureConfig, {"reverb": {"rt60": 1}}, where="h.yaml")
    cfg = from_dict(FeatureConfig, {"add_noise": {"noise_path": "n.txt", "prob": 0.5, "sr": 16000, "chunk": 3,
                                                  "name": "asr"}})
    assert cfg.add_noise.prob == 0.5


def test_extraction_end_to_end_ids_and_bad_files(tmp_path):
    data = make_data(tmp_path)
    with open(data / "dataset.txt", "a") as f:
        (tmp_path / "corrupt.mp3").write_bytes(b"\x00" * 100)
        sf.write(tmp_path / "silent.wav", np.zeros(SR * 4), SR)
        sf.write(tmp_path / "short.wav", sine(300, 0.5), SR)
        (tmp_path / "empty.wav").write_bytes(b"")
        for name in ["corrupt.mp3", "silent.wav", "short.wav", "empty.wav"]:
            f.write(json.dumps({"utt": name, "wav": str(tmp_path / name), "song": "bad", "dur_s": 1}) + "\n")
    r = extract(data, "--nj", "2")
    assert r.returncode == 0, r.stderr
    full = read_manifest(data / "full.txt")
    assert len(full) == 18
    assert {rec["utt"] for rec in full if rec["song"] == "work0"} == {
        "w0v0", "w0v1", "sp_0.8-w0v0", "sp_0.8-w0v1", "sp_1.2-w0v0", "sp_1.2-w0v1"}
    by_utt = {rec["utt"]: rec for rec in full}
    assert by_utt["sp_0.8-w1v0"]["dur_s"] == pytest.approx(by_utt["w1v0"]["dur_s"] / 0.8, abs=1e-3)
    assert by_utt["sp_0.8-w1v0"]["feat_len"] == pytest.approx(by_utt["w1v0"]["feat_len"] / 0.8, abs=1)
    assert by_utt["w1v0"]["feat_len"] == int(4.0 * SR) // 640
    assert by_utt["w1v0"]["keep_me"] == [1, 0]  # unknown keys kept
    assert np.load(by_utt["w2v1"]["feat"]).shape == (by_utt["w2v1"]["feat_len"], 96)
    assert sorted({rec["song_id"] for rec in full}) == [0, 1, 2]
    assert {rec["version_id"] for rec in full if rec["song"] == "work0"} == {0, 1}
    assert by_utt["sp_1.2-w0v1"]["version_id"] == by_utt["w0v1"]["version_id"]
    assert [(rec["song_id"], rec["version_id"]) for rec in full] == sorted((rec["song_id"], rec["version_id"]) for rec in full)
    bad = dict(line.split("\t")[0::2] for line in (data / "bad.txt").read_text().splitlines())
    assert set(bad) == {"corrupt.mp3", "silent.wav", "short.wav", "empty.wav"}
    assert bad["silent.wav"].startswith("silent") and bad["short.wav"].startswith("too short")
    assert bad["corrupt.mp3"].startswith("unreadable")
    assert (data / "song_id.map").read_text().splitlines() == ["work0 0", "work1 1", "work2 2"]
    assert (data / "song_name_num.map").read_text().splitlines() == ["work0 6", "work1 6", "work2 6"]
    assert "world_size" in (data / "extract_csi_features.yaml").read_text()
    assert "4 bad" in r.stderr

    # song ids depend on the set of works, not on the manifest order
    shuffled = make_data(tmp_path / "again")
    lines = (shuffled / "dataset.txt").read_text().splitlines()
    (shuffled / "dataset.txt").write_text("\n".join(reversed(lines)) + "\n")
    assert extract(shuffled).returncode == 0
    again = {rec["song"]: rec["song_id"] for rec in read_manifest(shuffled / "full.txt")}
    assert again == {rec["song"]: rec["song_id"] for rec in full}


def test_everything_bad_exits_nonzero_and_bad_lines_are_named(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "dataset.txt").write_text(json.dumps({"utt": "x", "wav": str(tmp_path / "nope.wav"), "song": "s"}) + "\n")
    r = extract(data)
    assert r.returncode == 1 and "every recording failed" in r.stderr
    (data / "dataset.txt").write_text(json.dumps({"utt": "x", "wav": "a.wav", "song": "s"}) + "\n" +
                                      json.dumps({"utt": "y", "song": "s"}) + "\n")
    r = extract(data)
    assert r.returncode == 1 and "dataset.txt:2: missing key(s) wav" in r.stderr
    (data / "hparams.yaml").write_text("aug_speed_mode: [1.0]\nbogus: 1\n")
    r = extract(data)
    assert r.returncode == 1 and "unknown key(s) bogus" in r.stderr and "hparams.yaml" in r.stderr


def test_reproducible_under_seed_and_changed_config_detected(tmp_path):
    hp = "aug_speed_mode: [1.0, 1.1]\nreverb: {prob: 0.5}\nvolume: {prob: 0.5}\npitch_shift: {prob: 0.5}\nseed: 7\n"
    a, b = make_data(tmp_path / "a", hparams=hp), make_data(tmp_path / "b", hparams=hp)
    assert extract(a, "--nj", "2").returncode == 0 and extract(b).returncode == 0
    fa, fb = read_manifest(a / "full.txt"), read_manifest(b / "full.txt")
    assert [r["aug"] for r in fa if "aug" in r] == [r["aug"] for r in fb if "aug" in r]
    assert any("reverb_rt60_s" in r.get("aug", {}) for r in fa)
    for ra, rb in zip(fa, fb):
        assert open(ra["feat"], "rb").read() == open(rb["feat"], "rb").read()

    (a / "hparams.yaml").write_text(hp.replace("seed: 7", "seed: 8"))
    r = extract(a)
    assert r.returncode == 1 and "seed: 7 -> 8" in r.stderr and "--overwrite" in r.stderr
    r = extract(a, "--overwrite")
    assert r.returncode == 0
    fc = read_manifest(a / "full.txt")
    assert [r.get("aug") for r in fc] != [r.get("aug") for r in fa]


def test_resume_after_kill_recomputes_only_missing(tmp_path):
    data = make_data(tmp_path, n_works=6, seconds=20.0, hparams="aug_speed_mode: [0.8, 0.9, 1.0, 1.1, 1.2]\n")
    proc = subprocess.Popen([sys.executable, "-m", "tools.extract_csi_features", str(data), "--no_progress"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    # a feature counts once its source is recorded (the .src is written after the .npy)
    while time.time() < deadline and len(list((data / "cqt_feat").glob("*/*.src"))) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list((data / "cqt_feat").glob("*/*.src")))
    assert done_before >= 3
    r = extract(data)
    assert r.returncode == 0, r.stderr
    assert f"{60 - done_before} computed, {done_before} reused" in r.stderr
    full = read_manifest(data / "full.txt")
    assert len(full) == 60
    for rec in full:
        assert np.load(rec["feat"]).shape == (rec["feat_len"], 96)
    assert not list((data / "cqt_feat").glob("*/.*.tmp"))


def test_changed_audio_is_computed_again(tmp_path):
    data = make_data(tmp_path, hparams="aug_speed_mode: [1.0]\n")
    assert extract(data).returncode == 0
    before = {r["utt"]: np.load(r["feat"]).copy() for r in read_manifest(data / "full.txt")}
    y = sine(523.25, 4.0, sr=22050)                      # the same utt, another recording
    sf.write(tmp_path / "w0_v0.wav", y, 22050)
    r = extract(data)
    assert r.returncode == 0 and "1 computed, 5 reused" in r.stderr
    after = {r["utt"]: np.load(r["feat"]) for r in read_manifest(data / "full.txt")}
    assert not np.array_equal(after["w0v0"], before["w0v0"])
    assert all(np.array_equal(after[u], before[u]) for u in before if u != "w0v0")


def test_torchrun_shards_match_single_process(tmp_path):
    pytest.importorskip("torch.distributed.run")
    single, sharded = make_data(tmp_path / "s"), make_data(tmp_path / "d")
    assert extract(single).returncode == 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
                        "-m", "tools.extract_csi_features", str(sharded), "--no_progress"],
                       cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    a, b = read_manifest(single / "full.txt"), read_manifest(sharded / "full.txt")
    assert [x["utt"] for x in a] == [x["utt"] for x in b]
    assert [x["song_id"] for x in a] == [x["song_id"] for x in b]
    for x, y in zip(a, b):
        assert np.array_equal(np.load(x["feat"]), np.load(y["feat"]))
    shutil.rmtree(sharded / "shards", ignore_errors=True)


def test_shard_jobs_merge_to_the_single_process_outputs_and_partial_shards_are_refused(tmp_path):
    single, sharded = make_data(tmp_path / "s"), make_data(tmp_path / "d")
    (sharded.parent / "w1_v1.flac").write_bytes(b"not audio")           # a bad recording in shard 2
    (single.parent / "w1_v1.flac").write_bytes(b"not audio")
    assert extract(single).returncode == 0
    for k in (1, 3):
        assert extract(sharded, "--shard", f"{k}/3").returncode == 0
    r = extract(sharded, "--merge", "3")
    assert r.returncode == 1 and "shard 2/3: not finished" in r.stderr and not (sharded / "full.txt").exists()
    r = extract(sharded, "--shard", "2/3")
    assert r.returncode == 0 and "shard 2/3: " in r.stderr
    assert extract(sharded, "--merge", "3").returncode == 0
    for name in ("full.txt", "bad.txt", "song_id.map", "song_id_num.map", "song_name_num.map"):
        ours, theirs = (sharded / name).read_text(), (single / name).read_text()
        assert ours.replace(str(sharded.parent), "") == theirs.replace(str(single.parent), ""), name
    for x in read_manifest(sharded / "full.txt"):
        assert np.array_equal(np.load(x["feat"]), np.load(x["feat"].replace(str(sharded.parent), str(single.parent))))
    (sharded / "hparams.yaml").write_text("aug_speed_mode: [1.0]\n")      # the parts are stale now
    r = extract(sharded, "--merge", "3")
    assert r.returncode == 1 and "shard 1/3: made from another dataset.txt or config" in r.stderr
    assert extract(sharded, "--shard", "4/3").returncode == 2
    assert "argument --shard: expected K/N" in extract(sharded, "--shard", "x").stderr


def test_leakage_check_finds_planted_overlap(tmp_path):
    train = [{"utt": "a1", "wav": "/x/a1.wav", "song": "A"}, {"utt": "sp_0.8-b1", "wav": "/x/b1.wav", "song": "B"}]
    test = [{"utt": "b1", "wav": "/x/b1.wav", "song": "B"}, {"utt": "c1", "wav": "/x/c1.wav", "song": "C"}]
    clean = [{"utt": "d1", "wav": "/x/d1.wav", "song": "D"}]
    for name, recs in [("train", train), ("test", test), ("clean", clean)]:
        (tmp_path / f"{name}.txt").write_text("".join(json.dumps(r) + "\n" for r in recs))
    run = lambda *names: subprocess.run([sys.executable, "-m", "tools.check_leakage", *[str(tmp_path / f"{n}.txt") for n in names]],
                                        cwd=REPO, capture_output=True, text=True)
    r = run("train", "test")
    assert r.returncode == 1
    assert "1 shared works: B" in r.stdout and "utt:b1" in r.stdout and "wav:/x/b1.wav" in r.stdout
    r = run("train", "clean")
    assert r.returncode == 0 and "no shared works or recordings" in r.stdout


def test_noise_and_ir_manifests_and_nnaudio_frontend(tmp_path):
    noise_wav, ir_wav = tmp_path / "noise.wav", tmp_path / "ir.wav"
    sf.write(noise_wav, np.random.default_rng(0).standard_normal(SR * 2).astype(np.float32) * 0.1, SR)
    sf.write(ir_wav, augment.synthetic_ir(np.random.default_rng(1), SR, 0.3), SR)
    (tmp_path / "noise.txt").write_text(json.dumps({"utt": "n", "wav": str(noise_wav)}) + "\n")
    (tmp_path / "irs.txt").write_text(json.dumps({"utt": "r", "wav": str(ir_wav)}) + "\n")
    hp = (f"aug_speed_mode: [1.0]\nadd_noise: {{noise_path: {tmp_path / 'noise.txt'}, prob: 1.0, chunk: 1, snr_db: [5, 5]}}\n"
          f"reverb: {{prob: 1.0, ir_path: {tmp_path / 'irs.txt'}}}\n"
          "frontend: {name: nnaudio_cqt, n_bins: 84, fmin: 32.7, bins_per_octave: 12}\n")
    data = make_data(tmp_path / "x", n_works=1, hparams=hp)
    r = extract(data)
    assert r.returncode == 0, r.stderr
    for rec in read_manifest(data / "full.txt"):
        assert rec["aug"]["noise_wav"] == str(noise_wav) and rec["aug"]["noise_snr_db"] == 5.0
        assert rec["aug"]["reverb_ir"] == str(ir_wav)
        assert np.load(rec["feat"]).shape == (rec["feat_len"], 84)
    (data / "hparams.yaml").write_text(hp.replace(str(tmp_path / "noise.txt"), str(tmp_path / "missing.txt")))
    r = extract(data, "--nj", "2")
    assert r.returncode == 1 and "missing.txt" in r.stderr
