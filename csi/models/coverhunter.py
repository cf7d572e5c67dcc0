"""The CoverHunter model (Liu et al. 2023, "CoverHunter: Cover Song Identification with
Refined Attention and Alignments", arXiv 2306.09025), built from its ``hparams.yaml``.

    feat (B, T, input_dim)
      -> _global_cmvn   BatchNorm1d over the input bins
      -> _encoder       Conformer (csi.models.conformer), d_model = encoder.output_dims
      -> _pool_layer    POOLINGS[pool_type] (attentive statistics pooling) -> embed_dim
      = embedding (B, embed_dim)                         <- forward(), used for retrieval
    training heads:
      _bottleneck  BatchNorm1d(embed_dim), bias frozen ("BN neck")
      _ce_layer    Linear(embed_dim -> ce.output_dims, no bias) on the BN-neck output
      _center_loss centres (ce.output_dims, embed_dim)

Loss (``compute_loss``) = ce.weight * focal CE(_ce_layer(_bottleneck(e)))
                        + triplet.weight * batch-hard triplet(e)
                        + center.weight * center loss(e);  a term with weight 0 is skipped.

Hyper-parameters read from the hparams dict (everything else in it belongs to other
components and is ignored by :func:`build_model`):

    model        registry name, default "coverhunter"
    input_dim    input bins (96)
    embed_dim    embedding size (128)
    encoder      output_dims (model dim, 128), num_blocks (6), attention_dim (feed-forward
                 hidden units, 256; alias linear_units), num_heads (4), kernel_size (15),
                 dropout (0.1), positional_dropout (0.1), attention_dropout (0.0)
    pool_type    "attention" (or "stats", "mean")
    ce           output_dims (number of classes, required), weight (1.0), gamma (2),
                 alpha (optional: per-class weights as a list, or the path of a .npy of
                 per-class sample counts turned into weights 1/(count+1) as the reference does)
    triplet      margin (0.3), weight (0.1)
    center       weight (0.0)

Unknown keys inside these sections are ConfigErrors naming the key. The published
checkpoints (``torch.save({"generator": state_dict})``) load with ``strict=True``.
"""
from __future__ import annotations

import inspect
import os
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from csi.losses import CenterLoss, FocalLoss, HardTripletLoss
from csi.models.conformer import ConformerEncoder
from csi.models.registry import MODELS, POOLINGS
from csi.registry import ConfigError

__all__ = ["CoverHunter", "build_model", "MODEL_KEYS"]

# top-level hparams keys the CoverHunter model reads (the rest of hparams.yaml is data/training config)
MODEL_KEYS = ("model", "input_dim", "embed_dim", "encoder", "pool_type", "ce", "triplet", "center")

_ENCODER_DEFAULTS = {"output_dims": 128, "num_blocks": 6, "attention_dim": 256, "num_heads": 4,
                     "kernel_size": 15, "dropout": 0.1, "positional_dropout": 0.1,
                     "attention_dropout": 0.0}
_ENCODER_ALIASES = {"linear_units": "attention_dim"}
_CE_DEFAULTS = {"output_dims": None, "weight": 1.0, "gamma": 2.0, "alpha": None}
_TRIPLET_DEFAULTS = {"margin": 0.3, "weight": 0.1}
_CENTER_DEFAULTS = {"weight": 0.0}


def _section(value: Any, defaults: dict, where: str, aliases: Mapping[str, str] | None = None) -> dict:
    """``defaults`` updated with the mapping ``value``; unknown keys are ConfigErrors."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"model config: {where} must be a mapping, got {type(value).__name__}")
    aliases = aliases or {}
    out = dict(defaults)
    given: dict[str, str] = {}
    for key, v in value.items():
        name = aliases.get(key, key)
        if name not in defaults:
            accepted = sorted(list(defaults) + list(aliases))
            raise ConfigError(f"model config: unknown key {where}.{key}; accepted: {', '.join(accepted)}")
        if name in given:
            raise ConfigError(f"model config: {where}.{key} and {where}.{given[name]} both set the same value")
        given[name] = key
        out[name] = v
    return out


def _number(value: Any, where: str, kind: type = float, minimum: float | None = None,
            positive: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ConfigError(f"model config: {where} must be {'an integer' if kind is int else 'a number'}, "
                          f"got {value!r}")
    if positive and value <= 0:
        raise ConfigError(f"model config: {where} must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"model config: {where} must be >= {minimum}, got {value}")
    return kind(value)


def _load_alpha(alpha: Any, num_classes: int) -> torch.Tensor | None:
    """Per-class focal weights: a list as given, or a .npy of class counts -> 1/(n+1), normalised."""
    if alpha is None:
        return None
    if isinstance(alpha, (str, os.PathLike)):
        try:
            counts = np.load(alpha).astype(np.float64).reshape(-1)
        except OSError as e:
            raise ConfigError(f"model config: ce.alpha: cannot read {alpha}: {e}") from None
        weights = 1.0 / (counts + 1.0)
        weights = weights / weights.sum()
    else:
        weights = np.asarray(alpha, dtype=np.float64).reshape(-1)
    if len(weights) > num_classes:
        raise ConfigError(f"model config: ce.alpha has {len(weights)} entries for {num_classes} classes")
    if len(weights) < num_classes:
        raise ConfigError(f"model config: ce.alpha has {len(weights)} entries, fewer than the "
                          f"{num_classes} classes (ce.output_dims)")
    return torch.tensor(weights, dtype=torch.float32)


@MODELS.register("coverhunter")
class CoverHunter(nn.Module):
    """CoverHunter embedding model with its training losses (see the module docstring).

    The constructor takes the model sections of ``hparams.yaml`` as keyword arguments;
    use :func:`build_model` to build from a whole hparams dict.
    """

    def __init__(self, input_dim: int = 96, embed_dim: int = 128, encoder: Mapping | None = None,
                 pool_type: str = "attention", ce: Mapping | None = None,
                 triplet: Mapping | None = None, center: Mapping | None = None):
        super().__init__()
        input_dim = _number(input_dim, "input_dim", int, positive=True)
        embed_dim = _number(embed_dim, "embed_dim", int, positive=True)
        enc = _section(encoder, _ENCODER_DEFAULTS, "encoder", _ENCODER_ALIASES)
        ce = _section(ce, _CE_DEFAULTS, "ce")
        triplet = _section(triplet, _TRIPLET_DEFAULTS, "triplet")
        center = _section(center, _CENTER_DEFAULTS, "center")
        if ce["output_dims"] is None:
            raise ConfigError("model config: ce.output_dims (the number of training classes) is required")
        num_classes = _number(ce["output_dims"], "ce.output_dims", int, positive=True)
        d_model = _number(enc["output_dims"], "encoder.output_dims", int, positive=True)
        heads = _number(enc["num_heads"], "encoder.num_heads", int, positive=True)
        if d_model % heads:
            raise ConfigError(f"model config: encoder.output_dims {d_model} is not divisible by "
                              f"encoder.num_heads {heads}")
        kernel = _number(enc["kernel_size"], "encoder.kernel_size", int, positive=True)
        if kernel % 2 != 1:
            raise ConfigError(f"model config: encoder.kernel_size must be odd, got {kernel}")
        if input_dim < 7:
            raise ConfigError(f"model config: input_dim must be >= 7 for the 4x conv subsampling, got {input_dim}")
        if not isinstance(pool_type, str):
            raise ConfigError(f"model config: pool_type must be a name, got {pool_type!r}")
        self.loss_weights = {
            "ce": _number(ce["weight"], "ce.weight", minimum=0.0),
            "triplet": _number(triplet["weight"], "triplet.weight", minimum=0.0),
            "center": _number(center["weight"], "center.weight", minimum=0.0),
        }
        if not any(self.loss_weights.values()):
            raise ConfigError("model config: ce.weight, triplet.weight and center.weight are all 0 (no loss)")
        self.input_dim, self.embed_dim, self.num_classes = input_dim, embed_dim, num_classes

        self._global_cmvn = nn.BatchNorm1d(input_dim)
        self._encoder = ConformerEncoder(
            input_size=input_dim, output_size=d_model,
            attention_heads=heads,
            linear_units=_number(enc["attention_dim"], "encoder.attention_dim", int, positive=True),
            num_blocks=_number(enc["num_blocks"], "encoder.num_blocks", int, minimum=0),
            kernel_size=kernel,
            dropout_rate=_number(enc["dropout"], "encoder.dropout", minimum=0.0),
            positional_dropout_rate=_number(enc["positional_dropout"], "encoder.positional_dropout", minimum=0.0),
            attention_dropout_rate=_number(enc["attention_dropout"], "encoder.attention_dropout", minimum=0.0))
        self._bottleneck = nn.BatchNorm1d(embed_dim)
        self._bottleneck.bias.requires_grad_(False)  # BN neck: scale only, no shift
        self._pool_layer = POOLINGS.build({"name": pool_type, "in_dim": d_model, "out_dim": embed_dim},
                                          where="model config: pool_type")
        if self._pool_layer.output_size != embed_dim:
            raise ConfigError(f"model config: pool_type {pool_type!r} gives {self._pool_layer.output_size} "
                              f"dims, not embed_dim {embed_dim}")
        self._ce_layer = nn.Linear(embed_dim, num_classes, bias=False)
        self._ce_loss = FocalLoss(gamma=_number(ce["gamma"], "ce.gamma", minimum=0.0),
                                  alpha=_load_alpha(ce["alpha"], num_classes))
        self._triplet_loss = HardTripletLoss(margin=_number(triplet["margin"], "triplet.margin"))
        self._center_loss = CenterLoss(num_classes=num_classes, feat_dim=embed_dim)

    @classmethod
    def from_hparams(cls, hp: Mapping[str, Any]) -> "CoverHunter":
        """Build from a whole hparams dict (keys outside MODEL_KEYS are ignored)."""
        return build_model({**hp, "model": "coverhunter"})

    @property
    def output_size(self) -> int:
        """Size of the embedding returned by ``forward``."""
        return self.embed_dim

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """feat (B, T, input_dim) -> embedding (B, embed_dim), before the BN neck."""
        if feat.dim() != 3 or feat.size(-1) != self.input_dim:
            raise ValueError(f"CoverHunter expects (batch, frames, {self.input_dim}) features, "
                             f"got {tuple(feat.shape)}")
        x = self._global_cmvn(feat.transpose(1, 2)).transpose(1, 2)
        return self._pool_layer(self._encoder(x))

    def inference(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedding, logits) without gradients; logits = classifier(embedding), as the
        reference computes them at evaluation. Call ``model.eval()`` first."""
        with torch.no_grad():
            embed = self.forward(feat)
            return embed, self._ce_layer(embed)

    def compute_loss(self, feat: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted training loss and its parts.

        Returns ``(total, {"ce", "triplet", "center", "total"})``: the dict holds detached
        scalars, each term unweighted (0 for a term skipped because its weight is 0).
        """
        embed = self.forward(feat)
        labels = labels.to(embed.device).long().view(-1)
        zero = embed.new_zeros(())
        parts = {"ce": zero, "triplet": zero, "center": zero}
        total = None
        for name, weight in self.loss_weights.items():
            if weight <= 0:
                continue
            if name == "ce":
                term = self._ce_loss(self._ce_layer(self._bottleneck(embed)), labels)
            elif name == "triplet":
                term = self._triplet_loss(embed, labels)
            else:
                term = self._center_loss(embed, labels)
            parts[name] = term.detach()
            total = term * weight if total is None else total + term * weight
        parts["total"] = total.detach()
        return total, parts


def build_model(hp: Mapping[str, Any], strict: bool = False) -> nn.Module:
    """Build ``MODELS[hp.get("model", "coverhunter")]`` from an hparams dict.

    Only the top-level keys the model reads are passed (``MODEL_KEYS``; data and training
    keys in the same file belong to other components). With ``strict=True`` ``hp`` must be
    a model-only section and any other key is a ConfigError.
    """
    if not isinstance(hp, Mapping):
        raise ConfigError(f"model config must be a mapping, got {type(hp).__name__}")
    name = hp.get("model", "coverhunter")
    cls = MODELS.get(name)
    accepted = [p.name for p in inspect.signature(cls).parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if strict:
        unknown = sorted(set(map(str, hp)) - set(accepted) - {"model"})
        if unknown:
            raise ConfigError(f"model config: unknown key(s) {', '.join(unknown)} for model {name!r}; "
                              f"accepted: model, {', '.join(accepted)}")
    return MODELS.build({"name": name, **{k: v for k, v in hp.items() if k in accepted}},
                        where="model config")
