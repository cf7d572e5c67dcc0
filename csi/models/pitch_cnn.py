"""A transposition-invariant CNN over the pitch-class circle (``model: pitch_cnn``).

The CQT (B, T, bins) with ``bins_per_octave`` bins an octave is laid out as an image of
pitch class x time with one channel per octave (``fold: octaves``) or a single chroma
channel (``fold: chroma``: the octaves summed as power, each frame divided by its
largest pitch class, then ``log(1 + 10 v) / log 11``, the CLP compression of Muller & Ewert
2011). Convolutions wrap around the pitch-class axis (circular padding), so transposing
the input by k semitones
rolls every feature map by k; a max over the pitch-class axis then makes the embedding
invariant to key, by construction rather than by augmentation. This is the key-invariance
idea of Bello's and Serrà's chroma systems (best of 12 shifts) and of the CNNs of Yu et al.
2019 ("Learning a Representation for Cover Song Identification Using Convolutional Neural
Network", arXiv 1911.00334, max-pooling over pitch) on a pitch-class circle.

    feat (B, T, bins) -> (B, octaves|1, bpo, T) -> BatchNorm2d
      -> blocks: [circular-pitch conv -> BN -> ReLU] x 2 -> avg-pool time by time_pool[i]
         (kernels 3 x time_kernel; the very first first_pitch_kernel x time_kernel: 12 lets
         every position see the whole pitch-class circle relative to itself)
      -> max over pitch class -> (B, T', C) -> POOLINGS[pool_type] -> embed_dim
    training heads and losses: :class:`csi.models.heads.EmbeddingModel`.

Sizes for a CPU budget (conf/train/demo_quick.yaml): ``fold: chroma``, ``first_pitch_kernel:
12``, channels (32, 64, 96) and 12.5 model frames/s (``mean_size: 2``) train at about 100
chunks of 20 s a second on 2 cores.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from csi.models.heads import EmbeddingModel, config_number
from csi.models.registry import MODELS
from csi.registry import ConfigError

FOLDS = ("octaves", "chroma")
CHROMA_FLOOR = 1e-6  # frames quieter than -60 dB re the clip maximum stay near 0 (silence, padding)


class _CircularPitchConv(nn.Module):
    """Conv2d over (pitch class, time): pitch padded circularly, time with zeros."""

    def __init__(self, c_in: int, c_out: int, pitch_kernel: int = 3, time_kernel: int = 3):
        super().__init__()
        self.before, self.after = pitch_kernel // 2, (pitch_kernel - 1) // 2
        self.conv = nn.Conv2d(c_in, c_out, (pitch_kernel, time_kernel), padding=(0, time_kernel // 2), bias=False)
        self.norm = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.before, self.after
        x = torch.cat([x[:, :, x.size(2) - a:], x, x[:, :, :b]], dim=2) if a or b else x
        return F.relu(self.norm(self.conv(x)))


@MODELS.register("pitch_cnn")
class PitchCNN(EmbeddingModel):
    """See the module docstring. Keys: ``input_dim`` (bins, a multiple of
    ``bins_per_octave``), ``embed_dim``, ``bins_per_octave`` (12), ``fold``, ``channels``,
    ``time_pool`` (one factor per block), ``pool_type``, ``dropout`` and the loss sections."""

    def __init__(self, input_dim: int = 96, embed_dim: int = 128, bins_per_octave: int = 12,
                 fold: str = "octaves", channels: Sequence[int] = (32, 64, 128, 128),
                 time_pool: Sequence[int] = (2, 2, 2, 1), first_pitch_kernel: int = 3, time_kernel: int = 3,
                 pool_type: str = "attention", dropout: float = 0.1,
                 ce: Mapping | None = None, triplet: Mapping | None = None, center: Mapping | None = None,
                 losses: list | None = None):
        super().__init__()
        input_dim = config_number(input_dim, "input_dim", int, positive=True)
        embed_dim = config_number(embed_dim, "embed_dim", int, positive=True)
        bpo = config_number(bins_per_octave, "bins_per_octave", int, positive=True)
        if input_dim % bpo:
            raise ConfigError(f"model config: pitch_cnn needs input_dim a multiple of bins_per_octave "
                              f"({input_dim} % {bpo} != 0): it folds the CQT into octaves")
        if fold not in FOLDS:
            raise ConfigError(f"model config: fold must be one of {', '.join(FOLDS)}, got {fold!r}")
        channels = [config_number(c, "channels", int, positive=True) for c in channels]
        time_pool = [config_number(t, "time_pool", int, positive=True) for t in time_pool]
        if not channels or len(time_pool) != len(channels):
            raise ConfigError(f"model config: channels and time_pool need one entry per block, got "
                              f"{len(channels)} and {len(time_pool)}")
        self.input_dim, self.bins_per_octave, self.fold = input_dim, bpo, fold
        self.octaves = input_dim // bpo
        c_in = self.octaves if fold == "octaves" else 1
        self.input_norm = nn.BatchNorm2d(c_in)
        blocks = []
        first = config_number(first_pitch_kernel, "first_pitch_kernel", int, positive=True)
        tk = config_number(time_kernel, "time_kernel", int, positive=True)
        if first > bpo or tk % 2 != 1:
            raise ConfigError(f"model config: need first_pitch_kernel <= bins_per_octave and an odd time_kernel, "
                              f"got {first} and {tk}")
        for i, (c_out, t) in enumerate(zip(channels, time_pool)):
            layers: list[nn.Module] = [_CircularPitchConv(c_in, c_out, first if i == 0 else 3, tk),
                                       _CircularPitchConv(c_out, c_out, 3, tk)]
            if t > 1:
                layers.append(nn.AvgPool2d((1, t), ceil_mode=True))
            blocks.append(nn.Sequential(*layers))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(config_number(dropout, "dropout", minimum=0.0))
        self.build_pooling(pool_type, c_in, embed_dim)
        self.build_heads(embed_dim, ce, triplet, center, losses)

    def pitch_image(self, feat: torch.Tensor) -> torch.Tensor:
        """(B, T, bins) dB CQT -> (B, octaves or 1, bins_per_octave, T)."""
        b, t, _ = feat.shape
        x = feat.reshape(b, t, self.octaves, self.bins_per_octave).permute(0, 2, 3, 1)
        if self.fold == "chroma":  # octaves summed as power, each frame scaled to its peak, log-compressed
            power = torch.pow(10.0, x.clamp(max=0.0) / 10.0).sum(dim=1, keepdim=True)
            peak = power.amax(dim=2, keepdim=True).clamp(min=CHROMA_FLOOR)
            x = torch.log1p(10.0 * power / peak) / math.log(11.0)
        return x

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """feat (B, T, input_dim) -> embedding (B, embed_dim), before the BN neck."""
        if feat.dim() != 3 or feat.size(-1) != self.input_dim:
            raise ValueError(f"pitch_cnn expects (batch, frames, {self.input_dim}) features, "
                             f"got {tuple(feat.shape)}")
        x = self.blocks(self.input_norm(self.pitch_image(feat)))
        x = x.amax(dim=2)                       # max over pitch class: key invariance
        return self._pool_layer(self.dropout(x.transpose(1, 2)))
