"""Losses against small hand-computed cases, gradient flow and device independence."""
from __future__ import annotations

import math
import pytest
import torch
import torch.nn.functional as F

from csi.losses import LOSSES, CenterLoss, FocalLoss, HardTripletLoss, pairwise_euclidean
from csi.registry import ConfigError

# logits [0, ln 3] -> softmax [1/4, 3/4]
LOGITS = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
LABELS = torch.tensor([1, 0])


def test_registry_names():
    assert {"focal", "hard_triplet", "center"} <= set(LOSSES.names())
    assert isinstance(LOSSES.build({"name": "hard_triplet", "margin": 0.2}), HardTripletLoss)
    with pytest.raises(ConfigError, match="gama"):
        LOSSES.build({"name": "focal", "gama": 2})


def test_focal_hand_computed():
    # label 1: p_t = 3/4, (1 - 3/4)^2 * -ln(3/4) = 0.0625 * 0.2876821 = 0.0179801
    # label 0: p_t = 1/4, (1 - 1/4)^2 * -ln(1/4) = 0.5625 * 1.3862944 = 0.7797906
    loss = FocalLoss(gamma=2.0)(LOGITS, LABELS)
    assert loss.item() == pytest.approx((0.0179801 + 0.7797906) / 2, abs=1e-6)
    assert FocalLoss(gamma=2.0, reduction="sum")(LOGITS, LABELS).item() == pytest.approx(0.7977707, abs=1e-6)


def test_focal_gamma0_is_cross_entropy():
    # (-ln 3/4 - ln 1/4) / 2 = (0.2876821 + 1.3862944) / 2
    loss = FocalLoss(gamma=0.0)(LOGITS, LABELS)
    assert loss.item() == pytest.approx(0.8369882, abs=1e-6)
    logits = torch.randn(5, 7)
    labels = torch.tensor([0, 3, 6, 2, 2])
    torch.testing.assert_close(FocalLoss(gamma=0)(logits, labels), F.cross_entropy(logits, labels))


def test_focal_alpha():
    # class weights [1, 3]; batch labels [1, 0] -> [3, 1], renormalised to mean 1 -> [1.5, 0.5]
    # (1.5 * 0.0179801 + 0.5 * 0.7797906) / 2 = 0.2084327
    loss = FocalLoss(gamma=2.0, alpha=[1.0, 3.0])(LOGITS, LABELS)
    assert loss.item() == pytest.approx(0.2084327, abs=1e-6)
    # equal weights change nothing
    torch.testing.assert_close(FocalLoss(alpha=torch.ones(2))(LOGITS, LABELS), FocalLoss()(LOGITS, LABELS))
    # alpha is not part of the state dict (checkpoints stay loadable)
    assert "alpha" not in FocalLoss(alpha=[1.0, 2.0]).state_dict()


def test_focal_bad_args():
    with pytest.raises(ValueError):
        FocalLoss(reduction="none")
    with pytest.raises(ValueError):
        FocalLoss(gamma=-1)


def test_focal_confident_wrong_is_finite():
    logits = torch.tensor([[200.0, -200.0]], requires_grad=True)
    loss = FocalLoss()(logits, torch.tensor([1]))
    loss.backward()
    assert loss.item() == pytest.approx(400.0, rel=1e-5)
    assert torch.isfinite(logits.grad).all()


# A=(0,0), B=(3,4) label 0; C=(0,1), D=(0,6) label 1
# AB=5 AC=1 AD=6 BC=sqrt(18)=4.2426 BD=sqrt(13)=3.6056 CD=5
POINTS = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0], [0.0, 6.0]])
POINT_LABELS = torch.tensor([0, 0, 1, 1])


def test_pairwise_distance():
    d = pairwise_euclidean(POINTS)
    expected = torch.tensor([[0, 5, 1, 6], [5, 0, math.sqrt(18), math.sqrt(13)],
                             [1, math.sqrt(18), 0, 5], [6, math.sqrt(13), 5, 0]])
    torch.testing.assert_close(d, expected)


def test_triplet_hand_computed():
    # anchor A: hardest pos 5 (B), hardest neg 1 (C)         -> 5 - 1 + 0.5 = 4.5
    # anchor B: hardest pos 5 (A), hardest neg 3.6056 (D)    -> 1.8944
    # anchor C: hardest pos 5 (D), hardest neg 1 (A)         -> 4.5
    # anchor D: hardest pos 5 (C), hardest neg 3.6056 (B)    -> 1.8944
    loss = HardTripletLoss(margin=0.5)(POINTS, POINT_LABELS)
    assert loss.item() == pytest.approx((4.5 + 1.8944487 + 4.5 + 1.8944487) / 4, abs=1e-5)
    # distances are not normalised: scaling the embeddings scales the loss (margin 0)
    assert HardTripletLoss(0.0)(10 * POINTS, POINT_LABELS).item() == pytest.approx(
        10 * HardTripletLoss(0.0)(POINTS, POINT_LABELS).item(), rel=1e-5)


def test_triplet_separated_and_singletons():
    x = torch.tensor([[0.0], [0.1], [10.0], [10.1]])
    assert HardTripletLoss(margin=1.0)(x, torch.tensor([0, 0, 1, 1])).item() == 0.0
    # an anchor without positives has hardest positive 0: relu(0 - 1 + 3) = 2 for both
    assert HardTripletLoss(margin=3.0)(torch.tensor([[0.0], [1.0]]), torch.tensor([0, 1])).item() == pytest.approx(2.0)


def test_center_hand_computed():
    loss_fn = CenterLoss(num_classes=2, feat_dim=2)
    with torch.no_grad():
        loss_fn.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    x = torch.tensor([[3.0, 4.0], [1.0, 2.0]])
    # (|(3,4)-(0,0)|^2 + |(1,2)-(1,1)|^2) / 2 = (25 + 1) / 2
    assert loss_fn(x, torch.tensor([0, 1])).item() == pytest.approx(13.0)
    assert loss_fn.centers.shape == (2, 2) and "centers" in loss_fn.state_dict()


def test_gradients_flow():
    torch.manual_seed(0)
    emb = torch.randn(6, 8, requires_grad=True)
    emb_dup = torch.cat([emb[:1], emb]).detach().requires_grad_()  # a zero distance off the diagonal
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    HardTripletLoss(0.3)(emb_dup, torch.tensor([0, 0, 0, 1, 1, 2, 2])).backward()
    assert torch.isfinite(emb_dup.grad).all() and emb_dup.grad.abs().sum() > 0

    logits = torch.randn(6, 3, requires_grad=True)
    FocalLoss(2.0)(logits, labels).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0

    center = CenterLoss(3, 8)
    center(emb, labels).backward()
    assert emb.grad.abs().sum() > 0
    assert center.centers.grad is not None and center.centers.grad[:3].abs().sum() > 0


def test_device_agnostic():
    """Nothing is tied to a device: the losses run on the meta device (and CUDA when present)."""
    devices = [torch.device("meta")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for dev in devices:
        emb = torch.randn(4, 5, device=dev)
        labels = torch.tensor([0, 0, 1, 1], device=dev)
        assert HardTripletLoss(0.3)(emb, labels).device.type == dev.type
        assert FocalLoss(alpha=[1.0, 2.0]).to(dev)(torch.randn(4, 2, device=dev), labels).device.type == dev.type
        assert CenterLoss(2, 5).to(dev)(emb, labels).device.type == dev.type
    # float64 stays float64, half precision is computed in float32
    assert HardTripletLoss(0.3)(POINTS.double(), POINT_LABELS).dtype == torch.float64
    assert FocalLoss()(LOGITS.bfloat16(), LABELS).dtype == torch.float32
    assert CenterLoss(2, 2).double()(POINTS[:2].double(), torch.tensor([0, 1])).dtype == torch.float64
