"""Best-pairs track distances at Da-TACOS scale against the bare segment-similarity products.

    python3 -m tests.bench.best_pairs [--tracks 15000] [--segments 40 50] [--dim 128]
        [--queries 200] [--best_k 3] [--repeats 3] [--threads 2]

Workload: ``--tracks`` synthetic tracks with a uniform random number of segments in
``--segments`` (inclusive; ~45 on average, as a Da-TACOS track cut into 20-s segments every
5 s), 128-d L2-normalised segment embeddings (random, with each work's tracks sharing a
common direction, so that close pairs exist); the first ``--queries`` tracks query all
``--tracks`` references. Each system runs in its own process (clean peak memory), in turn,
``--repeats`` times, each after a warm-up call on one query; the figures are medians:

- ``products``: the similarity matrix products for the same (query block, reference)
  pairs, block by block with the same block size, and nothing else: the compute limit;
- ``min`` and ``best_pairs`` (``csi.scoring.distance.ChunkDistances``): the full track
  distances, products included.

Prints one JSON line: seconds per system, best_pairs / products and min / products,
peak resident memory (MB) per process beside the embeddings' own size, and the time
extrapolated to all tracks as queries.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np


def make_embeddings(tracks: int, low: int, high: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    counts = rng.integers(low, high + 1, tracks)
    owner = np.repeat(np.arange(tracks), counts)
    work_dirs = rng.standard_normal((tracks // 4 + 1, dim)).astype(np.float32)
    emb = rng.standard_normal((len(owner), dim), dtype=np.float32)
    emb += 2.0 * work_dirs[owner // 4]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return emb, owner


def run_system(args: argparse.Namespace) -> dict:
    import torch

    from csi.scoring.distance import DEFAULT_BLOCK_ELEMENTS, ChunkDistances

    torch.set_num_threads(args.threads)
    emb, owner = make_embeddings(args.tracks, args.segments[0], args.segments[1], args.dim)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    q_rows = np.flatnonzero(owner < args.queries)
    out = np.empty((args.queries, args.tracks), np.float32)
    if args.system == "products":
        r = torch.from_numpy(emb)
        q = r[torch.from_numpy(q_rows)]
        per_block = max(1, DEFAULT_BLOCK_ELEMENTS // len(r))
        buffer = torch.empty(min(per_block, len(q)), len(r))
        torch.mm(q[:1], r.T, out=buffer[:1])                       # warm-up, as the others
        t0 = time.perf_counter()
        for b in range(0, len(q), per_block):
            rows = q[b:b + per_block]
            torch.mm(rows, r.T, out=buffer[:len(rows)])
        seconds = time.perf_counter() - t0
    else:
        dist = ChunkDistances(emb[q_rows], owner[q_rows], args.queries, emb, owner, args.tracks, mode=args.system,
                              best_k=args.best_k, device="cpu")
        dist.rows_into(0, 1, out[:1])                              # warm-up (numba loads its compiled kernel)
        t0 = time.perf_counter()
        dist.rows_into(0, args.queries, out)
        seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_mb": peak, "data_mb": rss_data}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracks", type=int, default=15000)
    p.add_argument("--segments", type=int, nargs=2, default=[40, 50])
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--best_k", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--system", choices=("products", "min", "best_pairs"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.system:
        print(json.dumps(run_system(args)))
        return
    systems = ("products", "min", "best_pairs")
    runs: dict[str, list[dict]] = {s: [] for s in systems}
    base = [sys.executable, "-m", "tests.bench.best_pairs", "--tracks", str(args.tracks), "--segments",
            *map(str, args.segments), "--dim", str(args.dim), "--queries", str(args.queries), "--best_k",
            str(args.best_k), "--threads", str(args.threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for _ in range(args.repeats):
        for s in systems:
            out = subprocess.run([*base, "--system", s], check=True, capture_output=True, text=True, env=env)
            runs[s].append(json.loads(out.stdout.strip().splitlines()[-1]))
    sec = {s: statistics.median(r["seconds"] for r in runs[s]) for s in systems}
    peak = {s: round(max(r["peak_mb"] for r in runs[s])) for s in systems}
    mean_segments = sum(args.segments) / 2
    print(json.dumps({
        "workload": {"tracks": args.tracks, "segments": args.segments, "mean_segments": mean_segments,
                     "dim": args.dim, "queries": args.queries, "best_k": args.best_k, "threads": args.threads,
                     "repeats": args.repeats},
        "seconds": {s: round(v, 3) for s, v in sec.items()},
        "best_pairs_over_products": round(sec["best_pairs"] / sec["products"], 3),
        "min_over_products": round(sec["min"] / sec["products"], 3),
        "peak_rss_mb": peak, "embeddings_rss_mb": round(runs["products"][0]["data_mb"]),
        "best_pairs_all_queries_minutes": round(sec["best_pairs"] * args.tracks / args.queries / 60, 1),
    }))


if __name__ == "__main__":
    main()
