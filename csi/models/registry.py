"""Registries of model components, chosen by name from YAML configs.

``MODELS`` maps a model name (``hparams["model"]``, default ``"coverhunter"``) to a class
built from the hparams dict; ``POOLINGS`` maps ``pool_type`` to a temporal pooling.
"""
from __future__ import annotations

from csi.registry import Registry

MODELS = Registry("model")
POOLINGS = Registry("pooling")

__all__ = ["MODELS", "POOLINGS"]
