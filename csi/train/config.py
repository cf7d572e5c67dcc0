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

CoverHunterMPS (github alanngnet/CoverHunterMPS) files are read too
(:func:`map_coverhunter_mps`, called by :func:`parse_hparams`): its keys with a meaning here
become csi's (one log line each: ``foc`` → ``ce``, a dev set's ``every_n_epoch_to_test`` →
``every_n_epoch_to_dev``, ``optimizer: adamw`` → ``{name: adamw}``, ``early_stop_metric:
mAP`` with ``map_stopping_testsets``/``early_stopping_patience`` → ``early_stopping``,
``roll_pitch.method: default`` → CoverHunter's roll), keys without an effect in that file are
ignored with a warning (as above), and the rest are refused, each by key with the reason, in
one error. A file without CoverHunterMPS keys is read exactly as before.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Optional

from csi.modeldir import REFERENCE_CHUNK_FRAME, REFERENCE_MEAN_SIZE
from csi.utils import check_device_name
from csi.config import from_dict, to_dict
from csi.scoring.matching import Matching
from csi.models import model_keys
from csi.registry import ConfigError

log = logging.getLogger("csi.config")


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
    grad_accumulation: int = 1                 # micro-batches a step, drawn as that many DDP ranks would be
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
        if int(self.grad_accumulation) < 1:
            raise ConfigError(f"grad_accumulation must be a positive number of micro-batches, got {self.grad_accumulation}")
        check_device_name(self.device)


@dataclass
class Hparams:
    train: TrainConfig
    model: dict
    dev_sets: dict[str, DevSet]
    raw: dict                       # the dict as read (after --set overrides)
    ignored: dict[str, str] = field(default_factory=dict)   # key path ("covers80.save_name") -> why ignored
    mapped: dict[str, str] = field(default_factory=dict)    # CoverHunterMPS key path -> the csi key it became

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
    read = hp
    mps = map_coverhunter_mps(hp, where)
    hp = mps.hp
    keys = model_keys(hp.get("model", "coverhunter"))
    model = {k: v for k, v in hp.items() if k in keys}
    dev_sets: dict[str, DevSet] = {}
    rest: dict[str, Any] = {}
    ignored: dict[str, str] = dict(mps.ignored)
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
    return Hparams(train, model, dev_sets, read, ignored, mps.mapped)


def _resolve(path: str, base_dir: str) -> str:
    if os.path.isabs(path) or os.path.exists(path):
        return path
    candidate = os.path.join(base_dir, path)
    return candidate if os.path.exists(candidate) else path


# ---- CoverHunterMPS hparams.yaml ----------------------------------------------------------
# The keys of github alanngnet/CoverHunterMPS's training configs (training/*/config/hparams*.yaml)
# and trainer (src/trainer.py) that CoverHunter's files do not have.

MPS_TRAIN_PROD_KEYS = ("k_folds", "lr_initial", "lr_initial_fold2", "fold_hold_steps", "fold_lr_decay",
                       "final_lr_decay", "final_fold_position", "final_early_stopping_patience")
MPS_EARLY_STOP_KEYS = ("early_stop_metric", "early_stopping_patience", "map_stopping_testsets", "map_smoothing_alpha")
MPS_DEFAULT_PATIENCE = 20          # src/trainer.py: hp.get("early_stopping_patience", 20)
_TO_MAP = ("set early_stop_metric: mAP with map_stopping_testsets: [NAME] (a dev set), or csi's early_stopping: "
           "{patience, dev_set}, or remove the early-stopping keys (train to max_epochs / max_steps)")


@dataclass
class MpsMapping:
    """A config with its CoverHunterMPS keys read as csi's (:func:`map_coverhunter_mps`)."""
    hp: dict[str, Any]
    mapped: dict[str, str]     # key path -> what it became
    ignored: dict[str, str]    # key path -> why it has no effect


def map_coverhunter_mps(hp: Mapping[str, Any], where: str = "hparams.yaml") -> MpsMapping:
    """``hp`` (flat hparams) with CoverHunterMPS's keys mapped to csi's, the ones without an
    effect dropped (a warning each) and the others refused: one ConfigError naming ``where``
    and every refused key with its reason. A dict without such keys comes back equal."""
    out = dict(hp)
    mapped: dict[str, str] = {}
    ignored: dict[str, str] = {}
    refused: dict[str, str] = {}

    def ignore(key: str, why: str) -> None:
        out.pop(key, None)
        ignored[key] = why

    # the model: CoverHunterMPS calls CoverHunter's ce (a focal loss already) foc (src/model.py)
    if "foc" in out:
        if "ce" in out:
            refused["foc"] = "the focal loss CoverHunter and csi call ce, which this file also gives: keep one"
        else:
            out = _renamed(out, "foc", "ce")
            mapped["foc"] = "ce"
    if out.get("device") == "mps":
        refused["device: mps"] = ("Apple's mps device is not supported: csi trains on cpu or cuda; set device: auto "
                                  "(cuda when available) or pass tools.train --device cpu|cuda")
    # the optimizer: a name, AdamW unless it is prodigy (src/trainer.py configure_optimizer)
    optimizer = out.get("optimizer")
    if isinstance(optimizer, str):
        name = optimizer.lower()
        if name == "prodigy":
            refused["optimizer: prodigy"] = "the Prodigy optimizer is not implemented (csi.train.optim: adamw, adam)"
            for key in ("prodigy_d_coef", "prodigy_safeguard_warmup"):
                if key in out:
                    refused[key] = "a setting of the Prodigy optimizer, which is not implemented"
        elif name == "adamw":
            out["optimizer"] = {"name": "adamw"}
            mapped["optimizer: adamw"] = "optimizer: {name: adamw}"
            if "weight_decay" in out:
                ignore("weight_decay", "CoverHunterMPS's AdamW does not read it (torch's default 0.01, csi's default, "
                                       "is used); only its Prodigy does")
        else:
            refused[f"optimizer: {optimizer}"] = ("CoverHunterMPS names adamw or prodigy here; csi's optimizer is "
                                                  "adamw, or a section {name: adamw|adam, lookahead}")
    if not (isinstance(optimizer, str) and optimizer.lower() == "prodigy"):
        for key in ("prodigy_d_coef", "prodigy_safeguard_warmup"):
            if key in out:
                ignore(key, "read only by the Prodigy optimizer, which this file does not select")
    # the learning-rate schedule: a hold at the initial rate (src/scheduler.py)
    if "hold_steps" in out:
        hold = out["hold_steps"]
        if out.get("warmup") is True:
            ignore("hold_steps", "CoverHunterMPS ignores it when warmup is on")
        elif isinstance(hold, (int, float)) and not isinstance(hold, bool) and hold <= 0:
            ignore("hold_steps", "0: no hold, the learning rate decays from the start, as here")
        else:
            refused[f"hold_steps: {hold}"] = ("csi's schedule has no hold at the initial rate (warmup/warmup_steps, "
                                             "then lr_decay every lr_decay_every_steps down to min_lr): remove it or set 0")
    # losses logged on manifests, and reports: no effect on the model trained
    for key in ("val_path", "test_path"):
        if key in out:
            ignore(key, "CoverHunterMPS logs a focal loss on it every epoch; csi validates by the dev sets' MAP "
                        "(a section NAME: {query_path, ref_path} makes it one)")
    if "every_n_epoch_to_test" in out:
        ignore("every_n_epoch_to_test", "at the top level it sets how often CoverHunterMPS computes the "
                                        "val_path/test_path loss, which csi does not compute (a dev set's own "
                                        "every_n_epoch_to_test is its every_n_epoch_to_dev)")
    if "bootstrap" in out:
        ignore("bootstrap", "CoverHunterMPS reports a bootstrap interval of the test sets' MAP at each new best; "
                            "the dev MAP has none during training (tools.eval_testset --bootstrap N gives one)")
    for key in MPS_TRAIN_PROD_KEYS:
        if key in out:
            refused[key] = ("read by CoverHunterMPS's tools/train_prod.py (k-fold training, then a final training "
                            "on all data), which csi does not implement: tools.train trains once on train_path")
    # the dev sets ("test sets" there)
    for name, section in list(out.items()):
        if isinstance(section, Mapping) and "query_path" in section and "every_n_epoch_to_test" in section:
            if "every_n_epoch_to_dev" in section:
                refused[f"{name}.every_n_epoch_to_test"] = "CoverHunterMPS's name for every_n_epoch_to_dev, also given"
            else:
                out[name] = _renamed(dict(section), "every_n_epoch_to_test", "every_n_epoch_to_dev")
                mapped[f"{name}.every_n_epoch_to_test"] = f"{name}.every_n_epoch_to_dev"
    _map_early_stopping(out, mapped, ignored, refused, has_val_path="val_path" in hp)
    _map_roll_pitch(out, mapped, refused)
    if refused:
        raise ConfigError(f"{where}: CoverHunterMPS key(s) csi does not implement:\n" + "\n".join(
            f"  {key} — {why}" for key, why in refused.items()))
    for key, to in mapped.items():
        log.info("%s: %s: CoverHunterMPS key read as %s", where, key, to)
    for key, why in ignored.items():
        log.warning("%s: %s: ignored — %s", where, key, why)
    return MpsMapping(out, mapped, ignored)


def _map_early_stopping(out: dict, mapped: dict, ignored: dict, refused: dict, has_val_path: bool) -> None:
    """CoverHunterMPS's early-stopping keys (src/trainer.py train, _check_map_early_stopping)
    as csi's ``early_stopping`` section, in place. Its default metric is the ``val_path``
    loss (patience 20): a file with ``val_path`` and no metric stops on it there."""
    given = [k for k in MPS_EARLY_STOP_KEYS if k in out]
    if "early_stopping" in out:
        for key in given:
            refused[key] = "CoverHunterMPS's early stopping, and csi's early_stopping is given too: keep one"
        return
    metric = out.get("early_stop_metric", "val_loss")        # CoverHunterMPS's default
    names = out.get("map_stopping_testsets") or []
    if metric == "mAP" and not names:
        refused["map_stopping_testsets"] = ("missing or empty with early_stop_metric: mAP (CoverHunterMPS then stops "
                                            "on the val_path loss, which csi does not compute): name one dev set")
        return
    if metric == "val_loss":
        for key in ("map_stopping_testsets", "map_smoothing_alpha"):
            if key in out:
                out.pop(key)
                ignored[key] = "used only with early_stop_metric: mAP"
        key = next((k for k in ("early_stop_metric", "early_stopping_patience") if k in out), None)
        if key is None and has_val_path:
            ignored.pop("val_path", None)
            refused["val_path"] = ("with no early_stop_metric CoverHunterMPS stops on the focal loss of val_path "
                                   f"(its default metric, patience 20); csi has no validation loss: {_TO_MAP}, "
                                   f"or remove val_path (no early stopping)")
        elif key is not None:
            refused[f"{key}: {out[key]}"] = ("CoverHunterMPS stops on the val_path focal loss"
                                             f"{' (its default metric)' if key != 'early_stop_metric' else ''}; csi "
                                             f"has no validation loss and stops on a dev set's MAP: {_TO_MAP}")
        return
    if metric != "mAP":
        refused[f"early_stop_metric: {metric}"] = f"CoverHunterMPS takes val_loss or mAP; {_TO_MAP}"
        return
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) != 1:
        refused[f"map_stopping_testsets: {_show(names)}"] = ("csi's early stopping follows one dev set's MAP "
                                                      "(early_stopping.dev_set): name exactly one")
        return
    alpha = out.get("map_smoothing_alpha")
    if alpha is not None and alpha != 1:
        refused[f"map_smoothing_alpha: {alpha}"] = ("csi stops on the raw dev MAP (patience epochs without a better "
                                                   "one); a moving average of it is not implemented: remove the key "
                                                   "or set 1.0 (no smoothing)")
        return
    patience = out.get("early_stopping_patience", MPS_DEFAULT_PATIENCE)
    if not isinstance(patience, int) or isinstance(patience, bool) or patience < 1:
        refused[f"early_stopping_patience: {patience}"] = "expected a whole number of epochs >= 1"
        return
    shown = ", ".join(f"{key}: {_show(out[key])}" for key in given)
    for key in given:
        out.pop(key)
    out["early_stopping"] = {"patience": patience, "dev_set": names[0]}
    smoothing = ("" if alpha is not None else " (CoverHunterMPS would compare a moving average of the MAP, "
                 "map_smoothing_alpha 0.3 by default; csi compares the raw MAP)")
    mapped[shown] = f"early_stopping: {{patience: {patience}, dev_set: {names[0]}}}{smoothing}"


def _show(value: Any) -> str:
    return f"[{', '.join(map(str, value))}]" if isinstance(value, list) else str(value)


def _map_roll_pitch(out: dict, mapped: dict, refused: dict) -> None:
    """``spec_augmentation.roll_pitch.method`` (CoverHunterMPS src/dataset.py): ``default`` is
    CoverHunter's roll, csi's ``roll_pitch``; the melody shifts are not implemented."""
    spec = out.get("spec_augmentation")
    roll = spec.get("roll_pitch") if isinstance(spec, Mapping) else None
    if not isinstance(roll, Mapping) or "method" not in roll:
        return
    method = roll["method"]
    key = "spec_augmentation.roll_pitch.method"
    if method == "default":
        out["spec_augmentation"] = dict(spec, roll_pitch={k: v for k, v in roll.items() if k != "method"})
        mapped[f"{key}: default"] = "spec_augmentation.roll_pitch (CoverHunter's roll of the bins by -1, 0 or +1 times shift_num)"
    else:
        refused[f"{key}: {method}"] = ("CoverHunterMPS's melody-preserving shifts (low_melody, flex_melody) are not "
                                       "implemented; csi's roll_pitch is CoverHunter's roll (method: default)")


def _renamed(d: dict, old: str, new: str) -> dict:
    """``d`` with key ``old`` renamed ``new``, in its place."""
    return {(new if k == old else k): v for k, v in d.items()}
