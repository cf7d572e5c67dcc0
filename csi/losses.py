"""Training losses: the CoverHunter recipe's (focal CE, batch-hard triplet, center loss) and
label-smoothed CE, supervised contrastive and NT-Xent.

All are plain ``nn.Module`` s that work on whatever device their inputs are on
(no ``.cuda()`` anywhere) and are registered by name in ``LOSSES``:

    ====================  ===========================================================
    ``"focal"``           :class:`FocalLoss` - Lin et al. 2017, "Focal Loss for Dense
                          Object Detection" (arXiv 1708.02002)
    ``"hard_triplet"``    :class:`HardTripletLoss` - Hermans et al. 2017, "In Defense
                          of the Triplet Loss for Person Re-Identification" (batch-hard)
    ``"center"``          :class:`CenterLoss` - Wen et al. 2016, "A Discriminative
                          Feature Learning Approach for Deep Face Recognition"
    ``"softmax_ls"``      :class:`LabelSmoothingCE` - Szegedy et al. 2016, "Rethinking
                          the Inception Architecture for Computer Vision", sec. 7
    ``"supcon"``          :class:`SupConLoss` - Khosla et al. 2020, "Supervised
                          Contrastive Learning", eq. 2 (L_out); any number of versions
                          per label
    ``"ntxent"``          :class:`NTXentLoss` - Chen et al. 2020, "A Simple Framework for
                          Contrastive Learning of Visual Representations" (SimCLR), eq. 1;
                          exactly two items per label in a batch
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

__all__ = ["LOSSES", "FocalLoss", "HardTripletLoss", "CenterLoss", "LabelSmoothingCE", "SupConLoss",
           "NTXentLoss", "build_loss", "pairwise_euclidean"]
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


def _check_temperature(name: str, temperature: float) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"{name}: temperature must be a number > 0, got {temperature!r}")
    return float(temperature)


@LOSSES.register("softmax_ls")
class LabelSmoothingCE(nn.Module):
    """Cross entropy with label smoothing (Szegedy et al. 2016, "Rethinking the Inception
    Architecture for Computer Vision", sec. 7).

    The one-hot target is replaced by ``q'(k) = (1 - eps) [k = y] + eps / K`` over the K
    classes, so the loss of a sample is ``(1 - eps) (-log p_y) + eps * mean_k(-log p_k)``
    with ``log p`` from ``log_softmax`` (stable for very confident logits); the mean is
    over the batch. ``smoothing=0`` is plain cross entropy.

    Args:
        smoothing: eps, in [0, 1).

    ``forward(logits (B, K), labels (B,) int64) -> scalar``; fp16/bf16 logits are promoted
    to float32.
    """

    input = "logits"

    def __init__(self, smoothing: float = 0.1):
        super().__init__()
        if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0.0 <= smoothing < 1.0:
            raise ValueError(f"LabelSmoothingCE: smoothing must be in [0, 1), got {smoothing!r}")
        self.smoothing = float(smoothing)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(_at_least_fp32(logits), dim=1)
        nll = -logp.gather(1, labels.view(-1, 1).to(logp.device)).squeeze(1)
        uniform = -logp.mean(dim=1)
        return ((1.0 - self.smoothing) * nll + self.smoothing * uniform).mean()

    def extra_repr(self) -> str:
        return f"smoothing={self.smoothing}"


def _contrastive_log_prob(embeddings: torch.Tensor, temperature: float) -> torch.Tensor:
    """(B, D) -> (B, B): ``log( exp(z_i.z_j / t) / sum_{a != i} exp(z_i.z_a / t) )`` on the
    L2-normalised embeddings z (cosine similarity); the diagonal is left out of the
    denominator (its own entries are meaningless and must be masked by the caller)."""
    z = F.normalize(_at_least_fp32(embeddings), dim=1)
    sim = z @ z.t() / temperature
    eye = torch.eye(sim.size(0), dtype=torch.bool, device=sim.device)
    denom = torch.logsumexp(sim.masked_fill(eye, float("-inf")), dim=1, keepdim=True)
    return sim - denom


@LOSSES.register("supcon")
class SupConLoss(nn.Module):
    """Supervised contrastive loss between versions (Khosla et al. 2020, "Supervised
    Contrastive Learning", eq. 2, L_out).

    With z the L2-normalised embeddings, A(i) every other item of the batch and P(i) the
    other items with the label of anchor i::

        L_i = -1/|P(i)| sum_{p in P(i)} log( exp(z_i.z_p / t) / sum_{a in A(i)} exp(z_i.z_a / t) )

    The loss is the mean of L_i over the anchors that have at least one positive (the
    paper sums over the batch; the mean keeps the scale independent of the batch size).
    Anchors without a positive are skipped; a batch without any positive pair gives 0
    (with a gradient path to the embeddings, so a training step does not fail or NaN).
    Works for any number of versions per label (M-per-class batches).

    Args:
        temperature: t > 0.

    ``forward(embeddings (B, D), labels (B,)) -> scalar``; fp16/bf16 embeddings are
    promoted to float32.
    """

    input = "embedding"

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        self.temperature = _check_temperature("SupConLoss", temperature)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_prob = _contrastive_log_prob(embeddings, self.temperature)
        labels = labels.view(-1).to(log_prob.device)
        eye = torch.eye(labels.numel(), dtype=torch.bool, device=log_prob.device)
        positive = (labels.unsqueeze(0) == labels.unsqueeze(1)) & ~eye
        n_pos = positive.sum(dim=1)
        has_pos = n_pos > 0
        if not bool(has_pos.any()):
            return log_prob.new_zeros(()) + 0.0 * embeddings.sum()
        per_anchor = -log_prob.masked_fill(~positive, 0.0).sum(dim=1)[has_pos] / n_pos[has_pos]
        return per_anchor.mean()

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


@LOSSES.register("ntxent")
class NTXentLoss(SupConLoss):
    """NT-Xent, the normalised temperature-scaled cross entropy of SimCLR (Chen et al. 2020,
    "A Simple Framework for Contrastive Learning of Visual Representations", eq. 1).

    For a positive pair (i, j) of L2-normalised embeddings z::

        l(i, j) = -log( exp(z_i.z_j / t) / sum_{k != i} exp(z_i.z_k / t) )

    averaged over the 2N anchors of a batch of N pairs (both orders of every pair). Here a
    pair is the two items of a label: every label in the batch must occur exactly twice
    (any order). A batch where some label has another count raises a ValueError naming the
    counts; for M-per-class batches with M > 2 (or unpaired items) use ``supcon``, which
    equals this loss when every label has exactly two items.

    Args:
        temperature: t > 0.

    ``forward(embeddings (2N, D), labels (2N,)) -> scalar``; fp16/bf16 embeddings are
    promoted to float32.
    """

    def __init__(self, temperature: float = 0.1):
        nn.Module.__init__(self)
        self.temperature = _check_temperature("NTXentLoss", temperature)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.view(-1).to(embeddings.device)
        values, counts = torch.unique(labels, return_counts=True)
        if labels.numel() == 0 or bool((counts != 2).any()):
            bad = {int(v): int(c) for v, c in zip(values.tolist(), counts.tolist()) if c != 2}
            raise ValueError(f"NTXentLoss: every label must occur exactly twice in a batch (two views); "
                             f"label: count {bad or 'empty batch'}; use 'supcon' for M-per-class batches")
        return super().forward(embeddings, labels)   # one positive per anchor: SupCon's L_out is NT-Xent
