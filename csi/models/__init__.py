"""Model library: registries, the Conformer encoder, poolings and the models.

    from csi.models import build_model
    model = build_model(load_yaml("config/hparams.yaml"))   # MODELS[hp.get("model", "coverhunter")]

Models: ``coverhunter`` (Conformer, :mod:`csi.models.coverhunter`) and ``pitch_cnn`` (a
transposition-invariant CNN over the pitch-class circle, :mod:`csi.models.pitch_cnn`).
"""
from csi.models.registry import MODELS, POOLINGS
from csi.models import pooling as _pooling  # noqa: F401  (registers the poolings)
from csi.models.coverhunter import MODEL_KEYS, CoverHunter, build_model, model_keys
from csi.models import pitch_cnn as _pitch_cnn  # noqa: F401  (registers pitch_cnn)

__all__ = ["MODELS", "POOLINGS", "MODEL_KEYS", "CoverHunter", "build_model", "model_keys"]
