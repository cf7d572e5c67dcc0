"""Two-stage retrieval (csi.eval.rerank): the order it encodes, the top K it aligns, and
``tools.eval_testset --rerank qmax`` against Qmax all-vs-all."""
from __future__ import annotations

import json

import numpy as np
import pytest

from csi.baselines import BaselineError, evaluate_baselines
from csi.scoring.metrics import retrieval_metrics
from csi.eval.rerank import RerankedDistances, check_rerank_frontend, reranked_rows, top_k_pairs


class Rows:
    """A DistanceRows over a fixed matrix."""

    def __init__(self, d):
        self.d = np.asarray(d, dtype=np.float32)
        self.n_queries, self.n_refs = self.d.shape

    def rows(self, start, stop):
        return self.d[start:stop]


def test_reranked_order_top_k_by_alignment_then_the_rest():
    first = np.array([[0.1, 0.5, 0.3, 0.9, 0.2]])
    pairs = top_k_pairs(first, 3)
    assert sorted(pairs[:, 1].tolist()) == [0, 2, 4]
    aligned = np.full((1, 5), np.inf)
    aligned[0, [0, 2]] = [0.8, 0.4]                      # reference 4 in the top 3 but not alignable
    order = np.argsort(reranked_rows(first, aligned, pairs)[0], kind="stable").tolist()
    assert order == [2, 0, 4, 1, 3]                      # aligned by Qmax, unaligned top-3, then the rest
    assert top_k_pairs(np.array([[np.inf, 0.2, np.inf]]), 2)[:, 1].tolist() == [1]   # excluded never taken


def test_rerank_skips_excluded_pairs_and_keeps_the_rest_of_the_ranking():
    from tests.csi.baselines.test_qmax import chroma_track

    rng = np.random.default_rng(0)
    a = chroma_track(rng, 40)
    tracks = [a, chroma_track(rng, 40, a, 3), chroma_track(rng, 40), chroma_track(rng, 40)]
    ids = ["a", "b", "c", "d"]
    first = Rows([[0.0, 0.4, 0.1, 0.2], [0.4, 0.0, 0.3, 0.35], [0.1, 0.3, 0.0, 0.5], [0.2, 0.35, 0.5, 0.0]])
    exclude = (np.arange(4), np.arange(4))                # each query itself
    rr = RerankedDistances(first, tracks, tracks, ids, ids, exclude, top_k=2)
    labels = ["w", "w", "x", "y"]
    m = retrieval_metrics(rr, labels, labels, exclude).metrics
    assert rr.stats()["pairs_aligned"] == 8               # 2 a query; the query itself never
    # query a: embeddings rank c, d, b (AP 1/3); top 2 = {c, d} re-ordered, b stays third
    # query b: embeddings rank c, d, a; top 2 = {c, d}: a third again
    first_only = retrieval_metrics(first, labels, labels, exclude).metrics
    assert m["MAP"] == pytest.approx(first_only["MAP"])
    rr = RerankedDistances(first, tracks, tracks, ids, ids, exclude, top_k=3)
    m = retrieval_metrics(rr, labels, labels, exclude).metrics
    assert m["MAP"] == pytest.approx(1.0)                 # the version aligns best once it is in the top K


def test_rerank_refuses_a_front_end_it_cannot_align():
    from csi.features.frontend import resolve_frontend

    assert check_rerank_frontend(resolve_frontend({"name": "coverhunter_cqt"})) == (32.0, 25.0)
    with pytest.raises(BaselineError, match="12-bins-per-octave CQT; the model's front end is datacos_pcp"):
        check_rerank_frontend(resolve_frontend({"name": "datacos_pcp"}))
    with pytest.raises(BaselineError, match="known re-ranking systems: qmax"):
        check_rerank_frontend(resolve_frontend({"name": "coverhunter_cqt"}), "dtw")


def test_eval_testset_rerank_all_references_equals_qmax(tmp_path, capsys):
    from tests.csi.baselines.test_baselines import random_model_dir, write_records
    from tests.csi.baselines.test_qmax import melody_versions
    from tools import eval_testset

    manifest, records = write_records(tmp_path, melody_versions(4, semitones=3))
    exp = random_model_dir(tmp_path / "exp")
    qmax = evaluate_baselines(records, records, "qmax")["qmax"]
    for k, expect_qmax in ((7, True), (2, False)):
        out = tmp_path / f"eval{k}"
        assert eval_testset.main([str(exp), str(manifest), str(manifest), "--out_dir", str(out), "--rerank", "qmax",
                                  "--rerank_top", str(k), "--baselines", "chance", "--no_progress"]) == 0
        m = json.loads((out / "metrics.json").read_text())
        assert m["rerank"]["top_k"] == k and m["rerank"]["pairs_aligned"] == 8 * k and "MAP" in m["first_stage"]
        if expect_qmax:                         # every other track re-scored: Qmax's own ranking
            assert m["MAP"] == pytest.approx(qmax["MAP"]) and m["MR1"] == pytest.approx(qmax["MR1"])
        rows = (out / "metrics_table.txt").read_text().splitlines()
        assert rows[1].startswith(f"model (g_00000000) + qmax top {k}") and rows[2].startswith("model (g_00000000) ")
    assert "re-ranked: top 2 by qmax" in capsys.readouterr().out
    assert eval_testset.main([str(exp), str(manifest), str(manifest), "--rerank", "qmax", "--rerank_top", "0"]) == 1
    assert "--rerank_top must be >= 1" in capsys.readouterr().err
