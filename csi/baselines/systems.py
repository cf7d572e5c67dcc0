"""The registry of non-learned reference systems, chosen by name.

Each system except ``chance`` summarises a track from its stored feature
(``vector(feat_db, layout)``): one vector, compared with ``compare(q, r)`` → (queries, refs)
distances (smaller is closer); or, for a ``pairwise`` system (``qmax``), a sequence, compared
with ``compare(q_seqs, r_seqs, q_utts, r_utts)`` (each track pair aligned: quadratic in the
collection). ``chance`` has neither: its metrics are the exact expectation of a random
ranking (``csi.baselines.chance``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from csi.baselines.chroma import BaselineError, CqtLayout
from csi.registry import ConfigError, Registry
from csi.baselines.chroma_mean import chroma_mean_vector, shift_min_cosine_distances
from csi.baselines.ftm2d import euclidean_distances, ftm2d_vector
from csi.baselines.mean_cqt import cosine_distances, mean_cqt_vector
from csi.baselines.qmax import qmax_chroma, qmax_distances

VectorFn = Callable[[np.ndarray, CqtLayout], np.ndarray]
CompareFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Baseline:
    """A reference system: ``name`` (registry key), ``title`` (what it is, for tables),
    per-track ``vector``, ``compare`` (None for ``chance``), whether its input must fold into
    12 pitch classes (``needs_chroma``) and whether it compares sequences pair by pair
    (``pairwise``; module docstring)."""
    name: str
    title: str
    vector: VectorFn | None
    compare: CompareFn | Callable[..., np.ndarray] | None
    needs_chroma: bool = False
    pairwise: bool = False


BASELINES = Registry("baseline")


def register(baseline: Baseline) -> Baseline:
    return BASELINES.register(baseline.name)(baseline)


def baseline_names() -> list[str]:
    """Registered names, in table order."""
    return BASELINES.in_order()


def get_baseline(name: str) -> Baseline:
    try:
        return BASELINES.get(name)
    except ConfigError:
        raise BaselineError(f"unknown baseline {name!r}; known: {', '.join(baseline_names())} (or all)") from None


def resolve_systems(spec: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Names from ``"all"``, ``"chroma_mean,2dftm"`` or a list of such strings; checked, in
    the order given, without repeats."""
    items = [spec] if isinstance(spec, str) or spec is None else list(spec)
    names: list[str] = []
    for item in items:
        for name in (item or "all").split(","):
            name = name.strip()
            if not name:
                continue
            for n in (baseline_names() if name == "all" else [get_baseline(name).name]):
                if n not in names:
                    names.append(n)
    return names


register(Baseline("chance", "random ranking (expected)", None, None))
register(Baseline("chroma_mean", "key-invariant mean chroma",
                  lambda feat, layout: chroma_mean_vector(feat, layout.fmin), shift_min_cosine_distances,
                  needs_chroma=True))
register(Baseline("2dftm", "2D Fourier transform magnitude",
                  lambda feat, layout: ftm2d_vector(feat, layout.fmin), euclidean_distances, needs_chroma=True))
register(Baseline("qmax", "Serra 2009 cross-recurrence Qmax",
                  lambda feat, layout: qmax_chroma(feat, layout.fmin, layout.frames_per_s),
                  lambda q, r, q_ids, r_ids, **kw: qmax_distances(q, r, q_ids, r_ids, **kw), needs_chroma=True,
                  pairwise=True))
register(Baseline("mean_cqt", "mean CQT (not key-invariant)",
                  lambda feat, layout: mean_cqt_vector(feat), cosine_distances))
