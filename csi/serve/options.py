"""The identify service's limits and defaults (tools.serve_identify's options)."""
from __future__ import annotations

from dataclasses import dataclass

MB = 1 << 20


@dataclass(frozen=True)
class ServeOptions:
    """What one request may ask and send. ``max_bytes``: an upload's size; ``max_seconds``:
    its decoded duration; ``topk``: works listed unless ``?topk=`` says otherwise (at most
    ``max_topk``); ``plots_kept``: answers whose alignment plot stays available."""
    topk: int = 10
    max_topk: int = 100
    max_bytes: int = 50 * MB
    max_seconds: float = 900.0
    plots_kept: int = 64

    def __post_init__(self) -> None:
        for name in ("topk", "max_topk", "max_bytes", "plots_kept"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0, got {self.max_seconds}")
        if self.topk > self.max_topk:
            raise ValueError(f"topk {self.topk} exceeds max_topk {self.max_topk}")

    @classmethod
    def from_mb(cls, max_mb: float, **kwargs) -> "ServeOptions":
        return cls(max_bytes=int(round(max_mb * MB)), **kwargs)

    def limits(self) -> dict:
        """The limits as the page and /health state them."""
        return {"max_mb": round(self.max_bytes / MB, 3), "max_seconds": self.max_seconds, "topk": self.topk,
                "max_topk": self.max_topk}
