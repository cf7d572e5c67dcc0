"""Serrà's Qmax (csi.baselines.qmax): alignment speed, and MAP on a test split beside
essentia's own pipeline.

    python3 -m tests.bench.qmax [--tracks 120] [--seconds 60] [--repeats 3]
        [--manifest egs/synthcovers/data/synthcovers_w400_s0/test/full.txt] [--essentia]

Speed: ``--tracks`` random chroma sequences of ``--seconds`` at 0.464-s steps, all-vs-all
(each unordered pair once, on every core numba is given); the median pairs/s of
``--repeats`` runs after one warm-up (compilation).

With ``--manifest`` (a feature manifest with ``feat`` and, for ``--essentia``, ``wav``), on
that split all-vs-all, each query's own recording excluded: csi's Qmax on the chroma of the
stored CQT (what ``tools.eval_baseline --system qmax`` runs); with ``--essentia`` also
essentia's HPCP of the audio (acoss's parameters: 44.1 kHz, frame 4096, hop 512, spectral
whitening, 8 harmonics, 100-3500 Hz, median of 40 frames) through csi's alignment, and through
essentia's own ``ChromaCrossSimilarity`` + ``CoverSongSimilarity`` for the first 20 queries
(their distances compared with csi's). Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def speed(n_tracks: int, seconds: float, repeats: int) -> dict:
    from csi.baselines.qmax import STEP_S, qmax_distances

    rng = np.random.default_rng(0)
    steps = int(round(seconds / STEP_S))
    tracks = [rng.random((steps, 12)).astype(np.float32) for _ in range(n_tracks)]
    ids = [str(i) for i in range(n_tracks)]
    qmax_distances(tracks[:4], tracks[:4], ids[:4], ids[:4])          # compile
    rates = []
    for _ in range(repeats):
        stats: dict = {}
        qmax_distances(tracks, tracks, ids, ids, stats=stats)
        rates.append(stats["pairs_per_s"])
    import numba
    return {"tracks": n_tracks, "steps_per_track": steps, "pairs": n_tracks * (n_tracks - 1) // 2,
            "pairs_per_s_median": round(statistics.median(rates), 1), "pairs_per_s": rates,
            "threads": numba.get_num_threads()}


def essentia_hpcp(path: str) -> np.ndarray:
    import essentia.standard as es
    import soundfile as sf
    import soxr

    y, sr = sf.read(path, dtype="float32", always_2d=True)
    y = soxr.resample(y.mean(axis=1), sr, 44100).astype(np.float32)
    window, spectrum = es.Windowing(type="blackmanharris62"), es.Spectrum()
    peaks = es.SpectralPeaks(magnitudeThreshold=0, minFrequency=100, maxFrequency=3500, maxPeaks=100,
                             orderBy="frequency", sampleRate=44100)
    whitening = es.SpectralWhitening(maxFrequency=3500, sampleRate=44100)
    hpcp = es.HPCP(sampleRate=44100, minFrequency=100, maxFrequency=3500, referenceFrequency=440, nonLinear=False,
                   harmonics=8, size=12)
    frames = []
    for frame in es.FrameGenerator(y, frameSize=4096, hopSize=512):
        s = spectrum(window(frame))
        f, m = peaks(s)
        frames.append(hpcp(f, whitening(s, f, m)))
    x = np.asarray(frames, dtype=np.float32)
    return np.asarray([np.median(x[i:i + 40], axis=0) for i in range(0, len(x), 40)], dtype=np.float32)


def on_split(manifest: Path, with_essentia: bool) -> dict:
    from csi.baselines import evaluate_baselines
    from csi.baselines.qmax import qmax_distances
    from csi.scoring.metrics import retrieval_metrics, same_source_pairs
    from csi.io.manifest import read_manifest

    records = read_manifest(manifest)
    utts, labels = [r["utt"] for r in records], [r["song"] for r in records]
    exclude = same_source_pairs(utts, utts)
    t0 = time.time()
    ours = evaluate_baselines(records, records, "qmax")["qmax"]
    out = {"tracks": len(records), "csi_cqt_chroma": {"MAP": round(ours["MAP"], 4), "HR@1": round(ours["HR@1"], 4),
                                                       "pairs_per_s": ours["pairs_per_s"],
                                                       "time_s": round(time.time() - t0, 1)}}
    if not with_essentia:
        return out
    import essentia.standard as es

    t0 = time.time()
    hpcps = [essentia_hpcp(r["wav"]) for r in records]
    features_s = time.time() - t0
    stats: dict = {}
    d = qmax_distances(hpcps, hpcps, utts, utts, stats=stats)
    m = retrieval_metrics(d, labels, labels, exclude).metrics
    out["essentia_hpcp_csi_alignment"] = {"MAP": round(m["MAP"], 4), "HR@1": round(m["HR@1"], 4),
                                          "features_s": round(features_s, 1), "pairs_per_s": stats["pairs_per_s"]}
    ccs = es.ChromaCrossSimilarity(frameStackSize=9, frameStackStride=1, binarizePercentile=0.095, oti=True)
    css = es.CoverSongSimilarity(alignmentType="serra09", disOnset=0.5, disExtension=0.5, distanceType="asymmetric")
    t0, diffs, n = time.time(), [], 0
    for i in range(min(20, len(records))):
        for j in range(len(records)):
            if i == j or min(len(hpcps[i]), len(hpcps[j])) <= 12:
                continue
            _, e = css(ccs(hpcps[i], hpcps[j]))
            n += 1
            if np.isfinite(e) and np.isfinite(d[i, j]):
                diffs.append(abs(float(e) - d[i, j]) / max(float(e), 1e-12))
    out["essentia_alignment"] = {"pairs": n, "pairs_per_s": round(n / (time.time() - t0), 1),
                                 "max_relative_difference_to_csi": float(max(diffs)) if diffs else None}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracks", type=int, default=120)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--manifest", type=Path)
    p.add_argument("--essentia", action="store_true")
    args = p.parse_args()
    figures = {"speed": speed(args.tracks, args.seconds, args.repeats)}
    if args.manifest:
        figures["split"] = {"manifest": str(args.manifest), **on_split(args.manifest, args.essentia)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
