"""ByteCover (Du et al. 2021, "ByteCover: Cover Song Identification via Multi-Loss
Training", arXiv 2010.14022): a ResNet-50 over the CQT with instance-batch normalisation
(IBN-a, Pan et al. 2018: half of the channels of the first normalisation of every
bottleneck in stages 1-3 instance-normalised), generalised-mean pooling (GeM, Radenović et
al. 2018) and the BN neck shared by every model here (csi.models.heads); trained with
classification plus triplet loss (the paper's softmax with label smoothing is
``losses: [{name: softmax_ls, ...}, {name: hard_triplet, ...}]``).

    feat (B, T, bins) -> BatchNorm over the bins (as CoverHunter's input) -> (B, 1, bins, T)
      -> stem (7x7/2 conv, 3x3/2 max pool)
      -> 4 stages of bottlenecks (width, 2w, 4w, 8w channels x 4; the last stage keeps its
         resolution: last_stride 1, as ByteCover does) -> GeM over bins x time
      -> [linear to embed_dim when it differs from 32·width] = embedding

``width`` (64 in the paper) and ``blocks`` ((3, 4, 6, 3): ResNet-50) are configurable so a
small variant trains on a CPU.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from csi.models.heads import EmbeddingModel, config_number
from csi.models.registry import MODELS
from csi.registry import ConfigError

EXPANSION = 4


class IBN(nn.Module):
    """IBN-a normalisation: InstanceNorm on the first half of the channels, BatchNorm on the rest."""

    def __init__(self, channels: int):
        super().__init__()
        self.half = channels // 2
        self.instance = nn.InstanceNorm2d(self.half, affine=True)
        self.batch = nn.BatchNorm2d(channels - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat([self.instance(a.contiguous()), self.batch(b.contiguous())], dim=1)


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3/stride, 1x1 x4) with an optional IBN-a first normalisation."""

    def __init__(self, c_in: int, width: int, stride: int, ibn: bool):
        super().__init__()
        c_out = width * EXPANSION
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.norm1 = IBN(width) if ibn else nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.norm3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = None if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.norm1(self.conv1(x)))
        y = self.relu(self.norm2(self.conv2(y)))
        y = self.norm3(self.conv3(y))
        return self.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class GeM(nn.Module):
    """Generalised-mean pooling over (bins, time): ``(mean x^p)^(1/p)`` with a learnt p."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


@MODELS.register("bytecover")
class ByteCover(EmbeddingModel):
    """See the module docstring. Keys: ``input_dim``, ``embed_dim``, ``width``, ``blocks``,
    ``last_stride``, ``gem_p`` and the loss sections."""

    def __init__(self, input_dim: int = 96, embed_dim: int = 2048, width: int = 64,
                 blocks: Sequence[int] = (3, 4, 6, 3), last_stride: int = 1, gem_p: float = 3.0,
                 ce: Mapping | None = None, triplet: Mapping | None = None, center: Mapping | None = None,
                 losses: list | None = None):
        super().__init__()
        self.input_dim = config_number(input_dim, "input_dim", int, positive=True)
        embed_dim = config_number(embed_dim, "embed_dim", int, positive=True)
        width = config_number(width, "width", int, positive=True)
        if not isinstance(blocks, (list, tuple)) or len(blocks) != 4 or any(
                not isinstance(b, int) or b < 1 for b in blocks):
            raise ConfigError(f"model config: blocks must be 4 positive block counts, got {blocks!r}")
        if last_stride not in (1, 2):
            raise ConfigError(f"model config: last_stride must be 1 or 2, got {last_stride!r}")
        self.input_norm = nn.BatchNorm1d(self.input_dim)
        self.stem = nn.Sequential(nn.Conv2d(1, width, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        stages, c_in = [], width
        for k, (n, stride) in enumerate(zip(blocks, (1, 2, 2, last_stride))):
            w = width * 2 ** k
            layers = [Bottleneck(c_in, w, stride, ibn=k < 3)]
            layers += [Bottleneck(w * EXPANSION, w, 1, ibn=k < 3) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            c_in = w * EXPANSION
        self.stages = nn.Sequential(*stages)
        self.pool = GeM(config_number(gem_p, "gem_p", positive=True))
        self.projection = None if embed_dim == c_in else nn.Linear(c_in, embed_dim)
        self.build_heads(embed_dim, ce, triplet, center, losses)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """feat (B, T, input_dim) -> embedding (B, embed_dim), before the BN neck."""
        if feat.dim() != 3 or feat.size(-1) != self.input_dim:
            raise ValueError(f"bytecover expects (batch, frames, {self.input_dim}) features, got {tuple(feat.shape)}")
        x = self.pool(self.stages(self.stem(self.input_norm(feat.transpose(1, 2)).unsqueeze(1))))
        return x if self.projection is None else self.projection(x)
