"""Stage 2: CQT features with augmentation (CoverHunter's command line).

    python3 -m tools.extract_csi_features DATA_DIR [--nj 4] [--overwrite] [--no_progress]
        [--set KEY=VALUE ...] [--device D]
    torchrun --nproc_per_node 4 -m tools.extract_csi_features DATA_DIR     # shards by rank
    python3 -m tools.extract_csi_features DATA_DIR --shard K/N   # job K of N (python3 -m jobs)
    python3 -m tools.extract_csi_features DATA_DIR --merge N     # then join the N parts

Reads DATA_DIR/dataset.txt and DATA_DIR/hparams.yaml (optional; defaults: no
augmentation, CoverHunter CQT); ``--set a.b=VALUE`` (VALUE read as YAML) and ``--device``
override its keys and are checked as the file is (an unknown key is an error).
``--device`` defaults to the config's ``device`` key (auto: cuda when available, else
cpu). Writes DATA_DIR/full.txt, cqt_feat/, song_id.map, song_id_num.map,
song_name_num.map, bad.txt and extract_csi_features.yaml (the config actually used and
the environment). Finished features are reused; a store made with other settings is
refused unless --overwrite. Exit status 0; 1 if the input is invalid or every recording
failed; 2 on a usage error. A shard job writes only its part (DATA_DIR/shards/, its summary
file last); ``--merge N`` writes the outputs above from N complete parts made from the
present dataset.txt and config, and otherwise names the shards to run again and exits 1.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

from csi.cli import (ToolError, add_device_arg, add_progress_arg, add_set_arg, add_shard_args, check_shard_args,
                     run_tool_main)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("--nj", type=int, default=1, help="worker processes (per rank)")
    parser.add_argument("--overwrite", action="store_true", help="recompute a store made with other settings")
    add_shard_args(parser, "recording")
    add_progress_arg(parser)
    add_set_arg(parser, "DATA_DIR/hparams.yaml")
    add_device_arg(parser, default=None, help="auto, cpu, cuda or cuda:N (default: the config's device key, "
                                              "itself default auto: cuda when available, else cpu)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.nj < 1:
        parser.error(f"--nj must be >= 1, got {args.nj}")
    check_shard_args(parser, args)
    from csi.features.store import FeatureStoreError
    return run_tool_main("extract_csi_features", lambda: run(args), (FeatureStoreError,))


@contextlib.contextmanager
def _config_overrides(overrides: list[str]):
    """The stage reads DATA_DIR/hparams.yaml through ``csi.features.stage.load_config``;
    for this run it reads it with the overrides applied (before the keys are checked)."""
    from csi.features import stage
    from csi.features.config import load_feature_config

    original = stage.load_config
    stage.load_config = lambda data_dir: load_feature_config(data_dir, overrides)
    try:
        yield
    finally:
        stage.load_config = original


def run(args: argparse.Namespace) -> int:
    from csi.features.stage import extract_features, merge_shards

    if not os.path.isdir(args.data_dir):
        raise ToolError(f"{args.data_dir}: no such data directory")
    overrides = [*args.set, *([f"device={args.device}"] if args.device else [])]

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    with _config_overrides(overrides):
        if args.merge is not None:
            summary = merge_shards(args.data_dir, args.merge, nj=args.nj)
        else:
            try:
                summary = extract_features(args.data_dir, nj=args.nj, overwrite=args.overwrite,
                                           progress=not args.no_progress, log=say, shard=args.shard)
            except ValueError as e:
                raise ToolError(str(e)) from None
    if args.shard:
        say(f"extract_csi_features: shard {args.shard[0]}/{args.shard[1]}: {summary.line()} -> "
            f"{os.path.join(args.data_dir, 'shards')}")
        return 0                # an all-bad shard is not a failure of the whole set: the merge says
    if int(os.environ.get("RANK", 0)) == 0:
        say(f"extract_csi_features: {summary.line()} -> {os.path.join(args.data_dir, 'full.txt')}")
    if summary.recordings and summary.bad == summary.recordings:
        raise ToolError("every recording failed (see bad.txt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
