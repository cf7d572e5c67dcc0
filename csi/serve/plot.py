"""The alignment plot of a query and its best match, as the identify page shows it.

The cosine similarity of every (query chunk, recording chunk) pair — the recording's chunk
vectors as the index holds them, cut where the index cut them — with the pair the answer's
offsets come from (csi.identify.Identifier.best_pair) ringed, each query chunk's nearest
recording chunk dotted and, with two chunks or more on each side, the time map
``t_rec = scale·t_query + shift`` that csi.align finds for the pair (csi.align.aligner:
hub-corrected matches both ways, then votes), as csi/align/plot.py draws it for two versions.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from csi.chunking import chunk_starts


@dataclass(frozen=True)
class PlotInput:
    """What a plot is drawn from: kept for the answers the service remembers."""
    query: str
    song: str
    utt: str
    query_emb: np.ndarray           # (chunks, dim)
    query_start_s: np.ndarray       # (chunks,)
    ref_emb: np.ndarray
    ref_start_s: np.ndarray


def plot_input(identifier, query_emb: np.ndarray, query_start: np.ndarray | None, utt: str, song: str,
               query: str) -> PlotInput:
    """The recording ``utt``'s chunk vectors and start times (as Identifier.best_pair counts
    them: from its ``dur_s``, every hop with the last aligned to its end) beside the query's."""
    fps, hop = identifier.frames_per_s, identifier.hop_frames
    position = next(i for i, r in enumerate(identifier.index.recordings) if r["utt"] == utt)
    vectors, _ = identifier.index.recording_vectors(np.array([position]))
    dur_s = identifier.index.recordings[position].get("dur_s")
    starts = np.arange(len(vectors)) * hop
    if dur_s:
        cut = chunk_starts(int(round(float(dur_s) * fps)), identifier.policy.chunk_frames, hop)
        if len(cut) == len(vectors):
            starts = np.asarray(cut)
    q_start = np.asarray(query_start) if query_start is not None else np.arange(len(query_emb)) * hop
    return PlotInput(query, song, utt, np.asarray(query_emb, np.float32), q_start / fps,
                     np.asarray(vectors, np.float32), starts / fps)


def best_pair_s(data: PlotInput) -> tuple[float, float, float]:
    """(query start, recording start, similarity) of the most similar chunk pair."""
    sim = data.query_emb @ data.ref_emb.T
    qi, ri = np.unravel_index(int(np.argmax(sim)), sim.shape)
    return float(data.query_start_s[qi]), float(data.ref_start_s[ri]), float(sim[qi, ri])


def time_map(data: PlotInput, fps: float) -> dict[str, Any] | None:
    """csi.align's time map of the pair (default AlignSettings); None under two chunks a side."""
    from csi.align.aligner import AlignSettings, align_pair

    if len(data.query_emb) < 2 or len(data.ref_emb) < 2:
        return None
    settings = AlignSettings()
    return align_pair(data.query, (data.query_emb, data.query_start_s), data.utt, (data.ref_emb, data.ref_start_s),
                      settings.tol_s, settings.scales(), fps, settings.match)


def render_png(data: PlotInput, fps: float, chunk_s: float) -> bytes:
    """The plot as PNG bytes (matplotlib's object API: no pyplot state, safe off the main thread)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sim = data.query_emb @ data.ref_emb.T
    tq, tr = data.query_start_s, data.ref_start_s
    fig = Figure(figsize=(6.4, 5.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    low, high = float(sim.min()), float(sim.max())
    image = ax.pcolormesh(tr, tq, sim, shading="nearest", cmap="viridis", vmin=low, vmax=max(high, low + 1e-3))
    ax.plot(tr[sim.argmax(axis=1)], tq, "o", markersize=4, markerfacecolor="white", markeredgecolor="black",
            label="nearest recording chunk of each query chunk")
    q_s, r_s, best = best_pair_s(data)
    ax.plot([r_s], [q_s], "o", markersize=16, markerfacecolor="none", markeredgecolor="red", markeredgewidth=2.5,
            label=f"best pair: query {q_s:.1f} s ↔ {r_s:.1f} s (cos {best:.3f})")
    found = time_map(data, fps)
    if found is not None:
        line = np.array([tq.min(), tq.max()])
        ax.plot(found["scale"] * line + found["shift_s"], line, "--", color="orange", linewidth=1.5,
                label=f"t_rec = {found['scale']:g}·t_query {found['shift_s']:+.1f} s "
                      f"(confidence {found['confidence']:.2f})")
    ax.set_xlim(*_cell_edges(tr, chunk_s))
    ax.set_ylim(*_cell_edges(tq, chunk_s)[::-1])
    ax.set_xlabel(f"{data.utt} ({data.song}): chunk start (s)")
    ax.set_ylabel(f"query {data.query}: chunk start (s)")
    ax.set_title(f"query vs best match: chunk similarity ({chunk_s:g}-s chunks)", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, frameon=False)
    fig.colorbar(image, ax=ax, label="cosine similarity")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def _cell_edges(starts: np.ndarray, chunk_s: float) -> tuple[float, float]:
    """The outer edges of ``shading="nearest"`` cells centred on sorted ``starts``."""
    if len(starts) < 2:
        return float(starts[0]) - chunk_s / 2, float(starts[0]) + chunk_s / 2
    return float(starts[0] - (starts[1] - starts[0]) / 2), float(starts[-1] + (starts[-1] - starts[-2]) / 2)
