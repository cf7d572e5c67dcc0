"""Train a model (stages 3 and 5), CoverHunter's command line.

    python3 -m tools.train EXP_DIR [--max_epochs N] [--max_steps N] [--only_eval]
    torchrun --nproc_per_node N [--nnodes M --node_rank R --master_addr A] -m tools.train EXP_DIR

Reads EXP_DIR/config/hparams.yaml; writes EXP_DIR/pt_model/ (g_XXXXXXXX in the reference
format, do_XXXXXXXX full state), EXP_DIR/logs/ (tensorboard, train.log) and
EXP_DIR/train_run.yaml (resolved config and environment). Running the same command
again resumes from the last full-state checkpoint.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dir", type=Path)
    parser.add_argument("--max_epochs", type=int, help="override max_epochs")
    parser.add_argument("--max_steps", type=int, help="override max_steps")
    parser.add_argument("--only_eval", action="store_true", help="evaluate the dev sets with the latest checkpoint")
    args = parser.parse_args(argv)

    from csi.config import load_yaml
    from csi.env import write_run_info
    from csi.io.manifest import ManifestError
    from csi.registry import ConfigError
    from csi.train import distributed
    from csi.train.config import parse_hparams
    from csi.train.trainer import Trainer, TrainingError

    config_path = args.exp_dir / "config" / "hparams.yaml"
    try:
        hp = parse_hparams(load_yaml(config_path), where=str(config_path))
    except (ConfigError, OSError) as e:
        print(f"train: {e}", file=sys.stderr)
        return 1
    if args.max_epochs is not None:
        hp.train.max_epochs = args.max_epochs
    if args.max_steps is not None:
        hp.train.max_steps = args.max_steps
    ctx = distributed.setup(hp.train.device)
    _setup_logging(args.exp_dir / "logs" / "train.log", ctx.is_main)
    log = logging.getLogger("csi.train")
    try:
        writer = None
        if ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(args.exp_dir / "logs"))
        trainer = Trainer(args.exp_dir, ctx, hp, writer=writer)
        if ctx.is_main:
            write_run_info(args.exp_dir / "train_run.yaml", dict(hp.raw, **trainer.model_hp),
                           world_size=ctx.world_size, device=str(ctx.device), n_classes=trainer.n_classes)
        resumed = trainer.resume()
        if args.only_eval:
            if not resumed:
                raise TrainingError(f"--only_eval: no checkpoint in {args.exp_dir / 'pt_model'}")
            log.info("dev MAP: %s", trainer.validate(trainer.epoch))
            return 0
        result = trainer.train()
        log.info("finished: %d epochs, %d steps, best dev MAP %s at epoch %s, %.1f min",
                 result["epochs"], result["steps"], result["best"]["map"], result["best"]["epoch"], result["minutes"])
        if ctx.distributed:
            import torch.distributed as dist
            sums = [None] * ctx.world_size
            dist.all_gather_object(sums, trainer.parameter_checksum())
            if len(set(sums)) == 1:
                log.info("parameters identical on all %d ranks (checksum %.6f)", ctx.world_size, sums[0])
            else:
                raise TrainingError(f"parameters differ between ranks: {sums}")
    except (ConfigError, ManifestError, TrainingError, FileNotFoundError) as e:
        log.error("%s", e)
        return 1
    finally:
        distributed.cleanup(ctx)
    return 0


def _setup_logging(log_file: Path, is_main: bool) -> None:
    handlers: list[logging.Handler] = []
    if is_main:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers = [logging.StreamHandler(sys.stderr), logging.FileHandler(log_file)]
    else:
        handlers = [logging.StreamHandler(sys.stderr)]
    logging.basicConfig(level=logging.INFO if is_main else logging.WARNING, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(message)s")


if __name__ == "__main__":
    sys.exit(main())
