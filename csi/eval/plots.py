"""Figures of stage 6: distance histograms and the embedding map."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

def plot_distance_hist(path: Path, same: np.ndarray, diff: np.ndarray) -> None:
    """Normalised histograms of the distances of same-work and different-work pairs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    occupied = np.flatnonzero(same + diff)
    lo, hi = (occupied[0], occupied[-1] + 1) if len(occupied) else (0, len(same))
    group = max(1, -(-(hi - lo) // 80))                   # about 80 bars over the occupied range
    hi = lo + -(-(hi - lo) // group) * group
    pad = np.zeros(max(0, hi - len(same)), dtype=np.int64)
    edges = np.linspace(0.0, 2.0, len(same) + 1)
    width = (edges[1] - edges[0]) * group
    left = edges[lo] + width * np.arange((hi - lo) // group)
    fig, ax = plt.subplots(figsize=(7, 4))
    for counts, name, colour in ((diff, "different work", "tab:gray"), (same, "same work", "tab:red")):
        total = counts.sum()
        if total:
            grouped = np.concatenate([counts, pad])[lo:hi].reshape(-1, group).sum(axis=1)
            ax.bar(left, grouped / total / width, width=width, align="edge", alpha=0.6, color=colour,
                   label=f"{name} ({total:,} pairs)")
    ax.set_xlabel("track distance (cosine)")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_pca(path: Path, emb: np.ndarray, labels: Sequence, max_works: int = 20) -> None:
    """2-D PCA (SVD of the centred track embeddings), coloured by work: the ``max_works``
    largest works in colour, other tracks (and distractors) in grey."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = emb - emb.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T if len(vt) >= 2 else np.column_stack([x @ vt[:1].T, np.zeros(len(x))])
    explained = (s[:2] ** 2) / max(float((s ** 2).sum()), 1e-12)
    sizes: dict = {}
    for lab in labels:
        if lab is not None:
            sizes[lab] = sizes.get(lab, 0) + 1
    shown = [w for w, n in sorted(sizes.items(), key=lambda kv: (-kv[1], str(kv[0]))) if n > 1][:max_works]
    colour_of = {w: plt.get_cmap("tab20")(k % 20) for k, w in enumerate(shown)}
    fig, ax = plt.subplots(figsize=(6.5, 6))
    grey = np.array([lab not in colour_of for lab in labels])
    ax.scatter(xy[grey, 0], xy[grey, 1], s=6, c="lightgray", label="other tracks")
    for w in shown:
        mask = np.array([lab == w for lab in labels])
        ax.scatter(xy[mask, 0], xy[mask, 1], s=14, color=colour_of[w], label=str(w)[:24])
    ax.set_xlabel(f"PC1 ({explained[0]:.0%})")
    ax.set_ylabel(f"PC2 ({explained[1] if len(explained) > 1 else 0:.0%})")
    ax.set_title(f"track embeddings, {len(shown)} largest works in colour")
    if len(shown) <= 20:
        ax.legend(fontsize=6, markerscale=0.8, loc="best", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
