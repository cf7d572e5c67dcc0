"""Benchmark: CoverHunterCQT vs the per-frame NumPy reference. Run from the repository root:

    python3 -m tests.bench.cqt [--seconds 120] [--repeats 3] [--threads 1]

Prints one JSON line. ``*_rtf_per_core`` = audio seconds processed per wall-clock second
(median of the repeats) divided by the number of torch threads used (``threads``, 1 by
default; the NumPy reference runs on one core). ``max_abs_db_err`` is the largest absolute
difference in dB between the two on bins where the reference is above -80 dB. The audio is
the fixture clip repeated to ``--seconds`` (a synthetic mix when ../shared is absent).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from csi.features.cqt import CoverHunterCQT
from tests.bench.cqt_reference import reference_cqt, reference_kernel

SR = 16000
FIXTURE_WAV = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "coverhunter_ref" / "audio_16k.wav"


def bench_audio(seconds: float) -> np.ndarray:
    """``seconds`` of audio: the fixture clip tiled, or harmonic tones in noise without it."""
    n = int(seconds * SR)
    if FIXTURE_WAV.exists():
        import soundfile as sf
        clip, _ = sf.read(FIXTURE_WAV, dtype="float32")
        return np.resize(clip, n)
    rng = np.random.default_rng(0)
    t = np.arange(n) / SR
    y = sum(np.sin(2 * np.pi * 55 * 2 ** (i / 7) * t * (1 + 0.01 * np.sin(t))) / (i + 1) for i in range(20))
    return (0.1 * y + 0.01 * rng.standard_normal(n)).astype(np.float32)


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    y = bench_audio(args.seconds)
    x = torch.from_numpy(y)
    frontend = CoverHunterCQT()
    with torch.inference_mode():
        ours = frontend(x).numpy()           # warm-up and result
        ours_s = median_seconds(lambda: frontend(x), args.repeats)
    kernel = reference_kernel(SR)
    ref = reference_cqt(y, SR, kernel=kernel)
    ref_s = median_seconds(lambda: reference_cqt(y, SR, kernel=kernel), args.repeats)

    seconds = len(y) / SR
    ours_rtf = seconds / ours_s / args.threads
    ref_rtf = seconds / ref_s
    loud = ref > -80
    print(json.dumps({
        "cqt_rtf_per_core": round(ours_rtf, 1),
        "reference_cqt_rtf_per_core": round(ref_rtf, 1),
        "cqt_speedup": round(ours_rtf / ref_rtf, 2),
        "max_abs_db_err": float(f"{np.abs(ours - ref)[loud].max():.3g}"),
        "threads": args.threads,
        "audio_s": round(seconds, 1),
    }))


if __name__ == "__main__":
    main()
