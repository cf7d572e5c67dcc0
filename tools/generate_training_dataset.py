"""Static training pairs for neural audio fingerprinting (contrastive, 1-s segments at 8 kHz).

    python3 -m tools.generate_training_dataset -i WAV_DIR [--segments 5] [--train_fraction 0.8] [--ir_dir IR_DIR]
        [--noise_dir NOISE_DIR] [-o OUT] [--seed 0] [--no_progress]

Every audio file under WAV_DIR (recursively) gives -n random whole non-overlapping 1-s
segments (as many as fit when fewer); files are split train/validation by --train_fraction. Each segment
(the anchor) gets a positive: the segment shifted by up to --max_offset_s, played in a room
(probability --p_reverb) and mixed with noise at an SNR within --snr_db. Without --ir_dir / --noise_dir
the room IRs and noises are synthesised (white, pink, brown noise, and babble of other files
of the same split); with them, their files are split train/validation like the recordings.

Writes OUT (default ./Dataset_<number of files>): train_set/ and val_set/ (pairs_00000.npz...:
anchor and positive (N, 8000) float16, file_index (line of files.txt), start_s), train_data.json
and val_data.json (file -> start seconds of its segments), Samples/ (pairs to listen to),
skipped.txt (files shorter than one segment or unreadable, with the reason) and
generate_training_dataset.yaml (settings, summary, environment); prints one JSON line.
Exit status 0; 1 on bad input; 2 on a usage error.
"""
from __future__ import annotations

import argparse
import json
import sys

from csi.cli import add_renamed_arg, require_options, add_progress_arg, positive_int, run_tool_main, setup_logging


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be within (0, 1), got {text}")
    return value



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="generate_training_dataset", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", help="folder of audio files (searched recursively)")
    add_renamed_arg(p, "-i", "--input")
    p.add_argument("--segments", type=positive_int, default=5, help="segments per file (default 5)")
    add_renamed_arg(p, "-n", "--segments", type=positive_int)
    p.add_argument("--train_fraction", type=_fraction, default=0.8, help="share of files for training")
    add_renamed_arg(p, "-tr", "--train_fraction", type=_fraction)
    p.add_argument("--ir_dir", help="folder of room impulse responses (default: synthesised)")
    add_renamed_arg(p, "-ir", "--ir_dir")
    p.add_argument("--noise_dir", help="folder of background noises (default: synthesised)")
    add_renamed_arg(p, "-bn", "--noise_dir")
    p.add_argument("--out_dir", help="output folder (default: ./Dataset_<number of files>)")
    add_renamed_arg(p, "-o", "--out_dir")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--snr_db", type=float, nargs=2, default=(0.0, 10.0), metavar=("MIN", "MAX"),
                   help="SNR range of the positives in dB (default 0 10)")
    p.add_argument("--p_reverb", type=float, default=0.8, help="probability that a positive is reverberated")
    p.add_argument("--max_offset_s", type=float, default=0.2, help="largest time shift of a positive in seconds")
    p.add_argument("--samples", type=int, default=4, help="pairs written to OUT/Samples as WAV files")
    p.add_argument("--shard_size", type=positive_int, default=1000, help="pairs per .npz shard")
    add_progress_arg(p)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    require_options(parser, args, "--input")
    if args.snr_db[0] > args.snr_db[1]:
        parser.error("--snr_db: MIN must not exceed MAX")
    if not 0.0 <= args.p_reverb <= 1.0:
        parser.error("--p_reverb must be within [0, 1]")
    if args.max_offset_s < 0 or args.seed < 0:
        parser.error("--max_offset_s and --seed must be >= 0")
    setup_logging()
    return run_tool_main("generate_training_dataset", lambda: run(args), (ValueError,))


def run(args: argparse.Namespace) -> int:
    from audiofp.dataset_gen import generate

    summary = generate(args.input, args.out_dir, segments=args.segments, train_fraction=args.train_fraction,
                       ir_dir=args.ir_dir, noise_dir=args.noise_dir, seed=args.seed, progress=not args.no_progress,
                       samples=args.samples, shard_size=args.shard_size, snr_db=tuple(args.snr_db),
                       p_reverb=args.p_reverb, max_offset_s=args.max_offset_s)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
