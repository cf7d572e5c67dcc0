"""Former home of the baselines, kept for old imports: see ``csi.eval.baselines``."""
from __future__ import annotations

from typing import Sequence

from csi.eval.baselines import evaluate_baselines


def mean_cqt_map(queries: Sequence[dict], refs: Sequence[dict]) -> float:
    """MAP of the ``mean_cqt`` baseline (cosine of the mean CQT frame, not key-invariant)."""
    return float(evaluate_baselines(queries, refs, "mean_cqt")["mean_cqt"]["MAP"])


def chance_map(queries: Sequence[dict], refs: Sequence[dict]) -> float:
    """Expected MAP of a random ranking (exact, see ``csi.eval.baselines.chance``)."""
    return float(evaluate_baselines(queries, refs, "chance")["chance"]["MAP"])
