"""Model library: registries, the Conformer encoder, poolings and the models.

    from csi.models import build_model
    model = build_model(model_section(load_yaml("config/hparams.yaml")))   # MODELS[hp.get("model", "coverhunter")]

Adding a model is one file that registers its class (``@MODELS.register("name")``, a subclass
of csi.models.heads.EmbeddingModel) and one import line below (its registry entry).

Models: ``coverhunter`` (Conformer, :mod:`csi.models.coverhunter`) and ``pitch_cnn`` (a
transposition-invariant CNN over the pitch-class circle, :mod:`csi.models.pitch_cnn`).
"""
from csi.models.registry import MODELS, POOLINGS
from csi.models import pooling as _pooling  # noqa: F401  (registers the poolings)
from csi.models.coverhunter import MODEL_KEYS, CoverHunter, build_model, model_keys, model_section
from csi.models import pitch_cnn as _pitch_cnn  # noqa: F401  (registers pitch_cnn)
from csi.models import bytecover as _bytecover  # noqa: F401  (registers bytecover)
from csi.models import siamese_pcp as _siamese_pcp  # noqa: F401  (registers siamese_pcp)

__all__ = ["MODELS", "POOLINGS", "MODEL_KEYS", "CoverHunter", "build_model", "model_keys", "model_section"]
