"""Test MAP against the number of training works (and training seeds), beside chance and
the non-learned baselines. From the repo root, after stages 0-2 of egs/synthcovers:

    python3 egs/synthcovers/local/learning_curve.py DATA_DIR OUT_DIR [--config conf/train/demo_quick.yaml]
        [--fractions 0.25,0.5,1.0] [--seeds 1234] [--steps 1700]

DATA_DIR holds ``train/full.txt``, ``val/full.txt`` and ``test/full.txt``. For every
fraction f and seed s, the first f of the training works (in a seeded order; the smaller
sets are subsets of the larger ones) train the config for ``--steps`` optimizer steps
(``max_steps``; the same budget for every point, so smaller sets see more epochs; the
machine's load does not change it) into
``OUT_DIR/works<N>_seed<S>``; the checkpoint with the best val MAP (``g_best``) is
evaluated on the test works (all-vs-all, the one embedding path of stage 6). Writes
``OUT_DIR/map_vs_works.png`` and prints one JSON line: per point the number of works and
test MAP, the mean and spread over seeds, and the baselines' and chance's test MAP (the
same on DATA_DIR/test_hard, the hard every-key-distinct split, when there is one).
Runs one training at a time (two at once on 2 cores collapse throughput).
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
import yaml

from csi.io.manifest import read_manifest, write_manifest


def subset_manifest(records: list[dict], fraction: float, seed: int) -> list[dict]:
    """Recordings of the first ``fraction`` of the works, works in a fixed seeded order."""
    works = sorted({r["song"] for r in records})
    random.Random(seed).shuffle(works)
    keep = set(works[:max(2, round(fraction * len(works)))])
    return [r for r in records if r["song"] in keep]


def test_sets(data: Path) -> dict[str, list[dict]]:
    """The test split, and the hard test split when DATA_DIR has one (test_hard/full.txt)."""
    names = ["test"] + (["test_hard"] if (data / "test_hard" / "full.txt").exists() else [])
    return {name: read_manifest(data / name / "full.txt") for name in names}


def train_point(config: dict, train: list[dict], data: Path, exp: Path, seed: int, steps: int) -> dict[str, float]:
    """Train one point (resumes if interrupted) and return g_best's MAP per test set."""
    from csi.modeldir import open_model
    from csi.eval.dev_map import evaluate_map
    from tools import train as train_tool

    exp.mkdir(parents=True, exist_ok=True)
    write_manifest(exp / "train.txt", train)
    hp = dict(config, train_path=str(exp / "train.txt"), seed=seed, max_steps=steps, max_epochs=100000, max_minutes=None,
              val={"query_path": str(data / "val" / "full.txt"), "ref_path": str(data / "val" / "full.txt")})
    (exp / "config").mkdir(exist_ok=True)
    (exp / "config" / "hparams.yaml").write_text(yaml.safe_dump(hp, sort_keys=False))
    if not (exp / "pt_model" / "g_best").exists() or not (exp / "done").exists():
        if train_tool.main([str(exp)]) != 0:
            raise RuntimeError(f"training failed in {exp}")
        (exp / "done").touch()
    loaded = open_model(exp, "g_best")
    return {name: evaluate_map(loaded.model, test, test, loaded.card.chunking(), loaded.reader())
            for name, test in test_sets(data).items()}


def baseline_maps(manifest: Path, records: list[dict], out_dir: Path) -> dict[str, float]:
    """Test MAP of chance and every non-learned baseline on ``records`` (read from
    ``manifest``) all-vs-all, cached in OUT_DIR under the manifest's SHA-256 (Qmax takes
    minutes; a changed manifest recomputes)."""
    from csi.baselines import evaluate_baselines
    from csi.utils import file_sha256

    cache = out_dir / f"baselines_{manifest.parent.name}.json"
    digest = file_sha256(manifest)
    cached = json.loads(cache.read_text()) if cache.exists() else {}
    if cached.get("sha256") == digest:
        return cached["MAP"]
    maps = {b: round(float(m["MAP"]), 4) for b, m in evaluate_baselines(records, records, "all").items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"manifest": str(manifest), "sha256": digest, "MAP": maps}))
    tmp.replace(cache)
    return maps


def plot(points: list[dict], refs: dict[str, float], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    xs = [p["works"] for p in points]
    seeds = len(points[0]["test_map"]) if points else 0
    ax.errorbar(xs, [p["map_mean"] for p in points], yerr=[p["map_std"] for p in points], marker="o", capsize=3,
                label=f"model (g_best), mean ± std over {seeds} seeds" if seeds > 1 else "model (g_best), 1 seed")
    for k, (name, value) in enumerate(sorted(refs.items(), key=lambda kv: -kv[1])):
        ax.axhline(value, linestyle="--", linewidth=1, color=f"C{k + 1}", label=name)
    ax.set_xlabel("training works")
    ax.set_ylabel("test MAP (unseen works, unseen timbres)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--config", type=Path, default=Path("conf/train/demo_quick.yaml"))
    parser.add_argument("--fractions", default="0.25,0.5,1.0")
    parser.add_argument("--seeds", default="1234")
    parser.add_argument("--steps", type=int, default=1700)
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    records = read_manifest(args.data_dir / "train" / "full.txt")
    tests = test_sets(args.data_dir)
    fractions = [float(f) for f in args.fractions.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    points = []
    for fraction in fractions:
        train = subset_manifest(records, fraction, seed=0)
        n_works = len({r["song"] for r in train})
        maps = [train_point(config, train, args.data_dir, args.out_dir / f"works{n_works}_seed{seed}", seed,
                            args.steps) for seed in seeds]
        point = {"works": n_works, "tracks": len(train), "test_map": [round(m["test"], 4) for m in maps],
                 "map_mean": round(float(np.mean([m["test"] for m in maps])), 4),
                 "map_std": round(float(np.std([m["test"] for m in maps])), 4)}
        if "test_hard" in tests:
            hard = [m["test_hard"] for m in maps]
            point.update(test_hard_map=[round(m, 4) for m in hard], hard_map_mean=round(float(np.mean(hard)), 4),
                         hard_map_std=round(float(np.std(hard)), 4))
        points.append(point)
    refs, hard_refs = {}, {}
    for name, test in tests.items():
        (refs if name == "test" else hard_refs).update(
            baseline_maps(args.data_dir / name / "full.txt", test, args.out_dir))
    test = tests["test"]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    plot(points, refs, args.out_dir / "map_vs_works.png")
    print(json.dumps({"points": points, "baselines": refs, **({"baselines_test_hard": hard_refs} if hard_refs else {}),
                      "steps_per_point": args.steps,
                      "config": str(args.config), "test_works": len({r["song"] for r in test}),
                      "test_tracks": len(test), "plot": str(args.out_dir / "map_vs_works.png")}))


if __name__ == "__main__":
    main()
