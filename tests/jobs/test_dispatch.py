"""The job dispatcher on the local engine: JOB substituted in the command and the log, exit
statuses collected from the jobs' own status files, a failed or killed job named with its
log and re-run alone on the next run, and bad job specifications refused."""
import subprocess
import sys

import pytest

from jobs.__main__ import main
from jobs.dispatch import dispatch
from jobs.spec import JobArray, JobSpecError
from tests.helpers import REPO


def script(tmp_path, body: str):
    """A job script: `sh SCRIPT K` appends its run to runs.txt, then does BODY."""
    path = tmp_path / "job.sh"
    path.write_text(f'echo "job $1" >> {tmp_path}/runs.txt\necho "output of job $1"\n{body}\n')
    return path


def runs(tmp_path) -> list[str]:
    return sorted((tmp_path / "runs.txt").read_text().split("\n")[:-1])


def test_every_job_runs_once_with_its_number_and_log(tmp_path):
    job = script(tmp_path, "exit 0")
    out = dispatch(JobArray.parse("JOB=1:4", f"{tmp_path}/log/t.JOB.log", ["sh", str(job), "JOB"]), ["local"])
    assert out.ok and out.ran == [1, 2, 3, 4] and out.skipped == []
    assert runs(tmp_path) == [f"job {k}" for k in (1, 2, 3, 4)]
    for k in (1, 2, 3, 4):
        log = (tmp_path / "log" / f"t.{k}.log").read_text()
        assert f"output of job {k}" in log and f"job {k} ended (exit status 0)" in log
        assert (tmp_path / "log" / f"t.{k}.status").read_text() == "0\n"


def test_a_failed_job_is_named_and_the_next_run_reruns_it_alone(tmp_path):
    flag = tmp_path / "broken"
    flag.touch()
    job = script(tmp_path, f'[ "$1" != 3 ] || [ ! -e {flag} ] || {{ echo "job 3 is broken" >&2; exit 7; }}')
    array = JobArray.parse("JOB=1:4", f"{tmp_path}/log/t.JOB.log", ["sh", str(job), "JOB"])
    first = dispatch(array, ["local", "--max_parallel", "2"])
    assert not first.ok and len(first.failed) == 1
    assert first.failed[0].startswith("t.3: exit status 7; log ") and "job 3 is broken" in first.failed[0]
    flag.unlink()
    (tmp_path / "runs.txt").unlink()
    second = dispatch(array, ["local"])
    assert second.ok and second.ran == [3] and second.skipped == [1, 2, 4]
    assert runs(tmp_path) == ["job 3"]
    changed = JobArray.parse("JOB=1:4", array.log, list(array.command), signature="other inputs")
    assert dispatch(changed, ["local"]).ran == [1, 2, 3, 4]       # other inputs: all run again


def test_a_killed_job_has_no_exit_status_and_is_reported_so(tmp_path):
    job = script(tmp_path, '[ "$1" != 2 ] || kill -9 $PPID')      # job 2's wrapper dies with it
    out = dispatch(JobArray.parse("JOB=1:2", f"{tmp_path}/t.JOB.log", ["sh", str(job), "JOB"]), ["local"])
    assert [line.split(":")[0] for line in out.failed] == ["t.2"]
    assert "no exit status (killed, or lost with its node)" in out.failed[0]
    assert (tmp_path / "t.1.done").exists() and not (tmp_path / "t.2.done").exists()


@pytest.mark.parametrize("args, message", [
    (["JOB=0:2", "log/x.JOB.log", "true"], "numbered from 1"),
    (["JOB=1", "log/x.JOB.log", "true"], "expected JOB=FIRST:LAST"),
    (["JOB=1:2", "log/x.log", "true"], "name each job with JOB"),
    (["JOB=1:2", "log/x.JOB.log"], "no command"),
    (["--cmd", "pbs", "JOB=1:2", "log/x.JOB.log", "true"], "unknown engine 'pbs'"),
    (["--cmd", "local --max_parallel 0", "JOB=1:2", "log/x.JOB.log", "true"], "local takes only --max_parallel"),
])
def test_bad_specifications_are_refused_by_name(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_command_line_exit_status_and_summary(tmp_path):
    r = subprocess.run([sys.executable, "-m", "jobs", "JOB=1:3", f"{tmp_path}/t.JOB.log", "sh", "-c", "[ JOB != 2 ]"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "jobs: t 2/3 succeeded (3 run on local, 0 done before)" in r.stderr and "jobs: FAILED t.2: exit status 1" in r.stderr


def test_slurm_without_sbatch_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["--cmd", "slurm -p cpu", "JOB=1:2", f"{tmp_path}/t.JOB.log", "true"]) == 1
    assert "slurm: sbatch not found on PATH" in capsys.readouterr().err
    with pytest.raises(JobSpecError):
        JobArray.parse("JOB=2:1", "t.JOB.log", ["true"])
