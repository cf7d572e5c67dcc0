"""Temporal pooling: (B, T, C) frame features -> (B, output_size) clip embedding.

Registered in ``POOLINGS``; every pooling takes ``in_dim`` and an optional ``out_dim``
and reports ``output_size``:

    ``"attention"``  attentive statistics pooling (Okabe et al. 2018, "Attentive
                   Statistics Pooling for Deep Speaker Embedding", arXiv 1803.10963) with
                   the global context of ECAPA-TDNN (Desplanques et al. 2020): the CoverHunter
                   pooling. Output ``out_dim`` (default ``in_dim``).
    ``"stats"``      mean and standard deviation over time (2 x in_dim), projected to
                   ``out_dim`` by a bias-free Linear when ``out_dim`` is given and differs.
    ``"mean"``       mean over time (in_dim), projected likewise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from csi.models.registry import POOLINGS

__all__ = ["AttentiveStatisticsPooling", "StatsPooling", "MeanPooling"]

_EPS = 1e-12  # variance floor before the square root


def _weighted_stats(x: torch.Tensor, w: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over time (dim 1) of x (B, T, C), with weights w (B, T, C) summing to 1 over T
    (uniform when None). std = sqrt(max(var, 1e-12))."""
    if w is None:
        mean = x.mean(dim=1)
        var = (x - mean.unsqueeze(1)).pow(2).mean(dim=1)
    else:
        mean = (w * x).sum(dim=1)
        var = (w * (x - mean.unsqueeze(1)).pow(2)).sum(dim=1)
    return mean, var.clamp(min=_EPS).sqrt()


class _XavierLinear(nn.Module):
    """Linear with Xavier-uniform weights (checkpoint key ``linear_layer``)."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True):
        super().__init__()
        self.linear_layer = nn.Linear(in_dim, out_dim, bias=bias)
        nn.init.xavier_uniform_(self.linear_layer.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_layer(x)


class _XavierConv1x1(nn.Module):
    """1x1 Conv1d with Xavier-uniform weights (checkpoint key ``conv``), applied on (B, T, C)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size=1)
        nn.init.xavier_uniform_(self.conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.conv.weight.squeeze(-1), self.conv.bias)


@POOLINGS.register("attention")
class AttentiveStatisticsPooling(nn.Module):
    """Attentive statistics pooling with global context, per channel.

    For frames h_t (C channels): the global mean m and std s over time are appended to
    every frame, ``e_t = Conv1x1(tanh(Linear([h_t, m, s])))`` (3C -> C -> C),
    ``a_t = softmax_t(e_t)`` per channel, and the attention-weighted mean and std
    ``mu = sum a_t h_t`` and ``sqrt(sum a_t (h_t - mu)^2)`` are projected by a bias-free
    Linear(2C -> out_dim). Names match the CoverHunter checkpoint
    (``_linear.linear_layer``, ``_conv.conv``, ``_final_layer``).
    """

    def __init__(self, in_dim: int, out_dim: int | None = None):
        super().__init__()
        out_dim = in_dim if out_dim is None else out_dim
        self.in_dim, self.out_dim = in_dim, out_dim
        self._linear = _XavierLinear(3 * in_dim, in_dim)
        self._tanh = nn.Tanh()
        self._conv = _XavierConv1x1(in_dim, in_dim)
        self._final_layer = nn.Linear(2 * in_dim, out_dim, bias=False)

    @property
    def output_size(self) -> int:
        return self.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.in_dim
        mean, std = _weighted_stats(x, None)
        # Linear over [x_t, mean, std]: split the weight instead of repeating mean/std over T
        w = self._linear.linear_layer.weight
        context = F.linear(torch.cat([mean, std], dim=1), w[:, c:], self._linear.linear_layer.bias)
        e = self._conv(self._tanh(F.linear(x, w[:, :c]) + context.unsqueeze(1)))
        attn = torch.softmax(e, dim=1)
        mean, std = _weighted_stats(x, attn)
        return self._final_layer(torch.cat([mean, std], dim=1))


class _ProjectedPooling(nn.Module):
    """Shared out_dim handling: a bias-free Linear ``proj`` when out_dim differs from the natural size."""

    natural_factor = 1

    def __init__(self, in_dim: int, out_dim: int | None = None):
        super().__init__()
        natural = self.natural_factor * in_dim
        self.in_dim = in_dim
        self.proj = nn.Linear(natural, out_dim, bias=False) if out_dim not in (None, natural) else None
        self.out_dim = natural if self.proj is None else out_dim

    @property
    def output_size(self) -> int:
        return self.out_dim

    def _project(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.proj is None else self.proj(y)


@POOLINGS.register("stats")
class StatsPooling(_ProjectedPooling):
    """Concatenated mean and std over time (2 x in_dim), optionally projected to out_dim."""

    natural_factor = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._project(torch.cat(_weighted_stats(x, None), dim=1))


@POOLINGS.register("mean")
class MeanPooling(_ProjectedPooling):
    """Mean over time (in_dim), optionally projected to out_dim."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._project(x.mean(dim=1))
