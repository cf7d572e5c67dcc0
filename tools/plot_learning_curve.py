"""Plot a training run's learning curve: each dev set's MAP against training wall time.

    python3 -m tools.plot_learning_curve EXP_DIR [--references METRICS_JSON] [--out PNG]

Reads ``EXP_DIR/history.json`` (written by ``tools.train`` after every epoch). With
``--references`` (a ``metrics.json`` of ``tools.eval_testset --baselines`` or
``tools.eval_baseline``), chance and the non-learned baselines are drawn as horizontal
lines. Writes ``EXP_DIR/learning_curve.png`` unless ``--out`` (a file) says otherwise.
Exit status 1 with a message when the history or the metrics file cannot be read, 2 on
a usage error.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from csi.cli import ToolError, run_tool_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("exp_dir", type=Path)
    p.add_argument("--references", type=Path, default=None,
                   help="metrics.json with 'chance' and 'baselines' entries (MAP drawn as lines)")
    p.add_argument("--out", type=Path, default=None, help="PNG file (default EXP_DIR/learning_curve.png)")
    return p


def reference_maps(path: Path) -> dict[str, float]:
    """``{label: MAP}`` of chance and every baseline in a metrics.json."""
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        refs = {}
        if "chance" in metrics:
            refs["chance"] = float(metrics["chance"]["MAP"])
        for name, entry in metrics.get("baselines", {}).items():
            refs[name] = float(entry["MAP"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ToolError(f"{path}: not a metrics.json with chance/baselines MAPs ({type(e).__name__}: {e})") from None
    return refs


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool_main("plot_learning_curve", lambda: run(args))


def run(args: argparse.Namespace) -> None:
    from csi.train.curves import plot_learning_curve, read_history

    try:
        history = read_history(args.exp_dir)
    except ValueError as e:
        raise ToolError(f"{args.exp_dir}: unreadable history.json: {e}") from None
    refs = reference_maps(args.references) if args.references else {}
    out = plot_learning_curve(history, args.out or args.exp_dir / "learning_curve.png", refs,
                              title=f"{args.exp_dir.name}: dev MAP while training")
    print(f"plot_learning_curve: {len(history)} epochs -> {out}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
