"""Benchmark of the search index and of identification on CPU. From the repository root:

    python3 -m tests.bench.index [--n 1000000] [--queries 1000] [--type ivfpq]

Prints one JSON line (``index_benchmark()`` returns the same dict, to merge with other
benchmarks):
- ``index_build_s``: building an ``ivfpq`` index (auto parameters) of ``n`` synthetic
  clustered 128-d normalised vectors (training + adding), ``index_bytes_per_vector``:
  index file size / n (target <= 80);
- ``index_p50_ms``/``index_p99_ms``: single-query search latency (k = 10, one thread as a
  server answering one query) over ``queries`` queries (target p50 <= 5 ms);
- ``index_recall_at_10``: mean |top-10 ∩ exact top-10| / 10 (target >= 0.9);
- ``identify_wall_s``: ``python3 -m tools.identify`` in a subprocess for one 4-minute
  query (generated 44.1 kHz audio) against the flat index of a demo-size model (3 blocks,
  dim 128, 30 s chunks; random weights), model load included: median of 3 runs (target <= 2 s).

Synthetic data mimic chunk embeddings: works (centres on the sphere), recordings around
their work, chunks around their recording.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = {"input_dim": 96, "embed_dim": 128, "encoder": {"output_dims": 128, "num_blocks": 3, "attention_dim": 256},
              "pool_type": "attention", "ce": {"output_dims": 16, "weight": 1.0, "gamma": 2},
              "triplet": {"margin": 0.3, "weight": 0.1}, "center": {"weight": 0.0}}
DEMO_TRAIN = {"train_path": "x", "chunk_frame": [250], "mean_size": 3, "m_per_class": 4, "batch_size": 16}


def clustered_vectors(n: int, dim: int = 128, seed: int = 0, per_recording: int = 10, per_work: int = 4,
                      spread: tuple[float, float] = (0.6, 0.5)) -> np.ndarray:
    """``n`` normalised vectors: ``n / (per_recording·per_work)`` works; a recording is its
    work centre plus noise, a chunk its recording plus noise (``spread``: the two noise
    norms relative to the unit centre)."""
    rng = np.random.default_rng(seed)
    n_rec = -(-n // per_recording)
    n_works = -(-n_rec // per_work)
    works = rng.standard_normal((n_works, dim), dtype=np.float32)
    works /= np.linalg.norm(works, axis=1, keepdims=True)
    recs = works[np.arange(n_rec) // per_work]
    recs += rng.standard_normal((n_rec, dim), dtype=np.float32) * (spread[0] / np.sqrt(dim))
    out = np.empty((n, dim), np.float32)
    step = 1 << 18
    for b in range(0, n, step):                       # in blocks: bounded temporary memory
        rows = np.arange(b, min(n, b + step))
        block = recs[rows // per_recording] + rng.standard_normal((len(rows), dim), dtype=np.float32) * (
            spread[1] / np.sqrt(dim))
        out[rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def index_figures(n: int = 1_000_000, n_queries: int = 1000, kind: str = "ivfpq", seed: int = 0,
                  **overrides) -> dict:
    """Build/size/latency/recall of a ``kind`` index of ``n`` clustered vectors."""
    import faiss

    from csi.index import ChunkIndex

    data = clustered_vectors(n + n_queries, seed=seed)
    held_out = np.random.default_rng(seed + 1).choice(len(data), n_queries, replace=False)
    queries = data[held_out]               # unseen chunks of indexed recordings
    kept = np.setdiff1d(np.arange(len(data)), held_out)
    base = data[kept]
    del data
    owners = kept // 10
    records = [{"utt": f"r{i}", "song": f"w{i // 4}"} for i in range(int(owners[-1]) + 1)]
    t0 = time.perf_counter()
    index = ChunkIndex.build(base, owners, records, kind=kind, seed=seed, **overrides)
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        index.save(tmp)
        size = os.path.getsize(Path(tmp) / "index.faiss")

    exact = faiss.IndexFlatIP(base.shape[1])
    exact.add(base)
    _, truth = exact.search(queries, 10)
    del exact

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    times, found = [], []
    try:
        for q in queries:
            t = time.perf_counter()
            _, ids = index.search(q[None], 10)
            times.append(time.perf_counter() - t)
            found.append(ids[0])
    finally:
        faiss.omp_set_num_threads(threads)
    recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))
    ms = np.array(times) * 1000
    return {"index_type": kind, "index_params": index.params.to_dict(), "index_vectors": n,
            "index_build_s": round(build_s, 2), "index_bytes_per_vector": round(size / n, 1),
            "index_p50_ms": round(float(np.percentile(ms, 50)), 3),
            "index_p99_ms": round(float(np.percentile(ms, 99)), 3), "index_recall_at_10": round(recall, 4)}


def make_model_dir(root: Path, model_hp: dict, train_hp: dict, seed: int = 0) -> Path:
    """A model directory (config/hparams.yaml + pt_model/g_00000000) of a random-weight model."""
    from tests.helpers import write_model_dir

    return write_model_dir(root, {**train_hp, **model_hp}, seed=seed)


def tone_audio(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A melody of random notes (harmonic tones) with a little noise."""
    rng = np.random.default_rng(seed)
    note_s = 0.5
    t = np.arange(int(note_s * sr)) / sr
    env = np.minimum(1, np.minimum(t / 0.02, (note_s - t) / 0.05))
    notes = []
    for _ in range(int(np.ceil(seconds / note_s))):
        f = 110 * 2 ** (rng.integers(0, 36) / 12)
        notes.append(env * sum(np.sin(2 * np.pi * f * h * t) / h for h in (1, 2, 3)))
    y = np.concatenate(notes)[: int(seconds * sr)] * 0.3 + rng.standard_normal(int(seconds * sr)) * 0.01
    return y.astype(np.float32)


def identify_wall(runs: int = 3, query_s: float = 240.0, refs: int = 40) -> dict:
    """Wall time of the identify CLI for one ``query_s`` query against a demo-size model's index."""
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = make_model_dir(tmp / "model", DEMO_MODEL, DEMO_TRAIN)
        rng = np.random.default_rng(0)
        lines = []
        for i in range(refs):                       # stored CQT features, 3 minutes each
            feat = (rng.normal(-40, 10, (4500, 96))).astype(np.float16)
            np.save(tmp / f"f{i}.npy", feat)
            lines.append({"utt": f"ref{i}", "song": f"work{i // 2}", "feat": str(tmp / f"f{i}.npy"), "feat_len": 4500})
        (tmp / "refs.txt").write_text("".join(json.dumps(r) + "\n" for r in lines))
        env = dict(os.environ, PYTHONPATH=str(REPO))
        subprocess.run([sys.executable, "-m", "tools.build_index", str(model_dir), str(tmp / "refs.txt"),
                        str(tmp / "index"), "--no_progress"], cwd=REPO, env=env, check=True, capture_output=True)
        sf.write(tmp / "query.wav", tone_audio(query_s, 44100), 44100)
        walls = []
        for _ in range(runs):
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "tools.identify", str(tmp / "index"), str(tmp / "query.wav")],
                                 cwd=REPO, env=env, capture_output=True, text=True)
            walls.append(time.perf_counter() - t)
            if out.returncode:
                raise RuntimeError(f"identify failed: {out.stderr}")
    return {"identify_wall_s": round(statistics.median(walls), 3), "identify_wall_s_runs": [round(w, 3) for w in walls]}


def index_benchmark(n: int = 1_000_000, n_queries: int = 1000, kind: str = "ivfpq", **overrides) -> dict:
    """All figures of this benchmark as one dict."""
    out = index_figures(n, n_queries, kind, **overrides)
    out.update(identify_wall())
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--type", default="ivfpq", choices=("flat", "ivfpq", "hnsw"))
    parser.add_argument("--skip_identify", action="store_true")
    for key in ("nlist", "m", "nbits", "nprobe", "hnsw_m", "ef_construction", "ef_search"):
        parser.add_argument(f"--{key}", type=int)
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in ("nlist", "m", "nbits", "nprobe", "hnsw_m", "ef_construction",
                                               "ef_search")}
    out = index_figures(args.n, args.queries, args.type, **overrides)
    if not args.skip_identify:
        out.update(identify_wall())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
