"""The offline demo corpus (tools/make_synth_covers.py, synthcovers): determinism, manifests,
versions that differ like covers yet share their melody, the split by work-id hash and
the disjoint timbre pools of train and val/test works."""
from __future__ import annotations

import hashlib
import itertools
import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("music21")
pytest.importorskip("pretty_midi")
pytest.importorskip("tinysoundfont")

import soundfile as sf  # noqa: E402

from synthcovers import (DemoDependencyError, arrange, check_dependencies, corpus, covers, effects,  # noqa: E402
                      extract, generate, render, synth)
from synthcovers.score import Note, Score, Timed, melody_intervals, similarity  # noqa: E402
from csi.io.manifest import read_manifest  # noqa: E402
from tools.make_synth_covers import main, parse_args  # noqa: E402

WORKS = 6
FRACTIONS = {"val": 0.15, "test": 0.15}  # 6 works: 2 train, 2 val, 2 test
TRAIN_VERSIONS = (2, 3)
MAX_DUR = 24.0
OUT = "corpus"  # relative, so two runs in different directories give identical manifests
PITCH = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
ARGS = ["--works", str(WORKS), "--max_dur_s", str(MAX_DUR), "--val_fraction", str(FRACTIONS["val"]),
        "--test_fraction", str(FRACTIONS["test"]), "--train_versions", "%d-%d" % TRAIN_VERSIONS,
        "--max_versions", "3", "--no_progress"]


def _generate(where: Path, seed: int, cache: Path, nj: int = 1, extra: tuple[str, ...] = ()) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(where)
    try:
        rc = main(["--out_dir", OUT, "--seed", str(seed), "--nj", str(nj), "--cache_dir", str(cache), *ARGS, *extra])
    finally:
        os.chdir(cwd)
    assert rc == 0
    return where / OUT


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("music21_cache")


@pytest.fixture(scope="module")
def run_a(tmp_path_factory, cache) -> Path:  # cold cache
    return _generate(tmp_path_factory.mktemp("a"), 0, cache)


@pytest.fixture(scope="module")
def run_b(tmp_path_factory, cache, run_a) -> Path:  # same seed, warm cache
    return _generate(tmp_path_factory.mktemp("b"), 0, cache)


@pytest.fixture(scope="module")
def run_c(tmp_path_factory, cache, run_a) -> Path:
    return _generate(tmp_path_factory.mktemp("c"), 1, cache)


@pytest.fixture(scope="module")
def run_d(tmp_path_factory, cache, run_a) -> Path:  # same seed, two worker processes
    return _generate(tmp_path_factory.mktemp("d"), 0, cache, nj=2)


@pytest.fixture(scope="module")
def run_g(tmp_path_factory, cache, run_a) -> Path:  # with generated works, no hard split
    return _generate(tmp_path_factory.mktemp("g"), 0, cache, extra=("--generated_works", "4", "--no_hard_test"))


def _records(out: Path) -> list[dict]:
    return read_manifest(out / "dataset.txt")


def _checksums(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((out / "audio").rglob("*.flac"))}


def _tonic(rec: dict) -> int:
    return PITCH.index(rec["key"].split()[0])


def _chroma(path: str) -> np.ndarray:
    """Mean chroma of a file (power spectrum folded to pitch classes, 60 Hz - 2 kHz)."""
    y, sr = sf.read(path, dtype="float32")
    n, hop = 4096, 2048
    frames = np.lib.stride_tricks.sliding_window_view(y, n)[::hop] * np.hanning(n)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n, 1 / sr)
    band = (freqs > 60) & (freqs < 2000)
    pcs = (np.round(12 * np.log2(freqs[band] / 440.0)).astype(int) + 9) % 12
    chroma = np.stack([power[:, band][:, pcs == k].sum(axis=1) for k in range(12)], axis=1)
    chroma /= chroma.sum(axis=1, keepdims=True) + 1e-12
    return chroma.mean(axis=0)


# ---------------------------------------------------------------- determinism

def test_same_seed_same_bytes(run_a, run_b):
    for name in ("dataset.txt", "query.txt", "ref.txt"):
        assert (run_a / name).read_text() == (run_b / name).read_text()
    assert _checksums(run_a) == _checksums(run_b)


def test_nj_does_not_change_the_output(run_a, run_d):
    for name in ("dataset.txt", "query.txt", "ref.txt"):
        assert (run_a / name).read_text() == (run_d / name).read_text()
    assert _checksums(run_a) == _checksums(run_d)


def test_other_seed_other_corpus(run_a, run_c):
    assert (run_a / "dataset.txt").read_text() != (run_c / "dataset.txt").read_text()
    assert set(_checksums(run_a).values()).isdisjoint(_checksums(run_c).values())


# ---------------------------------------------------------------- manifests and files

def test_manifests_are_valid(run_a):
    records = _records(run_a)
    query, ref = read_manifest(run_a / "query.txt"), read_manifest(run_a / "ref.txt")
    assert sorted(r["utt"] for r in query + ref) == sorted(r["utt"] for r in records)
    works = {r["song"] for r in records}
    assert len(works) == WORKS
    assert sorted(r["song"] for r in query) == sorted(works)  # one query per work
    for rec in records:
        assert re.fullmatch(r"[A-Za-z0-9._-]+", rec["utt"]) and rec["utt"] == f"{rec['song']}-{rec['version']}"
        assert rec["wav"] == os.path.join(OUT, "audio", rec["song"], f"{rec['version']}.flac")
        info = sf.info(str(run_a.parent / rec["wav"]))
        assert (info.format, info.subtype, info.channels, info.samplerate) == ("FLAC", "PCM_16", 1, 16000)
        assert abs(info.duration - rec["dur_s"]) <= 1e-3
        assert 5.0 < rec["dur_s"] <= MAX_DUR
        for key in ("split", "pool", "title", "kind", "source", "transpose", "key", "tempo_bpm", "ensemble",
                    "programs", "lead_octave", "doubling", "structure", "phrases", "effects", "gain_db", "noise",
                    "snr_db", "quarter_bpm", "layout", "segment_kinds", "lead_in_s"):
            assert key in rec
    meta = yaml.safe_load((run_a / "make_synth_covers.yaml").read_text())
    assert "music21" in meta["environment"]["packages"]
    summary = meta["summary"]
    assert summary["works"] == WORKS and sum(summary["works_by_kind"].values()) == WORKS
    assert summary["works_by_split"] == {"train": 2, "val": 2, "test": 2, "test_hard": 2}
    assert summary["cover_statistics"]["measured"]["test"] == covers.measure([r for r in records
                                                                              if r["split"] == "test"])
    assert summary["cover_statistics"]["drawn_from"] == covers.describe(covers.CoverStats())
    hard = read_manifest(run_a / "test_hard.txt")
    assert sum(summary["tracks_by_split"].values()) == len(records) + len(hard) == summary["tracks"]


def test_versions_per_work(run_a, run_c):
    for out in (run_a, run_c):
        counts, split = {}, {}
        for rec in _records(out):
            counts[rec["song"]] = counts.get(rec["song"], 0) + 1
            split[rec["song"]] = rec["split"]
        for song, c in counts.items():
            lo, hi = TRAIN_VERSIONS if split[song] == "train" else (2, 3)
            assert lo <= c <= hi, (song, split[song], c)


# ---------------------------------------------------------------- covers: differ, yet the same tune

def test_versions_differ(run_a):
    sums = _checksums(run_a)
    for song, recs in itertools.groupby(_records(run_a), key=lambda r: r["song"]):
        recs = list(recs)
        assert len({sums[os.path.join("audio", song, r["version"] + ".flac")] for r in recs}) == len(recs)
        assert recs[0]["transpose"] % 12 == 0  # the first version is the "original", in the score's key
    hard = read_manifest(run_a / "test_hard.txt")  # the hard split: every version in another key
    assert {r["split"] for r in hard} == {"test_hard"} and hard
    assert {r["song"] for r in hard} == {r["song"] for r in _records(run_a) if r["split"] == "test"}
    for song, recs in itertools.groupby(hard, key=lambda r: r["song"]):
        recs = list(recs)
        assert len({r["transpose"] % 12 for r in recs}) == len(recs)
        assert all(r["version"].startswith("k") and r["pool"] == "heldout" for r in recs)


def _lead(perf) -> dict[float, int]:
    """The rendered melody: highest lead-channel pitch per onset (chords share an onset)."""
    best: dict[float, int] = {}
    for n in perf.notes:
        if n.channel == 0 and (n.start not in best or n.pitch > best[n.start]):
            best[n.start] = n.pitch
    return best


def _expected_lead(rec: dict) -> list[tuple[float, int]]:
    """(time in s, pitch) of the source's melody notes in the score segments of the
    manifest's layout, transposed: what the lead plays outside intros, solos and outros."""
    score = extract.load_score(rec["source"])
    spq = 60.0 / rec["quarter_bpm"]
    best: dict[float, int] = {}
    for n in score.notes:
        if n.part == 0:
            best[n.onset] = max(best.get(n.onset, 0), n.pitch)
    out, cursor = [], 0.0
    for (a, b), kind in zip(rec["layout"], rec["segment_kinds"]):
        if kind == "score":
            out += [(rec["lead_in_s"] + (cursor + t - a) * spq, best[t] + rec["transpose"] + 12 * rec["lead_octave"])
                    for t in sorted(best) if a - 1e-6 <= t < b - 1e-6]
        cursor += b - a
    return [(t, p) for t, p in out if t < rec["dur_s"] - 0.5]


def test_versions_share_the_melody(run_a, cache):
    records = {r["utt"]: r for r in _records(run_a)}
    specs, _ = synth.choose_works(WORKS, 0, cache, **{f"{k}_fraction": v for k, v in FRACTIONS.items()})
    cfg = synth.settings(OUT, 0, max_dur=MAX_DUR, max_versions=3, train_versions=TRAIN_VERSIONS)
    for spec in specs:
        versions = synth.arrange_work(spec, cfg)
        for ver in versions:
            rec = records[f"{spec.work_id}-{ver.version_id}"]
            planned = (ver.source, ver.info["transpose"], ver.info["phrases"], ver.info["programs"], ver.info["layout"])
            assert planned == (rec["source"], rec["transpose"], rec["phrases"], rec["programs"], rec["layout"])
            got, want = _lead(ver.performance), _expected_lead(rec)
            assert len(want) >= 8
            for t, pitch in want:  # every score note of the melody sounds where the layout puts it
                near = [p for s, p in got.items() if abs(s - t) <= 0.0125]
                assert near == [pitch], (rec["utt"], t, pitch, near)
            kinds = rec["segment_kinds"]
            if kinds[0] == "intro":  # an intro is the accompaniment alone
                intro_end = rec["lead_in_s"] + (rec["layout"][0][1] - rec["layout"][0][0]) * 60 / rec["quarter_bpm"]
                assert not [s for s in got if s < intro_end - 0.0125]
        # different member scores of a work are variants of one tune (key-invariant)
        for a, b in itertools.combinations(sorted({v.source for v in versions}), 2):
            ia = melody_intervals(extract.load_score(a).melody())[:32]
            ib = melody_intervals(extract.load_score(b).melody())[:32]
            assert similarity(ia, ib) >= 0.4, (a, b)


def test_chroma_follows_the_key(run_a):
    """Rolling version A's chroma by the key difference matches version B better."""
    records = _records(run_a)
    chroma = {r["utt"]: _chroma(str(run_a.parent / r["wav"])) for r in records}
    better, rolled, plain = 0, [], []
    pairs = [(a, b) for a, b in itertools.combinations(records, 2) if a["song"] == b["song"]
             and (_tonic(b) - _tonic(a)) % 12]
    for a, b in pairs:
        shift = (_tonic(b) - _tonic(a)) % 12
        rolled.append(np.corrcoef(np.roll(chroma[a["utt"]], shift), chroma[b["utt"]])[0, 1])
        plain.append(np.corrcoef(chroma[a["utt"]], chroma[b["utt"]])[0, 1])
        better += rolled[-1] > plain[-1]
    assert pairs and better >= 0.75 * len(pairs), (better, len(pairs))
    assert np.mean(rolled) > np.mean(plain) + 0.1


# ---------------------------------------------------------------- pieces and errors

def test_play_order_expands_repeats_and_endings():
    R = extract.RepeatMarks
    marks = [R(), R(end=True), R(start=True), R(endings=frozenset({1}), end=True), R(endings=frozenset({2})), R()]
    assert extract.play_order(marks) == [0, 1, 0, 1, 2, 3, 2, 4, 5]


def test_harmonize_and_accompaniment():
    # C major melody: C E G | F A C | G B D | C: I IV V I, one chord per 3/4 bar
    pitches = [60, 64, 67, 65, 69, 72, 67, 71, 74, 72, 72, 72]
    score = Score("test", "", tuple(Note(float(i), 1.0, p, 0) for i, p in enumerate(pitches)), ("melody",),
                  measure_starts=(0.0, 3.0, 6.0, 9.0))
    chords = arrange.harmonize(score, 0, "major", unit=1.0, max_window=4.0)
    assert [c[2] for c in chords] == ["I", "IV", "V", "I"]
    for pattern in arrange.PATTERNS:
        acc = arrange.with_accompaniment(score, 0, "major", pattern, bpm=100.0)
        assert acc.n_parts == 3 and {n.part for n in acc.notes} == {0, 1, 2}
        assert all(n.onset < score.end for n in acc.notes)


def test_too_many_works_is_a_clear_error(tmp_path, cache, capsys):
    rc = main(["--out_dir", str(tmp_path / "x"), "--works", "100000", "--seed", "0",
               "--cache_dir", str(cache), "--no_progress"])
    assert rc == 1
    assert "at most" in capsys.readouterr().err
    assert not (tmp_path / "x" / "dataset.txt").exists()


@pytest.mark.parametrize("argv", [
    ["--works", "0"], ["--works", "3", "--min_versions", "1"], ["--works", "al"],
    ["--works", "3", "--val_fraction", "1.5"], ["--works", "3", "--val_fraction", "0.5", "--test_fraction", "0.5"],
    ["--works", "3", "--train_versions", "1-4"], ["--works", "3", "--train_versions", "5-4"],
    ["--works", "3", "--train_versions", "x"],
    ["--works", "3", "--min_versions", "4", "--max_versions", "3"],
    ["--works", "3", "--sr", "100"], ["--works", "3", "--nj", "0"], ["--works", "3", "--seed", "-1"], ["--works", "x"],
])
def test_bad_arguments_are_argparse_errors(argv, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["--out_dir", str(tmp_path), *argv])
    assert e.value.code == 2


def test_missing_package_names_the_install_script(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tinysoundfont" else real(name, *a))
    with pytest.raises(DemoDependencyError, match="bash utils/install.sh"):
        check_dependencies()


def test_works_all_and_version_ranges_parse(tmp_path):
    args = parse_args(["--out_dir", str(tmp_path), "--works", "all", "--train_versions", "6"])
    assert args.works is None and args.train_versions == (6, 6) and args.max_dur_s == 60.0 and args.sr == 16000
    assert parse_args(["--out_dir", str(tmp_path), "--works", "5"]).train_versions == (4, 8)


# ---------------------------------------------------------------- split by work-id hash

def test_split_is_recorded_and_follows_the_work_id_hash(run_a):
    for rec in _records(run_a):
        assert rec["split"] == synth.work_split(rec["song"], FRACTIONS["val"], FRACTIONS["test"])
        assert rec["pool"] == ("train" if rec["split"] == "train" else "heldout")


def test_split_by_hash_is_stable_across_works_and_seeds(cache):
    seen: dict[str, str] = {}
    for works, seed in ((6, 0), (12, 0), (20, 1)):
        specs, _ = synth.choose_works(works, seed, cache, val_fraction=0.1, test_fraction=0.2)
        assert len(specs) == works
        quotas = synth.split_quotas(works, 0.1, 0.2)
        assert {x: sum(s.split == x for s in specs) for x in synth.SPLITS} == quotas
        for s in specs:
            assert s.split == synth.work_split(s.work_id, 0.1, 0.2)
            assert seen.setdefault(s.work_id, s.split) == s.split
    assert len(seen) > 20  # the runs overlap only partly, yet agree on every shared work
    # the hash itself: fixed numbers, independent of anything else
    assert synth.work_split("essen-a0004", 0.1, 0.2) == synth.work_split("essen-a0004", 0.1, 0.2)
    fractions = [synth._unit_hash(f"work-{i}") for i in range(2000)]
    assert 0.17 < np.mean(np.array(fractions) < 0.2) < 0.23


def test_split_quotas_give_two_works_to_every_split_asked_for():
    assert synth.split_quotas(12, 0.1, 0.2) == {"train": 8, "val": 2, "test": 2}
    assert synth.split_quotas(400, 0.1, 0.2) == {"train": 280, "val": 40, "test": 80}
    assert synth.split_quotas(10, 0.0, 0.2) == {"train": 8, "val": 0, "test": 2}


def _spec(i: int, split: str) -> synth.WorkSpec:
    return synth.WorkSpec(i, f"w{i}", "essen", "", ("a", "b"), split)


def test_empty_or_single_work_split_is_an_error():
    specs = [_spec(0, "train"), _spec(1, "train"), _spec(2, "test"), _spec(3, "test"), _spec(4, "val")]
    with pytest.raises(synth.SplitError, match="split 'val' .*has 1 work"):
        synth.check_splits(specs, 0.1, 0.2, "--works all")
    with pytest.raises(synth.SplitError, match="split 'val' .*has 0 works"):
        synth.check_splits(specs[:4], 0.1, 0.2, "--works all")
    synth.check_splits(specs[:4], 0.0, 0.2, "--works all")  # fraction 0: the split is not asked for


@pytest.mark.parametrize("works,fractions,split", [("5", ("0.1", "0.2"), "train"), ("3", ("0.1", "0.2"), "train")])
def test_too_few_works_for_the_splits_is_a_clear_error(tmp_path, cache, capsys, works, fractions, split):
    rc = main(["--out_dir", str(tmp_path / "x"), "--works", works, "--val_fraction", fractions[0],
               "--test_fraction", fractions[1], "--cache_dir", str(cache), "--no_progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert f"split {split!r}" in err and "at least 2" in err
    assert not (tmp_path / "x" / "dataset.txt").exists()


# ---------------------------------------------------------------- timbre pools

def test_pools_share_no_program_effect_or_noise():
    assert not set(arrange.pool_programs("train")) & set(arrange.pool_programs("heldout"))
    assert set(effects.EFFECTS["train"]) & set(effects.EFFECTS["heldout"]) == {"reverb"}
    assert not set(effects.NOISES["train"]) & set(effects.NOISES["heldout"])
    families = {pool: {p // 8 for p in arrange.pool_programs(pool)} for pool in effects.POOLS}
    assert families["train"] & families["heldout"] == {4}  # basses: 32-37 train, 38-39 (synth) held out
    assert {p for p in arrange.pool_programs("heldout") if p // 8 == 4} == {38, 39}


def test_every_pool_program_sounds_across_its_role_range():
    """Each program of each role renders a non-silent note over the role's pitch range in
    TimGM6mb (a missing sample would render silence); doublings use lead programs."""
    silent = []
    for pool in effects.POOLS:
        for role, (lo, hi) in arrange.ROLE_RANGE.items():
            for program in arrange.pool_programs(pool, role):
                for pitch in sorted({*range(lo, hi + 1, 6), hi}):
                    if render.program_rms(program, pitch) <= 1e-4:
                        silent.append((pool, role, program, pitch))
    assert not silent


def _used_programs(rec: dict) -> list[int]:
    return rec["programs"] + ([rec["doubling"]["program"]] if rec["doubling"] else [])


def test_records_use_only_their_pool(run_a, run_c):
    for rec in _records(run_a) + _records(run_c):
        pool = "train" if rec["split"] == "train" else "heldout"
        assert rec["pool"] == pool
        assert set(_used_programs(rec)) <= set(arrange.pool_programs(pool)), rec["utt"]
        assert 1 <= len(rec["effects"]) <= 2 and {e["name"] for e in rec["effects"]} <= set(effects.EFFECTS[pool])
        assert rec["noise"] in (*effects.NOISES[pool], "none") and (rec["noise"] == "none") == (rec["snr_db"] is None)


def test_pool_draws_cover_the_pool_and_nothing_else(cache):
    """Many arrangements and effect draws: every choice stays in its pool and the pools'
    ensembles, effects and noises all occur."""
    specs, _ = synth.choose_works(WORKS, 0, cache, **{f"{k}_fraction": v for k, v in FRACTIONS.items()})
    for pool, split in (("train", "train"), ("heldout", "test")):
        spec = next(s for s in specs if s.split == split)
        score = extract.load_score(spec.members[0])
        ensembles, programs, octaves, doublings = set(), set(), set(), 0
        rng = np.random.default_rng(0)
        for i in range(60):
            choice = arrange.work_choices(rng, 1, pool)[0]
            _, info = arrange.arrange(score, choice, np.random.default_rng(i), max_dur=MAX_DUR, min_dur=12.0)
            ensembles.add(info["ensemble"])
            programs.update(_used_programs(info))
            octaves.add(info["lead_octave"])
            doublings += info["doubling"] is not None
        assert ensembles == set(arrange.POOL_ENSEMBLES[pool]) | {"mixed"}
        assert programs <= set(arrange.pool_programs(pool)) and len(programs) > 10
        assert octaves == {-1, 0, 1} and 5 < doublings < 40
        names, noises = set(), set()
        for i in range(200):
            rng = np.random.default_rng(i)
            names.update(e["name"] for e in effects.draw_chain(pool, rng, 16000))
            noises.add(str(rng.choice(effects.NOISES[pool])))
        assert names == set(effects.EFFECTS[pool]) and noises == set(effects.NOISES[pool])


def test_lead_octave_and_doubling_are_rendered(cache):
    """The lead channel plays the melody an octave off when lead_octave says so, and a
    doubling channel plays every lead note an octave from it, at the same time."""
    specs, _ = synth.choose_works(WORKS, 0, cache, **{f"{k}_fraction": v for k, v in FRACTIONS.items()})
    score = extract.load_score(specs[0].members[0])
    checked = set()
    for i in range(40):
        choice = arrange.work_choices(np.random.default_rng(i), 1, "heldout")[0]
        perf, info = arrange.arrange(score, choice, np.random.default_rng(i), max_dur=MAX_DUR, min_dur=12.0)
        if info["doubling"] is None:
            continue
        lead_chan = min(perf.programs)
        double_chan = max(perf.programs)
        assert perf.programs[double_chan] == info["doubling"]["program"]
        lead = sorted((n.start, n.pitch) for n in perf.notes if n.channel == lead_chan)
        double = sorted((n.start, n.pitch - 12 * info["doubling"]["octave"]) for n in perf.notes
                        if n.channel == double_chan)
        assert lead == double
        checked.add(info["lead_octave"])
    assert len(checked) >= 2


# ---------------------------------------------------------------- effects, noises, rendering

def test_effects_keep_length_and_do_what_they_say():
    sr = 16000
    t = np.arange(2 * sr) / sr
    low, mid, high = (np.sin(2 * np.pi * f * t) for f in (100.0, 1000.0, 6000.0))

    def gain(effect, x):
        y = effects.apply(x, effect, sr)
        assert y.shape == x.shape and np.all(np.isfinite(y))
        return np.sqrt(np.mean(y[sr // 2:] ** 2) / np.mean(x[sr // 2:] ** 2))

    band = {"name": "bandpass", "low_hz": 300.0, "high_hz": 3400.0, "order": 4}
    assert gain(band, mid) > 0.8 and gain(band, low) < 0.1 and gain(band, high) < 0.1
    lowpass = {"name": "lowpass", "cutoff_hz": 2000.0, "order": 4}
    assert gain(lowpass, mid) > 0.9 and gain(lowpass, high) < 0.05
    reshp = {"name": "reshighpass", "cutoff_hz": 500.0, "q": 4.0}
    assert gain(reshp, low) < 0.1 and gain(reshp, high) > 0.9
    reshp_at = {"name": "reshighpass", "cutoff_hz": 1000.0, "q": 4.0}
    assert gain(reshp_at, mid) > 3.0  # the resonance
    tilt = {"name": "tilt", "db_per_octave": 3.0}
    assert gain(tilt, high) > 2.0 and gain(tilt, low) < 0.35  # +7.8 and -10 dB
    clip = effects.apply(mid, {"name": "softclip", "drive": 6.0}, sr)
    assert np.max(np.abs(clip)) <= 1.0 + 1e-9 and np.mean(np.abs(clip)) > np.mean(np.abs(mid)) * 1.2
    for effect in ({"name": "comb", "delay_ms": 5.0, "feedback": 0.7},
                   {"name": "reverb", "rt60_s": 1.0, "wet": 0.4, "predelay_ms": 10.0, "seed": 3},
                   {"name": "bells", "bells": [{"freq_hz": 1000.0, "gain_db": 9.0, "q": 1.0}]}):
        assert 0.1 < gain(effect, mid) < 4.0
    rng = np.random.default_rng(0)
    for pool in effects.POOLS:  # every drawn chain replays from its manifest description
        for _ in range(20):
            chain = effects.draw_chain(pool, rng, sr)
            y = effects.apply_chain(mid, chain, sr)
            assert np.all(np.isfinite(y)) and np.array_equal(y, effects.apply_chain(mid, chain, sr))


def test_noises_have_their_colour():
    from scipy import signal

    sr = 16000
    rng = np.random.default_rng(1)

    def slope(kind):  # dB per octave between 100-200 Hz and 1.6-3.2 kHz
        y, params = effects.noise(kind, 20 * sr, rng, sr)
        f, p = signal.welch(y, sr, nperseg=4096)
        lo, hi = p[(f >= 100) & (f < 200)].mean(), p[(f >= 1600) & (f < 3200)].mean()
        return 10 * np.log10(hi / lo) / 4, params

    assert abs(slope("white")[0]) < 0.5
    assert -4.0 < slope("pink")[0] < -2.0
    assert -7.5 < slope("brown")[0] < -4.5
    y, params = effects.noise("hum", sr, rng, sr)
    assert params["mains_hz"] in (50, 60) and 3 <= params["harmonics"] <= 8
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) == params["mains_hz"]  # 1 s of audio: bin k is k Hz


def test_shared_synth_renders_like_a_fresh_one():
    """One synth per process renders channel after channel; output must be byte-identical
    to a fresh synth's whatever was rendered before (this is what keeps --nj irrelevant)."""
    sr = 16000
    rng = np.random.default_rng(5)
    jobs = []
    for k in range(6):
        notes = [Timed(round(float(rng.uniform(0, 2.5)), 3), round(float(rng.uniform(0.05, 1.0)), 3),
                       int(rng.integers(40, 90)), int(rng.integers(40, 120)), k) for _ in range(30)]
        jobs.append((notes, k, int(rng.choice(arrange.pool_programs("train") + arrange.pool_programs("heldout")))))
    fresh = []
    for notes, chan, program in jobs:
        render._SYNTHS.clear()
        fresh.append(render._render_channel(notes, chan, program, 3 * sr, sr))
    render._SYNTHS.clear()
    for (notes, chan, program), want in reversed(list(zip(jobs, fresh))):
        assert np.array_equal(render._render_channel(notes, chan, program, 3 * sr, sr), want)


def test_score_cache_round_trips(cache):
    specs, _ = synth.choose_works(WORKS, 0, cache, **{f"{k}_fraction": v for k, v in FRACTIONS.items()})
    for spec in specs[:3]:
        src = spec.members[0]
        assert extract.score_from_json(extract.score_to_json(extract.parse_score(src))) == extract.parse_score(src)
    assert extract._score_dir is not None and any(extract._score_dir.glob("*.json"))


def test_exclusive_members():
    cat = {"chorale": [], "essen": [], "single": [],
           "folk": [corpus.Candidate("folk", "a", "A", ("x", "y")), corpus.Candidate("folk", "b", "B", ("y", "z")),
                    corpus.Candidate("folk", "c", "C", ("y", "w", "v"))]}
    out = corpus.exclusive(cat)
    assert [c.members for c in out["folk"]] == [("x", "y"), ("w", "v")]


# ---------------------------------------------------------------- generated works, cover statistics

def test_generated_works_are_train_works_fitted_on_train_works(run_g, run_a, cache, monkeypatch):
    records = _records(run_g)
    gen = [r for r in records if r["kind"] == generate.KIND]
    assert {r["song"] for r in gen} == {generate.work_id(i) for i in range(4)}
    assert all(r["split"] == "train" and r["pool"] == "train" and r["source"].startswith(f"generated/{r['song']}/")
               for r in gen)
    lo, hi = TRAIN_VERSIONS
    for song, recs in itertools.groupby(gen, key=lambda r: r["song"]):
        assert lo <= len(list(recs)) <= hi
    # the music21 works are those of the corpus without generated works, rendered the same
    plain = {r["utt"]: r for r in _records(run_a)}
    assert all(plain[r["utt"]] == r for r in records if r["kind"] != generate.KIND)
    assert not (run_g / "test_hard.txt").exists()
    summary = yaml.safe_load((run_g / "make_synth_covers.yaml").read_text())["summary"]
    assert summary["works_by_kind"][generate.KIND] == 4 and summary["works"] == WORKS + 4
    # the melody model reads the member scores of train works and nothing else
    read = []
    real_fit = generate.fit
    monkeypatch.setattr(generate, "fit", lambda specs, **kw: read.extend(specs) or real_fit(specs, **kw))
    specs, _ = synth.choose_works(WORKS, 0, cache, **{f"{k}_fraction": v for k, v in FRACTIONS.items()})
    synth.with_generated(specs, 2, 0)
    assert read and {s.split for s in read} == {"train"}
    assert {s.work_id for s in read} == {s.work_id for s in specs if s.split == "train"}


def test_rendered_statistics_follow_the_config(run_a, run_c, run_g):
    """Keys, tempi and structure of every rendered version, read back from the manifests,
    against CoverStats (bounds of 4 binomial standard deviations: few versions)."""
    stats = covers.CoverStats()
    records = _records(run_a) + _records(run_c) + _records(run_g)
    m = covers.measure(records)
    later = m["versions"] - m["works"]

    def near(share, p, n):
        return abs(share - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-9

    assert near(m["same_key_as_first"], stats.same_key_prob, later)
    for edit in ("intro", "outro", "solo"):
        assert near(m["edit_share"][edit], getattr(stats, f"{edit}_prob"), m["versions"]), edit
    assert 0.5 * stats.tempo_log_sd < m["tempo_log_sd"] < 1.5 * stats.tempo_log_sd
    for r in records:
        assert stats.lead_in_s[0] <= r["lead_in_s"] <= stats.lead_in_s[1]
        assert set(r["segment_kinds"]) <= set(covers.SEGMENT_KINDS) and "score" in r["segment_kinds"]
        assert stats.tempo_range[0] <= r["tempo_factor"] <= stats.tempo_range[1]
    hard = covers.measure(read_manifest(run_a / "test_hard.txt"))
    assert hard["same_key_pairs"] == 0.0
