"""Stage 2: manifest → augmented CQT features + ``full.txt`` (CoverHunter's
``tools/extract_csi_features.py`` outputs and file names, computed in memory).

For every recording of ``dataset.txt`` and every tempo factor k of ``aug_speed_mode`` one
utterance is produced (``sp_<k>-<utt>`` for k != 1, ``dur_s`` divided by k): decode once,
resample to 16 kHz, tempo change, optional pitch shift / reverb / volume / noise, CQT,
store. Random choices come from a generator seeded by (seed, utt), so the output does not
depend on ``nj``, on the number of ranks or on the order of work. Finished features are
reused (resume); unusable recordings go to ``bad.txt``.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import sys
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from csi.utils import progress_bar

from csi.io import tempo_copy
from csi.config import to_dict
from csi.features import augment
from csi.features.config import FeatureConfig
from csi.features.store import FeatureStore, NonFiniteFeatureError, source_signature, stable_hash
from csi.io.audio import AudioError, load
from csi.io.manifest import Record, read_manifest
from csi.utils import SILENCE_PEAK, resolve_device



tempo_utt = tempo_copy.make   # CoverHunter's name for a tempo copy: ``sp_0.8-<utt>``

@dataclass
class Outcome:
    """What happened to one source recording: its produced records, or why it was left out."""
    source_utt: str
    records: list[Record]
    bad_reason: str | None = None
    audio_s: float = 0.0   # produced audio seconds (for throughput figures)
    computed: int = 0      # features computed now (the others were already stored)


class Extractor:
    """Turns one manifest record into its augmented features (one worker's state)."""

    def __init__(self, cfg: FeatureConfig, store_root: str | os.PathLike):
        from csi.features.frontend import resolve_frontend

        self.cfg = cfg
        self.device = str(resolve_device(cfg.device))
        self.frontend = resolve_frontend(cfg.frontend, cfg.sr).build(self.device)  # at the feature rate sr
        self.store = FeatureStore(store_root, fingerprint(cfg), cfg.feat_dtype)
        self.hop_s = float(getattr(self.frontend, "hop_s", 0.04))
        self.noise_files = _manifest_wavs(cfg.add_noise.noise_path) if cfg.add_noise else []
        self.ir_files = _manifest_wavs(cfg.reverb.ir_path) if cfg.reverb and cfg.reverb.ir_path else []

    def plan(self, utt: str) -> dict[str, Any]:
        """The random choices for ``utt`` (everything but sample-level draws), from its own seed."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, stable_hash(utt)])
        plan: dict[str, Any] = {"seed": int(rng.integers(2 ** 31))}
        if cfg.pitch_shift and rng.random() < cfg.pitch_shift.prob:
            plan["pitch_semitones"] = float(rng.choice(cfg.pitch_shift.semitones))
        if cfg.reverb and rng.random() < cfg.reverb.prob:
            plan["reverb_rt60_s"] = round(float(rng.uniform(*cfg.reverb.rt60_s)), 3)
            if self.ir_files:
                plan["reverb_ir"] = self.ir_files[int(rng.integers(len(self.ir_files)))]
        if cfg.volume and rng.random() < cfg.volume.prob:
            plan["volume"] = True
        if cfg.add_noise:
            plan["noise_wav"] = self.noise_files[int(rng.integers(len(self.noise_files)))]
            plan["noise_snr_db"] = round(float(rng.uniform(*cfg.add_noise.snr_db)), 2)
        return plan

    def augment(self, y: np.ndarray, vocoder: augment.PhaseVocoder | None, factor: float,
                plan: dict[str, Any]) -> np.ndarray:
        """Tempo change (with the recording's shared vocoder), then the planned augmentations."""
        cfg, sr = self.cfg, self.cfg.sr
        rng = np.random.default_rng(plan["seed"])
        if abs(factor - 1.0) > 1e-9:
            y = vocoder.stretch(factor)
        if "pitch_semitones" in plan:
            y = augment.pitch_shift(y, plan["pitch_semitones"], sr)
        if "reverb_rt60_s" in plan:
            ir = (augment.load_cached(plan["reverb_ir"], sr) if "reverb_ir" in plan
                  else augment.synthetic_ir(rng, sr, plan["reverb_rt60_s"]))
            y = augment.reverberate(y, ir)
        if plan.get("volume"):
            y = augment.volume_envelope(y, rng, sr, tuple(cfg.volume.gain_db), cfg.volume.segment_s)
        if "noise_wav" in plan:
            noise = augment.load_cached(plan["noise_wav"], sr)
            y = augment.add_noise(y, noise, plan["noise_snr_db"], rng, cfg.add_noise.prob,
                                  int(cfg.add_noise.chunk * sr))
        return y

    @torch.inference_mode()
    def features(self, y: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(self.device)
        return self.frontend(x).cpu().numpy()

    def __call__(self, rec: Record) -> Outcome:
        cfg = self.cfg
        wanted = [(k, tempo_utt(rec["utt"], k)) for k in cfg.aug_speed_mode]
        source = source_signature(rec["wav"])  # another or changed audio file: computed again
        stored = {utt: self.store.length(utt, source) for _, utt in wanted}
        y = None
        if any(n is None for n in stored.values()):
            try:
                y, _ = load(rec["wav"], cfg.sr)
            except AudioError as e:
                return Outcome(rec["utt"], [], f"{e}")
            peak = float(np.max(np.abs(y)))
            if peak < SILENCE_PEAK:
                return Outcome(rec["utt"], [], f"silent: peak {20 * math.log10(max(peak, 1e-12)):.1f} dBFS")
            if len(y) < cfg.min_dur_s * cfg.sr:
                return Outcome(rec["utt"], [], f"too short: {len(y) / cfg.sr:.2f} s < min_dur_s {cfg.min_dur_s} s")
        out, audio_s, computed = [], 0.0, 0
        vocoder = None  # one STFT of the recording serves every tempo factor
        for factor, utt in wanted:
            plan = self.plan(utt)
            n_frames = stored[utt]
            if n_frames is None:
                try:
                    if vocoder is None and abs(factor - 1.0) > 1e-9:
                        vocoder = augment.PhaseVocoder(y)
                    z = self.augment(y, vocoder, factor, plan)
                    feat = self.features(z)
                except Exception as e:  # a defect on one file must not end a long run
                    return Outcome(rec["utt"], [], f"feature extraction failed: {type(e).__name__}: {e}")
                try:
                    self.store.save(utt, feat, source)
                except NonFiniteFeatureError as e:   # stored nothing; the recording goes to bad.txt
                    return Outcome(rec["utt"], [], str(e))
                n_frames, computed = len(feat), computed + 1
                audio_s += len(z) / cfg.sr
            new = dict(rec)
            new["utt"] = utt
            base_dur = rec.get("dur_s") or (len(y) / cfg.sr if y is not None else n_frames * self.hop_s * factor)
            new["dur_s"] = round(float(base_dur) / factor, 3)
            new["feat"] = str(self.store.path(utt))
            new["feat_len"] = n_frames
            aug = {k: v for k, v in plan.items() if k != "seed"}
            if factor != 1.0:
                aug = {"tempo": factor, **aug}
            if aug:
                new["aug"] = aug
            out.append(new)
        return Outcome(rec["utt"], out, None, audio_s, computed)


def fingerprint(cfg: FeatureConfig) -> dict[str, Any]:
    """The settings that determine a stored feature (tempo list and device excluded:
    each utt's own name carries its tempo, and the device does not change results)."""
    d = to_dict(cfg)
    d.pop("aug_speed_mode")
    d.pop("device")
    d.pop("min_dur_s")
    return d


def run(records: list[Record], cfg: FeatureConfig, store_root: str | os.PathLike, nj: int = 1,
        progress: bool = True) -> Iterator[Outcome]:
    """Process ``records`` with ``nj`` worker processes; outcomes come in input order."""
    per_source = sum(1 / k for k in cfg.aug_speed_mode)
    bar = progress_bar(total=sum(float(r.get("dur_s") or 0) for r in records) * per_source, unit="audio-s", desc="features", disable=not progress,
               dynamic_ncols=True, file=sys.stderr, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}]")
    # One torch thread per worker: results are then bit-identical whatever nj is, and
    # one thread per process scales better than threads that wait on each other.
    threads_before = torch.get_num_threads()
    _init_worker(cfg, store_root)  # here first: a bad config fails in this process, not in the pool
    if nj <= 1:
        results = map(_work, records)
        pool = None
    else:
        context = multiprocessing.get_context("spawn" if resolve_device(cfg.device).type != "cpu" else "fork")
        pool = context.Pool(nj, initializer=_init_worker, initargs=(cfg, store_root))
        results = pool.imap(_work, records, chunksize=1)
    try:
        for rec, outcome in zip(records, results):
            bar.update(float(rec.get("dur_s") or 0) * per_source)
            yield outcome
    finally:
        bar.close()
        torch.set_num_threads(threads_before)
        if pool is not None:
            pool.terminate()
            pool.join()


_WORKER: Extractor | None = None


def _init_worker(cfg: FeatureConfig, store_root: str | os.PathLike) -> None:
    global _WORKER
    torch.set_num_threads(1)
    _WORKER = Extractor(cfg, store_root)


def _work(rec: Record) -> Outcome:
    assert _WORKER is not None
    return _WORKER(rec)


def _manifest_wavs(path: str) -> list[str]:
    files = [r["wav"] for r in read_manifest(path, required=("wav",))]
    if not files:
        raise ValueError(f"{path}: no recordings")
    return files


def read_dataset(path: str | os.PathLike) -> list[Record]:
    """The feature stage's input: a manifest whose every line has ``utt``, ``wav`` and ``song``."""
    return read_manifest(path, required=("utt", "wav", "song"))

