"""Discogs-VI-YT recipe stages 0-2 on generated metadata and audio (no network): the project's own
trees, and the published layouts of tests/fixtures/discogs_vi.py."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import soundfile as sf

from csi.io.manifest import read_manifest
from tests.helpers import REPO, run_bash, tiny_coverhunter_config

RUN = str(REPO / "egs" / "discogs_vi" / "run.sh")
NAME = "Discogs-VI-YT-20240701-light.json"

# split -> {clique: [youtube ids]}; "dup" is named twice (in two versions of the train split)
SPLITS = {"train": {"c1": ["a1", "a2", "a3"], "c2": ["b1", "b2"], "c3": ["s1", "s2"], "c4": ["dup", "x1"],
                    "c5": ["dup", "x2"]},
          "val": {"c6": ["v1", "v2"], "c7": ["w1", "w2"]},
          "test": {"c8": ["t1", "t2", "t3"], "c9": ["u1", "u2"]}}
ABSENT = {"a3", "s2", "x2", "t3", "u2"}   # c3 and c9 are left with 1 version


def make_tree(root, json_lines=False):
    meta, audio = root / "meta", root / "audio"
    meta.mkdir(parents=True)
    audio.mkdir()
    sr = 8000
    for split, cliques in SPLITS.items():
        doc = {c: [{"version_id": f"{c}-v{k}", "youtube_id": yt} for k, yt in enumerate(ids)] for c, ids in cliques.items()}
        text = "".join(json.dumps({c: v}) + "\n" for c, v in doc.items()) if json_lines else json.dumps(doc)
        (meta / f"{NAME}.{split}").write_text(text)
        for ids in cliques.values():
            for yt in ids:
                if yt not in ABSENT and not (audio / f"{yt}.wav").exists():
                    sf.write(audio / f"{yt}.wav", 0.1 * np.random.default_rng(0).standard_normal(sr), sr)
    (audio / "t3.opus.part").write_bytes(b"partial")
    return meta, audio


def test_stage1_manifests_and_coverage(tmp_path):
    meta, audio = make_tree(tmp_path, json_lines=True)
    data = tmp_path / "data"
    r = run_bash([RUN, "--stage", "1", "--stop_stage", "1", "--discogs_dir", str(meta), "--audio_dir", str(audio),
                  "--data", str(data)])
    assert r.returncode == 0, r.stderr
    train = read_manifest(data / "train" / "dataset.txt")
    assert sorted(rec["utt"] for rec in train) == ["a1", "a2", "b1", "b2", "dup", "x1"]
    rec = next(rec for rec in train if rec["utt"] == "b2")
    assert rec["song"] == "c2" and rec["version"] == "c2-v1" and rec["dur_s"] == 1.0
    cov = json.loads((data / "coverage.json").read_text())["train"]
    assert cov["duplicates"] == 1 and cov["tracks_wanted"] == 10 and cov["absent"] == 3
    assert cov["works_single_version"] == 1 and cov["works_kept"] == 3   # c3: s2 absent
    assert cov["works_without_audio"] == 1   # c5: dup counted in c4, x2 absent
    test = json.loads((data / "coverage.json").read_text())["test"]
    assert test["works_single_version"] == 1 and test["tracks_kept"] == 2
    assert (data / "test" / "absent.txt").read_text().split() == ["t3", "u2"]
    assert "coverage (" in r.stderr


def test_stage0_offline_and_missing_metadata(tmp_path):
    url = (tmp_path / "absent.tar.gz").as_uri()
    dl = tmp_path / "dl"
    r = run_bash([RUN, "--stop_stage", "0", "--discogs_url", url, "--download_dir", str(dl), "--data", str(tmp_path / "d")])
    assert r.returncode != 0 and url in r.stderr and "--discogs_dir" in r.stderr
    assert not dl.exists() or not [p for p in dl.rglob("*") if p.is_file()]
    r = run_bash([RUN, "--stop_stage", "1", "--download_dir", str(dl), "--data", str(tmp_path / "d")])
    assert r.returncode != 0 and f"{NAME}.train" in r.stderr and "--discogs_dir" in r.stderr
    assert not (tmp_path / "d").exists()


def test_stage0_url_list_and_fake_downloads(tmp_path):
    import sys

    meta, _ = make_tree(tmp_path / "src")
    bin_dir = tmp_path / "bin"   # a fake yt-dlp writing a short wav for every video
    bin_dir.mkdir()
    (bin_dir / "yt-dlp").write_text(
        f"#!{sys.executable}\nimport sys, numpy as np, soundfile as sf\n"
        "a = sys.argv[1:]\nvid = a[-1].rsplit('=', 1)[1]\n"
        "sf.write(a[a.index('-o') + 1].replace('%(id)s', vid).replace('%(ext)s', 'wav'), np.zeros(800), 8000)\n")
    (bin_dir / "yt-dlp").chmod(0o755)
    dl = tmp_path / "dl"
    r = run_bash(f"PATH={bin_dir}:$PATH bash {RUN} --stop_stage 1 --discogs_dir {meta} --download_dir {dl} "
                 f"--download_audio true --rate_limit_s 0 --data {tmp_path / 'data'}")
    assert r.returncode == 0, r.stderr
    urls = (dl / "urls.tsv").read_text().splitlines()
    assert len(urls) == 19 and urls[0] == "a1\thttps://www.youtube.com/watch?v=a1"   # dup listed once
    assert len(read_manifest(tmp_path / "data" / "train" / "dataset.txt")) == 9


def test_stages_1_to_6_with_a_tiny_model(tmp_path):
    """The shared split stages (2-6) on a Discogs-VI-YT tree: features, coarse training,
    alignment, fine training, and both models evaluated on the test split."""

    meta, audio = tmp_path / "meta", tmp_path / "audio"
    meta.mkdir()
    audio.mkdir()
    sr, rng = 8000, np.random.default_rng(3)
    layout = {"train": {f"c{k}": 3 for k in range(4)}, "val": {"c4": 2, "c5": 2}, "test": {"c6": 2, "c7": 2}}
    for split, cliques in layout.items():
        doc = {}
        for clique, n in cliques.items():
            f0 = rng.uniform(100, 400)
            doc[clique] = [{"version_id": f"{clique}-v{v}", "youtube_id": f"{clique}y{v}"} for v in range(n)]
            for v in range(n):
                t = np.arange(sr * 4) / sr
                sf.write(audio / f"{clique}y{v}.wav", 0.2 * np.sin(2 * np.pi * f0 * (1 + 0.01 * v) * t), sr)
        (meta / f"{NAME}.{split}").write_text(json.dumps(doc))
    tiny_coverhunter_config(tmp_path / "tiny.yaml")
    exp = tmp_path / "exp"
    r = run_bash([RUN, "--stage", "1", "--discogs_dir", str(meta), "--audio_dir", str(audio), "--data",
                  str(tmp_path / "data"), "--exp", str(exp), "--train_config", str(tmp_path / "tiny.yaml"),
                  "--train_features", str(REPO / "conf" / "features" / "test.yaml")], timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    for model in (exp, tmp_path / "exp_fine"):
        assert json.loads((model / "eval_test" / "metrics.json").read_text())["queries"] == 4
    assert (tmp_path / "exp_fine" / "comparison.txt").is_file()


# ---- the published layouts (tests/fixtures/discogs_vi.py) ----

def _published(sizes=None):
    """The fixture module and ``{split: {clique_id: [youtube_id, ...]}}``."""
    from tests.fixtures import discogs_vi as fx

    splits = fx.cliques(sizes or {"train": [3, 2, 2], "val": [2, 2], "test": [3, 2]}, seed=1)
    return fx, splits


def test_stages_1_2_official_zip_and_downloader_tree(tmp_path):
    """Zenodo's main.zip (read in place) and the dataset downloader's MUSIC_DIR (audio/<yt[:2]>/<yt>.mp4
    with .meta beside, logs/ for a failed download): stage 1's manifests of the AAC audio, stage 2's features."""
    fx, splits = _published()
    meta = tmp_path / "discogs"
    archive = fx.write_metadata(meta, splits)
    train_ids = [yt for ids in splits["train"].values() for yt in ids]
    absent, failed = train_ids[3], train_ids[5]        # the second and third cliques keep one version each
    audio = fx.write_audio(tmp_path / "music", splits, absent=[absent], failed=[failed], seconds=3.0)
    assert archive.name == "main.zip" and not list(meta.rglob("*.train"))
    data = tmp_path / "data"
    args = [RUN, "--stage", "1", "--stop_stage", "2", "--discogs_dir", str(meta), "--audio_dir", str(tmp_path / "music"),
            "--data", str(data), "--nj", "1", "--train_features", str(REPO / "conf" / "features" / "test.yaml")]
    r = run_bash(args, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"main.zip:main/{fx.NAMES['official']}.train" in r.stderr
    assert f"{len(audio)} audio files under {tmp_path / 'music' / 'audio'} (0 <id>.<ext>, {len(audio)} <id[:2]>/<id>.<ext>)" in r.stderr
    train = read_manifest(data / "train" / "dataset.txt")
    first = list(splits["train"])[0]
    assert sorted(rec["utt"] for rec in train) == sorted(splits["train"][first])
    light = json.loads(zipfile.ZipFile(archive).read(f"main/{fx.NAMES['official']}.train"))
    for rec, version in zip(train, light[first]):
        assert rec["song"] == first and rec["version"] == version["version_id"] and rec["utt"] == version["youtube_id"]
        assert rec["wav"] == str(tmp_path / "music" / "audio" / rec["utt"][:2] / f"{rec['utt']}.mp4")
        assert rec["dur_s"] == pytest.approx(3.0 + 0.25 * (light[first].index(version) % 3), abs=0.05)
    cov = json.loads((data / "coverage.json").read_text())
    assert cov["train"]["absent"] == 2 and cov["train"]["works_single_version"] == 2 and cov["train"]["works_kept"] == 1
    assert (data / "train" / "absent.txt").read_text().split() == sorted([absent, failed], key=train_ids.index)
    assert cov["val"]["tracks_kept"] == 4 and cov["test"]["tracks_kept"] == 5
    assert (data / "train" / "full.txt").is_file() and (data / "test" / "full.txt").is_file()   # stage 2
    r = run_bash(args[:4] + ["1"] + args[5:])                                                  # stage 1 again: skipped
    assert r.returncode == 0 and "already done" in r.stderr, r.stderr[-2000:]


def test_stage1_clews_naming_plain_files_and_clews_audio(tmp_path):
    """CLEWS's DiscogsVI-YT-* split files and AUDIO_DIR/<yt[:2]>/<yt>.<ext> (a prefix folder's case
    ignored, as CLEWS's loader does), beside flat files and a partial download."""
    fx, splits = _published(sizes={"train": [2, 2], "val": [2], "test": [2]})
    meta = fx.write_metadata(tmp_path / "datasets", splits, naming="clews", packed=None, folder="discogs-vi")
    audio_dir = tmp_path / "audio"
    paths = fx.write_audio(audio_dir, {"train": splits["train"]}, layout="clews", ext="m4a")
    paths.update(fx.write_audio(audio_dir, {k: splits[k] for k in ("val", "test")}, layout="flat", ext="webm", seed=2))
    moved = next(yt for yt in paths if yt[:2] != yt[:2].swapcase() and paths[yt].parent != audio_dir)
    folder = paths[moved].parent
    folder.rename(folder.with_name(folder.name.swapcase()))
    (audio_dir / "zz_partial.webm.part").write_bytes(b"partial")
    data = tmp_path / "data"
    r = run_bash([RUN, "--stage", "1", "--stop_stage", "1", "--discogs_dir", str(tmp_path / "datasets"),
                  "--audio_dir", str(audio_dir), "--data", str(data)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{meta / fx.NAMES['clews']}.train" in r.stderr
    kept = {name: {rec["utt"] for rec in read_manifest(data / name / "dataset.txt")} for name in fx.SPLITS}
    assert kept == {name: {yt for ids in splits[name].values() for yt in ids} for name in fx.SPLITS}
    rec = next(rec for rec in read_manifest(data / "train" / "dataset.txt") if rec["utt"] == moved)
    assert rec["wav"] == str(audio_dir / moved[:2].swapcase() / f"{moved}.m4a")


def test_stage1_without_the_splits_names_what_it_looked_for(tmp_path):
    """Only the unsplit light file (zipped) and one split: stop, naming both namings, what was found and why."""
    fx, splits = _published()
    meta = tmp_path / "discogs"
    fx.write_metadata(meta, {"train": splits["train"]}, packed=None, folder="main")
    with zipfile.ZipFile(meta / "Discogs-VI-YT-20240701-light.json.zip", "w") as z:
        z.writestr("Discogs-VI-YT-20240701-light.json", json.dumps({}))
    r = run_bash([RUN, "--stage", "1", "--stop_stage", "1", "--discogs_dir", str(meta), "--data", str(tmp_path / "d")])
    assert r.returncode != 0
    for text in (f"no Discogs-VI-YT splits at or under {meta}", f"{fx.NAMES['official']}.train, .val, .test",
                 f"{fx.NAMES['clews']}.train, .val, .test", "inside .zip archives",
                 f"but not {fx.NAMES['official']}.val, {fx.NAMES['official']}.test",
                 "Discogs-VI-YT-20240701-light.json.zip:Discogs-VI-YT-20240701-light.json is the whole dataset",
                 "--discogs_dir"):
        assert text in r.stderr, (text, r.stderr)
    assert not (tmp_path / "d").exists()


def test_malformed_splits_name_the_file_line_and_clique(tmp_path, monkeypatch):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("prepare_discogs_vi", REPO / "egs" / "discogs_vi" / "local" / "prepare_discogs_vi.py")
    prep = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, prep)        # its dataclass looks itself up there
    spec.loader.exec_module(prep)
    fx, splits = _published()
    meta = tmp_path / "m"
    archive = fx.write_metadata(meta, splits)
    member = f"main/{fx.NAMES['official']}.val"
    doc = json.loads(zipfile.ZipFile(archive).read(member))
    clique = list(doc)[1]
    del doc[clique][1]["youtube_id"]
    bad = tmp_path / "bad"
    fx.write_metadata(bad, splits, packed=None, folder="")
    (bad / f"{fx.NAMES['official']}.val").write_text(json.dumps(doc))
    with pytest.raises(prep.DiscogsError, match=rf"\.val: clique {clique}, version 1: expected an object with a youtube_id"):
        prep.records_of(prep.locate(bad)["val"])
    (bad / f"{fx.NAMES['official']}.test").write_text('{"c1": [{"youtube_id": "abcdefghijk"}]}\n{"c2": [}\n')
    with pytest.raises(prep.DiscogsError, match=r"\.test:2: not JSON"):
        prep.records_of(prep.locate(bad)["test"])
    (bad / f"{fx.NAMES['official']}.train").write_text('{"c1": [{"youtube_id": "../etc"}]}')
    with pytest.raises(prep.DiscogsError, match=r"\.train: clique c1, version 0: youtube_id must be a YouTube id"):
        prep.records_of(prep.locate(bad)["train"])
    assert prep.main(["manifests", str(bad), str(tmp_path), str(tmp_path / "out")]) == 1
    found = prep.locate(meta)
    assert found["train"].member == f"main/{fx.NAMES['official']}.train" and found["train"].path == archive


def test_stage0_downloads_the_zip_and_reads_it_in_place(tmp_path):
    fx, splits = _published()
    archive = fx.write_metadata(tmp_path / "zenodo", splits)
    dl = tmp_path / "dl"
    r = run_bash([RUN, "--stop_stage", "1", "--discogs_url", archive.as_uri(), "--download_dir", str(dl),
                  "--audio_dir", str(tmp_path / "none"), "--data", str(tmp_path / "d")])
    assert (dl / "discogs_vi" / "main.zip").is_file(), r.stderr
    assert "Discogs-VI-YT splits: main.zip" in r.stderr
    assert r.returncode != 0 and "--download_audio true" in r.stderr   # no audio: stage 1 stops clearly


def test_audio_index_reads_flat_and_prefixed_layouts(tmp_path):
    from csi.io.coverage import index_prefixed_audio

    for rel in ("abcdefghijk.mp4", "ab/abXdefghijk.mp4", "ab/abXdefghijk.meta", "ab/abYdefghijk.m4a.part",
                "ab/cdOther.mp4", "AB/ABcdefghijk.webm", "flat1.opus", "notes.txt", "deep/de/deXX.mp4"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "ab" / "abcdefghijk.m4a").write_bytes(b"x")   # also flat: the flat file wins
    found, n = index_prefixed_audio(tmp_path)
    assert found == {"abcdefghijk": tmp_path / "abcdefghijk.mp4", "flat1": tmp_path / "flat1.opus",
                     "abXdefghijk": tmp_path / "ab" / "abXdefghijk.mp4", "ABcdefghijk": tmp_path / "AB" / "ABcdefghijk.webm"}
    assert n == {"flat": 2, "prefixed": 2}
    assert index_prefixed_audio(tmp_path / "none") == ({}, {"flat": 0, "prefixed": 0})
