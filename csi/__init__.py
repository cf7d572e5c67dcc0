"""csi: cover song identification toolkit."""


def load_model(model_dir, device="cpu", checkpoint=None):
    """The model in ``model_dir`` (config/hparams.yaml + pt_model/g_XXXXXXXX), in eval mode;
    ``model.inference(feats)`` returns ``(embedding, logits)``. Without ``checkpoint``: ``g_best``, else the latest epoch (csi.modeldir)."""
    from csi.modeldir import load_model as _load

    return _load(model_dir, device=device, checkpoint=checkpoint)
