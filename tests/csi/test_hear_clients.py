"""The HEAR 2021 clients run against ``csi.hear`` on a tiny trained model: the submission
validator (``hearvalidator``: "Looks good!") and the evaluation kit's embedding runner
(``heareval.embeddings.runner``) on a task directory in HEAR's layout, whose embeddings must
equal csi.hear's own.

Both packages import TensorFlow unconditionally (``import tensorflow as tf``) but touch it
only for TensorFlow models (``isinstance(model, tf.Module)``, ``tf.device`` after finding
one, and a GPU check that runs only when torch sees CUDA); csi installs no TensorFlow (a
multi-GB wheel), so the tests put a stand-in module named ``tensorflow`` first on the
clients' path. The stand-in has only those names, so any other use of TensorFlow by the
clients fails loudly instead of passing unnoticed.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

SR = 16000
pytest.importorskip("hearvalidator", reason="hearvalidator is installed by utils/install.sh (HEAR client test)")
pytest.importorskip("heareval", reason="heareval is installed by utils/install.sh (HEAR client test)")

TENSORFLOW_STAND_IN = '''"""Stand-in for TensorFlow: the HEAR clients import it but use it only for TF models."""
import contextlib


class Module:                       # isinstance(csi's torch model, tf.Module) is False
    pass


class test:                         # heareval.embeddings.runner: only when torch sees a GPU
    @staticmethod
    def is_gpu_available(*args, **kwargs):
        return False


def device(name):                   # hearvalidator: only for a TensorFlow model
    return contextlib.nullcontext()
'''


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A pitch_cnn trained for 2 epochs on 3 works × 3 versions of chords, and the stand-in."""
    from tools import extract_csi_features, train

    root = tmp_path_factory.mktemp("hear_clients")
    rng = np.random.default_rng(0)
    lines = []
    for w in range(3):
        freqs = rng.uniform(150, 1500, 3)
        for v in range(3):
            t = np.arange(int(SR * (3 + v))) / SR
            y = sum(np.sin(2 * np.pi * f * t) for f in freqs) * (0.2 + 0.1 * v) + rng.normal(0, 0.02, len(t))
            path = root / "wav" / f"w{w}v{v}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, y.astype(np.float32), SR)
            lines.append({"utt": f"w{w}v{v}", "wav": str(path), "song": f"work{w}"})
    data = root / "data"
    data.mkdir()
    (data / "dataset.txt").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (data / "hparams.yaml").write_text(yaml.safe_dump({"sr": SR, "frontend": {"name": "coverhunter_cqt"},
                                                      "min_dur_s": 1.0, "device": "cpu"}))
    assert extract_csi_features.main([str(data), "--no_progress"]) == 0
    exp = root / "exp"
    (exp / "config").mkdir(parents=True)
    hp = {"model": "pitch_cnn", "train_path": str(data / "full.txt"),
          "dev": {"query_path": str(data / "full.txt"), "ref_path": str(data / "full.txt")},
          "input_dim": 96, "embed_dim": 24, "channels": [8, 8], "time_pool": [2, 2], "fold": "chroma",
          "chunk_frame": [50], "mean_size": 1, "m_per_class": 2, "batch_size": 6, "num_workers": 0,
          "max_epochs": 2, "seed": 1, "device": "cpu", "ce": {"output_dims": "auto"}}
    (exp / "config" / "hparams.yaml").write_text(yaml.safe_dump(hp))
    assert train.main([str(exp)]) == 0
    stub = root / "stand_in"
    (stub / "tensorflow").mkdir(parents=True)
    (stub / "tensorflow" / "__init__.py").write_text(TENSORFLOW_STAND_IN)
    return exp, stub


def run_client(args: list[str], stub: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(stub), str(Path(__file__).parents[2])]),
               OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd)


def test_hear_validator_accepts_csi_hear(trained, tmp_path):
    exp, stub = trained
    assert (exp / "pt_model").is_dir() and any((exp / "pt_model").iterdir())
    done = run_client(["-c", "from hearvalidator.validate import main; main()",
                       "csi.hear", "-m", str(exp)], stub, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Looks good!" in done.stdout, done.stdout[-2000:]


def write_task(root: Path, name: str, embedding_type: str, seconds: float = 4.0) -> dict[str, dict]:
    """A HEAR task directory: task_metadata.json, labelvocabulary.csv, <split>.json and the
    audio under <task>/<sample rate>/<split>/ (HEAR 2021's layout, 16 kHz clips of one length)."""
    task = root / name
    splits = {"train": {}, "test": {}}
    rng = np.random.default_rng(len(name))
    t = np.arange(int(SR * seconds)) / SR
    for split, files in splits.items():
        (task / str(SR) / split).mkdir(parents=True)
        for i in range(3):
            label = "low" if i % 2 == 0 else "high"
            f0 = rng.uniform(110, 220) * (1 if label == "low" else 4)
            y = 0.3 * np.sin(2 * np.pi * f0 * t) + rng.normal(0, 0.01, len(t))
            sf.write(task / str(SR) / split / f"{split}{i}.wav", y.astype(np.float32), SR)
            files[f"{split}{i}.wav"] = ([label] if embedding_type == "scene" else
                                        [{"label": label, "start": 500.0, "end": 2500.0}])
        (task / f"{split}.json").write_text(json.dumps(files))
    (task / "labelvocabulary.csv").write_text("idx,label\n0,low\n1,high\n")
    (task / "task_metadata.json").write_text(json.dumps({
        "task_name": name, "version": "csi-test", "embedding_type": embedding_type,
        "prediction_type": "multiclass" if embedding_type == "scene" else "multilabel",
        "split_mode": "trainvaltest", "sample_duration": seconds, "evaluation": ["top1_acc"],
        "splits": list(splits)}))
    return splits


def test_heareval_runner_embeds_a_task_directory_with_csi_hear(trained, tmp_path):
    import torch

    import csi.hear as hear

    exp, stub = trained
    tasks = tmp_path / "tasks"
    scene = write_task(tasks, "csi-scene", "scene")
    write_task(tasks, "csi-event", "event")
    done = run_client(["-m", "heareval.embeddings.runner", "csi.hear", "--model", str(exp),
                       "--tasks-dir", str(tasks), "--embeddings-dir", str(tmp_path / "emb")], stub, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = tmp_path / "emb" / "csi.hear"
    for name in ("csi-scene", "csi-event"):
        assert (out / name / ".done.embeddings").is_file()
        assert (out / name / "task_metadata.json").is_file()

    model = hear.load_model(str(exp), device="cpu")
    for split, files in scene.items():
        n, dim = json.loads((out / "csi-scene" / f"{split}.embedding-dimensions.json").read_text())
        assert (n, dim) == (len(files), model.scene_embedding_size)
        for filename in files:
            got = np.load(out / "csi-scene" / split / f"{filename}.embedding.npy")
            audio, _ = sf.read(tasks / "csi-scene" / str(SR) / split / filename, dtype="float32")
            want = hear.get_scene_embeddings(torch.from_numpy(audio[None]), model)[0].numpy()
            np.testing.assert_allclose(got, want, atol=1e-5)

    event = out / "csi-event" / "train"
    emb = np.load(event / "train0.wav.embedding.npy")
    stamps = json.loads((event / "train0.wav.timestamps.json").read_text())
    labels = json.loads((event / "train0.wav.target-labels.json").read_text())
    assert emb.shape == (len(stamps), model.timestamp_embedding_size) and len(labels) == len(stamps)
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    inside = [lab for s, lab in zip(stamps, labels) if 500.0 < s < 2500.0]     # the event's interval, in ms
    outside = [lab for s, lab in zip(stamps, labels) if s < 500.0 or s > 2500.0]
    assert inside and outside and all(lab == ["low"] for lab in inside) and all(lab == [] for lab in outside)
