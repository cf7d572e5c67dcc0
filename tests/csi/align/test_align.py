"""Chunk alignment (stage 4) and aligned fine-training chunks (stage 5)."""
import json

import numpy as np
import pytest
import torch
import yaml

from csi.align import AlignmentError, read_alignments
from csi.align.aligner import AlignSettings, align_collection, header, write_alignments
from csi.align.votes import dominant_map, tempo_scales
from csi.models import MODELS
from csi.models.heads import EmbeddingModel

FPS = 25.0
BINS = 16


# ---- votes -------------------------------------------------------------------------------
def test_dominant_map_recovers_a_shift_among_outliers():
    rng = np.random.default_rng(0)
    t_a = np.arange(0, 40, 2.5)
    t_b = t_a + 7.0
    wrong = rng.choice(len(t_a), 5, replace=False)
    t_b[wrong] = rng.uniform(0, 50, 5)
    found = dominant_map(t_a, t_b, tol_s=2.0)
    assert found.scale == 1.0 and found.shift_s == pytest.approx(7.0, abs=0.5)
    assert found.confidence == pytest.approx((len(t_a) - 5) / len(t_a), abs=0.07)


def test_dominant_map_allows_zero_and_finds_a_tempo_ratio():
    t_a = np.arange(0, 40, 2.5)
    assert dominant_map(t_a, t_a.copy(), 1.0).shift_s == 0.0                 # zero offset is a valid answer
    found = dominant_map(t_a, 1.19 * t_a + 3.0, 1.0, tempo_scales(1.4))
    assert found.scale == pytest.approx(1.19, abs=0.03) and found.shift_s == pytest.approx(3.0, abs=1.0)
    assert dominant_map(t_a, t_a + 4, 1.0, tempo_scales(1.4)).scale == 1.0   # ties prefer no tempo change


# ---- collection alignment with a toy model ------------------------------------------------
class MeanModel(EmbeddingModel):
    """Embedding = mean feature over time: position-specific for features whose content
    changes every second."""

    def __init__(self, input_dim: int = BINS, embed_dim: int = BINS, ce=None, triplet=None, center=None,
                 losses=None):
        super().__init__()
        self.input_dim = input_dim
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.build_heads(embed_dim, ce, triplet, center, losses)

    def forward(self, feat):
        return feat.mean(1) * self.scale


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    from csi.features.frontend import resolve_frontend
    from csi.modeldir import ModelCard
    from tests.helpers import write_model_dir

    MODELS.register("align_mean")(MeanModel)
    root = tmp_path_factory.mktemp("align_model")
    hp = {"model": "align_mean", "input_dim": BINS, "embed_dim": BINS, "ce": {"output_dims": 3}}
    frontend = resolve_frontend({"name": "coverhunter_cqt"})
    write_model_dir(root, hp, MeanModel(ce={"output_dims": 3}), ModelCard("align_mean", BINS, BINS, 3, 1, 125, frontend))
    yield root
    MODELS.unregister("align_mean")


def _song(rng, seconds):
    """Features whose content changes every second (one random pattern a second)."""
    blocks = rng.normal(0, 1, (seconds, BINS))
    return np.repeat(blocks, int(FPS), axis=0).astype(np.float32)


def _records(tmp_path):
    rng = np.random.default_rng(1)
    feats = {}
    base = _song(rng, 60)
    feats["w0-v0"] = base
    feats["w0-v1"] = np.concatenate([_song(rng, 6), base[: 40 * 25]])        # v1 = v0 delayed by 6 s
    feats["w0-v2"] = base + rng.normal(0, 0.05, base.shape).astype(np.float32)  # same timeline: shift 0
    other = _song(rng, 50)
    feats["w1-v0"] = other
    # w1-v1 exists only as a 0.8 tempo copy (5/4 as long) of a recording 5 s later than w1-v0
    later = np.concatenate([_song(rng, 5), other[: 40 * 25]])
    slow = np.repeat(later, 5, axis=0)[::4]
    feats["sp_0.8-w1-v1"] = slow
    feats["w2-v0"] = _song(rng, 30)                                           # a work with one recording
    records = []
    for utt, feat in feats.items():
        path = tmp_path / f"{utt}.npy"
        np.save(path, feat)
        rec = {"utt": utt, "song": utt.split("-")[-2], "feat": str(path), "feat_len": len(feat)}
        if utt.startswith("sp_"):
            rec["aug"] = {"tempo": 0.8}
        records.append(rec)
    manifest = tmp_path / "full.txt"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records, manifest


def test_alignment_recovers_shift_zero_and_tempo_copies(toy_model, tmp_path):
    from csi.align.aligner import AlignStats
    from csi.modeldir import open_model

    records, manifest = _records(tmp_path)
    loaded = open_model(toy_model, device="cpu")
    settings = AlignSettings(chunk_s=5.0, hop_s=1.0, tol_s=1.0)
    stats = AlignStats()
    out = {(r["utt_a"], r["utt_b"]): r for r in align_collection(loaded, records, settings, stats)}
    assert stats.works == 2 and stats.works_single == 1 and len(out) == 4
    assert out[("w0-v0", "w0-v1")]["shift_s"] == pytest.approx(6.0, abs=0.5)
    assert out[("w0-v0", "w0-v1")]["shift_frames"] == pytest.approx(150, abs=13)
    assert out[("w0-v0", "w0-v2")]["shift_s"] == pytest.approx(0.0, abs=0.5)
    assert out[("w0-v0", "w0-v2")]["confidence"] > 0.9
    # the tempo copy is stated in source time: w1-v1 is w1-v0 delayed by 5 s
    assert out[("w1-v0", "w1-v1")]["shift_s"] == pytest.approx(5.0, abs=1.0)

    path = tmp_path / "align.jsonl"
    write_alignments(path, header(loaded, manifest, settings), iter(out.values()))
    table = read_alignments(path, manifest, loaded.identity()["checkpoint_sha256"])
    assert table.map_time("w0-v0", "w0-v1", 10.0) == pytest.approx(16.0, abs=0.5)
    assert table.map_time("w0-v1", "w0-v0", 16.0) == pytest.approx(10.0, abs=0.5)     # either direction
    assert table.map_time("sp_0.9-w0-v0", "w0-v0", 12.0) == 12.0                     # same recording
    assert table.map_time("w0-v0", "w1-v0", 3.0) is None                             # not aligned

    # a file made from another manifest or with another model is refused, saying why
    changed = tmp_path / "changed.txt"
    changed.write_text(manifest.read_text().replace('"w2"', '"w9"'))
    with pytest.raises(AlignmentError, match="manifest content differs"):
        read_alignments(path, changed)
    with pytest.raises(AlignmentError, match="not with the model given"):
        read_alignments(path, manifest, "0" * 64)


def test_alignment_tool_and_plot(toy_model, tmp_path):
    from tools import alignment_for_frames

    _, manifest = _records(tmp_path)
    out = tmp_path / "align" / "train.jsonl"
    assert alignment_for_frames.main([str(toy_model), str(manifest), str(out), "--chunk_s", "5", "--hop_s", "1",
                                      "--tol_s", "1", "--plot_work", "w0", "--no_progress"]) == 0
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["header"]["settings"]["chunk_s"] == 5.0 and len(lines) == 5
    assert (out.parent / "align_w0.png").stat().st_size > 10_000
    record = yaml.safe_load((out.parent / "train.jsonl.yaml").read_text())
    assert record["counts"]["works_single"] == 1 and record["pairs_per_s"] > 0
    assert alignment_for_frames.main([str(toy_model), str(manifest), str(out), "--plot_work", "w2"]) == 1


def test_aligned_chunks_put_positives_at_the_mapped_position(toy_model, tmp_path):
    from csi.align.aligner import AlignStats
    from csi.data.aligned import AlignedChunkDataset, AnchoredSampler
    from csi.modeldir import open_model

    records, manifest = _records(tmp_path)
    loaded = open_model(toy_model, device="cpu")
    settings = AlignSettings(chunk_s=5.0, hop_s=1.0, tol_s=1.0)
    path = tmp_path / "align.jsonl"
    write_alignments(path, header(loaded, manifest, settings), align_collection(loaded, records, settings, AlignStats()))
    table = read_alignments(path, manifest)
    labels = {"w0": 0, "w1": 1, "w2": 2}
    recs = [dict(r, song_id=labels[r["song"]]) for r in records]
    dataset = AlignedChunkDataset(recs, 125, table, FPS, min_confidence=0.3, seed=3)
    v0, v1 = 0, 1
    for epoch in range(5):
        start_a = dataset.anchor_start(v0, epoch)
        start_b = dataset.aligned_start(v1, v0, epoch)
        assert start_b == min(start_a + 150, recs[v1]["feat_len"] - 125) or abs(start_b - start_a - 150) <= 13
        _, chunk, label, ok = dataset[(epoch, v1, v0)]
        assert label == 0 and ok and chunk.shape == (125, BINS)
        np.testing.assert_allclose(chunk.numpy(), np.load(recs[v1]["feat"])[start_b:start_b + 125], atol=1e-6)
    sampler = AnchoredSampler([r["song_id"] for r in recs], m_per_class=2, batch_size=4, seed=0, with_epoch=True)
    keys = list(sampler)
    assert all(len(k) == 3 for k in keys)
    for g in range(0, len(keys), 2):
        (_, i, a), (_, j, b) = keys[g], keys[g + 1]
        assert a == b == i and recs[i % len(recs)]["song_id"] == recs[j % len(recs)]["song_id"]


def test_fine_training_refuses_an_alignment_of_another_manifest_or_model(tmp_path):
    from csi.registry import ConfigError
    from csi.train.config import parse_hparams
    from csi.train.trainer import Trainer
    from tests.csi.train.test_train import CPU, make_exp
    from tools import alignment_for_frames

    coarse, hp = make_exp(tmp_path, "coarse", max_steps=2, max_epochs=1)
    Trainer(coarse, CPU, parse_hparams(hp)).train()
    align = tmp_path / "align.jsonl"
    assert alignment_for_frames.main([str(coarse), hp["train_path"], str(align), "--chunk_s", "4", "--hop_s", "2",
                                      "--device", "cpu", "--no_progress"]) == 0
    fine = dict(hp, fine={"init_dir": str(coarse), "alignment_path": str(align), "init_checkpoint": "g_00000000"})
    trainer = Trainer(tmp_path / "fine", CPU, parse_hparams(fine))      # the right file: accepted
    assert len(trainer.loaders[0][0].dataset.alignment) > 0
    other = tmp_path / "other.txt"
    other.write_text(open(hp["train_path"]).read().replace("work7", "work9"))
    with pytest.raises(ConfigError, match="fine.alignment_path: .*manifest content differs"):
        Trainer(tmp_path / "fine2", CPU, parse_hparams(dict(fine, train_path=str(other))))
    torch.save({"generator": trainer.model.state_dict()}, coarse / "pt_model" / "g_00000001")
    with pytest.raises(ConfigError, match="not with the model given"):
        Trainer(tmp_path / "fine3", CPU, parse_hparams(dict(fine, fine=dict(fine["fine"], init_checkpoint="g_00000001"))))


def test_alignment_shard_jobs_merge_to_the_one_job_file(toy_model, tmp_path, capsys):
    from tools import alignment_for_frames

    _, manifest = _records(tmp_path)
    opts = ["--chunk_s", "5", "--hop_s", "1", "--tol_s", "1", "--max_pairs_per_work", "2", "--no_progress"]
    whole, sharded = tmp_path / "whole.jsonl", tmp_path / "sharded.jsonl"
    assert alignment_for_frames.main([str(toy_model), str(manifest), str(whole), *opts]) == 0
    assert alignment_for_frames.main([str(toy_model), str(manifest), str(sharded), *opts, "--shard", "2/2"]) == 0
    assert alignment_for_frames.main([str(toy_model), str(manifest), str(sharded), *opts, "--merge", "2"]) == 1
    err = capsys.readouterr().err
    assert "not finished" in err and "part-1-of-2" in err and not sharded.exists()      # part 1 missing
    assert alignment_for_frames.main([str(toy_model), str(manifest), str(sharded), *opts, "--shard", "1/2"]) == 0
    assert alignment_for_frames.main([str(toy_model), str(manifest), str(sharded), *opts, "--merge", "2"]) == 0
    assert sharded.read_text().splitlines()[1:] == whole.read_text().splitlines()[1:]
    assert json.loads(sharded.read_text().splitlines()[0])["header"]["manifest_sha256"] == \
        json.loads(whole.read_text().splitlines()[0])["header"]["manifest_sha256"]
    counts = yaml.safe_load((tmp_path / "sharded.jsonl.yaml").read_text())["counts"]
    assert counts == yaml.safe_load((tmp_path / "whole.jsonl.yaml").read_text())["counts"]
    other = [o if o != "1" else "2" for o in opts]                                   # other settings
    assert alignment_for_frames.main([str(toy_model), str(manifest), str(sharded), *other, "--merge", "2"]) == 1
    assert "made from another manifest, model or settings" in capsys.readouterr().err
