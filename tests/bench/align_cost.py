"""Cost of stage 4 as the collection grows: alignment wall time and pairs/s for the first
N works of a manifest (N doubling), with the model's own embedding, plus one synthetic work
of many versions to show the per-work pair cap bounds the cost.

    python3 -m tests.bench.align_cost MODEL_DIR MANIFEST [--works 70 140 280] [--big_work 200]

Prints one JSON line: per size {works, recordings, pairs, seconds, pairs_per_s,
recordings_per_s}, and for the big work {versions, pairs aligned, pairs possible, seconds}.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("manifest")
    p.add_argument("--works", type=int, nargs="+", default=[70, 140, 280])
    p.add_argument("--big_work", type=int, default=200, help="versions of the synthetic work (0: skip)")
    args = p.parse_args()

    from csi.align.aligner import AlignSettings, AlignStats, align_collection
    from csi.modeldir import open_model
    from csi.io.manifest import read_manifest

    loaded = open_model(args.model_dir, "g_best", "cpu")
    records = read_manifest(args.manifest)
    order = list(dict.fromkeys(r["song"] for r in records))
    settings = AlignSettings()
    figures = {"settings": {"chunk_s": settings.chunk_s, "hop_s": settings.hop_s}, "sizes": []}
    for n in args.works:
        keep = set(order[:n])
        subset = [r for r in records if r["song"] in keep]
        stats, t0 = AlignStats(), time.time()
        pairs = sum(1 for _ in align_collection(loaded, subset, settings, stats))
        seconds = time.time() - t0
        figures["sizes"].append({"works": len(keep), "recordings": len(subset), "pairs": pairs,
                                 "seconds": round(seconds, 2), "pairs_per_s": round(pairs / seconds, 1),
                                 "recordings_per_s": round(len(subset) / seconds, 1)})
    if args.big_work:
        rng = np.random.default_rng(0)
        template = dict(records[0])
        big = [dict(template, utt=f"big-v{k}", song="big", feat=None) for k in range(args.big_work)]
        feats = [rng.normal(-40, 10, (750, 96)).astype(np.float32) for _ in big]

        class Reader:
            def __call__(self, rec):
                return feats[int(rec["utt"].rsplit("v", 1)[1])]
        loaded.reader = lambda: Reader()
        stats, t0 = AlignStats(), time.time()
        pairs = sum(1 for _ in align_collection(loaded, big, settings, stats))
        figures["big_work"] = {"versions": args.big_work, "pairs_aligned": pairs, "pairs_possible": stats.pairs_possible,
                               "seconds": round(time.time() - t0, 2)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
