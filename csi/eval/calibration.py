"""Calibrated matches: the probability that a query's best match is of the same work, from
its distance (Platt scaling, Platt 1999: a logistic fit ``p = sigmoid(a + b·d)``), fitted on
the top-1 matches of a validation set, with the expected calibration error (Guo et al.
2017, eq. 3) and a reliability plot.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class Calibration:
    a: float
    b: float
    fitted_on: int = 0                # top-1 matches used

    def probability(self, distance) -> np.ndarray:
        """P(the match is of the same work) for cosine distances (array-like)."""
        z = self.a + self.b * np.asarray(distance, dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))

    def save(self, directory: str | Path) -> Path:
        from csi.utils import atomic_write_text

        path = Path(directory) / CALIBRATION_FILE
        atomic_write_text(path, json.dumps(asdict(self), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> "Calibration | None":
        path = Path(directory) / CALIBRATION_FILE
        return cls(**json.loads(path.read_text(encoding="utf-8"))) if path.is_file() else None


def fit_platt(distance: np.ndarray, correct: np.ndarray, l2: float = 1e-3, iterations: int = 100) -> Calibration:
    """Logistic regression of ``correct`` (0/1) on ``distance`` by Newton's method (a small
    L2 penalty keeps it finite when the classes separate)."""
    x = np.asarray(distance, np.float64)
    y = np.asarray(correct, np.float64)
    if len(x) < 2 or y.min() == y.max():
        raise ValueError(f"calibration needs both right and wrong matches, got {int(y.sum())} of {len(y)} right")
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


def top1_matches(loaded, records: list[dict], batch_size: int = 32, progress: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All-vs-all over ``records`` (one embedding path, minimum chunk distance, a query's own
    recording and tempo copies excluded): each query's best distance, whether that match is
    of the same work, and the query's work."""
    from csi.embed import embed_records
    from csi.eval.distance import ChunkDistances
    from csi.eval.metrics import same_source_pairs

    result = embed_records(loaded.model, records, loaded.card.chunking(), loaded.reader(), batch_size,
                           loaded.device, progress=progress)
    keep = [i for i in range(len(records)) if i not in result.failed]
    renumber = np.full(len(records), -1, dtype=np.int64)
    renumber[keep] = np.arange(len(keep))
    rows = renumber[result.owner] >= 0
    owner = renumber[result.owner[rows]]
    dist = ChunkDistances(result.emb[rows], owner, len(keep), mode="min", device="cpu").full()
    utts = [records[i]["utt"] for i in keep]
    same_q, same_r = same_source_pairs(utts, utts)
    dist[same_q, same_r] = np.inf
    best = dist.argmin(axis=1)
    works = [str(records[i]["song"]) for i in keep]
    correct = np.array([works[b] == works[q] for q, b in enumerate(best)])
    return dist[np.arange(len(keep)), best], correct, works
