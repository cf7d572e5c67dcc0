"""Benchmark of test-set evaluation from stored embeddings. From the repository root:

    python3 -m tests.bench.eval [--sizes 1000 15000 50000]

Synthetic clustered embeddings (works of 2-7 versions; each track 3 chunks of 128-d,
L2-normalised: work centre + track noise + chunk noise) are written to .npy files, then
each size runs in its own process: load the stored embeddings, all-vs-all track distances
(minimum over chunk pairs, csi.scoring.distance) and the full metrics (MAP, MR1, P@10, HR@k,
each track excluded from its own ranking; csi.scoring.metrics). Prints one JSON line:
``eval_s_1k``, ``eval_s_15k``, ``eval_s_50k`` (wall seconds, load to metrics) and
``eval_peak_rss_mb_15k`` (peak resident memory of the 15k process, Python + torch
included). Target: 15,000 tracks in <= 30 s on 2 CPU cores with <= 4 GB.
``run()`` returns the dict. The search-index figures of ``tests.bench.index``
(``index_build_s``, ``index_bytes_per_vector``, ``index_p50_ms``, ``index_p99_ms``,
``index_recall_at_10``, ``identify_wall_s``) are added to the same line unless
``--no_index``.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHUNKS_PER_TRACK = 3
DIM = 128


def synthetic_embeddings(n_tracks: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(chunks, 128) float32 L2-normalised chunk embeddings, chunk owner, work label per track."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 8, size=n_tracks)
    labels = np.repeat(np.arange(n_tracks), sizes)[:n_tracks]
    rng.shuffle(labels)
    centres = rng.normal(size=(labels.max() + 1, DIM)).astype(np.float32)
    tracks = centres[labels] + 1.5 * rng.normal(size=(n_tracks, DIM)).astype(np.float32)
    chunks = np.repeat(tracks, CHUNKS_PER_TRACK, axis=0)
    chunks += 0.6 * rng.normal(size=chunks.shape).astype(np.float32)
    chunks /= np.linalg.norm(chunks, axis=1, keepdims=True)
    owner = np.repeat(np.arange(n_tracks), CHUNKS_PER_TRACK)
    return chunks, owner, labels


def evaluate_stored(directory: Path) -> dict:
    """Time loading + distances + metrics of the embeddings stored in ``directory``."""
    import torch

    from csi.scoring.distance import ChunkDistances
    from csi.scoring.metrics import retrieval_metrics

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    emb = np.load(directory / "chunks.npy")
    owner = np.load(directory / "owner.npy")
    labels = np.load(directory / "labels.npy")
    n = len(labels)
    distances = ChunkDistances(emb, owner, n, mode="min", device="cpu")
    self_pairs = (np.arange(n), np.arange(n))
    result = retrieval_metrics(distances, labels, labels, exclude=self_pairs)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "MAP": result.metrics["MAP"], "MR1": result.metrics["MR1"], "tracks": n}


def _child(n: int, workdir: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "tests.bench.eval", "--child", str(workdir)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(sizes=(1000, 15000, 50000)) -> dict:
    """``{eval_s_1k, eval_s_15k, eval_s_50k, eval_peak_rss_mb_15k, ...}``; each size in a
    fresh process so times and memory are isolated."""
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            d = Path(tmp) / str(n)
            d.mkdir()
            emb, owner, labels = synthetic_embeddings(n)
            np.save(d / "chunks.npy", emb)
            np.save(d / "owner.npy", owner)
            np.save(d / "labels.npy", labels)
            del emb, owner, labels
            res = _child(n, d)
            name = f"{n // 1000}k" if n % 1000 == 0 else str(n)
            report[f"eval_s_{name}"] = round(res["seconds"], 2)
            report[f"eval_peak_rss_mb_{name}"] = round(res["peak_rss_mb"], 1)
            report[f"eval_map_{name}"] = round(res["MAP"], 4)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 15000, 50000])
    parser.add_argument("--no_index", action="store_true", help="skip the search-index figures")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(evaluate_stored(args.child)))
        return
    report = run(args.sizes)
    if not args.no_index:
        from tests.bench.index import index_benchmark
        report.update(index_benchmark())
    print(json.dumps(report))


if __name__ == "__main__":
    main()
