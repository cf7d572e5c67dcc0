"""How a model's recordings are compared: its segments and the track distance over them.

A segment model (CLEWS, Serrà et al. 2025) embeds overlapping segments and compares two
recordings by a reduction of their segment distances; CoverHunter cuts non-overlapping
chunks and takes the minimum. The choice is part of the model (``matching:`` in the
training config, written to the model card) so that the dev MAP, evaluation, the index and
identification compare recordings the way the model was made for:

    matching: {hop_s: 5.0, distance: best_pairs, best_k: 3}

``hop_s``: seconds between segment starts (None: the segment length, no overlap);
``distance``: ``min`` | ``mean`` | ``best_pairs`` (csi.scoring.distance); ``best_k``: the pairs
averaged by ``best_pairs``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional

from csi.registry import ConfigError

DISTANCES = ("min", "mean", "best_pairs")


@dataclass(frozen=True)
class Matching:
    hop_s: Optional[float] = None
    distance: str = "min"
    best_k: int = 3

    def __post_init__(self) -> None:
        if self.distance not in DISTANCES:
            raise ConfigError(f"matching: distance must be one of {', '.join(DISTANCES)}, got {self.distance!r}")
        if int(self.best_k) < 1:
            raise ConfigError(f"matching: best_k must be >= 1, got {self.best_k}")
        if self.hop_s is not None and not float(self.hop_s) > 0:
            raise ConfigError(f"matching: hop_s must be positive seconds, got {self.hop_s}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, where: str) -> "Matching":
        if d is None:
            return cls()
        unknown = set(d) - {"hop_s", "distance", "best_k"}
        if unknown:
            raise ConfigError(f"{where}: unknown matching key(s): {', '.join(sorted(unknown))}")
        hop = d.get("hop_s")
        return cls(None if hop is None else float(hop), str(d.get("distance", "min")), int(d.get("best_k", 3)))

    def with_overrides(self, hop_s: float | None = None, distance: str | None = None,
                       best_k: int | None = None) -> "Matching":
        """This matching with the given (non-None) values replaced (a tool's command line)."""
        return Matching(self.hop_s if hop_s is None else hop_s, distance or self.distance,
                        self.best_k if best_k is None else best_k)
