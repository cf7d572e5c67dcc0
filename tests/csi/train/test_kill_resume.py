"""Stages 2 and 3 killed with SIGKILL in the middle of a run: the same command resumes,
keeps every file finished before the kill, takes no partly written file as finished and
ends with the outputs of an uninterrupted run."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import soundfile as sf
import torch
import yaml

from csi.io.manifest import read_manifest
from csi.train import checkpoint as ckpt
from tests.helpers import REPO

SR = 16000
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def start(*args):
    """A tool in its own process group, so a kill takes its worker processes too."""
    return subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(*args):
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=300)


def kill_when(proc, ready, timeout=120.0):
    """SIGKILL ``proc`` (and its process group) as soon as ``ready()``; fail if it ends first."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the run ended (status {proc.returncode}) before it could be killed"
        assert time.monotonic() < deadline, "timed out waiting for the run to get going"
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


# ---------------------------------------------------------------- stage 2

def feature_data(root, name, wavs, hparams):
    data = root / name
    data.mkdir()
    (data / "dataset.txt").write_text("".join(json.dumps(r) + "\n" for r in wavs))
    (data / "hparams.yaml").write_text(hparams)
    return data


def finished_features(store):
    """``relative path -> mtime_ns`` of the features the store reuses (a ``.npy`` with its ``.src``)."""
    return {str(p.relative_to(store)): p.stat().st_mtime_ns for p in store.glob("*/*.npy")
            if p.with_suffix(".src").exists()}


def without_feat_dir(records):
    return [{k: (os.path.relpath(v, os.path.dirname(os.path.dirname(os.path.dirname(v)))) if k == "feat" else v)
             for k, v in r.items()} for r in records]


def test_stage2_killed_resumes_and_matches_an_uninterrupted_run(tmp_path):
    wavs = []
    for i in range(16):
        t = np.arange(15 * SR) / SR
        y = 0.4 * np.sin(2 * np.pi * 110 * 2 ** (i / 12) * t) + 0.1 * np.sin(2 * np.pi * 330 * 2 ** (i / 7) * t)
        sf.write(tmp_path / f"r{i}.wav", y.astype(np.float32), SR)
        wavs.append({"utt": f"r{i}", "wav": str(tmp_path / f"r{i}.wav"), "song": f"s{i % 5}", "dur_s": 15.0})
    hparams = "aug_speed_mode: [1.0, 1.2]\npitch_shift: {prob: 0.5}\nseed: 3\n"
    n_utts = 2 * len(wavs)
    clean, killed = feature_data(tmp_path, "clean", wavs, hparams), feature_data(tmp_path, "killed", wavs, hparams)
    r = run("tools.extract_csi_features", str(clean), "--nj", "2", "--no_progress")
    assert r.returncode == 0, r.stderr

    store = killed / "cqt_feat"
    proc = start("tools.extract_csi_features", str(killed), "--nj", "2", "--no_progress")
    kill_when(proc, lambda: len(list(store.glob("*/*.src"))) >= 5)
    finished = finished_features(store)
    assert 5 <= len(finished) < n_utts
    # whatever the kill left, every .npy in place is whole: it loads and equals the clean run's
    for path in store.glob("*/*.npy"):
        assert np.array_equal(np.load(path), np.load(clean / "cqt_feat" / path.relative_to(store))), path
    # a temporary file of a write cut short is never a feature; plant one to be sure it exists
    victim = store / sorted(finished)[0]
    (victim.parent / f".{victim.name}.4242.tmp").write_bytes(victim.read_bytes()[:200])
    # torn files behind a matching source record (a crash on a disk that lost the tail) are
    # recomputed, not reused: one cut in the data, one empty
    torn = [store / p for p in sorted(finished)[1:3]]
    torn[0].write_bytes(torn[0].read_bytes()[:1000])
    torn[1].write_bytes(b"")
    for p in torn:
        del finished[str(p.relative_to(store))]

    r = run("tools.extract_csi_features", str(killed), "--nj", "2", "--no_progress")
    assert r.returncode == 0, r.stderr
    assert f"-> {n_utts} utts ({n_utts - len(finished)} computed, {len(finished)} reused), 0 bad" in r.stderr
    after = finished_features(store)
    assert {p: after[p] for p in finished} == finished          # reused, not rewritten
    assert len(after) == n_utts and not list(store.glob("*/.*.tmp"))
    assert without_feat_dir(read_manifest(killed / "full.txt")) == without_feat_dir(read_manifest(clean / "full.txt"))
    for name in ("song_id.map", "song_id_num.map", "song_name_num.map", "bad.txt"):
        assert (killed / name).read_text() == (clean / name).read_text()
    for rec in read_manifest(killed / "full.txt"):
        assert (open(rec["feat"], "rb").read() ==
                (clean / "cqt_feat" / os.path.relpath(rec["feat"], store)).read_bytes()), rec["utt"]


# ---------------------------------------------------------------- stage 3

def training_exp(root, name, max_epochs):
    full = root / "data" / "full.txt"
    if not full.exists():
        rng = np.random.default_rng(0)
        lines = []
        for w in range(6):
            pattern = rng.uniform(-60, 0, 96)
            for v in range(4):
                feat = np.roll(pattern, v % 2)[None, :] + rng.normal(0, 8, (200, 96)) - 20
                path = root / "data" / "feat" / f"w{w}v{v}.npy"
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, feat.astype(np.float16))
                lines.append({"utt": f"w{w}v{v}", "song": f"work{w}", "song_id": w, "version_id": v,
                              "feat": str(path), "feat_len": 200})
        full.write_text("".join(json.dumps(r) + "\n" for r in lines))
    hp = {
        "train_path": str(full), "dev": {"query_path": str(full), "ref_path": str(full)},
        "chunk_frame": [60, 40], "mean_size": 2, "m_per_class": 2, "batch_size": 8, "num_workers": 0,
        "learning_rate": 0.002, "lr_decay": 0.99, "lr_decay_every_steps": 10, "min_lr": 1e-4,
        "spec_augmentation": {"random_erase": {"prob": 0.5, "erase_num": 2}, "roll_pitch": {"prob": 0.5, "shift_num": 12}},
        "seed": 7, "max_epochs": max_epochs, "log_every_steps": 1, "keep_last": 3, "save_every_steps": 2,
        "device": "cpu",
        "input_dim": 96, "embed_dim": 32, "encoder": {"output_dims": 32, "num_blocks": 1, "attention_dim": 64},
        "pool_type": "attention", "ce": {"output_dims": "auto", "weight": 1.0, "gamma": 2},
        "triplet": {"margin": 0.3, "weight": 0.1}, "center": {"weight": 0.0},
    }
    exp = root / name
    (exp / "config").mkdir(parents=True)
    (exp / "config" / "hparams.yaml").write_text(yaml.safe_dump(hp))
    return exp


def checkpoint_files(exp):
    d = ckpt.pt_dir(exp)
    return sorted(p for p in d.iterdir() if not p.name.startswith(".")) if d.is_dir() else []


def test_stage3_killed_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    epochs = 12
    clean, killed = training_exp(tmp_path, "clean", epochs), training_exp(tmp_path, "killed", epochs)
    r = run("tools.train", str(clean))
    assert r.returncode == 0, r.stderr
    total_steps = int(re.search(r"finished: \d+ epochs, (\d+) steps", r.stderr).group(1))

    proc = start("tools.train", str(killed))
    kill_when(proc, lambda: len(checkpoint_files(killed)) > 0)
    for path in checkpoint_files(killed):     # every checkpoint in place is whole
        torch.load(path, map_location="cpu", weights_only=True)
    found = ckpt.latest_state(killed)
    assert found is not None
    step = found[1]["step"]
    assert 0 < step < total_steps

    r = run("tools.train", str(killed))
    assert r.returncode == 0, r.stderr
    assert re.search(rf"resumed at epoch \d+, batch \d+, step {step}\b", r.stderr), r.stderr
    logged = [int(s) for s in re.findall(r"epoch \d+ step (\d+) ", r.stderr)]
    assert logged[0] == step + 1 and logged == list(range(step + 1, total_steps + 1))  # continues, no restart
    assert f"finished: {epochs} epochs, {total_steps} steps" in r.stderr
    assert ckpt.epochs(killed) == ckpt.epochs(clean)
    for e in ckpt.epochs(clean):               # the same model as without the kill
        a = torch.load(ckpt.pt_dir(clean) / f"g_{e:08d}", weights_only=True)["generator"]
        b = torch.load(ckpt.pt_dir(killed) / f"g_{e:08d}", weights_only=True)["generator"]
        assert all(torch.equal(a[k], b[k]) for k in a), e
    assert not list(ckpt.pt_dir(killed).glob(".*.tmp"))


def test_a_torn_checkpoint_is_skipped_for_the_one_before(tmp_path, caplog):
    gen = {"w": torch.arange(1000.0)}
    ckpt.save_epoch(tmp_path, 0, gen, {"step": 6})
    ckpt.save_epoch(tmp_path, 1, gen, {"step": 12})
    ckpt.save_resume(tmp_path, gen, {"step": 14})
    assert ckpt.latest_state(tmp_path)[1]["step"] == 14
    d = ckpt.pt_dir(tmp_path)
    (d / "resume.pt").write_bytes((d / "resume.pt").read_bytes()[:500])   # torn by a crash
    (d / "g_00000001").write_bytes(b"")
    generator, state = ckpt.latest_state(tmp_path)
    assert state["step"] == 6 and torch.equal(generator["w"], gen["w"])
    assert "resume.pt: unreadable checkpoint, skipped" in caplog.text
    assert "g_00000001: unreadable checkpoint, skipped" in caplog.text
    (d / "do_00000000").write_bytes(b"junk")
    assert ckpt.latest_state(tmp_path) is None
