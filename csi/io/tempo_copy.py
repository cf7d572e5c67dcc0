"""The name of a tempo copy made by the feature stage, in CoverHunter's convention:
``sp_<k>-<utt>`` is recording ``utt`` played k times as fast (``aug_speed_mode``). The one
place that makes and reads such names."""
from __future__ import annotations

import re
from typing import Any, Mapping

PREFIX = "sp_"
_NAME = re.compile(r"sp_([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)-(.+)")


def make(utt: str, factor: float) -> str:
    """The copy of ``utt`` at tempo ``factor``: ``sp_0.8-<utt>``; factor 1 keeps ``utt``."""
    return utt if abs(factor - 1.0) < 1e-9 else f"{PREFIX}{factor:g}-{utt}"


def parse(utt: str) -> tuple[float, str] | None:
    """``(factor, source utt)`` of a tempo copy's name, None for any other utt."""
    m = _NAME.fullmatch(str(utt))
    return (float(m.group(1)), m.group(2)) if m else None


def source(utt: str) -> str:
    """The recording a copy came from: ``sp_0.8-abc`` → ``abc`` (any ``sp_…-`` prefix is
    dropped, as CoverHunter does); any other utt is its own source."""
    utt = str(utt)
    if utt.startswith(PREFIX) and "-" in utt:
        return utt.split("-", 1)[1]
    return utt


def factor(rec: Mapping[str, Any]) -> float:
    """The tempo factor of a record: ``aug.tempo``, else from its utt's name, else 1."""
    aug = rec.get("aug")
    if isinstance(aug, Mapping) and aug.get("tempo"):
        return float(aug["tempo"])
    parsed = parse(str(rec.get("utt", "")))
    return parsed[0] if parsed else 1.0
