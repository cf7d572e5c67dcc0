"""HEAR API throughput on CPU: audio-seconds embedded per wall-clock second.

    python3 -m tests.bench.hear [MODEL_DIR] [--clips 8] [--seconds 30] [--repeats 3] [--threads 2]

Workload: ``--clips`` white-noise clips of ``--seconds`` at the model's sample rate (the HEAR
API's own check signal), embedded by ``get_scene_embeddings`` (the model's training chunk,
no overlap) and ``get_timestamp_embeddings`` (1-s frames every 50 ms, the HEAR defaults;
and every 250 ms) of csi.hear, front end (CQT from audio) included. MODEL_DIR defaults to
the demo's quick model (egs/synthcovers/exp/demo_quick). Prints one JSON line: medians of
``--repeats`` runs, in audio-seconds per second, and the timestamps per clip.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", nargs="?", default=str(ROOT / "egs" / "synthcovers" / "exp" / "demo_quick"))
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import csi.hear as hear

    model = hear.load_model(args.model_dir, device="cpu")
    rng = np.random.default_rng(0)
    audio = torch.from_numpy(rng.uniform(-1, 1, (args.clips, int(model.sample_rate * args.seconds)))
                             .astype(np.float32))
    audio_s = args.clips * args.seconds
    runs = {"scene": lambda: hear.get_scene_embeddings(audio, model),
            "timestamp_hop50ms": lambda: hear.get_timestamp_embeddings(audio, model, hop_ms=50),
            "timestamp_hop250ms": lambda: hear.get_timestamp_embeddings(audio, model, hop_ms=250)}
    figures, shapes = {}, {}
    for name, run in runs.items():
        run()                                                          # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - t0)
        figures[name] = round(audio_s / statistics.median(times), 1)
        shapes[name] = list((out[0] if isinstance(out, tuple) else out).shape)
    print(json.dumps({"workload": {"model_dir": args.model_dir, "clips": args.clips, "seconds": args.seconds,
                                   "sample_rate": model.sample_rate, "threads": args.threads,
                                   "repeats": args.repeats},
                      "audio_seconds_per_second": figures, "output_shapes": shapes}))


if __name__ == "__main__":
    main()
