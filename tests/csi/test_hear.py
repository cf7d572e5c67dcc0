"""The HEAR API over a csi model directory: attributes, shapes, white-noise clips (as the
HEAR API's own checks use), and agreement with the one embedding path."""
import numpy as np
import pytest
import soundfile as sf
import torch

import csi.hear as hear

SR = 16000
HP = {"model": "pitch_cnn", "input_dim": 96, "embed_dim": 24, "channels": [8, 8], "time_pool": [2, 2],
      "fold": "chroma", "ce": {"output_dims": 5}}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from csi.features.frontend import resolve_frontend
    from csi.modeldir import ModelCard
    from tests.helpers import write_model_dir

    root = tmp_path_factory.mktemp("hear_model")
    return write_model_dir(root, {**HP, "train_path": "unused", "mean_size": 1, "chunk_frame": [50]},
                           card=ModelCard("pitch_cnn", 96, 24, 5, 1, 50, resolve_frontend({"name": "coverhunter_cqt"})))


def _noise(n, seconds, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).uniform(-1, 1, (n, int(SR * seconds))).astype(np.float32))


def test_attributes_and_shapes_on_white_noise(model_dir):
    model = hear.load_model(str(model_dir), device="cpu")
    assert model.sample_rate == SR and model.scene_embedding_size == model.timestamp_embedding_size == 24
    audio = _noise(3, 4.5)
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (3, 24) and torch.isfinite(scene).all()
    assert torch.allclose(scene.norm(dim=1), torch.ones(3), atol=1e-5)
    emb, ms = hear.get_timestamp_embeddings(audio, model, frame_duration_ms=1000, hop_ms=250)
    assert emb.shape[:2] == ms.shape and emb.shape[0] == 3 and emb.shape[2] == 24 and ms.shape[1] >= 10
    assert torch.all(ms[:, 1:] > ms[:, :-1]) and torch.equal(ms[0], ms[1])
    assert ms[0, 0].item() == pytest.approx(500.0) and ms[0, 1].item() == pytest.approx(740.0)  # 250 ms -> 6 frames of 40 ms
    short = hear.get_scene_embeddings(_noise(2, 0.3), model)          # shorter than a chunk: one padded chunk
    assert short.shape == (2, 24) and torch.isfinite(short).all()
    silent = hear.get_scene_embeddings(torch.zeros(1, SR), model)     # silence has an embedding too
    assert torch.isfinite(silent).all()
    with pytest.raises(ValueError, match="n_sounds, n_samples"):
        hear.get_scene_embeddings(audio[0], model)


def test_agrees_with_the_one_embedding_path_and_batches_do_not_mix(model_dir, tmp_path):
    from csi.embed import embed_records
    from csi.modeldir import open_model

    model = hear.load_model(str(model_dir), device="cpu")
    audio = _noise(2, 5.0, seed=1)
    scene = hear.get_scene_embeddings(audio, model)
    path = tmp_path / "clip.wav"
    sf.write(path, audio[1].numpy(), SR, subtype="FLOAT")
    loaded = open_model(model_dir, device="cpu")
    result = embed_records(loaded.model, [{"utt": "x", "wav": str(path)}], loaded.card.chunking(), loaded.reader())
    mean = result.emb.mean(axis=0)
    np.testing.assert_allclose(scene[1].numpy(), mean / np.linalg.norm(mean), atol=1e-5)
    alone = hear.get_scene_embeddings(audio[1:], model)
    torch.testing.assert_close(alone[0], scene[1], atol=1e-5, rtol=1e-5)


def test_channels_rate_and_short_clips(model_dir, caplog):
    """Several channels are mixed down and another rate resampled, each said once in the log;
    a clip shorter than a chunk is one padded chunk (one timestamp)."""
    import logging

    import soxr

    model = hear.load_model(str(model_dir), device="cpu")
    mono = _noise(2, 3.0, seed=3)
    stereo = torch.stack([mono, mono * 0.5], dim=1)                       # (2, 2 channels, samples)
    with caplog.at_level(logging.WARNING, logger="csi.hear"):
        a = hear.get_scene_embeddings(stereo, model)
        hear.get_scene_embeddings(stereo, model)
    assert torch.allclose(a, hear.get_scene_embeddings(mono * 0.75, model), atol=1e-5)
    assert sum("mixed down" in r.getMessage() for r in caplog.records) == 1

    low = np.stack([soxr.resample(c, SR, 8000, quality="HQ") for c in mono.numpy()])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="csi.hear"):
        b = hear.get_scene_embeddings(torch.from_numpy(low), model, sample_rate=8000)
        hear.get_timestamp_embeddings(torch.from_numpy(low), model, sample_rate=8000)
    assert sum("resampled" in r.getMessage() for r in caplog.records) == 1
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.9          # band-limited copy, same sound

    short = _noise(2, 0.4, seed=4)                          # timestamp chunks of 1 s, the scene chunk 2 s
    emb, ms = hear.get_timestamp_embeddings(short, model)
    assert emb.shape == (2, 1, 24) and torch.isfinite(emb).all() and ms[0, 0].item() == pytest.approx(500.0)
    assert torch.isfinite(hear.get_scene_embeddings(short, model)).all()
