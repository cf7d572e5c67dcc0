"""The recipe template egs/TEMPLATE/csi1/csi.sh: every recipe calls it once for stages 2-6,
each stage logs the `python3 -m tools.…` command lines it runs (no log line over 1,000
characters), and a training writes exp/<name>/run.sh, which resumes and finishes it."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.helpers import REPO, run_bash, tiny_coverhunter_config

TEMPLATE = REPO / "egs" / "TEMPLATE" / "csi1" / "csi.sh"
RECIPES = sorted(p for p in (REPO / "egs").glob("*/run.sh") if p.parent.name not in ("fingerprint", "TEMPLATE"))
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \([^)]*\) ")


def long_lines(text, limit=1000):
    return [line[:120] + "..." for line in text.replace("\r", "\n").splitlines() if len(line) > limit]


def test_every_recipe_is_short_and_calls_the_template_once():
    assert {p.parent.name for p in RECIPES} >= {"covers80", "datacos", "discogs_vi", "shs100k", "synthcovers"}
    for run in RECIPES:
        text = run.read_text()
        assert len(text.splitlines()) <= 80, run
        calls = re.findall(r'^[^#\n]*"\$CSI_ROOT/egs/TEMPLATE/csi1/csi\.sh" --stage "\$stage" --stop_stage "\$stop_stage"',
                           text, re.M)
        assert len(calls) == 1, (run, calls)
    assert os.access(TEMPLATE, os.X_OK)
    lib = (REPO / "utils" / "lib.sh").read_text()
    for name in ("features_stage", "train_stage", "align_stage", "fine_stage", "eval_stage", "compare_stage",
                 "split_stages", "split_features", "best_checkpoint"):
        assert f"{name}()" not in lib, name
    for path in [*RECIPES, TEMPLATE, TEMPLATE.with_name("stages.sh"), REPO / "utils" / "lib.sh"]:
        assert "best_checkpoint" not in path.read_text(), path


def test_a_recipe_run_logs_the_command_of_each_stage(tmp_path):
    """covers80 stages 1-6 with a tiny model: every stage logs its tool command lines
    (timestamped), both trainings write run.sh, no log line is over 1,000 characters."""
    from tests.recipes.test_covers80 import make_tree

    make_tree(tmp_path / "c80", base_s=4)
    tiny_coverhunter_config(tmp_path / "tiny.yaml")
    exp = tmp_path / "exp"
    r = run_bash([str(REPO / "egs" / "covers80" / "run.sh"), "--stage", "1", "--covers80_dir", str(tmp_path / "c80"),
                  "--data", str(tmp_path / "data"), "--exp", str(exp), "--train_config", str(tmp_path / "tiny.yaml")],
                 timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert long_lines(r.stderr) == [] and long_lines(r.stdout) == []
    sections = re.split(r"===== stage (\d): [^\n]* =====\n", r.stderr)
    logged = {}
    for n, body in zip(sections[1::2], sections[2::2]):
        logged.setdefault(int(n), []).extend(
            line for line in body.splitlines() if STAMP.match(line) and " python3 -m tools." in line)
    wanted = {2: ["jobs", "tools.extract_csi_features"],    # NJ shard jobs (python3 -m jobs), then the merge 3: ["tools.make_config", "tools.train"],
              4: ["jobs", "tools.alignment_for_frames"], 5: ["tools.make_config", "tools.train"],
              6: ["tools.eval_testset", "tools.eval_testset", "tools.compare_metrics"]}
    for n, tools in wanted.items():
        assert [line.split(" python3 -m ")[1].split()[0] for line in logged[n]] == tools, (n, logged.get(n))
    assert f"python3 -m tools.train {exp}\n" in r.stderr
    for model in (exp, tmp_path / "exp_fine"):
        script = (model / "run.sh").read_text()
        assert script.splitlines()[-1] == f"python3 -m tools.train {model}"
        assert os.access(model / "run.sh", os.X_OK)


def _tiny_training(root):
    """A training config on stored features (a few works of noisy patterns), long enough to be killed."""
    import numpy as np

    rng = np.random.default_rng(0)
    (root / "data" / "feat").mkdir(parents=True)
    lines = []
    for w in range(6):
        pattern = rng.uniform(-60, 0, 96)
        for v in range(4):
            path = root / "data" / "feat" / f"w{w}v{v}.npy"
            np.save(path, (np.roll(pattern, v % 2)[None, :] + rng.normal(0, 8, (200, 96)) - 20).astype(np.float16))
            lines.append(json.dumps({"utt": f"w{w}v{v}", "song": f"work{w}", "song_id": w, "version_id": v,
                                     "feat": str(path), "feat_len": 200}) + "\n")
    (root / "data" / "full.txt").write_text("".join(lines))
    hp = {"chunk_frame": [60, 40], "mean_size": 2, "m_per_class": 2, "batch_size": 8, "num_workers": 0,
          "learning_rate": 0.002, "seed": 7, "max_epochs": 12, "log_every_steps": 1, "keep_last": 3,
          "save_every_steps": 2, "device": "cpu", "input_dim": 96, "embed_dim": 32,
          "encoder": {"output_dims": 32, "num_blocks": 1, "attention_dim": 64}, "pool_type": "attention",
          "ce": {"output_dims": "auto", "weight": 1.0, "gamma": 2}, "triplet": {"margin": 0.3, "weight": 0.1},
          "center": {"weight": 0.0}}
    (root / "conf.yaml").write_text(yaml.safe_dump(hp))


def test_the_training_run_script_resumes_an_interrupted_training(tmp_path):
    _tiny_training(tmp_path)
    exp = tmp_path / "exp" / "m"
    args = ["bash", str(TEMPLATE), "--stage", "3", "--stop_stage", "3", "--data", str(tmp_path / "data"),
            "--exp", str(exp), "--train_config", str(tmp_path / "conf.yaml"), "--train_set", ".", "--valid_set", "",
            "--test_sets", "", "--dev_sets", f"dev={tmp_path / 'data' / 'full.txt'}"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while not [p for p in (exp / "pt_model").glob("*") if not p.name.startswith(".")]:   # a whole checkpoint
        assert proc.poll() is None, f"stage 3 ended (status {proc.returncode}) before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (exp / ".train.done").exists()
    script = (exp / "run.sh").read_text()
    assert script.splitlines()[-1] == f"python3 -m tools.train {exp}"
    assert "dev:" in (exp / "config" / "hparams.yaml").read_text()

    r = subprocess.run(["bash", str(exp / "run.sh")], cwd="/", env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert re.search(r"resumed at epoch \d+, batch \d+, step [1-9]", r.stderr), r.stderr[-3000:]
    assert "finished: 12 epochs" in r.stderr and (exp / "pt_model" / "g_00000011").is_file()

    r = run_bash(args[1:], cwd=tmp_path)       # the stage finds it finished and marks it done
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resuming {exp}" in r.stderr and (exp / ".train.done").is_file()
    assert "python3 -m tools.train" in r.stderr and long_lines(r.stderr) == []
    r = run_bash(args[1:], cwd=tmp_path)
    assert r.returncode == 0 and "already done for these inputs" in r.stderr
    assert " python3 -m tools.train " not in r.stderr


def test_stages_not_built_are_skipped_unless_asked_for(tmp_path):
    tiny_coverhunter_config(tmp_path / "tiny.yaml")
    args = [str(TEMPLATE), "--stage", "4", "--stop_stage", "5", "--data", str(tmp_path), "--exp", str(tmp_path / "exp"),
            "--train_config", str(tmp_path / "tiny.yaml"), "--fine_not_built", "not for this input"]
    r = run_bash(args)
    assert r.returncode != 0 and "stage 4 (chunk alignment (not for this input)) is not built yet" in r.stderr
    # run by a recipe that was given no stage option: skipped with a line
    r = run_bash(["-c", 'CSI_GIVEN_OPTIONS="exp" bash "$@"', "x", *args])
    assert r.returncode == 0, r.stderr
    assert "stage 4: chunk alignment (not for this input) is not built yet: skipped" in r.stderr
    assert "stage 5: fine training (not for this input) is not built yet: skipped" in r.stderr


def test_long_command_lines_are_logged_on_several_lines():
    words = [f"--set=key{i}=/some/long/path/{'x' * 40}/{i}" for i in range(60)]
    quoted = " ".join(f"'{w}'" for w in words)
    r = run_bash(f". {REPO}/utils/lib.sh\nlog_command python3 -m tools.make_config {quoted}")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) > 1 and long_lines(r.stderr) == [] and all(STAMP.match(line) for line in lines)
    text = " ".join(re.sub(STAMP, "", line).rstrip(" \\").strip() for line in lines)
    assert text.split() == ["python3", "-m", "tools.make_config", *words]
