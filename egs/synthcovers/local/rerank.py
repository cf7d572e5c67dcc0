"""Two-stage retrieval on a test split: the embedding search alone, re-ranked by Qmax on its
top K, and Qmax all-vs-all, side by side in one run.

    python3 egs/synthcovers/local/rerank.py MODEL_DIR MANIFEST OUT_DIR [--ks 10 50 100] [--checkpoint g_best]

MANIFEST is evaluated all-vs-all (``tools.eval_testset``, the model card's matching; the
embeddings are computed once and cached in OUT_DIR). For every K, ``--rerank qmax
--rerank_top K``; then ``qmax`` alone over every pair (``csi.baselines``, the same
records and excluded pairs). Query cost: the first stage's ranking time a query (embeddings
already computed) plus the alignment of its K pairs; Qmax alone: a query aligned with every
other reference at the measured pairs/s (features excluded in both). Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    from csi.baselines import evaluate_baselines
    from csi.io.manifest import read_manifest
    from tools import eval_testset

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("manifest")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--ks", type=int, nargs="+", default=[10, 50, 100])
    p.add_argument("--checkpoint", default="g_best")
    args = p.parse_args()

    def evaluate(*extra: str) -> dict:
        out = args.out_dir / ("rerank_" + "_".join(extra[1::2]) if extra else "embeddings")
        argv = [args.model_dir, args.manifest, args.manifest, "--checkpoint", args.checkpoint, "--out_dir",
                str(out), "--no_progress", *extra]
        if eval_testset.main(argv) != 0:
            raise SystemExit(f"eval_testset failed: {argv}")
        return json.loads((out / "metrics.json").read_text())

    def short(m: dict) -> dict:
        return {k: round(m[k], 4) for k in ("MAP", "MR1", "HR@1", "HR@10")}

    evaluate()                                  # embeddings into the cache, untimed
    alone = evaluate()
    n = alone["queries"]
    figures = {"workload": {"model_dir": args.model_dir, "checkpoint": args.checkpoint, "manifest": args.manifest,
                            "queries": n, "references": alone["references"]},
               "embeddings": {**short(alone), "ms_per_query": round(1000 * alone["time_metrics_s"] / n, 2)}}
    for k in args.ks:
        m = evaluate("--rerank", "qmax", "--rerank_top", str(k))
        figures[f"rerank_top{k}"] = {**short(m), "ms_per_query": m["rerank"]["first_stage_ms_per_query"]
                                     + m["rerank"]["align_ms_per_query"], "pairs_aligned": m["rerank"]["pairs_aligned"]}
    records = read_manifest(Path(args.manifest))
    q = evaluate_baselines(records, records, "qmax")["qmax"]
    figures["qmax_all_vs_all"] = {**short(q), "ms_per_query": round(1000 * (alone["references"] - 1) / q["pairs_per_s"], 2),
                                  "pairs_aligned": q["pairs"], "pairs_per_s": q["pairs_per_s"]}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
