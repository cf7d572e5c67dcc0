"""Stage 6: evaluate a model directory on a query/reference set (the library behind
``tools.eval_testset``, whose docstring describes the protocol and outputs).

Chunk embeddings through the one embedding path (csi.eval.embed) with a cache keyed by
checkpoint and chunking, blockwise chunk distances (csi.eval.distance), retrieval metrics
(csi.eval.metrics) beside chance and the non-learned baselines (csi.eval.baselines),
and the plots.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

log = logging.getLogger("csi.eval")

CACHE_VERSION = 1
HIST_BINS = np.linspace(0.0, 2.0, 4001)   # fine bins; the figure regroups them over the occupied range


class EvalError(RuntimeError):
    """A usage or input error; the message says what to fix."""




# ---- inputs ------------------------------------------------------------------------------
def chunk_settings(model_dir: Path, chunk_s: float | None, hop_s: float | None) -> dict[str, Any]:
    """Chunk length/hop in seconds and in feature frames (25 per second), and mean_size,
    from the model's config/hparams.yaml unless given."""
    from csi.config import load_yaml
    from csi.eval.embed import FRAMES_PER_SECOND
    from csi.train.config import TrainConfig

    hp = load_yaml(model_dir / "config" / "hparams.yaml")
    defaults = TrainConfig(train_path="-")
    mean_size = int(hp.get("mean_size", defaults.mean_size))
    chunk_frame = hp.get("chunk_frame", defaults.chunk_frame)
    first = int(chunk_frame[0] if isinstance(chunk_frame, (list, tuple)) else chunk_frame)
    if chunk_s is None:
        chunk_s = first * mean_size / FRAMES_PER_SECOND
    hop_s = chunk_s if hop_s is None else hop_s
    chunk_frames, hop_frames = round(chunk_s * FRAMES_PER_SECOND), round(hop_s * FRAMES_PER_SECOND)
    if chunk_frames < mean_size or hop_frames < 1:
        raise EvalError(f"chunk_s {chunk_s} / hop_s {hop_s}: need a chunk of at least {mean_size} frames "
                        f"and a hop of at least one frame (1/{FRAMES_PER_SECOND} s)")
    return {"chunk_s": chunk_s, "hop_s": hop_s, "chunk_frames": chunk_frames, "hop_frames": hop_frames,
            "mean_size": mean_size}


def read_records(path: Path, role: str, need_song: bool = True) -> list[dict]:
    from csi.io.manifest import read_manifest

    if not path.is_file():
        raise EvalError(f"{role} manifest {path} not found")
    return read_manifest(path, required=("utt", "song") if need_song else ("utt",))


def read_query_in_ref(path: Path, queries: Sequence[dict], refs: Sequence[dict]) -> list[tuple[str, str]]:
    """(query utt, ref utt) pairs from JSON lines / two-column text / the reference's
    ``{"query_in_ref": [[i, j], ...]}`` (0-based manifest line indices). Unknown ids are an error."""
    pairs: list[tuple[str, str]] = []
    bad: list[str] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            where = f"{path}:{lineno}"
            if text[0] in "{[":
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as e:
                    raise EvalError(f"{where}: malformed JSON ({e.msg})") from None
                if isinstance(obj, dict) and "query_in_ref" in obj:
                    for i, j in obj["query_in_ref"]:
                        if not (0 <= int(i) < len(queries) and 0 <= int(j) < len(refs)):
                            bad.append(f"index pair ({i}, {j})")
                            continue
                        pairs.append((queries[int(i)]["utt"], refs[int(j)]["utt"]))
                    continue
                if isinstance(obj, dict) and "query" in obj and "ref" in obj:
                    pairs.append((str(obj["query"]), str(obj["ref"])))
                elif isinstance(obj, list) and len(obj) == 2:
                    pairs.append((str(obj[0]), str(obj[1])))
                else:
                    raise EvalError(f"{where}: expected {{\"query\": utt, \"ref\": utt}}, [utt, utt] or "
                                    f"{{\"query_in_ref\": [[i, j], ...]}}")
            else:
                cols = text.split()
                if len(cols) != 2:
                    raise EvalError(f"{where}: expected two columns (query utt, ref utt), got {len(cols)}")
                pairs.append((cols[0], cols[1]))
    q_utts, r_utts = {q["utt"] for q in queries}, {r["utt"] for r in refs}
    bad += [f"query {q!r}" for q, _ in pairs if q not in q_utts] + [f"ref {r!r}" for _, r in pairs if r not in r_utts]
    if bad:
        shown = ", ".join(dict.fromkeys(bad))
        raise EvalError(f"{path}: {len(bad)} unknown id(s) (not in the query/ref manifests): "
                        f"{shown[:2000]}")
    return pairs


def source_of(rec: dict) -> dict[str, Any]:
    """What the embeddings of a record are computed from: the feature file, else the audio
    file, with its size and modification time (a changed file is embedded again)."""
    kind = "feat" if rec.get("feat") else "wav" if rec.get("wav") else None
    if kind is None:
        return {"kind": None}
    path = str(rec[kind])
    try:
        st = os.stat(path)
        return {"kind": kind, "path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    except OSError:
        return {"kind": kind, "path": path, "size": None, "mtime_ns": None}


# ---- embedding cache ---------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_key(checkpoint_sha256: str, settings: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ingredients = {"version": CACHE_VERSION, "checkpoint_sha256": checkpoint_sha256,
                   "chunk_frames": settings["chunk_frames"], "hop_frames": settings["hop_frames"],
                   "mean_size": settings["mean_size"], "features": "coverhunter_cqt_25fps"}
    digest = hashlib.sha256(json.dumps(ingredients, sort_keys=True).encode()).hexdigest()[:16]
    return digest, ingredients


class EmbeddingCache:
    """``chunks.npy`` (chunks, dim) float32 + ``index.jsonl`` (utt, source, first, last) in a
    directory named by the cache key."""

    def __init__(self, directory: Path, ingredients: dict[str, Any]):
        self.dir = directory
        self.ingredients = ingredients
        self.emb = np.zeros((0, 0), dtype=np.float32)
        self.index: dict[str, dict[str, Any]] = {}
        key_file = directory / "key.json"
        if key_file.is_file() and (directory / "chunks.npy").is_file() and (directory / "index.jsonl").is_file():
            if json.loads(key_file.read_text(encoding="utf-8")) != ingredients:
                raise EvalError(f"{directory}: embedding cache made with other settings (key.json differs)")
            self.emb = np.load(directory / "chunks.npy")
            with open(directory / "index.jsonl", encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        entry = json.loads(line)
                        self.index[entry["utt"]] = entry

    def lookup(self, utt: str, source: dict[str, Any]) -> np.ndarray | None:
        entry = self.index.get(utt)
        if entry is None or entry["source"] != source or source.get("size") is None:
            return None
        return self.emb[entry["first"]:entry["last"] + 1]

    def others(self, utts: set[str]) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
        """Cached tracks not in ``utts`` (kept when the cache is rewritten)."""
        return {u: (e["source"], self.emb[e["first"]:e["last"] + 1]) for u, e in self.index.items() if u not in utts}

    def save(self, tracks: dict[str, tuple[dict[str, Any], np.ndarray]]) -> None:
        """Rewrite the cache with ``tracks`` (utt -> (source, chunk embeddings)), atomically."""
        from csi.io.manifest import atomic_write_text

        self.dir.mkdir(parents=True, exist_ok=True)
        mats, lines, at = [], [], 0
        for utt, (source, emb) in tracks.items():
            mats.append(emb)
            lines.append(json.dumps({"utt": utt, "source": source, "first": at, "last": at + len(emb) - 1}))
            at += len(emb)
        dim = mats[0].shape[1] if mats else 0
        matrix = np.concatenate(mats).astype(np.float32, copy=False) if mats else np.zeros((0, dim), np.float32)
        tmp = self.dir / ".chunks.npy.tmp"
        with open(tmp, "wb") as f:
            np.save(f, matrix)
        os.replace(tmp, self.dir / "chunks.npy")
        atomic_write_text(self.dir / "index.jsonl", "".join(line + "\n" for line in lines))
        atomic_write_text(self.dir / "key.json", json.dumps(self.ingredients, indent=1) + "\n")


# ---- the evaluation ----------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    import csi
    from csi.env import write_run_info
    from csi.eval.distance import ChunkDistances, resolve_device, track_mean_embeddings
    from csi.eval.embed import embed_tracks
    from csi.eval.metrics import retrieval_metrics, same_source_pairs

    t_start = time.time()
    model_dir = args.model_dir
    if args.batch_size < 1 or args.bootstrap < 0 or args.num_workers < 0:
        raise EvalError("--batch_size must be >= 1, --bootstrap and --num_workers >= 0")
    if args.baselines:
        from csi.eval.baselines import BaselineError, resolve_systems
        try:
            resolve_systems(args.baselines)
        except BaselineError as e:
            raise EvalError(f"--baselines: {e}") from None
    settings = chunk_settings(model_dir, args.chunk_s, args.hop_s)
    from csi.train.checkpoint import checkpoint_path
    try:
        ckpt_file = checkpoint_path(model_dir, args.checkpoint)
    except FileNotFoundError as e:
        raise EvalError(str(e)) from None
    ckpt_name = ckpt_file.name
    device = resolve_device(args.device)
    if device.type == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise EvalError(f"--device {args.device}: CUDA is not available on this machine")
    out_dir = args.out_dir or model_dir / f"eval_{args.query_path.stem}"

    queries = read_records(args.query_path, "query")
    all_vs_all = args.ref_path.exists() and args.query_path.exists() and os.path.samefile(args.query_path,
                                                                                          args.ref_path)
    refs = queries if all_vs_all else read_records(args.ref_path, "reference")
    works = {r["song"] for r in refs} | ({r["song"] for r in queries} if all_vs_all else set())
    if len(works) < 2:  # every ranking would be perfect: a number that means nothing
        raise EvalError(f"{args.ref_path}: {len(works)} work; retrieval needs at least 2")
    distractors = read_records(args.distractors, "distractor", need_song=False) if args.distractors else []
    known = {r["utt"] for r in queries} | {r["utt"] for r in refs}
    clash = [d["utt"] for d in distractors if d["utt"] in known]
    if clash:
        raise EvalError(f"{args.distractors}: {len(clash)} distractor(s) are also queries or references: "
                        f"{', '.join(clash[:20])}")
    excluded_utts = read_query_in_ref(args.query_in_ref_path, queries, refs) if args.query_in_ref_path else []
    all_refs = list(refs) + list(distractors)

    # tracks to embed (one per utt, whatever its roles)
    tracks: dict[str, dict] = {}
    for rec in [*queries, *all_refs]:
        first = tracks.setdefault(rec["utt"], rec)
        if first is not rec and source_of(first) != source_of(rec):
            raise EvalError(f"utt {rec['utt']!r} appears with different feat/wav in the query and reference manifests")
    ckpt_sha = file_sha256(ckpt_file)
    key, ingredients = cache_key(ckpt_sha, settings)
    cache = EmbeddingCache(out_dir / "embeddings" / key, ingredients)
    embedded: dict[str, tuple[dict[str, Any], np.ndarray]] = {}
    failed: dict[str, str] = {}
    todo = []
    for utt, rec in tracks.items():
        source = source_of(rec)
        cached = cache.lookup(utt, source)
        if cached is not None:
            embedded[utt] = (source, cached)
        else:
            todo.append(rec)
    n_cached = len(embedded)
    t0 = time.time()
    if todo:
        log.info("embedding %d tracks (%d from the cache %s)", len(todo), n_cached, cache.dir)
        model = csi.load_model(model_dir, device=device, checkpoint=ckpt_name)
        result = embed_tracks(model, todo, settings["chunk_frames"], settings["mean_size"], args.batch_size,
                              device, settings["hop_frames"], num_workers=args.num_workers)
        emb = result.emb.numpy()
        owner = result.owner.numpy()
        bounds = np.searchsorted(owner, np.arange(len(todo) + 1))
        for i, rec in enumerate(todo):
            if i in result.failed:
                failed[rec["utt"]] = result.failed[i]
            else:
                embedded[rec["utt"]] = (source_of(rec), emb[bounds[i]:bounds[i + 1]])
        cache.save({**cache.others(set(tracks)), **{utt: embedded[utt] for utt in tracks if utt in embedded}})
    else:
        log.info("all %d tracks embedded already (cache %s)", n_cached, cache.dir)
    embed_s = time.time() - t0

    # what is evaluated: tracks that have embeddings
    q_keep = [r for r in queries if r["utt"] in embedded]
    r_keep = [r for r in all_refs if r["utt"] in embedded]
    n_distractors = sum(1 for r in distractors if r["utt"] in embedded)

    def stack(records):
        mats = [embedded[r["utt"]][1] for r in records]
        owner = np.repeat(np.arange(len(records)), [len(m) for m in mats])
        dim = mats[0].shape[1] if mats else 0
        return (np.concatenate(mats) if mats else np.zeros((0, dim), np.float32)), owner

    if not q_keep or not r_keep:
        raise EvalError(f"nothing to evaluate: {len(q_keep)} usable queries, {len(r_keep)} usable references "
                        f"({len(failed)} tracks failed; see the log)")
    t0 = time.time()
    q_emb, q_owner = stack(q_keep)
    mode = "mean" if args.mean_embedding else "min"
    if all_vs_all and not distractors:
        distances = ChunkDistances(q_emb, q_owner, len(q_keep), mode=mode, device=device)
    else:
        r_emb, r_owner = stack(r_keep)
        distances = ChunkDistances(q_emb, q_owner, len(q_keep), r_emb, r_owner, len(r_keep), mode=mode, device=device)
    q_pos = {r["utt"]: i for i, r in enumerate(q_keep)}
    r_pos = {r["utt"]: j for j, r in enumerate(r_keep)}
    same_q, same_r = same_source_pairs([r["utt"] for r in q_keep], [r["utt"] for r in r_keep],
                                       keep_tempo_copies=args.keep_tempo_copies)
    pairs = set(zip(same_q.tolist(), same_r.tolist()))                   # the same source recording
    pairs |= {(q_pos[q], r_pos[r]) for q, r in excluded_utts if q in q_pos and r in r_pos}
    exclude = tuple(np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2).T)
    q_labels = [r["song"] for r in q_keep]
    r_labels = [r["song"] for r in refs if r["utt"] in embedded] + [None] * n_distractors
    overlap = {d.get("song") for d in distractors} & set(q_labels)
    if overlap:
        log.warning("%d distractor work(s) are also query works; distractors are never relevant: %s",
                    len(overlap), ", ".join(map(str, sorted(overlap, key=str)[:10])))

    top1 = np.zeros(len(q_keep), dtype=np.int64)
    top1_dist = np.full(len(q_keep), np.inf)
    hist_same = np.zeros(len(HIST_BINS) - 1, dtype=np.int64)
    hist_diff = np.zeros(len(HIST_BINS) - 1, dtype=np.int64)

    def on_block(start: int, stop: int, dist: np.ndarray, relevant: np.ndarray) -> None:
        ranked = np.where(np.isnan(dist), np.inf, dist)
        best = ranked.argmin(axis=1)
        top1[start:stop] = best
        top1_dist[start:stop] = ranked[np.arange(stop - start), best]
        if args.plot:
            valid = np.isfinite(dist)
            hist_same[:] += np.histogram(np.clip(dist[valid & relevant], 0, 2), HIST_BINS)[0]
            hist_diff[:] += np.histogram(np.clip(dist[valid & ~relevant], 0, 2), HIST_BINS)[0]

    result = retrieval_metrics(distances, q_labels, r_labels, exclude, query_ids=[r["utt"] for r in q_keep],
                               bootstrap=args.bootstrap, seed=args.seed, on_block=on_block)
    metrics_s = time.time() - t0
    baselines, skipped = {}, {}
    if args.baselines:          # the same records, labels and excluded pairs as the model
        from csi.eval.baselines import baselines_beside_model
        baselines, skipped = baselines_beside_model(args.baselines, q_keep, r_keep, q_labels, r_labels, exclude)

    # outputs
    out_dir.mkdir(parents=True, exist_ok=True)
    role_sets = [(name, {r["utt"] for r in recs}) for name, recs in
                 (("query", queries), ("ref", refs), ("distractor", distractors))]
    failed_rows = [{"utt": utt, "roles": ",".join(name for name, utts in role_sets if utt in utts), "reason": reason}
                   for utt, reason in failed.items()]
    summary = dict(result.metrics)
    summary.update({
        "protocol": "all-vs-all" if all_vs_all else "query-vs-reference", "distance": mode,
        "references_distractors": n_distractors, "excluded_pairs": len(pairs),
        "failed": len(failed), "failed_queries": sum(1 for r in queries if r["utt"] in failed),
        "failed_references": sum(1 for r in all_refs if r["utt"] in failed),
        **settings, "checkpoint": str(ckpt_file), "checkpoint_sha256": ckpt_sha, "embedding_key": key,
        "embedded_tracks": len(todo) - len(failed), "cached_tracks": n_cached,
        "query_path": str(args.query_path), "ref_path": str(args.ref_path),
        "time_embed_s": round(embed_s, 3), "time_metrics_s": round(metrics_s, 3),
        "time_total_s": round(time.time() - t_start, 3),
    })
    from csi.io.manifest import atomic_write_text
    if args.baselines:
        from csi.eval.baselines import metrics_entries, summary_table
        summary.update(metrics_entries(baselines, skipped))
        table = summary_table(f"model ({ckpt_name})", result.metrics, baselines, skipped)
        atomic_write_text(out_dir / "metrics_table.txt", table + "\n")
    atomic_write_text(out_dir / "metrics.json", json.dumps(summary, indent=1, default=_json_default) + "\n")
    r_utts = [r["utt"] for r in r_keep]
    result.write_tsv(out_dir / "per_query.tsv", extra={
        "song": q_labels,
        "top1": [r_utts[j] if np.isfinite(d) else "" for j, d in zip(top1, top1_dist)],
        "top1_distance": [f"{d:.6f}" if np.isfinite(d) else "" for d in top1_dist],
        "top1_relevant": [int(bool(np.isfinite(d)) and r_labels[j] is not None and r_labels[j] == q)
                          for j, d, q in zip(top1, top1_dist, q_labels)]})
    atomic_write_text(out_dir / "failed.tsv", "utt\troles\treason\n" + "".join(
        f"{row['utt']}\t{row['roles']}\t{row['reason']}\n" for row in failed_rows))
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_run_info(out_dir / "eval_testset.yaml", dict(config, out_dir=str(out_dir), device=str(device)),
                   resolved=dict(settings, checkpoint=str(ckpt_file), embedding_key=key, protocol=summary["protocol"]))
    if args.plot:
        plotted = r_keep if all_vs_all else q_keep + [r for r in r_keep if r["utt"] not in q_pos]
        distractor_utts = {d["utt"] for d in distractors}
        labels = [None if r["utt"] in distractor_utts else r["song"] for r in plotted]
        means = track_mean_embeddings(*stack(plotted), len(plotted), device="cpu")
        plot_distance_hist(out_dir / "distance_hist.png", hist_same, hist_diff)
        plot_pca(out_dir / "embedding_pca.png", means.numpy(), labels)
    line = result.summary_line()
    print(f"eval_testset {args.query_path.name} vs {args.ref_path.name}: {line}"
          + (f"  failed {len(failed)}" if failed else ""))
    if args.baselines:
        print(table)
    print(json.dumps({k: summary[k] for k in result.metrics}, default=_json_default))
    log.info("wrote %s", out_dir)
    return summary


def _json_default(x):
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


# ---- figures -----------------------------------------------------------------------------
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
