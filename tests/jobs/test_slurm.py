"""Job dispatch on a real Slurm: a one-node cluster started on this machine (slurm_cluster.py)
runs job arrays through ``sbatch --array``: exit statuses collected, a failed, cancelled or
killed task named and re-run alone; and the demo recipe's stage 2 through Slurm writes what
the local run writes."""
import subprocess
import sys

import numpy as np
import pytest

from jobs.dispatch import dispatch
from jobs.spec import JobArray
from tests.helpers import REPO, run_bash
from tests.jobs import slurm_cluster

pytestmark = pytest.mark.skipif(slurm_cluster.missing() is not None, reason=str(slurm_cluster.missing()))


@pytest.fixture(scope="module")
def slurm(tmp_path_factory, monkeypatch_module):
    with slurm_cluster.one_node_cluster(tmp_path_factory.mktemp("slurm")) as env:
        monkeypatch_module.setenv("SLURM_CONF", env["SLURM_CONF"])
        yield env


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_array_tasks_report_their_statuses_and_the_failed_ones_rerun_alone(tmp_path, slurm):
    broken = tmp_path / "broken"
    broken.touch()
    body = (f'echo "job $1 on $SLURM_JOB_ID" >> {tmp_path}/runs.txt\n'
            f'[ -e {broken} ] || exit 0\n'
            '[ "$1" != 2 ] || exit 3\n'
            '[ "$1" != 3 ] || { scancel "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"; sleep 30; }\n'
            '[ "$1" != 4 ] || kill -9 $PPID\n')
    (tmp_path / "job.sh").write_text(body)
    array = JobArray.parse("JOB=1:4", f"{tmp_path}/log/t.JOB.log", ["sh", str(tmp_path / "job.sh"), "JOB"])
    first = dispatch(array, ["slurm", "--cpus-per-task", "1"])
    names = {line.split(":")[0]: line for line in first.failed}
    assert sorted(names) == ["t.2", "t.3", "t.4"]
    assert "exit status 3;" in names["t.2"] and "log " in names["t.2"]
    assert "signal 15" in names["t.3"] or "no exit status" in names["t.3"]       # cancelled
    assert "no exit status (killed, or lost with its node)" in names["t.4"]
    assert "job 1 on " in (tmp_path / "runs.txt").read_text() and (tmp_path / "log" / "t.1.done").exists()
    broken.unlink()
    (tmp_path / "runs.txt").unlink()
    second = dispatch(array, ["slurm"])
    assert second.ok and second.ran == [2, 3, 4] and second.skipped == [1]
    assert sorted(line.split(" on ")[0] for line in (tmp_path / "runs.txt").read_text().splitlines()) == \
        ["job 2", "job 3", "job 4"]


def test_a_refused_submission_is_an_error_with_sbatchs_reason(tmp_path, slurm):
    r = subprocess.run([sys.executable, "-m", "jobs", "--cmd", "slurm --partition nosuch", "JOB=1:2",
                        f"{tmp_path}/t.JOB.log", "true"], cwd=REPO, capture_output=True, text=True, env=slurm, timeout=60)
    assert r.returncode == 1 and "slurm: sbatch refused the jobs" in r.stderr and "nosuch" in r.stderr


def test_demo_stage_2_through_slurm_equals_the_local_run(tmp_path, slurm):
    pytest.importorskip("music21")
    pytest.importorskip("tinysoundfont")
    run = str(REPO / "egs" / "synthcovers" / "run.sh")
    common = ["--works", "6", "--corpus_dir", str(tmp_path / "corpus")]
    local = run_bash([run, "--stop_stage", "2", "--nj", "2", "--data", str(tmp_path / "local"), *common], timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]
    on_slurm = run_bash([run, "--stage", "1", "--stop_stage", "2", "--nj", "3", "--cmd", "slurm --cpus-per-task 1",
                         "--data", str(tmp_path / "slurm"), *common], timeout=600)
    assert on_slurm.returncode == 0, on_slurm.stderr[-3000:]
    assert any("python3 -m jobs --cmd slurm" in line and "JOB=1:3" in line for line in on_slurm.stderr.splitlines())
    for subset in ("train", "val", "test", "test_hard"):
        a, b = tmp_path / "local" / subset, tmp_path / "slurm" / subset
        for name in ("full.txt", "bad.txt", "song_id.map"):
            assert (a / name).read_text().replace(str(a), "") == (b / name).read_text().replace(str(b), ""), (subset, name)
        for k in (1, 2, 3):
            log = (b / "log" / f"features.{k}.log").read_text()
            assert f"job {k} ended (exit status 0)" in log and f"shard {k}/3:" in log
        for feat in sorted((a / "cqt_feat").glob("??/*.npy")):
            assert np.array_equal(np.load(feat), np.load(b / "cqt_feat" / feat.relative_to(a / "cqt_feat"))), feat
