"""Running reference systems on query/reference manifests: features read once per track,
distances by blocks of queries, metrics from ``csi.scoring.metrics.retrieval_metrics``, and a
table that puts them beside a model."""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from csi.baselines.chance import chance_metrics
from csi.baselines.chroma import BaselineError, CqtLayout, check_chroma_input
from csi.baselines.systems import get_baseline, resolve_systems
from csi.scoring.metrics import retrieval_metrics, same_source_pairs
from csi.features.store import load_feature

TABLE_KEYS = ("MAP", "MR1", "P@10", "HR@1", "HR@10")
SUMMARY_KEYS = (*TABLE_KEYS, "queries", "references", "time_s", "pairs", "pairs_per_s")
NO_FEATURES = "baselines need stored features: skipped"


def check_split(records: Sequence[dict], path: str | os.PathLike) -> None:
    """Refuse a split that cannot be evaluated: no record, or a single work."""
    if not records:
        raise BaselineError(f"{path}: no records; retrieval needs at least 2 works")
    works = {r.get("song") for r in records}
    if len(works) < 2:
        raise BaselineError(f"{path}: {len(works)} work; retrieval needs at least 2")


def has_stored_features(records: Sequence[dict]) -> bool:
    """True when every record has a stored feature (``feat``), which the baselines read."""
    return all(r.get("feat") for r in records)


def track_vectors(names: Sequence[str], records: Sequence[dict], progress: bool = False,
                  skipped: dict[str, str] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """{system: {utt: vector}} for the systems with a per-track vector; each feature file is
    read once. A missing, unreadable or unsuitable feature raises BaselineError naming the
    file, or, when a ``skipped`` dict is given, drops the system(s) it concerns and records
    the reason there (``skipped[name] = message``)."""
    systems = [get_baseline(n) for n in names if get_baseline(n).vector is not None]
    out: dict[str, dict[str, np.ndarray]] = {b.name: {} for b in systems}
    if not systems:
        return out
    tracks = {r["utt"]: r for r in records}
    from csi.utils import progress_bar
    for utt, rec in progress_bar(tracks.items(), desc="baselines", unit="track", disable=not progress, file=sys.stderr,
                         dynamic_ncols=True):
        if not systems:
            break
        try:
            feat = _read_feature(utt, rec)
        except BaselineError as e:
            if skipped is None:
                raise
            skipped.update({b.name: str(e) for b in systems})
            systems = []
            continue
        layout: CqtLayout | None = None
        for b in list(systems):
            try:
                if b.needs_chroma:
                    layout = layout or check_chroma_input(feat, rec["feat"], b.name)
                out[b.name][utt] = b.vector(feat, layout)
            except BaselineError as e:
                if skipped is None:
                    raise
                skipped[b.name] = str(e)
                systems.remove(b)
    return {name: vec for name, vec in out.items() if skipped is None or name not in skipped}


def _read_feature(utt: str, rec: dict) -> np.ndarray:
    path = rec.get("feat")
    if not path:
        raise BaselineError(f"utt {utt!r} has no stored feature (feat); {NO_FEATURES}")
    try:
        return np.asarray(load_feature(path), dtype=np.float32)
    except (OSError, ValueError) as e:
        raise BaselineError(f"{path}: unreadable feature ({e})") from None


class VectorDistances:
    """Rows of a (queries, refs) distance matrix from per-track vectors, computed on demand
    (a ``csi.scoring.metrics.DistanceRows``)."""

    def __init__(self, compare, q: np.ndarray, r: np.ndarray):
        self.compare, self.q, self.r = compare, q, r
        self.n_queries, self.n_refs = len(q), len(r)

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self.compare(self.q[start:stop], self.r)


def baseline_distances(name: str, queries: Sequence[dict], refs: Sequence[dict]) -> np.ndarray:
    """The (queries, refs) distance matrix of system ``name`` (``chance``: one seeded random
    ranking)."""
    b = get_baseline(name)
    if b.vector is None:
        from csi.baselines.chance import random_distances
        return random_distances(len(queries), len(refs))
    vec = track_vectors([name], [*queries, *refs])[name]
    distances = _distances(b, vec, queries, refs)
    return distances if isinstance(distances, np.ndarray) else distances.rows(0, len(queries))


def _distances(b, vec: Mapping[str, np.ndarray], queries, refs,
               stats: dict | None = None) -> VectorDistances | np.ndarray:
    """Distances of system ``b``: rows on demand from stacked vectors, or the whole matrix of
    a pairwise system (tracks named by utt, so a shared track is aligned once; ``stats`` gets
    its pairs aligned and pairs per second)."""
    q_utts, r_utts = [r["utt"] for r in queries], [r["utt"] for r in refs]
    if b.pairwise:
        return b.compare([vec[u] for u in q_utts], [vec[u] for u in r_utts], q_utts, r_utts,
                         **({"stats": stats} if stats is not None else {}))
    return VectorDistances(b.compare, np.stack([vec[u] for u in q_utts]), np.stack([vec[u] for u in r_utts]))


def evaluate_baselines(queries: Sequence[dict], refs: Sequence[dict], systems: str | Sequence[str] = "all", *,
                       query_labels: Sequence[Hashable] | None = None, ref_labels: Sequence[Hashable] | None = None,
                       exclude=None, progress: bool = False,
                       skipped: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """{system: metrics} for the named systems on these records. Labels default to the
    records' ``song``; ``exclude`` (as for ``retrieval_metrics``) defaults to the pairs of the
    same source recording (``csi.scoring.metrics.same_source_pairs``: the query itself and its
    tempo copies). Each entry has the keys of ``retrieval_metrics``
    plus ``title`` (and ``time_s``). A system that cannot use the features raises
    BaselineError, or with a ``skipped`` dict is left out with its reason recorded there."""
    names = resolve_systems(systems)
    q_labels = [r.get("song") for r in queries] if query_labels is None else list(query_labels)
    r_labels = [r.get("song") for r in refs] if ref_labels is None else list(ref_labels)
    if exclude is None:
        exclude = same_source_pairs([r["utt"] for r in queries], [r["utt"] for r in refs])
    t0 = time.time()
    vectors = track_vectors(names, [*queries, *refs], progress=progress, skipped=skipped)
    load_s = (time.time() - t0) / max(len(vectors), 1)
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        b = get_baseline(name)
        t0 = time.time()
        if skipped is not None and name in skipped:
            continue
        if b.vector is None:
            metrics = chance_metrics(q_labels, r_labels, exclude)
        else:
            pair_stats: dict[str, Any] = {}
            try:
                rows = _distances(b, vectors[name], queries, refs, pair_stats if b.pairwise else None)
            except BaselineError as e:      # e.g. more qmax pairs than its limit
                if skipped is None:
                    raise
                skipped[name] = str(e)
                continue
            metrics = dict(retrieval_metrics(rows, q_labels, r_labels, exclude,
                                             query_ids=[r["utt"] for r in queries]).metrics)
            metrics["time_s"] = round(time.time() - t0 + load_s, 3)
            if pair_stats:
                metrics.update(pairs=pair_stats["pairs"], pairs_per_s=pair_stats["pairs_per_s"])
        results[name] = {"title": b.title, **metrics}
    return results


def baselines_beside_model(systems: str | Sequence[str], queries: Sequence[dict], refs: Sequence[dict],
                           query_labels: Sequence[Hashable], ref_labels: Sequence[Hashable], exclude,
                           progress: bool = False) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The reference systems on exactly the records, labels and excluded pairs a model was
    evaluated on (``tools.eval_testset --baselines``): (results, skipped). Never raises for
    the features: records without stored features skip every system except ``chance``
    (reason :data:`NO_FEATURES`), and a system that cannot use a feature is skipped with the
    reason. Unknown system names still raise BaselineError."""
    names = resolve_systems(systems)
    skipped: dict[str, str] = {}
    if not has_stored_features([*queries, *refs]):
        skipped = {n: NO_FEATURES for n in names if get_baseline(n).vector is not None}
        names = [n for n in names if n not in skipped]
    results = evaluate_baselines(queries, refs, names, query_labels=query_labels, ref_labels=ref_labels,
                                 exclude=exclude, progress=progress, skipped=skipped)
    return results, skipped


def metrics_entries(results: Mapping[str, Mapping[str, Any]], skipped: Mapping[str, str] | None = None
                    ) -> dict[str, Any]:
    """``{"chance": {...}, "baselines": {name: {...}}}`` for a metrics.json, each with the
    summary keys (MAP, MR1, P@10, HR@1, HR@10, queries, references) and ``title``; plus
    ``baselines_skipped: {name: reason}`` when some were skipped."""
    def short(m):
        return {"title": m["title"], **{k: m[k] for k in SUMMARY_KEYS if k in m}}
    out: dict[str, Any] = {}
    if "chance" in results:
        out["chance"] = short(results["chance"])
    out["baselines"] = {name: short(m) for name, m in results.items() if name != "chance"}
    if skipped:
        out["baselines_skipped"] = dict(skipped)
    return out


def format_table(rows: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """An aligned text table ``system | MAP | MR1 | P@10 | HR@1 | HR@10`` of (label, metrics)
    rows, in the order given; a missing or NaN value prints as ``-``."""
    def cell(m, k):
        v = m.get(k)
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "-"
        return f"{v:.2f}" if k == "MR1" else f"{v:.4f}"
    width = max([len("system"), *(len(label) for label, _ in rows)])
    lines = [f"{'system':<{width}}  " + "  ".join(f"{k:>7}" for k in TABLE_KEYS)]
    lines += [f"{label:<{width}}  " + "  ".join(f"{cell(m, k):>7}" for k in TABLE_KEYS) for label, m in rows]
    return "\n".join(lines)


def table_rows(results: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    """(``name: title``, metrics) rows for :func:`format_table`."""
    return [(f"{name}: {m['title']}", m) for name, m in results.items()]


def summary_table(model_label: str, model_metrics: Mapping[str, Any], results: Mapping[str, Mapping[str, Any]],
                  skipped: Mapping[str, str] | None = None,
                  more_models: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> str:
    """The model's row first (then ``more_models``' rows, e.g. its first stage alone), then
    chance and the baselines (:func:`format_table`), then one line per reason a system was
    skipped (systems sharing a reason on one line)."""
    text = format_table([(model_label, model_metrics), *more_models, *table_rows(results)])
    by_reason: dict[str, list[str]] = {}
    for name, why in (skipped or {}).items():
        by_reason.setdefault(why, []).append(name)
    return text + "".join(f"\n{why} ({', '.join(names)})" for why, names in by_reason.items())


def comparison_table(models: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """Several models' metrics.json side by side (one row each), then chance and the
    baselines of the first that has them (the same test set: a mismatch is a ValueError)."""
    sets = {(m.get("queries"), m.get("references"), m.get("query_path"), m.get("protocol")) for _, m in models}
    if len(sets) > 1:
        raise ValueError(f"the metrics are not of one test set (queries, references, query path, protocol): "
                         f"{sorted(map(str, sets))}")
    rows = [(label, m) for label, m in models]
    detail = models[0][1].get("protocol_detail") or models[0][1].get("protocol") if models else None
    for _, m in models:
        if "chance" in m or m.get("baselines"):
            extra = ({"chance": m["chance"]} if "chance" in m else {}) | dict(m.get("baselines", {}))
            rows += table_rows(extra)
            break
    table = format_table(rows)
    return f"protocol: {detail}\n{table}" if detail else table
