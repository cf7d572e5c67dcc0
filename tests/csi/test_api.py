"""The public API (csi.load, csi.open_index) and the ``csi`` command on a tiny model and index:
the same answers as tools.identify, embeddings from files and arrays, offsets, refusals."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import csi
from csi.features.reader import EmbedInputError
from csi.index import ModelMismatchError
from tests.bench.index import make_model_dir, tone_audio
from tools import build_index, identify

TINY_MODEL = {"input_dim": 96, "embed_dim": 32, "encoder": {"output_dims": 32, "num_blocks": 1, "attention_dim": 64},
              "ce": {"output_dims": 4}}
TINY_TRAIN = {"train_path": "x", "chunk_frame": [100], "mean_size": 2, "m_per_class": 2, "batch_size": 4}
SR = 16000
CSI = Path(sys.executable).with_name("csi")      # installed by setup.py's entry point (utils/install.sh)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A random-weight tiny model, 4 recordings of 2 works (13 s: chunks at 0 and 5 s) and their index."""
    root = tmp_path_factory.mktemp("api")
    model_dir = make_model_dir(root / "model", TINY_MODEL, TINY_TRAIN)
    records = []
    for w in range(2):
        for v in range(2):
            y = tone_audio(13, SR, seed=10 * w + v)
            path = root / f"w{w}v{v}.wav"
            sf.write(path, y, SR, subtype="FLOAT")
            records.append({"utt": f"w{w}v{v}", "wav": str(path), "song": f"work{w}", "dur_s": 13.0})
    (root / "refs.txt").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert build_index.main([str(model_dir), str(root / "refs.txt"), str(root / "index"), "--no_progress"]) == 0
    return root, model_dir, records


def test_embed_from_a_file_and_from_samples(built):
    root, model_dir, records = built
    model = csi.load(model_dir)
    assert model.sample_rate == SR and model.dim == 32 and "g_00000000" in repr(model)
    emb = model.embed(records[0]["wav"])
    assert emb.shape == (2, 32) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    y, _ = sf.read(records[0]["wav"], dtype="float32")
    np.testing.assert_allclose(model.embed(y), emb, atol=1e-5)                     # samples at the model's rate
    np.testing.assert_allclose(model.embed(np.stack([y, y])), emb, atol=1e-5)      # two channels mixed down
    import soxr
    y2 = soxr.resample(y, SR, 2 * SR, quality="HQ")
    assert float(np.sum(model.embed(y2, sample_rate=2 * SR) * emb, axis=1).min()) > 0.99   # resampled back
    assert model.distance(emb, emb) == pytest.approx(0.0, abs=1e-5)
    other = model.embed(records[2]["wav"])
    assert model.distance(emb, other) > 1e-3
    assert model.embed(records[0]["wav"], hop_s=1.0).shape[0] == 6                # 13 s: starts 0..4 and 5


def test_embed_refuses_bad_audio_with_the_reason(built, tmp_path):
    _, model_dir, _ = built
    model = csi.load(model_dir)
    with pytest.raises(EmbedInputError, match="file not found"):
        model.embed(tmp_path / "missing.wav")
    sf.write(tmp_path / "silent.wav", np.zeros(SR * 3, np.float32), SR)
    with pytest.raises(EmbedInputError, match="silent"):
        model.embed(tmp_path / "silent.wav")
    with pytest.raises(EmbedInputError, match="shape"):
        model.embed(np.zeros((2, 2, 10), np.float32))


def test_index_search_and_identify_match_the_tool(built, capsys):
    root, model_dir, records = built
    model = csi.load(model_dir)
    index = csi.open_index(root / "index", model=model)
    assert len(index) == 4 and "2 works" in repr(index)
    ranked = index.search(model.embed(records[1]["wav"]), topk=2)
    assert ranked["recordings"][0]["utt"] == "w0v1" and ranked["works"][0]["song"] == "work0"
    answer = index.identify(records[1]["wav"], topk=2)
    assert identify.main([str(root / "index"), records[1]["wav"], "--topk", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == answer
    assert csi.open_index(root / "index").identify(records[1]["wav"], topk=2) == answer   # the index's own model


def test_identify_reports_where_the_best_pair_starts(built):
    root, _, records = built
    y, _ = sf.read(records[3]["wav"], dtype="float32")
    index = csi.open_index(root / "index")
    answer = index.identify(y[5 * SR:], topk=1, offsets=True)         # its last 8 s: the chunk at 5 s
    best = answer["works"][0]
    assert best["utt"] == "w1v1" and answer["query"] == "<samples>"
    assert best["query_offset_s"] == 0.0 and best["offset_s"] == 5.0 and best["pair_score"] > 0.99


def test_open_index_refuses_another_model_and_unknown_options(built, tmp_path):
    root, _, _ = built
    other = make_model_dir(tmp_path / "other", TINY_MODEL, TINY_TRAIN, seed=1)
    with pytest.raises(ModelMismatchError):
        csi.open_index(root / "index", model=csi.load(other))
    with pytest.raises(ModelMismatchError):
        csi.open_index(root / "index", model=other)
    with pytest.raises(TypeError, match="unknown option.*nprob.*known: nprobe"):
        csi.open_index(root / "index", nprob=3)


def run_csi(*args):
    assert CSI.is_file(), f"{CSI} missing: install the package (bash utils/install.sh)"
    return subprocess.run([str(CSI), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_csi_command_maps_to_the_tools(built, tmp_path):
    root, model_dir, records = built
    done = run_csi("identify", records[2]["wav"], "--index", root / "index", "--json", "--topk", "2")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == csi.open_index(root / "index").identify(records[2]["wav"], topk=2)
    done = run_csi("embed", records[2]["wav"], f"--model={model_dir}", "--out_dir", tmp_path / "emb")
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout)
    assert line["chunks"] == 2 and line["dim"] == 32 and (tmp_path / "emb" / "embed.yaml").is_file()
    np.testing.assert_allclose(np.load(line["out"]), csi.load(model_dir).embed(records[2]["wav"]), atol=1e-6)
    listing = run_csi("--help")
    assert listing.returncode == 0 and "identify" in listing.stdout and "eval_testset" in listing.stdout
    assert run_csi("eval", "-h").stdout.startswith("usage: ")
    missing = run_csi("identify", records[2]["wav"])
    assert missing.returncode == 2 and "--index DIR is required" in missing.stderr
    unknown = run_csi("frobnicate")
    assert unknown.returncode == 2 and "unknown command 'frobnicate'" in unknown.stderr
    bad = run_csi("embed", tmp_path / "nothing.wav", "--model", model_dir)
    assert bad.returncode == 1 and "file not found" in bad.stderr
