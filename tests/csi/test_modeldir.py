"""The model directory's one owner (csi.modeldir): one default-checkpoint rule for every
consumer, the card, identity, and configs in the nested layout read like the flat one."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from csi import modeldir
from csi.registry import ConfigError
from tests.bench.index import make_model_dir, tone_audio

TINY_MODEL = {"input_dim": 96, "embed_dim": 32, "encoder": {"output_dims": 32, "num_blocks": 1, "attention_dim": 64},
              "ce": {"output_dims": 3}}
TINY_TRAIN = {"train_path": "x", "chunk_frame": [100], "mean_size": 2, "m_per_class": 2, "batch_size": 4}
SR = 16000


def three_checkpoints(root):
    """Epochs 0 and 1 and g_best, each with other weights (g_best is neither epoch)."""
    model_dir = make_model_dir(root, TINY_MODEL, TINY_TRAIN, seed=0)
    for name, seed in (("g_00000001", 1), ("g_best", 2)):
        other = make_model_dir(root.parent / f"tmp_{name}", TINY_MODEL, TINY_TRAIN, seed=seed)
        (other / "pt_model" / "g_00000000").rename(model_dir / "pt_model" / name)
    return model_dir


def test_default_checkpoint_is_g_best_else_the_latest_epoch(tmp_path):
    model_dir = three_checkpoints(tmp_path / "m")
    assert modeldir.checkpoint_path(model_dir).name == "g_best"
    assert modeldir.checkpoint_path(model_dir, 0).name == modeldir.checkpoint_path(model_dir, "0").name == "g_00000000"
    assert modeldir.checkpoint_path(model_dir, "g_00000001").name == "g_00000001"
    (model_dir / "pt_model" / "g_best").unlink()
    assert modeldir.checkpoint_path(model_dir).name == "g_00000001"
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        modeldir.checkpoint_path(model_dir, 7)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        modeldir.checkpoint_path(tmp_path / "empty")


def test_every_consumer_serves_the_same_default_model(tmp_path, capsys):
    """An index built and an evaluation run without --checkpoint, csi.load_model and the HEAR
    API all use g_best."""
    import csi
    from csi import hear
    from tools import build_index, eval_testset

    model_dir = three_checkpoints(tmp_path / "m")
    records = []
    for w in range(2):
        for v in range(2):
            path = tmp_path / f"w{w}v{v}.wav"
            sf.write(path, tone_audio(9, SR, seed=10 * w + v), SR)
            records.append({"utt": f"w{w}v{v}", "wav": str(path), "song": f"work{w}"})
    manifest = tmp_path / "all.txt"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert build_index.main([str(model_dir), str(manifest), str(tmp_path / "index"), "--no_progress"]) == 0
    assert eval_testset.main([str(model_dir), str(manifest), str(manifest), "--out_dir", str(tmp_path / "eval"),
                              "--no_progress"]) == 0
    from csi.index import read_info
    indexed = read_info(tmp_path / "index")["model"]
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    best_sha = modeldir.identity(model_dir)["checkpoint_sha256"]
    assert indexed["checkpoint"] == "g_best" and indexed["checkpoint_sha256"] == best_sha
    assert evaluated["checkpoint"].endswith("g_best") and evaluated["checkpoint_sha256"] == best_sha
    best = torch.load(model_dir / "pt_model" / "g_best", weights_only=True)["generator"]
    for model in (csi.load_model(model_dir), hear.load_model(str(model_dir), device="cpu").loaded.model):
        assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())


def test_open_model_checks_the_card(tmp_path):
    model_dir = make_model_dir(tmp_path / "m", TINY_MODEL, TINY_TRAIN)
    loaded = modeldir.open_model(model_dir)
    assert loaded.checkpoint.name == "g_00000000" and loaded.card.embed_dim == 32
    card = modeldir.read_card(model_dir)
    modeldir.write_card(model_dir, modeldir.ModelCard(card.model, card.input_dim, 64, None, card.mean_size,
                                                      card.chunk_frames, card.frontend))
    with pytest.raises(ConfigError, match="32-d embeddings, its card says 64"):
        modeldir.open_model(model_dir)
    assert modeldir.open_model(model_dir, load=False).model is None   # the identity needs no network


def test_nested_config_spreads_into_the_flat_layout():
    nested = {"model": {"name": "pitch_cnn", "input_dim": 96, "embed_dim": 128},
              "data": {"train_path": "t.txt", "mean_size": 2}, "optim": {"learning_rate": 0.002},
              "train": {"max_steps": 10}, "dev_sets": {"val": {"query_path": "q", "ref_path": "r"}}}
    assert modeldir.flat_hparams(nested) == {"model": "pitch_cnn", "input_dim": 96, "embed_dim": 128,
                                             "train_path": "t.txt", "mean_size": 2, "learning_rate": 0.002,
                                             "max_steps": 10, "val": {"query_path": "q", "ref_path": "r"}}
    flat = {"model": "coverhunter", "input_dim": 96, "train_path": "t"}
    assert modeldir.flat_hparams(flat) == flat                   # CoverHunter's layout: as it is
    with pytest.raises(ConfigError, match="mean_size is given in data and in train"):
        modeldir.flat_hparams({**nested, "train": {"mean_size": 3}})
    with pytest.raises(ConfigError, match="optim.embed_dim is a model key"):
        modeldir.flat_hparams({**nested, "optim": {"embed_dim": 64}})
    with pytest.raises(ConfigError, match="needs a 'name' key"):
        modeldir.flat_hparams({"model": {"input_dim": 96}})


def test_nested_hparams_in_a_model_directory_load(tmp_path):
    model_dir = make_model_dir(tmp_path / "m", TINY_MODEL, TINY_TRAIN)
    flat = yaml.safe_load((model_dir / "config" / "hparams.yaml").read_text())
    nested = {"model": {"name": "coverhunter", **TINY_MODEL}, "data": TINY_TRAIN}
    (model_dir / "config" / "hparams.yaml").write_text(yaml.safe_dump(nested))
    assert modeldir.read_hparams(model_dir) == {"model": "coverhunter", **flat}
    x = torch.randn(1, 50, 96)
    assert np.isfinite(modeldir.load_model(model_dir).inference(x)[0].detach().numpy()).all()
