"""A model directory's self-description, ``config/model_card.yaml``, written by training next
to ``config/hparams.yaml``: what a consumer needs to embed new audio with the model.

    model: pitch_cnn            # registry name
    input_dim: 96               # feature bins the model reads
    embed_dim: 128
    num_classes: 300            # training works (classifier size)
    mean_size: 2                # stored frames averaged into one model frame
    chunk_frames: 500           # stored frames of the training chunk (chunk_frame[0] × mean_size)
    chunk_s: 20.0
    matching: {hop_s: null, distance: min, best_k: 3}   # how recordings are compared (csi.embed.matching)
    frontend: {name: coverhunter_cqt, params: {sr: 16000, hop_s: 0.04, ...},
               frames_per_s: 25.0, n_bins: 96, pad_value: -100.0}

A directory without the file (a published CoverHunter model) is described from its
``hparams.yaml`` with the CoverHunter CQT, so reference checkpoints keep working.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from csi.embed.chunks import ChunkPolicy
from csi.embed.frontend import COVERHUNTER_CQT, FrontEnd, resolve_frontend
from csi.embed.matching import Matching
from csi.registry import ConfigError
from csi.utils import atomic_write_text, file_sha256

log = logging.getLogger("csi.embed")

CARD_FILE = "config/model_card.yaml"


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
    atomic_write_text(path, "# what a consumer needs to embed audio with this model (csi.embed.card)\n"
                      + yaml.safe_dump(card.to_dict(), sort_keys=False))
    return path


def read_card(model_dir: str | Path) -> ModelCard:
    """The card of ``model_dir``; without one, the CoverHunter reference description."""
    from csi.config import load_yaml
    from csi.train.config import TrainConfig

    model_dir = Path(model_dir)
    path = model_dir / CARD_FILE
    if path.is_file():
        return ModelCard.from_dict(load_yaml(path), str(path))
    hp_path = model_dir / "config" / "hparams.yaml"
    if not hp_path.is_file():
        raise FileNotFoundError(f"file not found: {hp_path} (not a model directory)")
    hp = load_yaml(hp_path)
    defaults = TrainConfig(train_path="-")
    mean_size = int(hp.get("mean_size", defaults.mean_size))
    chunk_frame = hp.get("chunk_frame", defaults.chunk_frame)
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
        from csi.embed.reader import FeatureReader

        return FeatureReader(self.card.frontend, self.card.input_dim, self.device)

    def identity(self) -> dict[str, Any]:
        """What makes this model's embeddings what they are: checkpoint content and card."""
        return {"model_dir": str(self.model_dir.resolve()), "checkpoint": self.checkpoint.name,
                "checkpoint_sha256": file_sha256(self.checkpoint), **self.card.to_dict()}


def best_or_given(model_dir: str | Path, checkpoint: str | int | None) -> str | int | None:
    """``checkpoint`` as given, else ``g_best`` when the directory has one (the epoch the dev
    MAP chose), else None (``csi.train.checkpoint.checkpoint_path``: the latest epoch)."""
    if checkpoint is None and (Path(model_dir) / "pt_model" / "g_best").is_file():
        return "g_best"
    return checkpoint


def open_model(model_dir: str | Path, checkpoint: str | int | None = None, device: Any = "cpu",
               load: bool = True) -> LoadedModel:
    """The model of ``model_dir`` with its card; ``load=False`` skips building the network
    (for checks that need only the card and the checkpoint)."""
    from csi.train.checkpoint import checkpoint_path, load_model
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
