"""Serrà's Qmax (csi.baselines.qmax): the recursion by hand, the cross-recurrence plot,
parity with essentia (skipped without it), tracks that cannot be aligned, and the CQT leak."""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from csi.baselines import BaselineError, evaluate_baselines
from csi.baselines.qmax import (LEAK, QmaxParams, global_chroma, qmax_chroma, qmax_distances, qmax_pair,
                                     transposition_indices, unsmear)
from csi.baselines.qmax_kernels import _qmax_score, cross_recurrence, qmax_score


def chroma_track(rng, n, base=None, shift=0, mix=0.7):
    """(n, 12) random chroma; with ``base``, its first frames mixed into a version of it rolled
    by ``shift`` pitch classes."""
    x = rng.random((n, 12)).astype(np.float32)
    if base is not None:
        m = min(n, len(base))
        x[:m] = mix * np.roll(base[:m], shift, axis=1) + (1 - mix) * x[:m]
    return x / x.max(axis=1, keepdims=True)


def melody_versions(works: int, semitones: int, seed: int = 4) -> list[tuple[str, str, np.ndarray]]:
    """(utt, work, dB CQT) of ``works`` melodies of 25 notes of 12 frames in noise, each with a
    version ``semitones`` up."""
    rng = np.random.default_rng(seed)
    tracks = []
    for w in range(works):
        melody = np.repeat(rng.integers(30, 60, 25), 12)
        for v in range(2):
            feat = np.full((300, 96), -80.0, np.float32) + rng.normal(0, 3, (300, 96)).astype(np.float32)
            feat[np.arange(300), melody + semitones * v] = 0.0
            tracks.append((f"w{w}v{v}", f"w{w}", feat))
    return tracks


# ---- the recursion -------------------------------------------------------------------------
def test_qmax_recursion_by_hand():
    # matches on the diagonal at 2, 3 and 5, a gap at 4:
    #   Q[2,2] = 1, Q[3,3] = 2; Q[4,4] = Q[3,3] - onset (R[3,3] = 1) = 1.5;
    #   Q[3,4] = Q[2,2] - onset = 0.5 and Q[4,3] = 0.5; Q[5,5] = max(1.5, 0.5, 0.5) + 1 = 2.5
    plot = np.zeros((6, 6), dtype=np.uint8)
    plot[[2, 3, 5], [2, 3, 5]] = 1
    assert qmax_score(plot, 0.5, 0.5) == pytest.approx(2.5)
    assert _qmax_score(plot, 0.5, 0.5) == pytest.approx(2.5)            # the same recursion in Python
    # a two-frame gap: along the diagonal Q[4,4] = 2 - 1 (onset) and Q[5,5] = 1 - 0.7 (extension), but the
    # step (i-1, j-2) bridges it with one onset: Q[4,5] = Q[3,3] - 1 = 1, so Q[6,6] = 2, then 3 and 4
    plot = np.zeros((9, 9), dtype=np.uint8)
    plot[[2, 3, 6, 7, 8], [2, 3, 6, 7, 8]] = 1
    assert qmax_score(plot, 1.0, 0.7) == pytest.approx(4.0)
    assert _qmax_score(plot, 1.0, 0.7) == pytest.approx(4.0)
    # a one-frame tempo step (i-2, j-1) continues the path; rows and columns 0, 1 never score
    plot = np.zeros((8, 6), dtype=np.uint8)
    plot[[2, 4, 6], [2, 3, 4]] = 1
    plot[0, :] = plot[:, 0] = 1
    assert qmax_score(plot, 0.5, 0.5) == pytest.approx(3.0)
    assert qmax_score(np.zeros((5, 5), np.uint8), 0.5, 0.5) == 0.0


def test_cross_recurrence_keeps_mutual_nearest_neighbours():
    # unstacked, kappa 0.3 of 4 columns / 4 rows: each row and column keeps its floor(3 * 0.3) = 0th,
    # i.e. its nearest, so R holds the pairs that are each other's nearest
    q = np.eye(12, dtype=np.float32)[[0, 4, 7, 2]]
    r = np.eye(12, dtype=np.float32)[[7, 0, 4, 9]]
    plot = cross_recurrence(q, r, 0, 1, 1, 0.3)
    expected = np.zeros((4, 4), np.uint8)
    expected[[0, 1, 2], [1, 2, 0]] = 1
    expected[3, 3] = 1      # q3 (pitch class 2) and r3 (9) are at the same distance from everything: ties keep all
    assert np.array_equal(plot, expected)
    # the reference rolled by 2: r's pitch class 9 becomes 11, 7 becomes 9... nothing matches q's 0, 4, 7 then
    assert cross_recurrence(q, r, 2, 1, 1, 0.3)[0, 1] == 0


def test_transposed_copy_aligns_along_the_diagonal_and_distance_is_symmetric_in_q():
    rng = np.random.default_rng(0)
    a = chroma_track(rng, 40)
    g_a, g_b = global_chroma(a)[None], global_chroma(np.roll(a, 5, axis=1))[None]
    assert transposition_indices(g_a, g_b)[0, 0] == 7                      # roll by 7 undoes a roll by 5
    d, plot = qmax_pair(a, np.roll(a, 5, axis=1))
    n = len(a) - 9
    assert plot.shape == (n, n) and np.all(np.diag(plot) == 1)
    assert d == pytest.approx(math.sqrt(n) / (n - 2))                       # the whole diagonal from (2, 2)
    b = chroma_track(rng, 33, a, 3)
    d_ab, p_ab = qmax_pair(a, b)
    d_ba, p_ba = qmax_pair(b, a)
    assert np.array_equal(p_ab, p_ba.T)                                     # Q(q, r) = Q(r, q)
    q_ab = math.sqrt(p_ab.shape[1]) / d_ab
    assert math.sqrt(p_ba.shape[1]) / d_ba == pytest.approx(q_ab)           # distance: sqrt(reference)/Q


def test_distances_all_pairs_equal_pairwise_and_pairs_subset():
    rng = np.random.default_rng(1)
    base = chroma_track(rng, 50)
    tracks = [base, chroma_track(rng, 45, base, 2), chroma_track(rng, 38), chroma_track(rng, 60, base, 9)]
    ids = ["a", "b", "c", "d"]
    stats = {}
    d = qmax_distances(tracks, tracks, ids, ids, stats=stats)
    assert stats["pairs"] == 6                                              # each unordered pair once
    for i in range(4):
        for j in range(4):
            assert d[i, j] == (0.0 if i == j else pytest.approx(qmax_pair(tracks[i], tracks[j])[0])), (i, j)
    assert d[0, 1] < d[0, 2] and d[0, 3] < d[0, 2]                          # versions closer than another work
    some = qmax_distances(tracks[:2], tracks, ids[:2], ids, pairs=np.array([[0, 2], [1, 3]]))
    assert some[0, 2] == pytest.approx(d[0, 2]) and some[1, 3] == pytest.approx(d[1, 3])
    assert np.isinf(some[0, 1]) and np.isinf(some[1, 0])                   # not asked for
    with pytest.raises(BaselineError, match="6 track pairs to align, over the limit of 5"):
        qmax_distances(tracks, tracks, ids, ids, max_pairs=5)


def test_empty_silent_and_short_tracks_get_infinite_distances_and_a_log_line(caplog):
    rng = np.random.default_rng(2)
    good = [chroma_track(rng, 30), chroma_track(rng, 30)]
    tracks = [*good, np.zeros((30, 12), np.float32), np.zeros((0, 12), np.float32), chroma_track(rng, 11)]
    ids = ["g1", "g2", "silent", "empty", "short"]
    with caplog.at_level(logging.WARNING, logger="csi.eval"):
        d = qmax_distances(tracks, tracks, ids, ids)
    assert np.isfinite(d[0, 1]) and np.all(np.isinf(d[2:, :2])) and np.all(np.isinf(d[:2, 2:]))
    text = caplog.text
    assert "silent is silent" in text and "empty is empty" in text and "short is 11 chroma steps" in text
    assert qmax_pair(tracks[2], good[0])[0] == math.inf


# ---- parity with essentia --------------------------------------------------------------------
def test_parity_with_essentia():
    es = pytest.importorskip("essentia.standard", reason="essentia is not installed (pip install essentia)")
    rng = np.random.default_rng(3)
    a = chroma_track(rng, 70)
    pairs = [(a, chroma_track(rng, 60, a, 3)), (chroma_track(rng, 60, a, 3), a), (a, chroma_track(rng, 55)),
             (chroma_track(rng, 80, a, 11, mix=0.5), chroma_track(rng, 42, a, 6, mix=0.9)),
             (a, np.roll(a, 4, axis=1))]
    ccs = es.ChromaCrossSimilarity(frameStackSize=9, frameStackStride=1, binarizePercentile=0.095, oti=True)
    css = es.CoverSongSimilarity(alignmentType="serra09", disOnset=0.5, disExtension=0.5, distanceType="asymmetric")
    for q, r in pairs:
        csm = np.asarray(ccs(q, r))
        _, distance = css(csm)
        mine, plot = qmax_pair(q, r)
        assert plot.shape == csm.shape and np.array_equal(plot, csm.astype(np.uint8))
        assert mine == pytest.approx(float(distance), rel=1e-5)


# ---- chroma of the stored CQT ------------------------------------------------------------------
def test_the_cqt_leak_is_the_measured_one_and_unsmearing_undoes_it():
    import torch

    from csi.features.cqt import CoverHunterCQT

    sr = 16000
    t = np.arange(2 * sr) / sr
    cqt = CoverHunterCQT()
    for hz in (220.0, 440.0):                                   # tuned notes: A3, A4
        db = cqt(torch.tensor(np.sin(2 * np.pi * hz * t), dtype=torch.float32)).numpy()
        mag = (10 ** (db[10:-10] / 20)).mean(axis=0)
        k = int(mag.argmax())
        assert np.allclose(mag[k - 1:k + 3] / mag[k], LEAK, atol=0.04), mag[k - 1:k + 3] / mag[k]
    # a single pitch class smeared by the leak comes back mostly as that pitch class
    smeared = np.zeros((1, 12), np.float32)
    smeared[0, [11, 0, 1, 2]] = LEAK
    back = unsmear(smeared, 32.0)[0]
    assert back.argmax() == 0 and back[1] < 0.35 * back[0]
    assert np.array_equal(unsmear(smeared, 32.70), smeared)     # a tuned CQT is left as it is


def test_qmax_chroma_steps_and_band():
    feat = np.full((100, 96), -100.0, np.float32)
    feat[:, 45] = 0.0                                           # bin 45: 430 Hz, pitch class A
    feat[:, 5] = 0.0                                            # 43 Hz: below HPCP's 100 Hz, ignored
    chroma = qmax_chroma(feat, 32.0, 25.0)
    assert chroma.shape == (9, 12)                              # 8 steps of 12 frames and one of 4
    assert np.all(chroma.argmax(axis=1) == 9) and np.allclose(chroma.max(axis=1), 1.0)
    assert qmax_chroma(np.full((30, 96), -100.0, np.float32)).max() == 0.0


def test_qmax_beside_the_other_baselines_and_over_its_limit(tmp_path, monkeypatch):
    from tests.csi.baselines.test_baselines import write_records

    _, records = write_records(tmp_path, melody_versions(3, semitones=2))
    res = evaluate_baselines(records, records, "qmax")
    assert res["qmax"]["MAP"] == pytest.approx(1.0) and res["qmax"]["title"].startswith("Serra 2009")
    import csi.baselines.systems as systems
    from csi.baselines.qmax import qmax_distances as real
    monkeypatch.setitem(systems.BASELINES._classes, "qmax", systems.Baseline(
        "qmax", "limited", systems.BASELINES.get("qmax").vector,
        lambda q, r, qi, ri, **kw: real(q, r, qi, ri, max_pairs=3, **kw), needs_chroma=True, pairwise=True))
    skipped = {}
    res = evaluate_baselines(records, records, "chance,qmax", skipped=skipped)
    assert "qmax" not in res and "over the limit of 3" in skipped["qmax"]
    assert QmaxParams().min_frames() == 12
