"""Learning curves: the per-epoch training history as JSON and as a plot.

``EXP_DIR/history.json`` is rewritten (atomically) after every epoch: a list of
``{"epoch", "step", "wall_minutes", "map": {dev set: MAP}, <mean losses>, ...}``;
``plot_learning_curve`` draws each dev set's MAP against training wall time, with
horizontal lines for reference values (chance, non-learned baselines) when given.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

HISTORY_NAME = "history.json"


def write_history(exp_dir: str | os.PathLike, history: Sequence[Mapping]) -> Path:
    """Write ``history`` to ``exp_dir/history.json`` through a temporary file."""
    path = Path(exp_dir) / HISTORY_NAME
    fd, tmp = tempfile.mkstemp(prefix=".history.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(list(history), f, indent=1, default=float)
    os.replace(tmp, path)
    return path


def read_history(exp_dir: str | os.PathLike) -> list[dict]:
    path = Path(exp_dir) / HISTORY_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path}: no training history (train with this toolkit's tools.train first)")
    return json.loads(path.read_text(encoding="utf-8"))


def plot_learning_curve(history: Sequence[Mapping], path: str | os.PathLike,
                        references: Mapping[str, float] | None = None, title: str = "") -> Path:
    """PNG of every dev set's MAP against wall-clock training minutes; ``references``
    (name -> MAP) are drawn as dashed horizontal lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({n for h in history for n in h.get("map", {})})
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name in names:
        points = [(h["wall_minutes"], h["map"][name]) for h in history if name in h.get("map", {})]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=f"model, {name}")
    for k, (name, value) in enumerate(sorted((references or {}).items(), key=lambda kv: -kv[1])):
        ax.axhline(value, linestyle="--", linewidth=1, color=f"C{len(names) + k}", label=name)
    ax.set_xlabel("training wall time (minutes)")
    ax.set_ylabel("MAP")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left")
    if not history:
        title = (title + "\n" if title else "") + "(no finished epoch)"
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
