"""Tests of the training data pipeline: chunk dataset, M-per-class sampler, SpecAugment."""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from csi.data.dataset import ChunkDataset, chunk_starts, collate, load_chunk
from csi.data.sampler import MPerClassSampler
from csi.data.specaug import SpecAugment

BINS = 96
PAD = -100.0


def frame_ramp(frames: int) -> np.ndarray:
    """A feature whose frame t holds -t/8 in every bin (exact in float16 for t < 800)."""
    return np.repeat(-(np.arange(frames, dtype=np.float32) / 8.0)[:, None], BINS, axis=1)


def write_records(root: Path, lengths: list[int], songs: list[int], ramp: bool = True,
                  seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    records = []
    for i, (n, song) in enumerate(zip(lengths, songs)):
        feat = frame_ramp(n) if ramp else rng.uniform(-100, 0, size=(n, BINS))
        path = root / f"u{i}.npy"
        np.save(path, feat.astype(np.float16))
        records.append({"utt": f"u{i}", "song": f"s{song}", "song_id": song, "version_id": i,
                        "feat": str(path), "feat_len": n})
    return records


def start_of(chunk: torch.Tensor) -> int:
    return int(round(-float(chunk[0, 0]) * 8))


SPEC_CFG = {"random_erase": {"prob": 0.5, "erase_num": 4}, "roll_pitch": {"prob": 0.5, "shift_num": 12}}


# -- dataset ---------------------------------------------------------------------------
def test_random_chunk_within_bounds(tmp_path):
    records = write_records(tmp_path, [200], [0])
    ds = ChunkDataset(records, chunk_frames=64, train=True)
    starts = set()
    for epoch in range(60):
        ds.set_epoch(epoch)
        utt, feat, label, ok = ds[0]
        assert (utt, label, ok) == ("u0", 0, True)
        assert feat.dtype == torch.float32 and feat.shape == (64, BINS)
        start = start_of(feat)
        assert 0 <= start < 200 - 64
        expected = torch.from_numpy(frame_ramp(200)[start:start + 64])
        assert torch.equal(feat, expected)
        starts.add(start)
    assert len(starts) > 20


def test_short_recording_is_padded(tmp_path):
    records = write_records(tmp_path, [50], [0])
    ds = ChunkDataset(records, chunk_frames=80)
    _, feat, _, _ = ds[0]
    assert feat.shape == (80, BINS)
    assert torch.equal(feat[:50], torch.from_numpy(frame_ramp(50)))
    assert torch.all(feat[50:] == PAD)


def test_mean_size_pooling(tmp_path):
    records = write_records(tmp_path, [30], [0])
    ds = ChunkDataset(records, chunk_frames=10, mean_size=3)
    _, feat, _, _ = ds[0]
    assert feat.shape == (3, BINS)
    start = int(round(-float(feat[0, 0]) * 8)) - 1      # mean of frames s, s+1, s+2 is -(s+1)/8
    ramp = frame_ramp(30)
    for j in range(3):
        np.testing.assert_allclose(feat[j].numpy(), ramp[start + 3 * j:start + 3 * j + 3].mean(0), atol=1e-6)


def test_reproducible_by_seed_and_epoch(tmp_path):
    records = write_records(tmp_path, [300] * 4, [0, 0, 1, 1], ramp=False)
    aug = SpecAugment.from_config(SPEC_CFG)

    def items(seed: int, epoch: int) -> list[torch.Tensor]:
        ds = ChunkDataset(records, 90, mean_size=3, spec_augment=aug, tempo_stretch=(0.8, 1.2), seed=seed)
        ds.set_epoch(epoch)
        return [ds[i][1] for i in range(4)]

    a, b = items(0, 1), items(0, 1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, items(0, 2)))
    assert not all(torch.equal(x, y) for x, y in zip(a, items(1, 1)))


def test_eval_mode_is_fixed_across_epochs(tmp_path):
    records = write_records(tmp_path, [300], [0])
    ds = ChunkDataset(records, 64, train=False, tempo_stretch=(0.8, 1.2),
                      spec_augment=SpecAugment.from_config(SPEC_CFG))
    assert ds.tempo_stretch is None and ds.spec_augment is None
    first = ds[0][1]
    ds.set_epoch(5)
    assert torch.equal(first, ds[0][1])


def test_repeat_index_gets_its_own_draw(tmp_path):
    records = write_records(tmp_path, [300, 300], [0, 1])
    ds = ChunkDataset(records, 64)
    utt, feat, label, _ = ds[0 + 2 * 3]                 # third repeat of item 0
    assert (utt, label) == ("u0", 0)
    assert not torch.equal(feat, ds[0][1])


def _batches(records, workers: int, epoch: int) -> list[tuple]:
    ds = ChunkDataset(records, 75, mean_size=3, spec_augment=SpecAugment.from_config(SPEC_CFG),
                      tempo_stretch=(0.9, 1.1), seed=7)
    sampler = MPerClassSampler(ds.labels, m_per_class=2, batch_size=4, seed=7)
    ds.set_epoch(epoch)
    sampler.set_epoch(epoch)
    loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers, collate_fn=collate)
    return list(loader)


def test_independent_of_num_workers(tmp_path):
    records = write_records(tmp_path, [120 + 10 * i for i in range(12)], [i // 3 for i in range(12)], ramp=False)
    serial = _batches(records, 0, epoch=3)
    parallel = _batches(records, 2, epoch=3)
    assert len(serial) == len(parallel) == 3
    for (u0, f0, l0, n0), (u1, f1, l1, n1) in zip(serial, parallel):
        assert u0 == u1 and torch.equal(l0, l1) and torch.equal(f0, f1) and n0 == n1 == 0
        assert f0.shape == (4, 25, BINS) and l0.dtype == torch.long
    other_epoch = _batches(records, 0, epoch=4)
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(serial, other_epoch))


def test_missing_and_corrupt_features_are_replaced(tmp_path, caplog):
    records = write_records(tmp_path, [100] * 4, [0, 0, 1, 1])
    Path(records[0]["feat"]).unlink()
    Path(records[2]["feat"]).write_bytes(b"not a numpy file")
    ds = ChunkDataset(records, 32)
    with caplog.at_level(logging.WARNING, logger="csi.data.dataset"):
        items = [ds[i] for i in range(4)]
    assert [(utt, label, ok) for utt, _, label, ok in items] == [
        ("u1", 0, False), ("u1", 0, True), ("u3", 1, False), ("u3", 1, True)]
    assert records[0]["feat"] in caplog.text and records[2]["feat"] in caplog.text
    assert ds.failures == 2
    utts, feats, labels, n_replaced = collate(items)
    assert n_replaced == 2 and feats.shape == (4, 32, BINS) and labels.tolist() == [0, 0, 1, 1]
    # no crash with workers either: the count travels with the batch
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
    assert sum(batch[3] for batch in loader) == 2


def test_single_broken_song_falls_back_to_other_songs(tmp_path):
    records = write_records(tmp_path, [100] * 3, [0, 1, 2])
    Path(records[1]["feat"]).unlink()
    utt, _, label, ok = ChunkDataset(records, 32)[1]
    assert (utt, label, ok) == ("u2", 2, False)


def test_tempo_stretch_shape(tmp_path):
    records = write_records(tmp_path, [400, 60], [0, 1], ramp=False)
    ds = ChunkDataset(records, 1125 // 5, mean_size=3, tempo_stretch=(0.8, 1.2))
    for i in range(2):
        _, feat, _, _ = ds[i]
        assert feat.shape == (75, BINS) and feat.dtype == torch.float32
        assert torch.isfinite(feat).all()


def test_record_validation_names_utt(tmp_path):
    records = write_records(tmp_path, [100], [0])
    bad = dict(records[0], utt="broken")
    del bad["feat_len"]
    with pytest.raises(ValueError, match="broken.*feat_len"):
        ChunkDataset([bad], 32)
    with pytest.raises(ValueError, match="song_id"):
        ChunkDataset([dict(records[0], song_id="x")], 32)


def test_chunk_starts_and_load_chunk(tmp_path):
    assert chunk_starts(50, 100, 25) == [0]
    assert chunk_starts(100, 100, 25) == [0]
    assert chunk_starts(230, 100, 50) == [0, 50, 100, 130]
    assert chunk_starts(250, 100, 50) == [0, 50, 100, 150]
    records = write_records(tmp_path, [40], [0])
    chunk = load_chunk(records[0]["feat"], 33, 12, mean_size=3)
    assert chunk.shape == (4, BINS) and chunk.dtype == torch.float32
    np.testing.assert_allclose(chunk[0].numpy(), frame_ramp(40)[33:36].mean(0), atol=1e-6)
    np.testing.assert_allclose(chunk[2].numpy(), (frame_ramp(40)[39] + 2 * PAD) / 3, atol=1e-5)
    assert torch.all(chunk[3] == PAD)       # frames 42..44 are all padding
    full = load_chunk(records[0]["feat"], 0, 40)
    assert torch.equal(full, torch.from_numpy(frame_ramp(40)))


# -- sampler ---------------------------------------------------------------------------
def unbalanced_labels() -> list[int]:
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 12, size=40)        # 40 classes of 1..11 samples
    labels = np.repeat(np.arange(40), sizes)
    return rng.permutation(labels).tolist()


def test_sampler_batch_structure():
    labels = unbalanced_labels()
    sampler = MPerClassSampler(labels, m_per_class=4, batch_size=16, seed=1)
    indices = list(sampler)
    assert len(indices) == len(sampler) == (len(labels) // 16) * 16
    n = len(labels)
    for b in range(len(indices) // 16):
        batch = indices[16 * b:16 * b + 16]
        classes = sampler.labels_of(batch).tolist()
        counts = Counter(classes)
        assert len(counts) == 4 and set(counts.values()) == {4}
        # groups of m consecutive indices share a class
        assert all(len(set(classes[4 * g:4 * g + 4])) == 1 for g in range(4))
        # with distinct_repeats, no index is yielded twice in the epoch
    assert len(set(indices)) == len(indices)
    # classes of >= m samples give m distinct samples; smaller ones are completed with repeats
    for b in range(len(indices) // 16):
        for g in range(4):
            group = [i % n for i in indices[16 * b + 4 * g:16 * b + 4 * g + 4]]
            size = labels.count(labels[group[0]])
            assert len(set(group)) == min(size, 4)


def test_sampler_ranks_disjoint_and_equal_length():
    labels = unbalanced_labels()
    samplers = [MPerClassSampler(labels, 4, 16, rank=r, world_size=2, seed=5) for r in range(2)]
    for epoch in (0, 1):
        for s in samplers:
            s.set_epoch(epoch)
        per_rank = [set(s.labels_of(list(s)).tolist()) for s in samplers]
        assert not per_rank[0] & per_rank[1]
        assert len(samplers[0]) == len(samplers[1]) == (len(labels) // 32) * 16
        assert len(list(samplers[0])) == len(list(samplers[1])) == len(samplers[0])
    # the class split changes with the epoch, identically on both ranks
    assert not np.array_equal(samplers[0].rank_classes(0), samplers[0].rank_classes(1))


def test_sampler_rank_with_few_samples_cycles():
    labels = [0] * 50 + [1] * 50 + [2, 3] + [4] * 2 + [5] * 2      # skewed classes
    samplers = [MPerClassSampler(labels, 2, 4, rank=r, world_size=2, seed=0) for r in range(2)]
    assert len(samplers[0]) == len(samplers[1]) == (106 // 8) * 4
    for s in samplers:
        assert len(list(s)) == len(s)


def test_sampler_resume_reproduces_tail():
    labels = unbalanced_labels()
    sampler = MPerClassSampler(labels, 4, 16, seed=2)
    sampler.set_epoch(3)
    full = list(sampler)
    resumed = MPerClassSampler(labels, 4, 16, seed=2)
    resumed.load_state_dict({"epoch": 3, "start_batch": 5})
    tail = list(resumed)
    assert tail == full[5 * 16:] and len(resumed) == len(tail)
    assert resumed.state_dict(batches_done=2) == {"epoch": 3, "start_batch": 7}
    resumed.set_epoch(3)                          # same epoch: the start batch is kept
    assert list(resumed) == tail
    resumed.set_epoch(4)                          # next epoch starts from its beginning
    assert len(list(resumed)) == len(full)
    sampler.set_epoch(4)
    assert list(sampler) == list(resumed) != full


def test_sampler_validation():
    with pytest.raises(ValueError, match="multiple"):
        MPerClassSampler([0, 1, 2, 3], 3, 8)
    with pytest.raises(ValueError, match="classes"):
        MPerClassSampler([0, 0, 1, 1], 2, 8)
    with pytest.raises(ValueError, match="rank"):
        MPerClassSampler([0, 1], 1, 1, rank=2, world_size=2)


def test_sampler_plain_indices_without_distinct_repeats():
    labels = [0, 1, 2, 3]
    sampler = MPerClassSampler(labels, 4, 8, distinct_repeats=False)
    indices = list(sampler)
    assert len(indices) == 8 and max(indices) < 4
    assert all(labels[i] == labels[indices[g * 4]] for g in range(2) for i in indices[g * 4:g * 4 + 4])


# -- SpecAugment -----------------------------------------------------------------------
def test_specaug_config_keys():
    with pytest.raises(ValueError, match="time_mask"):
        SpecAugment.from_config({"time_mask": {}})
    with pytest.raises(ValueError, match="erase_size"):
        SpecAugment.from_config({"random_erase": {"prob": 0.5, "erase_num": 2, "erase_size": 3}})
    with pytest.raises(ValueError, match="shift_num"):
        SpecAugment.from_config({"roll_pitch": {"prob": 0.5}})
    assert not SpecAugment.from_config({}).enabled


def test_specaug_prob_zero_is_identity():
    x = torch.randn(3, 50, BINS)
    aug = SpecAugment.from_config({"random_erase": {"prob": 0.0, "erase_num": 4},
                                   "roll_pitch": {"prob": 0.0, "shift_num": 12}})
    y = aug(x, torch.Generator().manual_seed(0))
    assert torch.equal(x, y) and y is not x


def test_specaug_shapes_and_reproducibility():
    aug = SpecAugment.from_config(SPEC_CFG)
    x = torch.randn(8, 375, BINS)
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)
    assert aug(x[0], torch.Generator().manual_seed(1)).shape == x[0].shape
    assert not torch.equal(x, aug(x, torch.Generator().manual_seed(2)))


def test_roll_pitch_matches_torch_roll():
    x = torch.randn(64, 20, BINS)
    y = SpecAugment(roll_pitch={"prob": 1.0, "shift_num": 12})(x, torch.Generator().manual_seed(0))
    seen = set()
    for xi, yi in zip(x, y):
        matches = [s for s in (-12, 0, 12) if torch.equal(torch.roll(xi, s, dims=1), yi)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {-12, 0, 12}


def test_random_erase_regions_and_values():
    t, f = 40, 50                        # regions of 10 frames × 5 bins
    x = torch.ones(32, t, f)
    one = SpecAugment(random_erase={"prob": 1.0, "erase_num": 1})(x, torch.Generator().manual_seed(0))
    for sample in one:
        changed = sample != 1
        rows = changed.any(1).nonzero().flatten()
        cols = changed.any(0).nonzero().flatten()
        assert len(rows) == 10 and len(cols) == 5
        assert rows[-1] - rows[0] == 9 and cols[-1] - cols[0] == 4
        assert changed.sum() == 50
        values = sample[changed].unique()
        assert len(values) == 1 and -80 < values.item() <= 0
    four = SpecAugment(random_erase={"prob": 1.0, "erase_num": 4})(x, torch.Generator().manual_seed(0))
    counts = (four != 1).sum((1, 2))
    assert torch.all((counts >= 50) & (counts <= 200))
    half = SpecAugment(random_erase={"prob": 0.5, "erase_num": 4})(torch.ones(200, t, f),
                                                                    torch.Generator().manual_seed(0))
    untouched = int(((half != 1).sum((1, 2)) == 0).sum())
    assert 60 < untouched < 140
    sized = SpecAugment(random_erase={"prob": 1.0, "erase_num": 1, "region_size": [0.5, 0.2]})
    assert int((sized(x[:1], torch.Generator().manual_seed(0)) != 1).sum()) == 20 * 10


def test_single_sample_path_matches_batch_of_one():
    aug = SpecAugment.from_config(SPEC_CFG)
    x = torch.randn(375, BINS)
    for seed in range(20):
        one = aug(x, torch.Generator().manual_seed(seed))
        batch = aug(x[None], torch.Generator().manual_seed(seed))[0]
        assert torch.equal(one, batch)
    snapshot = x.clone()
    aug(x, torch.Generator().manual_seed(0))
    assert torch.equal(x, snapshot)                  # the input is never modified


@pytest.mark.parametrize("damage", ["truncated", "empty", "wrong_rank"])
def test_damaged_feature_files_are_replaced(tmp_path, damage):
    records = write_records(tmp_path, [100] * 2, [0, 0])
    path = Path(records[0]["feat"])
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:4000])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        np.save(path, np.zeros(100, dtype=np.float16))
    utt, feat, label, ok = ChunkDataset(records, 32)[0]
    assert (utt, label, ok) == ("u1", 0, False) and feat.shape == (32, BINS)


def test_roll_pitch_range_transposes_by_up_to_range_bins():
    from csi.data.specaug import SpecAugment
    aug = SpecAugment.from_config({"roll_pitch": {"prob": 1.0, "shift_num": 1, "range": 6}})
    shifts = aug._roll_shifts(4000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert shifts.min() == -6 and shifts.max() == 6 and set(shifts.tolist()) == set(range(-6, 7))
    x = torch.arange(96, dtype=torch.float32).repeat(3, 5, 1)
    y = aug(x, torch.Generator().manual_seed(1))
    for b in range(3):  # each sample is a circular shift of the bins
        shift = int((y[b, 0, 0] - x[b, 0, 0]).item()) % 96
        assert torch.equal(y[b], torch.roll(x[b], -shift, dims=1))
