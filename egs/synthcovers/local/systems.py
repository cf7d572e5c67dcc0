"""Systems side by side on the demo at the same CPU budget (README "Systems on the demo").

    python3 egs/synthcovers/local/systems.py DATA OUT_DIR [--systems NAME=CONFIG ...] [--seeds 1 2 3]
        [--steps 600] [--threads 1] [--baselines all]

DATA is a demo data directory (``train/``, ``val/``, ``test/`` with ``full.txt``: stage 1–2
of egs/synthcovers). For every system and seed, the config (a name in conf/train or a path)
is trained on ``train`` for ``--steps`` optimizer steps on ``--threads`` threads (the same
budget for all, whatever the machine's load; 600 steps are about 6 minutes of the quick
config on one thread), ``g_best`` is
chosen on ``val`` and evaluated on the held-out works and timbres of ``test`` all-vs-all with
the track comparison written in its model card (chunking, distance). Runs already evaluated
are skipped, so the bench resumes. Prints the table (MAP mean ± sd over seeds, HR@1, epochs)
beside chance and the non-learned baselines, writes it to OUT_DIR/table.md and prints one
JSON line of figures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SYSTEMS = ["pitch_cnn=demo_quick", "coverhunter=demo_coverhunter", "bytecover=bytecover_small",
                   "segments=demo_segments"]


def run(args: list[str], env: dict[str, str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        subprocess.run([sys.executable, "-m", *args], check=True, stdout=f, stderr=subprocess.STDOUT, env=env,
                       cwd=ROOT)


def config_path(name: str) -> Path:
    path = Path(name)
    return path if path.suffix in (".yaml", ".yml") else ROOT / "conf" / "train" / f"{name}.yaml"


def train_and_eval(config: Path, data: Path, exp: Path, seed: int, steps: int, env: dict[str, str],
                   baselines: str) -> dict:
    metrics = exp / "eval_test" / "metrics.json"
    if not metrics.exists():
        sets = [f"train_path={data}/train/full.txt", f"val.query_path={data}/val/full.txt",
                f"val.ref_path={data}/val/full.txt", "early_stopping.dev_set=val", f"seed={seed}",
                f"max_steps={steps}", "max_epochs=100000", "max_minutes=null"]
        run(["tools.make_config", str(config), str(exp / "config" / "hparams.yaml"),
             *[a for s in sets for a in ("--set", s)]], env, exp / "bench.log")
        run(["tools.train", str(exp)], env, exp / "bench.log")
        test = str(data / "test" / "full.txt")
        run(["tools.eval_testset", str(exp), test, test, "--checkpoint", "g_best", "--out_dir", str(exp / "eval_test"),
             "--no_progress", *(["--baselines", baselines] if baselines else [])], env, exp / "bench.log")
    result = json.loads(metrics.read_text())
    history = json.loads((exp / "history.json").read_text())
    result["epochs"] = len(history)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--systems", nargs="+", default=DEFAULT_SYSTEMS, metavar="NAME=CONFIG")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--baselines", default="all")
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    data = args.data.resolve()
    rows, figures, reference = [], {}, None
    for spec in args.systems:
        name, _, config = spec.partition("=")
        runs = [train_and_eval(config_path(config or name), data, args.out_dir.resolve() / f"{name}-s{seed}", seed,
                               args.steps, env, args.baselines) for seed in args.seeds]
        reference = reference or runs[0]
        maps = [r["MAP"] for r in runs]
        mean, sd = statistics.mean(maps), statistics.stdev(maps) if len(maps) > 1 else 0.0
        hr1 = statistics.mean(r["HR@1"] for r in runs)
        distance = runs[0].get("distance", "min") + (f" k={runs[0]['best_pairs_k']}" if "best_pairs_k" in runs[0]
                                                      else "")
        epochs = "/".join(str(r["epochs"]) for r in runs)
        rows.append(f"| {name} ({config or name}) | {distance} | {mean:.4f} ± {sd:.4f} | {hr1:.3f} | {epochs} |")
        figures[name] = {"maps": [round(m, 4) for m in maps], "mean": round(mean, 4), "sd": round(sd, 4),
                         "hr1": round(hr1, 4), "epochs": [r["epochs"] for r in runs]}
    others = ([("chance", reference["chance"])] if "chance" in reference else []) + \
        sorted(reference.get("baselines", {}).items())
    for label, m in others:
        rows.append(f"| {label} (non-learned) | – | {m['MAP']:.4f} | {m['HR@1']:.3f} | – |")
        figures[label] = {"mean": round(m["MAP"], 4), "hr1": round(m["HR@1"], 4)}
    table = ["| system (config) | track distance | test MAP (mean ± sd) | HR@1 | epochs |",
             "|---|---|---|---|---|", *rows]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "table.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    print(json.dumps({"workload": {"data": str(data), "steps": args.steps, "threads": args.threads,
                                   "seeds": args.seeds, "test_tracks": reference.get("queries")}, **figures}))


if __name__ == "__main__":
    main()
