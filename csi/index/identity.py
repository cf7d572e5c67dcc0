"""Which model made an index: checkpoint content and name, and the model card (embedding
size, front end, chunking; csi.modeldir).

An index is only meaningful with the model that embedded it: ``check_model`` refuses any
other (different checkpoint content, embedding size, front end or chunking) and says why;
``index_model`` opens the model an index records, or the one a user names instead.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from csi.modeldir import checkpoint_path, identity, open_model  # checkpoint_path re-exported for the index tools

__all__ = ["ModelMismatchError", "check_model", "checkpoint_path", "index_model", "model_identity"]

_COMPARED = ("input_dim", "chunk_frames", "mean_size", "frontend")


class ModelMismatchError(ValueError):
    """The model does not match the one an index was built with; the message says how."""


def model_identity(model_dir: str | os.PathLike, checkpoint: str | int | None = None) -> dict[str, Any]:
    """The identity of a model directory's checkpoint (csi.modeldir.identity)."""
    return identity(model_dir, checkpoint)


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
    for key in _COMPARED:   # an index made before a key was recorded is not judged on it
        if key in index_model and key in model and index_model[key] != model[key]:
            reasons.append(f"{key} {index_model[key]} (index) vs {model[key]} (model)")
    if reasons:
        raise ModelMismatchError("model does not match the index: " + "; ".join(reasons))


def index_model(recorded: dict[str, Any], dim: int, model_dir: str | os.PathLike | None = None,
                checkpoint: str | int | None = None, device: Any = "cpu"):
    """Open the model of an index (``recorded``: its identity): the recorded directory and
    checkpoint unless others are named; anything but the index's model is refused."""
    model_dir = Path(model_dir or recorded.get("model_dir", ""))
    if checkpoint is None and recorded.get("checkpoint") and (model_dir / "pt_model" / str(recorded["checkpoint"])).is_file():
        checkpoint = recorded["checkpoint"]
    loaded = open_model(model_dir, checkpoint, device)   # opened once: its identity is checked, then served
    check_model(recorded, loaded.identity(), dim)
    return loaded
