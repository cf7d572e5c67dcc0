"""A real one-node Slurm cluster on this machine for the dispatch tests: munged, slurmctld and
slurmd from the distribution's packages (utils/install.sh installs them when root), each
with its configuration, state, sockets and logs under a temporary directory and on free ports,
so that nothing of the host's Slurm (if any) is touched. Root only: slurmd starts the jobs."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol")


def missing() -> str | None:
    """Why no cluster can be started here, or None."""
    absent = [d for d in DAEMONS if shutil.which(d) is None and not os.path.exists(f"/usr/sbin/{d}")]
    if absent:
        return f"Slurm/munge not installed ({', '.join(absent)} missing; utils/install.sh installs them as root)"
    if os.getuid() != 0:
        return "a one-node Slurm cluster needs root (slurmd starts the jobs as their users)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _daemon(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _config(root: Path, cpus: int) -> str:
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2 ** 20 // 2
    return "\n".join([
        "ClusterName=csitest", "SlurmctldHost=localhost",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", f"AuthInfo=socket={root}/munge/socket", "CredType=cred/munge",
        f"StateSaveLocation={root}/state", f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/slurmctld.pid", f"SlurmdPidFile={root}/slurmd.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log", f"SlurmdLogFile={root}/log/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",    # no cgroups in a container
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "MpiDefault=none", "ReturnToService=2", "SchedulerType=sched/backfill",
        f"NodeName=localhost CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP", ""])


@contextlib.contextmanager
def one_node_cluster(root: Path, cpus: int | None = None):
    """Start the cluster; yield the environment its clients need (``SLURM_CONF``); stop it."""
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "munge").chmod(0o700)
    key = root / "munge" / "key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    conf = root / "slurm.conf"
    conf.write_text(_config(root, cpus or os.cpu_count() or 1))
    env = dict(os.environ, SLURM_CONF=str(conf))
    started = []
    try:
        subprocess.run([_daemon("munged"), "--force", f"--socket={root}/munge/socket", f"--key-file={key}",
                        f"--log-file={root}/log/munged.log", f"--pid-file={root}/munge/pid",
                        f"--seed-file={root}/munge/seed"], check=True, capture_output=True, timeout=30)
        started.append(root / "munge" / "pid")
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([_daemon(daemon)], check=True, env=env, capture_output=True, timeout=60)
            started.append(root / f"{daemon}.pid")
        deadline = time.time() + 60
        while True:
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout.strip()
            if state == "idle":
                break
            if time.time() > deadline:
                raise RuntimeError(f"the one-node cluster did not come up (node state {state!r}); logs in {root}/log")
            time.sleep(0.5)
        yield env
    finally:
        for pid_file in reversed(started):
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), 15)
        time.sleep(0.5)
