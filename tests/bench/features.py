"""Benchmark of stage 2 (features with augmentation). Run from the repository root:

    python3 -m tests.bench.features [--corpus DIR] [--recordings 12] [--reference_recordings 4]

Prints one JSON line:
- ``cqt_rtf_per_core``: CQT front end alone, audio seconds per wall second on one thread;
- ``stage_rtf_per_core``: the whole stage (decode + resample + 5 tempo factors + CQT +
  float16 write) on demo-corpus recordings, one worker, one thread, counting every
  produced audio second; median of ``--repeats`` runs into fresh stores;
- ``speedup_vs_reference_path``: the same recordings processed the reference way
  (``sox tempo`` subprocess into temporary wav files, decode, per-frame NumPy CQT, float32
  .npy), cost per produced audio second divided by ours (null without a sox binary);
- ``bytes_per_audio_s``: bytes stored per produced audio second;
- ``offline_bytes_per_source_s`` / ``online_bytes_per_source_s``: storage per second of
  source audio with 5 stored tempo copies vs one copy stretched online during training;
  ``online_stretch_chunks_per_s``: 1125-frame chunks the online stretch delivers per second;
- ``peak_rss_mb``: peak resident memory of this process and its children.

The corpus is rendered with tools.make_synth_covers into a temporary directory unless
``--corpus`` names one (a directory holding dataset.txt).
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from csi.data.augment import random_stretched_chunk
from csi.features.cqt import CoverHunterCQT
from csi.features.stage import extract_features
from csi.io.audio import load
from csi.io.manifest import read_manifest, write_manifest
from tests.bench.cqt import bench_audio, median_seconds
from tests.bench.cqt_reference import reference_cqt, reference_kernel

SR = 16000
TEMPOS = [0.8, 0.9, 1.0, 1.1, 1.2]


def cqt_rtf(seconds: float = 60.0, repeats: int = 3) -> float:
    x = torch.from_numpy(bench_audio(seconds))
    frontend = CoverHunterCQT()
    with torch.inference_mode():
        frontend(x)
        return seconds / median_seconds(lambda: frontend(x), repeats)


def run_ours(records: list[dict], work: Path, tempos: list[float]) -> tuple[float, float, int]:
    """(wall seconds, produced audio seconds, bytes stored) of one fresh stage run."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    write_manifest(work / "dataset.txt", records)
    (work / "hparams.yaml").write_text(f"aug_speed_mode: {tempos}\n")
    start = time.perf_counter()
    summary = extract_features(work, nj=1, progress=False, log=lambda _: None)
    wall = time.perf_counter() - start
    stored = sum(p.stat().st_size for p in (work / "cqt_feat").glob("*/*.npy"))
    return wall, summary.audio_s, stored


def run_reference_way(records: list[dict], work: Path) -> tuple[float, float]:
    """(wall seconds, produced audio seconds): sox tempo → temp wav → decode → per-frame CQT → .npy."""
    kernel = reference_kernel(SR)
    work.mkdir(parents=True, exist_ok=True)
    audio_s = 0.0
    start = time.perf_counter()
    for rec in records:
        for k in TEMPOS:
            if k != 1.0:
                wav = work / f"sp_{k}-{rec['utt']}.wav"
                subprocess.run(["sox", "-q", rec["wav"], "-t", "wav", "-r", str(SR), "-c", "1", str(wav), "tempo", str(k)],
                               check=True, capture_output=True)
            else:
                wav = Path(rec["wav"])
            y, _ = load(wav, SR)
            y = y / max(0.001, float(np.max(np.abs(y)))) * 0.999
            np.save(work / f"{wav.stem}.cqt.npy", reference_cqt(y, SR, kernel=kernel).astype(np.float32))
            audio_s += len(y) / SR
    return time.perf_counter() - start, audio_s


def demo_corpus(tmp: Path, works: int) -> Path:
    out = tmp / "corpus"
    subprocess.run([sys.executable, "-m", "tools.make_synth_covers", "--out_dir", str(out), "--works", str(works),
                    "--seed", "0", "--nj", "1"], check=True, capture_output=True)
    return out


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="directory with dataset.txt (default: render a demo corpus)")
    parser.add_argument("--recordings", type=int, default=12)
    parser.add_argument("--reference_recordings", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="csi_bench_features_") as tmp_name:
        tmp = Path(tmp_name)
        corpus = args.corpus or demo_corpus(tmp, works=max(2, args.recordings // 2))
        records = read_manifest(corpus / "dataset.txt")[:args.recordings]
        source_s = sum(r["dur_s"] for r in records)

        runs = [run_ours(records, tmp / "ours", TEMPOS) for _ in range(args.repeats)]
        wall = statistics.median(r[0] for r in runs)
        _, produced_s, stored = runs[0]
        _, _, stored_once = run_ours(records, tmp / "online", [1.0])

        few = records[:args.reference_recordings]
        speedup = None
        if shutil.which("sox"):
            ref_wall, ref_audio = run_reference_way(few, tmp / "reference")
            ours_few = statistics.median(run_ours(few, tmp / "ours_few", TEMPOS)[0] for _ in range(args.repeats))
            ours_few_audio = run_ours(few, tmp / "ours_few", TEMPOS)[1]
            speedup = round((ref_wall / ref_audio) / (ours_few / ours_few_audio), 2)

        feats = [np.load(p, mmap_mode="r") for p in sorted((tmp / "online" / "cqt_feat").glob("*/*.npy"))]
        rng = np.random.default_rng(0)
        n_chunks = 200
        start = time.perf_counter()
        for i in range(n_chunks):
            random_stretched_chunk(feats[i % len(feats)], 1125, (0.8, 1.2), rng)
        chunks_per_s = n_chunks / (time.perf_counter() - start)

        print(json.dumps({
            "cqt_rtf_per_core": round(cqt_rtf(), 1),
            "stage_rtf_per_core": round(produced_s / wall, 1),
            "speedup_vs_reference_path": speedup,
            "bytes_per_audio_s": round(stored / produced_s, 1),
            "peak_rss_mb": peak_rss_mb(),
            "offline_bytes_per_source_s": round(stored / source_s, 1),
            "online_bytes_per_source_s": round(stored_once / source_s, 1),
            "online_stretch_chunks_per_s": round(chunks_per_s, 1),
            "recordings": len(records),
            "source_audio_s": round(source_s, 1),
            "produced_audio_s": round(produced_s, 1),
            "tempo_factors": TEMPOS,
        }))


if __name__ == "__main__":
    main()
