"""A trained fingerprinter in use: its directory loaded (audiofp.train writes it)
and the fingerprints of audio, 1-s segments every ``hop_s``."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from csi.config import from_dict, load_yaml
from audiofp.frontend import LogMel, MelConfig
from audiofp.model import build_fingerprinter
from audiofp.train import BEST_FILE, CONFIG_FILE, FingerprintConfig
from csi.utils import file_sha256


@dataclass
class LoadedFingerprinter:
    frontend: LogMel
    model: torch.nn.Module
    mel: MelConfig
    identity: dict


def load_fingerprinter(model_dir: str | os.PathLike, device: str = "cpu") -> LoadedFingerprinter:
    """The best model of a fingerprinter directory, in eval mode, with its front end."""
    model_dir = Path(model_dir)
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path} (not a fingerprinter directory)")
    cfg = from_dict(FingerprintConfig, load_yaml(path), where=str(path))
    weights = model_dir / BEST_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"file not found: {weights} (the fingerprinter has not finished an epoch)")
    model = build_fingerprinter({**cfg.model, "n_mels": cfg.mel.n_mels, "frames": cfg.mel.frames})
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=False)["model"])
    identity = {"model_dir": str(model_dir.resolve()), "checkpoint": BEST_FILE,
                "checkpoint_sha256": file_sha256(weights), "mel": cfg.mel.to_dict(), "model": dict(cfg.model),
                "embed_dim": int(model.output_size)}
    return LoadedFingerprinter(LogMel(cfg.mel).to(device), model.to(device).eval(), cfg.mel, identity)


def fingerprints(loaded: LoadedFingerprinter, audio: np.ndarray, hop_s: float, batch_size: int = 256
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(segments, dim) fingerprints of 1-s segments of ``audio`` every ``hop_s`` and their
    start times (s); a recording shorter than one segment gives none."""
    seg = loaded.mel.segment_samples
    hop = max(1, round(hop_s * loaded.mel.sr))
    if len(audio) < seg:
        return np.zeros((0, loaded.model.output_size), np.float32), np.zeros(0)
    starts = np.arange(0, len(audio) - seg + 1, hop)
    windows = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float32), seg)[starts]
    out = []
    device = next(loaded.model.parameters()).device
    with torch.inference_mode():
        for b in range(0, len(windows), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(windows[b:b + batch_size])).to(device)
            out.append(loaded.model(loaded.frontend(x)).cpu().numpy())
    return np.concatenate(out).astype(np.float32), starts / loaded.mel.sr
