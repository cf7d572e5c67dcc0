"""Training-state save and resume, in CoverHunter's checkpoint format (the model directory's
layout and the checkpoint a consumer uses: csi.modeldir).

``EXP_DIR/pt_model/g_XXXXXXXX`` (8-digit epoch) holds ``{"generator": state_dict}``, as the
reference writes it, so the published model and ours load alike. Beside it
``do_XXXXXXXX`` holds everything needed to continue exactly (optimizer, step, epoch, RNG
states, sampler position, best dev MAP, history); ``resume.pt`` is the same for a save in
the middle of an epoch. All files are written to a temporary name, flushed to disk and
renamed, so a killed run (or a crash) leaves each file whole or absent; they load with
``torch.load(..., weights_only=True)``. Resuming skips, with a warning, a save that
cannot be read all the same (a file damaged outside this code) and takes the next best.
"""
from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csi.modeldir import BEST, epochs, pt_dir  # noqa: F401  (the layout, re-exported for training)

log = logging.getLogger("csi.train")


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary name, fsync, rename: ``path`` is never seen half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_epoch(exp_dir: str | os.PathLike, epoch: int, generator: dict, state: dict) -> Path:
    d = pt_dir(exp_dir)
    atomic_save(state, d / f"do_{epoch:08d}")
    path = d / f"g_{epoch:08d}"
    atomic_save({"generator": generator}, path)  # last: its presence marks a finished save
    return path


def save_resume(exp_dir: str | os.PathLike, generator: dict, state: dict) -> None:
    atomic_save({"generator": generator, "state": state}, pt_dir(exp_dir) / "resume.pt")


def latest_state(exp_dir: str | os.PathLike) -> tuple[dict, dict] | None:
    """``(generator, state)`` of the most advanced readable full-state save (the last epoch
    save or the mid-epoch ``resume.pt``, whichever has more steps); an unreadable one is
    skipped with a warning for the one before it."""
    d = pt_dir(exp_dir)
    found: tuple[dict, dict] | None = None
    for epoch in reversed([e for e in epochs(exp_dir) if (d / f"do_{e:08d}").exists()]):
        state = _load(d / f"do_{epoch:08d}", "step")
        blob = _load(d / f"g_{epoch:08d}", "generator") if state is not None else None
        if blob is not None:
            found = (blob["generator"], state)
            break
    if (d / "resume.pt").exists():
        blob = _load(d / "resume.pt", "generator", "state")
        if blob is not None and (found is None or blob["state"]["step"] > found[1]["step"]):
            found = (blob["generator"], blob["state"])
    return found


def _load(path: Path, *keys: str) -> dict | None:
    """The dict saved in ``path`` if it loads and has ``keys``; else None, with a warning."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # RuntimeError (bad zip), EOFError, UnpicklingError, OSError
        log.warning("%s: unreadable checkpoint, skipped (%s)", path, " ".join(str(e).split())[:200])
        return None
    missing = [k for k in keys if k not in blob] if isinstance(blob, dict) else list(keys)
    if missing:
        log.warning("%s: not a full-state checkpoint (no %s), skipped", path, ", ".join(missing))
        return None
    return blob


def prune(exp_dir: str | os.PathLike, keep_last: int, keep: set[int] = frozenset()) -> None:
    """Delete epoch checkpoints except the last ``keep_last`` and those in ``keep``."""
    all_epochs = epochs(exp_dir)
    for epoch in all_epochs[:-keep_last] if keep_last > 0 else []:
        if epoch in keep:
            continue
        for prefix in ("g_", "do_"):
            (pt_dir(exp_dir) / f"{prefix}{epoch:08d}").unlink(missing_ok=True)


def average(exp_dir: str | os.PathLike, chosen: list[int]) -> dict:
    """Parameter average of the ``g_`` checkpoints of ``chosen`` epochs (integer buffers,
    such as BatchNorm's counters, are taken from the last)."""
    if not chosen:
        raise ValueError("no checkpoints to average")
    total: dict[str, torch.Tensor] = {}
    for epoch in chosen:
        sd = torch.load(pt_dir(exp_dir) / f"g_{epoch:08d}", map_location="cpu", weights_only=True)["generator"]
        for k, v in sd.items():
            if v.is_floating_point():
                total[k] = total.get(k, 0) + v.double()
            else:
                total[k] = v
    return {k: (v / len(chosen)).float() if v.is_floating_point() else v for k, v in total.items()}


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "python": _tuples_to_lists(random.getstate()),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_lists_to_tuples(state["python"]))


def _tuples_to_lists(x):
    return [_tuples_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _lists_to_tuples(x):
    return tuple(_lists_to_tuples(v) for v in x) if isinstance(x, list) else x
