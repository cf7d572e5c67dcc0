"""The offline demo corpus (tools/make_synth_covers.py, csi/demo): determinism, manifests,
versions that differ like covers yet share their melody."""
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

from csi.demo import DemoDependencyError, arrange, check_dependencies, extract, synth  # noqa: E402
from csi.demo.score import Note, Score, melody_intervals, similarity  # noqa: E402
from csi.io.manifest import read_manifest  # noqa: E402
from tools.make_synth_covers import main  # noqa: E402

WORKS = 3
MAX_DUR = 30.0
OUT = "corpus"  # relative, so two runs in different directories give identical manifests
PITCH = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def _generate(where: Path, seed: int, cache: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(where)
    try:
        rc = main(["--out", OUT, "--works", str(WORKS), "--seed", str(seed), "--nj", "1",
                   "--max_dur", str(MAX_DUR), "--cache_dir", str(cache), "--no_progress"])
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
        assert (info.format, info.subtype, info.channels, info.samplerate) == ("FLAC", "PCM_16", 1, 22050)
        assert abs(info.duration - rec["dur_s"]) <= 1e-3
        assert 5.0 < rec["dur_s"] <= MAX_DUR
        for key in ("title", "kind", "source", "transpose", "key", "tempo_bpm", "programs", "structure",
                    "phrases", "gain_db", "snr_db"):
            assert key in rec
    meta = yaml.safe_load((run_a / "make_synth_covers.yaml").read_text())
    assert "music21" in meta["environment"]["packages"] and meta["summary"]["works"] == 3


def test_versions_per_work(run_a, run_c):
    for out in (run_a, run_c):
        counts = {}
        for rec in _records(out):
            counts[rec["song"]] = counts.get(rec["song"], 0) + 1
        assert all(2 <= c <= 4 for c in counts.values()), counts


# ---------------------------------------------------------------- covers: differ, yet the same tune

def test_versions_differ(run_a):
    sums = _checksums(run_a)
    for song, recs in itertools.groupby(_records(run_a), key=lambda r: r["song"]):
        recs = list(recs)
        assert len({r["transpose"] % 12 for r in recs}) == len(recs)
        assert len({r["tempo_factor"] for r in recs}) == len(recs)
        assert len({sums[os.path.join("audio", song, r["version"] + ".flac")] for r in recs}) == len(recs)


def _lead(perf) -> list[int]:
    """The rendered melody: highest lead-channel pitch per onset (chords share an onset)."""
    best: dict[float, int] = {}
    for n in perf.notes:
        if n.channel == 0 and (n.start not in best or n.pitch > best[n.start]):
            best[n.start] = n.pitch
    return [best[t] for t in sorted(best)]


def _expected_lead(rec: dict) -> list[int]:
    """The source's melody laid out in the manifest's phrase order, transposed."""
    score = extract.load_score(rec["source"])
    order = [int(i) for i in rec["phrases"].split()]
    notes, _ = arrange.apply_structure([n for n in score.notes if n.part == 0], arrange.phrase_bounds(score), order)
    best: dict[float, int] = {}
    for n in notes:
        best[n.onset] = max(best.get(n.onset, 0), n.pitch)
    return [best[t] + rec["transpose"] for t in sorted(best)]


def test_versions_share_the_melody(run_a, cache):
    records = {r["utt"]: r for r in _records(run_a)}
    specs, _ = synth.choose_works(WORKS, 0, cache)
    cfg = synth.settings(OUT, 0, max_dur=MAX_DUR)
    for spec in specs:
        versions = synth.arrange_work(spec, cfg)
        for ver in versions:
            rec = records[f"{spec.work_id}-{ver.version_id}"]
            planned = (ver.source, ver.info["transpose"], ver.info["phrases"])
            assert planned == (rec["source"], rec["transpose"], rec["phrases"])
            got, want = _lead(ver.performance), _expected_lead(rec)
            assert len(got) >= 8 and got == want[:len(got)]  # the tail may be cut at --max_dur
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
    rc = main(["--out", str(tmp_path / "x"), "--works", "100000", "--seed", "0",
               "--cache_dir", str(cache), "--no_progress"])
    assert rc == 1
    assert "at most" in capsys.readouterr().err
    assert not (tmp_path / "x" / "dataset.txt").exists()


@pytest.mark.parametrize("argv", [
    ["--works", "0"], ["--works", "3", "--min_versions", "1"],
    ["--works", "3", "--min_versions", "4", "--max_versions", "3"],
    ["--works", "3", "--sr", "100"], ["--works", "3", "--nj", "0"], ["--works", "3", "--seed", "-1"], ["--works", "x"],
])
def test_bad_arguments_are_argparse_errors(argv, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["--out", str(tmp_path), *argv])
    assert e.value.code == 2


def test_missing_package_names_the_install_script(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tinysoundfont" else real(name, *a))
    with pytest.raises(DemoDependencyError, match="bash utils/install.sh"):
        check_dependencies()
