"""ByteCover: IBN-a ResNet + GeM through the model registry, a small variant that trains."""
import pytest
import torch

from csi.models import build_model
from csi.models.bytecover import GeM, IBN
from csi.registry import ConfigError

SMALL = {"model": "bytecover", "input_dim": 96, "embed_dim": 64, "width": 8, "blocks": [1, 1, 1, 1],
         "ce": {"output_dims": 4},
         "losses": [{"name": "softmax_ls", "weight": 1.0, "smoothing": 0.1}, {"name": "hard_triplet", "weight": 1.0}]}


def test_small_bytecover_embeds_and_trains():
    torch.manual_seed(0)
    model = build_model(SMALL).train()
    assert model.output_size == 64 and model.projection is not None            # 8 * 32 = 256 -> 64
    assert sum(isinstance(m, IBN) for m in model.modules()) == 3                # stages 1-3, one block each
    assert isinstance(model.pool, GeM) and model.pool.p.requires_grad
    feats, labels = torch.randn(8, 120, 96) * 10 - 40, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss, parts = model.compute_loss(feats, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert set(parts) == {"softmax_ls", "hard_triplet", "total"} and losses[-1] < losses[0]
    model.eval()
    emb, logits = model.inference(feats[:2, :50])                               # any length
    assert emb.shape == (2, 64) and logits.shape == (2, 4) and torch.isfinite(emb).all()


def test_width_64_resnet50_is_the_paper_size_and_config_errors():
    full = build_model({"model": "bytecover", "input_dim": 84, "embed_dim": 2048, "ce": {"output_dims": 10}})
    assert full.projection is None                                              # 64 * 32 = 2048
    n = sum(p.numel() for n_, p in full.named_parameters() if n_.startswith(("stem", "stages")))
    assert 23e6 < n < 24e6                                                      # ResNet-50 trunk: 23.5 M
    with pytest.raises(ConfigError, match="blocks"):
        build_model({**SMALL, "blocks": [1, 1, 1]})
    with pytest.raises(ConfigError, match="last_stride"):
        build_model({**SMALL, "last_stride": 3})


def test_small_config_parses_and_builds():
    from csi.config import load_yaml
    from csi.train.config import parse_hparams
    from csi.train.trainer import resolve_model_hparams
    from tests.helpers import REPO

    hp = load_yaml(REPO / "conf" / "train" / "bytecover_small.yaml")
    hp["val"] = {"query_path": "q.txt", "ref_path": "r.txt"}                   # the recipe adds its dev sets
    parsed = parse_hparams(hp)
    model = build_model(resolve_model_hparams(parsed.model, 5, "bytecover_small.yaml"))
    assert model.output_size == 128 and [len(s) for s in model.stages] == [1, 1, 1, 1]
