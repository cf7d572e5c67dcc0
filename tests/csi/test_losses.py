"""Losses against small hand-computed cases, gradient flow and device independence."""
from __future__ import annotations

import math
import pytest
import torch
import torch.nn.functional as F

from csi.losses import (LOSSES, CenterLoss, FocalLoss, HardTripletLoss, LabelSmoothingCE, NTXentLoss, SupConLoss,
                        pairwise_euclidean)
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


# --- softmax_ls, supcon, ntxent: against slow loop references -----------------------------

def _ref_label_smoothing(logits, labels, eps):
    total = 0.0
    for i in range(logits.shape[0]):
        row = [float(v) for v in logits[i]]
        m = max(row)
        log_z = m + math.log(sum(math.exp(v - m) for v in row))
        k = len(row)
        for c in range(k):
            q = (1 - eps) * (c == int(labels[i])) + eps / k
            total += -q * (row[c] - log_z)
    return total / logits.shape[0]


def _unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def _ref_supcon(emb, labels, t):
    z = [_unit([float(x) for x in row]) for row in emb]
    lab = [int(v) for v in labels]
    b = len(z)
    dot = lambda i, j: sum(x * y for x, y in zip(z[i], z[j]))
    losses = []
    for i in range(b):
        pos = [p for p in range(b) if p != i and lab[p] == lab[i]]
        if not pos:
            continue
        denom = sum(math.exp(dot(i, a) / t) for a in range(b) if a != i)
        losses.append(-sum(math.log(math.exp(dot(i, p) / t) / denom) for p in pos) / len(pos))
    return sum(losses) / len(losses)


def _ref_ntxent(emb, labels, t):
    z = [_unit([float(x) for x in row]) for row in emb]
    lab = [int(v) for v in labels]
    b = len(z)
    dot = lambda i, j: sum(x * y for x, y in zip(z[i], z[j]))
    total = 0.0
    for i in range(b):
        (j,) = [k for k in range(b) if k != i and lab[k] == lab[i]]
        denom = sum(math.exp(dot(i, k) / t) for k in range(b) if k != i)
        total += -math.log(math.exp(dot(i, j) / t) / denom)
    return total / b


def test_new_losses_registered_with_their_input():
    assert {"softmax_ls", "supcon", "ntxent"} <= set(LOSSES.names())
    assert LOSSES.get("softmax_ls").input == "logits"
    assert LOSSES.get("supcon").input == "embedding" and LOSSES.get("ntxent").input == "embedding"
    for name in ("softmax_ls", "supcon", "ntxent"):
        assert "et al." in LOSSES.get(name).__doc__
    assert LOSSES.build({"name": "supcon"}).temperature == 0.1
    assert LOSSES.build({"name": "softmax_ls"}).smoothing == 0.1
    with pytest.raises(ValueError, match="temperature"):
        LOSSES.build({"name": "supcon", "temperature": 0})
    with pytest.raises(ValueError, match="smoothing"):
        LOSSES.build({"name": "softmax_ls", "smoothing": 1.0})


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_softmax_ls_against_loop_reference(eps):
    torch.manual_seed(1)
    logits, labels = torch.randn(6, 5, dtype=torch.float64) * 3, torch.tensor([0, 4, 2, 2, 1, 3])
    loss = LabelSmoothingCE(smoothing=eps)(logits, labels)
    assert loss.item() == pytest.approx(_ref_label_smoothing(logits, labels, eps), rel=1e-10)
    torch.testing.assert_close(LabelSmoothingCE(eps)(logits.float(), labels),
                               F.cross_entropy(logits.float(), labels, label_smoothing=eps))


def test_softmax_ls_and_ntxent_hand_computed():
    """Numbers worked out by hand. Label smoothing 0.3 over 3 classes, logits (0, 0, ln 2),
    label 2: softmax (1/4, 1/4, 1/2), target (0.1, 0.1, 0.8), loss -(0.2·ln(1/4) + 0.8·ln(1/2))
    = 0.4·ln 2 + 0.8·ln 2 = 1.2·ln 2. NT-Xent at t = 1 on two pairs of orthogonal unit vectors:
    every anchor has similarity 1 to its pair and 0 to the two others, -ln(e / (e + 2))."""
    import math

    logits = torch.tensor([[0.0, 0.0, math.log(2.0)]], dtype=torch.float64)
    assert LabelSmoothingCE(0.3)(logits, torch.tensor([2])).item() == pytest.approx(1.2 * math.log(2.0), rel=1e-12)
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    loss = NTXentLoss(temperature=1.0)(z, torch.tensor([0, 0, 1, 1]))
    assert loss.item() == pytest.approx(-math.log(math.e / (math.e + 2.0)), rel=1e-12)


def test_softmax_ls_stable_gradient_and_fp16():
    logits = torch.tensor([[1000.0, -1000.0, 0.0]], requires_grad=True)
    loss = LabelSmoothingCE(0.1)(logits, torch.tensor([1]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    half = torch.randn(4, 6).half()
    out = LabelSmoothingCE(0.2)(half, torch.tensor([0, 1, 2, 3]))
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(_ref_label_smoothing(half.float(), [0, 1, 2, 3], 0.2), rel=1e-5)


@pytest.mark.parametrize("t", [0.1, 0.5])
def test_supcon_against_loop_reference(t):
    torch.manual_seed(2)
    emb = torch.randn(9, 4, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3])  # 3, 2, 3 versions and one anchor without a positive
    loss = SupConLoss(temperature=t)(emb, labels)
    assert loss.item() == pytest.approx(_ref_supcon(emb, labels, t), rel=1e-10)
    # scale-invariant: the embeddings are L2-normalised
    torch.testing.assert_close(SupConLoss(t)(emb * 7.0, labels), loss)


def test_supcon_gradient_no_positives_and_fp16():
    torch.manual_seed(3)
    emb = torch.randn(6, 8, requires_grad=True)
    SupConLoss()(emb, torch.tensor([0, 0, 1, 1, 2, 2])).backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0
    emb.grad = None
    none = SupConLoss()(emb, torch.arange(6))
    assert none.item() == 0.0 and none.requires_grad
    none.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))
    half = torch.randn(6, 8).half()
    out = SupConLoss(0.1)(half, torch.tensor([0, 0, 1, 1, 1, 2]))
    assert out.dtype == torch.float32 and torch.isfinite(out)
    assert out.item() == pytest.approx(_ref_supcon(half.float(), [0, 0, 1, 1, 1, 2], 0.1), rel=1e-4)


@pytest.mark.parametrize("t", [0.1, 0.5])
def test_ntxent_against_loop_reference_and_supcon(t):
    torch.manual_seed(4)
    emb = torch.randn(8, 5, dtype=torch.float64)
    labels = torch.tensor([3, 1, 0, 2, 1, 3, 2, 0])  # pairs in any order
    loss = NTXentLoss(temperature=t)(emb, labels)
    assert loss.item() == pytest.approx(_ref_ntxent(emb, labels, t), rel=1e-10)
    torch.testing.assert_close(loss, SupConLoss(t)(emb, labels))


def test_ntxent_rejects_other_counts_gradient_and_fp16():
    emb = torch.randn(6, 4, requires_grad=True)
    with pytest.raises(ValueError, match=r"exactly twice.*\{0: 3, 2: 1\}.*supcon"):
        NTXentLoss()(emb, torch.tensor([0, 0, 0, 1, 1, 2]))
    NTXentLoss()(emb, torch.tensor([0, 1, 2, 0, 1, 2])).backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0
    half = torch.randn(4, 4).half()
    out = NTXentLoss(0.2)(half, torch.tensor([0, 1, 1, 0]))
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(_ref_ntxent(half.float(), [0, 1, 1, 0], 0.2), rel=1e-4)


def test_supcon_and_softmax_ls_in_a_model_losses_list_train_a_step():
    from csi.models import build_model

    hp = {"input_dim": 96, "embed_dim": 32,
          "encoder": {"output_dims": 64, "num_blocks": 2, "attention_dim": 128},
          "pool_type": "attention", "ce": {"output_dims": 4},
          "losses": [{"name": "supcon", "weight": 0.5, "temperature": 0.1},
                     {"name": "softmax_ls", "weight": 1.0}]}
    torch.manual_seed(0)
    model = build_model(hp).train()
    feats, labels = torch.randn(8, 40, 96), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    loss, parts = model.compute_loss(feats, labels)
    assert set(parts) == {"supcon", "softmax_ls", "total"}
    torch.testing.assert_close(loss.detach(), 0.5 * parts["supcon"] + parts["softmax_ls"])
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    loss.backward()
    assert model._ce_layer.weight.grad.abs().sum() > 0
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    loss2, _ = model.compute_loss(feats, labels)
    assert torch.isfinite(loss2)
