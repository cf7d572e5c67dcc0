"""Write a YAML config with overrides, e.g. an experiment's config/hparams.yaml:

    python3 -m tools.make_config conf/train/demo_quick.yaml exp/demo/config/hparams.yaml \
        --set train_path=data/train/full.txt --set val.query_path=data/val/full.txt

``--set a.b=VALUE`` sets nested key b of mapping a (created when missing); VALUE is read
as YAML (numbers, lists, true/false), so ``--set chunk_frame=[300,200]`` works.
The output is written atomically; an existing different file is replaced.
"""
from __future__ import annotations

import argparse
import sys

import yaml

from csi.config import load_yaml
from csi.io.manifest import atomic_write_text
from csi.registry import ConfigError


def apply_override(config: dict, assignment: str) -> None:
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects KEY=VALUE, got {assignment!r}")
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part} is not a mapping")
    node[leaf] = yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        config = load_yaml(args.src)
        for assignment in args.set:
            apply_override(config, assignment)
    except (ConfigError, OSError) as e:
        print(f"make_config: {e}", file=sys.stderr)
        return 1
    atomic_write_text(args.dst, yaml.safe_dump(config, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
