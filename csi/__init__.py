"""csi: cover song identification toolkit.

    import csi
    model = csi.load("exp/demo_quick")
    emb = model.embed("song.flac")
    csi.open_index("exp/demo_quick/index").search(emb)

``load`` and ``open_index`` are csi.api's (imported on first use, so ``import csi`` stays
light); ``load_model`` returns the bare network (csi.modeldir).
"""

__all__ = ["load", "open_index", "load_model"]


def load_model(model_dir, device="cpu", checkpoint=None):
    """The network in ``model_dir`` (config/hparams.yaml + pt_model/g_XXXXXXXX), in eval mode;
    ``model.inference(feats)`` returns ``(embedding, logits)``. Without ``checkpoint``: ``g_best``, else the latest epoch (csi.modeldir)."""
    from csi.modeldir import load_model as _load

    return _load(model_dir, device=device, checkpoint=checkpoint)


def __getattr__(name):
    if name in ("load", "open_index"):
        from csi import api

        return getattr(api, name)
    raise AttributeError(f"module 'csi' has no attribute {name!r}")
