"""Write a training config with its layers resolved and overrides applied, e.g. an
experiment's config/hparams.yaml:

    python3 -m tools.make_config conf/train/demo_quick.yaml exp/demo/config/hparams.yaml \
        --set train_path=data/train/full.txt --set val.query_path=data/val/full.txt
    python3 -m tools.make_config conf/train/demo_quick.yaml --print_config    # the resolved config

SRC may name ``base:`` files (merged first, SRC's keys over them; csi.config.load_config)
and may be nested (``model: {name, ...}``, ``data``/``optim``/``train`` sections,
``dev_sets``); DST is always CoverHunter's flat hparams.yaml layout
(csi.modeldir.flat_hparams), which every consumer of a model directory reads.
``--set a.b=VALUE`` then sets key b of mapping a of that flat layout (created when
missing); VALUE is read as YAML (numbers, lists, true/false), so ``--set
chunk_frame=[300,200]`` works (csi.config.apply_overrides). The keys are checked by the
tool that reads DST, as it checks any file. The output is written atomically; an existing
different file is replaced. Exit status 1 when SRC cannot be read or an override is
malformed, 2 on a usage error.
"""
from __future__ import annotations

import argparse
import sys

from csi.cli import add_set_arg, run_tool_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src")
    parser.add_argument("dst", nargs="?", help="output file (optional with --print_config)")
    add_set_arg(parser, "SRC")
    parser.add_argument("--print_config", action="store_true", help="print the resolved config to stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dst is None and not args.print_config:
        parser.error("give DST, --print_config, or both")
    return run_tool_main("make_config", lambda: run(args))


def run(args: argparse.Namespace) -> None:
    import yaml

    from csi.config import apply_overrides, load_config
    from csi.io.manifest import atomic_write_text
    from csi.modeldir import flat_hparams

    from csi.train.config import map_coverhunter_mps

    config = apply_overrides(flat_hparams(load_config(args.src), args.src), args.set, where=args.src)
    config = map_coverhunter_mps(config, args.src).hp       # a CoverHunterMPS file, in csi's keys
    text = yaml.safe_dump(config, sort_keys=False)
    if args.dst is not None:
        atomic_write_text(args.dst, text)
    if args.print_config:
        print(f"# {args.src}{' + --set ' + ' '.join(args.set) if args.set else ''}, resolved\n{text}", end="")


if __name__ == "__main__":
    sys.exit(main())
