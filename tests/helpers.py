"""Shared test helpers: repository paths and running recipe scripts."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def write_model_dir(root: Path, hparams: dict, model=None, card=None, checkpoint: str = "g_00000000",
                    seed: int = 0) -> Path:
    """A model directory as training leaves one (csi.modeldir's layout): ``config/hparams.yaml``
    from ``hparams``, ``pt_model/<checkpoint>`` holding ``model``'s weights (default: the
    network ``hparams`` builds, seeded with ``seed``) and ``config/model_card.yaml`` when a
    ``card`` is given. The one way the tests hand-build a model directory."""
    import torch
    import yaml

    from csi import modeldir
    from csi.models import build_model, model_section

    root = Path(root)
    (root / modeldir.HPARAMS_FILE).parent.mkdir(parents=True, exist_ok=True)
    (root / modeldir.HPARAMS_FILE).write_text(yaml.safe_dump(hparams, sort_keys=False))
    if model is None:
        torch.manual_seed(seed)
        model = build_model(model_section(hparams))
    modeldir.pt_dir(root).mkdir(parents=True, exist_ok=True)
    torch.save({"generator": model.state_dict()}, modeldir.pt_dir(root) / checkpoint)
    if card is not None:
        modeldir.write_card(root, card)
    return root


def train_config(name: str) -> dict:
    """``conf/train/<name>.yaml`` resolved (its ``base:`` layers merged) in the flat hparams layout."""
    from csi.config import load_config
    from csi.modeldir import flat_hparams
    return flat_hparams(load_config(REPO / "conf" / "train" / f"{name}.yaml"), name)


def local_module(recipe: str, name: str):
    """Import ``egs/<recipe>/local/<name>.py`` (recipe-only code, not part of a package) as the
    recipe's own scripts see it: with ``egs/<recipe>/local`` on ``sys.path``."""
    import importlib
    local = str(REPO / "egs" / recipe / "local")
    if local not in sys.path:
        sys.path.insert(0, local)
    return importlib.import_module(name)


def run_bash(script: str | list[str], cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a bash script (string) or command (list) with this interpreter's environment first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = ["bash", "-c", script] if isinstance(script, str) else ["bash", *script]
    return subprocess.run(cmd, cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=timeout)


def tiny_coverhunter_config(path: Path) -> Path:
    """The paper configuration (conf/train/coverhunter.yaml) shrunk to a few training steps of
    a one-block model on 2-s chunks, written to ``path`` (for recipe tests)."""
    import yaml

    conf = yaml.safe_load((REPO / "conf" / "train" / "coverhunter.yaml").read_text())
    conf.pop("chunk_s")                      # the paper's 135 s does not match the tiny chunk
    conf.update(chunk_frame=[25], mean_size=2, m_per_class=2, batch_size=4, max_steps=3, max_epochs=1,
                num_workers=0, encoder={"output_dims": 32, "num_blocks": 1, "attention_dim": 32, "num_heads": 2},
                embed_dim=32)
    path.write_text(yaml.safe_dump(conf))
    return path
