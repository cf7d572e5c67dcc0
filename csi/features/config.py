"""The feature stage's ``hparams.yaml`` (CoverHunter's ``data/<set>/hparams.yaml`` keys kept).

    aug_speed_mode: [0.8, 0.9, 1.0, 1.1, 1.2]   # tempo factors; each != 1.0 adds utt sp_<k>-<utt>
    add_noise: {prob: 0.75, chunk: 3, noise_path: data/noise/dataset.txt, snr_db: [0, 20]}
    frontend: {name: coverhunter_cqt}           # or {name: nnaudio_cqt, n_bins: 96, ...}

CoverHunter's ``add_noise`` also has ``sr`` and ``name``: ``sr`` is the rate the noise is
read at, which here is the feature rate ``sr``; a different value is refused (one rate
only). ``name`` is a label nothing reads: accepted with a warning and left out of the
resolved config (and of the feature-store fingerprint, so it cannot force a recompute).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Iterable, Optional

from csi.utils import check_device_name
from csi.registry import ConfigError


def _range(name: str, value: list, lo: float | None = None) -> None:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and value[0] <= value[1]):
        raise ConfigError(f"{name}: expected [min, max], got {value!r}")
    if lo is not None and value[0] < lo:
        raise ConfigError(f"{name}: values must be >= {lo}, got {value!r}")


@dataclass
class NoiseConfig:
    """Additive noise from a manifest of noise recordings (JSON lines with ``wav``)."""
    noise_path: str = ""
    prob: float = 0.75                      # per chunk: keep the noise in this chunk
    chunk: float = 3.0                      # chunk length in seconds
    snr_db: list = field(default_factory=lambda: [0.0, 20.0])
    sr: int = 16000                         # CoverHunter key; must equal the feature rate sr

    IGNORED_KEYS: ClassVar[dict[str, str]] = {"name": "a label in CoverHunter's file; nothing reads it"}

    def __post_init__(self) -> None:
        if not self.noise_path:
            raise ConfigError("add_noise: noise_path (a manifest of noise recordings) is required")
        _range("add_noise: snr_db", self.snr_db)


@dataclass
class PitchConfig:
    prob: float = 0.5
    semitones: list = field(default_factory=lambda: [-2, -1, 1, 2])   # one is drawn


@dataclass
class VolumeConfig:
    prob: float = 0.5
    gain_db: list = field(default_factory=lambda: [-12.0, 0.0])
    segment_s: float = 5.0

    def __post_init__(self) -> None:
        _range("volume: gain_db", self.gain_db)


@dataclass
class ReverbConfig:
    prob: float = 0.3
    ir_path: Optional[str] = None           # manifest of impulse responses; None: synthetic IRs
    rt60_s: list = field(default_factory=lambda: [0.2, 1.0])

    def __post_init__(self) -> None:
        _range("reverb: rt60_s", self.rt60_s, lo=0.01)


@dataclass
class FeatureConfig:
    sr: int = 16000
    frontend: dict = field(default_factory=lambda: {"name": "coverhunter_cqt"})
    aug_speed_mode: list = field(default_factory=lambda: [1.0])
    add_noise: Optional[NoiseConfig] = None
    pitch_shift: Optional[PitchConfig] = None
    volume: Optional[VolumeConfig] = None
    reverb: Optional[ReverbConfig] = None
    seed: int = 1234
    feat_dtype: str = "float16"             # float16 (default) or float32
    min_dur_s: float = 3.0                  # shorter recordings are reported in bad.txt
    device: str = "auto"                    # auto (cuda when available, else cpu), cpu, cuda, cuda:N

    def __post_init__(self) -> None:
        if not self.aug_speed_mode or any(not isinstance(k, (int, float)) or k <= 0 for k in self.aug_speed_mode):
            raise ConfigError(f"aug_speed_mode: expected a list of positive tempo factors, got {self.aug_speed_mode!r}")
        if len(set(self.aug_speed_mode)) != len(self.aug_speed_mode):
            raise ConfigError(f"aug_speed_mode: repeated factor in {self.aug_speed_mode!r}")
        if self.feat_dtype not in ("float16", "float32"):
            raise ConfigError(f"feat_dtype: expected float16 or float32, got {self.feat_dtype!r}")
        check_device_name(self.device)
        if not isinstance(self.frontend, dict) or "name" not in self.frontend:
            raise ConfigError(f"frontend: expected a mapping with a 'name', got {self.frontend!r}")
        if self.add_noise is not None and self.add_noise.sr != self.sr:
            raise ConfigError(f"add_noise: sr {self.add_noise.sr} differs from the feature rate sr {self.sr} "
                              f"(the noise is read at the feature rate)")


def load_feature_config(data_dir: str | os.PathLike, overrides: Iterable[str] = ()) -> FeatureConfig:
    """``DATA_DIR/hparams.yaml`` (absent: every default) with ``--set`` ``overrides``
    applied to the raw dict first, so an override is checked exactly as the file is."""
    from csi.config import apply_overrides, from_dict, load_yaml

    path = Path(data_dir) / "hparams.yaml"
    data = load_yaml(path) if path.exists() else {}
    overrides = list(overrides)
    apply_overrides(data, overrides, where=str(path))
    return from_dict(FeatureConfig, data, where=f"{path}{' + --set' if overrides else ''}")
