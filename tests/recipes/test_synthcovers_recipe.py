"""The offline demo recipe, stages 0-6 (tiny model), in a temporary directory."""
import json

import pytest
import yaml

from csi.io.manifest import read_manifest
from tests.helpers import REPO, run_bash, train_config

pytest.importorskip("music21")
pytest.importorskip("tinysoundfont")

RUN = str(REPO / "egs" / "synthcovers" / "run.sh")


def test_demo_recipe_stages_0_2(tmp_path):
    args = [RUN, "--stop_stage", "2", "--works", "10", "--generated_works", "3", "--nj", "2",
            "--corpus_dir", str(tmp_path / "corpus"), "--data", str(tmp_path / "data")]
    r = run_bash(args)
    assert r.returncode == 0, r.stderr
    assert "stage 0: render the demo corpus" in r.stderr and "stage 1: JSONL manifests" in r.stderr
    corpus = read_manifest(tmp_path / "corpus" / "dataset.txt")
    train = read_manifest(tmp_path / "data" / "train" / "dataset.txt")
    val = read_manifest(tmp_path / "data" / "val" / "dataset.txt")
    test = read_manifest(tmp_path / "data" / "test" / "dataset.txt")
    assert len(train) + len(val) + len(test) == len(corpus)
    works = [{r["song"] for r in subset} for subset in (train, val, test)]
    assert not (works[0] & works[1]) and not (works[0] & works[2]) and not (works[1] & works[2])
    assert [len(w) for w in works] == [9, 2, 2]  # by hash of the work id, at least 2 a split; + 3 generated
    assert sum(w.startswith("generated-") for w in works[0]) == 3
    assert {r["pool"] for r in train} == {"train"} and {r["pool"] for r in val + test} == {"heldout"}
    queries = read_manifest(tmp_path / "data" / "test" / "query.txt")
    refs = read_manifest(tmp_path / "data" / "test" / "ref.txt")
    assert len(queries) == 2 and len(queries) + len(refs) == len(test)

    train_full = read_manifest(tmp_path / "data" / "train" / "full.txt")
    assert len(train_full) == len(train)  # no offline tempo copies: training stretches online
    assert len(read_manifest(tmp_path / "data" / "test" / "full.txt")) == len(test)
    assert "no shared works or recordings" in r.stdout
    hard = read_manifest(tmp_path / "data" / "test_hard" / "full.txt")  # the test works, every key distinct
    assert {r["song"] for r in hard} == works[2] and {r["split"] for r in hard} == {"test_hard"}

    again = run_bash(args)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("already done") == 6

    # stages 3-6 with a tiny model: train a few steps, align, fine-tune, evaluate both
    conf = train_config("demo_quick")
    conf.update(max_steps=6, max_epochs=1, chunk_frame=[50], channels=[8, 8], time_pool=[2, 2], embed_dim=32,
                batch_size=8, m_per_class=2)  # 9 training works
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(conf))
    common = ["--corpus_dir", str(tmp_path / "corpus"), "--data", str(tmp_path / "data"),
              "--exp", str(tmp_path / "exp"), "--train_config", str(tmp_path / "tiny.yaml")]
    r = run_bash([RUN, "--stage", "3", "--works", "10", "--generated_works", "3", "--fine_steps", "6", *common],
                 timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "exp" / "pt_model" / "g_00000000").exists()  # max_steps stops inside epoch 0
    for n in (3, 4, 5, 6):
        assert f"stage {n}:" in r.stderr and "not built" not in r.stderr
    alignment = [json.loads(line) for line in (tmp_path / "exp" / "align" / "train.jsonl").read_text().splitlines()]
    assert "header" in alignment[0] and len(alignment) > 1
    assert {a["utt_a"].rsplit("-v", 1)[0] == a["utt_b"].rsplit("-v", 1)[0] for a in alignment[1:]} == {True}
    assert list((tmp_path / "exp" / "align").glob("align_*.png"))
    assert (tmp_path / "exp_fine" / "pt_model" / "g_00000000").exists()
    assert "fine training from" in (tmp_path / "exp_fine" / "logs" / "train.log").read_text()
    comparison = (tmp_path / "exp_fine" / "comparison.txt").read_text()
    lines = comparison.splitlines()
    assert lines[0].startswith("protocol: ")  # the table names its evaluation protocol
    assert lines[2].startswith("coarse") and lines[3].startswith("fine")
    assert "chroma_mean" in comparison and "side by side" in r.stderr
    metrics = json.loads((tmp_path / "exp" / "eval_test" / "metrics.json").read_text())
    assert metrics["queries"] == len(test) and 0 < metrics["MAP"] <= 1
    assert "test-set metrics" in r.stderr and (tmp_path / "exp" / "eval_test" / "distance_hist.png").exists()
    # the model beside chance and the non-learned baselines, in metrics.json and one table
    assert set(metrics["baselines"]) >= {"chroma_mean", "2dftm"} and 0 < metrics["chance"]["MAP"] < 1
    table = (tmp_path / "exp" / "eval_test" / "metrics_table.txt").read_text()
    assert "chroma_mean" in table and "chance" in table
    assert (tmp_path / "exp" / "learning_curve.png").exists()
    hard_metrics = json.loads((tmp_path / "exp" / "eval_test_hard" / "metrics.json").read_text())
    assert hard_metrics["queries"] == len(hard) and "qmax" in hard_metrics["baselines"]
