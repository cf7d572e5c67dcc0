"""Render an offline demo corpus of cover sets from the music21 corpus.

    python3 -m tools.make_synth_covers --out DIR --works 80 --seed 0 [--nj 2]

Writes DIR/audio/<work>/<version>.flac (mono 16-bit FLAC), DIR/dataset.txt, query.txt
(first version of each work), ref.txt (the others) and make_synth_covers.yaml (arguments,
environment, summary). Same arguments and seed give identical files.
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


def _seed(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="make_synth_covers", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--works", type=_positive(int), required=True, help="number of works")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (>= 0)")
    p.add_argument("--nj", type=_positive(int), default=1, help="parallel worker processes")
    p.add_argument("--min_versions", type=int, default=2, help="fewest versions per work (>= 2)")
    p.add_argument("--max_versions", type=int, default=4, help="most versions per work (<= 12)")
    p.add_argument("--sr", type=int, default=22050, help="sample rate in Hz (8000-48000)")
    p.add_argument("--max_dur", type=float, default=90.0, help="longest version in seconds (>= 10)")
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
    from csi.demo.synth import NotEnoughWorks, make_synth_covers
    from csi.env import write_run_info

    start = time.time()
    try:
        summary = make_synth_covers(args.out, args.works, args.seed, nj=args.nj,
                                    min_versions=args.min_versions, max_versions=args.max_versions,
                                    sr=args.sr, max_dur=args.max_dur, cache_dir=args.cache_dir,
                                    progress=not args.no_progress)
    except NotEnoughWorks as e:
        print(f"make_synth_covers: error: {e}", file=sys.stderr)
        return 1
    elapsed = time.time() - start
    resolved = {k: v for k, v in vars(args).items() if k != "no_progress"}
    write_run_info(os.path.join(args.out, "make_synth_covers.yaml"), resolved, summary=summary)
    print(f"make_synth_covers: {summary['works']} works, {summary['tracks']} tracks, "
          f"{summary['audio_minutes']:.1f} min of audio in {elapsed:.1f} s -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
