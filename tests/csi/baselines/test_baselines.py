"""Non-learned reference systems (csi.baselines), tools.eval_baseline and
tools.eval_testset --baselines, on small generated features."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from csi.baselines import (BaselineError, baseline_distances, chance_metrics, check_split, evaluate_baselines,
                                expected_average_precision, fold_chroma, format_table, resolve_systems)
from csi.baselines.chance import random_distances
from csi.baselines.chroma import pitch_class_offset
from csi.baselines.chroma_mean import chroma_mean_vector, shift_min_cosine_distances
from csi.baselines.ftm2d import beat_rate_chroma, ftm2d_patches, ftm2d_vector
from csi.baselines.mean_cqt import mean_cqt_vector
from csi.scoring.metrics import retrieval_metrics
from tools import eval_baseline

SILENCE = -100.0


def notes(bins, frames=50, n_bins=96, level=0.0):
    """A (frames, n_bins) dB CQT: silence except the given bins at ``level`` dB."""
    feat = np.full((frames, n_bins), SILENCE, dtype=np.float32)
    feat[:, list(bins)] = level
    return feat


def write_records(root, tracks, name="full.txt"):
    """tracks: (utt, song, feature array) -> float16 .npy files and a manifest."""
    (root / "feat").mkdir(parents=True, exist_ok=True)
    records = []
    for utt, song, feat in tracks:
        path = root / "feat" / f"{utt}.npy"
        np.save(path, np.asarray(feat, dtype=np.float16))
        records.append({"utt": utt, "song": song, "feat": str(path), "feat_len": len(feat)})
    manifest = root / name
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    return manifest, records


# ---- chroma folding ----------------------------------------------------------------------
def test_fold_chroma_known_frame():
    frame = np.full((1, 96), SILENCE, dtype=np.float32)
    frame[0, 0] = 0.0                        # C1 (32 Hz is 37 cents below C1: pitch class C)
    frame[0, 12] = 10 * math.log10(0.25)     # C2 at a quarter of the power
    frame[0, 4 + 24] = -10.0                 # E3, power 0.1
    assert pitch_class_offset(32.0) == 0
    expected = np.zeros(12)
    expected[0], expected[4] = 1.25, 0.1
    assert np.allclose(fold_chroma(frame)[0], expected, atol=1e-6)
    # magnitude scale: 10**(dB/20)
    assert np.allclose(fold_chroma(frame, scale="magnitude")[0][[0, 4]], [1.5, 10 ** -0.5], atol=1e-6)
    # a CQT starting on D: the same bins are two semitones higher
    assert pitch_class_offset(32.0 * 2 ** (2 / 12)) == 2
    assert np.allclose(fold_chroma(frame, fmin=32.0 * 2 ** (2 / 12))[0], np.roll(expected, 2), atol=1e-6)


# ---- chroma_mean -------------------------------------------------------------------------
def test_shift_min_cosine_by_hand():
    e = np.eye(12, dtype=np.float32)
    q = np.stack([e[0] + e[1], e[0]])
    r = np.stack([e[0] + e[2], e[5]])
    d = shift_min_cosine_distances(q, r)
    # {C, C#} vs {C, D}: at best one common note of two: cos 1/2; one note vs one note: 0
    assert np.allclose(d, [[0.5, 1 - 1 / math.sqrt(2)], [1 - 1 / math.sqrt(2), 0.0]], atol=1e-6)


def test_chroma_mean_transposed_copy_is_at_zero():
    rng = np.random.default_rng(0)
    feat = rng.uniform(-80, 0, (200, 96)).astype(np.float32)
    other = rng.uniform(-80, 0, (150, 96)).astype(np.float32)
    vectors = np.stack([chroma_mean_vector(f) for f in (feat, np.roll(feat, 5, axis=1), other)])
    # rolling all 96 bins (8 octaves) rolls the folded chroma by 5 pitch classes exactly
    assert np.allclose(chroma_mean_vector(np.roll(feat, 5, axis=1)), np.roll(vectors[0], 5), atol=1e-6)
    d = shift_min_cosine_distances(vectors, vectors)
    assert d[0, 1] == pytest.approx(0.0, abs=1e-6)
    assert d[0, 2] > 10 * max(d[0, 1], 1e-7)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


# ---- 2dftm -------------------------------------------------------------------------------
def test_2dftm_invariant_to_circular_pitch_and_time_shift():
    steps = np.random.default_rng(1).random((75, 12))
    ref = ftm2d_patches(steps)
    assert ref.shape == (1, 75, 12)
    for shifted in (np.roll(steps, 3, axis=1), np.roll(steps, 17, axis=0), np.roll(np.roll(steps, -4, 1), 40, 0)):
        assert np.allclose(ftm2d_patches(shifted), ref, atol=1e-9)
    assert not np.allclose(ftm2d_patches(steps[::-1] ** 2), ref)


def test_2dftm_constant_input_is_dc_only():
    patch = ftm2d_patches(np.full((75, 12), 0.5))[0]
    expected = np.zeros((75, 12))
    expected[0, 0] = 900 * 0.5 ** 1.96                # the mean times 75 * 12, after the power 1.96
    assert np.allclose(patch, expected, atol=1e-9)
    # a whole constant track: every step scaled to max 1, one DC component, unit norm
    vec = ftm2d_vector(np.full((1200, 96), -20.0, dtype=np.float32))      # 100 steps: 26 patches
    assert vec.shape == (900,) and vec[0] == pytest.approx(1.0) and np.allclose(vec[1:], 0.0, atol=1e-6)


def test_2dftm_steps_and_short_track_padding():
    feat = np.full((30, 96), SILENCE, dtype=np.float32)
    feat[:12, 0] = 0.0          # C in the first step, E in the second, the last 6 frames silent
    feat[12:24, 4] = 0.0
    steps = beat_rate_chroma(feat)
    assert steps.shape == (3, 12)
    assert np.allclose(steps[0], np.eye(12)[0]) and np.allclose(steps[1], np.eye(12)[4])
    assert np.allclose(steps[2], 0.0)
    vec = ftm2d_vector(feat)     # 3 steps, zero-padded to one 75-step patch
    assert vec.shape == (900,) and np.isfinite(vec).all() and np.linalg.norm(vec) == pytest.approx(1.0)


# ---- mean_cqt ----------------------------------------------------------------------------
def test_mean_cqt_level_invariant_not_key_invariant():
    rng = np.random.default_rng(2)
    feat = rng.uniform(-80, 0, (100, 96)).astype(np.float32)
    v = mean_cqt_vector(feat)
    assert np.allclose(mean_cqt_vector(feat - 12.0), v, atol=1e-5)           # a level change: same vector
    assert 1.0 - v @ mean_cqt_vector(np.roll(feat, 5, axis=1)) > 0.01        # transposed: not the same
    assert mean_cqt_vector(feat).mean() == pytest.approx(0.0, abs=1e-6)


# ---- chance ------------------------------------------------------------------------------
@pytest.mark.parametrize("n,relevant", [(1, 1), (3, 1), (4, 2), (5, 3), (6, 6)])
def test_expected_ap_equals_enumeration(n, relevant):
    aps = []
    for perm in itertools.permutations(range(n)):
        ranks = sorted(perm.index(i) + 1 for i in range(relevant))     # items 0..R-1 are relevant
        aps.append(np.mean([(k + 1) / r for k, r in enumerate(ranks)]))
    assert expected_average_precision(np.array([n]), np.array([relevant]))[0] == pytest.approx(np.mean(aps))
    assert expected_average_precision(np.array([4]), np.array([2]))[0] == pytest.approx(49 / 72)


def test_chance_metrics_match_constant_distances_and_random_rankings():
    rng = np.random.default_rng(3)
    q_labels = list(rng.integers(0, 4, 9)) + [None]
    r_labels = list(rng.integers(0, 5, 13)) + [None]
    exclude = rng.random((10, 14)) < 0.15
    exact = chance_metrics(q_labels, r_labels, exclude)
    # tied distances count as the expectation over a random order (csi.scoring.metrics)
    tied = retrieval_metrics(np.zeros((10, 14)), q_labels, r_labels, exclude).metrics
    for k in ("MAP", "MR1", "P@10", "HR@1", "HR@10", "queries", "queries_without_relevant"):
        assert exact[k] == pytest.approx(tied[k]), k
    sampled = np.mean([retrieval_metrics(random_distances(10, 14, seed=s), q_labels, r_labels, exclude).metrics["MAP"]
                       for s in range(400)])
    assert sampled == pytest.approx(exact["MAP"], abs=0.01)


# ---- a retrieval example computed by hand ------------------------------------------------
def test_small_retrieval_example_by_hand(tmp_path):
    # work a: the single notes C4 and D4 (one transposed); work b: the dyads C4-E4 and C4-G4
    manifest, records = write_records(tmp_path, [
        ("x1", "a", notes([36])), ("x2", "a", notes([38])),
        ("y1", "b", notes([36, 40])), ("y2", "b", notes([36, 43]))])
    res = evaluate_baselines(records, records, "all")
    assert list(res) == ["chance", "chroma_mean", "2dftm", "qmax", "mean_cqt"]
    # chroma_mean: x1-x2 at 0 (transposition); note vs dyad 1 - 1/sqrt(2) = 0.29; the two dyads
    # share at best one note: 0.5. Queries x: AP 1; queries y: the other dyad is 3rd, AP 1/3.
    d = baseline_distances("chroma_mean", records, records)
    assert d[0, 1] == pytest.approx(0.0, abs=1e-6) and d[2, 3] == pytest.approx(0.5, abs=1e-6)
    assert d[0, 2] == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-6)
    m = res["chroma_mean"]
    assert m["MAP"] == pytest.approx((1 + 1 + 1 / 3 + 1 / 3) / 4) and m["MR1"] == pytest.approx(2.0)
    assert m["HR@1"] == pytest.approx(0.5) and m["queries"] == 4
    # mean_cqt (centred cosine of k-hot dB vectors): x1 is closer to both dyads (shared C4) than
    # to x2 (AP 1/3); x2 shares nothing with anyone, x1 is least far (AP 1); each dyad's nearest
    # is x1, then the other dyad (AP 1/2).
    assert res["mean_cqt"]["MAP"] == pytest.approx((1 / 3 + 1 + 1 / 2 + 1 / 2) / 4)
    # chance: 3 references, 1 relevant: H_3 / 3
    assert res["chance"]["MAP"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert res["chance"]["MR1"] == pytest.approx(2.0) and res["chance"]["HR@1"] == pytest.approx(1 / 3)
    table = format_table([("model", {"MAP": 0.5, "MR1": 1.5}), ("chance", res["chance"])]).splitlines()
    assert table[0].split() == ["system", "MAP", "MR1", "P@10", "HR@1", "HR@10"]
    assert table[1].split() == ["model", "0.5000", "1.50", "-", "-", "-"]


def test_tempo_copies_are_excluded(tmp_path):
    from csi.scoring.metrics import same_source_pairs

    _, records = write_records(tmp_path, [
        ("v1", "a", notes([36])), ("sp_0.9-v1", "a", notes([36])), ("v2", "a", notes([38, 41])),
        ("w1", "b", notes([36, 40])), ("w2", "b", notes([37, 41]))])
    m = evaluate_baselines(records, records, "chance")["chance"]
    # v1 and its tempo copy rank neither themselves nor each other: 3 references, 1 relevant;
    # v2: 4 references, 2 relevant; w1, w2: 4 references, 1 relevant
    assert m["MAP"] == pytest.approx(np.mean([_ap(3, 1), _ap(3, 1), _ap(4, 2), _ap(4, 1), _ap(4, 1)]))
    utts = [r["utt"] for r in records]
    old = evaluate_baselines(records, records, "chance", exclude=same_source_pairs(utts, utts, keep_tempo_copies=True))
    assert old["chance"]["MAP"] == pytest.approx(np.mean([_ap(4, 2)] * 3 + [_ap(4, 1)] * 2))


def _ap(n, r):
    return float(expected_average_precision(np.array([n]), np.array([r]))[0])


# ---- bad input ---------------------------------------------------------------------------
def test_bad_inputs_are_refused_with_the_file(tmp_path):
    with pytest.raises(BaselineError, match=r"one\.txt: 1 work; retrieval needs at least 2"):
        check_split([{"utt": "a", "song": "s"}, {"utt": "b", "song": "s"}], tmp_path / "one.txt")
    with pytest.raises(BaselineError, match=r"empty\.txt: no records"):
        check_split([], tmp_path / "empty.txt")
    with pytest.raises(BaselineError, match="unknown baseline 'dtw'"):
        resolve_systems("chroma_mean,dtw")
    assert resolve_systems(["2dftm", "all"]) == ["2dftm", "chance", "chroma_mean", "qmax", "mean_cqt"]
    # 20 bins: not a whole number of octaves
    _, records = write_records(tmp_path / "b20", [("a", "x", np.zeros((30, 20))), ("b", "y", np.zeros((30, 20)))])
    with pytest.raises(BaselineError, match=r"chroma_mean needs a 12-bins-per-octave CQT; .*a\.npy has 20 bins"):
        evaluate_baselines(records, records, "chroma_mean")
    assert evaluate_baselines(records, records, "mean_cqt")["mean_cqt"]["queries"] == 0   # any feature is fine
    # a store made by a 24-bins-per-octave CQT (its fingerprint.json says so)
    store = tmp_path / "data" / "cqt_feat"
    (store / "ab").mkdir(parents=True)
    (store / "fingerprint.json").write_text(json.dumps(
        {"frontend": {"name": "nnaudio_cqt", "n_bins": 96, "bins_per_octave": 24}}))
    recs = []
    for utt, song in (("p", "x"), ("q", "y")):
        np.save(store / "ab" / f"{utt}.cqt.npy", np.zeros((30, 96), np.float16))
        recs.append({"utt": utt, "song": song, "feat": str(store / "ab" / f"{utt}.cqt.npy")})
    with pytest.raises(BaselineError, match=r"2dftm needs a 12-bins-per-octave CQT; .*p\.cqt\.npy has 24 bins per"):
        evaluate_baselines(recs, recs, "2dftm")
    skipped = {}
    res = evaluate_baselines(recs, recs, "all", skipped=skipped)
    assert set(res) == {"chance", "mean_cqt"} and set(skipped) == {"chroma_mean", "2dftm", "qmax"}


# ---- tools -------------------------------------------------------------------------------
def _corpus(root):
    rng = np.random.default_rng(4)
    tracks = []
    for w in range(4):
        base = rng.uniform(-70, 0, (120, 96)).astype(np.float32)
        for v in range(3):
            feat = np.roll(base, 2 * v, axis=1) + rng.normal(0, 3, base.shape)   # transposed, noisy versions
            tracks.append((f"w{w}v{v}", f"work{w}", feat))
    return write_records(root, tracks)


def test_tool_end_to_end(tmp_path, capsys):
    manifest, records = _corpus(tmp_path)
    out = tmp_path / "out"
    assert eval_baseline.main([str(manifest), str(manifest), "--out_dir", str(out), "--no_progress"]) == 0
    printed = capsys.readouterr().out
    for name in ("chance", "chroma_mean", "2dftm", "mean_cqt: mean CQT (not key-invariant)"):
        assert name in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"] == "all-vs-all" and m["excluded_pairs"] == 12
    assert set(m["baselines"]) == {"chroma_mean", "2dftm", "qmax", "mean_cqt"}
    assert {"MAP", "MR1", "P@10", "HR@1", "HR@10", "queries"} <= set(m["baselines"]["2dftm"])
    assert m["chance"]["MAP"] == pytest.approx(_ap(11, 2))
    b = m["baselines"]
    assert b["chroma_mean"]["MAP"] > max(0.7, b["mean_cqt"]["MAP"])    # transposed versions: key-invariant
    assert (out / "eval_baseline.yaml").is_file()
    summary_json = json.loads(printed.strip().splitlines()[-1])
    assert summary_json["chroma_mean"]["MAP"] == pytest.approx(m["baselines"]["chroma_mean"]["MAP"])
    # a subset of systems, repeated or comma-separated
    assert eval_baseline.main([str(manifest), str(manifest), "--system", "2dftm,chance", "--system", "2dftm",
                               "--no_progress"]) == 0
    assert "chroma_mean" not in capsys.readouterr().out


def test_tool_bad_input(tmp_path, capsys):
    one, _ = write_records(tmp_path, [("a", "s", notes([1])), ("b", "s", notes([2]))], name="one.txt")
    assert eval_baseline.main([str(one), str(one), "--no_progress"]) == 1
    assert f"{one}: 1 work; retrieval needs at least 2" in capsys.readouterr().err
    audio = tmp_path / "audio.txt"
    audio.write_text(json.dumps({"utt": "a", "song": "s", "wav": "a.wav"}) + "\n"
                     + json.dumps({"utt": "b", "song": "t", "wav": "b.wav"}) + "\n")
    assert eval_baseline.main([str(audio), str(audio), "--no_progress"]) == 1
    assert "no stored feature" in capsys.readouterr().err
    assert eval_baseline.main([str(tmp_path / "missing.txt"), str(one), "--no_progress"]) == 1
    assert eval_baseline.main([str(one), str(one), "--system", "nope"]) == 1
    assert "unknown baseline 'nope'" in capsys.readouterr().err


HP = {"train_path": "unused", "chunk_frame": [20], "mean_size": 2, "m_per_class": 2, "batch_size": 4,
      "input_dim": 96, "embed_dim": 32, "encoder": {"output_dims": 32, "num_blocks": 1, "attention_dim": 32,
                                                    "num_heads": 2},
      "pool_type": "attention", "ce": {"output_dims": 4}, "triplet": {"margin": 0.3, "weight": 0.1},
      "center": {"weight": 0.0}}


def random_model_dir(exp):
    """A model directory of the tiny model ``HP`` with seeded random weights (epoch 0)."""
    from tests.helpers import write_model_dir

    return write_model_dir(exp, HP)


def test_eval_testset_prints_baselines_beside_the_model(tmp_path, capsys):
    from tools import eval_testset

    manifest, _ = _corpus(tmp_path)
    exp = random_model_dir(tmp_path / "exp")
    out = tmp_path / "eval"
    assert eval_testset.main([str(exp), str(manifest), str(manifest), "--out_dir", str(out),
                              "--baselines", "all"]) == 0
    printed = capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["baselines"]) == {"chroma_mean", "2dftm", "qmax", "mean_cqt"} and "MAP" in m["chance"]
    alone = evaluate_baselines(json_lines(manifest), json_lines(manifest), "chroma_mean")["chroma_mean"]
    assert m["baselines"]["chroma_mean"]["MAP"] == pytest.approx(alone["MAP"])   # same records and exclusions
    rows = (out / "metrics_table.txt").read_text().splitlines()
    assert rows[0].split()[:2] == ["system", "MAP"] and rows[1].startswith("model (g_00000000)")
    assert rows[2].startswith("chance") and len(rows) == 7 and rows[1] in printed
    # audio-only queries: the feature baselines are skipped, saying so; chance is still computed
    audio = tmp_path / "audio.txt"
    import soundfile as sf
    t = np.arange(16000 * 2) / 16000
    lines = []
    for k in range(2):
        sf.write(tmp_path / f"q{k}.wav", (0.3 * np.sin(2 * np.pi * (220 + 110 * k) * t)).astype(np.float32), 16000)
        lines.append(json.dumps({"utt": f"aq{k}", "wav": str(tmp_path / f"q{k}.wav"), "song": f"work{k}"}))
    audio.write_text("\n".join(lines) + "\n")
    assert eval_testset.main([str(exp), str(audio), str(manifest), "--out_dir", str(tmp_path / "eval_audio"),
                              "--baselines", "all"]) == 0
    m = json.loads((tmp_path / "eval_audio" / "metrics.json").read_text())
    assert m["baselines"] == {} and "MAP" in m["chance"]
    assert set(m["baselines_skipped"]) == {"chroma_mean", "2dftm", "qmax", "mean_cqt"}
    assert "baselines need stored features: skipped" in capsys.readouterr().out
    assert eval_testset.main([str(exp), str(manifest), str(manifest), "--baselines", "dtw"]) == 1


def json_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
