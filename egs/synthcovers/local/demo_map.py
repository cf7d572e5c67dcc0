"""Test-set MAP of a trained model beside chance and the non-learned baselines. From the repo root:

    python3 egs/synthcovers/local/demo_map.py EXP_DIR QUERY_FULL_TXT [REF_FULL_TXT]

Prints one JSON line: ``model_map`` (chunks of the model's first chunk length, distance =
min over chunk pairs), ``chance_map`` (exact expectation of a random ranking), one
``<name>_map`` per baseline of ``csi.baselines`` (``chroma_mean_map``, ``2dftm_map``,
``mean_cqt_map``: mean CQT, not key-invariant), and the numbers of queries and references.
Query and reference default to the same file (all-vs-all); a query never ranks its own
recording or its tempo copies.
"""
from __future__ import annotations

import argparse
import json

import torch

from csi.baselines import evaluate_baselines
from csi.modeldir import open_model
from csi.eval.dev_map import evaluate_map
from csi.io.manifest import read_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exp_dir")
    parser.add_argument("query")
    parser.add_argument("ref", nargs="?")
    args = parser.parse_args()
    torch.set_num_threads(2)
    queries = read_manifest(args.query)
    refs = read_manifest(args.ref) if args.ref else queries
    loaded = open_model(args.exp_dir)
    figures = {"model_map": round(evaluate_map(loaded.model, queries, refs, loaded.card.chunking(), loaded.reader()), 4)}
    for name, metrics in evaluate_baselines(queries, refs, "all").items():
        figures[f"{name}_map"] = round(metrics["MAP"], 4)
    print(json.dumps({**figures, "queries": len(queries), "refs": len(refs)}))


if __name__ == "__main__":
    main()
