"""Benchmark of coarse training (stage 3) on CPU. From the repository root:

    python3 -m tests.bench.train [--steps 12] [--threads 2]

Paper configuration: 6 Conformer blocks, dim 128, FFN 256, batch 16, chunks of 1125 CQT
frames averaged by mean_size 3 to 375 model frames (``chunk_frame: [375]``), m_per_class 8,
SpecAugment on. Prints one JSON line:
- ``model_step_samples_per_s``: the bare model step (forward, losses, backward, clipping,
  AdamW) on random input, median step time;
- ``train_samples_per_s``: the whole training loop (Trainer: data loading over generated
  float16 features, sampler, augmentation, step) over the steps after the first two, wall
  time between steps included; data loaded in the training process (``num_workers: 0``,
  the right setting on a 2-core CPU: loading costs ~4% of a step), and
  ``train_samples_per_s_1_worker`` with one DataLoader worker process competing for the
  two cores;
- ``data_samples_per_s``: the same data loader alone;
- ``train_vs_model_step``: their ratio (target >= 0.9); ``peak_rss_mb``.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from csi.models import build_model
from csi.train.config import parse_hparams
from csi.train.distributed import Context

PAPER_MODEL = {"input_dim": 96, "embed_dim": 128, "encoder": {"output_dims": 128, "num_blocks": 6, "attention_dim": 256},
               "pool_type": "attention", "ce": {"output_dims": 64, "weight": 1.0, "gamma": 2},
               "triplet": {"margin": 0.3, "weight": 0.1}, "center": {"weight": 0.0}}


def model_step_rate(steps: int, batch: int = 16, frames: int = 375) -> float:
    model = build_model(PAPER_MODEL).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.99))
    feats = torch.randn(batch, frames, 96) * 20 - 40
    labels = torch.arange(batch) // 8
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        total, _ = model.compute_loss(feats, labels)
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def make_corpus(root: Path, works: int = 16, per_work: int = 8, frames: int = 4500) -> Path:
    import json as _json
    rng = np.random.default_rng(0)
    lines = []
    for w in range(works):
        for v in range(per_work):
            path = root / f"w{w}v{v}.npy"
            np.save(path, (rng.uniform(-100, 0, (frames, 96))).astype(np.float16))
            lines.append({"utt": f"w{w}v{v}", "song": f"w{w}", "song_id": w, "version_id": v,
                          "feat": str(path), "feat_len": frames})
    (root / "full.txt").write_text("".join(_json.dumps(r) + "\n" for r in lines))
    return root / "full.txt"


def train_rates(root: Path, steps: int, workers: int) -> tuple[float, float]:
    from csi.train.trainer import Trainer

    full = root / "full.txt" if (root / "full.txt").exists() else make_corpus(root)
    hp = dict(PAPER_MODEL, train_path=str(full), chunk_frame=[375], mean_size=3, m_per_class=8, batch_size=16,
              num_workers=workers, max_steps=steps + 2, max_epochs=100, log_every_steps=10 ** 6,
              spec_augmentation={"random_erase": {"prob": 0.5, "erase_num": 4},
                                 "roll_pitch": {"prob": 0.5, "shift_num": 12}})
    trainer = Trainer(root / f"exp{workers}", Context(0, 1, 0, torch.device("cpu")), parse_hparams(hp))
    stamps = []
    step = trainer._step

    def timed(batch):
        out = step(batch)
        stamps.append(time.perf_counter())
        return out
    trainer._step = timed
    trainer.train()
    train_rate = 16 * (len(stamps) - 2) / (stamps[-1] - stamps[1])

    loader = trainer.loaders[0]
    loader.sampler.set_epoch(1)
    loader.sampler.set_start_batch(0)
    t0, n = time.perf_counter(), 0
    for _, feats, _, _ in loader:
        feats = trainer.spec_augment(feats, torch.Generator().manual_seed(n))
        n += len(feats)
        if n >= 16 * 40:
            break
    return train_rate, n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model_rate = model_step_rate(args.steps)
    with tempfile.TemporaryDirectory(prefix="csi_bench_train_") as tmp:
        train_rate, data_rate = train_rates(Path(tmp), args.steps, workers=0)
        train_rate_worker, _ = train_rates(Path(tmp), args.steps, workers=1)
    print(json.dumps({
        "train_samples_per_s": round(train_rate, 2),
        "train_samples_per_s_1_worker": round(train_rate_worker, 2),
        "model_step_samples_per_s": round(model_rate, 2),
        "data_samples_per_s": round(data_rate, 1),
        "train_vs_model_step": round(train_rate / model_rate, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
