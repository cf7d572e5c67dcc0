"""Calibrated matches: the probability that a query's best match is of the same work, from
its distance, fitted on the top-1 matches of a validation set: Platt scaling (Platt 1999, a
logistic fit ``p = sigmoid(a + b·d)``) or isotonic regression (Zadrozny & Elkan 2002, pool
adjacent violators: a step function non-increasing in the distance), with the expected
calibration error (Guo et al. 2017, eq. 3) and a reliability plot. The file records the
model (checkpoint content) and the track distance it was fitted for: another model's or
another distance's calibration is refused with the reason.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_FILE = "calibration.json"
METHODS = ("platt", "isotonic")


class CalibrationMismatch(ValueError):
    """A calibration fitted for another model or track distance than the one in use."""


@dataclass(frozen=True)
class Calibration:
    a: float = 0.0                    # platt: p = sigmoid(a + b·d)
    b: float = 0.0
    fitted_on: int = 0                # top-1 matches used
    method: str = "platt"
    knots: list = field(default_factory=list)     # isotonic: [[distance, p], ...], distance ascending
    model: dict = field(default_factory=dict)     # {"checkpoint_sha256", "model_dir"} of the fitted model
    matching: dict = field(default_factory=dict)  # the track distance fitted on (csi.scoring.matching)

    def probability(self, distance) -> np.ndarray:
        """P(the match is of the same work) for cosine distances (array-like)."""
        d = np.asarray(distance, dtype=np.float64)
        if self.method == "isotonic":
            knots = np.asarray(self.knots, dtype=np.float64)
            return np.interp(d, knots[:, 0], knots[:, 1])
        z = self.a + self.b * d
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))

    def with_source(self, model: dict[str, Any], matching: dict[str, Any]) -> "Calibration":
        return Calibration(self.a, self.b, self.fitted_on, self.method, self.knots,
                           {k: model.get(k) for k in ("checkpoint_sha256", "model_dir")}, dict(matching))

    def check(self, model: dict[str, Any], matching: dict[str, Any], where: str) -> None:
        """Refuse (CalibrationMismatch) a calibration made for another checkpoint or distance."""
        mine = self.model.get("checkpoint_sha256")
        if not mine:
            raise CalibrationMismatch(f"{where}: no model recorded (made before calibrations named their model); "
                                      f"run tools.calibrate_matches again")
        if mine != model.get("checkpoint_sha256"):
            raise CalibrationMismatch(f"{where}: fitted for another model (checkpoint sha256 {mine[:12]} of "
                                      f"{self.model.get('model_dir')}); the index's model has "
                                      f"{str(model.get('checkpoint_sha256'))[:12]}: run tools.calibrate_matches "
                                      f"with this model")
        keys = ("distance", "best_k")
        if {k: self.matching.get(k) for k in keys} != {k: matching.get(k) for k in keys}:
            raise CalibrationMismatch(f"{where}: fitted on the {self.matching.get('distance')} distance "
                                      f"(best_k {self.matching.get('best_k')}), the matches are scored by "
                                      f"{matching.get('distance')} (best_k {matching.get('best_k')})")

    def save(self, directory: str | Path) -> Path:
        from csi.utils import atomic_write_text

        path = Path(directory) / CALIBRATION_FILE
        atomic_write_text(path, json.dumps(asdict(self), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "Calibration | None":
        path = Path(directory) / CALIBRATION_FILE
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (TypeError, ValueError) as e:
            raise CalibrationMismatch(f"{path}: not a calibration file ({e})") from None


def fit_platt(distance: np.ndarray, correct: np.ndarray, l2: float = 1e-3, iterations: int = 100) -> Calibration:
    """Logistic regression of ``correct`` (0/1) on ``distance`` by Newton's method (a small
    L2 penalty keeps it finite when the classes separate)."""
    x, y = _checked(distance, correct)
    design = np.column_stack([np.ones_like(x), x])
    w = np.zeros(2)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(design @ w, -60, 60)))
        grad = design.T @ (p - y) + l2 * w
        hess = design.T @ (design * (p * (1 - p))[:, None]) + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return Calibration(float(w[0]), float(w[1]), len(x))


def fit_isotonic(distance: np.ndarray, correct: np.ndarray) -> Calibration:
    """The least-squares fit of ``correct`` non-increasing in ``distance`` (pool adjacent
    violators): constant over each pooled block of distances (its accuracy), linear between
    blocks, constant beyond the ends; stored as knots (distance, p) at both ends of a block."""
    x, y = _checked(distance, correct)
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    blocks: list[list[float]] = []          # [sum y, count, first x, last x], accuracies decreasing
    for xi, yi in zip(x, y):
        blocks.append([yi, 1.0, xi, xi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] <= blocks[-1][0] / blocks[-1][1]:
            sy, n, _, last = blocks.pop()
            blocks[-1][0] += sy
            blocks[-1][1] += n
            blocks[-1][3] = last
    knots = [[edge, sy / n] for sy, n, first, last in blocks for edge in ((first,) if first == last else (first, last))]
    return Calibration(fitted_on=len(x), method="isotonic", knots=knots)


def _checked(distance, correct) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(distance, np.float64)
    y = np.asarray(correct, np.float64)
    if len(x) < 2 or y.min() == y.max():
        raise ValueError(f"calibration needs both right and wrong matches, got {int(y.sum())} of {len(y)} right")
    return x, y


def expected_calibration_error(p: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Σ_bins (n_bin / n) · |accuracy(bin) − mean confidence(bin)| over equal-width bins."""
    p, y = np.asarray(p, np.float64), np.asarray(correct, np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(y[which == k].mean() - p[which == k].mean()) * (which == k).mean()
                     for k in range(bins) if (which == k).any()))


def reliability_plot(path: str | Path, p: np.ndarray, correct: np.ndarray, bins: int = 10, title: str = "") -> None:
    """Accuracy against mean predicted probability per bin, with the counts."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p, y = np.asarray(p, np.float64), np.asarray(correct, np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k:", label="perfect calibration")
    xs = [p[which == k].mean() for k in range(bins) if (which == k).any()]
    ys = [y[which == k].mean() for k in range(bins) if (which == k).any()]
    ns = [int((which == k).sum()) for k in range(bins) if (which == k).any()]
    ax.plot(xs, ys, "o-", color="tab:red", label="held-out top-1 matches")
    for x_, y_, n in zip(xs, ys, ns):
        ax.annotate(str(n), (x_, y_), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel("predicted P(same work)")
    ax.set_ylabel("share of top-1 matches of the same work")
    ax.set_title(title or f"reliability (ECE {expected_calibration_error(p, y, bins):.3f})", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def split_by_work(works: list[str], fraction: float = 0.5) -> np.ndarray:
    """A fixed boolean mask (hash of the work id) choosing ``fraction`` of the works for fitting."""
    from csi.features.store import stable_hash

    return np.array([(stable_hash(str(w)) % 1000) / 1000.0 < fraction for w in works])
