"""The training loop (coarse training, stage 3; fine training reuses it).

CoverHunter's recipe (arXiv 2306.09025, §3): AdamW, exponential LR decay with a floor,
gradient clipping at 1.0, one M-per-class loader per chunk length with their steps
interleaved, focal CE + batch-hard triplet + center loss. Added here: per-epoch dev MAP
with early stopping, full-state checkpoints for exact resume, tensorboard scalars,
skipping of non-finite losses, DistributedDataParallel under torchrun, AMP on GPU.
"""
from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from csi.data.aligned import AlignedChunkDataset, AnchoredSampler
from csi.data.dataset import ChunkDataset, collate
from csi.data.sampler import MPerClassSampler
from csi.data.specaug import SpecAugment
from csi.features.reader import FeatureReader
from csi.modeldir import ModelCard, checkpoint_path, read_card, write_card
from csi.scoring.matching import Matching
from csi.features.frontend import COVERHUNTER_CQT, FrontEnd, resolve_frontend, store_frontend
from csi.eval.dev_map import evaluate_map
from csi.io.manifest import read_manifest
from csi.models import build_model
from csi.train.optim import build_optimizer
from csi.registry import ConfigError
from csi.train import checkpoint as ckpt
from csi.train.config import Hparams
from csi.train.curves import write_history
from csi.train.distributed import Context, any_true, barrier, broadcast_object
from csi.train.schedule import learning_rate

log = logging.getLogger("csi.train")


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss keeps being NaN); the last good checkpoint is kept."""


class _LossModule(torch.nn.Module):
    """Routes DistributedDataParallel's forward to ``compute_loss`` so gradients are synchronised."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, feats: torch.Tensor, labels: torch.Tensor):
        return self.model.compute_loss(feats, labels)


def resolve_model_hparams(model_hp: dict, n_classes: int, where: str) -> dict:
    """``ce.output_dims: auto`` (or 0) becomes the number of works in the training set;
    a classifier smaller than that is an error."""
    hp = {k: (dict(v) if isinstance(v, dict) else v) for k, v in model_hp.items()}
    ce = hp.get("ce")
    if isinstance(ce, dict):
        if ce.get("output_dims") in ("auto", 0, None):
            ce["output_dims"] = n_classes
        elif int(ce["output_dims"]) < n_classes:
            raise ConfigError(f"{where}: ce: output_dims {ce['output_dims']} is smaller than the "
                              f"{n_classes} works (song_id) of train_path")
    return hp


def _require_works(records: list[dict], path: str, role: str) -> None:
    """A split with fewer than two works can neither train a work classifier nor be ranked."""
    works = {r["song"] for r in records}
    if len(works) < 2:
        raise ConfigError(f"{path}: the {role} has {len(works)} work(s); at least 2 are needed")


def training_frontend(train: list[dict], dev: list[dict], where: str) -> FrontEnd:
    """The front end that made the training features, from their feature store
    (``fingerprint.json``); dev features must come from the same front end. Features without
    a store record are taken as the CoverHunter CQT (said in the log)."""
    made_by = store_frontend(train[0]["feat"])
    if made_by is None:
        log.warning("%s: the features have no feature-store record (fingerprint.json); assuming the CoverHunter "
                    "CQT at 16 kHz, 25 frames/s", where)
        made_by = resolve_frontend(COVERHUNTER_CQT)
    for rec in dev[:1]:
        other = store_frontend(rec["feat"])
        if other is not None and not other.same_features(made_by):
            raise ConfigError(f"dev features {rec['feat']} were made by front end {other.name} {other.params}, "
                              f"the training features by {made_by.name} {made_by.params}")
    return made_by


def check_reference_keys(cfg, frontend: FrontEnd, where: str = "hparams.yaml") -> None:
    """CoverHunter's ``cqt.hop_size`` must be the front end's hop and its ``chunk_s`` (the
    dev/test chunk in seconds) must be ``chunk_frame[0] * mean_size`` frames at the front
    end's rate, as the reference asserts; otherwise a ConfigError with both numbers."""
    unknown = sorted(set(cfg.cqt) - {"hop_size"})
    if unknown:
        raise ConfigError(f"{where}: cqt: unknown key(s) {', '.join(unknown)}; accepted: hop_size "
                          f"(the front end itself is configured in the feature stage's hparams.yaml)")
    hop_s = 1.0 / frontend.frames_per_s
    if "hop_size" in cfg.cqt and abs(float(cfg.cqt["hop_size"]) - hop_s) > 1e-9:
        raise ConfigError(f"{where}: cqt.hop_size {cfg.cqt['hop_size']} differs from the hop of the front end that "
                          f"made the training features ({hop_s:g} s, {frontend.name}); remove the key or fix it")
    if cfg.chunk_s is not None:
        frames = int(cfg.chunk_frame[0]) * cfg.mean_size
        seconds = frames / frontend.frames_per_s
        if abs(float(cfg.chunk_s) - seconds) * frontend.frames_per_s > 0.5:
            raise ConfigError(f"{where}: chunk_s {cfg.chunk_s} does not match chunk_frame[0] * mean_size = {frames} "
                              f"frames = {seconds:g} s at {frontend.frames_per_s:g} frames/s ({frontend.name}); "
                              f"set chunk_s: {seconds:g} or remove it")


class Trainer:
    def __init__(self, exp_dir: str | Path, ctx: Context, hp: Hparams, writer=None):
        self.exp_dir, self.ctx, self.hp, self.cfg = Path(exp_dir), ctx, hp, hp.train
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2 ** 32)
        records = read_manifest(cfg.train_path, required=("utt", "song", "song_id", "feat", "feat_len"))
        _require_works(records, cfg.train_path, "training set")
        labels = [int(r["song_id"]) for r in records]
        self.n_classes = max(labels) + 1
        self.model_hp = resolve_model_hparams(hp.model, self.n_classes, "hparams.yaml")
        self.model = build_model(self.model_hp).to(ctx.device)
        self.loss_module: torch.nn.Module = _LossModule(self.model)
        if ctx.distributed:
            if ctx.device.type == "cuda":
                self.loss_module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.loss_module)
            self.loss_module = torch.nn.parallel.DistributedDataParallel(
                self.loss_module, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None,
                find_unused_parameters=True)
        self.optimizer = build_optimizer(self.model.parameters(), cfg.optimizer, cfg.learning_rate,
                                         (cfg.adam_b1, cfg.adam_b2), cfg.weight_decay)
        self.use_amp = cfg.amp and ctx.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        try:
            self.spec_augment = SpecAugment.from_config(cfg.spec_augmentation) if cfg.spec_augmentation else None
        except ValueError as e:
            raise ConfigError(f"hparams.yaml: spec_augmentation: {e}") from None

        self.dev_sets = {name: (read_manifest(d.query_path, required=("utt", "song", "feat", "feat_len")),
                                read_manifest(d.ref_path, required=("utt", "song", "feat", "feat_len")), d)
                         for name, d in hp.dev_sets.items()}
        for name, (_, refs, dev) in self.dev_sets.items():
            _require_works(refs, dev.ref_path, f"dev set {name!r}")
        self.card = ModelCard(self.model_hp.get("model", "coverhunter"), int(self.model_hp["input_dim"]),
                              int(self.model.output_size),
                              self.n_classes, cfg.mean_size, int(cfg.chunk_frame[0]) * cfg.mean_size,
                              training_frontend(records, [r for q, refs, _ in self.dev_sets.values() for r in q + refs],
                                                cfg.train_path),
                              cfg.matching or Matching())
        check_reference_keys(cfg, self.card.frontend)
        self.dev_chunking = self.card.chunking(cfg.dev_chunk_s)
        self.dev_reader = FeatureReader(self.card.frontend, self.card.input_dim)
        if ctx.is_main:
            write_card(self.exp_dir, self.card)
        alignment = self._start_fine(cfg) if cfg.fine else None
        if ctx.distributed and cfg.grad_accumulation > 1:
            raise ConfigError("hparams.yaml: grad_accumulation > 1 under torchrun is not implemented: use the "
                              "processes (their global batch is world_size × batch_size), or accumulate in one")
        self.loaders = []
        for i, chunk in enumerate(cfg.chunk_frame):
            common = dict(mean_size=cfg.mean_size, train=True, seed=cfg.seed + i,
                          tempo_stretch=tuple(cfg.tempo_stretch) if cfg.tempo_stretch else None)
            if alignment is None:
                dataset, sampler_class = ChunkDataset(records, int(chunk) * cfg.mean_size, **common), MPerClassSampler
            else:
                dataset = AlignedChunkDataset(records, int(chunk) * cfg.mean_size, alignment,
                                              self.card.frontend.frames_per_s, cfg.fine.min_confidence, **common)
                sampler_class = AnchoredSampler
            self.loaders.append([self._loader(dataset, sampler_class, labels, cfg.seed + i, micro)
                                 for micro in range(cfg.grad_accumulation)])
        self.writer = writer
        # progress, saved in every checkpoint
        self.step = 0
        self.epoch = 0            # the epoch being (or next to be) trained
        self.batch_in_epoch = 0   # batches of `epoch` already done
        self.best = {"map": -math.inf, "epoch": None, "wait": 0}
        self.history: list[dict] = []
        self.nan_skipped = 0
        self._nan_run = 0

    def _start_fine(self, cfg):
        """Fine training: the coarse model's weights (``fine.init_dir``) and the stage-4
        alignment of ``train_path`` made with that very checkpoint (else an error)."""
        from csi.io.alignment import AlignmentError, read_alignments
        from csi.utils import file_sha256

        fine = cfg.fine
        try:
            init = checkpoint_path(fine.init_dir, fine.init_checkpoint)
        except FileNotFoundError as e:
            raise ConfigError(f"fine.init_dir: {e}") from None
        coarse = read_card(fine.init_dir)
        if not coarse.frontend.same_features(self.card.frontend):
            raise ConfigError(f"fine: the coarse model {fine.init_dir} was trained on features of front end "
                              f"{coarse.frontend.name} {coarse.frontend.params}, train_path has "
                              f"{self.card.frontend.name} {self.card.frontend.params}")
        try:
            table = read_alignments(fine.alignment_path, cfg.train_path, file_sha256(init))
        except AlignmentError as e:
            raise ConfigError(f"fine.alignment_path: {e}") from None
        state = torch.load(init, map_location="cpu", weights_only=True)["generator"]
        try:
            self.model.load_state_dict(state)
        except RuntimeError as e:
            raise ConfigError(f"fine: the coarse checkpoint {init} does not fit this model config "
                              f"({' '.join(str(e).split())[:300]})") from None
        log.info("fine training from %s with %d aligned pairs (%s), min confidence %.2f", init, len(table),
                 fine.alignment_path, fine.min_confidence)
        return table

    # ---- state -------------------------------------------------------------------------
    def _loader(self, dataset, sampler_class, labels, seed: int, micro: int) -> torch.utils.data.DataLoader:
        """The loader of micro-batch ``micro`` of every step: with ``grad_accumulation`` A, the
        process of rank r draws the batches that rank ``r·A + micro`` of an A·world_size-rank
        run would (its own classes), so that one process accumulating A micro-batches trains
        the model A DDP processes train (same global batch)."""
        cfg, ctx = self.cfg, self.ctx
        try:
            sampler = sampler_class(labels, cfg.m_per_class, cfg.batch_size, rank=ctx.rank * cfg.grad_accumulation + micro,
                                    world_size=ctx.world_size * cfg.grad_accumulation, seed=seed, with_epoch=True)
        except ValueError as e:
            raise ConfigError(f"hparams.yaml: m_per_class/batch_size/grad_accumulation: {e}") from None
        return torch.utils.data.DataLoader(
            dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
            collate_fn=collate, drop_last=True, pin_memory=ctx.device.type == "cuda",
            persistent_workers=cfg.num_workers > 0,  # the sampler passes the epoch to the items
            generator=torch.Generator())  # keeps the global RNG for dropout

    def state(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "best": dict(self.best), "history": list(self.history), "nan_skipped": self.nan_skipped,
                "rng": ckpt.rng_state(), "n_classes": self.n_classes}

    def resume(self) -> bool:
        found = ckpt.latest_state(self.exp_dir)
        if found is None:
            return False
        generator, state = found
        self.model.load_state_dict(generator)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.best, self.history, self.nan_skipped = dict(state["best"]), list(state["history"]), state["nan_skipped"]
        ckpt.set_rng_state(state["rng"])
        log.info("resumed at epoch %d, batch %d, step %d", self.epoch, self.batch_in_epoch, self.step)
        return True

    def _save_epoch(self, finished_epoch: int) -> None:
        if self.ctx.is_main:
            path = ckpt.save_epoch(self.exp_dir, finished_epoch, self.model.state_dict(), self.state())
            if self.best["epoch"] == finished_epoch:  # the best dev MAP so far, for evaluation
                ckpt.atomic_save({"generator": self.model.state_dict()}, ckpt.pt_dir(self.exp_dir) / ckpt.BEST)
            keep = {self.best["epoch"]} if self.best["epoch"] is not None else set()
            ckpt.prune(self.exp_dir, self.cfg.keep_last, keep)
            (ckpt.pt_dir(self.exp_dir) / "resume.pt").unlink(missing_ok=True)
            log.info("saved %s", path)
        barrier(self.ctx)

    # ---- training ----------------------------------------------------------------------
    def train(self, should_stop: Callable[[], bool] = lambda: False) -> dict:
        """Train until a limit: ``max_epochs``, ``max_steps``, early stopping, ``should_stop()``
        or the ``max_minutes`` guard; the result's ``stopped_by`` names the one that stopped it
        (the budget of a reproducible run is epochs or steps; minutes make it depend on the
        machine's load)."""
        cfg, start = self.cfg, time.time()
        stopped_by = "max_epochs"
        while self.epoch < cfg.max_epochs:
            epoch_t0 = time.time()
            summary = self._train_epoch(start)
            if summary is None:  # max_steps reached in the middle of an epoch: keep a usable model
                self._save_epoch(self.epoch)
                if self.ctx.is_main:
                    write_history(self.exp_dir, self.history)  # finished epochs only (maybe none)
                stopped_by = "max_steps"
                break
            finished = self.epoch
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            maps = self.validate(finished) if finished % cfg.every_n_epoch_to_dev == 0 else {}
            minutes = (self.history[-1].get("wall_minutes", 0.0) if self.history else 0.0) + (time.time() - epoch_t0) / 60
            self.history.append({"epoch": finished, "step": self.step, **summary, "map": maps, "wall_minutes": minutes})
            if self.ctx.is_main:
                write_history(self.exp_dir, self.history)
            stop = self._early_stop(finished, maps)
            if finished % cfg.every_n_epoch_to_save == 0 or stop:
                self._save_epoch(finished)
            reason = ("early_stopping" if stop else "stop_request" if should_stop() else
                      "max_minutes" if cfg.max_minutes and time.time() - start > cfg.max_minutes * 60 else
                      "max_steps" if cfg.max_steps and self.step >= cfg.max_steps else None)
            if reason:
                stopped_by = reason
                break
        if stopped_by == "max_minutes":
            log.warning("training stopped by the max_minutes guard (%s min): the model depends on the machine's "
                        "speed; budget it in epochs or steps for a reproducible run", cfg.max_minutes)
        return {"epochs": self.epoch, "steps": self.step, "best": self.best, "nan_skipped": self.nan_skipped,
                "minutes": (time.time() - start) / 60, "stopped_by": stopped_by}

    def _train_epoch(self, run_start: float) -> dict | None:
        cfg = self.cfg
        for loader in (loader for group in self.loaders for loader in group):
            loader.sampler.set_epoch(self.epoch)
            loader.sampler.set_start_batch(self.batch_in_epoch)
            loader.generator.manual_seed(self.cfg.seed + self.epoch)
        self.loss_module.train()
        t0, samples, replaced, losses_sum, n_steps = time.time(), 0, 0, {}, 0
        last_resume_save = self.step
        steps = zip(*(zip(*group) for group in self.loaders))     # per chunk length: the step's micro-batches
        for k, batches in enumerate(steps, start=self.batch_in_epoch):
            # the chunk lengths take turns in an order drawn per batch group, as in the reference
            for idx in np.random.default_rng([cfg.seed, self.epoch, k]).permutation(len(batches)):
                losses = self._step(batches[idx])
                samples += sum(len(micro[2]) for micro in batches[idx])
                replaced += sum(int(micro[3]) for micro in batches[idx])
                if losses:
                    n_steps += 1
                    for name, value in losses.items():
                        losses_sum[name] = losses_sum.get(name, 0.0) + value
                if self.step % cfg.log_every_steps == 0 and losses:
                    rate = samples / max(time.time() - t0, 1e-9)
                    self._scalars({f"train/{n}": v for n, v in losses.items()} |
                                  {"train/lr": self.optimizer.param_groups[0]["lr"], "train/samples_per_s": rate})
                    log.info("epoch %d step %d %s lr %.2e %.1f samples/s", self.epoch, self.step,
                             " ".join(f"{n} {v:.3f}" for n, v in losses.items()),
                             self.optimizer.param_groups[0]["lr"], rate)
            self.batch_in_epoch = k + 1
            if cfg.save_every_steps and self.step - last_resume_save >= cfg.save_every_steps:
                last_resume_save = self.step
                if self.ctx.is_main:
                    ckpt.save_resume(self.exp_dir, self.model.state_dict(), self.state())
            if cfg.max_steps and self.step >= cfg.max_steps:
                return None
        seconds = time.time() - t0
        summary = {name: total / max(n_steps, 1) for name, total in losses_sum.items()}
        summary.update(samples_per_s=samples / max(seconds, 1e-9), replaced_samples=replaced, seconds=seconds)
        log.info("epoch %d done: %d steps, %.1f samples/s, %d samples replaced (unreadable features), "
                 "%d non-finite steps skipped so far", self.epoch, n_steps, summary["samples_per_s"], replaced,
                 self.nan_skipped)
        self._scalars({"epoch/samples_per_s": summary["samples_per_s"], "epoch/replaced_samples": replaced},
                      step=self.epoch)
        if cfg.fine and cfg.num_workers == 0:   # (counted where the items are made)
            datasets = {id(loader.dataset): loader.dataset for group in self.loaders for loader in group}.values()
            aligned = sum(dataset.aligned for dataset in datasets)
            fallback = sum(dataset.fallback for dataset in datasets)
            summary.update(aligned_items=aligned, fallback_items=fallback)
            log.info("fine: %d positives cut at aligned positions, %d at random ones (no confident alignment) "
                     "so far", aligned, fallback)
        return summary

    def _step(self, micro_batches) -> dict[str, float] | None:
        """One optimiser step over the step's micro-batches (one unless ``grad_accumulation``):
        the gradient of their mean loss, as DDP averages its ranks' gradients. Each micro-batch
        draws the dropout masks a DDP rank would (every rank seeds torch alike, so the global
        RNG state is restored before each); the losses returned are the global batch's mean
        (under DDP, averaged over the ranks)."""
        cfg, ctx = self.cfg, self.ctx
        lr = learning_rate(self.step, cfg.learning_rate, cfg.lr_decay, cfg.min_lr, cfg.lr_decay_every_steps,
                           cfg.warmup_steps if cfg.warmup else 0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        n_micro = len(micro_batches)
        rng = torch.get_rng_state() if n_micro > 1 else None
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, torch.Tensor] = {}
        finite = True
        for m, (_, feats, labels, _) in enumerate(micro_batches):
            if rng is not None:
                torch.set_rng_state(rng)
            total, losses = self._forward(feats, labels)
            if not bool(torch.isfinite(total.detach()).all()):
                finite = False
                break
            self.scaler.scale(total / n_micro).backward()
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value.detach() / n_micro
        if any_true(ctx, not finite):
            self.nan_skipped += 1
            self._nan_run += 1
            log.warning("step %d: non-finite loss, step skipped (%d in a row)", self.step, self._nan_run)
            if self._nan_run >= cfg.max_nan_steps:
                raise TrainingError(
                    f"the loss was not finite for {self._nan_run} steps in a row (step {self.step}); stopping. "
                    f"The last good checkpoint in {ckpt.pt_dir(self.exp_dir)} is intact; lower learning_rate "
                    "or check the features, then run the same command to resume")
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self._nan_run = 0
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        return self._global_losses(sums)

    def _forward(self, feats: torch.Tensor, labels: torch.Tensor):
        """Loss of one micro-batch (SpecAugment drawn from the step, the same on every rank)."""
        cfg, ctx = self.cfg, self.ctx
        feats = feats.to(ctx.device, non_blocking=True)
        labels = labels.to(ctx.device, non_blocking=True)
        if self.spec_augment is not None:
            gen = torch.Generator(device=feats.device).manual_seed(cfg.seed * 1_000_003 + self.step)
            feats = self.spec_augment(feats, gen)
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.use_amp else nullcontext()
        with autocast:
            return self.loss_module(feats, labels)

    def _global_losses(self, sums: dict[str, torch.Tensor]) -> dict[str, float]:
        """The step's losses over the global batch: under DDP the mean of the ranks'."""
        names = list(sums)
        values = torch.stack([torch.as_tensor(sums[n], dtype=torch.float32, device=self.ctx.device) for n in names])
        if self.ctx.distributed:
            torch.distributed.all_reduce(values)
            values /= self.ctx.world_size
        return {n: float(v) for n, v in zip(names, values.tolist())}

    # ---- validation --------------------------------------------------------------------
    def validate(self, epoch: int) -> dict[str, float]:
        """MAP of every dev set due at ``epoch`` (computed on rank 0, shared with all ranks)."""
        maps: dict[str, float] = {}
        if self.ctx.is_main:
            for name, (queries, refs, dev) in self.dev_sets.items():
                if epoch % dev.every_n_epoch_to_dev:
                    continue
                t0 = time.time()
                maps[name] = evaluate_map(self.model, queries, refs, self.dev_chunking, self.dev_reader,
                                          batch_size=self.cfg.batch_size, device=self.ctx.device,
                                          distance=self.card.matching.distance, best_k=self.card.matching.best_k)
                log.info("epoch %d dev %s: MAP %.4f (%d queries, %.1f s)", epoch, name, maps[name], len(queries),
                         time.time() - t0)
                self._scalars({f"mAP/{name}": maps[name]}, step=epoch)
        return broadcast_object(self.ctx, maps)

    def _early_stop(self, epoch: int, maps: dict[str, float]) -> bool:
        if not maps:
            return False
        es = self.cfg.early_stopping
        name = (es.dev_set if es and es.dev_set else next(iter(self.dev_sets)))
        if name not in maps:
            return False
        if maps[name] > self.best["map"]:
            self.best = {"map": maps[name], "epoch": epoch, "wait": 0}
            return False
        self.best["wait"] += 1
        if es and self.best["wait"] >= es.patience:
            log.info("early stopping: no better %s MAP for %d epochs (best %.4f at epoch %d)", name,
                     self.best["wait"], self.best["map"], self.best["epoch"])
            return True
        return False

    def _scalars(self, values: dict[str, float], step: int | None = None) -> None:
        if self.writer is not None and self.ctx.is_main:
            for name, value in values.items():
                self.writer.add_scalar(name, value, self.step if step is None else step)

    def parameter_checksum(self) -> float:
        return float(sum(p.detach().double().sum() for p in self.model.parameters()))
