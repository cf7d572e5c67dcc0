"""Stage 6: evaluate a model directory on a query/reference set (the library behind
``tools.eval_testset``, whose docstring describes the protocol and outputs).

Two protocols (:data:`PROTOCOLS`): ``all-vs-all`` (one manifest as both lists: every
recording queries all the others, as CoverHunter's covers80 figure, 164 recordings each
querying the other 163) and ``query-vs-reference`` (two manifests, e.g. covers80's list1
against list2). The protocol, with its counts (:func:`protocol_detail`), is written in
``metrics.json`` (``protocol``, ``protocol_detail``), in the header of the table and in the
printed line.

Chunk embeddings through the one embedding path (csi.embed: the model directory's card gives
the front end and chunking) with a cache keyed by checkpoint, card and chunking
(csi.eval.cache), blockwise chunk distances (csi.scoring.distance), retrieval metrics
(csi.scoring.metrics) beside chance and the non-learned baselines (csi.baselines), and
the plots (csi.eval.plots).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

log = logging.getLogger("csi.eval")

HIST_BINS = np.linspace(0.0, 2.0, 4001)   # fine bins; the figure regroups them over the occupied range


class EvalError(RuntimeError):
    """A usage or input error; the message says what to fix."""


PROTOCOLS = ("all-vs-all", "query-vs-reference")


def protocol_name(name: str) -> str:
    """``name`` as one of :data:`PROTOCOLS` (``all_vs_all`` spelled with underscores too)."""
    spelled = name.strip().lower().replace("_", "-")
    if spelled == "query-vs-ref":
        spelled = "query-vs-reference"
    if spelled not in PROTOCOLS:
        raise EvalError(f"--protocol: expected {' or '.join(PROTOCOLS)}, got {name!r}")
    return spelled


def protocol_detail(protocol: str, n_queries: int, n_references: int, n_distractors: int = 0) -> str:
    """The protocol in words with its counts: ``164 recordings, each queries the other 163``,
    ``80 queries against 80 references`` (``n_references`` without the distractors)."""
    more = f" and {n_distractors} distractors" if n_distractors else ""
    if protocol == "all-vs-all":
        return f"{n_queries} recordings, each queries the other {max(n_queries - 1, 0)}{more}"
    return f"{n_queries} queries against {n_references} references{more}"


@dataclass(frozen=True)
class TestsetRequest:
    """One evaluation, as ``tools.eval_testset`` asks for it (its options; the tool's help says
    what each means)."""
    model_dir: Path
    query_path: Path
    ref_path: Path
    query_in_ref_path: Path | None = None
    keep_tempo_copies: bool = False
    chunk_s: float | None = None
    hop_s: float | None = None
    distance: str | None = None
    best_pairs_k: int | None = None
    mean_embedding: bool = False
    batch_size: int = 32
    device: Any = "cpu"
    no_progress: bool = False
    num_workers: int = 0
    distractors: Path | None = None
    out_dir: Path | None = None
    checkpoint: str | None = None      # default: g_best, else the latest epoch (csi.modeldir)
    bootstrap: int = 0
    seed: int = 0
    plot: bool = False
    baselines: str = ""
    rerank: str | None = None
    rerank_top: int = 50
    protocol: str | None = None        # all-vs-all | query-vs-reference; default: by the files (the same: all-vs-all)


@dataclass
class TestsetResult:
    """What an evaluation found: ``summary`` (metrics.json), the one-line ``line``, the table
    beside the baselines (``table``, when asked) and where the outputs are."""
    summary: dict[str, Any]
    line: str
    table: str | None
    out_dir: Path
    metric_names: list[str]            # the headline metrics of ``summary``


# ---- inputs ------------------------------------------------------------------------------
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


# ---- the evaluation ----------------------------------------------------------------------
def run(args: TestsetRequest) -> TestsetResult:
    """Evaluate ``args.model_dir`` on the request's query/reference set; writes the outputs."""
    from csi.env import write_run_info
    from csi.embed import embed_records
    from csi.modeldir import open_model
    from csi.eval.cache import EmbeddingCache, cache_key, source_of
    from csi.scoring.distance import ChunkDistances, track_mean_embeddings
    from csi.eval.plots import plot_distance_hist, plot_pca
    from csi.scoring.metrics import retrieval_metrics, same_source_pairs

    t_start = time.time()
    model_dir = args.model_dir
    if args.batch_size < 1 or args.bootstrap < 0 or args.num_workers < 0 or (args.best_pairs_k or 1) < 1:
        raise EvalError("--batch_size and --best_pairs_k must be >= 1, --bootstrap and --num_workers >= 0")
    if args.rerank and (args.rerank_top or 0) < 1:
        raise EvalError("--rerank_top must be >= 1")
    if args.baselines:
        from csi.baselines import BaselineError, resolve_systems
        try:
            resolve_systems(args.baselines)
        except BaselineError as e:
            raise EvalError(f"--baselines: {e}") from None
    try:
        loaded = open_model(model_dir, args.checkpoint, args.device, load=False)
    except (FileNotFoundError, ValueError) as e:
        raise EvalError(str(e)) from None
    card, ckpt_file, device = loaded.card, loaded.checkpoint, loaded.device
    chroma_of = None
    if args.rerank:                              # refused before anything is embedded
        from csi.baselines import BaselineError
        from csi.eval.rerank import ChromaSource
        try:
            chroma_of = ChromaSource(loaded.reader(), args.rerank)
        except BaselineError as e:
            raise EvalError(str(e)) from None
    ckpt_name = ckpt_file.name
    policy = card.chunking(args.chunk_s, args.hop_s)
    matching = card.matching.with_overrides(distance="mean" if args.mean_embedding else args.distance,
                                            best_k=args.best_pairs_k)
    settings = {"chunk_s": policy.chunk_frames / card.frontend.frames_per_s,
                "hop_s": policy.hop_frames / card.frontend.frames_per_s, **policy.to_dict(),
                "frontend": card.frontend.name, "frames_per_s": card.frontend.frames_per_s}
    out_dir = args.out_dir or model_dir / f"eval_{args.query_path.stem}"

    queries = read_records(args.query_path, "query")
    all_vs_all = args.ref_path.exists() and args.query_path.exists() and os.path.samefile(args.query_path,
                                                                                          args.ref_path)
    protocol = "all-vs-all" if all_vs_all else "query-vs-reference"
    if args.protocol is not None and protocol_name(args.protocol) != protocol:
        raise EvalError(f"--protocol {args.protocol}: " + (
            f"all-vs-all ranks one manifest against itself: give the same file as QUERY_PATH and REF_PATH "
            f"(got {args.query_path} and {args.ref_path})" if not all_vs_all else
            f"QUERY_PATH and REF_PATH are the same file ({args.query_path}), which is the all-vs-all protocol; "
            f"query-vs-reference takes two manifests"))
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
    identity = loaded.identity()
    ckpt_sha = identity["checkpoint_sha256"]
    key, ingredients = cache_key(identity, policy.to_dict())
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
        loaded = open_model(model_dir, ckpt_name, device)   # the network, now that it is needed
        result = embed_records(loaded.model, todo, policy, loaded.reader(), args.batch_size, device,
                               num_workers=args.num_workers, progress=not args.no_progress)
        for i, (rec, emb) in enumerate(zip(todo, result.per_record(len(todo)))):
            if i in result.failed:
                failed[rec["utt"]] = result.failed[i]
            else:
                embedded[rec["utt"]] = (source_of(rec), emb)
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

    detail = protocol_detail(protocol, len(q_keep), len(r_keep) - n_distractors, n_distractors)
    if not q_keep or not r_keep:
        raise EvalError(f"nothing to evaluate: {len(q_keep)} usable queries, {len(r_keep)} usable references "
                        f"({len(failed)} tracks failed; see the log)")
    t0 = time.time()
    q_emb, q_owner = stack(q_keep)
    mode = matching.distance
    if all_vs_all and not distractors:
        distances = ChunkDistances(q_emb, q_owner, len(q_keep), mode=mode, device=device, best_k=matching.best_k)
    else:
        r_emb, r_owner = stack(r_keep)
        distances = ChunkDistances(q_emb, q_owner, len(q_keep), r_emb, r_owner, len(r_keep), mode=mode, device=device,
                                   best_k=matching.best_k)
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

    def on_block(start: int, stop: int, dist: np.ndarray, relevant: np.ndarray, hist: bool = True) -> None:
        ranked = np.where(np.isnan(dist), np.inf, dist)
        best = ranked.argmin(axis=1)
        top1[start:stop] = best
        top1_dist[start:stop] = ranked[np.arange(stop - start), best]
        if args.plot and hist:     # the embedding distances (a re-ranked row encodes an order only)
            valid = np.isfinite(dist)
            hist_same[:] += np.histogram(np.clip(dist[valid & relevant], 0, 2), HIST_BINS)[0]
            hist_diff[:] += np.histogram(np.clip(dist[valid & ~relevant], 0, 2), HIST_BINS)[0]

    query_ids = [r["utt"] for r in q_keep]
    result = retrieval_metrics(distances, q_labels, r_labels, exclude, query_ids=query_ids,
                               bootstrap=args.bootstrap, seed=args.seed, on_block=on_block)
    metrics_s = time.time() - t0
    first_stage, rerank_stats = None, None
    if chroma_of is not None:                    # two stages: the embedding search, then Qmax on its top K
        from csi.eval.rerank import RerankedDistances
        t0 = time.time()
        q_chroma, r_chroma = [chroma_of(r) for r in q_keep], [chroma_of(r) for r in r_keep]
        chroma_s = time.time() - t0
        reranked = RerankedDistances(distances, q_chroma, r_chroma, query_ids, [r["utt"] for r in r_keep], exclude,
                                     args.rerank_top)
        first_stage = result
        result = retrieval_metrics(reranked, q_labels, r_labels, exclude, query_ids=query_ids,
                                   bootstrap=args.bootstrap, seed=args.seed,
                                   on_block=lambda *a: on_block(*a, hist=False))
        rerank_stats = {"system": args.rerank, **reranked.stats(), "time_chroma_s": round(chroma_s, 3),
                        "first_stage_ms_per_query": round(1000 * metrics_s / max(len(q_keep), 1), 2)}
        log.info("re-ranked the top %d of each query with %s: %s", args.rerank_top, args.rerank, rerank_stats)
    baselines, skipped = {}, {}
    if args.baselines:          # the same records, labels and excluded pairs as the model
        from csi.baselines import baselines_beside_model
        baselines, skipped = baselines_beside_model(args.baselines, q_keep, r_keep, q_labels, r_labels, exclude)

    # outputs
    out_dir.mkdir(parents=True, exist_ok=True)
    role_sets = [(name, {r["utt"] for r in recs}) for name, recs in
                 (("query", queries), ("ref", refs), ("distractor", distractors))]
    failed_rows = [{"utt": utt, "roles": ",".join(name for name, utts in role_sets if utt in utts), "reason": reason}
                   for utt, reason in failed.items()]
    summary = dict(result.metrics)
    if first_stage is not None:
        summary.update({"first_stage": dict(first_stage.metrics), "rerank": rerank_stats})
    summary.update({
        "protocol": protocol, "protocol_detail": detail, "distance": mode,
        **({"best_pairs_k": matching.best_k} if mode == "best_pairs" else {}),
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
        from csi.baselines import metrics_entries, summary_table
        summary.update(metrics_entries(baselines, skipped))
        label = f"model ({ckpt_name})"
        more = [(label, first_stage.metrics)] if first_stage is not None else []
        if first_stage is not None:
            label += f" + {args.rerank} top {args.rerank_top}"
        table = with_protocol(summary_table(label, result.metrics, baselines, skipped, more), protocol, detail)
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
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(args).items()}
    write_run_info(out_dir / "eval_testset.yaml", dict(config, out_dir=str(out_dir), device=str(device)),
                   resolved=dict(settings, checkpoint=str(ckpt_file), embedding_key=key, protocol=summary["protocol"]))
    if args.plot:
        plotted = r_keep if all_vs_all else q_keep + [r for r in r_keep if r["utt"] not in q_pos]
        distractor_utts = {d["utt"] for d in distractors}
        labels = [None if r["utt"] in distractor_utts else r["song"] for r in plotted]
        means = track_mean_embeddings(*stack(plotted), len(plotted), device="cpu")
        plot_distance_hist(out_dir / "distance_hist.png", hist_same, hist_diff)
        plot_pca(out_dir / "embedding_pca.png", means.numpy(), labels)
    line = f"{protocol} ({detail}): {result.summary_line()}"
    if first_stage is not None:
        line += (f"  (re-ranked: top {args.rerank_top} by {args.rerank}; the embeddings alone "
                 f"{first_stage.summary_line()})")
    if failed:
        line += f"  failed {len(failed)}"
    log.info("wrote %s", out_dir)
    return TestsetResult(summary, line, table if args.baselines else None, out_dir, list(result.metrics))


def with_protocol(table: str, protocol: str, detail: str) -> str:
    """``table`` with the protocol at the end of its header row (the first line)."""
    head, sep, rest = table.partition("\n")
    return f"{head}   [{protocol}: {detail}]{sep}{rest}"


def _json_default(x):
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


