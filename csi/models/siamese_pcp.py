"""The Siamese PCP system of the Da-TACOS seed (``model: siamese_pcp``).

Input: a crema PCP (B, T, 12). It is laid out as the seed system's 23 × 500 image: tiled
twice along pitch (24 rows, so every transposition is a contiguous 12-row window) with the
last row removed (23), and resized to 500 frames along time (linear interpolation). A CNN
encoder (shared weights: the same module embeds both sides of a pair) maps the image to an
embedding; the pair head takes the element-wise L1 distance of two embeddings into one
sigmoid unit: "same work or not".

Training inside the M-per-class trainer (``compute_loss``): the batch holds M chunks of each
of B/M works; every pair of chunks of one work is a positive, and as many negatives are drawn
(a chunk of another work, random); binary cross-entropy on the sigmoid output. ``forward`` is
the encoder embedding, which evaluation, dev MAP and the index compare (cosine distance).

The heads of :class:`csi.models.heads.EmbeddingModel` (BN neck and classifier, sized by
``ce.output_dims``) are built so checkpoints and ``inference`` work as for the other models;
they are not trained by this loss.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from csi.features import pcp as _pcp  # noqa: F401  (registers the datacos_pcp front end)
from csi.models.heads import EmbeddingModel, config_number
from csi.models.registry import MODELS
from csi.registry import ConfigError


def seed_image(feat: torch.Tensor, frames: int = 500) -> torch.Tensor:
    """(B, T, 12) PCP -> (B, 1, 23, frames): tiled twice in pitch, last row removed, time resized."""
    x = torch.cat([feat, feat], dim=-1)[..., :-1].transpose(1, 2)      # (B, 23, T)
    x = F.interpolate(x, size=frames, mode="linear", align_corners=False)
    return x.unsqueeze(1)


@MODELS.register("siamese_pcp")
class SiamesePCP(EmbeddingModel):
    """Keys: ``input_dim`` (12), ``embed_dim``, ``frames`` (500), ``channels`` (one conv block
    each: conv 3×3 → BN → ReLU → max-pool 2×2), ``dropout``, ``negatives_per_positive`` and
    ``ce`` (only ``output_dims``, for the shared heads)."""

    def __init__(self, input_dim: int = 12, embed_dim: int = 128, frames: int = 500,
                 channels: Sequence[int] = (16, 32, 64, 128), dropout: float = 0.1,
                 negatives_per_positive: float = 1.0, ce: Mapping | None = None):
        super().__init__()
        input_dim = config_number(input_dim, "input_dim", int, positive=True)
        if input_dim != 12:
            raise ConfigError(f"model config: siamese_pcp reads a 12-bin PCP (input_dim 12), got {input_dim}")
        embed_dim = config_number(embed_dim, "embed_dim", int, positive=True)
        self.input_dim, self.frames = input_dim, config_number(frames, "frames", int, positive=True)
        self.neg_ratio = config_number(negatives_per_positive, "negatives_per_positive", positive=True)
        layers: list[nn.Module] = []
        c_in = 1
        for c in channels:
            c = config_number(c, "channels", int, positive=True)
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2, ceil_mode=True)]
            c_in = c
        self.encoder = nn.Sequential(*layers)
        self.dropout = nn.Dropout(config_number(dropout, "dropout", minimum=0.0))
        self.project = nn.Linear(2 * c_in, embed_dim)
        self.pair_head = nn.Linear(embed_dim, 1)     # L1 distance -> one sigmoid unit
        self.build_heads(embed_dim, ce, None, None)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """feat (B, T, 12) -> encoder embedding (B, embed_dim)."""
        if feat.dim() != 3 or feat.size(-1) != self.input_dim:
            raise ValueError(f"siamese_pcp expects (batch, frames, {self.input_dim}) features, got {tuple(feat.shape)}")
        x = self.encoder(seed_image(feat.float(), self.frames))           # (B, C, h, w)
        x = torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)
        return self.project(self.dropout(x))

    def same_work_logit(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Logit of "same work" for embeddings ``a`` and ``b`` (sigmoid of it is the probability)."""
        return self.pair_head(torch.abs(a - b)).squeeze(-1)

    def pairs(self, labels: torch.Tensor, generator: torch.Generator | None = None):
        """(i, j, target): every same-work pair i < j, and ``negatives_per_positive`` times as
        many pairs of different works drawn at random."""
        n = labels.numel()
        same = labels.view(-1, 1) == labels.view(1, -1)
        upper = torch.triu(torch.ones(n, n, dtype=torch.bool, device=labels.device), diagonal=1)
        pos = (same & upper).nonzero()
        neg = (~same & upper).nonzero()
        k = min(len(neg), max(1, int(round(len(pos) * self.neg_ratio))))
        if len(neg):
            neg = neg[torch.randperm(len(neg), generator=generator, device="cpu")[:k].to(neg.device)]
        ij = torch.cat([pos, neg])
        target = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).to(labels.device)
        return ij[:, 0], ij[:, 1], target

    def compute_loss(self, feat: torch.Tensor, labels: torch.Tensor):
        embed = self.forward(feat)
        labels = labels.to(embed.device).long().view(-1)
        i, j, target = self.pairs(labels)
        if len(target) == 0:
            raise ValueError("siamese_pcp: a batch needs at least two chunks (one pair)")
        logit = self.same_work_logit(embed[i], embed[j])
        loss = F.binary_cross_entropy_with_logits(logit, target)
        with torch.no_grad():
            acc = ((logit > 0).float() == target).float().mean()
        return loss, {"bce": loss.detach(), "pair_acc": acc, "total": loss.detach()}
