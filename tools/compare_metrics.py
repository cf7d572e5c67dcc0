"""Models side by side on one test set, with chance and the non-learned baselines (stage 6).

    python3 -m tools.compare_metrics NAME=METRICS_JSON [NAME=METRICS_JSON ...] [--out_dir DIR]

Each METRICS_JSON is a ``tools.eval_testset`` output of the same query/reference set (a
mismatch is an error). Prints one table (a row per model, then chance and the baselines of
the first file that has them) and, with ``--out_dir``, writes it to ``comparison.txt`` and
the rows to ``comparison.json``. Exit status 0; 1 on bad input; 2 on a usage error.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from csi.cli import ToolError, run_tool_main, setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="NAME=METRICS_JSON")
    p.add_argument("--out_dir", type=Path, help="write comparison.txt and comparison.json here")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if any("=" not in m for m in args.models):
        parser.error("each model is NAME=METRICS_JSON")
    setup_logging()
    return run_tool_main("compare_metrics", lambda: compare(args), (ValueError,))


def compare(args: argparse.Namespace) -> int:
    from csi.baselines import comparison_table
    from csi.utils import atomic_write_text

    models = []
    for item in args.models:
        name, path = item.split("=", 1)
        if not Path(path).is_file():
            raise ToolError(f"file not found: {path}")
        models.append((name, json.loads(Path(path).read_text(encoding="utf-8"))))
    table = comparison_table(models)
    print(table)
    if args.out_dir:
        atomic_write_text(args.out_dir / "comparison.txt", table + "\n")
        atomic_write_text(args.out_dir / "comparison.json", json.dumps({name: m for name, m in models}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
