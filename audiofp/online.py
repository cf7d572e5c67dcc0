"""Online augmentation (the seed's ``dynamic`` modes): training and validation pairs drawn
afresh every epoch from the recordings of a folder (split by file), degraded by noises and
room responses split the same way — generated (coloured noise, babble of the split's own
files, synthetic rooms) or read from the user's folders. A babble clip may voice the file
it is added to (dataset_gen's static pairs keep it out)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from audiofp.augment import Augmenter, list_audio_files, synthetic_room_ir
from audiofp.dataset_gen import GENERATED_IRS, split_folder_audio, generated_noises, load_mono
from audiofp.segments import PairDataset, split_files


def online_datasets(wav_dir: str | os.PathLike, segments: int = 5, train_fraction: float = 0.8,
                    ir_dir: str | os.PathLike | None = None, noise_dir: str | os.PathLike | None = None,
                    seed: int = 0) -> tuple[PairDataset, PairDataset]:
    root = Path(wav_dir)
    names = [p.relative_to(root).as_posix() for p in list_audio_files(root, "input")]
    splits = dict(zip(("train", "val"), split_files(names, train_fraction, seed)))
    noises = split_folder_audio(Path(noise_dir), "noise", train_fraction, seed) if noise_dir else None
    irs = split_folder_audio(Path(ir_dir), "IR", train_fraction, seed) if ir_dir else None
    out = []
    for k, split in enumerate(("train", "val")):
        recordings = [load_mono(root / name) for name in splits[split]]
        if noises is None:
            coloured, clips = generated_noises(split, splits[split], root, seed)
            split_noises = coloured + [clip for _, clip in clips]
        else:
            split_noises = noises[split]
        rng = np.random.default_rng((seed, 3, k))
        split_irs = irs[split] if irs else [synthetic_room_ir(rng) for _ in range(GENERATED_IRS[split])]
        out.append(PairDataset(recordings, Augmenter(split_noises, split_irs, seed=seed + k), segments, seed + k))
    return out[0], out[1]
