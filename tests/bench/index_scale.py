"""Index build and search at scale, streamed from disk (csi.index.store.build_streaming). From
the repository root:

    python3 -m tests.bench.index_scale [--sizes 1000000,3000000,10000000] [--queries 1000]
        [--model_dir egs/synthcovers/exp/demo_quick --manifests egs/synthcovers/data/.../test/full.txt ...]
        [--nlist N] [--nprobes 32,64,128] [--work_dir DIR]

The vectors (128-d) are written to a raw file in blocks and indexed by a child process
(``ivfpq``, auto parameters unless given), so the peak RSS measured is the build's alone.
With ``--model_dir`` they are shaped after real chunk embeddings: the trained model embeds the
manifests' recordings, and works, recordings and chunks are drawn with the covariances of the
real work centres, recording offsets and chunk offsets (anisotropic, as learned embeddings
are); the real embeddings themselves are also indexed and searched (``real``). Without it,
isotropic clusters (tests.bench.index.clustered_vectors' model). Queries are unindexed chunks
of indexed recordings; exact top-10 by a blocked flat search over the file.

Prints one JSON line: the workload, and per size: build seconds, peak build RSS (MB), bytes
per vector (index.faiss / N), and per nprobe the p50/p99 query ms (one thread, k = 10) and
recall@10 (|top-10 ∩ exact top-10| / 10).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CHUNKS_PER_RECORDING, RECORDINGS_PER_WORK, BLOCK = 10, 4, 1 << 18


class Shape:
    """How works, recordings and chunks spread: a mean and three covariance factors."""

    def __init__(self, mean: np.ndarray, work: np.ndarray, recording: np.ndarray, chunk: np.ndarray):
        self.mean, self.work, self.recording, self.chunk = mean, work, recording, chunk

    @classmethod
    def isotropic(cls, dim: int = 128, spread: tuple[float, float] = (0.6, 0.5)) -> "Shape":
        eye = np.eye(dim, dtype=np.float32)
        return cls(np.zeros(dim, np.float32), eye, eye * spread[0], eye * spread[1])

    @classmethod
    def fitted(cls, emb: np.ndarray, recording: np.ndarray, work: np.ndarray) -> "Shape":
        """From real chunk embeddings with their recording and work ids."""
        def factor(x: np.ndarray) -> np.ndarray:
            cov = np.cov(x, rowvar=False) + 1e-6 * np.eye(x.shape[1])
            return np.linalg.cholesky(cov).T.astype(np.float32)     # z @ factor ~ N(0, cov)
        rec_mean = {r: emb[recording == r].mean(0) for r in np.unique(recording)}
        work_of = {r: work[recording == r][0] for r in rec_mean}
        work_mean = {w: np.mean([rec_mean[r] for r in rec_mean if work_of[r] == w], axis=0) for w in np.unique(work)}
        centres = np.stack(list(work_mean.values()))
        rec_offsets = np.stack([rec_mean[r] - work_mean[work_of[r]] for r in rec_mean])
        chunk_offsets = emb - np.stack([rec_mean[r] for r in recording])
        return cls(centres.mean(0).astype(np.float32), factor(centres), factor(rec_offsets), factor(chunk_offsets))

    def write(self, path: Path, n: int, seed: int) -> None:
        """n vectors, recording by recording, written block by block (bounded memory)."""
        rng = np.random.default_rng(seed)
        dim = len(self.mean)
        n_rec = -(-n // CHUNKS_PER_RECORDING)
        n_works = -(-n_rec // RECORDINGS_PER_WORK)
        works = self.mean + rng.standard_normal((n_works, dim), dtype=np.float32) @ self.work
        step = BLOCK - BLOCK % CHUNKS_PER_RECORDING          # whole recordings a block
        with open(path, "wb") as f:
            for b in range(0, n, step):
                rows = np.arange(b, min(n, b + step))
                recs = np.arange(rows[0] // CHUNKS_PER_RECORDING, rows[-1] // CHUNKS_PER_RECORDING + 1)
                centre = works[recs // RECORDINGS_PER_WORK] + rng.standard_normal(
                    (len(recs), dim), dtype=np.float32) @ self.recording
                x = centre[rows // CHUNKS_PER_RECORDING - recs[0]] + rng.standard_normal(
                    (len(rows), dim), dtype=np.float32) @ self.chunk
                f.write(np.ascontiguousarray(x, dtype=np.float32).tobytes())


def real_embeddings(model_dir: Path, manifests: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chunk embeddings of the manifests' recordings by the model (its matching hop)."""
    from csi.embed import embed_records
    from csi.io.manifest import read_manifest
    from csi.modeldir import open_model

    loaded = open_model(model_dir)
    records = [r for m in manifests for r in read_manifest(m, required=("utt", "song"))]
    result = embed_records(loaded.model, records, loaded.card.chunking(), loaded.reader(), 64, loaded.device)
    songs = {s: i for i, s in enumerate(sorted({r["song"] for r in records}))}
    work = np.array([songs[records[o]["song"]] for o in result.owner])
    return result.emb, result.owner, work


BUILD = """
import json, os, resource, sys, time
import numpy as np
from csi.index import ChunkIndex
from csi.index.vectors import VectorFile
path, out, per_rec, overrides = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
x = VectorFile(path, 128)
owners = np.arange(len(x)) // per_rec
records = [{"utt": f"r{i}", "song": f"w{i // 4}"} for i in range(int(owners[-1]) + 1)]
t0 = time.perf_counter()
index = ChunkIndex.build_streaming(x, owners, records, kind="ivfpq", **overrides)
index.save(out)
print(json.dumps({"build_s": round(time.perf_counter() - t0, 1), "params": index.params.to_dict(),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def exact_top10(path: Path, queries: np.ndarray) -> np.ndarray:
    """Exact inner-product top-10 of the normalised queries over the normalised file, block by block."""
    import faiss

    from csi.index.vectors import VectorFile

    x = VectorFile(path, queries.shape[1])
    best_d = np.full((len(queries), 10), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 10), np.int64)
    for b in range(0, len(x), 1 << 20):
        block = np.array(x[b:b + (1 << 20)])
        faiss.normalize_L2(block)
        flat = faiss.IndexFlatIP(block.shape[1])
        flat.add(block)
        d, i = flat.search(queries, 10)
        d_all, i_all = np.hstack([best_d, d]), np.hstack([best_i, i + b])
        keep = np.argsort(-d_all, axis=1, kind="stable")[:, :10]
        best_d, best_i = np.take_along_axis(d_all, keep, 1), np.take_along_axis(i_all, keep, 1)
    return best_i


def search_figures(index_dir: Path, queries: np.ndarray, truth: np.ndarray, nprobes: list[int]) -> dict:
    import faiss

    from csi.index import ChunkIndex

    index = ChunkIndex.load(index_dir)
    faiss.omp_set_num_threads(1)
    out = {}
    for nprobe in nprobes:
        index.set_search_params(nprobe=nprobe)
        times, found = [], []
        for q in queries:
            t = time.perf_counter()
            _, ids = index.search(q[None], 10)
            times.append(time.perf_counter() - t)
            found.append(ids[0])
        ms = np.array(times) * 1000
        out[f"nprobe_{nprobe}"] = {"p50_ms": round(float(np.percentile(ms, 50)), 3),
                                   "p99_ms": round(float(np.percentile(ms, 99)), 3),
                                   "recall_at_10": round(float(np.mean([len(set(f) & set(t)) / 10
                                                                        for f, t in zip(found, truth)])), 4)}
    return out


def one_size(work: Path, name: str, vectors: Path, n_queries: int, overrides: dict, nprobes: list[int],
             per_recording: int, seed: int) -> dict:
    """Index all but ``n_queries`` held-out rows of ``vectors``; search with the held-out rows."""
    from csi.index.vectors import VectorFile

    import faiss

    x = VectorFile(vectors, 128)
    rng = np.random.default_rng(seed + 1)
    held = np.sort(rng.choice(len(x), n_queries, replace=False))
    base = work / f"{name}.base.f32"
    queries = []
    with open(base, "wb") as f:          # the file without the held-out rows, block by block
        for b in range(0, len(x), BLOCK):
            block = x[b:b + BLOCK]
            lo, hi = np.searchsorted(held, [b, b + len(block)])
            queries.append(block[held[lo:hi] - b])
            f.write(np.delete(block, held[lo:hi] - b, axis=0).tobytes())
    vectors.unlink()
    queries = np.concatenate(queries)
    faiss.normalize_L2(queries)
    r = subprocess.run([sys.executable, "-c", BUILD, str(base), str(work / name), str(per_recording),
                        json.dumps(overrides)], cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    if r.returncode:
        raise RuntimeError(r.stderr[-3000:])
    built = json.loads(r.stdout.splitlines()[-1])
    n = len(x) - n_queries
    out = {"vectors": n, **built, "bytes_per_vector": round(os.path.getsize(work / name / "index.faiss") / n, 1)}
    out.update(search_figures(work / name, queries, exact_top10(base, queries), nprobes))
    base.unlink()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,3000000,10000000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--model_dir", type=Path, help="shape the vectors after this model's real embeddings")
    parser.add_argument("--manifests", type=Path, nargs="*", default=[], help="recordings the model embeds")
    parser.add_argument("--nlist", type=int, help="(default: auto, csi/index/params.py)")
    parser.add_argument("--nprobes", default="32,64,128")
    parser.add_argument("--work_dir", type=Path, help="where the vector files go (default: a temporary directory)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    nprobes = [int(s) for s in args.nprobes.split(",")]
    overrides = {"nlist": args.nlist} if args.nlist else {}
    figures = {"workload": {"dim": 128, "kind": "ivfpq", "queries": args.queries, "k": 10,
                            "chunks_per_recording": CHUNKS_PER_RECORDING, "recordings_per_work": RECORDINGS_PER_WORK,
                            "shape": "fitted to real embeddings" if args.model_dir else "isotropic clusters",
                            "model_dir": str(args.model_dir) if args.model_dir else None,
                            "threads_build": os.cpu_count(), "threads_query": 1}}
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        work = Path(tmp)
        shape = Shape.isotropic()
        if args.model_dir:
            emb, recording, works = real_embeddings(args.model_dir, args.manifests)
            shape = Shape.fitted(emb, recording, works)
            order = np.argsort(recording, kind="stable")
            (emb[order]).astype(np.float32).tofile(work / "real.f32")
            real_queries = min(args.queries, len(emb) // 10)
            figures["real"] = {"recordings": int(len(np.unique(recording))), "works": int(len(np.unique(works))),
                               **one_size(work, "real", work / "real.f32", real_queries, {}, nprobes,
                                          int(np.ceil(len(emb) / len(np.unique(recording)))), args.seed)}
            print(json.dumps({"real": figures["real"]}), file=sys.stderr, flush=True)
        for n in sizes:
            shape.write(work / f"n{n}.f32", n + args.queries, args.seed)
            figures[f"n_{n}"] = one_size(work, f"n{n}", work / f"n{n}.f32", args.queries, overrides, nprobes,
                                         CHUNKS_PER_RECORDING, args.seed)
            print(json.dumps({f"n_{n}": figures[f"n_{n}"]}), file=sys.stderr, flush=True)
            for f in (work / f"n{n}").iterdir():
                f.unlink()
    figures["bench_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
