"""Benchmark of the training data pipeline. Run from the repository root:

    python3 -m tests.bench.data_pipeline [--recordings 200] [--batches 150] [--tempo_stretch]

Writes ``--recordings`` random 3-minute CQTs (4500 frames × 96 bins, float16, as stage 2
stores them) to a temporary directory, then reads them the way training does: ChunkDataset
(chunk 1125 frames, mean_size 3, SpecAugment per item, optional online tempo stretch) under
an M-per-class sampler (batch 16, m_per_class 4) through a DataLoader. Torch runs one
thread per process, so the numbers are per core. Prints one JSON line:

- ``data_samples_per_s``: samples per second through the DataLoader for the best worker
  count tried, and ``workers``: that count; ``by_workers``: the rate for each count (0 and 1);
- ``getitem_per_s``: ``dataset[i]`` calls per second in this process (no DataLoader), and
  ``getitem_no_aug_per_s`` without SpecAugment;
- ``batch_specaug_samples_per_s``: samples per second of SpecAugment applied to whole
  (16, 375, 96) batches, the alternative to per-item augmentation.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from csi.data.dataset import ChunkDataset, collate
from csi.data.sampler import MPerClassSampler
from csi.data.specaug import SpecAugment

FRAMES = 4500          # 3 minutes at 25 frames/s
BINS = 96
CHUNK = 1125
MEAN_SIZE = 3
BATCH = 16
M_PER_CLASS = 4
SPEC_AUGMENT = {"random_erase": {"prob": 0.5, "erase_num": 4}, "roll_pitch": {"prob": 0.5, "shift_num": 12}}


def write_corpus(root: Path, recordings: int, versions_per_song: int = 4) -> list[dict]:
    rng = np.random.default_rng(0)
    records = []
    for i in range(recordings):
        path = root / f"utt{i:04d}.cqt.npy"
        np.save(path, rng.uniform(-100, 0, size=(FRAMES, BINS)).astype(np.float16))
        records.append({"utt": f"utt{i:04d}", "song": f"song{i // versions_per_song}",
                        "song_id": i // versions_per_song, "version_id": i % versions_per_song,
                        "feat": str(path), "feat_len": FRAMES})
    return records


def loader_rate(dataset: ChunkDataset, workers: int, batches: int) -> float:
    """Samples per second over ``batches`` batches, after one warm-up batch (worker start-up)."""
    sampler = MPerClassSampler(dataset.labels, M_PER_CLASS, BATCH, seed=0)
    done, epoch, start = 0, 0, None
    while done < batches:
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=BATCH, sampler=sampler, num_workers=workers,
                            collate_fn=collate)
        for _, feats, _, _ in loader:
            assert feats.shape == (BATCH, CHUNK // MEAN_SIZE, BINS)
            if start is None:
                start = time.perf_counter()
                continue
            done += 1
            if done == batches:
                break
        epoch += 1
    return batches * BATCH / (time.perf_counter() - start)


def getitem_rate(dataset: ChunkDataset, items: int) -> float:
    for i in range(20):
        dataset[i]
    start = time.perf_counter()
    for i in range(items):
        dataset[i % len(dataset)]
    return items / (time.perf_counter() - start)


def batch_specaug_rate(repeats: int = 50) -> float:
    aug = SpecAugment.from_config(SPEC_AUGMENT)
    feats = torch.rand(BATCH, CHUNK // MEAN_SIZE, BINS) * -100
    generator = torch.Generator().manual_seed(0)
    aug(feats, generator)
    start = time.perf_counter()
    for _ in range(repeats):
        aug(feats, generator)
    return repeats * BATCH / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recordings", type=int, default=200)
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--tempo_stretch", action="store_true", help="online tempo stretch in [0.8, 1.2]")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    stretch = (0.8, 1.2) if args.tempo_stretch else None
    with tempfile.TemporaryDirectory(prefix="csi_bench_data_") as tmp:
        records = write_corpus(Path(tmp), args.recordings)
        aug = SpecAugment.from_config(SPEC_AUGMENT)
        dataset = ChunkDataset(records, CHUNK, MEAN_SIZE, spec_augment=aug, tempo_stretch=stretch)
        plain = ChunkDataset(records, CHUNK, MEAN_SIZE, tempo_stretch=stretch)
        by_workers = {w: loader_rate(dataset, w, args.batches) for w in (0, 1)}
        best = max(by_workers, key=by_workers.get)
        result = {
            "data_samples_per_s": round(by_workers[best], 1),
            "workers": best,
            "by_workers": {str(w): round(r, 1) for w, r in by_workers.items()},
            "getitem_per_s": round(getitem_rate(dataset, 2000), 1),
            "getitem_no_aug_per_s": round(getitem_rate(plain, 2000), 1),
            "batch_specaug_samples_per_s": round(batch_specaug_rate(), 1),
            "chunk_frames": CHUNK, "mean_size": MEAN_SIZE, "batch_size": BATCH,
            "m_per_class": M_PER_CLASS, "recordings": args.recordings,
            "tempo_stretch": list(stretch) if stretch else None,
        }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
