"""pitch_cnn: key invariance by construction, config checks, loss heads; timbre augmentation."""
import pytest
import torch

from csi.data.specaug import SpecAugment
from csi.models import build_model, model_keys
from csi.registry import ConfigError
from csi.train.config import parse_hparams

TINY = {"model": "pitch_cnn", "input_dim": 96, "embed_dim": 16, "channels": [4, 8], "time_pool": [2, 2],
        "ce": {"output_dims": 5}, "triplet": {"weight": 0.1}}


def _transpose(feat: torch.Tensor, semitones: int) -> torch.Tensor:
    """Roll the pitch classes inside every octave (a transposition with octave wrap)."""
    b, t, f = feat.shape
    return torch.roll(feat.view(b, t, f // 12, 12), semitones, dims=3).view(b, t, f)


@pytest.mark.parametrize("fold,first", [("octaves", 3), ("chroma", 12), ("chroma", 5)])
def test_embedding_is_invariant_to_transposition(fold, first):
    torch.manual_seed(0)
    model = build_model({**TINY, "fold": fold, "first_pitch_kernel": first}).eval()
    feat = torch.rand(3, 40, 96) * -80
    with torch.no_grad():
        ref = model(feat)
        for k in (1, 5, 11):
            assert torch.allclose(model(_transpose(feat, k)), ref, atol=1e-5)
        # a change that is not a transposition does change the embedding
        assert not torch.allclose(model(feat.flip(1)), ref, atol=1e-3)


def test_chroma_input_is_normalised_per_frame():
    model = build_model({**TINY, "fold": "chroma"})
    feat = torch.full((1, 2, 96), -100.0)
    feat[0, 0, 12 * 4 + 7] = 0.0      # frame 0: one loud pitch class (G)
    feat[0, 1, 12 * 4 + 7] = -30.0    # frame 1: the same note 30 dB quieter
    x = model.pitch_image(feat)
    assert x.shape == (1, 1, 12, 2)
    assert torch.allclose(x[0, 0, 7], torch.ones(2))          # the peak of each frame is 1
    assert float(x[0, 0, :7].max()) < 1e-3                      # the rest near 0
    silent = model.pitch_image(torch.full((1, 1, 96), -100.0))
    assert float(silent.max()) < 0.01                           # silence stays near 0, no division blow-up


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="multiple of bins_per_octave"):
        build_model({**TINY, "input_dim": 90})
    with pytest.raises(ConfigError, match="fold"):
        build_model({**TINY, "fold": "mel"})
    with pytest.raises(ConfigError, match="one entry per block"):
        build_model({**TINY, "time_pool": [2]})
    with pytest.raises(ConfigError, match="first_pitch_kernel"):
        build_model({**TINY, "first_pitch_kernel": 13})
    with pytest.raises(ConfigError, match="unknown key"):
        build_model({**TINY, "ce": {"output_dims": 5, "gama": 2}})


def test_loss_and_hparams_split():
    torch.manual_seed(0)
    model = build_model(TINY)
    total, parts = model.compute_loss(torch.rand(4, 40, 96) * -60, torch.tensor([0, 0, 1, 1]))
    total.backward()
    assert set(parts) == {"ce", "triplet", "center", "total"} and torch.isfinite(total)
    assert "channels" in model_keys("pitch_cnn") and "channels" not in model_keys("coverhunter")
    hp = parse_hparams({**TINY, "train_path": "x.txt", "batch_size": 4, "m_per_class": 2})
    assert hp.model["channels"] == [4, 8] and hp.train.batch_size == 4
    with pytest.raises(ConfigError, match="encoder"):   # a CoverHunter key is not pitch_cnn's
        parse_hparams({**TINY, "train_path": "x.txt", "encoder": {"num_blocks": 2}})


def test_timbre_augmentation_adds_smooth_bounded_gains():
    aug = SpecAugment.from_config({"timbre": {"prob": 1.0, "tilt_db": 10.0, "curve_db": 4.0, "knots": 5}})
    feat = torch.zeros(8, 20, 96)
    out = aug(feat, torch.Generator().manual_seed(1))
    gains = out[:, 0]
    assert torch.equal(out, gains.unsqueeze(1).expand_as(out))      # the same curve on every frame
    assert float(gains.abs().max()) <= 5.0 + 4.0 + 1e-5                # |tilt/2| + |curve|
    assert float(gains.diff(dim=1).abs().max()) < 2.0                  # smooth over bins
    assert float(gains.std(dim=0).mean()) > 0.5                        # differs between samples
    one = aug(feat[0], torch.Generator().manual_seed(2))               # single-sample path: the same
    assert torch.allclose(one, aug(feat[:1], torch.Generator().manual_seed(2))[0])  # draws as a batch of one
    off = SpecAugment.from_config({"timbre": {"prob": 0.0}})
    assert torch.equal(off(feat, torch.Generator().manual_seed(1)), feat)
    with pytest.raises(ValueError, match="timbre: unknown key"):
        SpecAugment.from_config({"timbre": {"prob": 1.0, "tilt": 3}})
