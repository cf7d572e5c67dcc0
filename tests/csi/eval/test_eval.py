"""Evaluation: retrieval metrics on hand-computed cases, blocked track distances against a
naive computation, and tools.eval_testset end to end on a tiny model."""
import itertools
import json
import math

import numpy as np
import pytest
import torch
import yaml

from csi.scoring.distance import ChunkDistances, naive_track_distances, track_mean_embeddings
from csi.chunking import ChunkPolicy
from csi.embed import embed_records
from csi.features.reader import FeatureReader
from csi.features.frontend import COVERHUNTER_CQT, resolve_frontend
from csi.eval.dev_map import evaluate_map, track_distances

POLICY = ChunkPolicy(40, 40, 2)


def _reader():
    return FeatureReader(resolve_frontend(COVERHUNTER_CQT), 96)
from csi.scoring.metrics import (average_precisions, mean_average_precision, retrieval_metrics, same_source_pairs,
                              source_of_utt)
from tools import eval_testset


# ---- metrics -----------------------------------------------------------------------------
def test_one_relevant():
    res = retrieval_metrics(np.array([[0.1, 0.2, 0.3]]), ["a"], ["b", "a", "c"])
    m = res.metrics
    assert m["MAP"] == pytest.approx(0.5)
    assert m["MR1"] == 2 and m["P@10"] == pytest.approx(0.1)
    assert m["HR@1"] == 0 and m["HR@10"] == 1
    assert res.per_query()[0] == {"query": "0", "ap": 0.5, "first_rank": 2, "n_relevant": 1, "p_at_10": 0.1}


def test_several_relevant_all_ranks_count():
    # order: r1 (b), r2 (a), r3 (b), r0 (a), r4 (a): relevant at ranks 2, 4, 5
    d = np.array([[0.5, 0.1, 0.2, 0.3, 0.9]])
    res = retrieval_metrics(d, ["a"], ["a", "b", "a", "b", "a"])
    assert res.ap[0] == pytest.approx((1 / 2 + 2 / 4 + 3 / 5) / 3)
    assert res.first_rank[0] == 2 and res.n_relevant[0] == 3
    assert res.precision_at_10[0] == pytest.approx(0.3)


def test_deep_relevant_is_not_truncated():
    # 30 references, the only relevant one last: AP = 1/30, not 0 (no top-k cut)
    d = np.arange(30, dtype=float)[None, :]
    res = retrieval_metrics(d, ["a"], ["b"] * 29 + ["a"])
    assert res.metrics["MAP"] == pytest.approx(1 / 30)
    assert res.metrics["MR1"] == 30 and res.metrics["HR@10"] == 0 and res.metrics["P@10"] == 0


def _chance_ap(n_refs, n_rel):
    """Mean AP over every placement of n_rel relevant references among n_refs ranks."""
    aps = [np.mean([(m + 1) / p for m, p in enumerate(pos)])
           for pos in itertools.combinations(range(1, n_refs + 1), n_rel)]
    return float(np.mean(aps))


def test_ties_count_as_expected_values_hand_computed():
    # one relevant among 3 tied: rank 1, 2 or 3 equally likely -> AP = (1 + 1/2 + 1/3) / 3
    for refs in (["b", "a", "b"], ["a", "b", "b"], ["b", "b", "a"]):
        res = retrieval_metrics(np.full((1, 3), 0.5), ["a"], refs, hit_ks=(1, 2))
        assert res.ap[0] == pytest.approx(11 / 18)
        assert res.first_rank[0] == pytest.approx(2.0) and res.metrics["HR@1"] == pytest.approx(1 / 3)
        assert res.metrics["HR@2"] == pytest.approx(2 / 3)
    # 2 relevant among 4 tied at ranks 1-4, then a relevant alone at rank 5: the six placements
    # of the pair give sum(1/p1 + 2/p2) = 49/6, so the group adds 49/36; the last adds 3/5
    res = retrieval_metrics(np.array([[0.3, 0.3, 0.3, 0.3, 0.9]]), ["a"], ["b", "a", "b", "a", "a"])
    assert res.ap[0] == pytest.approx((49 / 36 + 3 / 5) / 3)
    assert res.first_rank[0] == pytest.approx(5 / 3)            # E[min of 2 of 4 positions] = (4+1)/(2+1)
    assert res.per_query()[0]["first_rank"] == pytest.approx(5 / 3)
    # a tie straddling rank 10: 12 references, ranks 9-12 tied, 2 relevant there
    d = np.array([[*range(8), 9, 9, 9, 9]], dtype=float)
    res = retrieval_metrics(d, ["a"], ["b"] * 8 + ["a", "b", "a", "b"])
    assert res.precision_at_10[0] == pytest.approx(2 * (2 / 4) / 10)
    assert res.metrics["HR@10"] == pytest.approx(1 - (2 / 4) * (1 / 3))   # P(both relevant in ranks 11-12) = 1/6


def test_constant_distances_give_chance_whatever_the_order():
    rng = np.random.default_rng(0)
    labels = ["a", "a", "b", "c", "c", "c", "d", "b"]
    # all-vs-all, self excluded: 7 references; "d" (query 6) has no relevant reference
    want = [_chance_ap(7, sum(lab == q for lab in labels) - 1) if q != "d" else np.nan for q in labels]
    for _ in range(3):
        perm = rng.permutation(len(labels))
        shuffled = [labels[k] for k in perm]
        res = retrieval_metrics(np.zeros((8, 8)), shuffled, shuffled, np.eye(8, dtype=bool))
        assert np.allclose(res.ap[np.argsort(perm)], want, equal_nan=True)
        assert res.metrics["MAP"] == pytest.approx(np.nanmean(want))
    # the closed form for one query: (H_N + (R-1)(N-H_N)/(N-1)) / N
    n, r = 40, 5
    h = sum(1 / j for j in range(1, n + 1))
    res = retrieval_metrics(np.ones((1, n)), ["a"], ["a"] * r + ["b"] * (n - r))
    assert res.ap[0] == pytest.approx((h + (r - 1) * (n - h) / (n - 1)) / n)
    assert res.first_rank[0] == pytest.approx((n + 1) / (r + 1)) and res.metrics["HR@1"] == pytest.approx(r / n)


def test_tie_expectations_equal_the_mean_over_every_order():
    # 12 references in tie groups of 3, 5 and 4 (one reference excluded); every order of the
    # tied references enumerated (3! 5! 4! rows) and averaged must give the tie-aware values
    base = np.array([0.1] * 3 + [0.2] * 5 + [0.3] * 4)
    refs = ["a", "b", "b", "a", "b", "a", "b", "b", "a", "b", "a", "b"]
    groups = [range(0, 3), range(3, 8), range(8, 12)]
    excluded = 6
    rows = []
    for perms in itertools.product(*(itertools.permutations(g) for g in groups)):
        d = base.copy()
        for perm in perms:
            d[list(perm)] += 1e-3 * np.arange(len(perm))
        rows.append(d)
    rows = np.array(rows)
    mask = np.zeros(rows.shape, dtype=bool)
    mask[:, excluded] = True
    enumerated = retrieval_metrics(rows, ["a"] * len(rows), refs, mask, hit_ks=(1, 4, 5, 10))
    exact = retrieval_metrics(base[None], ["a"], refs, [(0, excluded)], hit_ks=(1, 4, 5, 10))
    assert exact.ap[0] == pytest.approx(enumerated.metrics["MAP"], abs=1e-12)
    for key in ("MR1", "P@10", "HR@1", "HR@4", "HR@5", "HR@10"):
        assert exact.metrics[key] == pytest.approx(enumerated.metrics[key], abs=1e-12), key


def test_source_of_utt_and_same_source_pairs():
    assert source_of_utt("sp_0.9-work1-v0") == "work1-v0" and source_of_utt("work1-v0") == "work1-v0"
    q = ["w1-v0", "sp_0.9-w1-v0", "w2-v0"]
    r = ["w1-v0", "sp_1.1-w1-v0", "w1-v1", "w2-v0", "sp_0.9-w2-v1", "w9"]
    qi, ri = same_source_pairs(q, r)
    assert qi.dtype == np.int64 and list(zip(qi.tolist(), ri.tolist())) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 3)]
    qi, ri = same_source_pairs(q, r, keep_tempo_copies=True)
    assert list(zip(qi.tolist(), ri.tolist())) == [(0, 0), (2, 3)]
    qi, ri = same_source_pairs([], r)
    assert len(qi) == len(ri) == 0


def test_tempo_copies_are_not_ranked_by_default():
    # query w1-v0; its tempo copy is nearest (same work), another version of w1 third
    utts = ["sp_0.9-w1-v0", "w2-v0", "w1-v1", "w3-v0"]
    songs = ["w1", "w2", "w1", "w3"]
    d = np.array([[0.01, 0.2, 0.3, 0.4]])
    res = retrieval_metrics(d, ["w1"], songs, same_source_pairs(["w1-v0"], utts))
    assert res.ap[0] == pytest.approx(1 / 2) and res.first_rank[0] == 2 and res.metrics["references"] == 4
    old = retrieval_metrics(d, ["w1"], songs, same_source_pairs(["w1-v0"], utts, keep_tempo_copies=True))
    assert old.ap[0] == pytest.approx((1 + 2 / 3) / 2)


def test_excluded_pairs_are_not_ranked():
    # all-vs-all on a, a, b: each track excluded from its own ranking (by index, distance 0)
    d = np.array([[0.0, 0.2, 0.1], [0.2, 0.0, 0.1], [0.1, 0.1, 0.0]])
    labels = ["a", "a", "b"]
    res = retrieval_metrics(d, labels, labels, exclude=[(0, 0), (1, 1), (2, 2)])
    assert res.ap[0] == pytest.approx(0.5) and res.ap[1] == pytest.approx(0.5)   # the other "a" after "b"
    assert math.isnan(res.ap[2]) and res.n_relevant[2] == 0
    assert res.metrics["queries"] == 2 and res.metrics["queries_without_relevant"] == 1
    # the same with a mask and with index arrays; excluding the relevant pair leaves no relevant
    mask = np.eye(3, dtype=bool)
    assert np.allclose(retrieval_metrics(d, labels, labels, exclude=mask).ap, res.ap, equal_nan=True)
    arrays = (np.array([0, 1, 2]), np.array([0, 1, 2]))
    assert np.allclose(retrieval_metrics(d, labels, labels, exclude=arrays).ap, res.ap, equal_nan=True)
    res2 = retrieval_metrics(d, labels, labels, exclude=[(0, 0), (0, 1)])
    assert res2.n_relevant[0] == 0 and math.isnan(res2.ap[0])
    # an excluded pair ranked before the relevant one does not push it down
    res3 = retrieval_metrics(np.array([[0.0, 0.1, 0.2]]), ["a"], ["x", "b", "a"], exclude=[(0, 0)])
    assert res3.first_rank[0] == 2


def test_query_without_relevant_is_reported_not_zero():
    d = np.array([[0.1, 0.2], [0.2, 0.1]])
    res = retrieval_metrics(d, ["a", "z"], ["a", "b"], query_ids=["q1", "q2"])
    assert res.metrics["MAP"] == 1.0            # not (1 + 0) / 2
    assert res.metrics["queries"] == 1 and res.metrics["queries_without_relevant"] == 1
    assert res.per_query()[1] == {"query": "q2", "ap": None, "first_rank": None, "n_relevant": 0, "p_at_10": None}
    assert math.isnan(retrieval_metrics(d, ["y", "z"], ["a", "b"]).metrics["MAP"])


def test_none_label_is_never_relevant():
    res = retrieval_metrics(np.array([[0.1, 0.2]]), ["a"], [None, "a"])
    assert res.first_rank[0] == 2
    assert retrieval_metrics(np.array([[0.1]]), [None], [None]).metrics["queries_without_relevant"] == 1


def test_hit_rates_mr1_p10_over_queries():
    d = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]])
    res = retrieval_metrics(d, ["a", "a", "b"], ["a", "b", "b", "a"], hit_ks=(1, 2, 10))
    # query 0: ranks 1, 4; query 1: ranks 1 (ref 3), 4 (ref 0); query 2: ranks 2, 3
    assert res.first_rank.tolist() == [1, 1, 2]
    m = res.metrics
    assert m["MR1"] == pytest.approx(4 / 3) and m["HR@1"] == pytest.approx(2 / 3) and m["HR@2"] == 1
    assert m["P@10"] == pytest.approx(0.2)
    assert m["MAP"] == pytest.approx(((1 + 2 / 4) / 2 * 2 + (1 / 2 + 2 / 3) / 2) / 3)


def test_blocks_rows_provider_and_legacy_api_agree():
    rng = np.random.default_rng(0)
    d = rng.integers(0, 4, (23, 31)).astype(np.float32)     # many ties
    ql, rl = rng.integers(0, 5, 23), rng.integers(0, 5, 31)
    ex = rng.random((23, 31)) < 0.1
    full = retrieval_metrics(d, ql, rl, ex, block_size=1000)
    for block in (1, 4, 7):
        assert np.allclose(retrieval_metrics(d, ql, rl, ex, block_size=block).ap, full.ap, equal_nan=True)

    class Rows:
        n_queries, n_refs = d.shape

        def rows(self, start, stop):
            return d[start:stop]
    assert np.allclose(retrieval_metrics(Rows(), ql, rl, ex, block_size=5).ap, full.ap, equal_nan=True)
    assert np.allclose(average_precisions(d, ql, rl, ex), full.ap, equal_nan=True)
    assert mean_average_precision(d, ql, rl, ex) == pytest.approx(np.nanmean(full.ap))
    # brute force without ties: sort the non-excluded references
    d = d + rng.permutation(d.size).reshape(d.shape).astype(np.float32) * 1e-4
    untied = retrieval_metrics(d, ql, rl, ex, block_size=4)
    for i in range(23):
        keep = np.flatnonzero(~ex[i])
        hits = (rl[keep] == ql[i])[np.argsort(d[i, keep], kind="stable")]
        want = (np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)).mean() if hits.any() else np.nan
        assert np.isclose(untied.ap[i], want, equal_nan=True)
        if hits.any():
            assert untied.first_rank[i] == np.flatnonzero(hits)[0] + 1


def test_bootstrap_is_seeded_and_brackets_map():
    rng = np.random.default_rng(1)
    d = rng.random((40, 40))
    labels = rng.integers(0, 8, 40)
    a = retrieval_metrics(d, labels, labels, np.eye(40, dtype=bool), bootstrap=200, seed=3).metrics
    b = retrieval_metrics(d, labels, labels, np.eye(40, dtype=bool), bootstrap=200, seed=3).metrics
    assert a["MAP_ci95"] == b["MAP_ci95"] and a["bootstrap"] == 200
    assert a["MAP_ci95"][0] <= a["MAP"] <= a["MAP_ci95"][1]


def test_metric_errors():
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(np.array([[np.nan]]), ["a"], ["a"])
    with pytest.raises(ValueError, match="out of range"):
        retrieval_metrics(np.zeros((1, 1)), ["a"], ["a"], exclude=[(0, 3)])
    with pytest.raises(ValueError, match="labels"):
        retrieval_metrics(np.zeros((1, 2)), ["a"], ["a"])


# ---- blocked distances -------------------------------------------------------------------
def _chunks(rng, counts, dim=8):
    owner = np.repeat(np.arange(len(counts)), counts)
    rng.shuffle(owner)
    return torch.nn.functional.normalize(torch.randn(len(owner), dim), dim=1), torch.from_numpy(owner)


@pytest.mark.parametrize("mode", ["min", "mean"])
@pytest.mark.parametrize("block_elements", [1, 13, 200, 1 << 25])
def test_blocked_distances_equal_naive(mode, block_elements):
    rng = np.random.default_rng(block_elements)
    q_counts, r_counts = [3, 1, 0, 4, 3, 2, 3], [2, 3, 3, 0, 1, 5, 3, 3, 1]
    qe, qo = _chunks(rng, q_counts)
    re, ro = _chunks(rng, r_counts)
    want = naive_track_distances(qe, qo, 7, re, ro, 9, mode)
    cd = ChunkDistances(qe, qo, 7, re, ro, 9, mode=mode, block_elements=block_elements, device="cpu")
    got = np.concatenate([cd.rows(s, min(s + 2, 7)) for s in range(0, 7, 2)])
    assert got.dtype == np.float32 and got.shape == (7, 9)
    assert np.array_equal(np.isinf(got), np.isinf(want))
    assert np.allclose(got, want, atol=1e-6)
    shared = ChunkDistances(qe, qo, 7, mode=mode, block_elements=block_elements).full()
    assert np.allclose(shared, naive_track_distances(qe, qo, 7, qe, qo, 7, mode), atol=1e-6)


@pytest.mark.parametrize("mode", ["min", "mean"])
def test_metrics_on_chunk_distances_equal_full_matrix(mode):
    rng = np.random.default_rng(2)
    qe, qo = _chunks(rng, [1, 2, 3, 4, 0] * 6)
    labels = rng.integers(0, 6, 30)
    cd = ChunkDistances(qe, qo, 30, mode=mode, block_elements=50)
    out = np.empty((7, 30), dtype=np.float32)
    cd.rows_into(3, 10, out)
    assert np.array_equal(out, cd.rows(3, 10))
    full = naive_track_distances(qe, qo, 30, qe, qo, 30, mode)
    want = retrieval_metrics(full, labels, labels, np.eye(30, dtype=bool))
    got = retrieval_metrics(cd, labels, labels, (np.arange(30), np.arange(30)), block_size=4)
    assert np.allclose(got.ap, want.ap, equal_nan=True) and got.metrics == pytest.approx(want.metrics, nan_ok=True)


def test_uniform_chunks_and_legacy_track_distances():
    rng = np.random.default_rng(5)
    qe, qo = _chunks(rng, [3] * 6)
    qo = torch.sort(qo).values
    want = naive_track_distances(qe, qo, 6, qe, qo, 6)
    assert np.allclose(track_distances(qe, qo, 6, qe, qo, 6), want, atol=1e-6)
    means = track_mean_embeddings(qe, qo, 7)
    assert torch.allclose(means.norm(dim=1)[:6], torch.ones(6)) and means[6].abs().sum() == 0


# ---- the tool end to end -----------------------------------------------------------------
HP = {"train_path": "unused", "chunk_frame": [20], "mean_size": 2, "m_per_class": 2, "batch_size": 4,
      "input_dim": 96, "embed_dim": 32, "encoder": {"output_dims": 32, "num_blocks": 1, "attention_dim": 32,
                                                    "num_heads": 2},
      "pool_type": "attention", "ce": {"output_dims": 4}, "triplet": {"margin": 0.3, "weight": 0.1},
      "center": {"weight": 0.0}}


def _save_model(exp, epoch=0, seed=0):
    from csi.models import build_model, model_section
    torch.manual_seed(seed)
    model = build_model(model_section(HP))
    (exp / "pt_model").mkdir(parents=True, exist_ok=True)
    torch.save({"generator": model.state_dict()}, exp / "pt_model" / f"g_{epoch:08d}")
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import soundfile as sf

    root = tmp_path_factory.mktemp("eval")
    exp = root / "exp"
    (exp / "config").mkdir(parents=True)
    (exp / "config" / "hparams.yaml").write_text(yaml.safe_dump(HP))
    _save_model(exp)
    rng = np.random.default_rng(0)
    records = []
    for w in range(4):
        pattern = rng.uniform(-60, 0, 96)
        for v in range(3):
            frames = 100 + 10 * v
            feat = (pattern[None] + rng.normal(0, 60, (frames, 96)) - 20).astype(np.float16)
            path = root / "feat" / f"w{w}v{v}.npy"
            path.parent.mkdir(exist_ok=True)
            np.save(path, feat)
            records.append({"utt": f"w{w}v{v}", "wav": "", "song": f"work{w}", "feat": str(path), "feat_len": frames})
    full = root / "full.txt"
    full.write_text("".join(json.dumps(r) + "\n" for r in records))
    t = np.arange(16000 * 3) / 16000
    audio = []
    for k, f0 in enumerate((220.0, 330.0)):
        path = root / f"q{k}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.normal(size=len(t))).astype(np.float32), 16000)
        audio.append({"utt": f"aq{k}", "wav": str(path), "song": f"work{k}"})
    corrupt = root / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    audio.append({"utt": "broken", "wav": str(corrupt), "song": "work0"})
    queries = root / "audio_query.txt"
    queries.write_text("".join(json.dumps(r) + "\n" for r in audio))
    return {"root": root, "exp": exp, "full": full, "audio": queries, "records": records}


def _run(tiny, *extra, query=None, ref=None, out="out"):
    out_dir = tiny["root"] / out
    argv = [str(tiny["exp"]), str(query or tiny["full"]), str(ref or tiny["full"]), "--out_dir", str(out_dir), *extra]
    rc = eval_testset.main(argv)
    metrics = json.loads((out_dir / "metrics.json").read_text()) if rc == 0 else None
    return rc, metrics, out_dir


def test_cli_all_vs_all_outputs_and_map(tiny):
    rc, m, out = _run(tiny, "--plot", "--bootstrap", "50", out="all")
    assert rc == 0
    assert m["protocol"] == "all-vs-all" and m["queries_total"] == 12 and m["references"] == 12
    assert m["queries"] == 12 and m["queries_without_relevant"] == 0 and m["excluded_pairs"] == 12
    assert m["chunk_frames"] == 40 and m["chunk_s"] == pytest.approx(1.6) and m["failed"] == 0
    assert {"MAP", "MR1", "P@10", "HR@1", "HR@10", "MAP_ci95"} <= set(m)
    rows = (out / "per_query.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:5] == ["query", "ap", "first_rank", "n_relevant", "p_at_10"] and len(rows) == 13
    assert (out / "distance_hist.png").stat().st_size > 1000 and (out / "embedding_pca.png").stat().st_size > 1000
    assert (out / "eval_testset.yaml").is_file()
    # the cached embeddings: 100, 110, 120 frames in chunks of 40 -> 3 chunks each
    cache = out / "embeddings" / m["embedding_key"]
    emb = np.load(cache / "chunks.npy")
    index = [json.loads(line) for line in (cache / "index.jsonl").read_text().splitlines()]
    assert emb.shape == (36, 32) and [e["last"] - e["first"] + 1 for e in index] == [3] * 12
    # MAP recomputed naively from those embeddings
    owner = np.concatenate([[k] * 3 for k in range(12)])
    d = naive_track_distances(emb, owner, 12, emb, owner, 12)
    songs = [r["song"] for r in tiny["records"]]
    assert m["MAP"] == pytest.approx(mean_average_precision(d, songs, songs, np.eye(12, dtype=bool)), abs=1e-9)


def test_cli_embedding_cache_reuse_and_invalidation(tiny):
    rc, first, _ = _run(tiny, out="cache")
    assert rc == 0 and first["embedded_tracks"] == 12 and first["cached_tracks"] == 0
    rc, again, _ = _run(tiny, out="cache")
    assert rc == 0 and again["embedded_tracks"] == 0 and again["cached_tracks"] == 12
    assert again["MAP"] == first["MAP"] and again["embedding_key"] == first["embedding_key"]
    rc, other, _ = _run(tiny, "--chunk_s", "2.0", out="cache")                # other chunk setting
    assert rc == 0 and other["embedding_key"] != first["embedding_key"] and other["cached_tracks"] == 0
    _save_model(tiny["exp"], epoch=1, seed=1)                                   # a new latest checkpoint
    try:
        rc, new, _ = _run(tiny, out="cache")
        assert rc == 0 and new["embedding_key"] != first["embedding_key"]
        assert new["embedded_tracks"] == 12 and new["cached_tracks"] == 0
        rc, old, _ = _run(tiny, "--checkpoint", "0", out="cache")
        assert rc == 0 and old["embedding_key"] == first["embedding_key"] and old["cached_tracks"] == 12
    finally:
        (tiny["exp"] / "pt_model" / "g_00000001").unlink()


def test_cli_audio_queries_and_corrupt_file(tiny, capsys):
    rc, m, out = _run(tiny, "--mean_embedding", "--num_workers", "1", query=tiny["audio"], out="audio")
    assert rc == 0
    assert m["protocol"] == "query-vs-reference" and m["distance"] == "mean"
    assert m["queries_total"] == 2 and m["failed"] == 1 and m["failed_queries"] == 1
    failed = (out / "failed.tsv").read_text().splitlines()
    assert len(failed) == 2 and failed[1].startswith("broken\tquery\t")
    assert "MAP" in capsys.readouterr().out


def test_cli_query_in_ref_and_distractors(tiny, capsys):
    root = tiny["root"]
    bad = root / "qir_bad.txt"
    bad.write_text("w0v0 w0v1\nnope w0v2\n")
    rc, _, _ = _run(tiny, "--query_in_ref_path", str(bad), out="qir")
    assert rc == 1 and "nope" in capsys.readouterr().err
    good = root / "qir.jsonl"
    good.write_text('{"query": "w0v0", "ref": "w0v1"}\n["w1v0", "w1v1"]\n')
    rc, m, out = _run(tiny, "--query_in_ref_path", str(good), out="qir")
    assert rc == 0 and m["excluded_pairs"] == 14
    rows = {r.split("\t")[0]: r.split("\t") for r in (out / "per_query.tsv").read_text().splitlines()[1:]}
    assert rows["w0v0"][3] == "1" and rows["w0v1"][3] == "2"
    ref_format = root / "qir_ref.txt"
    ref_format.write_text(json.dumps({"query_in_ref": [[0, 1], [12, 0]]}) + "\n")
    rc, _, _ = _run(tiny, "--query_in_ref_path", str(ref_format), out="qir")
    assert rc == 1 and "(12, 0)" in capsys.readouterr().err
    distractors = root / "distractors.txt"
    distractors.write_text("".join(json.dumps({"utt": f"noise{k}", "song": "work0", "feat": r["feat"]}) + "\n"
                                   for k, r in enumerate(tiny["records"][:2])))
    rc, m, _ = _run(tiny, "--distractors", str(distractors), out="distract")
    assert rc == 0 and m["references"] == 14 and m["references_distractors"] == 2
    assert m["mean_relevant_per_query"] == pytest.approx(2.0)     # distractors are never relevant


def test_evaluate_map_and_failed_tracks(tiny):
    import csi
    model = csi.load_model(tiny["exp"], checkpoint=0)
    recs = tiny["records"] + [{"utt": "missing", "song": "work0", "feat": str(tiny["root"] / "none.npy"),
                               "feat_len": 50}]
    value = evaluate_map(model, recs, recs, POLICY, _reader(), batch_size=5)
    emb = embed_records(model, recs, POLICY, _reader(), batch_size=5)
    assert list(emb.failed) == [12] and len(emb.emb) == 36 and 0 < value <= 1
    owner = emb.owner
    d = naive_track_distances(emb.emb, owner, 12, emb.emb, owner, 12)
    songs = [r["song"] for r in tiny["records"]]
    assert value == pytest.approx(mean_average_precision(d, songs, songs, np.eye(12, dtype=bool)))


def _with_tempo_copies(tiny):
    """The tiny records plus a near-identical copy ``sp_0.9-<utt>`` of each first version."""
    root = tiny["root"]
    path = root / "with_copies.txt"
    if not path.exists():
        rng = np.random.default_rng(7)
        copies = []
        for r in tiny["records"]:
            if r["utt"].endswith("v0"):
                feat = np.load(r["feat"]).astype(np.float32)
                copy = root / "feat" / f"sp_0.9-{r['utt']}.npy"
                np.save(copy, (feat + rng.normal(0, 1, feat.shape)).astype(np.float16))
                copies.append(dict(r, utt=f"sp_0.9-{r['utt']}", feat=str(copy)))
        path.write_text("".join(json.dumps(r) + "\n" for r in tiny["records"] + copies))
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    source = [u.split("-", 1)[1] if u.startswith("sp_") else u for u in (r["utt"] for r in recs)]
    same_source = np.array([[a == b for b in source] for a in source])
    return path, recs, same_source


def test_cli_excludes_tempo_copies_unless_asked(tiny):
    path, recs, same_source = _with_tempo_copies(tiny)
    rc, m, out = _run(tiny, query=path, ref=path, out="tempo")
    assert rc == 0 and m["queries_total"] == 16 and m["excluded_pairs"] == 24   # 4 pairs of 2 (x4) + 8 alone
    cache = out / "embeddings" / m["embedding_key"]
    emb = np.load(cache / "chunks.npy")
    index = {e["utt"]: e for e in map(json.loads, (cache / "index.jsonl").read_text().splitlines())}
    rows = np.concatenate([np.arange(index[r["utt"]]["first"], index[r["utt"]]["last"] + 1) for r in recs])
    owner = np.concatenate([[k] * (index[r["utt"]]["last"] - index[r["utt"]]["first"] + 1)
                            for k, r in enumerate(recs)])
    d = naive_track_distances(emb[rows], owner, 16, emb[rows], owner, 16)
    songs = [r["song"] for r in recs]
    assert m["MAP"] == pytest.approx(mean_average_precision(d, songs, songs, same_source), abs=1e-9)
    rc, old, _ = _run(tiny, "--keep_tempo_copies", query=path, ref=path, out="tempo")
    assert rc == 0 and old["excluded_pairs"] == 16 and old["cached_tracks"] == 16
    assert old["MAP"] == pytest.approx(mean_average_precision(d, songs, songs, np.eye(16, dtype=bool)), abs=1e-9)
    assert old["MAP"] > m["MAP"]              # a copy of the query ranked first is an easy hit


def test_dev_map_excludes_tempo_copies(tiny):
    import csi
    _, recs, same_source = _with_tempo_copies(tiny)
    model = csi.load_model(tiny["exp"], checkpoint=0)
    emb = embed_records(model, recs, POLICY, _reader(), batch_size=5)
    d = naive_track_distances(emb.emb, emb.owner, 16, emb.emb, emb.owner, 16)
    songs = [r["song"] for r in recs]
    assert evaluate_map(model, recs, recs, POLICY, _reader(), batch_size=5) == pytest.approx(
        mean_average_precision(d, songs, songs, same_source))
    assert evaluate_map(model, recs, recs, POLICY, _reader(), batch_size=5, keep_tempo_copies=True) == pytest.approx(
        mean_average_precision(d, songs, songs, np.eye(16, dtype=bool)))


def test_cli_single_work_split_is_an_error(tiny, capsys):
    one = tiny["root"] / "one_work.txt"
    one.write_text("".join(json.dumps(r) + "\n" for r in tiny["records"] if r["song"] == "work0"))
    rc, _, _ = _run(tiny, query=one, ref=one, out="one")
    assert rc == 1
    assert "one_work.txt: 1 work; retrieval needs at least 2" in capsys.readouterr().err


@pytest.mark.parametrize("best_k", [1, 2, 4])
def test_best_pairs_distance_matches_the_greedy_reference(best_k):
    rng = np.random.default_rng(5)
    counts_q, counts_r = [1, 3, 4, 0, 2, 3], [2, 4, 1, 3, 3]
    qe = rng.normal(size=(sum(counts_q), 8)).astype(np.float32)
    re = rng.normal(size=(sum(counts_r), 8)).astype(np.float32)
    qe /= np.linalg.norm(qe, axis=1, keepdims=True)
    re /= np.linalg.norm(re, axis=1, keepdims=True)
    qo = rng.permutation(np.repeat(np.arange(6), counts_q))
    ro = rng.permutation(np.repeat(np.arange(5), counts_r))
    got = ChunkDistances(qe, qo, 6, re, ro, 5, mode="best_pairs", best_k=best_k, block_elements=7).full()
    want = naive_track_distances(qe, qo, 6, re, ro, 5, mode="best_pairs", best_k=best_k)
    assert np.allclose(got, want, atol=1e-5) and np.isinf(got[3]).all()
    if best_k == 1:
        assert np.allclose(got, naive_track_distances(qe, qo, 6, re, ro, 5, mode="min"), atol=1e-5)


@pytest.mark.parametrize("best_k", [2, 3, 5])
def test_best_pairs_with_many_segments_ties_and_hubs(best_k):
    """More reference tracks of one count than a tile, 1-12 segments, repeated segments (exact ties) and
    a hub segment close to everything: the same as the naive greedy."""
    rng = np.random.default_rng(7)
    counts_q = rng.integers(1, 13, 5)
    counts_r = np.concatenate([rng.integers(1, 13, 30), rng.integers(3, 5, 90)])   # 45 tracks a count: 2 tiles
    hub = rng.normal(size=8)
    def segments(n):
        e = rng.normal(size=(n, 8)) + 1.5 * hub
        e[rng.random(n) < 0.2] = e[0]                      # repeated segments: tied similarities
        return e
    qe = segments(counts_q.sum()).astype(np.float32)
    re = segments(counts_r.sum()).astype(np.float32)
    qe /= np.linalg.norm(qe, axis=1, keepdims=True)
    re /= np.linalg.norm(re, axis=1, keepdims=True)
    qo, ro = np.repeat(np.arange(5), counts_q), rng.permutation(np.repeat(np.arange(120), counts_r))
    got = ChunkDistances(qe, qo, 5, re, ro, 120, mode="best_pairs", best_k=best_k, block_elements=5000).full()
    want = naive_track_distances(qe, qo, 5, re, ro, 120, mode="best_pairs", best_k=best_k)
    assert np.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("best_k", [1, 2, 3])
def test_best_pairs_numba_and_torch_agree(best_k, monkeypatch):
    """Both implementations of the greedy (csi.scoring.best_pairs) on one block with ties."""
    import torch

    from csi.scoring import best_pairs

    rng = np.random.default_rng(best_k)
    c_q, n_q, c_r, tiles, tile = 7, 3, 6, 2, 4
    block = rng.normal(size=(c_q * n_q, tiles * c_r * tile)).round(1).astype(np.float32)   # many ties
    want = best_pairs.greedy_best_pairs_torch(torch.from_numpy(block.copy()), c_q, n_q, c_r, tiles, tile, best_k)
    cells = block.reshape(c_q, n_q, tiles, c_r, tile)
    for q in range(n_q):                                           # the naive greedy on two pairs
        for t, s in ((0, 0), (1, 3)):
            m = cells[:, q, t, :, s]
            d = [(-m[a, b], a, b) for a in range(c_q) for b in range(c_r)]
            used_a, used_b, taken = set(), set(), []
            for v, a, b in sorted(d):
                if a not in used_a and b not in used_b and len(taken) < best_k:
                    taken.append(-v)
                    used_a.add(a)
                    used_b.add(b)
            assert want[q, t * tile + s].item() == pytest.approx(np.mean(taken), abs=1e-6)
    if best_pairs.HAVE_NUMBA:
        got = best_pairs.greedy_best_pairs_numba(torch.from_numpy(block), c_q, n_q, c_r, tiles, tile, best_k)
        assert torch.allclose(got, want, atol=1e-6)
        sliced = torch.from_numpy(np.pad(block, ((0, 0), (5, 3))))[:, 5:-3]    # a column slice of a buffer
        assert torch.allclose(best_pairs.greedy_best_pairs_numba(sliced, c_q, n_q, c_r, tiles, tile, best_k), want,
                              atol=1e-6)
    monkeypatch.setattr(best_pairs, "HAVE_NUMBA", False)              # the torch path inside ChunkDistances
    qe = rng.normal(size=(12, 8)).astype(np.float32)
    re = rng.normal(size=(40, 8)).astype(np.float32)
    qe /= np.linalg.norm(qe, axis=1, keepdims=True)
    re /= np.linalg.norm(re, axis=1, keepdims=True)
    qo, ro = np.repeat(np.arange(3), 4), np.repeat(np.arange(10), 4)
    got = ChunkDistances(qe, qo, 3, re, ro, 10, mode="best_pairs", best_k=best_k).full()
    assert np.allclose(got, naive_track_distances(qe, qo, 3, re, ro, 10, mode="best_pairs", best_k=best_k), atol=1e-5)


def test_cli_best_pairs_distance(tiny):
    rc, m, out = _run(tiny, "--distance", "best_pairs", "--best_pairs_k", "2", "--hop_s", "0.8", out="best")
    assert rc == 0 and m["distance"] == "best_pairs" and m["best_pairs_k"] == 2 and 0 < m["MAP"] <= 1
    rc1, m1, _ = _run(tiny, "--distance", "best_pairs", "--best_pairs_k", "1", "--hop_s", "0.8", out="best")
    rc2, m2, _ = _run(tiny, "--hop_s", "0.8", out="best")
    assert rc1 == rc2 == 0 and m1["MAP"] == pytest.approx(m2["MAP"], abs=1e-9)    # k = 1 is the minimum
