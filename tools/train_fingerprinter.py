"""Train the neural fingerprinter (NT-Xent between 1-s segments and augmented copies).

    python3 -m tools.train_fingerprinter [--epochs 20] [--batch_size 64] [-m nafp_cnn] [--optim adam|lamb]
        -o MODEL_DIR [--config YAML] [--set key=VALUE] [--max_minutes M] [--no_progress] MODE ...

    MODE  static --train_path TRAIN_SET --val_path VAL_SET          pairs of tools.generate_training_dataset
          dynamic --path WAV_DIR [--segments 5] [--train_fraction 0.8]       pairs drawn afresh every epoch, generated
                                                    noises and rooms
          dynamic_online --path WAV_DIR --ir_dir IR_DIR --noise_dir NOISE_DIR [--segments 5] [--train_fraction 0.8]
                                                    the same with your noises and rooms

The seed system's command line over audiofp.train: ``--config`` a YAML of ``model``,
``mel`` and ``train`` sections (audiofp.train.FingerprintConfig; unknown keys are
errors), ``--set`` a ``train`` key (e.g. ``temperature=0.1``); --epochs/--batch_size/--model/--optim/--max_minutes
override it. Early stopping on the validation loss (``train.patience``); an interrupted run
resumes from MODEL_DIR/checkpoints/last.pt. Prints one JSON line (epochs, best validation
loss, minutes).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from csi.cli import add_renamed_arg, require_options, add_progress_arg, add_set_arg, run_tool_main, setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int)
    add_renamed_arg(p, "-ep", "--epochs", type=int)
    p.add_argument("--batch_size", type=int, help="pairs a batch")
    add_renamed_arg(p, "-bs", "--batch_size", type=int)
    p.add_argument("--model", help="fingerprinter name (audiofp.model.FINGERPRINTERS)")
    add_renamed_arg(p, "-m", "--model")
    p.add_argument("--optim", choices=("adam", "lamb"))
    p.add_argument("--out_dir", type=Path, help="model directory")
    add_renamed_arg(p, "-o", "--out_dir", type=Path)
    p.add_argument("--config", type=Path, help="YAML with model, mel and train sections")
    p.add_argument("--max_minutes", type=float)
    add_set_arg(p, "the train section")
    add_progress_arg(p)
    modes = p.add_subparsers(dest="mode", required=True)
    static = modes.add_parser("static", help="pairs written by tools.generate_training_dataset")
    static.add_argument("--train_path", type=Path)
    add_renamed_arg(static, "-tp", "--train_path", type=Path)
    static.add_argument("--val_path", type=Path)
    add_renamed_arg(static, "-vp", "--val_path", type=Path)
    for name in ("dynamic", "dynamic_online"):
        m = modes.add_parser(name, help="pairs drawn afresh every epoch")
        m.add_argument("--path", type=Path, help="folder of training audio")
        add_renamed_arg(m, "-p", "--path", type=Path)
        m.add_argument("--segments", type=int, default=5)
        add_renamed_arg(m, "-n", "--segments", type=int)
        m.add_argument("--train_fraction", type=float, default=0.8)
        add_renamed_arg(m, "-tr", "--train_fraction", type=float)
        m.add_argument("--ir_dir", type=Path)
        add_renamed_arg(m, "-ir", "--ir_dir", type=Path)
        m.add_argument("--noise_dir", type=Path)
        add_renamed_arg(m, "-bn", "--noise_dir", type=Path)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    require_options(parser, args, "--out_dir", *{"static": ("--train_path", "--val_path"), "dynamic": ("--path",),
                                                 "dynamic_online": ("--path", "--ir_dir", "--noise_dir")}[args.mode])
    setup_logging()
    return run_tool_main("train_fingerprinter", lambda: run(args), (ValueError,))


def run(args: argparse.Namespace) -> int:
    from csi.cli import apply_overrides
    from csi.env import write_run_info
    from audiofp.train import Trainer, read_config

    train_keys = apply_overrides({}, args.set, "--set")
    train_keys.update({k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size),
                                         ("optimizer", args.optim), ("max_minutes", args.max_minutes)) if v is not None})
    config = read_config(args.config, train_keys)
    if args.model:
        config.model = {"name": args.model}
    if args.mode == "static":
        from audiofp.segments import StaticPairDataset
        train_set, val_set = StaticPairDataset(args.train_path), StaticPairDataset(args.val_path)
    else:
        from audiofp.online import online_datasets
        train_set, val_set = online_datasets(args.path, args.segments, args.train_fraction, args.ir_dir,
                                             args.noise_dir, config.train.seed)
    summary = Trainer(config, args.out_dir).fit(train_set, val_set, progress=not args.no_progress)
    write_run_info(args.out_dir / "train_fingerprinter.yaml",
                   {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                   train_pairs=len(train_set), val_pairs=len(val_set), summary=summary)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
