"""Training heads and losses shared by every embedding model, and model-config checks.

A model subclasses :class:`EmbeddingModel`, builds its encoder, implements
``forward(feat) -> embedding`` and calls :meth:`EmbeddingModel.build_heads`, which adds

    _bottleneck   BatchNorm1d(embed_dim), bias frozen (the "BN neck" of Luo et al. 2019,
                  "Bag of Tricks and a Strong Baseline for Deep Person Re-identification")
    _ce_layer     Linear(embed_dim -> ce.output_dims, no bias) on the BN-neck output
    _center_loss  centres (ce.output_dims, embed_dim)

Loss (``compute_loss``): a weighted sum of registered losses (csi.losses.LOSSES). By
default, from CoverHunter's sections:
                          ce.weight * focal CE(_ce_layer(_bottleneck(e)))
                        + triplet.weight * batch-hard triplet(e)
                        + center.weight * center loss(e);  a term with weight 0 is skipped.
The attribute names are CoverHunter's checkpoint keys. Or from a ``losses`` list, each entry
``{name: <registered loss>, weight: w, [label: l], <loss arguments>}``:

    losses:
      - {name: focal, weight: 1.0, gamma: 2}
      - {name: hard_triplet, weight: 0.1, margin: 0.3}

(``ce.output_dims`` still sizes the classifier; ``triplet``/``center`` sections then are errors).
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from csi.losses import CenterLoss, FocalLoss, HardTripletLoss, build_loss
from csi.models.registry import POOLINGS
from csi.registry import ConfigError

CE_DEFAULTS = {"output_dims": None, "weight": 1.0, "gamma": 2.0, "alpha": None}
TRIPLET_DEFAULTS = {"margin": 0.3, "weight": 0.1}
CENTER_DEFAULTS = {"weight": 0.0}


def config_section(value: Any, defaults: dict, where: str, aliases: Mapping[str, str] | None = None) -> dict:
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


def config_number(value: Any, where: str, kind: type = float, minimum: float | None = None,
            positive: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ConfigError(f"model config: {where} must be {'an integer' if kind is int else 'a number'}, "
                          f"got {value!r}")
    if positive and value <= 0:
        raise ConfigError(f"model config: {where} must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"model config: {where} must be >= {minimum}, got {value}")
    return kind(value)


def load_alpha(alpha: Any, num_classes: int) -> torch.Tensor | None:
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


class EmbeddingModel(nn.Module):
    """Base of the embedding models: ``forward(feat (B, T, bins)) -> (B, embed_dim)`` is the
    subclass's; the BN neck, classifier and losses are built here (module docstring)."""

    embed_dim: int
    num_classes: int

    def build_heads(self, embed_dim: int, ce: Mapping | None, triplet: Mapping | None,
                    center: Mapping | None, losses: list | None = None) -> None:
        """Check the ``ce``/``triplet``/``center`` sections (or the ``losses`` list) and
        create the training heads and losses."""
        ce = config_section(ce, CE_DEFAULTS, "ce")
        if ce["output_dims"] is None:
            raise ConfigError("model config: ce.output_dims (the number of training classes) is required")
        num_classes = config_number(ce["output_dims"], "ce.output_dims", int, positive=True)
        self.embed_dim, self.num_classes = embed_dim, num_classes
        if not hasattr(self, "_bottleneck"):
            self.build_neck(embed_dim)
        self._ce_layer = nn.Linear(embed_dim, num_classes, bias=False)
        if losses is not None:
            if triplet is not None or center is not None or any(ce[k] != CE_DEFAULTS[k] for k in ("weight", "gamma", "alpha")):
                raise ConfigError("model config: losses replaces the ce.weight/gamma/alpha, triplet and center "
                                  "settings; give one or the other (ce.output_dims stays)")
            self._build_loss_list(losses, num_classes, embed_dim)
            return
        triplet = config_section(triplet, TRIPLET_DEFAULTS, "triplet")
        center = config_section(center, CENTER_DEFAULTS, "center")
        self._ce_loss = FocalLoss(gamma=config_number(ce["gamma"], "ce.gamma", minimum=0.0),
                                  alpha=load_alpha(ce["alpha"], num_classes))
        self._triplet_loss = HardTripletLoss(margin=config_number(triplet["margin"], "triplet.margin"))
        self._center_loss = CenterLoss(num_classes=num_classes, feat_dim=embed_dim)
        self.loss_terms = [("ce", config_number(ce["weight"], "ce.weight", minimum=0.0), "_ce_loss"),
                           ("triplet", config_number(triplet["weight"], "triplet.weight", minimum=0.0), "_triplet_loss"),
                           ("center", config_number(center["weight"], "center.weight", minimum=0.0), "_center_loss")]
        if not any(weight for _, weight, _ in self.loss_terms):
            raise ConfigError("model config: ce.weight, triplet.weight and center.weight are all 0 (no loss)")

    def _build_loss_list(self, losses: Any, num_classes: int, embed_dim: int) -> None:
        if not isinstance(losses, list) or not losses:
            raise ConfigError(f"model config: losses must be a non-empty list of {{name, weight, ...}}, got {losses!r}")
        self.loss_terms = []
        for k, entry in enumerate(losses):
            where = f"model config: losses[{k}]"
            if not isinstance(entry, Mapping) or "name" not in entry:
                raise ConfigError(f"{where}: expected a mapping with a 'name', got {entry!r}")
            entry = dict(entry)
            weight = config_number(entry.pop("weight", 1.0), f"losses[{k}].weight", minimum=0.0)
            label = str(entry.pop("label", entry["name"]))
            if label in {t[0] for t in self.loss_terms} or label == "total":
                raise ConfigError(f"{where}: label {label!r} used twice (give each entry its own label)")
            attr = f"_loss_{label}"
            self.add_module(attr, build_loss(entry, num_classes, embed_dim, where))
            self.loss_terms.append((label, weight, attr))
        if not any(weight for _, weight, _ in self.loss_terms):
            raise ConfigError("model config: every loss weight is 0 (no loss)")

    def build_pooling(self, pool_type: str, in_dim: int, embed_dim: int) -> None:
        """``_pool_layer``: POOLINGS[pool_type] from ``in_dim`` frame features to ``embed_dim``."""
        if not isinstance(pool_type, str):
            raise ConfigError(f"model config: pool_type must be a name, got {pool_type!r}")
        self._pool_layer = POOLINGS.build({"name": pool_type, "in_dim": in_dim, "out_dim": embed_dim},
                                          where="model config: pool_type")
        if self._pool_layer.output_size != embed_dim:
            raise ConfigError(f"model config: pool_type {pool_type!r} gives {self._pool_layer.output_size} "
                              f"dims, not embed_dim {embed_dim}")

    def build_neck(self, embed_dim: int) -> None:
        """The BN neck alone, for models that register it before their pooling (checkpoint
        key order of the CoverHunter reference); :meth:`build_heads` adds it otherwise."""
        self._bottleneck = nn.BatchNorm1d(embed_dim)
        self._bottleneck.bias.requires_grad_(False)  # BN neck: scale only, no shift

    @property
    def output_size(self) -> int:
        """Size of the embedding returned by ``forward``."""
        return self.embed_dim

    def inference(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(embedding, logits) without gradients; logits = classifier(embedding), as the
        CoverHunter reference computes them at evaluation. Call ``model.eval()`` first."""
        with torch.no_grad():
            embed = self.forward(feat)
            return embed, self._ce_layer(embed)

    def compute_loss(self, feat: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted training loss and its parts.

        Returns ``(total, {<label>: ..., "total"})``: the dict holds detached scalars, each
        term unweighted (0 for a term skipped because its weight is 0).
        """
        embed = self.forward(feat)
        labels = labels.to(embed.device).long().view(-1)
        zero = embed.new_zeros(())
        parts = {label: zero for label, _, _ in self.loss_terms}
        total = None
        logits = None
        for label, weight, attr in self.loss_terms:
            if weight <= 0:
                continue
            loss = getattr(self, attr)
            if loss.input == "logits":
                logits = self._ce_layer(self._bottleneck(embed)) if logits is None else logits
                term = loss(logits, labels)
            else:
                term = loss(embed, labels)
            parts[label] = term.detach()
            total = term * weight if total is None else total + term * weight
        parts["total"] = total.detach()
        return total, parts
