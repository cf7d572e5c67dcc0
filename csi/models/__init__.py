"""Model library: registries, the Conformer encoder, poolings and the CoverHunter model.

    from csi.models import build_model
    model = build_model(load_yaml("config/hparams.yaml"))   # MODELS[hp.get("model", "coverhunter")]
"""
from csi.models.registry import MODELS, POOLINGS
from csi.models import pooling as _pooling  # noqa: F401  (registers the poolings)
from csi.models.coverhunter import MODEL_KEYS, CoverHunter, build_model

__all__ = ["MODELS", "POOLINGS", "MODEL_KEYS", "CoverHunter", "build_model"]
