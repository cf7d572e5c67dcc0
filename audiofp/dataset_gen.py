"""A static set of (anchor, positive) training pairs for fingerprinting, written to disk
(``tools.generate_training_dataset``): the same pairs on every epoch and every run.

Layout of ``out_dir``:

- ``train_set/`` and ``val_set/``: ``pairs_00000.npz``... (``shard_size`` pairs a shard) with
  arrays ``anchor`` and ``positive`` (N, segment) float16, ``file_index`` (N,) int32 — a line
  number of the split's ``files.txt`` — and ``start_s`` (N,) float64, the anchor's start in
  seconds; ``files.txt`` (one input path a line, relative to the input folder) and
  ``info.json`` (pair count, shards, rate, segment length).
- ``train_data.json`` / ``val_data.json``: each file → the start seconds of its segments.
- ``Samples/``: a few pairs as WAV files (``pair_00_anchor.wav``, ``pair_00_positive.wav``).
- ``skipped.txt``: ``path<TAB>reason`` for each file left out (shorter than one segment,
  unreadable).
- ``generate_training_dataset.yaml``: settings, summary and environment.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from audiofp.augment import (NOISE_KINDS, SEGMENT_S, SR, Augmenter, _write_wav, babble, coloured_noise,
                                     list_audio_files, synthetic_room_ir)
from audiofp.segments import SHARD_PATTERN, segment_starts, split_files
from csi.utils import atomic_write, atomic_write_text

log = logging.getLogger(__name__)

GENERATED_IRS = {"train": 64, "val": 16}
COLOURED_PER_KIND = 2          # generated noise clips of each colour, per split
BABBLE_CLIPS = 6               # generated babble clips per split
BABBLE_POOL = 16               # at most this many files of a split voice its babble
NOISE_CLIP_S = 10.0


def load_mono(path: Path) -> np.ndarray:
    from csi.io.audio import load
    return load(path, SR)[0]


def split_folder_audio(folder: Path, what: str, train_fraction: float, seed: int) -> dict[str, list[np.ndarray]]:
    """The audio of ``folder`` split by file into train and val (val reuses train's when
    the folder holds one file)."""
    from csi.io.audio import AudioError

    train, val = split_files(list_audio_files(folder, what), train_fraction, seed)
    if not val:
        log.warning("%s folder %s holds one file: validation uses it too", what, folder)
        val = train
    out = {}
    for split, paths in (("train", train), ("val", val)):
        try:
            out[split] = [load_mono(p) for p in paths]
        except AudioError as e:
            raise ValueError(f"{what} folder {folder}: {e}") from None
    return out


def generated_noises(split: str, files: list[str], root: Path, seed: int) -> tuple[list[np.ndarray], list[tuple]]:
    """Coloured noise clips, and babble clips of up to BABBLE_POOL files of the split with
    the set of files voicing each (a file's own voice is kept out of its noises)."""
    rng = np.random.default_rng((seed, 2, 0 if split == "train" else 1))
    n = int(NOISE_CLIP_S * SR)
    coloured = [coloured_noise(rng, n, SR, kind) for kind in NOISE_KINDS for _ in range(COLOURED_PER_KIND)]
    clips = []
    if len(files) >= 2:
        pool_names = [files[i] for i in sorted(rng.choice(len(files), min(BABBLE_POOL, len(files)), replace=False))]
        pool = {name: load_mono(root / name) for name in pool_names}
        for _ in range(BABBLE_CLIPS):
            voices = min(int(rng.integers(3, 7)), len(pool_names) - 1)   # each clip leaves a file out
            names = [pool_names[i] for i in rng.choice(len(pool_names), voices, replace=False)]
            clips.append((set(names), babble(rng, [pool[k] for k in names], n, voices=len(names))))
    return coloured, clips


def _flush(split_dir: Path, shard: int, buffer: dict[str, list]) -> int:
    """Write the buffered pairs as shard ``shard`` (temporary name, then os.replace)."""
    atomic_write(split_dir / SHARD_PATTERN.format(shard),
                 lambda f: np.savez(f, anchor=np.stack(buffer["anchor"]).astype(np.float16),
                                    positive=np.stack(buffer["positive"]).astype(np.float16),
                                    file_index=np.asarray(buffer["file"], dtype=np.int32),
                                    start_s=np.asarray(buffer["start_s"])))
    for values in buffer.values():
        values.clear()
    return shard + 1


def generate(input_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None, segments: int = 5,
             train_fraction: float = 0.8, ir_dir: str | os.PathLike | None = None,
             noise_dir: str | os.PathLike | None = None, seed: int = 0, progress: bool = True, samples: int = 4,
             shard_size: int = 1000, snr_db: tuple[float, float] = (0.0, 10.0), p_reverb: float = 0.8,
             max_offset_s: float = 0.2) -> dict:
    """Cut ``segments`` random whole 1-s segments from every audio file under ``input_dir``
    (recursively; files split train/val by ``train_fraction``), degrade each into a positive
    (:class:`Augmenter`) and write the layout above to ``out_dir`` (default
    ``./Dataset_<number of files>``). Without ``ir_dir`` / ``noise_dir`` the IRs and noises
    are synthesised (room IRs; white, pink, brown noise and babble of other files of the
    split); with them, their files are split train/val like the recordings. Returns a
    summary. ValueError on bad input, before anything is written."""
    from csi.utils import progress_bar

    from csi.env import write_run_info
    from csi.io.audio import AudioError, probe

    root = Path(input_dir)
    paths = list_audio_files(root, "input")
    for folder, what in ((noise_dir, "noise"), (ir_dir, "IR")):
        if folder is not None:
            list_audio_files(folder, what)
    if segments < 1 or shard_size < 1 or not 0.0 < train_fraction < 1.0:
        raise ValueError(f"need segments >= 1, shard_size >= 1, 0 < train_fraction < 1; got {segments}, "
                         f"{shard_size}, {train_fraction}")
    seg = int(round(SEGMENT_S * SR))
    skipped, usable = {}, []
    for path in paths:
        name = path.relative_to(root).as_posix()
        try:
            info = probe(path)
        except AudioError as e:
            skipped[name] = str(e)
            continue
        if info.frames * SR // info.samplerate < seg:
            skipped[name] = f"shorter than one segment ({info.duration:.3f} s < {SEGMENT_S:g} s)"
        else:
            usable.append(name)
    if not usable:
        raise ValueError(f"input folder {root}: no audio file of at least one segment ({SEGMENT_S:g} s) "
                         f"among {len(paths)}")
    out = Path(out_dir) if out_dir is not None else Path.cwd() / f"Dataset_{len(paths)}"
    split = dict(zip(("train", "val"), split_files(usable, train_fraction, seed)))
    irs = (split_folder_audio(Path(ir_dir), "IR", train_fraction, seed) if ir_dir is not None else
           {s: [synthetic_room_ir(np.random.default_rng((seed, 1, k)), SR) for _ in range(GENERATED_IRS[s])]
            for k, s in enumerate(("train", "val"))})
    given = split_folder_audio(Path(noise_dir), "noise", train_fraction, seed) if noise_dir is not None else None
    index = {name: i for i, name in enumerate(sorted(usable))}
    bar = progress_bar(total=len(usable), desc="pairs", unit="file", disable=not progress, file=sys.stderr)
    counts, sample_pairs = {}, []
    for s, files in split.items():
        noises, clips = (given[s], []) if given is not None else generated_noises(s, files, root, seed)
        aug = Augmenter(noises, irs[s], snr_db=snr_db, p_reverb=p_reverb, max_offset_s=max_offset_s, seed=seed)
        split_dir = out / f"{s}_set"
        split_dir.mkdir(parents=True, exist_ok=True)
        for old in split_dir.glob("pairs_*.npz"):
            old.unlink()
        buffer = {"anchor": [], "positive": [], "file": [], "start_s": []}
        shard, pairs, starts_map = 0, 0, {}
        for k, name in enumerate(files):
            bar.update(1)
            try:
                audio = load_mono(root / name)
            except AudioError as e:
                skipped[name] = str(e)
                continue
            rng = np.random.default_rng((seed, 3, index[name]))
            starts = segment_starts(audio.size, segments, SR, rng)
            if not starts:
                skipped[name] = f"shorter than one segment once decoded ({audio.size / SR:.3f} s)"
                continue
            own = noises + [clip for voices, clip in clips if name not in voices]
            for i, start in enumerate(starts):
                anchor, positive = aug(audio, start, rng, noises=own)
                for key, value in (("anchor", anchor), ("positive", positive), ("file", k), ("start_s", start / SR)):
                    buffer[key].append(value)
                if i == 0 and len(sample_pairs) < samples:
                    sample_pairs.append((anchor, positive))
                if len(buffer["anchor"]) == shard_size:
                    shard = _flush(split_dir, shard, buffer)
            pairs += len(starts)
            starts_map[name] = [start / SR for start in starts]
        if buffer["anchor"]:
            shard = _flush(split_dir, shard, buffer)
        atomic_write_text(split_dir / "files.txt", "".join(f"{name}\n" for name in files))
        atomic_write_text(split_dir / "info.json", json.dumps({"pairs": pairs, "shards": shard, "sr": SR,
                                                                "segment_samples": seg}, indent=1) + "\n")
        atomic_write_text(out / f"{s}_data.json", json.dumps(starts_map, indent=1) + "\n")
        counts[s] = {"files": len(starts_map), "pairs": pairs, "shards": shard, "noises": len(noises),
                     "babble": len(clips), "irs": len(irs[s])}
    bar.close()
    for i, (anchor, positive) in enumerate(sample_pairs):
        _write_wav(out / "Samples" / f"pair_{i:02d}_anchor.wav", anchor, SR, "FLOAT")
        _write_wav(out / "Samples" / f"pair_{i:02d}_positive.wav", positive, SR, "FLOAT")
    atomic_write_text(out / "skipped.txt", "".join(f"{name}\t{why}\n" for name, why in sorted(skipped.items())))
    summary = {"out_dir": str(out), "files": len(paths), "skipped": len(skipped), **counts,
               "noises": str(noise_dir) if noise_dir is not None else "generated",
               "irs": str(ir_dir) if ir_dir is not None else "generated"}
    config = {"input_dir": str(root), "out_dir": str(out), "segments": segments, "train_fraction": train_fraction,
              "ir_dir": None if ir_dir is None else str(ir_dir), "noise_dir": None if noise_dir is None else str(noise_dir),
              "seed": seed, "sr": SR, "segment_s": SEGMENT_S, "shard_size": shard_size, "snr_db": list(snr_db),
              "p_reverb": p_reverb, "max_offset_s": max_offset_s}
    write_run_info(out / "generate_training_dataset.yaml", config, summary=summary)
    return summary
