"""The features of one record, as the model expects them: its stored ``feat`` (memory-mapped),
else its ``wav`` through the model's own front end, else its in-memory ``samples`` (mono, at
the front end's rate; the HEAR API's input) through the front end. Every refusal is an ``EmbedInputError``
whose message says why; a store made by another front end is a ``FrontEndMismatch``."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from csi.features.frontend import FrontEnd, store_frontend
from csi.registry import ConfigError
from csi.utils import SILENCE_PEAK


class EmbedInputError(ValueError):
    """One record cannot be embedded (missing, unreadable, silent, wrong shape, non-finite)."""


class FrontEndMismatch(ConfigError):
    """Stored features were made by another front end than the model's: nothing is comparable."""


class FeatureReader:
    """``reader(record) -> (frames, bins) array``; checks bins against ``input_dim``."""

    def __init__(self, frontend: FrontEnd, input_dim: int | None = None, device: Any = "cpu"):
        self.frontend = frontend
        self.input_dim = input_dim
        self.device = device
        self._module = None
        self._checked_stores: set[Path] = set()
        self.last_frames = 0          # frames of the last feature read (a query's duration)

    def __call__(self, rec: Mapping[str, Any]) -> np.ndarray:
        from csi.features.store import load_feature

        if rec.get("feat"):
            path = Path(rec["feat"])
            if not path.is_file():
                raise EmbedInputError(f"file not found: {path}")
            self._check_store(path)
            try:
                feat = load_feature(path)
            except (OSError, ValueError, EOFError) as e:
                raise EmbedInputError(f"{path}: unreadable feature ({' '.join(str(e).split())})") from None
        elif rec.get("wav"):
            feat = self.audio_features(rec["wav"])
        elif rec.get("samples") is not None:
            feat = self.samples_features(np.asarray(rec["samples"], dtype=np.float32))
        else:
            raise EmbedInputError("the record has neither 'feat' nor 'wav' nor 'samples'")
        if feat.ndim != 2 or feat.shape[0] < 1:
            raise EmbedInputError(f"unexpected feature shape {feat.shape}")
        if self.input_dim is not None and feat.shape[1] != self.input_dim:
            raise EmbedInputError(f"feature has {feat.shape[1]} bins, the model expects {self.input_dim}")
        if not np.isfinite(feat).all():
            raise EmbedInputError("non-finite values (NaN/Inf) in the features")
        self.last_frames = int(feat.shape[0])
        return feat

    def audio_features(self, path: str) -> np.ndarray:
        """The model's features of an audio file (decoded at the front end's rate)."""
        from csi.io.audio import AudioError, load

        if not Path(path).is_file():
            raise EmbedInputError(f"file not found: {path}")
        try:
            y, _ = load(path, self.frontend.sr)
        except AudioError as e:
            raise EmbedInputError(str(e)) from None
        if not np.isfinite(y).all():
            raise EmbedInputError(f"{path}: non-finite samples (NaN/Inf) in the audio")
        peak = float(np.max(np.abs(y))) if len(y) else 0.0
        if peak < SILENCE_PEAK:
            raise EmbedInputError(f"silent: peak {20 * math.log10(max(peak, 1e-12)):.1f} dBFS")
        return self.samples_features(y)

    def samples_features(self, y: np.ndarray) -> np.ndarray:
        """The front end's features of mono samples at its rate (no silence check: a silent
        clip has features too)."""
        if y.ndim != 1 or not np.isfinite(y).all():
            raise EmbedInputError(f"expected finite mono samples, got shape {y.shape}"
                                  + ("" if np.isfinite(y).all() else " with NaN/Inf"))
        if self._module is None:
            self._module = self.frontend.build(self.device)
        with torch.inference_mode():
            feat = self._module(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))).cpu().numpy()
        if len(feat) == 0:
            raise EmbedInputError(f"too short: {len(y) / self.frontend.sr:.2f} s gives no feature frame")
        return feat

    def _check_store(self, path: Path) -> None:
        root = path.parent.parent
        if root in self._checked_stores:
            return
        made_by = store_frontend(path)
        if made_by is not None and not made_by.same_features(self.frontend):
            raise FrontEndMismatch(f"features in {root} were made by front end {made_by.name} {made_by.params}, "
                                   f"the model by {self.frontend.name} {self.frontend.params}")
        self._checked_stores.add(root)
