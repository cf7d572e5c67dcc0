"""Calibrated matches: fit P(best match is of the same work | distance) on a validation set.

    python3 -m tools.calibrate_matches MODEL_DIR VAL_MANIFEST OUT_DIR [--method platt|isotonic]
        [--fit_fraction 0.5] [--checkpoint C] [--batch_size N] [--device D] [--no_progress]

Every recording of VAL_MANIFEST (works never trained on) queries the others through the one
embedding path and the model's own track distance (its card's ``matching``); the top-1
distance and whether it is of the same work are recorded. A logistic (Platt) or isotonic
map (``--method``; both are fitted and reported) is fitted on the queries of
``--fit_fraction`` of the works (fixed by a hash of the work id) and its expected
calibration error measured on the others. The file names the model's checkpoint and the
distance: identify refuses it for another model or distance. Writes
OUT_DIR/calibration.json (pass an index directory as OUT_DIR: ``tools.identify`` then prints
``p_same_work`` per hit), reliability.png and calibrate_matches.yaml, and prints one JSON
line. Exit status 0; 1 on bad input; 2 on a usage error.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from csi.cli import add_checkpoint_arg, add_device_arg, add_progress_arg, run_tool_main, setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument("val_manifest", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--method", choices=("platt", "isotonic"), default="platt", help="the map written")
    p.add_argument("--fit_fraction", type=float, default=0.5, help="share of the works the map is fitted on")
    add_checkpoint_arg(p)
    p.add_argument("--batch_size", type=int, default=32)
    add_device_arg(p)
    add_progress_arg(p)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.fit_fraction < 1:
        parser.error("--fit_fraction must be in (0, 1)")
    setup_logging()
    return run_tool_main("calibrate_matches", lambda: calibrate(args), (ValueError,))


def calibrate(args: argparse.Namespace) -> int:
    from csi.modeldir import open_model
    from csi.env import write_run_info
    from csi.eval.top1 import top1_matches
    from csi.scoring.calibration import (expected_calibration_error, fit_isotonic, fit_platt, reliability_plot,
                                         split_by_work)
    from csi.io.manifest import read_manifest

    loaded = open_model(args.model_dir, args.checkpoint, args.device)
    records = read_manifest(args.val_manifest, required=("utt", "song"))
    distance, correct, works = top1_matches(loaded, records, args.batch_size, not args.no_progress)
    fit = split_by_work(works, args.fit_fraction)
    if fit.all() or not fit.any():
        raise ValueError(f"{args.val_manifest}: too few works to hold some out ({len(set(works))})")
    fitted = {"platt": fit_platt(distance[fit], correct[fit]), "isotonic": fit_isotonic(distance[fit], correct[fit])}
    figures = {}
    for method, cal in fitted.items():
        suffix = "" if method == args.method else f"_{method}"
        figures[f"ece_heldout{suffix}"] = round(expected_calibration_error(cal.probability(distance[~fit]),
                                                                           correct[~fit]), 4)
        figures[f"ece_fit{suffix}"] = round(expected_calibration_error(cal.probability(distance[fit]), correct[fit]), 4)
    calibration = fitted[args.method].with_source(loaded.identity(), loaded.card.matching.to_dict())
    p_out = calibration.probability(distance[~fit])
    figures.update({"method": args.method, "distance": loaded.card.matching.distance,
                    "top1_accuracy_heldout": round(float(correct[~fit].mean()), 4),
                    "queries_fit": int(fit.sum()), "queries_heldout": int((~fit).sum())})
    if args.method == "platt":
        figures.update(a=round(calibration.a, 4), b=round(calibration.b, 4))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    calibration.save(args.out_dir)
    reliability_plot(args.out_dir / "reliability.png", p_out, correct[~fit],
                     title=f"held-out works: ECE {figures['ece_heldout']:.3f}")
    write_run_info(args.out_dir / "calibrate_matches.yaml",
                   {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                    "checkpoint": loaded.checkpoint.name}, figures=figures)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
