"""One job, as every engine starts it: ``python3 -m jobs.task JOB STATUS_TEMPLATE -- COMMAND...``.

Replaces JOB in the status path and the command by the job number, prints a header, runs the
command with this process's stdout/stderr (the job's log), prints a footer and writes the exit
status to the status file (atomically). A job killed with SIGKILL, or lost with its machine,
writes none; SIGTERM (Slurm's scancel or time limit) is passed on to the command and
recorded as its exit status.
"""
from __future__ import annotations

import datetime
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

from jobs.spec import PLACEHOLDER


def _now() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def write_status(path: str, code: int) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{code}\n")
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: python3 -m jobs.task JOB STATUS_TEMPLATE -- COMMAND...", file=sys.stderr)
        return 2
    job, status, command = argv[0], argv[1].replace(PLACEHOLDER, argv[0]), [a.replace(PLACEHOLDER, argv[0]) for a in argv[3:]]
    print(f"# {shlex.join(command)}", flush=True)
    print(f"# job {job} started on {socket.gethostname()} at {_now()}", flush=True)
    t0 = time.time()
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env and env.get("SLURM_CPUS_PER_TASK", "").isdigit():
        env["OMP_NUM_THREADS"] = env["SLURM_CPUS_PER_TASK"]      # the cores Slurm gave this task
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as e:
        print(f"# cannot start the command: {e}", flush=True)
        write_status(status, 127)
        return 127
    signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum))
    code = child.wait()
    code = 128 - code if code < 0 else code          # killed by signal N: 128 + N, as a shell says
    print(f"# job {job} ended (exit status {code}) at {_now()}, {time.time() - t0:.1f} s", flush=True)
    write_status(status, code)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
