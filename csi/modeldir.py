"""The model directory, its one owner: layout, checkpoints, the model card, identity, opening.

    EXP_DIR/config/hparams.yaml       the training config (CoverHunter's file)
    EXP_DIR/config/model_card.yaml    what a consumer needs to embed audio (written by training)
    EXP_DIR/pt_model/g_XXXXXXXX       weights of an epoch, ``{"generator": state_dict}``
    EXP_DIR/pt_model/g_best           the epoch the dev MAP chose
    EXP_DIR/pt_model/do_XXXXXXXX      full training state (csi.train.checkpoint)

One rule picks the checkpoint a consumer uses when none is named (:func:`checkpoint_path`):
``g_best`` if there is one, else the latest epoch — for evaluation, the index, alignment,
calibration, the HEAR API and ``csi.load_model`` alike.

The card (``config/model_card.yaml``)::

    model: pitch_cnn            # registry name
    input_dim: 96               # feature bins the model reads
    embed_dim: 128
    num_classes: 300            # training works (classifier size)
    mean_size: 2                # stored frames averaged into one model frame
    chunk_frames: 500           # stored frames of the training chunk (chunk_frame[0] × mean_size)
    chunk_s: 20.0
    matching: {hop_s: null, distance: min, best_k: 3}   # how recordings are compared (csi.scoring.matching)
    frontend: {name: coverhunter_cqt, params: {sr: 16000, hop_s: 0.04, ...},
               frames_per_s: 25.0, n_bins: 96, pad_value: -100.0}

A directory without a card (a published CoverHunter model) is described from its
``hparams.yaml`` with the CoverHunter CQT, so reference checkpoints keep working.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml

from csi.chunking import ChunkPolicy
from csi.features.frontend import COVERHUNTER_CQT, FrontEnd, resolve_frontend
from csi.scoring.matching import Matching
from csi.registry import ConfigError
from csi.utils import atomic_write_text, file_sha256

log = logging.getLogger("csi.modeldir")

HPARAMS_FILE = "config/hparams.yaml"
CARD_FILE = "config/model_card.yaml"
PT_DIR = "pt_model"
BEST = "g_best"
REFERENCE_MEAN_SIZE = 3                      # CoverHunter's defaults, for a directory without a card
REFERENCE_CHUNK_FRAME = (1125, 900, 675)
_EPOCH = re.compile(r"^g_(\d{8})$")


SECTIONS = ("data", "optim", "train")      # sections of a nested training config (any key)


def flat_hparams(config: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
    """A training config in CoverHunter's flat ``hparams.yaml`` layout. A nested config —
    ``model: {name, <model keys>}``, ``data``/``optim``/``train`` sections and
    ``dev_sets: {name: {query_path, ref_path}}`` — is spread into it; a flat one is returned
    as it is. A key given twice, or a model key outside ``model``, is a ConfigError."""
    from csi.models import model_keys

    model = config.get("model")
    if not isinstance(model, Mapping) and not any(isinstance(config.get(k), Mapping) for k in SECTIONS + ("dev_sets",)):
        return dict(config)
    flat: dict[str, Any] = {}
    origin: dict[str, str] = {}

    def put(key: str, value: Any, section: str) -> None:
        if key in flat:
            raise ConfigError(f"{where}: {key} is given in {origin[key]} and in {section}")
        flat[key], origin[key] = value, section

    if isinstance(model, Mapping):
        if "name" not in model:
            raise ConfigError(f"{where}: model: needs a 'name' key (the model's registry name)")
        put("model", model["name"], "model.name")
        for key, value in model.items():
            if key != "name":
                put(key, value, "model")
    keys = set(model_keys(flat.get("model", config.get("model", "coverhunter")))) - {"model"}
    for key, value in config.items():
        if key == "model" and isinstance(value, Mapping):
            continue
        if key == "dev_sets" and isinstance(value, Mapping):
            for name, dev in value.items():
                put(str(name), dev, "dev_sets")
        elif key in SECTIONS and isinstance(value, Mapping):
            for sub, v in value.items():
                if isinstance(model, Mapping) and sub in keys:
                    raise ConfigError(f"{where}: {key}.{sub} is a model key: it belongs in the model section")
                put(sub, v, key)
        else:
            if isinstance(model, Mapping) and key in keys:
                raise ConfigError(f"{where}: {key} is a model key: it belongs in the model section")
            put(key, value, "the top level")
    return flat


def read_hparams(model_dir: str | os.PathLike) -> dict[str, Any]:
    """``config/hparams.yaml`` of a model directory in the flat layout (:func:`flat_hparams`)."""
    from csi.config import load_config

    path = Path(model_dir) / HPARAMS_FILE
    return flat_hparams(load_config(path), str(path))


def pt_dir(model_dir: str | os.PathLike) -> Path:
    return Path(model_dir) / PT_DIR


def epochs(model_dir: str | os.PathLike) -> list[int]:
    """Epochs that have a ``g_`` checkpoint, ascending."""
    d = pt_dir(model_dir)
    if not d.is_dir():
        return []
    return sorted(int(m.group(1)) for p in d.iterdir() if (m := _EPOCH.match(p.name)))


def checkpoint_path(model_dir: str | os.PathLike, checkpoint: str | int | None = None) -> Path:
    """The checkpoint file of ``model_dir``: an epoch number (or its digits), a file name in
    ``pt_model/`` (e.g. ``g_avg_last5``), or None for the default — ``g_best`` if there is
    one, else the latest epoch (the one rule every consumer follows)."""
    if isinstance(checkpoint, str) and checkpoint.isdigit():
        checkpoint = int(checkpoint)
    if checkpoint is None:
        if (pt_dir(model_dir) / BEST).is_file():
            return pt_dir(model_dir) / BEST
        found = epochs(model_dir)
        if not found:
            raise FileNotFoundError(f"no checkpoint pt_model/g_XXXXXXXX in {model_dir}")
        checkpoint = found[-1]
    path = pt_dir(model_dir) / (f"g_{checkpoint:08d}" if isinstance(checkpoint, int) else checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint {path}")
    return path


@dataclass(frozen=True)
class ModelCard:
    model: str
    input_dim: int
    embed_dim: int
    num_classes: int | None
    mean_size: int
    chunk_frames: int
    frontend: FrontEnd
    matching: Matching = Matching()

    @property
    def chunk_s(self) -> float:
        return self.chunk_frames / self.frontend.frames_per_s

    def seconds_to_frames(self, seconds: float) -> int:
        return round(seconds * self.frontend.frames_per_s)

    def chunking(self, chunk_s: float | None = None, hop_s: float | None = None) -> ChunkPolicy:
        """Chunks of ``chunk_s`` seconds (default: the training chunk) every ``hop_s``
        (default: the card's ``matching.hop_s`` for the training chunk, else ``chunk_s``, no
        overlap), in the front end's frames."""
        chunk_frames = self.chunk_frames if chunk_s is None else self.seconds_to_frames(chunk_s)
        if hop_s is None and chunk_s is None:
            hop_s = self.matching.hop_s
        hop_frames = chunk_frames if hop_s is None else self.seconds_to_frames(hop_s)
        try:
            return ChunkPolicy(chunk_frames, hop_frames, self.mean_size, self.frontend.pad_value)
        except ValueError as e:
            raise ConfigError(f"chunk_s {chunk_s} / hop_s {hop_s} at {self.frontend.frames_per_s:g} frames/s: {e}") \
                from None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "input_dim": self.input_dim, "embed_dim": self.embed_dim,
                "num_classes": self.num_classes, "mean_size": self.mean_size, "chunk_frames": self.chunk_frames,
                "chunk_s": round(self.chunk_s, 6), "matching": self.matching.to_dict(),
                "frontend": self.frontend.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> "ModelCard":
        try:
            return cls(str(d["model"]), int(d["input_dim"]), int(d["embed_dim"]),
                       None if d.get("num_classes") is None else int(d["num_classes"]), int(d["mean_size"]),
                       int(d["chunk_frames"]), FrontEnd.from_dict(d["frontend"], f"{where}: frontend"),
                       Matching.from_dict(d.get("matching"), where))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"{where}: malformed model card ({type(e).__name__}: {e})") from None


def write_card(model_dir: str | Path, card: ModelCard) -> Path:
    path = Path(model_dir) / CARD_FILE
    atomic_write_text(path, "# what a consumer needs to embed audio with this model (csi.modeldir)\n"
                      + yaml.safe_dump(card.to_dict(), sort_keys=False))
    return path


def read_card(model_dir: str | Path) -> ModelCard:
    """The card of ``model_dir``; without one, the CoverHunter reference description."""
    from csi.config import load_yaml

    model_dir = Path(model_dir)
    path = model_dir / CARD_FILE
    if path.is_file():
        return ModelCard.from_dict(load_yaml(path), str(path))
    hp_path = model_dir / HPARAMS_FILE
    if not hp_path.is_file():
        raise FileNotFoundError(f"file not found: {hp_path} (not a model directory)")
    hp = read_hparams(model_dir)
    mean_size = int(hp.get("mean_size", REFERENCE_MEAN_SIZE))
    chunk_frame = hp.get("chunk_frame", REFERENCE_CHUNK_FRAME)
    first = int(chunk_frame[0] if isinstance(chunk_frame, (list, tuple)) else chunk_frame)
    ce = hp.get("ce") if isinstance(hp.get("ce"), dict) else {}
    classes = ce.get("output_dims")
    log.info("%s has no %s: described as a CoverHunter model on the CoverHunter CQT", model_dir, CARD_FILE)
    return ModelCard(str(hp.get("model", "coverhunter")), int(hp.get("input_dim", 96)), int(hp.get("embed_dim", 128)),
                     classes if isinstance(classes, int) and classes > 0 else None, mean_size, first * mean_size,
                     resolve_frontend(COVERHUNTER_CQT))


@dataclass
class LoadedModel:
    """A model directory opened for embedding: the model (eval mode), its card, the checkpoint."""
    model_dir: Path
    model: Any
    card: ModelCard
    checkpoint: Path
    device: Any

    def reader(self):
        from csi.features.reader import FeatureReader

        return FeatureReader(self.card.frontend, self.card.input_dim, self.device)

    def identity(self) -> dict[str, Any]:
        """What makes this model's embeddings what they are: checkpoint content and card."""
        return {"model_dir": str(self.model_dir.resolve()), "checkpoint": self.checkpoint.name,
                "checkpoint_sha256": file_sha256(self.checkpoint), **self.card.to_dict()}



def open_model(model_dir: str | Path, checkpoint: str | int | None = None, device: Any = "cpu",
               load: bool = True) -> LoadedModel:
    """The model of ``model_dir`` with its card and checkpoint (default: :func:`checkpoint_path`'s
    rule); ``load=False`` skips building the network (for checks that need only the card and
    the checkpoint's identity)."""
    from csi.utils import resolve_device

    model_dir = Path(model_dir)
    card = read_card(model_dir)
    path = checkpoint_path(model_dir, checkpoint)
    device = resolve_device(device)
    model = load_model(model_dir, device, path.name) if load else None
    if model is not None and getattr(model, "output_size", card.embed_dim) != card.embed_dim:
        raise ConfigError(f"{model_dir}: the model gives {model.output_size}-d embeddings, its card says "
                          f"{card.embed_dim}")
    return LoadedModel(model_dir, model, card, path, device)


def identity(model_dir: str | os.PathLike, checkpoint: str | int | None = None) -> dict[str, Any]:
    """``LoadedModel.identity`` of a checkpoint without building the network: model_dir,
    checkpoint, checkpoint_sha256 and the card's entries."""
    return open_model(model_dir, checkpoint, "cpu", load=False).identity()


def load_model(model_dir: str | os.PathLike, device: str | torch.device = "cpu",
               checkpoint: str | int | None = None) -> torch.nn.Module:
    """The network of ``model_dir`` (``config/hparams.yaml`` + a checkpoint, default
    :func:`checkpoint_path`'s rule) in eval mode; the published CoverHunter model loads as ours."""
    from csi.models import build_model, model_keys

    model_dir = Path(model_dir)
    hp = read_hparams(model_dir)
    keys = model_keys(hp.get("model", "coverhunter"))
    hp = {k: v for k, v in hp.items() if k in keys}
    state = torch.load(checkpoint_path(model_dir, checkpoint), map_location="cpu", weights_only=True)["generator"]
    ce = hp.get("ce")
    if isinstance(ce, dict) and ce.get("output_dims") in ("auto", 0, None) and "_ce_layer.weight" in state:
        hp["ce"] = dict(ce, output_dims=int(state["_ce_layer.weight"].shape[0]))
    model = build_model(hp)
    model.load_state_dict(state)
    return model.to(device).eval()
