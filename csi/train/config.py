"""The training ``hparams.yaml`` (``EXP_DIR/config/hparams.yaml``), CoverHunter's keys kept.

The file mixes three things, as the reference does: model keys (handed to
``csi.models.build_model``), training/data keys (``TrainConfig`` below) and dev sets —
top-level sections holding ``query_path``/``ref_path`` (e.g. ``covers80:``), evaluated
every ``every_n_epoch_to_dev`` epochs. Any other key is an error naming it.

Reference keys without an effect here are accepted, each with one warning saying why, and
are left out of the parsed config (so of the run record ``train_run.yaml``):

- ``num_gpus``: the number of processes comes from torchrun (``--nproc_per_node``).
- ``train_sample_path``, ``dev_path``: the reference logs a CE loss on these manifests
  every epoch; here the dev sets' MAP is the validation (the training loss is logged every
  ``log_every_steps``).
- dev set ``query_in_ref_path``: the dev MAP excludes the pairs of the same recording
  (same utt, tempo copies), not a pair list; ``tools.eval_testset --query_in_ref_path``
  reads one.
- dev set ``save_name``: names the reference's per-epoch embedding directory; the dev
  embeddings are not written to disk.

``chunk_s`` is checked, not ignored: in the reference it is the dev/test chunk length in
seconds and must equal ``chunk_frame[0] * mean_size`` feature frames (its evaluation
asserts this). The trainer checks it at the frame rate of the front end that made the
training features (csi.train.trainer.check_reference_keys) and refuses a file where it does
not hold, with both numbers; the chunk length comes from ``chunk_frame``/``mean_size`` (or
``dev_chunk_s``) as always. ``cqt.hop_size`` is checked there against the front end's hop.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from csi.modeldir import REFERENCE_CHUNK_FRAME, REFERENCE_MEAN_SIZE
from csi.utils import check_device_name
from csi.config import from_dict, to_dict
from csi.scoring.matching import Matching
from csi.models import model_keys
from csi.registry import ConfigError




@dataclass
class DevSet:
    query_path: str
    ref_path: str
    every_n_epoch_to_dev: int = 1

    IGNORED_KEYS: ClassVar[dict[str, str]] = {
        "query_in_ref_path": "the dev MAP excludes only pairs of the same recording (same utt, tempo copies); "
                             "tools.eval_testset --query_in_ref_path reads a pair list",
        "save_name": "names the reference's embedding directory; dev embeddings are not written to disk",
    }


@dataclass
class FineConfig:
    """Fine training (stage 5): start from the coarse model and cut the chunks of a batch's
    versions of a work at aligned positions (csi.data.aligned, the stage-4 alignment file)."""
    init_dir: str = ""                 # the coarse experiment (model directory)
    alignment_path: str = ""           # tools.alignment_for_frames output for train_path
    init_checkpoint: Optional[str] = None   # file in init_dir/pt_model; default g_best, else the latest epoch (csi.modeldir)
    min_confidence: float = 0.3        # less confident pairs fall back to random chunks

    def __post_init__(self) -> None:
        if not self.init_dir or not self.alignment_path:
            raise ConfigError("fine: init_dir (the coarse experiment) and alignment_path (stage 4) are required")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError(f"fine: min_confidence must be in [0, 1], got {self.min_confidence}")


@dataclass
class EarlyStopping:
    patience: int = 10          # epochs without a better dev MAP
    dev_set: Optional[str] = None  # default: the first dev set


@dataclass
class TrainConfig:
    # data (reference keys)
    train_path: str = ""
    data_type: str = "cqt"
    chunk_frame: list = field(default_factory=lambda: list(REFERENCE_CHUNK_FRAME))
    chunk_s: Optional[float] = None           # reference: dev chunk seconds; checked by the trainer
    mode: str = "random"
    mean_size: int = REFERENCE_MEAN_SIZE
    m_per_class: int = 8
    cqt: dict = field(default_factory=dict)   # reference: {hop_size: 0.04}; checked by the trainer
    spec_augmentation: Optional[dict] = None
    tempo_stretch: Optional[list] = None      # online stretch range, e.g. [0.8, 1.2]
    # training (reference keys)
    seed: int = 1234
    num_workers: int = 1
    batch_size: int = 16
    learning_rate: float = 0.001
    adam_b1: float = 0.8
    adam_b2: float = 0.99
    weight_decay: float = 0.01
    optimizer: Optional[dict] = None          # {name: adamw|adam, lookahead: {k, alpha}} (csi.train.optim); default AdamW
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
    fine: Optional[FineConfig] = None          # stage 5: aligned chunks from a coarse model
    dev_chunk_s: Optional[float] = None        # dev embedding chunk; default chunk_frame[0] frames
    matching: Optional[Matching] = None        # segment hop and track distance (csi.scoring.matching),
                                               # written to the model card; default: chunks, min
    device: str = "auto"                       # auto (cuda when available), cpu, cuda, cuda:N

    IGNORED_KEYS: ClassVar[dict[str, str]] = {
        "num_gpus": "the number of processes comes from torchrun (--nproc_per_node)",
        "train_sample_path": "no per-epoch CE loss on a train sample; the training loss is logged every "
                             "log_every_steps and the dev sets' MAP validates",
        "dev_path": "no per-epoch CE loss on a dev manifest; the dev sets (sections with query_path/ref_path) "
                    "are evaluated by MAP",
    }

    def __post_init__(self) -> None:
        if not self.train_path:
            raise ConfigError("train_path is required")
        if self.batch_size % self.m_per_class:
            raise ConfigError(f"batch_size {self.batch_size} must be a multiple of m_per_class {self.m_per_class}")
        if not self.chunk_frame or any(int(c) <= 0 for c in self.chunk_frame):
            raise ConfigError(f"chunk_frame: expected positive frame counts, got {self.chunk_frame!r}")
        if self.data_type != "cqt" or self.mode != "random":
            raise ConfigError(f"only data_type: cqt and mode: random are supported, got {self.data_type}/{self.mode}")
        check_device_name(self.device)


@dataclass
class Hparams:
    train: TrainConfig
    model: dict
    dev_sets: dict[str, DevSet]
    raw: dict                       # the dict as read (after --set overrides)
    ignored: dict[str, str] = field(default_factory=dict)   # key path ("covers80.save_name") -> why ignored

    def resolved(self, model: dict | None = None) -> dict[str, Any]:
        """The config actually used, in the layout of hparams.yaml (so it loads again):
        every TrainConfig value (defaults filled), the model keys (``model``: e.g. the
        trainer's with ``ce.output_dims`` resolved) and the dev sets; no ignored key."""
        out = to_dict(self.train)
        out.update(model if model is not None else self.model)
        out.update({name: to_dict(dev) for name, dev in self.dev_sets.items()})
        return out


def check_run_overrides(hp: dict[str, Any], assignments: list[str], where: str = "hparams.yaml") -> None:
    """Refuse a one-run override (``tools.train --set``) of a model key: csi.load_model, the
    evaluation and the index build the network from ``EXP_DIR/config/hparams.yaml``, so a
    model key changed for one run only would not match the checkpoints it writes."""
    keys = model_keys(hp.get("model", "coverhunter"))
    for assignment in assignments:
        key = assignment.partition("=")[0].strip()
        if key.split(".")[0] in keys:
            raise ConfigError(f"{where}: --set {key}: a model key is changed in the experiment's config "
                              f"(tools.make_config ... --set {key}=...), not for one run: the checkpoints are "
                              f"loaded with the model keys of config/hparams.yaml")


def parse_hparams(hp: dict[str, Any], where: str = "hparams.yaml", base_dir: str | None = None) -> Hparams:
    """Split a reference-style hparams dict into its parts; unknown keys are errors.

    Relative paths are taken relative to ``base_dir`` when that path exists there, else
    as given (relative to the working directory, as CoverHunter does).
    """
    keys = model_keys(hp.get("model", "coverhunter"))
    model = {k: v for k, v in hp.items() if k in keys}
    dev_sets: dict[str, DevSet] = {}
    rest: dict[str, Any] = {}
    ignored: dict[str, str] = {}
    for key, value in hp.items():
        if key in keys:
            continue
        if isinstance(value, dict) and "query_path" in value:
            dev_sets[key] = from_dict(DevSet, value, where=f"{where}: {key}", ignored=ignored, key_path=f"{key}.")
        else:
            rest[key] = value
    train = from_dict(TrainConfig, rest, where=where, ignored=ignored)
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
    return Hparams(train, model, dev_sets, hp, ignored)


def _resolve(path: str, base_dir: str) -> str:
    if os.path.isabs(path) or os.path.exists(path):
        return path
    candidate = os.path.join(base_dir, path)
    return candidate if os.path.exists(candidate) else path
