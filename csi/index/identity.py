"""Which model made an index: checkpoint hash and name, embedding size, chunk settings.

An index is only meaningful with the model that embedded it: ``check_model`` refuses any
other (different checkpoint content, embedding size or chunking) and says why.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from csi.train.checkpoint import checkpoint_path  # re-exported for the index tools


class ModelMismatchError(ValueError):
    """The model does not match the one an index was built with; the message says how."""


def file_sha256(path: str | os.PathLike, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def model_identity(model_dir: str | os.PathLike, checkpoint: str | int | None = None) -> dict[str, Any]:
    """Identity of a model directory's checkpoint: ``model_dir`` (absolute), ``checkpoint``
    (file name), ``checkpoint_sha256``, ``embed_dim``, ``input_dim`` and its chunking
    (``chunk_frames`` stored CQT frames = ``chunk_frame[0]`` × ``mean_size``)."""
    from csi.config import load_yaml
    from csi.train.config import parse_hparams

    model_dir = Path(model_dir).resolve()
    config = model_dir / "config" / "hparams.yaml"
    hp = parse_hparams(load_yaml(config), where=str(config))
    path = checkpoint_path(model_dir, checkpoint)
    return {
        "model_dir": str(model_dir),
        "checkpoint": path.name,
        "checkpoint_sha256": file_sha256(path),
        "embed_dim": int(hp.model["embed_dim"]),
        "input_dim": int(hp.model["input_dim"]),
        "chunk_frames": int(hp.train.chunk_frame[0]) * int(hp.train.mean_size),
        "mean_size": int(hp.train.mean_size),
    }


def check_model(index_model: dict[str, Any], model: dict[str, Any], dim: int | None = None) -> None:
    """Raise ModelMismatchError unless ``model`` (a ``model_identity``) is the model of an
    index (``index_model``, its recorded identity; ``dim`` its vector size)."""
    reasons = []
    size = model.get("embed_dim")
    if dim is not None and size is not None and int(size) != int(dim):
        reasons.append(f"the index holds {dim}-d vectors but the model gives {size}-d embeddings")
    elif index_model.get("embed_dim") is not None and size is not None and index_model["embed_dim"] != size:
        reasons.append(f"embedding size {index_model['embed_dim']} (index) vs {size} (model)")
    if index_model.get("checkpoint_sha256") != model.get("checkpoint_sha256"):
        reasons.append(
            f"the index was built with checkpoint {index_model.get('checkpoint')} of {index_model.get('model_dir')} "
            f"(sha256 {str(index_model.get('checkpoint_sha256'))[:12]}), this is {model.get('checkpoint')} of "
            f"{model.get('model_dir')} (sha256 {str(model.get('checkpoint_sha256'))[:12]})")
    for key in ("input_dim", "chunk_frames", "mean_size"):
        if key in index_model and key in model and index_model[key] != model[key]:
            reasons.append(f"{key} {index_model[key]} (index) vs {model[key]} (model)")
    if reasons:
        raise ModelMismatchError("model does not match the index: " + "; ".join(reasons))
