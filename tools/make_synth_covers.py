"""Render an offline demo corpus of cover sets from the music21 corpus.

    python3 -m tools.make_synth_covers --out_dir DIR --works 400 --seed 0 [--nj 2]
    python3 -m tools.make_synth_covers --out_dir DIR --works all --seed 0 [--nj 2]

    python3 -m tools.make_synth_covers --out_dir DIR --works 400 --generated_works 1600

Writes DIR/audio/<work>/<version>.flac (mono 16-bit FLAC), DIR/dataset.txt, query.txt
(first version of each work), ref.txt (the others) and make_synth_covers.yaml (settings
used, environment, summary with the cover statistics drawn from and measured). Every
record carries its work's "split" (train/val/test from a hash of the work id; generated
works are train works; test_hard: the test works again, every version in another key);
val and test works are rendered with instruments, effects and noises that no train work
uses. Versions differ like covers (synthcovers.covers): key kept or moved, tempo, intros,
outros, solos, repeated and dropped phrases, lead-in silence. Same arguments and seed give identical files. The
old spellings ``--out`` and ``--max_dur`` still work, with a warning. Exit status 1 when
the corpus cannot be made, 2 on a usage error.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from csi.cli import add_progress_arg, add_renamed_arg, run_tool_main


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="make_synth_covers", description=__doc__.split("\n\n")[0])
    p.add_argument("--out_dir", help="output directory (required)")
    add_renamed_arg(p, "--out", "--out_dir")
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
    p.add_argument("--generated_works", type=int, default=0, metavar="N",
                   help="also N generated train works: new tunes from a melody model fitted on the train "
                        "works only (synthcovers.generate), to grow the training set past the music21 corpus")
    p.add_argument("--no_hard_test", action="store_true",
                   help="leave out the hard test split (the test works again, every version in a different "
                        "key; split 'test_hard')")
    p.add_argument("--sr", type=int, default=16000,
                   help="sample rate in Hz (8000-48000; default 16000, the rate of the CQT features)")
    p.add_argument("--max_dur_s", type=float, default=60.0, help="longest version in seconds (>= 10)")
    add_renamed_arg(p, "--max_dur", "--max_dur_s", type=float)
    p.add_argument("--cache_dir", default=None,
                   help="music21 scratch/parse cache and corpus catalog (default $CSI_MUSIC21_DIR "
                        "or ~/.cache/csi/music21)")
    add_progress_arg(p)
    return p


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out_dir is None:
        parser.error("the following arguments are required: --out_dir")
    if not 2 <= args.min_versions <= args.max_versions <= 12:
        parser.error(f"need 2 <= --min_versions <= --max_versions <= 12, "
                     f"got {args.min_versions} and {args.max_versions}")
    lo, hi = args.train_versions
    if not 2 <= lo <= hi <= 12:
        parser.error(f"need 2 <= MIN <= MAX <= 12 in --train_versions, got {lo}-{hi}")
    if args.val_fraction + args.test_fraction >= 1.0:
        parser.error(f"--val_fraction + --test_fraction must be < 1, got {args.val_fraction} + {args.test_fraction}")
    if args.generated_works < 0:
        parser.error(f"--generated_works must be >= 0, got {args.generated_works}")
    if not 8000 <= args.sr <= 48000:
        parser.error(f"--sr must be within 8000-48000, got {args.sr}")
    if not args.max_dur_s >= 10:
        parser.error(f"--max_dur_s must be >= 10 seconds, got {args.max_dur_s}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from synthcovers import DemoDependencyError
    from synthcovers.generate import LeakageError
    from synthcovers.synth import NotEnoughWorks, SplitError
    return run_tool_main("make_synth_covers", lambda: run(args),
                         (DemoDependencyError, NotEnoughWorks, SplitError, LeakageError))


def run(args: argparse.Namespace) -> None:
    from synthcovers import check_dependencies
    from synthcovers.synth import make_synth_covers
    from csi.env import write_run_info

    check_dependencies()
    start = time.time()
    summary = make_synth_covers(args.out_dir, args.works, args.seed, nj=args.nj,
                                min_versions=args.min_versions, max_versions=args.max_versions,
                                sr=args.sr, max_dur=args.max_dur_s, cache_dir=args.cache_dir,
                                progress=not args.no_progress, val_fraction=args.val_fraction,
                                test_fraction=args.test_fraction, train_versions=args.train_versions,
                                generated_works=args.generated_works, hard_test=not args.no_hard_test)
    elapsed = time.time() - start
    resolved = {k: v for k, v in vars(args).items() if k != "no_progress"}
    resolved["works"] = "all" if args.works is None else args.works
    summary["seconds"]["total_s"] = round(elapsed, 1)
    write_run_info(os.path.join(args.out_dir, "make_synth_covers.yaml"), resolved, summary=summary)
    kinds = ", ".join(f"{n} {k}" for k, n in summary["works_by_kind"].items())
    splits = ", ".join(f"{s} {n} works/{summary['tracks_by_split'][s]} tracks"
                       for s, n in summary["works_by_split"].items())
    print(f"make_synth_covers: works by kind: {kinds}; by split: {splits}", file=sys.stderr)
    print(f"make_synth_covers: {summary['works']} works, {summary['tracks']} tracks, "
          f"{summary['audio_minutes']:.1f} min of audio in {elapsed:.1f} s -> {args.out_dir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
