"""Model library: equality with the CoverHunter reference checkpoint, configs, registries."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from csi.models import MODEL_KEYS, MODELS, POOLINGS, CoverHunter, build_model, model_section
from csi.models.conformer import Conv2dSubsampling4, RelPositionMultiHeadedAttention, sinusoid_table
from csi.registry import ConfigError
from tests.helpers import REPO

FIXTURE = REPO.parent / "shared" / "fixtures" / "coverhunter_ref"
TOL = 1e-4

SMALL = {"input_dim": 96, "embed_dim": 32,
         "encoder": {"output_dims": 64, "num_blocks": 2, "attention_dim": 128},
         "pool_type": "attention",
         "ce": {"output_dims": 10, "weight": 1.0, "gamma": 2},
         "triplet": {"margin": 0.3, "weight": 0.1},
         "center": {"weight": 0.01}}


@pytest.fixture(scope="module")
def fixture_dir() -> Path:
    if not (FIXTURE / "pt_model" / "g_00000001").exists():
        pytest.skip(f"CoverHunter reference fixture not found at {FIXTURE} (../shared is absent in a user's clone)")
    return FIXTURE


@pytest.fixture(scope="module")
def ref_hparams(fixture_dir: Path) -> dict:
    with open(fixture_dir / "config" / "hparams.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def ref_model(fixture_dir: Path, ref_hparams: dict) -> CoverHunter:
    model = build_model(ref_hparams)
    ckpt = torch.load(fixture_dir / "pt_model" / "g_00000001", map_location="cpu", weights_only=True)
    model.load_state_dict(ckpt["generator"], strict=True)
    return model.eval()


@pytest.mark.parametrize("name", ["rand", "real"])
def test_reference_outputs(fixture_dir: Path, ref_model: CoverHunter, name: str):
    feat = torch.from_numpy(np.load(fixture_dir / f"input_{name}.npy"))
    embed, logits = ref_model.inference(feat)
    exp_embed = np.load(fixture_dir / f"expected_embed_{name}.npy")
    exp_logits = np.load(fixture_dir / f"expected_logits_{name}.npy")
    assert embed.shape == exp_embed.shape and logits.shape == exp_logits.shape
    assert np.abs(embed.numpy() - exp_embed).max() < TOL
    assert np.abs(logits.numpy() - exp_logits).max() < TOL
    torch.testing.assert_close(ref_model(feat).detach(), embed)  # forward == inference embedding


def test_state_dict_matches_reference(fixture_dir: Path, ref_hparams: dict):
    expected = json.loads((fixture_dir / "state_dict_shapes.json").read_text())
    got = {k: list(v.shape) for k, v in build_model(ref_hparams).state_dict().items()}
    assert got == expected
    assert list(got) == list(expected)  # same key order as the reference


def test_reference_config_reading(ref_hparams: dict):
    model = build_model(ref_hparams)
    enc = model._encoder
    assert model.output_size == 128 and enc.output_size() == 128
    assert len(enc.encoders) == 6
    blk = enc.encoders[0]
    assert blk.feed_forward.w_1.out_features == 256      # encoder.attention_dim = FFN units
    assert blk.self_attn.h == 4 and blk.self_attn.d_k == 32
    assert blk.conv_module.depthwise_conv.kernel_size == (15,)
    assert not model._bottleneck.bias.requires_grad
    # data/training keys of a full hparams.yaml are not the model's business
    full = {**ref_hparams, "batch_size": 16, "chunk_frame": [1125, 900, 675], "mean_size": 3}
    assert isinstance(build_model(model_section(full)), CoverHunter)
    with pytest.raises(ConfigError, match="batch_size"):     # never dropped silently
        build_model(full)


def test_small_config_runs():
    torch.manual_seed(0)
    model = build_model(SMALL)
    assert model.output_size == 32
    feat = torch.randn(4, 60, 96)
    labels = torch.tensor([0, 0, 3, 3])
    model.train()
    loss, parts = model.compute_loss(feat, labels)
    assert set(parts) == {"ce", "triplet", "center", "total"}
    expected = parts["ce"] * 1.0 + parts["triplet"] * 0.1 + parts["center"] * 0.01
    torch.testing.assert_close(loss.detach(), expected)
    torch.testing.assert_close(parts["total"], loss.detach())
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), \
        [n for n, g in grads.items() if g is None]
    assert model._bottleneck.bias.grad is None
    model.eval()
    embed, logits = model.inference(feat)
    assert embed.shape == (4, 32) and logits.shape == (4, 10) and not embed.requires_grad
    # another length, incl. one longer than the initial position table (T' > 512)
    assert model(torch.randn(1, 2100, 96)).shape == (1, 32)


def test_zero_weight_terms_skipped():
    hp = copy.deepcopy(SMALL)
    hp["triplet"]["weight"] = 0.0
    hp["center"]["weight"] = 0.0
    model = build_model(hp).train()
    loss, parts = model.compute_loss(torch.randn(3, 40, 96), torch.tensor([1, 2, 1]))
    assert parts["triplet"].item() == 0.0 and parts["center"].item() == 0.0
    torch.testing.assert_close(loss.detach(), parts["ce"])
    loss.backward()
    assert model._center_loss.centers.grad is None
    hp["ce"]["weight"] = 0
    with pytest.raises(ConfigError, match="all 0"):
        build_model(hp)


@pytest.mark.parametrize("section,key", [("encoder", "num_layers"), ("ce", "gama"), ("triplet", "margn"),
                                         ("center", "alpha")])
def test_unknown_section_key(section: str, key: str):
    hp = copy.deepcopy(SMALL)
    hp[section][key] = 1
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        build_model(hp)


def test_config_errors():
    with pytest.raises(ConfigError, match="nonsense"):
        build_model({**SMALL, "nonsense": 1})
    with pytest.raises(ConfigError, match="transformer"):
        build_model({**SMALL, "model": "transformer"})
    with pytest.raises(ConfigError, match="max"):
        build_model({**SMALL, "pool_type": "max"})
    with pytest.raises(ConfigError, match="ce.output_dims"):
        build_model({k: v for k, v in SMALL.items() if k != "ce"})
    with pytest.raises(ConfigError, match="num_heads"):
        build_model({**SMALL, "encoder": {"output_dims": 64, "num_heads": 5}})
    with pytest.raises(ConfigError, match="encoder.num_blocks"):
        build_model({**SMALL, "encoder": {"num_blocks": "six"}})
    with pytest.raises(ConfigError, match="linear_units"):
        build_model({**SMALL, "encoder": {"attention_dim": 128, "linear_units": 128}})


def test_encoder_options():
    hp = {**SMALL, "encoder": {"output_dims": 48, "num_blocks": 1, "linear_units": 96, "num_heads": 3,
                               "kernel_size": 7, "dropout": 0.0, "attention_dropout": 0.1}}
    model = build_model(hp)
    blk = model._encoder.encoders[0]
    assert blk.feed_forward.w_1.out_features == 96 and blk.self_attn.h == 3
    assert blk.conv_module.depthwise_conv.kernel_size == (7,)
    assert model(torch.randn(2, 30, 96)).shape == (2, 32)


def test_alpha_from_counts(tmp_path: Path):
    counts = np.array([9.0, 1.0, 0.0])
    np.save(tmp_path / "counts.npy", counts)
    hp = {**SMALL, "ce": {"output_dims": 3, "alpha": str(tmp_path / "counts.npy")}}
    alpha = build_model(hp)._ce_loss.alpha
    w = 1.0 / (counts + 1.0)
    torch.testing.assert_close(alpha, torch.tensor(w / w.sum(), dtype=torch.float32))
    with pytest.raises(ConfigError, match="alpha"):
        build_model({**SMALL, "ce": {"output_dims": 3, "alpha": [1.0, 2.0]}})


def test_registry_names():
    assert "coverhunter" in MODELS.names()
    assert {"attention", "mean", "stats"} <= set(POOLINGS.names())
    assert MODELS.get("coverhunter") is CoverHunter
    assert set(MODEL_KEYS) >= {"input_dim", "embed_dim", "encoder", "pool_type", "ce", "triplet", "center"}


@pytest.mark.parametrize("name,out_dim,size", [("attention", None, 16), ("attention", 8, 8), ("mean", None, 16),
                                               ("mean", 8, 8), ("stats", None, 32), ("stats", 8, 8)])
def test_poolings(name: str, out_dim: int | None, size: int):
    pool = POOLINGS.build({"name": name, "in_dim": 16, "out_dim": out_dim})
    assert pool.output_size == size
    assert pool(torch.randn(3, 11, 16)).shape == (3, size)


def test_pooling_values():
    x = torch.randn(2, 9, 4, dtype=torch.float64)
    stats = POOLINGS.build({"name": "stats", "in_dim": 4})
    torch.testing.assert_close(stats(x), torch.cat([x.mean(1), x.std(1, unbiased=False)], 1))
    # attentive pooling == the concatenation form, with the softmax over time per channel
    att = POOLINGS.build({"name": "attention", "in_dim": 4, "out_dim": 3}).double()
    mean, std = x.mean(1, keepdim=True), x.std(1, unbiased=False, keepdim=True)
    ctx = torch.cat([x, mean.expand_as(x), std.expand_as(x)], dim=2)
    e = att._conv.conv(torch.tanh(att._linear(ctx)).transpose(1, 2)).transpose(1, 2)
    a = torch.softmax(e, dim=1)
    mu = (a * x).sum(1)
    sd = (a * (x - mu.unsqueeze(1)) ** 2).sum(1).clamp(min=1e-12).sqrt()
    torch.testing.assert_close(att(x), att._final_layer(torch.cat([mu, sd], 1)))


def test_rel_pos_attention_formula():
    """SDPA path == explicit Transformer-XL scores (q+u)k + (q+v)W_pos pe, no relative shift."""
    torch.manual_seed(0)
    attn = RelPositionMultiHeadedAttention(4, 32, 0.0).double().eval()
    x = torch.randn(2, 13, 32, dtype=torch.float64)
    pos = sinusoid_table(13, 32).unsqueeze(0).double()
    b, t, h, dk = 2, 13, 4, 8

    def heads(y: torch.Tensor) -> torch.Tensor:
        return y.view(y.size(0), t, h, dk).transpose(1, 2)

    q, k, v = heads(attn.linear_q(x)), heads(attn.linear_k(x)), heads(attn.linear_v(x))
    p = heads(attn.linear_pos(pos))
    scores = ((q + attn.pos_bias_u[:, None]) @ k.transpose(-1, -2)
              + (q + attn.pos_bias_v[:, None]) @ p.transpose(-1, -2)) / math.sqrt(dk)
    ref = attn.linear_out((torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(b, t, 32))
    torch.testing.assert_close(attn(x, pos), ref, atol=1e-10, rtol=1e-10)


def test_subsampling_fast_path():
    """The strided-tap/channels-last subsampling equals the plain Conv2d stack, values and grads."""
    torch.manual_seed(0)
    sub = Conv2dSubsampling4(20, 8, torch.nn.Identity()).double()
    x = torch.randn(2, 31, 20, dtype=torch.float64, requires_grad=True)
    fast = sub(x)
    h = sub.conv(x.unsqueeze(1))
    b, c, t, f = h.shape
    plain = sub.out(h.transpose(1, 2).reshape(b, t, c * f))
    assert t == Conv2dSubsampling4.output_length(31)
    torch.testing.assert_close(fast, plain)
    g_fast = torch.autograd.grad(fast.square().sum(), [x, *sub.parameters()])
    g_plain = torch.autograd.grad(plain.square().sum(), [x, *sub.parameters()])
    for a, b_ in zip(g_fast, g_plain):
        torch.testing.assert_close(a, b_)


def test_losses_list_builds_a_weighted_sum_of_registered_losses():
    hp = {**{k: v for k, v in SMALL.items() if k not in ("triplet", "center")}, "ce": {"output_dims": 4},
          "losses": [{"name": "focal", "weight": 1.0, "gamma": 0.0}, {"name": "hard_triplet", "weight": 0.5}]}
    torch.manual_seed(0)
    model = build_model(hp).train()
    feats, labels = torch.randn(8, 40, 96), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    loss, parts = model.compute_loss(feats, labels)
    assert set(parts) == {"focal", "hard_triplet", "total"}
    torch.testing.assert_close(loss.detach(), parts["focal"] + 0.5 * parts["hard_triplet"])
    with pytest.raises(ConfigError, match="losses replaces"):
        build_model({**hp, "triplet": {"weight": 0.1}})
    with pytest.raises(ConfigError, match=r"losses\[0\].*unknown key.*margn"):
        build_model({**hp, "losses": [{"name": "hard_triplet", "margn": 1}]})
    with pytest.raises(ConfigError, match="unknown loss 'arcface'"):
        build_model({**hp, "losses": [{"name": "arcface"}]})
    with pytest.raises(ConfigError, match="used twice"):
        build_model({**hp, "losses": [{"name": "focal"}, {"name": "focal"}]})
