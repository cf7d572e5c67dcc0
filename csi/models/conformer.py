"""Conformer encoder (Gulati et al. 2020, "Conformer: Convolution-augmented Transformer
for Speech Recognition", arXiv 2005.08100) in the WeNet layout used by CoverHunter.

Data flow for an input ``(B, T, F)``::

    Conv2dSubsampling4   two Conv2d(3x3, stride 2) + ReLU over (time, freq), then a
                         Linear from channels x freq' to d_model   -> (B, T', d_model)
                         with T' = ((T - 1) // 2 - 1) // 2
    RelPositionalEncoding  x * sqrt(d_model); a sinusoidal table pe[0:T'] is returned
                         separately and consumed by every attention layer
    N x ConformerBlock   x + 0.5 FFN(LN x)                      (macaron half-step FFN)
                         x + RelPosMHSA(LN x, pe)
                         x + ConvModule(LN x)
                         x + 0.5 FFN(LN x)
                         LN x                                     (norm_final)
    after_norm           LayerNorm

Relative-position self-attention follows Dai et al. 2019 ("Transformer-XL", arXiv
1901.02860, Sec. 3.3): the score of query i and key j is

    ((q_i + u) . k_j + (q_i + v) . W_pos pe_j) / sqrt(d_k)

with learned per-head biases ``u`` (``pos_bias_u``) and ``v`` (``pos_bias_v``). As in
WeNet, the position term uses the absolute sinusoid of the key index j and the
Transformer-XL relative shift is *not* applied; this is what the published checkpoints
were trained with, so it is kept.

Module and attribute names reproduce the WeNet/CoverHunter state-dict keys
(``embed.conv.0``, ``encoders.N.self_attn.linear_q``, ``feed_forward_macaron.w_1``,
``conv_module.pointwise_conv1``, ``norm_mha``, ...), so those checkpoints load with
``strict=True``. The computation is written for speed on CPU: the attention runs through
``F.scaled_dot_product_attention`` (the two score terms are one dot product of the
concatenations ``[q+u, q+v]`` and ``[k, p]``), and the 1x1 convolutions run as matrix
products in (B, T, C) layout. Sequences are not padded: every item of a batch has the
same length, as in CoverHunter training and inference.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConformerEncoder", "ConformerBlock", "RelPositionMultiHeadedAttention",
           "ConvolutionModule", "PositionwiseFeedForward", "Conv2dSubsampling4",
           "RelPositionalEncoding", "sinusoid_table"]


def sinusoid_table(length: int, d_model: int) -> torch.Tensor:
    """(length, d_model) table: sin at even, cos at odd channels, wavelengths 2pi..10000*2pi."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * -(math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq)
    return table


class RelPositionalEncoding(nn.Module):
    """Scale the input by sqrt(d_model) and return the sinusoid table for its length.

    ``forward(x (B, T, d)) -> (dropout(x * sqrt(d)), dropout(pe[None, :T]))``. The table
    is a non-persistent buffer grown on demand (no length limit, nothing in the state dict).
    """

    def __init__(self, d_model: int, dropout_rate: float = 0.1, init_len: int = 512):
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)
        self.dropout = nn.Dropout(dropout_rate)
        self.register_buffer("pe", sinusoid_table(init_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = x.size(1)
        if t > self.pe.size(0):
            self.pe = sinusoid_table(max(t, 2 * self.pe.size(0)), self.d_model).to(self.pe.device)
        pos = self.pe[:t].unsqueeze(0).to(dtype=x.dtype)
        return self.dropout(x * self.xscale), self.dropout(pos)


class Conv2dSubsampling4(nn.Module):
    """Two 3x3 stride-2 Conv2d + ReLU over (time, freq), then Linear to ``d_model``."""

    def __init__(self, idim: int, d_model: int, pos_enc: nn.Module):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, d_model, 3, 2), nn.ReLU(),
                                  nn.Conv2d(d_model, d_model, 3, 2), nn.ReLU())
        freq = ((idim - 1) // 2 - 1) // 2
        if freq < 1:
            raise ValueError(f"Conv2dSubsampling4: input_dim {idim} is too small (needs >= 7)")
        self.out = nn.Sequential(nn.Linear(d_model * freq, d_model))
        self.pos_enc = pos_enc
        self.subsampling_rate = 4

    @staticmethod
    def output_length(t: int) -> int:
        return ((t - 1) // 2 - 1) // 2

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, F) -> (x' (B, T', d_model), pos (1, T', d_model)).

        Same result as ``self.conv(x.unsqueeze(1))`` then ``self.out`` over the
        channel-major flattening of (C, F'), computed faster on CPU: the single-channel
        first convolution is a matrix product over the 9 strided 3x3 taps, and its
        (B, T1, F1, C) result is already the channels-last layout the second convolution
        runs fastest in.
        """
        b, t, f = x.shape
        if t < 7:
            raise ValueError(f"Conv2dSubsampling4 needs at least 7 frames, got {t}")
        conv1, conv2 = self.conv[0], self.conv[2]
        t1, f1 = (t - 3) // 2 + 1, (f - 3) // 2 + 1
        taps = torch.stack([x[:, i:i + 2 * t1 - 1:2, j:j + 2 * f1 - 1:2] for i in range(3) for j in range(3)],
                           dim=-1)                                            # (B, T1, F1, 9)
        h = F.relu(F.linear(taps, conv1.weight.flatten(1), conv1.bias))  # (B, T1, F1, C)
        h = F.conv2d(h.permute(0, 3, 1, 2), conv2.weight.contiguous(memory_format=torch.channels_last),
                     conv2.bias, stride=2)                                    # (B, C, T2, F2)
        h = F.relu(h, inplace=True)
        c, t2, f2 = h.shape[1:]
        x = self.out(h.transpose(1, 2).reshape(b, t2, c * f2))              # channel-major per frame
        return self.pos_enc(x)


class PositionwiseFeedForward(nn.Module):
    """Linear(d -> units) -> Swish -> dropout -> Linear(units -> d)."""

    def __init__(self, d_model: int, units: int, dropout_rate: float = 0.1):
        super().__init__()
        self.w_1 = nn.Linear(d_model, units)
        self.activation = nn.SiLU()
        self.dropout = nn.Dropout(dropout_rate)
        self.w_2 = nn.Linear(units, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(self.activation(self.w_1(x))))


class RelPositionMultiHeadedAttention(nn.Module):
    """Multi-head self-attention with Transformer-XL position biases (no relative shift).

    ``forward(x (B, T, d), pos (1, T, d)) -> (B, T, d)``.
    """

    def __init__(self, n_head: int, d_model: int, dropout_rate: float = 0.0):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"attention: model dim {d_model} is not divisible by {n_head} heads")
        self.h = n_head
        self.d_k = d_model // n_head
        self.linear_q = nn.Linear(d_model, d_model)
        self.linear_k = nn.Linear(d_model, d_model)
        self.linear_v = nn.Linear(d_model, d_model)
        self.linear_out = nn.Linear(d_model, d_model)
        self.linear_pos = nn.Linear(d_model, d_model, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(n_head, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(n_head, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)
        self.dropout_rate = dropout_rate

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h, dk = self.h, self.d_k
        # one GEMM for q, k, v
        w = torch.cat([self.linear_q.weight, self.linear_k.weight, self.linear_v.weight])
        bias = torch.cat([self.linear_q.bias, self.linear_k.bias, self.linear_v.bias])
        q, k, v = F.linear(x, w, bias).view(b, t, 3, h, dk).permute(2, 0, 3, 1, 4)  # (B, h, T, dk) each
        p = self.linear_pos(pos).view(pos.size(0), -1, h, dk).transpose(1, 2)       # (1|B, h, T, dk)
        # [(q+u) | (q+v)] . [k | p] = (q+u).k + (q+v).p : both score terms in one attention call
        qq = torch.cat([q + self.pos_bias_u.unsqueeze(1), q + self.pos_bias_v.unsqueeze(1)], dim=-1)
        kk = torch.cat([k, p.expand(b, -1, -1, -1)], dim=-1)
        out = F.scaled_dot_product_attention(
            qq, kk, v, dropout_p=self.dropout_rate if self.training else 0.0, scale=1.0 / math.sqrt(dk))
        return self.linear_out(out.transpose(1, 2).reshape(b, t, d))


class ConvolutionModule(nn.Module):
    """Pointwise conv (d -> 2d) -> GLU -> depthwise conv (k) -> BatchNorm -> Swish -> pointwise conv.

    Parameters are ``nn.Conv1d`` (checkpoint layout); the 1x1 convolutions run as matrix
    products on (B, T, C) to avoid layout copies.
    """

    def __init__(self, channels: int, kernel_size: int = 15):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"conv module: kernel_size must be odd, got {kernel_size}")
        self.pointwise_conv1 = nn.Conv1d(channels, 2 * channels, 1)
        self.depthwise_conv = nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2,
                                        groups=channels)
        self.norm = nn.BatchNorm1d(channels)
        self.activation = nn.SiLU()
        self.pointwise_conv2 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.glu(F.linear(x, self.pointwise_conv1.weight.squeeze(-1), self.pointwise_conv1.bias), dim=-1)
        x = self.activation(self.norm(self.depthwise_conv(x.transpose(1, 2)))).transpose(1, 2)
        return F.linear(x, self.pointwise_conv2.weight.squeeze(-1), self.pointwise_conv2.bias)


class ConformerBlock(nn.Module):
    """One pre-norm Conformer block (macaron FFN, MHSA, conv module, FFN, final LayerNorm)."""

    def __init__(self, d_model: int, n_head: int, ffn_units: int, kernel_size: int = 15,
                 dropout_rate: float = 0.1, attention_dropout_rate: float = 0.0):
        super().__init__()
        self.self_attn = RelPositionMultiHeadedAttention(n_head, d_model, attention_dropout_rate)
        self.feed_forward = PositionwiseFeedForward(d_model, ffn_units, dropout_rate)
        self.feed_forward_macaron = PositionwiseFeedForward(d_model, ffn_units, dropout_rate)
        self.conv_module = ConvolutionModule(d_model, kernel_size)
        self.norm_ff = nn.LayerNorm(d_model, eps=1e-5)
        self.norm_mha = nn.LayerNorm(d_model, eps=1e-5)
        self.norm_ff_macaron = nn.LayerNorm(d_model, eps=1e-5)
        self.norm_conv = nn.LayerNorm(d_model, eps=1e-5)
        self.norm_final = nn.LayerNorm(d_model, eps=1e-5)
        self.dropout = nn.Dropout(dropout_rate)
        self.ff_scale = 0.5

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = x + self.ff_scale * self.dropout(self.feed_forward_macaron(self.norm_ff_macaron(x)))
        x = x + self.dropout(self.self_attn(self.norm_mha(x), pos))
        x = x + self.dropout(self.conv_module(self.norm_conv(x)))
        x = x + self.ff_scale * self.dropout(self.feed_forward(self.norm_ff(x)))
        return self.norm_final(x)


class ConformerEncoder(nn.Module):
    """Conv2dSubsampling4 + relative positional encoding + ``num_blocks`` Conformer blocks.

    Args:
        input_size: feature bins per input frame (96 for the CoverHunter CQT).
        output_size: model dimension d_model (CoverHunter ``encoder.output_dims``).
        attention_heads: heads of the self-attention (4 in CoverHunter).
        linear_units: hidden units of each feed-forward module (CoverHunter
            ``encoder.attention_dim``, 256).
        num_blocks: number of Conformer blocks.
        kernel_size: depthwise convolution kernel of the conv module (15).
        dropout_rate: dropout in the feed-forward modules and on every residual branch.
        positional_dropout_rate: dropout on the scaled input and the position table.
        attention_dropout_rate: dropout on the attention weights.

    ``forward(x (B, T, input_size)) -> (B, T', output_size)``, T' = ((T-1)//2-1)//2.
    """

    def __init__(self, input_size: int, output_size: int = 128, attention_heads: int = 4,
                 linear_units: int = 256, num_blocks: int = 6, kernel_size: int = 15,
                 dropout_rate: float = 0.1, positional_dropout_rate: float = 0.1,
                 attention_dropout_rate: float = 0.0):
        super().__init__()
        self._output_size = output_size
        self.embed = Conv2dSubsampling4(input_size, output_size,
                                        RelPositionalEncoding(output_size, positional_dropout_rate))
        self.after_norm = nn.LayerNorm(output_size, eps=1e-5)  # (registered first: checkpoint key order)
        self.encoders = nn.ModuleList([
            ConformerBlock(output_size, attention_heads, linear_units, kernel_size,
                           dropout_rate, attention_dropout_rate)
            for _ in range(num_blocks)])

    def output_size(self) -> int:
        return self._output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, pos = self.embed(x)
        for block in self.encoders:
            x = block(x, pos)
        return self.after_norm(x)
