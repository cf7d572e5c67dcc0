"""Render an offline demo corpus of cover sets from the music21 corpus.

    python3 -m tools.make_synth_covers --out DIR --works 400 --seed 0 [--nj 2]
    python3 -m tools.make_synth_covers --out DIR --works all --seed 0 [--nj 2]

Writes DIR/audio/<work>/<version>.flac (mono 16-bit FLAC), DIR/dataset.txt, query.txt
(first version of each work), ref.txt (the others) and make_synth_covers.yaml (arguments,
environment, summary). Every record carries its work's "split" (train/val/test, from a
hash of the work id); val and test works are rendered with instruments, effects and
noises that no train work uses. Same arguments and seed give identical files.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def _positive(kind):
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def _works(text):
    if text == "all":
        return None
    return _positive(int)(text)


def _fraction(text):
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1), got {text}")
    return value


def _range(text):
    lo, sep, hi = text.partition("-")
    try:
        bounds = (int(lo), int(hi) if sep else int(lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX or N, got {text!r}") from None
    return bounds


def _seed(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="make_synth_covers", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--works", type=_works, required=True,
                   help="number of works, or 'all' for every usable version group and single chorale")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (>= 0)")
    p.add_argument("--nj", type=_positive(int), default=1, help="parallel worker processes")
    p.add_argument("--val_fraction", type=_fraction, default=0.1,
                   help="share of works in the val split (by hash of the work id; 0: no val split)")
    p.add_argument("--test_fraction", type=_fraction, default=0.2,
                   help="share of works in the test split (by hash of the work id; 0: no test split)")
    p.add_argument("--train_versions", type=_range, default=(4, 8), metavar="MIN-MAX",
                   help="versions per train work (default 4-8; 2 <= MIN <= MAX <= 12)")
    p.add_argument("--min_versions", type=int, default=2, help="fewest versions per val/test work (>= 2)")
    p.add_argument("--max_versions", type=int, default=4, help="most versions per val/test work (<= 12)")
    p.add_argument("--sr", type=int, default=16000,
                   help="sample rate in Hz (8000-48000; default 16000, the rate of the CQT features)")
    p.add_argument("--max_dur", type=float, default=60.0, help="longest version in seconds (>= 10)")
    p.add_argument("--cache_dir", default=None,
                   help="music21 scratch/parse cache and corpus catalog (default $CSI_MUSIC21_DIR "
                        "or ~/.cache/csi/music21)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    parser = get_parser()
    args = parser.parse_args(argv)
    if not 2 <= args.min_versions <= args.max_versions <= 12:
        parser.error(f"need 2 <= --min_versions <= --max_versions <= 12, "
                     f"got {args.min_versions} and {args.max_versions}")
    lo, hi = args.train_versions
    if not 2 <= lo <= hi <= 12:
        parser.error(f"need 2 <= MIN <= MAX <= 12 in --train_versions, got {lo}-{hi}")
    if args.val_fraction + args.test_fraction >= 1.0:
        parser.error(f"--val_fraction + --test_fraction must be < 1, got {args.val_fraction} + {args.test_fraction}")
    if not 8000 <= args.sr <= 48000:
        parser.error(f"--sr must be within 8000-48000, got {args.sr}")
    if not args.max_dur >= 10:
        parser.error(f"--max_dur must be >= 10 seconds, got {args.max_dur}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from csi.demo import DemoDependencyError, check_dependencies
    try:
        check_dependencies()
    except DemoDependencyError as e:
        print(f"make_synth_covers: error: {e}", file=sys.stderr)
        return 1
    from csi.demo.synth import NotEnoughWorks, SplitError, make_synth_covers
    from csi.env import write_run_info

    start = time.time()
    try:
        summary = make_synth_covers(args.out, args.works, args.seed, nj=args.nj,
                                    min_versions=args.min_versions, max_versions=args.max_versions,
                                    sr=args.sr, max_dur=args.max_dur, cache_dir=args.cache_dir,
                                    progress=not args.no_progress, val_fraction=args.val_fraction,
                                    test_fraction=args.test_fraction, train_versions=args.train_versions)
    except (NotEnoughWorks, SplitError) as e:
        print(f"make_synth_covers: error: {e}", file=sys.stderr)
        return 1
    elapsed = time.time() - start
    resolved = {k: v for k, v in vars(args).items() if k != "no_progress"}
    resolved["works"] = "all" if args.works is None else args.works
    resolved["train_versions"] = list(args.train_versions)
    summary["seconds"]["total_s"] = round(elapsed, 1)
    write_run_info(os.path.join(args.out, "make_synth_covers.yaml"), resolved, summary=summary)
    kinds = ", ".join(f"{n} {k}" for k, n in summary["works_by_kind"].items())
    splits = ", ".join(f"{s} {n} works/{summary['tracks_by_split'][s]} tracks"
                       for s, n in summary["works_by_split"].items())
    print(f"make_synth_covers: works by kind: {kinds}; by split: {splits}", file=sys.stderr)
    print(f"make_synth_covers: {summary['works']} works, {summary['tracks']} tracks, "
          f"{summary['audio_minutes']:.1f} min of audio in {elapsed:.1f} s -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
