"""The training ``hparams.yaml`` (``EXP_DIR/config/hparams.yaml``), CoverHunter's keys kept.

The file mixes three things, as the reference does: model keys (handed to
``csi.models.build_model``), training/data keys (``TrainConfig`` below) and dev sets —
top-level sections holding ``query_path``/``ref_path`` (e.g. ``covers80:``), evaluated
every ``every_n_epoch_to_dev`` epochs. Any other key is an error naming it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from csi.config import from_dict
from csi.models import model_keys
from csi.registry import ConfigError


@dataclass
class DevSet:
    query_path: str
    ref_path: str
    every_n_epoch_to_dev: int = 1
    query_in_ref_path: Optional[str] = None   # accepted from the reference; not used for the dev MAP
    save_name: Optional[str] = None


@dataclass
class EarlyStopping:
    patience: int = 10          # epochs without a better dev MAP
    dev_set: Optional[str] = None  # default: the first dev set


@dataclass
class TrainConfig:
    # data (reference keys)
    train_path: str = ""
    train_sample_path: Optional[str] = None   # accepted from the reference; unused
    dev_path: Optional[str] = None            # accepted from the reference; unused
    data_type: str = "cqt"
    chunk_frame: list = field(default_factory=lambda: [1125, 900, 675])
    chunk_s: Optional[float] = None           # reference bookkeeping; unused
    mode: str = "random"
    mean_size: int = 3
    m_per_class: int = 8
    cqt: dict = field(default_factory=lambda: {"hop_size": 0.04})
    spec_augmentation: Optional[dict] = None
    tempo_stretch: Optional[list] = None      # online stretch range, e.g. [0.8, 1.2]
    # training (reference keys)
    seed: int = 1234
    num_workers: int = 1
    num_gpus: int = 1                          # reference key; torchrun decides the processes
    batch_size: int = 16
    learning_rate: float = 0.001
    adam_b1: float = 0.8
    adam_b2: float = 0.99
    weight_decay: float = 0.01
    lr_decay: float = 0.9975
    lr_decay_every_steps: int = 1000           # the reference decays every 1000 steps
    min_lr: float = 0.0001
    warmup: bool = False
    warmup_steps: int = 20000
    every_n_epoch_to_dev: int = 1
    every_n_epoch_to_save: int = 1
    # csi additions
    max_epochs: int = 100
    max_steps: Optional[int] = None
    max_minutes: Optional[float] = None        # stop (after the epoch) once this much wall time passed
    grad_clip: float = 1.0
    amp: bool = True                           # mixed precision when on GPU
    keep_last: int = 5                         # full checkpoints kept (plus the best)
    save_every_steps: Optional[int] = None     # also save mid-epoch (resumable)
    log_every_steps: int = 50
    max_nan_steps: int = 10                    # consecutive non-finite losses before stopping
    early_stopping: Optional[EarlyStopping] = None
    dev_chunk_s: Optional[float] = None        # dev embedding chunk; default chunk_frame[0] frames
    device: str = "auto"

    def __post_init__(self) -> None:
        if not self.train_path:
            raise ConfigError("train_path is required")
        if self.batch_size % self.m_per_class:
            raise ConfigError(f"batch_size {self.batch_size} must be a multiple of m_per_class {self.m_per_class}")
        if not self.chunk_frame or any(int(c) <= 0 for c in self.chunk_frame):
            raise ConfigError(f"chunk_frame: expected positive frame counts, got {self.chunk_frame!r}")
        if self.data_type != "cqt" or self.mode != "random":
            raise ConfigError(f"only data_type: cqt and mode: random are supported, got {self.data_type}/{self.mode}")


@dataclass
class Hparams:
    train: TrainConfig
    model: dict
    dev_sets: dict[str, DevSet]
    raw: dict


def parse_hparams(hp: dict[str, Any], where: str = "hparams.yaml", base_dir: str | None = None) -> Hparams:
    """Split a reference-style hparams dict into its parts; unknown keys are errors.

    Relative paths are taken relative to ``base_dir`` when that path exists there, else
    as given (relative to the working directory, as CoverHunter does).
    """
    keys = model_keys(hp.get("model", "coverhunter"))
    model = {k: v for k, v in hp.items() if k in keys}
    dev_sets: dict[str, DevSet] = {}
    rest: dict[str, Any] = {}
    for key, value in hp.items():
        if key in keys:
            continue
        if isinstance(value, dict) and "query_path" in value:
            dev_sets[key] = from_dict(DevSet, value, where=f"{where}: {key}")
        else:
            rest[key] = value
    train = from_dict(TrainConfig, rest, where=where)
    if "input_dim" not in model or "embed_dim" not in model:
        raise ConfigError(f"{where}: missing model section: input_dim and embed_dim are required")
    if train.early_stopping and train.early_stopping.dev_set and train.early_stopping.dev_set not in dev_sets:
        raise ConfigError(f"{where}: early_stopping: dev_set {train.early_stopping.dev_set!r} is not a dev set "
                          f"(dev sets: {', '.join(dev_sets) or 'none'})")
    if base_dir:
        train.train_path = _resolve(train.train_path, base_dir)
        for dev in dev_sets.values():
            dev.query_path = _resolve(dev.query_path, base_dir)
            dev.ref_path = _resolve(dev.ref_path, base_dir)
    return Hparams(train, model, dev_sets, hp)


def _resolve(path: str, base_dir: str) -> str:
    if os.path.isabs(path) or os.path.exists(path):
        return path
    candidate = os.path.join(base_dir, path)
    return candidate if os.path.exists(candidate) else path
