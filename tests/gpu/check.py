"""The GPU check (``bash tests/gpu/check.sh``, see there). Each part reports its figures and
``ok``; the exit status is 1 when a part is not ok, 0 when all are (or when skipped).
``--device cpu`` runs the same parts on the CPU (NCCL aside), so that the script itself is
tested where no GPU is (tests/gpu/test_check.py)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
DEVICE = "cuda"
CQT_TOLERANCE_DB = 0.01            # GPU vs CPU, bins above -80 dB (float32 FFTs differ in rounding)
DISTANCE_TOLERANCE = 1e-4
TRACKS = 3000                      # of the distance check

def tone_batch(n: int, seconds: float, sr: int, seed: int = 0) -> torch.Tensor:
    """n clips of random harmonic notes with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    clips = []
    for _ in range(n):
        f = 110 * 2 ** (rng.integers(0, 36, size=int(seconds * 2)) / 12)
        freq = np.repeat(f, len(t) // len(f) + 1)[: len(t)]
        phase = 2 * np.pi * np.cumsum(freq) / sr
        clips.append(0.3 * (np.sin(phase) + 0.5 * np.sin(2 * phase)) + 0.01 * rng.standard_normal(len(t)))
    return torch.tensor(np.stack(clips), dtype=torch.float32)


def synchronize() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int = 3) -> tuple[object, float]:
    """fn's result and its median wall time (synchronised), after one warm-up call."""
    out = fn()
    times = []
    for _ in range(repeats):
        synchronize()
        t0 = time.perf_counter()
        out = fn()
        synchronize()
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))


def check_cqt() -> dict:
    from csi.features.cqt import CoverHunterCQT

    audio = tone_batch(8, 30.0, 16000)
    cpu = CoverHunterCQT()
    gpu = CoverHunterCQT().to(DEVICE)
    t0 = time.perf_counter()
    ref = cpu(audio)
    cpu_s = time.perf_counter() - t0
    out, gpu_s = timed(lambda: gpu(audio.to(DEVICE)))
    out = out.cpu()
    loud = ref > -80
    err = float((out - ref).abs()[loud].max())
    return {"ok": err <= CQT_TOLERANCE_DB, "clips": 8, "clip_s": 30, "max_abs_db_above_-80": round(err, 5),
            "cpu_rtf": round(240 / cpu_s, 1), "gpu_rtf": round(240 / gpu_s, 1), "gpu_vs_cpu": round(cpu_s / gpu_s, 1)}


def _tiny_training(root: Path, **extra) -> Path:
    from tests.csi.train.test_train import make_features, tiny_hparams

    full = root / "data" / "full.txt"
    if not full.exists():
        make_features(root / "data", n_works=16)
    exp = root / f"exp_{len(list(root.glob('exp_*')))}"
    (exp / "config").mkdir(parents=True)
    hp = tiny_hparams(full, device=DEVICE, amp=True, num_workers=2, log_every_steps=10, **extra)
    (exp / "config" / "hparams.yaml").write_text(yaml.safe_dump(hp))
    return exp


def _train(exp: Path, launcher: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="2")
    t0 = time.perf_counter()
    r = subprocess.run([*launcher, "-m", "tools.train", str(exp)], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=240)
    return r, time.perf_counter() - t0


def check_amp_training(root: Path) -> dict:
    """tools.train on the GPU with AMP (GradScaler, float16 autocast): finite losses, a saved model."""
    exp = _tiny_training(root, max_epochs=4)
    r, wall = _train(exp, [sys.executable])
    from csi.train.curves import HISTORY_NAME

    history = json.loads((exp / HISTORY_NAME).read_text()) if (exp / HISTORY_NAME).exists() else []
    losses = [h.get("total") for h in history]
    ok = r.returncode == 0 and bool(losses) and all(np.isfinite(losses)) and "non-finite loss" not in r.stderr
    return {"ok": ok, "epochs": len(losses), "loss_first": losses[0] if losses else None,
            "loss_last": losses[-1] if losses else None, "wall_s": round(wall, 1),
            **({} if ok else {"stderr_tail": r.stderr[-1500:]})}


def check_nccl(root: Path) -> dict:
    """DDP over every device (torchrun, NCCL): the ranks end with identical parameters. With one
    device, a one-rank NCCL group all-reduces instead (two ranks cannot share a GPU in NCCL)."""
    n = torch.cuda.device_count()
    if n >= 2:
        exp = _tiny_training(root, max_epochs=2)
        r, wall = _train(exp, [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n),
                               "--master_port", "29533"])
        ok = r.returncode == 0 and f"parameters identical on all {n} ranks" in r.stderr
        return {"ok": ok, "devices": n, "ddp_wall_s": round(wall, 1), **({} if ok else {"stderr_tail": r.stderr[-1500:]})}
    code = ("import os, torch, torch.distributed as d\n"
            "d.init_process_group('nccl', rank=0, world_size=1, init_method='tcp://127.0.0.1:29534')\n"
            "x = torch.ones(1 << 20, device='cuda'); d.all_reduce(x); torch.cuda.synchronize()\n"
            "print(float(x.sum())); d.destroy_process_group()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    ok = r.returncode == 0 and r.stdout.strip() == str(float(1 << 20))
    return {"ok": ok, "devices": n, "note": "one device: a one-rank NCCL all-reduce (DDP needs two)",
            **({} if ok else {"stderr_tail": r.stderr[-1500:]})}


def check_distances() -> dict:
    """The evaluation's track distances (mean and best_pairs) on the GPU against the CPU."""
    from csi.scoring.distance import ChunkDistances

    rng = np.random.default_rng(0)
    tracks, chunks, dim = TRACKS, 12, 128
    emb = rng.standard_normal((tracks * chunks, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    owner = np.repeat(np.arange(tracks), chunks)
    out = {}
    ok = True
    for mode in ("mean", "best_pairs"):
        cpu_t0 = time.perf_counter()
        ref = ChunkDistances(emb, owner, tracks, mode=mode, device="cpu").full()
        cpu_s = time.perf_counter() - cpu_t0
        got, gpu_s = timed(lambda: ChunkDistances(emb, owner, tracks, mode=mode, device=DEVICE).full(), repeats=2)
        finite = np.isfinite(ref)
        err = float(np.abs(got[finite] - ref[finite]).max())
        ok &= err <= DISTANCE_TOLERANCE
        out[mode] = {"max_abs_diff": err, "cpu_s": round(cpu_s, 3), "gpu_s": round(gpu_s, 3),
                     "gpu_vs_cpu": round(cpu_s / gpu_s, 1)}
    return {"ok": ok, "tracks": tracks, "chunks_per_track": chunks, **out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="also write the JSON line here")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu: the same parts on the CPU, to test this script (NCCL skipped)")
    parser.add_argument("--tracks", type=int, default=3000, help="tracks of the distance check")
    args = parser.parse_args(argv)
    global DEVICE, TRACKS
    DEVICE, TRACKS = args.device, args.tracks
    if DEVICE == "cuda" and not torch.cuda.is_available():
        figures = {"skipped": f"no CUDA device (torch {torch.__version__}, cuda build: {torch.version.cuda})"}
    else:
        figures = {"device": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu",
                   "devices": torch.cuda.device_count(), "torch": torch.__version__, "cuda": torch.version.cuda}
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            parts = [("cqt", check_cqt), ("amp_training", lambda: check_amp_training(Path(tmp))),
                     ("nccl", lambda: check_nccl(Path(tmp))), ("distances", check_distances)]
            for name, part in parts if DEVICE == "cuda" else [p for p in parts if p[0] != "nccl"]:
                try:
                    figures[name] = part()
                except Exception as e:          # one broken part must not hide the others' figures
                    figures[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:1500]}
        figures["wall_s"] = round(time.perf_counter() - t0, 1)
        figures["ok"] = all(v.get("ok") for v in figures.values() if isinstance(v, dict))
    line = json.dumps(figures)
    print(line)
    if args.out:
        args.out.write_text(line + "\n")
    return 0 if figures.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
