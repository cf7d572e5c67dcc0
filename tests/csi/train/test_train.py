"""Trainer: loss decreases, exact resume, NaN handling, checkpoints, 2-process gloo, config errors."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

import csi
from csi.scoring.metrics import average_precisions, mean_average_precision
from csi.registry import ConfigError
from csi.train import checkpoint as ckpt
from csi.train.config import parse_hparams
from csi.train.distributed import Context
from csi.train.trainer import Trainer, TrainingError
from tests.helpers import REPO, train_config

CPU = Context(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def make_features(root, n_works=8, per_work=4, frames=300, bins=96):
    """Recordings whose CQT carries a work-specific pitch pattern plus noise."""
    rng = np.random.default_rng(0)
    lines = []
    for w in range(n_works):
        pattern = rng.uniform(-60, 0, bins)
        for v in range(per_work):
            feat = np.roll(pattern, v % 2)[None, :] + rng.normal(0, 8, (frames, bins)) - 20
            path = root / "feat" / f"w{w}v{v}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, feat.astype(np.float16))
            lines.append({"utt": f"w{w}v{v}", "song": f"work{w}", "song_id": w, "version_id": v,
                          "feat": str(path), "feat_len": frames})
    (root / "full.txt").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return root / "full.txt"


def tiny_hparams(full, **extra):
    hp = {
        "train_path": str(full), "dev": {"query_path": str(full), "ref_path": str(full)},
        "chunk_frame": [60, 40], "mean_size": 2, "m_per_class": 2, "batch_size": 8, "num_workers": 0,
        "learning_rate": 0.002, "lr_decay": 0.99, "lr_decay_every_steps": 10, "min_lr": 1e-4,
        "spec_augmentation": {"random_erase": {"prob": 0.5, "erase_num": 2}, "roll_pitch": {"prob": 0.5, "shift_num": 12}},
        "seed": 7, "max_epochs": 3, "log_every_steps": 5, "keep_last": 2,
        "input_dim": 96, "embed_dim": 32, "encoder": {"output_dims": 32, "num_blocks": 1, "attention_dim": 64},
        "pool_type": "attention", "ce": {"output_dims": "auto", "weight": 1.0, "gamma": 2},
        "triplet": {"margin": 0.3, "weight": 0.1}, "center": {"weight": 0.0},
    }
    hp.update(extra)
    return hp


def make_exp(tmp_path, name="exp", **extra):
    full = tmp_path / "data" / "full.txt"
    if not full.exists():
        make_features(tmp_path / "data")
    exp = tmp_path / name
    (exp / "config").mkdir(parents=True)
    hp = tiny_hparams(full, **extra)
    (exp / "config" / "hparams.yaml").write_text(yaml.safe_dump(hp))
    return exp, hp


def recording_trainer(exp, hp):
    trainer = Trainer(exp, CPU, parse_hparams(hp))
    losses = []
    step = trainer._step

    def recorded(batch):
        out = step(batch)
        losses.append(out["total"] if out else math.nan)
        return out
    trainer._step = recorded
    return trainer, losses


def test_training_reduces_loss_and_saves_reference_format(tmp_path):
    exp, hp = make_exp(tmp_path, max_epochs=6)
    trainer, losses = recording_trainer(exp, hp)
    result = trainer.train()
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    assert result["best"]["map"] > 0.5
    saved = ckpt.epochs(exp)
    assert len(saved) == 2 or (len(saved) == 3 and result["best"]["epoch"] in saved)  # keep_last 2 (+ best)
    blob = torch.load(exp / "pt_model" / f"g_{saved[-1]:08d}", weights_only=True)
    assert set(blob) == {"generator"}
    best = torch.load(exp / "pt_model" / "g_best", weights_only=True)["generator"]
    of_best_epoch = torch.load(exp / "pt_model" / f"g_{result['best']['epoch']:08d}", weights_only=True)["generator"]
    assert all(torch.equal(best[k], of_best_epoch[k]) for k in best)
    model = csi.load_model(exp)
    assert not model.training
    emb, logits = model.inference(torch.zeros(2, 30, 96))
    assert emb.shape == (2, 32) and logits.shape == (2, 8)


def test_resume_reproduces_the_next_step(tmp_path):
    # steps come in groups of one batch per chunk length (2 here); max_steps is checked per group
    exp_a, hp = make_exp(tmp_path, "a", max_steps=8, save_every_steps=2)
    straight, losses_a = recording_trainer(exp_a, hp)
    straight.train()
    exp_b, hp_b = make_exp(tmp_path, "b", max_steps=4, save_every_steps=2)
    first, _ = recording_trainer(exp_b, hp_b)
    first.train()
    hp_b["max_steps"] = 8
    again, losses_b = recording_trainer(exp_b, hp_b)
    assert again.resume() and again.step == 4
    again.train()
    assert len(losses_b) == 4
    assert losses_b == pytest.approx(losses_a[4:8], rel=1e-6, abs=1e-6)


def test_nan_losses_are_skipped_then_stop_with_checkpoint_intact(tmp_path):
    exp, hp = make_exp(tmp_path, max_epochs=1, max_nan_steps=3)
    Trainer(exp, CPU, parse_hparams(hp)).train()
    before = ckpt.epochs(exp)
    hp["max_epochs"] = 3
    trainer = Trainer(exp, CPU, parse_hparams(hp))
    trainer.resume()
    trainer.model.compute_loss = lambda f, l: (torch.tensor(float("nan"), requires_grad=True), {"total": torch.tensor(float("nan"))})
    with pytest.raises(TrainingError, match="not finite for 3 steps"):
        trainer.train()
    assert ckpt.epochs(exp) == before and trainer.nan_skipped == 3


def test_unreadable_feature_is_replaced_and_counted(tmp_path):
    exp, hp = make_exp(tmp_path, max_epochs=1)
    (tmp_path / "data" / "feat" / "w0v0.npy").write_bytes(b"broken")
    trainer = Trainer(exp, CPU, parse_hparams(hp))
    trainer.train()
    assert trainer.history[0]["replaced_samples"] > 0


def test_config_errors_name_the_key(tmp_path):
    full = make_features(tmp_path)
    with pytest.raises(ConfigError, match="unknown key.*learning_rat\\b"):
        parse_hparams(tiny_hparams(full, learning_rat=0.1))
    hp = tiny_hparams(full)
    del hp["input_dim"]
    with pytest.raises(ConfigError, match="missing model section"):
        parse_hparams(hp)
    hp = tiny_hparams(full, ce={"output_dims": 4, "weight": 1.0, "gamma": 2})
    with pytest.raises(ConfigError, match="output_dims 4 is smaller than the 8 works"):
        Trainer(tmp_path, CPU, parse_hparams(hp))
    with pytest.raises(ConfigError, match="multiple of m_per_class"):
        parse_hparams(tiny_hparams(full, batch_size=7))
    one = make_features(tmp_path / "one", n_works=1)
    with pytest.raises(ConfigError, match="one/full.txt: the training set has 1 work"):
        Trainer(tmp_path, CPU, parse_hparams(tiny_hparams(one)))
    with pytest.raises(ConfigError, match="one/full.txt: the dev set 'dev' has 1 work"):
        Trainer(tmp_path, CPU, parse_hparams(tiny_hparams(full, dev={"query_path": str(one), "ref_path": str(one)})))


def test_cli_errors_and_two_process_gloo_training(tmp_path):
    exp, hp = make_exp(tmp_path, max_steps=4, num_workers=0)
    bad = tmp_path / "bad"
    (bad / "config").mkdir(parents=True)
    (bad / "config" / "hparams.yaml").write_text(yaml.safe_dump(dict(hp, bogus_key=1)))
    r = subprocess.run([sys.executable, "-m", "tools.train", str(bad)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 1 and "bogus_key" in r.stderr
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
                        "-m", "tools.train", str(exp)], cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "parameters identical on all 2 ranks" in r.stderr
    assert (exp / "train_run.yaml").exists() and (exp / "logs" / "train.log").exists()
    assert json.loads((exp / "train_result.json").read_text())["stopped_by"] == "max_steps"


def test_an_epoch_budget_gives_the_same_weights_twice(tmp_path):
    # the demo's budgets are epochs or steps, so one command gives one model on any machine; the
    # minutes are a guard (large here, as in the configs) and the result says what stopped training
    results, weights = [], []
    for name in ("one", "two"):
        exp, hp = make_exp(tmp_path, name, max_epochs=2, max_minutes=60)
        results.append(Trainer(exp, CPU, parse_hparams(hp)).train())
        weights.append(torch.load(exp / "pt_model" / "g_00000001", weights_only=True)["generator"])
    assert [r["stopped_by"] for r in results] == ["max_epochs", "max_epochs"]
    assert results[0]["steps"] == results[1]["steps"] > 0
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    exp, hp = make_exp(tmp_path, "guard", max_epochs=5, max_minutes=1e-6)
    assert Trainer(exp, CPU, parse_hparams(hp)).train()["stopped_by"] == "max_minutes"


def test_demo_configs_budget_epochs_not_minutes():
    for name in ("demo_quick", "demo_many_works", "demo_full", "demo_coverhunter", "bytecover_small", "demo_segments"):
        cfg = train_config(name)
        assert cfg.get("max_steps") or cfg["max_epochs"] <= 60, name
        assert cfg.get("max_minutes") is None or cfg["max_minutes"] >= 60, name     # only a guard


def test_average_checkpoints(tmp_path):
    exp, hp = make_exp(tmp_path, max_epochs=3, keep_last=5)
    Trainer(exp, CPU, parse_hparams(hp)).train()
    avg = ckpt.average(exp, ckpt.epochs(exp))
    one = torch.load(exp / "pt_model" / "g_00000000", weights_only=True)["generator"]
    two = torch.load(exp / "pt_model" / "g_00000001", weights_only=True)["generator"]
    three = torch.load(exp / "pt_model" / "g_00000002", weights_only=True)["generator"]
    key = next(k for k, v in one.items() if v.is_floating_point())
    assert torch.allclose(avg[key], (one[key] + two[key] + three[key]) / 3, atol=1e-6)
    for flag in (["--last", "2"], ["--best", "2"]):
        r = subprocess.run([sys.executable, "-m", "tools.average_checkpoints", str(exp), *flag], cwd=REPO,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    model = csi.load_model(exp, checkpoint="g_avg_best2")
    assert not model.training


def test_map_hand_computed():
    # query 0 (label A): refs ranked A, B, A -> AP = (1/1 + 2/3) / 2
    d = np.array([[0.1, 0.2, 0.3]])
    assert average_precisions(d, np.array(["A"]), np.array(["A", "B", "A"]))[0] == pytest.approx((1 + 2 / 3) / 2)
    # the query itself is excluded by index; a query without relevant reference is left out of MAP
    d = np.array([[0.0, 0.5, 0.2], [0.3, 0.0, 0.1]])
    exclude = np.array([[True, False, False], [False, True, False]])
    aps = average_precisions(d, np.array(["A", "C"]), np.array(["A", "C", "A"]), exclude)
    assert aps[0] == pytest.approx(1.0) and math.isnan(aps[1])
    assert mean_average_precision(d, ["A", "C"], ["A", "C", "A"], exclude) == pytest.approx(1.0)
