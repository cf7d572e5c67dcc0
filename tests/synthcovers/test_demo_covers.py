"""How demo versions differ (synthcovers.covers) and the generated training works
(synthcovers.generate): the drawn statistics follow their config, the hard policy keeps every
key distinct, and generated works are fitted on train works only."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from synthcovers import arrange, covers, generate
from synthcovers.covers import CoverStats
from synthcovers.score import Note, Score, melody_intervals
from synthcovers.synth import WorkSpec


def test_realistic_keys_follow_the_config_and_distinct_keys_differ():
    stats = CoverStats()
    rng = np.random.default_rng(0)
    draws = [covers.draw_transposes(rng, 6, stats) for _ in range(2000)]
    assert all(d[0] == 0 for d in draws)  # version 0 is the original
    later = np.array([x for d in draws for x in d[1:]])
    assert abs(np.mean(later == 0) - stats.same_key_prob) < 0.02
    moved = later[later != 0]
    weights = stats.transpose_weights
    for step in (-2, 2, 6):
        assert abs(np.mean(moved == step) - weights[step] / sum(weights.values())) < 0.02
    for d in (covers.draw_transposes(rng, 8, stats, "distinct") for _ in range(200)):
        assert len({x % 12 for x in d}) == 8
    with pytest.raises(ValueError, match="key policy"):
        covers.draw_transposes(rng, 2, stats, "easy")


def test_tempo_ratios_follow_the_config():
    stats = CoverStats()
    rng = np.random.default_rng(1)
    tempi = np.array([covers.draw_tempo(rng, stats) for _ in range(4000)])
    assert tempi.min() >= stats.tempo_range[0] and tempi.max() <= stats.tempo_range[1]
    assert abs(np.std(np.log(tempi)) - stats.tempo_log_sd) < 0.01 and abs(np.median(tempi) - 1.0) <= 0.011


PHRASES = [(0.0, 16.0), (16.0, 32.0), (32.0, 48.0), (48.0, 64.0)]
MEASURES = [4.0 * m for m in range(16)]


def test_forms_follow_the_config():
    stats = CoverStats()
    rng = np.random.default_rng(2)
    forms = [covers.draw_form(PHRASES, MEASURES, rng, stats) for _ in range(3000)]
    for edit, prob in (("intro", stats.intro_prob), ("outro", stats.outro_prob), ("solo", stats.solo_prob),
                       ("repeat", stats.repeat_prob), ("drop", stats.drop_prob)):
        assert abs(np.mean([edit in f.edits for f in forms]) - prob) < 0.03, edit
    leads = np.array([f.lead_in_s for f in forms])
    assert leads.min() >= 0 and leads.max() <= stats.lead_in_s[1] and abs(leads.mean() - 1.25) < 0.05
    for f in forms:
        kinds = [s.kind for s in f.segments()]
        assert kinds.count("intro") <= 1 and kinds.count("outro") <= 1 and kinds.count("solo") <= 1
        if f.intro:
            assert kinds[0] == "intro" and f.intro.start == 0.0 and f.intro.length in (4.0, 8.0, 12.0, 16.0)
        if f.outro:
            assert kinds[-1] == "outro" and f.outro.end == 64.0
        score_phrases = [s.phrase for s in f.body if s.kind == "score"]
        assert score_phrases[0] == 0 and score_phrases[-1] == 3  # the first and last phrase are never dropped
    none = CoverStats(same_key_prob=1.0, intro_prob=0, outro_prob=0, solo_prob=0, repeat_prob=0, drop_prob=0,
                      lead_in_s=(0.0, 0.0))
    plain = covers.draw_form(PHRASES, MEASURES, rng, none)
    assert [s.phrase for s in plain.segments()] == [0, 1, 2, 3] and plain.edits == () and plain.lead_in_s == 0


def test_measure_reads_the_statistics_back():
    recs = [{"song": "a", "transpose": 0, "tempo_factor": 1.0, "structure": "intro+outro", "lead_in_s": 1.0},
            {"song": "a", "transpose": 12, "tempo_factor": 1.2, "structure": "full", "lead_in_s": 0.0},
            {"song": "a", "transpose": 2, "tempo_factor": 0.9, "structure": "solo", "lead_in_s": 2.0},
            {"song": "b", "transpose": 0, "tempo_factor": 1.0, "structure": "repeat+drop", "lead_in_s": 0.5},
            {"song": "b", "transpose": -1, "tempo_factor": 1.0, "structure": "full", "lead_in_s": 0.5}]
    m = covers.measure(recs)
    assert m["same_key_as_first"] == pytest.approx(1 / 3, abs=1e-4)   # a: 12 keeps the key, 2 does not; b: -1
    assert m["same_key_pairs"] == pytest.approx(1 / 4)                 # of a's 3 pairs and b's 1
    assert m["edit_share"] == {"repeat": 0.2, "drop": 0.2, "solo": 0.2, "intro": 0.2, "outro": 0.2}
    assert m["lead_in_s_mean"] == 0.8 and m["works"] == 2


# ---------------------------------------------------------------- generated works

def _tune(seed: int, n_measures: int = 12) -> Score:
    rng = np.random.default_rng(seed)
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    notes, t = [], 0.0
    while t < 4 * n_measures:
        d = float(rng.choice([0.5, 1.0, 1.0, 2.0]))
        d = min(d, 4 * n_measures - t)
        notes.append(Note(t, d, scale[int(rng.integers(8))], 0))
        t += d
    notes[-1] = Note(notes[-1].onset, notes[-1].dur, 60, 0)
    return Score(f"test:{seed}", f"tune {seed}", tuple(notes), ("melody",), tuple(4.0 * m for m in range(n_measures)))


def _specs():
    return [WorkSpec(i, f"w{i}", "essen", f"tune {i}", (f"test:{i}",), split) for i, split in
            enumerate(["train", "train", "train", "val", "test"])]


def _load(src):
    return _tune(int(src.split(":")[1]))


def test_fit_refuses_val_and_test_works():
    with pytest.raises(generate.LeakageError, match="'w3'.*'val'"):
        generate.fit(_specs(), load=_load)
    with pytest.raises(generate.LeakageError, match="'w4'.*'test'"):
        generate.fit([s for s in _specs() if s.split != "val"], load=_load)


def test_generated_works_use_train_rhythms_and_new_melodies():
    train = [s for s in _specs() if s.split == "train"]
    read = []
    model = generate.fit(train, load=lambda src: read.append(src) or _load(src))
    assert read == ["test:0", "test:1", "test:2"] and model.fitted_on == ("w0", "w1", "w2")
    works = generate.generate_works(model, 30, seed=0)
    assert works == generate.generate_works(model, 30, seed=0)  # deterministic
    assert [w for w, _ in works] == [generate.work_id(i) for i in range(30)]
    templates = {tuple((n.onset, n.dur) for n in t.melody()): t for t in model.templates}
    variants = 0
    for wid, members in works:
        assert 1 <= len(members) <= 2 and all(m.source == f"generated/{wid}/m{k}" for k, m in enumerate(members))
        rhythm = tuple((n.onset, n.dur) for n in members[0].melody())
        assert rhythm in templates  # the rhythm, bars and phrases of a train tune ...
        template = templates[rhythm]
        assert members[0].measure_starts == template.measure_starts
        pitches = [n.pitch for n in members[0].melody()]
        assert pitches != [n.pitch for n in template.melody()]  # ... with new pitches
        assert all(generate.RANGE[0] <= p <= generate.RANGE[1] for p in pitches)
        if len(members) == 2:
            variants += 1
            a, b = (melody_intervals(m.melody(), collapse_repeats=False) for m in members)
            assert sum(x != y for x, y in zip(a, b)) <= 0.5 * len(a)
    assert 5 <= variants <= 25
    distinct = {tuple(n.pitch for n in m[0].melody()) for _, m in works}
    assert len(distinct) == 30


def test_generated_works_arrange_like_any_tune():
    model = generate.fit([s for s in _specs() if s.split == "train"], load=_load)
    (_, members), = generate.generate_works(model, 1, seed=3)
    rng = np.random.default_rng(0)
    choice = arrange.work_choices(rng, 1)[0]
    perf, info = arrange.arrange(members[0], choice, rng, max_dur=40.0, min_dur=20.0)
    assert info["accompaniment"] == choice.pattern and len(info["programs"]) == 3  # melody, bass, chords
    assert {n.channel for n in perf.notes} >= {0, 1, 2}


def test_pairs_within_a_split_share_keys_but_the_hard_split_never_does():
    stats = CoverStats()
    rng = np.random.default_rng(5)
    same = total = 0
    for _ in range(500):
        keys = [c.transpose % 12 for c in arrange.work_choices(rng, 4, "heldout", stats)]
        for a, b in itertools.combinations(keys, 2):
            same += a == b
            total += 1
        hard = [c.transpose % 12 for c in arrange.work_choices(rng, 4, "heldout", stats, "distinct")]
        assert len(set(hard)) == 4
    assert 0.3 < same / total < 0.45
