"""Average the parameters of several epoch checkpoints of an experiment.

    python3 -m tools.average_checkpoints EXP_DIR --last 5
    python3 -m tools.average_checkpoints EXP_DIR --best 3 [--dev_set NAME]

Writes EXP_DIR/pt_model/g_avg_last5 (or g_avg_best3) in the reference format
(``{"generator": state_dict}``); load it with ``csi.load_model(EXP_DIR,
checkpoint="g_avg_last5")``. ``--best`` ranks epochs by the dev MAP recorded in the
training state; only epochs whose checkpoint still exists are used (see ``keep_last``).
"""
from __future__ import annotations

import argparse
import sys

from csi.train import checkpoint as ckpt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dir")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--last", type=int, metavar="N")
    group.add_argument("--best", type=int, metavar="N")
    parser.add_argument("--dev_set", help="dev set whose MAP ranks the epochs (default: the first)")
    args = parser.parse_args(argv)
    available = ckpt.epochs(args.exp_dir)
    if not available:
        print(f"average_checkpoints: no g_XXXXXXXX checkpoint in {ckpt.pt_dir(args.exp_dir)}", file=sys.stderr)
        return 1
    if args.last:
        chosen, name = available[-args.last:], f"g_avg_last{args.last}"
    else:
        found = ckpt.latest_state(args.exp_dir)
        history = found[1]["history"] if found else []
        scored = []
        for entry in history:
            maps = entry.get("map") or {}
            key = args.dev_set or next(iter(maps), None)
            if key in maps and entry["epoch"] in available:
                scored.append((maps[key], entry["epoch"]))
        if not scored:
            print("average_checkpoints: no dev MAP recorded for the remaining checkpoints", file=sys.stderr)
            return 1
        chosen, name = sorted(e for _, e in sorted(scored, reverse=True)[:args.best]), f"g_avg_best{args.best}"
    ckpt.atomic_save({"generator": ckpt.average(args.exp_dir, chosen)}, ckpt.pt_dir(args.exp_dir) / name)
    print(f"average_checkpoints: epochs {chosen} -> {ckpt.pt_dir(args.exp_dir) / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
