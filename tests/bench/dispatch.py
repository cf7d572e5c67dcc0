"""Stage 2 through the job dispatcher: wall time with N jobs against 1, locally and on a real
one-node Slurm (tests/jobs/slurm_cluster.py; root, Slurm installed). From the repository root:

    python3 -m tests.bench.dispatch DATA_DIR [--jobs 1,2] [--engines local,slurm]

DATA_DIR holds a dataset.txt (e.g. the demo's egs/synthcovers/data/<corpus>/val) and an
optional hparams.yaml. For each engine and job count, a copy of DATA_DIR is extracted from
scratch (`python3 -m jobs ... tools.extract_csi_features --shard JOB/N`, then `--merge N`).
Prints one JSON line: the workload, seconds per (engine, N), the speed-up of N jobs over 1,
and whether every run's full.txt equals the first one's.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def stage2(data: Path, n: int, engine: str, env: dict) -> float:
    t0 = time.perf_counter()
    tool = [sys.executable, "-m", "tools.extract_csi_features", str(data), "--no_progress"]
    subprocess.run([sys.executable, "-m", "jobs", "--cmd", engine, f"JOB=1:{n}", str(data / "log" / "f.JOB.log"),
                    *tool, "--shard", f"JOB/{n}"], cwd=REPO, env=env, check=True, capture_output=True)
    subprocess.run([*tool, "--merge", str(n)], cwd=REPO, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--jobs", default="1,2")
    parser.add_argument("--engines", default="local,slurm")
    args = parser.parse_args(argv)
    from tests.jobs import slurm_cluster

    counts = [int(n) for n in args.jobs.split(",")]
    lines = (args.data_dir / "dataset.txt").read_text().splitlines()
    seconds = sum(json.loads(line).get("dur_s", 0) for line in lines)
    figures = {"workload": {"data_dir": str(args.data_dir), "recordings": len(lines), "audio_s": round(seconds, 1),
                            "cores": os.cpu_count(), "slurm": "one node, --cpus-per-task 1"}}
    outputs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for engine in args.engines.split(","):
            env = dict(os.environ, PYTHONPATH=str(REPO))
            if engine == "slurm":
                why = slurm_cluster.missing()
                if why:
                    figures["slurm"] = f"skipped: {why}"
                    continue
                cluster = slurm_cluster.one_node_cluster(tmp / "cluster")
                env["SLURM_CONF"] = cluster.__enter__()["SLURM_CONF"]
                command = "slurm --cpus-per-task 1"
            else:
                cluster, command = None, "local"
            try:
                for n in counts:
                    data = tmp / f"{engine}_{n}"
                    data.mkdir()
                    for name in ("dataset.txt", "hparams.yaml"):
                        if (args.data_dir / name).exists():
                            shutil.copy(args.data_dir / name, data / name)
                    figures[f"{engine}_{n}_jobs_s"] = round(stage2(data, n, command, env), 1)
                    outputs.append((data / "full.txt").read_text().replace(str(data), ""))
                figures[f"{engine}_speedup_{counts[-1]}_vs_{counts[0]}"] = round(
                    figures[f"{engine}_{counts[0]}_jobs_s"] / figures[f"{engine}_{counts[-1]}_jobs_s"], 2)
            finally:
                if cluster is not None:
                    cluster.__exit__(None, None, None)
    figures["outputs_equal"] = all(o == outputs[0] for o in outputs)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
