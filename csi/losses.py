"""Training losses of the CoverHunter recipe: focal CE, batch-hard triplet, center loss.

All three are plain ``nn.Module`` s that work on whatever device their inputs are on
(no ``.cuda()`` anywhere) and are registered by name in ``LOSSES``:

    ====================  ===========================================================
    ``"focal"``           :class:`FocalLoss` - Lin et al. 2017, "Focal Loss for Dense
                          Object Detection" (arXiv 1708.02002)
    ``"hard_triplet"``    :class:`HardTripletLoss` - Hermans et al. 2017, "In Defense
                          of the Triplet Loss for Person Re-Identification" (batch-hard)
    ``"center"``          :class:`CenterLoss` - Wen et al. 2016, "A Discriminative
                          Feature Learning Approach for Deep Face Recognition"
    ====================  ===========================================================

The definitions follow what the CoverHunter reference trains with (see the notes on each
class where it differs from the textbook form).

Each registered loss says what it reads with a class attribute ``input``: ``"logits"``
(the classifier output on the BN neck) or ``"embedding"``; ``forward(x, labels) -> scalar``.
A constructor may take ``num_classes`` and ``feat_dim`` (the embedding size): the model
fills them in. ``build_loss`` builds one from a config entry; a model's weighted sum of them
is made in csi.models.heads.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from csi.registry import Registry

LOSSES = Registry("loss")

__all__ = ["LOSSES", "FocalLoss", "HardTripletLoss", "CenterLoss", "build_loss", "pairwise_euclidean"]
LOSS_INPUTS = ("logits", "embedding")


def build_loss(entry: dict, num_classes: int, feat_dim: int, where: str = "losses") -> nn.Module:
    """``LOSSES[entry["name"]]`` with the entry's other keys; ``num_classes``/``feat_dim`` are
    passed when the loss takes them. Unknown keys and a missing ``input`` are ConfigErrors."""
    import inspect

    from csi.registry import ConfigError

    cls = LOSSES.get(entry.get("name", ""))
    accepted = inspect.signature(cls).parameters
    context = {k: v for k, v in (("num_classes", num_classes), ("feat_dim", feat_dim)) if k in accepted}
    clash = sorted(set(context) & set(entry))
    if clash:
        raise ConfigError(f"{where}: {', '.join(clash)} come(s) from the model, not from the loss entry")
    loss = LOSSES.build({**entry, **context}, where=where)
    if getattr(loss, "input", None) not in LOSS_INPUTS:
        raise ConfigError(f"{where}: loss {entry['name']!r} does not say its input (class attribute "
                          f"input = 'logits' or 'embedding')")
    return loss


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 inputs are promoted to float32 (softmax and distances need the range)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


@LOSSES.register("focal")
class FocalLoss(nn.Module):
    input = "logits"

    """Focal loss ``FL(p_t) = -a_t (1 - p_t)^gamma log(p_t)`` over softmax logits.

    Args:
        gamma: focusing parameter; 0 gives plain cross entropy.
        alpha: optional per-class weights (sequence or 1-D tensor, one per class). As in
            the CoverHunter reference, the weights of the samples in a batch are
            renormalised to average 1 (``a_i / sum_j a_j * batch``), so alpha changes the
            balance between samples but not the overall loss scale.
        reduction: ``"mean"`` (default) or ``"sum"`` over the batch.

    ``forward(logits (B, C), labels (B,) int64) -> scalar``. ``log p_t`` comes from
    ``log_softmax`` (stable for very confident wrong predictions).
    """

    def __init__(self, gamma: float = 2.0, alpha: Sequence[float] | torch.Tensor | None = None,
                 reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"FocalLoss: reduction must be 'mean' or 'sum', got {reduction!r}")
        if gamma < 0:
            raise ValueError(f"FocalLoss: gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.reduction = reduction
        if alpha is not None:
            alpha = torch.as_tensor(alpha, dtype=torch.float32).flatten()
            if alpha.numel() == 0 or bool((alpha < 0).any()):
                raise ValueError("FocalLoss: alpha must be a non-empty list of non-negative weights")
        # not persistent: a checkpoint does not carry it (the reference does not either)
        self.register_buffer("alpha", alpha, persistent=False)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(_at_least_fp32(logits), dim=1).gather(1, labels.view(-1, 1)).squeeze(1)
        p = logp.exp()
        loss = -logp
        if self.gamma != 0:
            loss = (1.0 - p).clamp(min=0.0).pow(self.gamma) * loss
        if self.alpha is not None:
            a = self.alpha.to(loss.device).gather(0, labels.view(-1))
            loss = loss * (a / a.sum().clamp(min=torch.finfo(a.dtype).tiny) * labels.numel())
        return loss.mean() if self.reduction == "mean" else loss.sum()

    def extra_repr(self) -> str:
        n = None if self.alpha is None else self.alpha.numel()
        return f"gamma={self.gamma}, alpha={'None' if n is None else f'<{n} classes>'}, reduction={self.reduction!r}"


def pairwise_euclidean(x: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """(B, D) -> (B, B) Euclidean distances via ``|a|^2 - 2 a.b + |b|^2``, clamped at 0.

    The square root has a zero gradient where the distance is exactly 0 (the diagonal),
    instead of the NaN that ``sqrt'(0)`` would give.
    """
    gram = x @ x.t()
    sq = gram.diagonal()
    d2 = (sq.unsqueeze(1) - 2.0 * gram + sq.unsqueeze(0)).clamp(min=0.0)
    if squared:
        return d2
    zero = d2 == 0
    return torch.sqrt(torch.where(zero, torch.ones_like(d2), d2)).masked_fill(zero, 0.0)


@LOSSES.register("hard_triplet")
class HardTripletLoss(nn.Module):
    input = "embedding"

    """Batch-hard triplet loss: ``mean_a relu(max_p d(a,p) - min_n d(a,n) + margin)``.

    Distances are Euclidean on the raw embeddings (no L2 normalisation, as the CoverHunter
    reference does). For every anchor a, the hardest positive is the farthest other
    sample with the same label (0 when there is none) and the hardest negative is the
    closest sample with another label; every anchor of the batch counts in the mean.

    ``forward(embeddings (B, D), labels (B,)) -> scalar``.
    """

    def __init__(self, margin: float = 0.3):
        super().__init__()
        self.margin = float(margin)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        dist = pairwise_euclidean(_at_least_fp32(embeddings))
        labels = labels.view(-1)
        same = labels.unsqueeze(0) == labels.unsqueeze(1)
        eye = torch.eye(labels.numel(), dtype=torch.bool, device=labels.device)
        positive = same & ~eye
        hardest_pos = (dist * positive).amax(dim=1)
        # push same-label entries (incl. the anchor itself) out of the min by the row max
        row_max = dist.amax(dim=1, keepdim=True)
        hardest_neg = (dist + row_max * same).amin(dim=1)
        return F.relu(hardest_pos - hardest_neg + self.margin).mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


@LOSSES.register("center")
class CenterLoss(nn.Module):
    input = "embedding"

    """Center loss ``1/B sum_i |x_i - c_{y_i}|^2`` with learnable centres ``centers`` (C, D).

    The centres are an ``nn.Parameter`` (initialised ``randn``) trained by the optimiser
    together with the model, as in the CoverHunter reference (not the moving-average
    update of the paper). Each squared distance is clamped to [1e-12, 1e12].
    """

    def __init__(self, num_classes: int, feat_dim: int):
        super().__init__()
        if num_classes < 1 or feat_dim < 1:
            raise ValueError(f"CenterLoss: num_classes and feat_dim must be >= 1, got {num_classes}, {feat_dim}")
        self.num_classes = int(num_classes)
        self.feat_dim = int(feat_dim)
        self.centers = nn.Parameter(torch.randn(self.num_classes, self.feat_dim))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        diff = features - self.centers.index_select(0, labels.view(-1))
        return diff.pow(2).sum(dim=1).clamp(min=1e-12, max=1e12).sum() / features.size(0)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, feat_dim={self.feat_dim}"
