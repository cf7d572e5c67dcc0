"""Write a YAML config with overrides, e.g. an experiment's config/hparams.yaml:

    python3 -m tools.make_config conf/train/demo_quick.yaml exp/demo/config/hparams.yaml \
        --set train_path=data/train/full.txt --set val.query_path=data/val/full.txt

``--set a.b=VALUE`` sets nested key b of mapping a (created when missing); VALUE is read
as YAML (numbers, lists, true/false), so ``--set chunk_frame=[300,200]`` works
(``csi.cli.apply_overrides``). The keys are not checked here: the tool that reads DST
checks them as it checks any file. The output is written atomically; an existing
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
    parser.add_argument("dst")
    add_set_arg(parser, "SRC")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool_main("make_config", lambda: run(args))


def run(args: argparse.Namespace) -> None:
    import yaml

    from csi.cli import apply_overrides
    from csi.config import load_yaml
    from csi.io.manifest import atomic_write_text

    config = apply_overrides(load_yaml(args.src), args.set, where=args.src)
    atomic_write_text(args.dst, yaml.safe_dump(config, sort_keys=False))


if __name__ == "__main__":
    sys.exit(main())
