"""The command-line convention of the tools (csi/cli.py): --device, --no_progress, exit
statuses and one-line errors for every tools/ module; --set overrides checked against the
schema; CoverHunter's reference keys without an effect load with one warning each."""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from csi.cli import ToolError, apply_overrides, check_device_name, resolve_device, run_tool_main
from csi.config import from_dict, load_yaml
from csi.features.config import FeatureConfig, load_feature_config
from csi.registry import ConfigError
from csi.train.config import TrainConfig, parse_hparams
from tests.helpers import REPO

# name -> (argv whose input does not exist, shows a progress bar); None: the tool reads no input file
TOOLS = {
    "download": (["file:///nonexistent/csi/x.tgz", "x.tgz"], True),
    "download_youtube": (["missing_list.tsv", "--out_dir", "out"], True),
    "check_leakage": (["missing_a.txt", "missing_b.txt"], False),
    "extract_csi_features": (["missing_data_dir"], True),
    "average_checkpoints": (["missing_exp", "--last", "1"], False),
    "make_config": (["missing.yaml", "out.yaml"], False),
    "plot_learning_curve": (["missing_exp"], False),
    "eval_baseline": (["missing_q.txt", "missing_r.txt"], True),
    "split_manifest": (["missing.txt", "--out_dir", "out"], False),
    "make_synth_covers": (None, True),
    "train": (["missing_exp"], False),
    "identify": (["missing_index", "missing.wav"], False),
    "serve_identify": (["missing_index", "--port", "0"], False),
    "embed": (["missing_model", "missing.wav"], False),
    "build_index": (["missing_model", "missing.txt", "out"], True),
    "eval_testset": (["missing_model", "missing_q.txt", "missing_r.txt"], True),
    "alignment_for_frames": (["missing_model", "missing.txt", "out.jsonl"], True),
    "compare_metrics": (["a=missing.json"], False),
    "calibrate_matches": (["missing_model", "missing.txt", "out"], True),
    "generate_training_dataset": (["--input", "missing_dir"], True),
    "train_fingerprinter": (["--out_dir", "out", "static", "--train_path", "missing_train", "--val_path", "missing_val"], True),
    "generate_fingerprints": (["missing_model", "missing_dir", "--out_dir", "out"], True),
    "create_faiss_indexes": (["--input", "missing_fp", "--name", "refs"], False),
    "identify_fingerprint": (["missing_db", "missing.wav"], False),
    "eval_fingerprint": (["missing_db", "missing_refs", "--out_dir", "out"], False),
}


ALL = list(TOOLS)


def test_every_tool_is_covered():
    modules = {p.stem for p in (REPO / "tools").glob("*.py")} - {"__init__", "csi_command"}   # the `csi` front door
    assert modules == set(TOOLS)


class _Parsed(Exception):
    pass


def tool_parser(name: str, monkeypatch) -> argparse.ArgumentParser:
    """The parser a tool's ``main`` builds (caught at parse time, nothing is run)."""
    seen = {}

    def capture(self, args=None, namespace=None):
        seen["parser"] = self
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(_Parsed):
        importlib.import_module(f"tools.{name}").main([])
    return seen["parser"]


def _option(parser: argparse.ArgumentParser, flag: str):
    return next((a for a in parser._actions if flag in a.option_strings), None)


@pytest.mark.parametrize("name", ALL)
def test_device_and_progress_options(name, monkeypatch):
    parser = tool_parser(name, monkeypatch)
    device = _option(parser, "--device")
    if device is not None:
        # auto, or None for a tool whose config has a device key (itself default auto)
        assert device.default == "auto" or (device.default is None and "auto" in device.help)
    if TOOLS[name][1]:
        assert _option(parser, "--no_progress") is not None
    for action in parser._actions:   # time options in seconds, output directories --out_dir
        assert not any(s.endswith("_frames") for s in action.option_strings), action.option_strings
        if action.help != argparse.SUPPRESS:
            assert not set(action.option_strings) & {"--out_path", "--output", "--extract_to"}


@pytest.mark.parametrize("name", ALL)
def test_usage_error_exits_2(name, capsys):
    with pytest.raises(SystemExit) as e:
        importlib.import_module(f"tools.{name}").main(["--no_such_option"])
    assert e.value.code == 2
    assert "usage:" in capsys.readouterr().err


def _run_tool(name: str, argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", f"tools.{name}", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("name", [n for n in ALL if TOOLS[getattr(n, "values", [n])[0]][0] is not None])
def test_missing_input_exits_1_with_one_line(name, tmp_path):
    r = _run_tool(name, TOOLS[name][0], tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1, r.stderr
    assert len(lines) == 1 and lines[0].startswith(f"{name}: "), r.stderr
    assert "missing" in lines[0] or "nonexistent" in lines[0]
    assert sorted(os.listdir(tmp_path)) == []   # a failed run leaves nothing behind


# ---- devices ----------------------------------------------------------------------------
def test_device_names():
    for name in ("auto", "cpu", "cuda", "cuda:1"):
        assert check_device_name(name) == name
    for bad in ("gpu", "cuda:", "CPU", "", None):
        with pytest.raises(ConfigError, match="expected auto, cpu, cuda or cuda:N"):
            check_device_name(bad)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(ConfigError):
        from_dict(FeatureConfig, {"device": "gpu"})


# ---- --set overrides --------------------------------------------------------------------
def test_apply_overrides_reads_yaml_values_and_creates_mappings():
    config = {"a": 1, "early_stopping": None, "spec": {"x": 1}}
    apply_overrides(config, ["a=2", "b=[300, 200]", "c=true", "d=text", "spec.y=0.5", "early_stopping.dev_set=val",
                             "dev.query_path=q.txt", "e="])
    assert config == {"a": 2, "b": [300, 200], "c": True, "d": "text", "spec": {"x": 1, "y": 0.5},
                      "early_stopping": {"dev_set": "val"}, "dev": {"query_path": "q.txt"}, "e": None}
    for bad, message in [("novalue", "expects KEY=VALUE"), ("=3", "expects KEY=VALUE"), ("a..b=1", "expects KEY"),
                         ("a.b=1", "a is 2, not a mapping"), ("x=[1, 2", "not valid YAML")]:
        with pytest.raises(ConfigError, match=message):
            apply_overrides(config, [bad], where="h.yaml")


def _reference_hparams(**extra) -> dict:
    """CoverHunter's egs/covers80/config/hparams.yaml keys, with a dev set."""
    hp = load_yaml(REPO / "conf" / "train" / "coverhunter.yaml")
    hp.update({"covers80": {"query_path": "q.txt", "ref_path": "r.txt", "every_n_epoch_to_dev": 1}}, **extra)
    return hp


def test_set_override_is_checked_like_the_file():
    hp = apply_overrides(_reference_hparams(), ["max_epochs=7", "early_stopping.patience=3", "device=cpu"])
    parsed = parse_hparams(hp)
    assert parsed.train.max_epochs == 7 and parsed.train.early_stopping.patience == 3 and parsed.train.device == "cpu"
    in_file = _reference_hparams(bogus=1)
    with pytest.raises(ConfigError) as from_file:
        parse_hparams(in_file, where="h.yaml")
    with pytest.raises(ConfigError) as from_set:
        parse_hparams(apply_overrides(_reference_hparams(), ["bogus=1"]), where="h.yaml")
    assert str(from_set.value) == str(from_file.value) and "unknown key(s) bogus" in str(from_set.value)
    with pytest.raises(ConfigError, match="early_stopping: unknown key\\(s\\) patiense"):
        parse_hparams(apply_overrides(_reference_hparams(), ["early_stopping.patiense=3"]))
    with pytest.raises(ConfigError, match="max_epochs: expected an integer, got 'ten'"):
        parse_hparams(apply_overrides(_reference_hparams(), ["max_epochs=ten"]))
    assert parse_hparams(_reference_hparams(learning_rate="1e-3")).train.learning_rate == 0.001   # YAML 1.1's text


def test_feature_config_overrides(tmp_path):
    (tmp_path / "hparams.yaml").write_text("aug_speed_mode: [1.0]\nseed: 7\n")
    cfg = load_feature_config(tmp_path, ["seed=8", "reverb.prob=0.5", "device=cpu"])
    assert cfg.seed == 8 and cfg.reverb.prob == 0.5 and cfg.device == "cpu"
    with pytest.raises(ConfigError, match=r"hparams\.yaml \+ --set: unknown key\(s\) bogus"):
        load_feature_config(tmp_path, ["bogus=1"])
    with pytest.raises(ConfigError, match=r"reverb: unknown key\(s\) rt60"):
        load_feature_config(tmp_path, ["reverb.rt60=1"])


# ---- reference keys without an effect ----------------------------------------------------
def test_reference_decoy_keys_load_with_one_warning_each(caplog):
    hp = _reference_hparams(num_gpus=1, train_sample_path="data/train_sample.txt", dev_path="data/dev.txt")
    hp["covers80"].update(query_in_ref_path="qir.txt", save_name="c80")
    with caplog.at_level(logging.WARNING, logger="csi.config"):
        parsed = parse_hparams(hp, where="h.yaml")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5
    for key, why in [("num_gpus", "torchrun"), ("train_sample_path", "CE loss"), ("dev_path", "CE loss"),
                     ("covers80: query_in_ref_path", "eval_testset --query_in_ref_path"),
                     ("covers80: save_name", "not written to disk")]:
        assert any(f"h.yaml: {key}: ignored — " in line and why in line for line in lines), (key, lines)
    resolved = parsed.resolved()
    for key in ("num_gpus", "train_sample_path", "dev_path"):
        assert key not in resolved
    assert set(resolved["covers80"]) == {"query_path", "ref_path", "every_n_epoch_to_dev"}
    assert set(parsed.ignored) == {"num_gpus", "train_sample_path", "dev_path", "covers80.query_in_ref_path",
                                   "covers80.save_name"}
    assert resolved["grad_clip"] == TrainConfig.grad_clip       # defaults filled
    assert parse_hparams(resolved).resolved() == resolved         # the record loads again as hparams


def test_chunk_s_and_cqt_hop_must_match_the_front_end(caplog):
    from csi.features.frontend import resolve_frontend
    from csi.train.trainer import check_reference_keys

    cqt = resolve_frontend({"name": "coverhunter_cqt"})
    with caplog.at_level(logging.WARNING, logger="csi.config"):
        cfg = parse_hparams(_reference_hparams()).train     # chunk_s 135 = 1125 * 3 / 25: consistent
    assert not caplog.records
    check_reference_keys(cfg, cqt)
    with pytest.raises(ConfigError, match=r"chunk_s 30 does not match .* 3375 frames = 135 s at 25 frames/s"):
        check_reference_keys(parse_hparams(_reference_hparams(chunk_s=30)).train, cqt)
    with pytest.raises(ConfigError, match="set chunk_s: 24"):
        check_reference_keys(parse_hparams(_reference_hparams(chunk_frame=[200, 100])).train, cqt)
    faster = resolve_frontend({"name": "coverhunter_cqt", "hop_s": 0.02})     # 50 frames/s: 67.5 s
    with pytest.raises(ConfigError, match="set chunk_s: 67.5"):
        check_reference_keys(parse_hparams(_reference_hparams(cqt={})).train, faster)
    with pytest.raises(ConfigError, match="cqt.hop_size 0.04 differs"):
        check_reference_keys(parse_hparams(_reference_hparams(chunk_s=67.5, cqt={"hop_size": 0.04})).train, faster)


def test_noise_name_is_ignored_and_sr_checked(caplog):
    noise = {"prob": 0.75, "sr": 16000, "chunk": 3, "name": "cqt_with_asr_noise", "noise_path": "n.txt"}
    with caplog.at_level(logging.WARNING, logger="csi.config"):
        cfg = from_dict(FeatureConfig, {"aug_speed_mode": [0.8, 1.0], "add_noise": noise}, where="h.yaml")
    assert [r.getMessage() for r in caplog.records] == [
        "h.yaml: add_noise: name: ignored — a label in CoverHunter's file; nothing reads it"]
    assert not hasattr(cfg.add_noise, "name") and cfg.add_noise.sr == 16000
    with pytest.raises(ConfigError, match="add_noise: sr 22050 differs from the feature rate sr 16000"):
        from_dict(FeatureConfig, {"add_noise": dict(noise, sr=22050)})


# ---- run_tool_main, renamed options ------------------------------------------------------
def test_run_tool_main_statuses(capsys):
    assert run_tool_main("t", lambda: None) == 0
    assert run_tool_main("t", lambda: 3) == 3
    assert run_tool_main("t", lambda: {"summary": 1}) == 0

    def fail(error):
        raise error
    assert run_tool_main("t", lambda: fail(ToolError("bad\ninput"))) == 1
    assert run_tool_main("t", lambda: fail(FileNotFoundError(2, "No such file or directory", "x.txt"))) == 1
    assert capsys.readouterr().err.splitlines() == ["t: bad input", "t: x.txt: No such file or directory"]
    with pytest.raises(ZeroDivisionError):   # a bug is not an input error
        run_tool_main("t", lambda: 1 / 0)


def test_renamed_options_still_work_with_a_warning(tmp_path, capsys):
    from tools import download, make_synth_covers, split_manifest

    args = make_synth_covers.parse_args(["--out", str(tmp_path), "--works", "3", "--max_dur", "20"])
    assert args.out_dir == str(tmp_path) and args.max_dur_s == 20.0
    err = capsys.readouterr().err
    assert "--out is deprecated, use --out_dir" in err and "--max_dur is deprecated, use --max_dur_s" in err
    with pytest.raises(SystemExit) as e:
        make_synth_covers.parse_args(["--works", "3"])
    assert e.value.code == 2 and "--out_dir" in capsys.readouterr().err
    args = split_manifest.parse_args(["in.txt", str(tmp_path), "--by_field", "split"])
    assert args.out_dir == tmp_path and "deprecated, use --out_dir" in capsys.readouterr().err
    args = download.build_parser().parse_args(["u", "d", "--extract_to", "x", "--timeout", "5"])
    assert args.out_dir == "x" and args.timeout_s == 5.0


# ---- run records -------------------------------------------------------------------------
def test_train_run_record_holds_resolved_values(tmp_path):
    from tests.csi.train.test_train import make_exp

    exp, hp = make_exp(tmp_path, max_epochs=1, num_gpus=2, chunk_s=4.8, train_sample_path="x.txt")
    r = _run_tool("train", [str(exp), "--set", "bogus.key=1"], tmp_path)
    assert r.returncode == 1 and "+ --set: unknown key(s) bogus" in r.stderr.strip().splitlines()[-1]
    r = _run_tool("train", [str(exp), "--set", "triplet.margin=0.2"], tmp_path)
    assert r.returncode == 1 and "--set triplet.margin: a model key is changed in the experiment's config" in r.stderr
    r = _run_tool("train", [str(exp), "--max_steps", "2", "--set", "seed=11", "--set", "early_stopping.patience=4",
                            "--device", "cpu"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "num_gpus: ignored — the number of processes comes from torchrun" in r.stderr
    record = yaml.safe_load((exp / "train_run.yaml").read_text())
    config = record["config"]
    assert config["max_steps"] == 2 and config["seed"] == 11 and config["device"] == "cpu"
    assert config["early_stopping"] == {"patience": 4, "dev_set": None}
    assert config["triplet"]["margin"] == 0.3 and config["ce"]["output_dims"] == 8   # model keys, resolved
    assert config["grad_clip"] == 1.0 and config["dev"]["every_n_epoch_to_dev"] == 1   # defaults filled
    assert not {"num_gpus", "train_sample_path"} & set(config) and config["chunk_s"] == 4.8   # checked: kept
    assert record["overrides"] == ["seed=11", "early_stopping.patience=4", "max_steps=2", "device=cpu"]
    assert set(record["ignored_keys"]) == {"num_gpus", "train_sample_path"}
    assert record["environment"]["packages"]["torch"] and "tools.train" in record["environment"]["command"]
    assert "ignored — " in (exp / "logs" / "train.log").read_text()
