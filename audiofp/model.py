"""The fingerprinter: a CNN over the 256 × 32 log-mel segment with separable 1×3 / 3×1
convolutions, then "divide and encode" to a 128-d L2-normalised fingerprint (after Chang et
al. 2021, §3.2: each of the ``dim`` groups of the flattened feature map is projected on its
own to one output dimension through a small hidden layer).

Widths are configurable so that a small variant trains on a CPU (the paper's channels grow
to 1024; ``channels`` here, default 32 … 256). Registered in ``FINGERPRINTERS`` by name.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from csi.registry import ConfigError, Registry

FINGERPRINTERS = Registry("fingerprinter")


class _SeparableBlock(nn.Module):
    """Conv 1×3 (stride 2 over frames) → LayerNorm → ReLU → conv 3×1 (stride 2 over mels)
    → LayerNorm → ReLU; LayerNorm over (channels, mels, frames) as in the paper."""

    def __init__(self, c_in: int, c_out: int, shape_in: tuple[int, int]):
        super().__init__()
        mels, frames = shape_in
        frames_out = (frames - 1) // 2 + 1
        mels_out = (mels - 1) // 2 + 1
        self.time = nn.Conv2d(c_in, c_out, (1, 3), stride=(1, 2), padding=(0, 1))
        self.norm1 = nn.LayerNorm([c_out, mels, frames_out])
        self.freq = nn.Conv2d(c_out, c_out, (3, 1), stride=(2, 1), padding=(1, 0))
        self.norm2 = nn.LayerNorm([c_out, mels_out, frames_out])
        self.shape_out = (mels_out, frames_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.norm1(self.time(x)))
        return torch.relu(self.norm2(self.freq(x)))


@FINGERPRINTERS.register("nafp_cnn")
class FingerprintCNN(nn.Module):
    """(batch, n_mels, frames) log-mel → (batch, dim) unit-norm fingerprints."""

    def __init__(self, n_mels: int = 256, frames: int = 32, dim: int = 128,
                 channels: Sequence[int] = (32, 64, 128, 128, 256), hidden_per_dim: int = 32):
        super().__init__()
        if not channels:
            raise ConfigError("fingerprinter: channels must list at least one block width")
        blocks, shape, c_in = [], (n_mels, frames), 1
        for c in channels:
            block = _SeparableBlock(c_in, int(c), shape)
            blocks.append(block)
            shape, c_in = block.shape_out, int(c)
        self.blocks = nn.Sequential(*blocks)
        flat = c_in * shape[0] * shape[1]
        groups = dim
        per_group = -(-flat // groups)
        self.pad = per_group * groups - flat
        # divide and encode: one small MLP per output dimension, as grouped 1-d convolutions
        self.encode = nn.Sequential(nn.Conv1d(groups * per_group, groups * hidden_per_dim, 1, groups=groups), nn.ELU(),
                                    nn.Conv1d(groups * hidden_per_dim, groups, 1, groups=groups))
        self.output_size = dim

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.blocks(mel.unsqueeze(1)).flatten(1)
        if self.pad:
            x = nn.functional.pad(x, (0, self.pad))
        x = self.encode(x.unsqueeze(-1)).squeeze(-1)
        return nn.functional.normalize(x, dim=1)


def build_fingerprinter(config: dict) -> nn.Module:
    return FINGERPRINTERS.build(config, "fingerprint model")
