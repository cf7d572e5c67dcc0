"""Which front end turns audio into a model's input features, with every parameter resolved.

A ``FrontEnd`` is what a model directory records (``csi.modeldir``) and what the feature
store records (``fingerprint.json``: ``sr`` and ``frontend``), so a consumer can compute the
same features from new audio and refuse features made by another front end.
"""
from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from csi.registry import ConfigError

COVERHUNTER_CQT = {"name": "coverhunter_cqt"}   # what a reference CoverHunter directory used
DEFAULT_PAD_VALUE = -100.0                      # dB: the padding of a chunk past a recording's end


@dataclass(frozen=True)
class FrontEnd:
    """A registered front end (``csi.features.cqt.FRONTENDS``) and its resolved parameters."""
    name: str
    params: dict = field(default_factory=dict)    # every constructor argument, sr included
    frames_per_s: float = 25.0
    n_bins: int = 96
    pad_value: float = DEFAULT_PAD_VALUE

    @property
    def sr(self) -> int:
        return int(self.params["sr"])

    def build(self, device: Any = "cpu"):
        """The front-end module, in eval mode on ``device``."""
        from csi.features.cqt import FRONTENDS

        return FRONTENDS.build({"name": self.name, **self.params}, where="front end").to(device).eval()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params), "frames_per_s": self.frames_per_s,
                "n_bins": self.n_bins, "pad_value": self.pad_value}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "front end") -> "FrontEnd":
        missing = {"name", "params", "frames_per_s", "n_bins"} - set(d)
        if missing:
            raise ConfigError(f"{where}: missing key(s) {', '.join(sorted(missing))}")
        return cls(str(d["name"]), dict(d["params"]), float(d["frames_per_s"]), int(d["n_bins"]),
                   float(d.get("pad_value", DEFAULT_PAD_VALUE)))

    def same_features(self, other: "FrontEnd") -> bool:
        return self.name == other.name and self.params == other.params


def resolve_frontend(config: Mapping[str, Any], sr: int | None = None) -> FrontEnd:
    """Resolve a ``{name, ...}`` front-end config: defaults filled in, ``sr`` (the feature
    stage's rate) passed unless the config sets it (a different value is a ConfigError), and
    frame rate, bins and padding read from the built module (``hop_s``, ``output_size``,
    optional ``pad_value``)."""
    from csi.features.cqt import FRONTENDS

    if not isinstance(config, Mapping) or "name" not in config:
        raise ConfigError(f"frontend: expected a mapping with a 'name', got {config!r}")
    cls = FRONTENDS.get(config["name"])
    signature = inspect.signature(cls).parameters
    given = {k: v for k, v in config.items() if k != "name"}
    if sr is not None and "sr" in signature:
        if "sr" in given and int(given["sr"]) != int(sr):
            raise ConfigError(f"frontend: sr {given['sr']} differs from the feature rate sr {sr}")
        given["sr"] = int(sr)
    module = FRONTENDS.build({"name": config["name"], **given}, where="frontend")
    params = {name: p.default for name, p in signature.items()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.default is not p.empty}
    params.update(given)
    if "sr" not in params:
        params["sr"] = int(getattr(module, "sr"))
    hop_s = float(getattr(module, "hop_s"))
    return FrontEnd(str(config["name"]), params, round(1.0 / hop_s, 9), int(module.output_size),
                    float(getattr(module, "pad_value", DEFAULT_PAD_VALUE)))


def store_frontend(feature_path: str | Path) -> FrontEnd | None:
    """The front end recorded by the feature store holding ``feature_path``
    (``<root>/xx/<utt>.cqt.npy`` → ``<root>/fingerprint.json``), or None without a record."""
    marker = Path(feature_path).parent.parent / "fingerprint.json"
    try:
        fingerprint = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(fingerprint, dict) or "frontend" not in fingerprint:
        return None
    return resolve_frontend(fingerprint["frontend"], fingerprint.get("sr"))
