"""Report works or recordings shared between manifests (train/test leakage).

    python3 -m tools.check_leakage data/train/dataset.txt data/test/dataset.txt [more ...]

Every pair is checked; works are matched by ``song``, recordings by audio path and by
source utt (``sp_0.8-<utt>`` counts as ``<utt>``). Exit status 1 if anything is shared or
a manifest cannot be read (one line naming it), 2 on a usage error.
"""
from __future__ import annotations

import argparse
import itertools
import sys

from csi.cli import run_tool_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifests", nargs="+")
    parser.add_argument("--show", type=int, default=10, help="examples printed per finding")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.manifests) < 2:
        parser.error("give at least two manifests")
    return run_tool_main("check_leakage", lambda: run(args))


def run(args: argparse.Namespace) -> int:
    from csi.io.manifest import find_leakage, read_manifest

    loaded = {path: read_manifest(path, required=("utt", "song")) for path in args.manifests}
    leaked = False
    for (pa, a), (pb, b) in itertools.combinations(loaded.items(), 2):
        found = find_leakage(a, b)
        for kind, items in found.items():
            if items:
                leaked = True
                shown = ", ".join(items[:args.show]) + (" ..." if len(items) > args.show else "")
                print(f"LEAK {pa} / {pb}: {len(items)} shared {kind}: {shown}")
        if not any(found.values()):
            print(f"ok   {pa} / {pb}: no shared works or recordings")
    return 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main())
