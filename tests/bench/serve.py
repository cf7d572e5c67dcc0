"""Load test of the identify service (tools.serve_identify's csi.serve) on a tiny index. From
the repository root:

    OMP_NUM_THREADS=1 python3 -m tests.bench.serve [--requests 200] [--concurrency 4] [--query_s 13]

Builds a random-weight tiny model (1 Conformer block, dim 32, 8-s chunks every 5 s) and the
flat index of 8 recordings of 4 works (30 s, 16 kHz), starts the service on 127.0.0.1 (a
free port, in this process), and posts ``requests`` WAV queries (``query_s`` seconds cut
from the indexed recordings, in turn), ``concurrency`` at a time, each over its own
connection. Prints one JSON line: the workload, latency p50/p99 per request (client side:
upload, decode, CQT, embedding, search, answer), requests per second, and how many answers
were not 200 or not the query's own work first.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

TINY_MODEL = {"input_dim": 96, "embed_dim": 32, "encoder": {"output_dims": 32, "num_blocks": 1, "attention_dim": 64},
              "ce": {"output_dims": 4}}
TINY_TRAIN = {"train_path": "x", "chunk_frame": [100], "mean_size": 2, "m_per_class": 2, "batch_size": 4}
SR = 16000


def percentile(sorted_ms: list[float], q: float) -> float:
    """The nearest-rank percentile of sorted values."""
    return sorted_ms[min(len(sorted_ms) - 1, max(0, int(np.ceil(q / 100 * len(sorted_ms))) - 1))]


def serve_figures(requests: int = 200, concurrency: int = 4, query_s: float = 13.0, works: int = 4,
                  versions: int = 2, ref_s: float = 30.0) -> dict:
    import soundfile as sf
    import torch

    from csi.serve import IdentifyService, ServeOptions, ServingIdentifier, make_server, serve_in_thread
    from tests.bench.index import make_model_dir, tone_audio
    from tools import build_index

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = make_model_dir(tmp / "model", TINY_MODEL, TINY_TRAIN)
        records, queries = [], []
        for w in range(works):
            for v in range(versions):
                y = tone_audio(ref_s, SR, seed=10 * w + v)
                path = tmp / f"w{w}v{v}.wav"
                sf.write(path, y, SR, subtype="PCM_16")
                records.append({"utt": f"w{w}v{v}", "wav": str(path), "song": f"work{w}", "dur_s": ref_s})
                out = io.BytesIO()
                sf.write(out, y[:int(query_s * SR)], SR, subtype="PCM_16", format="WAV")
                queries.append((out.getvalue(), f"work{w}"))
        (tmp / "refs.txt").write_text("".join(json.dumps(r) + "\n" for r in records))
        build_index.main([str(model_dir), str(tmp / "refs.txt"), str(tmp / "index"), "--no_progress"])
        server = make_server(IdentifyService(ServingIdentifier(tmp / "index"), ServeOptions(topk=5)))
        serve_in_thread(server)

        def one(i: int) -> tuple[float, bool]:
            body, song = queries[i % len(queries)]
            request = urllib.request.Request(f"{server.url}identify?name=q{i}.wav", data=body, method="POST",
                                             headers={"Content-Type": "audio/wav"})
            t0 = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=120) as r:
                    answer = json.loads(r.read())
                    ok = r.status == 200 and answer["works"][0]["song"] == song
            except Exception:
                ok = False
            return (time.perf_counter() - t0) * 1000, ok

        one(0)                                                       # warm-up: front end built, caches
        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(one, range(requests)))
        wall = time.perf_counter() - t0
        server.shutdown()
        server.server_close()
    ms = sorted(m for m, _ in results)
    return {"workload": f"POST /identify, {query_s:g}-s 16-kHz PCM WAV queries, tiny random-weight model "
                        f"(1 block, dim 32, 8-s chunks), flat index of {len(records)} recordings of {works} works, "
                        f"{requests} requests {concurrency} at a time, one Identifier under a lock, 1 torch thread",
            "requests": requests, "concurrency": concurrency, "p50_ms": round(percentile(ms, 50), 1),
            "p99_ms": round(percentile(ms, 99), 1), "requests_per_s": round(requests / wall, 2),
            "failed": sum(not ok for _, ok in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--query_s", type=float, default=13.0)
    args = parser.parse_args()
    import logging
    logging.getLogger("csi").setLevel(logging.WARNING)
    print(json.dumps(serve_figures(args.requests, args.concurrency, args.query_s)), flush=True)


if __name__ == "__main__":
    main()
