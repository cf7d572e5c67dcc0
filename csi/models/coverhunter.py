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
components: :func:`model_section` takes the model's keys out of a whole hparams dict):

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
from typing import Any, Mapping

import torch
from torch import nn

from csi.models.conformer import ConformerEncoder
from csi.models.heads import EmbeddingModel, config_number as _number, config_section as _section
from csi.models.registry import MODELS
from csi.registry import ConfigError

__all__ = ["CoverHunter", "build_model", "model_section", "MODEL_KEYS"]

# top-level hparams keys the CoverHunter model reads (the rest of hparams.yaml is data/training config)
MODEL_KEYS = ("model", "input_dim", "embed_dim", "encoder", "pool_type", "ce", "triplet", "center", "losses")

_ENCODER_DEFAULTS = {"output_dims": 128, "num_blocks": 6, "attention_dim": 256, "num_heads": 4,
                     "kernel_size": 15, "dropout": 0.1, "positional_dropout": 0.1,
                     "attention_dropout": 0.0}
_ENCODER_ALIASES = {"linear_units": "attention_dim"}


@MODELS.register("coverhunter")
class CoverHunter(EmbeddingModel):
    """CoverHunter embedding model with its training losses (see the module docstring).

    The constructor takes the model sections of ``hparams.yaml`` as keyword arguments;
    use :func:`build_model` to build from a whole hparams dict.
    """

    def __init__(self, input_dim: int = 96, embed_dim: int = 128, encoder: Mapping | None = None,
                 pool_type: str = "attention", ce: Mapping | None = None,
                 triplet: Mapping | None = None, center: Mapping | None = None, losses: list | None = None):
        super().__init__()
        input_dim = _number(input_dim, "input_dim", int, positive=True)
        embed_dim = _number(embed_dim, "embed_dim", int, positive=True)
        enc = _section(encoder, _ENCODER_DEFAULTS, "encoder", _ENCODER_ALIASES)
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
        self.input_dim = input_dim

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
        self.build_neck(embed_dim)
        self.build_pooling(pool_type, d_model, embed_dim)
        self.build_heads(embed_dim, ce, triplet, center, losses)

    @classmethod
    def from_hparams(cls, hp: Mapping[str, Any]) -> "CoverHunter":
        """Build from a whole hparams dict (its data and training keys are not the model's)."""
        return build_model(model_section({**hp, "model": "coverhunter"}))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """feat (B, T, input_dim) -> embedding (B, embed_dim), before the BN neck."""
        if feat.dim() != 3 or feat.size(-1) != self.input_dim:
            raise ValueError(f"CoverHunter expects (batch, frames, {self.input_dim}) features, "
                             f"got {tuple(feat.shape)}")
        x = self._global_cmvn(feat.transpose(1, 2)).transpose(1, 2)
        return self._pool_layer(self._encoder(x))


def model_keys(name: str = "coverhunter") -> tuple[str, ...]:
    """Top-level hparams keys read by the model ``name`` (its constructor's arguments and
    ``model``); the rest of hparams.yaml is data and training configuration."""
    cls = MODELS.get(name)
    return ("model", *(p.name for p in inspect.signature(cls).parameters.values()
                       if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)))


def model_section(hp: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a whole ``hparams.yaml`` dict that its model (``hp["model"]``) reads;
    the rest is data and training configuration (csi.train.config.parse_hparams)."""
    keys = model_keys(hp.get("model", "coverhunter"))
    return {k: v for k, v in hp.items() if k in keys}


def build_model(hp: Mapping[str, Any]) -> nn.Module:
    """Build ``MODELS[hp.get("model", "coverhunter")]`` from its model section: every key
    must be one the model reads (a ConfigError names any other; use :func:`model_section`
    to take the model keys out of a whole hparams dict)."""
    if not isinstance(hp, Mapping):
        raise ConfigError(f"model config must be a mapping, got {type(hp).__name__}")
    name = hp.get("model", "coverhunter")
    accepted = model_keys(name)[1:]
    unknown = sorted(set(map(str, hp)) - set(accepted) - {"model"})
    if unknown:
        raise ConfigError(f"model config: unknown key(s) {', '.join(unknown)} for model {name!r}; "
                          f"accepted: model, {', '.join(accepted)}")
    return MODELS.build({"name": name, **{k: v for k, v in hp.items() if k != "model"}}, where="model config")
