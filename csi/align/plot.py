"""The chunk-distance matrix of two versions of a work with the found time map drawn on it."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from csi.align.pairs import representatives, tempo_of
from csi.io.alignment import AlignmentError


def check_plot_works(records: Sequence[Mapping[str, Any]], works: Sequence[str]) -> None:
    """Refuse, before any work is done, a requested plot of a work with fewer than two recordings."""
    groups = representatives(records)
    for work in works:
        if len(groups.get(work, {})) < 2:
            raise AlignmentError(f"--plot_work {work!r}: {len(groups.get(work, {}))} recording(s) of that work in "
                                 f"the manifest; a plot needs two")


def plot_work(loaded, records: Sequence[Mapping[str, Any]], work: str, settings, path: str | Path,
              truth: Callable[[Mapping, Mapping, float], list[float]] | None = None) -> dict[str, Any]:
    """Align the first two recordings of ``work`` and draw their chunk distances (cosine,
    dark = close), each chunk's best match (the similarity the alignment uses) and the found
    ``t_b = scale * t_a + shift``; with ``truth(rec_a, rec_b, t_a) -> [t_b, ...]`` (e.g. the
    demo corpus's synthcovers.truth.time_map) also the true positions."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from csi.align.aligner import align_pair, chunk_similarity
    from csi.embed import embed_records

    srcs = representatives(records).get(work, {})
    if len(srcs) < 2:
        raise AlignmentError(f"--plot_work {work!r}: {len(srcs)} recording(s) of that work in the manifest; "
                             f"a plot needs two")
    (name_a, i), (name_b, j) = list(srcs.items())[:2]
    policy = loaded.card.chunking(settings.chunk_s, settings.hop_s)
    fps = loaded.card.frontend.frames_per_s
    result = embed_records(loaded.model, [records[i], records[j]], policy, loaded.reader(), settings.batch_size,
                           loaded.device)
    if result.failed:
        raise AlignmentError(f"--plot_work {work!r}: cannot embed {result.failed}")
    bounds = result.bounds(2)
    emb = [result.emb[bounds[k]:bounds[k + 1]] for k in (0, 1)]
    t = [result.start[bounds[k]:bounds[k + 1]] / fps * tempo_of(records[r]) for k, r in enumerate((i, j))]
    found = align_pair(name_a, (emb[0], t[0]), name_b, (emb[1], t[1]), settings.tol_s, settings.scales(), fps,
                       settings.match)
    dist = 1.0 - emb[0] @ emb[1].T
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    image = ax.pcolormesh(t[1], t[0], dist, shading="nearest", cmap="magma")
    best = chunk_similarity(emb[0], emb[1], settings.match).argmax(axis=1)
    ax.plot(t[1][best], t[0], "c.", markersize=5, label=f"best match of each chunk of a ({settings.match})")
    if truth is not None:
        try:
            true_pts = [(t_b, t_a) for t_a in t[0] for t_b in truth(records[i], records[j], float(t_a))]
        except ValueError:      # no known correspondence for this pair
            true_pts = []
        if true_pts:
            ax.plot(*zip(*true_pts), "g+", markersize=6, label="true position")
    line_a = np.array([t[0].min(), t[0].max()])
    ax.plot(found["scale"] * line_a + found["shift_s"], line_a, "w--", linewidth=1.5,
            label=f"t_b = {found['scale']:g}·t_a {found['shift_s']:+.1f} s (confidence {found['confidence']:.2f})")
    ax.set_xlim(t[1].min() - settings.hop_s / 2, t[1].max() + settings.hop_s / 2)
    ax.set_ylim(t[0].max() + settings.hop_s / 2, t[0].min() - settings.hop_s / 2)
    ax.set_xlabel(f"{name_b}: chunk start (s)")
    ax.set_ylabel(f"{name_a}: chunk start (s)")
    ax.set_title(f"{work}: chunk distances ({settings.chunk_s:g}-s chunks)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.colorbar(image, ax=ax, label="cosine distance")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return found
