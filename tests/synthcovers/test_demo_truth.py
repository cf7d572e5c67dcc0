"""Ground truth of time alignment between demo-corpus versions (synthcovers.truth) and the
layout the arranger records for it; hand-made records, no rendering."""
from __future__ import annotations

import json

import numpy as np
import pytest

from synthcovers import arrange, truth
from synthcovers.score import Note, Score
from synthcovers.truth import NoTruth, accuracy_table, record_for, score_alignment, time_map


def rec(utt, phrases, layout, bpm, source="s.abc", song="w", n_phrases=3, **extra):
    """A manifest record as synthcovers.synth writes it (the fields truth reads), the audio
    ending 1.5 s after the last phrase as rendered."""
    played = sum(b - a for a, b in layout)
    return {"utt": utt, "song": song, "source": source, "phrases": " ".join(map(str, phrases)),
            "n_phrases": n_phrases, "layout": [list(x) for x in layout], "quarter_bpm": bpm,
            "dur_s": round(played * 60.0 / bpm + 1.5, 3), **extra}


P = [(0.0, 8.0), (8.0, 16.0), (16.0, 24.0)]  # the source's three phrases (quarters)
FULL = rec("w-v0", [0, 1, 2], P, 120.0)                       # 0.5 s a quarter, 12 s of music
REPEAT = rec("w-v1", [0, 1, 1, 2], [P[0], P[1], P[1], P[2]], 60.0)  # 1 s a quarter
DROP = rec("w-v2", [0, 2], [P[0], P[2]], 80.0)                # 0.75 s a quarter
TWICE = rec("w-v3", [0, 1, 2, 0, 1, 2], P + P, 120.0)         # played again (plays = 2)


def test_same_tempo_same_structure_is_identity():
    for t in (0.0, 1.3, 5.0, 11.9):
        assert time_map(FULL, FULL, t) == [pytest.approx(t)]


def test_full_vs_repeat_vs_drop():
    assert time_map(FULL, REPEAT, 2.0) == [pytest.approx(4.0)]           # phrase 0, quarter 4
    assert time_map(FULL, REPEAT, 5.0) == [pytest.approx(10.0), pytest.approx(18.0)]  # repeated phrase 1
    assert time_map(FULL, REPEAT, 9.0) == [pytest.approx(26.0)]          # phrase 2 after the repeat
    assert time_map(FULL, DROP, 2.0) == [pytest.approx(3.0)]
    assert time_map(FULL, DROP, 5.0) == []                               # phrase 1 dropped
    assert time_map(FULL, DROP, 9.0) == [pytest.approx(7.5)]             # phrase 2 right after phrase 0
    assert time_map(DROP, FULL, 7.5) == [pytest.approx(9.0)]
    assert time_map(REPEAT, FULL, 18.0) == [pytest.approx(5.0)]          # the second playing maps back
    assert time_map(FULL, TWICE, 9.0) == [pytest.approx(9.0), pytest.approx(21.0)]


def test_outside_the_music_maps_nowhere():
    assert time_map(FULL, REPEAT, -1.0) == []
    assert time_map(FULL, REPEAT, 12.5) == []   # the 1.5 s release tail after the last phrase
    assert time_map(FULL, REPEAT, 100.0) == []


def test_quarter_bpm_not_tempo_bpm_and_lead_in():
    # tempo_bpm counts beats of beat_quarters (here half notes): quarter_bpm is the rendering tempo
    a = rec("w-v4", [0, 1, 2], P, 120.0, tempo_bpm=60.0, beat_quarters=2.0)
    assert time_map(a, REPEAT, 2.0) == [pytest.approx(4.0)]
    old = {k: v for k, v in a.items() if k != "quarter_bpm"}  # fallback: tempo_bpm * beat_quarters
    assert time_map(old, REPEAT, 2.0) == [pytest.approx(4.0)]
    late = rec("w-v5", [0, 1, 2], P, 120.0, lead_in_s=1.0)
    assert time_map(FULL, late, 2.0) == [pytest.approx(3.0)]
    assert time_map(late, FULL, 3.0) == [pytest.approx(2.0)]
    assert time_map(late, FULL, 0.5) == []


def test_tempo_copy():
    copy = {**REPEAT, "utt": "sp_0.8-w-v1", "aug": {"tempo": 0.8}, "dur_s": round(REPEAT["dur_s"] / 0.8, 3)}
    assert truth.speed(copy) == 0.8
    assert time_map(FULL, copy, 2.0) == [pytest.approx(5.0)]     # 4 s in the source, played 0.8x as fast
    assert time_map(copy, FULL, 5.0) == [pytest.approx(2.0)]
    fast = {**FULL, "utt": "sp_1.25-w-v0", "aug": {"tempo": 1.25}}
    assert time_map(fast, FULL, 4.0) == [pytest.approx(5.0)]
    assert time_map(FULL, fast, 5.0) == [pytest.approx(4.0)]
    # a copy missing from a dataset.txt is derived from its source record
    derived = record_for("sp_0.8-w-v1", {"w-v1": REPEAT})
    assert derived["aug"] == {"tempo": 0.8} and derived["dur_s"] == pytest.approx(REPEAT["dur_s"] / 0.8, abs=1e-3)
    assert time_map(FULL, derived, 2.0) == [pytest.approx(5.0)]
    assert record_for("sp_0.8-w-v9", {"w-v1": REPEAT}) is None


# intro (2 quarters of phrase 0's accompaniment), phrase 0, a solo on phrase 1's chords,
# phrases 1 and 2, an outro (the last 4 quarters' accompaniment), after 1.5 s of silence
COVER = rec("w-v8", [0, 0, 1, 1, 2, 2], [(0.0, 2.0), P[0], P[1], P[1], P[2], (20.0, 24.0)], 120.0,
            segment_kinds=["intro", "score", "solo", "score", "score", "outro"], lead_in_s=1.5)


def test_inserted_material_maps_nowhere_and_shifts_what_follows():
    # COVER: 1.5 s lead-in, intro 1 s, phrase 0 at 2.5-6.5 s, solo 6.5-10.5, phrase 1 10.5-14.5,
    # phrase 2 14.5-18.5, outro 18.5-20.5 s (0.5 s a quarter)
    assert time_map(COVER, FULL, 1.0) == []          # lead-in silence
    assert time_map(COVER, FULL, 2.0) == []          # intro: accompaniment only
    assert time_map(COVER, FULL, 3.0) == [pytest.approx(0.5)]
    assert time_map(COVER, FULL, 8.0) == []          # solo over phrase 1's chords: another line
    assert time_map(COVER, FULL, 11.0) == [pytest.approx(4.5)]
    assert time_map(COVER, FULL, 19.0) == []         # outro
    assert time_map(FULL, COVER, 4.5) == [pytest.approx(11.0)]    # only the score segment of phrase 1
    assert time_map(FULL, COVER, 11.0) == [pytest.approx(17.5)]
    assert truth.score_position(COVER, 8.0) is None and truth.score_position(COVER, 11.0)[0] == 1
    # the other direction across sources: the phrase mapping ignores inserted segments too
    other = {**COVER, "utt": "w-v9", "source": "t.abc"}
    assert time_map(FULL, other, 4.5) == [pytest.approx(11.0)]
    with pytest.raises(NoTruth, match="segment_kinds"):
        time_map(FULL, {**COVER, "segment_kinds": ["score"]}, 1.0)
    # FULL -> COVER is t + 2.5 s in phrase 0 and t + 6.5 s after the solo: probes 2-10 s
    assert truth.probe_agreement({"shift_s": 6.5, "scale": 1.0}, FULL, COVER, 4.0) == (4, 5)
    assert score_alignment({"shift_s": 6.5, "scale": 1.0}, FULL, COVER, 4.0) is True
    assert score_alignment({"shift_s": 2.5, "scale": 1.0}, FULL, COVER, 4.0) is False
    assert score_alignment({"shift_s": 0.0, "scale": 1.0}, FULL, COVER, 4.0) is False  # "shift 0"


def test_other_source_score_phrase_by_phrase():
    other = rec("w-v6", [0, 1, 2], [(0.0, 6.0), (6.0, 12.0), (12.0, 20.0)], 120.0, source="t.abc")
    # phrase 1, a quarter of the way in: quarter 7.5 of the other score
    assert time_map(FULL, other, 5.0) == [pytest.approx(3.75)]
    assert time_map(FULL, other, 9.0) == [pytest.approx(7.0)]   # phrase 2, a quarter in: 12 + 2
    with pytest.raises(NoTruth):
        time_map(FULL, other, 5.0, cross_source="none")
    with pytest.raises(NoTruth):  # phrase structures that do not match
        time_map(FULL, {**other, "n_phrases": 4}, 5.0)
    with pytest.raises(NoTruth):
        time_map(FULL, {**FULL, "utt": "x-v0", "song": "x"}, 5.0)
    with pytest.raises(NoTruth):  # a record made before the layout was recorded
        time_map(FULL, {k: v for k, v in REPEAT.items() if k != "layout"}, 5.0)


def test_score_alignment():
    # FULL -> DROP: t_c = 1.5 t_a in phrase 0, 1.5 t_a - 6 in phrase 2, nothing in phrase 1;
    # chunks of 4 s: probes 2, 4, 6, 8, 10 s, of which 2, 8 and 10 are played in DROP
    assert truth.probe_times(FULL["dur_s"], 4.0) == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert truth.probe_agreement({"shift_s": -6.0, "scale": 1.5}, FULL, DROP, 4.0) == (2, 3)
    assert score_alignment({"shift_s": -6.0, "scale": 1.5}, FULL, DROP, 4.0) is True
    assert score_alignment({"shift_s": 0.0, "scale": 1.5}, FULL, DROP, 4.0) is False   # 1 of 3
    assert score_alignment({"shift_s": -4.5, "scale": 1.5}, FULL, DROP, 4.0, tol_s=2.0) is True  # 1.5 s off
    assert score_alignment({"shift_s": -4.5, "scale": 1.5}, FULL, DROP, 4.0, tol_s=1.0) is False
    assert score_alignment({"shift_s": 0.0, "scale": 1.0}, FULL, FULL, 4.0) is True
    assert score_alignment({"shift_s": 3.0}, FULL, FULL, 4.0) is False                  # scale 1 by default
    # nearest of several true times counts: the second playing of the repeat
    assert score_alignment({"shift_s": 8.0, "scale": 2.0}, FULL, REPEAT, 4.0) is not None
    only2 = rec("w-v7", [2], [P[2]], 120.0)
    assert score_alignment({"shift_s": 0.0, "scale": 1.0}, FULL, only2, 20.0) is None   # probe 6.75 s: phrase 1
    assert score_alignment({"shift_s": 0.0}, FULL, {**FULL, "song": "x"}, 4.0) is None  # no truth


def test_accuracy_table_and_bench(tmp_path, capsys):
    records = {r["utt"]: r for r in (FULL, REPEAT, DROP)}
    alignments = [
        {"utt_a": "w-v0", "utt_b": "w-v2", "shift_s": -6.0, "scale": 1.5, "confidence": 0.9},  # right
        {"utt_a": "w-v0", "utt_b": "w-v2", "shift_s": 0.0, "scale": 1.5, "confidence": 0.8},   # wrong
        {"utt_a": "w-v0", "utt_b": "w-v0", "shift_s": 0.0, "scale": 1.0, "confidence": 0.1},   # right
        {"utt_a": "w-v2", "utt_b": "sp_0.8-w-v0", "shift_s": 0.0, "scale": 1.0, "confidence": 0.3},  # wrong
        {"utt_a": "w-v0", "utt_b": "nope", "shift_s": 0.0, "scale": 1.0, "confidence": 0.3},
        {"utt_a": "w-v0", "utt_b": "w-v1", "shift_s": None, "scale": None, "confidence": 0.0},
    ]
    table = accuracy_table(alignments, records, chunk_s=4.0, tol_s=2.0)
    assert table["overall"] == {"scored": 4, "ok": 2, "share": 0.5}
    assert [(r["scored"], r["share"]) for r in table["buckets"]] == [(1, 1.0), (1, 0.0), (0, None), (2, 0.5)]
    assert table["not_scored"]["unknown_utt"] == 1 and table["not_scored"]["no_prediction"] == 1
    assert table["by_pairing"]["same_source"]["scored"] == 4

    from tests.helpers import local_module
    bench = local_module("synthcovers", "alignment")  # egs/synthcovers/local/alignment.py

    align = tmp_path / "align.jsonl"
    align.write_text("\n".join(json.dumps(x) for x in [{"header": {"chunk_s": 4}}] + alignments) + "\n")
    manifest = tmp_path / "full.txt"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records.values()))
    assert bench.main(["--alignments", str(align), "--manifest", str(manifest), "--chunk_s", "4"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["overall_share"] == 0.5 and out["pairs_scored"] == 4 and out["pairs_not_scorable"] == 2
    # "shift 0" on the same pairs: right for FULL/DROP (within 2 s at every probe) and FULL/FULL,
    # wrong for DROP against FULL played 0.8x as fast
    assert out["shift0_share"] == 0.75
    assert out["alignments"] == 6 and out["bucket_counts"]["0.75-1.01"] == 2


def _tune(n_measures: int = 16) -> Score:
    """A plain 4/4 tune of quarter notes (no fermatas: phrases of 4 measures)."""
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    notes = tuple(Note(float(i), 1.0, scale[(i * 3) % 8], 0) for i in range(4 * n_measures))
    return Score("test:1", "tune", notes, ("melody",), tuple(4.0 * m for m in range(n_measures)))


@pytest.mark.parametrize("seed", range(8))
def test_arranged_layout_places_every_melody_note(seed):
    """Every lead note of an arrangement sounds where the recorded layout puts its score
    onset (within the 12 ms onset jitter), whatever the structure drawn; the lead plays
    nothing in an intro or outro, and in a solo it plays material the truth maps nowhere."""
    score = _tune()
    rng = np.random.default_rng(seed)
    choice = arrange.work_choices(rng, 1)[0]
    perf, info = arrange.arrange(score, choice, rng, max_dur=40.0, min_dur=20.0)
    record = {**info, "utt": "t-v0", "song": "t", "source": "test:1", "dur_s": perf.duration}
    assert len(info["layout"]) == len(info["phrases"].split()) == len(info["segment_kinds"])
    starts = [0.0, 16.0, 32.0, 48.0]  # the last phrase ends where the accompaniment's last note does
    for (a, b), i, kind in zip(info["layout"], info["phrases"].split(), info["segment_kinds"]):
        if kind in ("score", "solo", "intro"):
            assert a == starts[int(i)]
        if kind == "outro":
            assert b == pytest.approx(64.0)
    onsets = np.array(sorted({n.onset for n in score.notes}))
    spq = 60.0 / info["quarter_bpm"]
    lead = [n for n in perf.notes if n.channel == 0]
    assert lead and min(n.start for n in lead) >= info["lead_in_s"] - 0.0125
    spans, cursor = [], info["lead_in_s"]
    for (a, b), kind in zip(info["layout"], info["segment_kinds"]):
        spans.append((cursor, cursor + (b - a) * spq, kind))
        cursor += (b - a) * spq
    for n in lead:
        kind = next((k for lo, hi, k in spans if lo - 0.0125 <= n.start < hi - 0.0125), None)
        assert kind in ("score", "solo"), (n, kind)
        at = truth.score_position(record, n.start + 0.013)
        if kind == "solo":
            assert at is None
            continue
        assert at is not None
        pos = at[1] - 0.013 / spq
        assert np.min(np.abs(onsets - pos)) * spq <= 0.0125, (n, at)
