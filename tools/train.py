"""Train a model (stages 3 and 5), CoverHunter's command line.

    python3 -m tools.train EXP_DIR [--max_epochs N] [--max_steps N] [--only_eval]
        [--set KEY=VALUE ...] [--device D]
    torchrun --nproc_per_node N [--nnodes M --node_rank R --master_addr A] -m tools.train EXP_DIR

Reads EXP_DIR/config/hparams.yaml; ``--set a.b=VALUE`` (VALUE read as YAML), ``--max_epochs``,
``--max_steps`` and ``--device`` override its keys for this run and are checked as the file
is (an unknown key is an error). Model keys are not overridden here (the checkpoints are
loaded with the file's; change them with tools.make_config). ``--device`` defaults to the
config's ``device`` key (auto: cuda when available, else cpu). Writes EXP_DIR/pt_model/ (g_XXXXXXXX in the reference format,
do_XXXXXXXX full state), EXP_DIR/logs/ (tensorboard, train.log) and EXP_DIR/train_run.yaml:
the config actually used (every default filled, overrides applied, ``ce.output_dims``
resolved; it loads again as an hparams.yaml), the overrides, the reference keys that were
ignored, and the environment. Running the same command again resumes from the last
full-state checkpoint. Exit status 0, 1 on a failed run (config, data), 2 on a usage error.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from csi.cli import ToolError, add_device_arg, add_set_arg, run_tool_main, setup_logging

log = logging.getLogger("csi.train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dir", type=Path)
    parser.add_argument("--max_epochs", type=int, help="override max_epochs")
    parser.add_argument("--max_steps", type=int, help="override max_steps")
    parser.add_argument("--only_eval", action="store_true", help="evaluate the dev sets with the latest checkpoint")
    add_set_arg(parser, "EXP_DIR/config/hparams.yaml")
    add_device_arg(parser, default=None, help="auto, cpu, cuda or cuda:N (default: the config's device key, "
                                              "itself default auto: cuda when available, else cpu)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    from csi.train.trainer import TrainingError
    return run_tool_main("train", lambda: train(args), (TrainingError,))


def overrides_of(args: argparse.Namespace) -> list[str]:
    """The ``--set`` assignments plus those of the dedicated options."""
    extra = [f"{key}={getattr(args, key)}" for key in ("max_epochs", "max_steps", "device")
             if getattr(args, key) is not None]
    return [*args.set, *extra]


def train(args: argparse.Namespace) -> int:
    from csi.cli import apply_overrides, resolve_device
    from csi.env import write_run_info
    from csi.registry import ConfigError
    from csi.train import distributed
    from csi.config import load_config
    from csi.modeldir import flat_hparams
    from csi.train.config import check_run_overrides, parse_hparams
    from csi.train.trainer import Trainer, TrainingError

    config_path = args.exp_dir / "config" / "hparams.yaml"
    if not config_path.is_file():
        raise ToolError(f"{config_path} not found (EXP_DIR/config/hparams.yaml)")
    raw = flat_hparams(load_config(config_path), str(config_path))
    setup_logging(args.exp_dir / "logs" / "train.log")   # the config warnings go to train.log too
    overrides = overrides_of(args)
    check_run_overrides(raw, overrides, where=str(config_path))
    apply_overrides(raw, overrides, where=str(config_path))
    hp = parse_hparams(raw, where=f"{config_path}{' + --set' if overrides else ''}")
    wanted = resolve_device(hp.train.device)
    ctx = distributed.setup(wanted.type)
    try:
        if wanted.index is not None and wanted != ctx.device:
            raise ConfigError(f"device {hp.train.device}: tools.train puts each process on cuda:LOCAL_RANK "
                              f"(here {ctx.device}); choose the GPUs with CUDA_VISIBLE_DEVICES")
        writer = None
        if ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(args.exp_dir / "logs"))
        trainer = Trainer(args.exp_dir, ctx, hp, writer=writer)
        if ctx.is_main:
            write_run_info(args.exp_dir / "train_run.yaml", hp.resolved(trainer.model_hp), overrides=overrides,
                           ignored_keys=hp.ignored, mapped_keys=hp.mapped, world_size=ctx.world_size, device=str(ctx.device),
                           n_classes=trainer.n_classes)
        resumed = trainer.resume()
        if args.only_eval:
            if not resumed:
                raise TrainingError(f"--only_eval: no checkpoint in {args.exp_dir / 'pt_model'}")
            log.info("dev MAP: %s", trainer.validate(trainer.epoch))
            return 0
        result = trainer.train()
        log.info("finished: %d epochs, %d steps, best dev MAP %s at epoch %s, %.1f min, stopped by %s",
                 result["epochs"], result["steps"], result["best"]["map"], result["best"]["epoch"], result["minutes"],
                 result["stopped_by"])
        if ctx.is_main:
            import json
            from csi.io.manifest import atomic_write_text
            atomic_write_text(args.exp_dir / "train_result.json", json.dumps(result, indent=1, default=str) + "\n")
        if ctx.distributed:
            import torch.distributed as dist
            sums = [None] * ctx.world_size
            dist.all_gather_object(sums, trainer.parameter_checksum())
            if len(set(sums)) == 1:
                log.info("parameters identical on all %d ranks (checksum %.6f)", ctx.world_size, sums[0])
            else:
                raise TrainingError(f"parameters differ between ranks: {sums}")
    finally:
        distributed.cleanup(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
