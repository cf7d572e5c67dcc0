"""Fine training (stage 5) against more coarse training at the same CPU budget.

    python3 egs/synthcovers/local/fine_vs_coarse.py COARSE_EXP TRAIN_MANIFEST TEST_MANIFEST OUT_DIR
        [--steps 400] [--seeds 1 2 3] [--min_confidence 0.5] [--learning_rate 0.0005]

From the same coarse checkpoint (``g_best``) every arm trains ``--steps`` optimizer steps:
"random" continues training on random chunks (a fine config whose ``min_confidence`` 1.0
uses no alignment); "fine" trains on chunks cut at the positions of the alignment of
TRAIN_MANIFEST (stage 4, timed and reported: its cost is the fine arm's extra). Each arm's
``g_best`` (chosen on the coarse config's dev sets) is evaluated on TEST_MANIFEST
all-vs-all. Prints one JSON line: test MAP per seed, mean and standard deviation per arm,
the coarse model's MAP and the alignment time. Budgets are steps, so the machine's load
changes the time, not the models.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_map(model: Path, test: str, out: Path) -> float:
    run("tools.eval_testset", str(model), test, test, "--checkpoint", "g_best", "--out_dir", str(out),
        "--no_progress")
    return json.loads((out / "metrics.json").read_text())["MAP"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("coarse")
    p.add_argument("train")
    p.add_argument("test")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--min_confidence", type=float, default=0.5)
    p.add_argument("--learning_rate", type=float, default=0.0005)
    args = p.parse_args()

    align = args.out_dir / "align" / "train.jsonl"
    t0 = time.time()
    if not align.exists():
        run("tools.alignment_for_frames", args.coarse, args.train, str(align), "--checkpoint", "g_best",
            "--no_progress")
    align_min = (time.time() - t0) / 60
    maps: dict[str, list[float]] = {"random": [], "fine": []}
    for seed in args.seeds:
        for arm in ("random", "fine"):
            exp = args.out_dir / f"{arm}-s{seed}"
            if not (exp / "eval_test" / "metrics.json").exists():
                run("tools.make_config", f"{args.coarse}/config/hparams.yaml", str(exp / "config" / "hparams.yaml"),
                    "--set", f"train_path={args.train}", "--set", f"seed={seed}", "--set", f"max_steps={args.steps}",
                    "--set", "max_epochs=100000", "--set", "max_minutes=null",
                    "--set", f"learning_rate={args.learning_rate}", "--set", f"fine.init_dir={args.coarse}",
                    "--set", f"fine.alignment_path={align}", "--set", "fine.init_checkpoint=g_best",
                    "--set", f"fine.min_confidence={1.0 if arm == 'random' else args.min_confidence}")
                run("tools.train", str(exp))
            maps[arm].append(round(test_map(exp, args.test, exp / "eval_test"), 4))
    coarse = round(test_map(Path(args.coarse), args.test, args.out_dir / "coarse_eval"), 4)
    print(json.dumps({"coarse_map": coarse, "steps": args.steps, "align_minutes": round(align_min, 2),
                      "seeds": args.seeds, **{f"{arm}_maps": v for arm, v in maps.items()},
                      **{f"{arm}_mean": round(statistics.mean(v), 4) for arm, v in maps.items()},
                      **{f"{arm}_sd": round(statistics.stdev(v), 4) if len(v) > 1 else 0.0 for arm, v in maps.items()}}))


if __name__ == "__main__":
    main()
