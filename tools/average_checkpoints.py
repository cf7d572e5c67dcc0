"""Average the parameters of several epoch checkpoints of an experiment.

    python3 -m tools.average_checkpoints EXP_DIR --last 5
    python3 -m tools.average_checkpoints EXP_DIR --best 3 [--dev_set NAME]

Writes EXP_DIR/pt_model/g_avg_last5 (or g_avg_best3) in the reference format
(``{"generator": state_dict}``); load it with ``csi.load_model(EXP_DIR,
checkpoint="g_avg_last5")``. ``--best`` ranks epochs by the dev MAP recorded in the
training state; only epochs whose checkpoint still exists are used (see ``keep_last``).
Beside it, g_avg_last5.yaml records the epochs averaged (and, with ``--best``, the dev
set and the MAP of each) and the environment. Exit status 1 with a message when there is
nothing to average, 2 on a usage error.
"""
from __future__ import annotations

import argparse
import sys

from csi.cli import ToolError, positive_int, run_tool_main



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dir")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--last", type=positive_int, metavar="N")
    group.add_argument("--best", type=positive_int, metavar="N")
    parser.add_argument("--dev_set", help="dev set whose MAP ranks the epochs (default: the first)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool_main("average_checkpoints", lambda: run(args))


def best_epochs(history: list[dict], available: list[int], n: int, dev_set: str | None) -> tuple[str, dict[int, float]]:
    """``(dev set, {epoch: MAP})`` of the ``n`` epochs with the best dev MAP among ``available``."""
    scored: dict[int, float] = {}
    name = dev_set
    for entry in history:
        maps = entry.get("map") or {}
        name = name or next(iter(maps), None)
        if name in maps and entry["epoch"] in available:
            scored[entry["epoch"]] = maps[name]
    if not scored:
        raise ToolError(f"no dev MAP{f' of {dev_set!r}' if dev_set else ''} recorded for the remaining checkpoints")
    best = sorted(scored.items(), key=lambda item: (item[1], item[0]), reverse=True)[:n]
    return str(name), dict(sorted(best))


def run(args: argparse.Namespace) -> None:
    from csi.env import write_run_info
    from csi.train import checkpoint as ckpt

    available = ckpt.epochs(args.exp_dir)
    if not available:
        raise ToolError(f"no g_XXXXXXXX checkpoint in {ckpt.pt_dir(args.exp_dir)}")
    record: dict = {}
    if args.last:
        chosen, name = available[-args.last:], f"g_avg_last{args.last}"
    else:
        found = ckpt.latest_state(args.exp_dir)
        dev_set, maps = best_epochs(found[1]["history"] if found else [], available, args.best, args.dev_set)
        chosen, name = list(maps), f"g_avg_best{args.best}"
        record = {"dev_set": dev_set, "dev_map": maps}
    out = ckpt.pt_dir(args.exp_dir) / name
    ckpt.atomic_save({"generator": ckpt.average(args.exp_dir, chosen)}, out)
    write_run_info(out.with_name(f"{name}.yaml"), {"exp_dir": args.exp_dir, "last": args.last, "best": args.best,
                                                   "dev_set": args.dev_set}, epochs=chosen, **record)
    print(f"average_checkpoints: epochs {chosen} -> {out}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
