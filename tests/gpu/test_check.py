"""The GPU check script: it skips with the reason where no CUDA device is, and its parts run
(on the CPU, ``--device cpu``) so that the script is known to work before a device is lent."""
import json
import subprocess
import sys

import pytest
import torch

from tests.helpers import REPO, run_bash


def test_without_a_gpu_the_check_skips_with_the_reason():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: run bash tests/gpu/check.sh itself")
    r = run_bash([str(REPO / "tests" / "gpu" / "check.sh")], timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["skipped"].startswith("no CUDA device")


def test_every_part_runs_on_the_cpu(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tests.gpu.check", "--device", "cpu", "--tracks", "300",
                        "--out", str(tmp_path / "gpu.json")], cwd=REPO, capture_output=True, text=True, timeout=400)
    figures = json.loads((tmp_path / "gpu.json").read_text())
    assert r.returncode == 0, figures
    assert figures["ok"] and {"cqt", "amp_training", "distances"} <= set(figures)
    assert figures["cqt"]["max_abs_db_above_-80"] == 0.0 and figures["amp_training"]["epochs"] == 4
    assert figures["distances"]["best_pairs"]["max_abs_diff"] == 0.0
