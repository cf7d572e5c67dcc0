"""Training the fingerprinter: NT-Xent between each 1-s segment and its augmented copy, the
other pairs of the batch as negatives (Chang et al. 2021, §3.1; csi.losses.NTXentLoss),
Adam or LAMB, early stopping on the validation loss, full-state checkpoints for exact resume.

A model directory holds ``config.yaml`` (the resolved training config, the mel front end
and the model), ``checkpoints/last.pt`` (model, optimizer, epoch, history, best), ``best.pt``
(the model of the lowest validation loss), ``history.json`` and ``learning_curve.png``;
audiofp.inference loads it.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import yaml

from csi.config import from_dict, load_yaml
from audiofp.frontend import LogMel, MelConfig
from audiofp.lamb import Lamb
from audiofp.model import build_fingerprinter
from csi.losses import NTXentLoss
from csi.registry import ConfigError
from csi.utils import atomic_write, atomic_write_text

log = logging.getLogger("audiofp")

CONFIG_FILE = "config.yaml"
BEST_FILE = "best.pt"
LAST_FILE = "checkpoints/last.pt"


@dataclass
class TrainSettings:
    epochs: int = 20
    batch_size: int = 64                  # pairs a batch: 2 × batch_size segments
    learning_rate: float = 1e-3
    optimizer: str = "adam"               # adam | lamb
    weight_decay: float = 0.0
    temperature: float = 0.05
    patience: int = 5                     # epochs without a lower validation loss
    max_minutes: Optional[float] = None   # stop after the epoch once this much wall time passed
    mask_prob: float = 0.5                # time/frequency masking of the augmented copy's mel
    file_group: int = 4                   # pairs of one recording in a batch: other moments of the same
                                          # recording as negatives (1: random batches)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "lamb"):
            raise ConfigError(f"fingerprint training: optimizer must be adam or lamb, got {self.optimizer!r}")
        if self.batch_size < 2:
            raise ConfigError("fingerprint training: batch_size must be >= 2 (in-batch negatives)")
        if not 1 <= self.file_group <= self.batch_size:
            raise ConfigError(f"fingerprint training: file_group must be in [1, batch_size], got {self.file_group}")


@dataclass
class FingerprintConfig:
    model: dict = field(default_factory=lambda: {"name": "nafp_cnn"})
    mel: MelConfig = field(default_factory=MelConfig)
    train: TrainSettings = field(default_factory=TrainSettings)


def read_config(path: str | os.PathLike | None, overrides: dict[str, Any] | None = None) -> FingerprintConfig:
    data = load_yaml(path) if path else {}
    for key, value in (overrides or {}).items():
        data.setdefault("train", {})[key] = value
    return from_dict(FingerprintConfig, data, where=str(path or "fingerprint config"))


def _mask(mel: torch.Tensor, generator: torch.Generator, prob: float) -> torch.Tensor:
    """Per item, with probability ``prob``: one time band (≤ 1/8 of the frames) and one
    frequency band (≤ 1/8 of the mels) set to the item's minimum (SpecAugment-style)."""
    out = mel.clone()
    n_mels, frames = mel.shape[1:]
    for i in range(len(mel)):
        if torch.rand((), generator=generator) >= prob:
            continue
        low = mel[i].min()
        t = int(torch.randint(0, frames // 8 + 1, (), generator=generator))
        f = int(torch.randint(0, n_mels // 8 + 1, (), generator=generator))
        t0 = int(torch.randint(0, frames - t + 1, (), generator=generator))
        f0 = int(torch.randint(0, n_mels - f + 1, (), generator=generator))
        out[i, :, t0:t0 + t] = low
        out[i, f0:f0 + f, :] = low
    return out


class Trainer:
    """Train ``config`` on datasets of (anchor, positive) 1-s waveform pairs into ``model_dir``."""

    def __init__(self, config: FingerprintConfig, model_dir: str | os.PathLike):
        self.cfg = config
        self.dir = Path(model_dir)
        torch.manual_seed(config.train.seed)
        self.frontend = LogMel(config.mel)
        self.model = build_fingerprinter({**config.model, "n_mels": config.mel.n_mels, "frames": config.mel.frames})
        t = config.train
        opt = Lamb if t.optimizer == "lamb" else torch.optim.Adam
        self.optimizer = opt(self.model.parameters(), lr=t.learning_rate, weight_decay=t.weight_decay)
        self.loss = NTXentLoss(t.temperature)
        self.history: list[dict] = []
        self.best = float("inf")
        self.epoch = 0

    # ---- persistence ------------------------------------------------------------------------
    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        doc = {"model": dict(self.cfg.model), "mel": self.cfg.mel.to_dict(), "train": asdict(self.cfg.train)}
        path = self.dir / CONFIG_FILE
        if path.exists():
            old = load_yaml(path)
            if {k: old.get(k) for k in ("model", "mel")} != {k: doc[k] for k in ("model", "mel")}:
                raise ConfigError(f"{path}: this directory holds a fingerprinter of another model or front end; "
                                  f"use a new directory")
        atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False))

    def _save(self, path: Path, state: dict) -> None:
        atomic_write(path, lambda f: torch.save(state, f))

    def resume(self) -> bool:
        path = self.dir / LAST_FILE
        if not path.is_file():
            return False
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.best, self.history = state["epoch"], state["best"], state["history"]
        torch.set_rng_state(state["torch_rng"])
        log.info("resuming %s after epoch %d (best validation loss %.4f)", self.dir, self.epoch, self.best)
        return True

    # ---- training -----------------------------------------------------------------------------
    def _batch_loss(self, anchor: torch.Tensor, positive: torch.Tensor, generator: torch.Generator | None):
        mel_a, mel_p = self.frontend(anchor), self.frontend(positive)
        if generator is not None and self.cfg.train.mask_prob > 0:
            mel_p = _mask(mel_p, generator, self.cfg.train.mask_prob)
        emb = self.model(torch.cat([mel_a, mel_p]))
        labels = torch.arange(len(anchor)).repeat(2)
        loss = self.loss(emb, labels)
        with torch.no_grad():
            sims = emb[:len(anchor)] @ emb[len(anchor):].T
            top1 = (sims.argmax(dim=1) == torch.arange(len(anchor))).float().mean()
        return loss, float(top1)

    def evaluate(self, loader) -> tuple[float, float]:
        self.model.eval()
        losses, hits, n = 0.0, 0.0, 0
        with torch.no_grad():
            for anchor, positive in loader:
                if len(anchor) < 2:
                    continue
                loss, top1 = self._batch_loss(anchor, positive, None)
                losses += float(loss) * len(anchor)
                hits += top1 * len(anchor)
                n += len(anchor)
        self.model.train()
        return (losses / n, hits / n) if n else (float("nan"), float("nan"))

    def fit(self, train_set, val_set, progress: bool = True,
            on_epoch: Callable[[dict], None] | None = None) -> dict:
        from csi.utils import progress_bar

        t = self.cfg.train
        self.write_config()
        self.resume()
        generator = torch.Generator().manual_seed(t.seed + self.epoch)
        val_loader = torch.utils.data.DataLoader(val_set, batch_size=t.batch_size, shuffle=False)
        t0 = time.time() - sum(h["seconds"] for h in self.history)
        stale = sum(1 for _ in self._since_best())
        while self.epoch < t.epochs and stale < t.patience:
            if hasattr(train_set, "set_epoch"):
                train_set.set_epoch(self.epoch)
            batches = grouped_batches(getattr(train_set, "groups", np.arange(len(train_set))), t.batch_size,
                                      t.file_group, t.seed * 1000 + self.epoch)
            loader = torch.utils.data.DataLoader(train_set, batch_sampler=batches)
            started, total, count = time.time(), 0.0, 0
            self.model.train()
            for anchor, positive in progress_bar(loader, desc=f"epoch {self.epoch + 1}", disable=not progress, leave=False):
                loss, _ = self._batch_loss(anchor, positive, generator)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                total += float(loss.detach())
                count += 1
            val_loss, val_top1 = self.evaluate(val_loader)
            self.epoch += 1
            row = {"epoch": self.epoch, "train_loss": total / max(count, 1), "val_loss": val_loss,
                   "val_top1": val_top1, "steps": count, "seconds": time.time() - started}
            self.history.append(row)
            if val_loss < self.best:
                self.best = val_loss
                self._save(self.dir / BEST_FILE, {"model": self.model.state_dict(), "epoch": self.epoch,
                                                   "val_loss": val_loss})
            self._save(self.dir / LAST_FILE, {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                                               "epoch": self.epoch, "best": self.best, "history": self.history,
                                               "torch_rng": torch.get_rng_state()})
            atomic_write_text(self.dir / "history.json", json.dumps(self.history, indent=1) + "\n")
            log.info("epoch %d: train loss %.4f, validation loss %.4f, validation top-1 %.3f (%.0f s)", self.epoch,
                     row["train_loss"], val_loss, val_top1, row["seconds"])
            if on_epoch:
                on_epoch(row)
            stale = sum(1 for _ in self._since_best())
            if t.max_minutes is not None and time.time() - t0 > 60 * t.max_minutes:
                log.info("max_minutes %.1f reached", t.max_minutes)
                break
        plot_history(self.history, self.dir / "learning_curve.png")
        return {"epochs": self.epoch, "best_val_loss": self.best, "minutes": round((time.time() - t0) / 60, 2)}

    def _since_best(self):
        """Epochs after the one with the lowest validation loss."""
        best_at = min(range(len(self.history)), key=lambda i: self.history[i]["val_loss"], default=-1)
        return range(best_at + 1, len(self.history))


def grouped_batches(groups: np.ndarray, batch_size: int, per_group: int, seed: int) -> list[list[int]]:
    """Batches of ``batch_size`` items made of runs of up to ``per_group`` items of one
    group (recording), groups and items in a seeded random order; the last incomplete batch
    is dropped. Several moments of one recording in a batch make the contrastive task tell
    times apart, not only recordings (with random batches they rarely meet)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(groups))
    by_group: dict[int, list[int]] = {}
    for i in order:
        by_group.setdefault(int(groups[i]), []).append(int(i))
    runs = [items[k:k + per_group] for items in by_group.values() for k in range(0, len(items), per_group)]
    flat = [i for run in (runs[j] for j in rng.permutation(len(runs))) for i in run]
    return [flat[b:b + batch_size] for b in range(0, len(flat) - batch_size + 1, batch_size)]


def plot_history(history: list[dict], path: Path) -> None:
    if not history:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="train NT-Xent")
    ax.plot(epochs, [h["val_loss"] for h in history], "s-", label="validation NT-Xent")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
