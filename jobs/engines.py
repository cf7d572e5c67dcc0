"""The engines that start a job array's jobs: ``local`` (processes on this machine, as Kaldi's
run.pl) and ``slurm`` (one ``sbatch --array`` submission, as slurm.pl). Each starts every job
as ``python3 -m jobs.task`` with the job's log as its output and returns once all ended; the
jobs' exit statuses are read from their status files by :mod:`jobs.dispatch`."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from jobs.spec import PLACEHOLDER, JobArray, JobSpecError

ROOT = Path(__file__).resolve().parents[1]      # the jobs must import this package
STATUS_POLL_S, QUEUE_POLL_S = 0.5, 5.0


class EngineError(RuntimeError):
    """An engine that could not start the jobs (no sbatch, a refused submission)."""


def task_command(array: JobArray, job: str) -> list[str]:
    return [sys.executable, "-m", "jobs.task", job, array.status_template, "--", *array.command]


def _environment() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep + path if path else ''}")


def run_local(array: JobArray, jobs: list[int], options: list[str]) -> None:
    """Run the jobs as processes here, at most ``--max_parallel M`` at once (default: all),
    each with its share of the cores as ``OMP_NUM_THREADS`` unless that is set."""
    max_parallel = len(jobs)
    if options:
        if len(options) != 2 or options[0] != "--max_parallel" or not options[1].isdigit() or int(options[1]) < 1:
            raise JobSpecError(f"local takes only --max_parallel M (M >= 1), got {' '.join(options)!r}")
        max_parallel = int(options[1])
    env, running = _environment(), []
    if "OMP_NUM_THREADS" not in env:     # the cores shared out: oversubscribed torch jobs crawl
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // min(max_parallel, len(jobs))))
    for job in jobs:
        while len(running) >= max_parallel:
            running = [p for p in running if p.poll() is None]
            time.sleep(0.05)
        with open(array.log_of(job), "w") as log:
            running.append(subprocess.Popen(task_command(array, str(job)), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env))
    for p in running:
        p.wait()


def run_slurm(array: JobArray, jobs: list[int], options: list[str]) -> None:
    """Submit the jobs as one array job (``sbatch --array=…``, sbatch options given after
    ``slurm``, e.g. ``slurm -p cpu --time 2:00:00 --cpus-per-task 4``) and wait for it. A file
    system shared with the compute nodes is assumed (the logs, the data, this Python)."""
    if shutil.which("sbatch") is None:
        raise EngineError("slurm: sbatch not found on PATH (is this a Slurm submission host?)")
    first_log = array.log_of(jobs[0])
    script = first_log.parent / f".{array.name}.sbatch"
    body = shlex.join(task_command(array, "$SLURM_ARRAY_TASK_ID")).replace("'$SLURM_ARRAY_TASK_ID'", '"$SLURM_ARRAY_TASK_ID"')
    script.write_text("#!/usr/bin/env bash\n"
                      f"# {array.name}: written by python3 -m jobs for sbatch --array\n"
                      f"cd {shlex.quote(os.getcwd())}\n"
                      f"export PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}\n"
                      f"exec {body}\n")
    output = array.log.replace("%", "%%").replace(PLACEHOLDER, "%a")
    command = ["sbatch", "--parsable", f"--array={','.join(map(str, jobs))}",
               f"--job-name={array.name}", f"--output={output}", *options, str(script)]
    r = subprocess.run(command, capture_output=True, text=True, env=_environment())
    job_id = r.stdout.strip().split(";")[0]
    if r.returncode or not job_id.isdigit():
        raise EngineError(f"slurm: sbatch refused the jobs (exit status {r.returncode}): "
                          f"{(r.stderr or r.stdout).strip()}\n  command: {shlex.join(command)}")
    try:
        _wait_for_array(array, jobs, job_id)
    except KeyboardInterrupt:                # the dispatcher stopped by hand: so are its jobs
        subprocess.run(["scancel", job_id], capture_output=True, env=_environment())
        raise


def _wait_for_array(array: JobArray, jobs: list[int], job_id: str) -> None:
    """Until every task wrote its status, or Slurm no longer lists any task of the array
    (those without a status were killed or lost). The status files are looked at every
    STATUS_POLL_S, ``squeue`` asked every QUEUE_POLL_S (``sbatch --wait`` polls at growing
    intervals: a 15-s job took 45 s to be seen finished)."""
    last_queue = time.time()
    while True:
        time.sleep(STATUS_POLL_S)
        if all(array.status_of(job).exists() for job in jobs):
            return
        if time.time() - last_queue >= QUEUE_POLL_S:
            last_queue = time.time()
            queue = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i"], capture_output=True, text=True,
                                   env=_environment())
            if queue.returncode == 0 and not queue.stdout.strip():
                time.sleep(QUEUE_POLL_S)          # a status written on another node may take a moment to show
                return


ENGINES = {"local": run_local, "slurm": run_slurm}
