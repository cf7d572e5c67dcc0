"""Benchmark of coarse training (stage 3) on CPU. From the repository root:

    python3 -m tests.bench.train [--steps 12] [--threads 2] [--reference_dir DIR]

Workload: the paper configuration (conf/train/coverhunter.yaml, arXiv 2306.09025):
6 Conformer blocks, dim 128, FFN 256, batch 16, m_per_class 8, SpecAugment on, and
``chunk_frame: [1125, 900, 675]`` model frames (CQT chunks of 3375, 2700 and 2025 frames,
averaged by ``mean_size: 3``: 135, 108 and 81 s), the three chunk lengths taking turns
step by step as in training. Every rate is over whole turns (``--steps`` is rounded up to
a multiple of 3). Prints one JSON line:

- ``model_step_samples_per_s``: the bare model step (forward, losses, backward, clipping,
  AdamW) on random input, 3 × batch samples over the sum of the median step times of the
  three chunk lengths; ``model_step_samples_per_s_by_chunk`` per chunk length;
- ``train_samples_per_s``: the whole training loop (Trainer: data loading over generated
  float16 features, sampler, augmentation, step) after one warm-up turn, wall time between
  steps included, data loaded in the training process (``num_workers: 0``, the right
  setting on a 2-core CPU), and ``train_samples_per_s_1_worker`` with one DataLoader worker
  process competing for the cores;
- ``data_samples_per_s``: the same data loaders alone (with SpecAugment);
- ``train_vs_model_step``: their ratio; ``peak_rss_mb``;
- ``workload``: what was measured (chunk frames, mean_size, blocks, batch, steps, threads);
- ``reference``: the CoverHunter reference implementation's bare model step on the same
  workload, measured only when ``--reference_dir`` (or ``$CSI_COVERHUNTER_DIR``) points to a
  checkout of it (``src/model.py``); otherwise ``"not available: <reason>"`` — no figure
  is quoted that this run did not measure.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csi.models import build_model
from csi.train.config import parse_hparams
from csi.train.distributed import Context

CHUNK_FRAME = [1125, 900, 675]   # model frames (after mean_size pooling), conf/train/coverhunter.yaml
MEAN_SIZE = 3
BATCH = 16
M_PER_CLASS = 8
PAPER_MODEL = {"input_dim": 96, "embed_dim": 128, "encoder": {"output_dims": 128, "num_blocks": 6, "attention_dim": 256},
               "pool_type": "attention", "ce": {"output_dims": 64, "weight": 1.0, "gamma": 2},
               "triplet": {"margin": 0.3, "weight": 0.1}, "center": {"weight": 0.0}}


def step_times(model: torch.nn.Module, steps: int, frames: int, batch: int = BATCH) -> float:
    """Median seconds of a bare training step of ``model`` (its ``compute_loss(feats, labels)``)
    on random (batch, frames, 96) input, after two warm-up steps."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.99))
    feats = torch.randn(batch, frames, 96) * 20 - 40
    labels = torch.arange(batch) // M_PER_CLASS
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
    return statistics.median(times)


def model_step_rates(make_model, steps: int) -> tuple[float, dict[str, float]]:
    """(samples/s over one turn of the chunk lengths, samples/s per chunk length)."""
    times = {frames: step_times(make_model(), steps, frames) for frames in CHUNK_FRAME}
    return BATCH * len(times) / sum(times.values()), {str(f): round(BATCH / t, 2) for f, t in times.items()}


def reference_rate(reference_dir: str | None, steps: int) -> Any:
    """The reference model step rate on the same workload, or ``"not available: <reason>"``."""
    if not reference_dir:
        return ("not available: no CoverHunter reference checkout given (--reference_dir or "
                "$CSI_COVERHUNTER_DIR); no reference figure is quoted")
    if not (Path(reference_dir) / "src" / "model.py").is_file():
        return f"not available: {reference_dir}/src/model.py not found"
    sys.path.insert(0, str(Path(reference_dir).resolve()))
    try:
        from src.model import Model  # the reference implementation, called, not copied

        rate, by_chunk = model_step_rates(lambda: Model(json.loads(json.dumps(PAPER_MODEL))), steps)
    except Exception as e:  # noqa: BLE001 - any failure of the external code is reported, not fatal
        return f"not available: the reference model step failed: {type(e).__name__}: {' '.join(str(e).split())[:200]}"
    finally:
        sys.path.remove(str(Path(reference_dir).resolve()))
    return {"model_step_samples_per_s": round(rate, 2), "model_step_samples_per_s_by_chunk": by_chunk,
            "reference_dir": str(reference_dir)}


def make_corpus(root: Path, works: int, per_work: int = 8, frames: int = 4500) -> Path:
    """``works`` x ``per_work`` random float16 CQTs of ``frames`` frames (longer than the
    longest chunk, 3375 frames) and their full.txt."""
    rng = np.random.default_rng(0)
    lines = []
    for w in range(works):
        for v in range(per_work):
            path = root / f"w{w}v{v}.npy"
            np.save(path, (rng.uniform(-100, 0, (frames, 96))).astype(np.float16))
            lines.append({"utt": f"w{w}v{v}", "song": f"w{w}", "song_id": w, "version_id": v,
                          "feat": str(path), "feat_len": frames})
    (root / "full.txt").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return root / "full.txt"


def train_rates(root: Path, steps: int, workers: int) -> tuple[float, float]:
    """(training loop samples/s over ``steps`` steps after one warm-up turn, data loader
    samples/s over the same chunk lengths)."""
    from csi.train.trainer import Trainer

    turns = steps // len(CHUNK_FRAME) + 1
    works = max(16, 2 * turns)            # one epoch holds every measured step (no epoch-end save inside)
    full = root / "full.txt" if (root / "full.txt").exists() else make_corpus(root, works)
    hp = dict(PAPER_MODEL, train_path=str(full), chunk_frame=CHUNK_FRAME, mean_size=MEAN_SIZE,
              m_per_class=M_PER_CLASS, batch_size=BATCH, num_workers=workers,
              max_steps=steps + len(CHUNK_FRAME), max_epochs=100, log_every_steps=10 ** 6,
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
    warm = len(CHUNK_FRAME)
    train_rate = BATCH * (len(stamps) - warm) / (stamps[-1] - stamps[warm - 1])

    loaders = [group[0] for group in trainer.loaders]        # one micro-batch a step (no grad_accumulation)
    for loader in loaders:
        loader.sampler.set_epoch(1)
        loader.sampler.set_start_batch(0)
    t0, n = time.perf_counter(), 0
    for batches in zip(*loaders):
        for _, feats, _, _ in batches:
            feats = trainer.spec_augment(feats, torch.Generator().manual_seed(n))
            n += len(feats)
        if n >= BATCH * 30:
            break
    return train_rate, n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="measured steps (rounded up to a multiple of 3)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference_dir", default=os.environ.get("CSI_COVERHUNTER_DIR"),
                        help="a checkout of the CoverHunter reference (default $CSI_COVERHUNTER_DIR)")
    args = parser.parse_args()
    steps = -(-max(args.steps, 1) // len(CHUNK_FRAME)) * len(CHUNK_FRAME)
    torch.set_num_threads(args.threads)
    model_rate, by_chunk = model_step_rates(lambda: build_model(PAPER_MODEL), steps)
    with tempfile.TemporaryDirectory(prefix="csi_bench_train_") as tmp:
        train_rate, data_rate = train_rates(Path(tmp), steps, workers=0)
        train_rate_worker, _ = train_rates(Path(tmp), steps, workers=1)
    reference = reference_rate(args.reference_dir, steps)
    print(json.dumps({
        "train_samples_per_s": round(train_rate, 2),
        "train_samples_per_s_1_worker": round(train_rate_worker, 2),
        "model_step_samples_per_s": round(model_rate, 2),
        "model_step_samples_per_s_by_chunk": by_chunk,
        "data_samples_per_s": round(data_rate, 1),
        "train_vs_model_step": round(train_rate / model_rate, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": args.threads,
        "workload": {"chunk_frame": CHUNK_FRAME, "mean_size": MEAN_SIZE,
                     "cqt_chunk_frames": [c * MEAN_SIZE for c in CHUNK_FRAME],
                     "num_blocks": PAPER_MODEL["encoder"]["num_blocks"], "batch_size": BATCH,
                     "m_per_class": M_PER_CLASS, "steps": steps, "threads": args.threads},
        "reference": reference,
    }))


if __name__ == "__main__":
    main()
