"""SHS100K recipe (egs/shs100k) on metadata in the published SHS100K2 layout
(tests/fixtures/shs100k.py: SHS100K2-master/meta/, tab or set_ver split lines, the six-column
list) and generated audio (no network): stage 0 (archive, URL list), stage 1 (manifests,
coverage, the published overlaps resolved and reported, CLEWS's audio layout), stage 2's
leakage check on the result, and the library's handling of each bad input."""
from __future__ import annotations

import json

import pytest

from csi.io.manifest import read_manifest
from tests.fixtures.shs100k import write_audio, write_shs100k2
from tests.helpers import REPO, local_module, run_bash, tiny_coverhunter_config

RUN = str(REPO / "egs" / "shs100k" / "run.sh")
shs = local_module("shs100k", "shs100k")  # egs/shs100k/local/shs100k.py

# split -> {set_id: versions}; audio is written for the versions not in ABSENT
SPLITS = {"train": {10: [0, 1, 2], 11: [0, 1], 12: [0, 1]}, "val": {20: [0, 1], 21: [0, 1]},
          "test": {30: [0, 1], 31: [0, 1, 2]}}
ABSENT = {"10_2", "12_1", "31_0"}   # 12 is left with 1 version; 10 and 31 keep 2


def make_tree(root, audio_ok=True, seconds=1.0, splits=SPLITS, layout="flat", **kw):
    tree = write_shs100k2(root / "src", splits, **kw)
    with (tree["meta"] / "SHS100K-TEST").open("a") as f:
        f.write("99\t7\n" if kw.get("form", "tab") == "tab" else "99_7\n")   # named by the split, not by list
    audio = root / "audio"
    audio.mkdir()
    if audio_ok:
        utts = [f"{s}_{v}" for works in splits.values() for s, vers in works.items() for v in vers]
        write_audio(audio, [u for u in utts if u not in ABSENT], layout=layout, seconds=seconds)
    (audio / "11_0.opus.part").write_bytes(b"partial")
    return tree["repo"], audio


def _stage1(tmp_path, repo, audio, data=None):
    data = data or tmp_path / "data"
    return run_bash([RUN, "--stage", "1", "--stop_stage", "1", "--shs_dir", str(repo), "--audio_dir", str(audio),
                     "--data", str(data)]), data


def test_stage1_manifests_and_coverage(tmp_path):
    repo, audio = make_tree(tmp_path)
    r, data = _stage1(tmp_path, repo, audio)
    assert r.returncode == 0, r.stderr
    train = read_manifest(data / "train" / "dataset.txt")
    assert sorted(rec["utt"] for rec in train) == ["10_0", "10_1", "11_0", "11_1"]
    rec = next(rec for rec in train if rec["utt"] == "11_1")
    assert rec["song"] == "11" and rec["version"] == "1" and rec["title"] == "Silent Night, Holy Night" and rec["dur_s"] == 1.25
    assert rec["performer"] == "Performer 11.1 & Orchestra" and rec["wav"].endswith("11_1.flac")
    test = read_manifest(data / "test" / "dataset.txt")
    assert sorted(rec["utt"] for rec in test) == ["30_0", "30_1", "31_1", "31_2"]
    cov = json.loads((data / "coverage.json").read_text())
    assert cov["train"]["tracks_wanted"] == 7 and cov["train"]["tracks_found"] == 5
    assert cov["train"]["works_single_version"] == 1 and cov["train"]["tracks_single_version"] == 1
    assert cov["train"]["works_kept"] == 2 and cov["train"]["tracks_kept"] == 4 and cov["train"]["absent"] == 2
    assert cov["test"]["absent"] == 2 and cov["test"]["works_wanted"] == 3 and cov["test"]["works_without_audio"] == 1
    assert (data / "test" / "absent.txt").read_text().split() == ["31_0", "99_7"]
    assert "works left with 1 version (dropped)" in r.stderr and "coverage (" in r.stderr
    assert "has 7 lines, the published SHS100K2 SHS100K-TRAIN has 87,091" in r.stderr    # a small copy: warned
    assert (data / "overlaps.tsv").read_text().splitlines()[1:] == []
    assert _stage1(tmp_path, repo, audio)[0].stderr.count("already done") == 1


def test_stages_1_2_published_faults_set_ver_lines_and_clews_audio(tmp_path):
    """The published splits' overlaps (a work whose recordings TRAIN and VAL both name, another
    in VAL and TEST), one video under two set ids, set_ver lines and CLEWS's audio layout:
    stage 1 resolves and reports them, and stage 2's leakage check passes."""
    splits = {"train": {10: [0, 1], 11: [0, 1], 15: [0, 1, 2]}, "val": {15: [0, 1, 2], 20: [0, 1], 25: [0, 1]},
              "test": {25: [0, 1], 30: [0, 1], 31: [0, 1, 2]}}
    repo, audio = make_tree(tmp_path, splits=splits, layout="clews", form="set_ver", shared_videos=[("31_2", "11_1")],
                            seconds=3.0)
    write_audio(audio, ["11_1"], layout="clews", seconds=3.0)        # its own copy, the same video as 31_2
    data = tmp_path / "data"
    r = run_bash([RUN, "--stage", "1", "--stop_stage", "2", "--shs_dir", str(repo), "--audio_dir", str(audio),
                  "--data", str(data), "--nj", "1", "--train_features", str(REPO / "conf" / "features" / "test.yaml")],
                 timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "SHS100K-TRAIN: 7 lines (set_ver)" in r.stderr
    assert "work 15: in train and val: kept in val, 3 recording(s) dropped from train (3 named by both)" in r.stderr
    assert "work 25: in val and test: kept in test, 2 recording(s) dropped from val (2 named by both)" in r.stderr
    assert "recording 11_1 (train): the same video as 31_2 (test)" in r.stderr
    assert "CLEWS" in r.stderr
    rows = [line.split("\t") for line in (data / "overlaps.tsv").read_text().splitlines()]
    assert rows[0][:4] == ["kind", "id", "kept_in", "dropped_from"]
    assert [row[:4] for row in rows[1:]] == [["work", "15", "val", "train"], ["work", "25", "test", "val"],
                                             ["url", "11_1", "test", "train"]]
    songs = {name: {rec["song"] for rec in read_manifest(data / name / "dataset.txt")} for name in ("train", "val", "test")}
    assert songs == {"train": {"10"}, "val": {"15", "20"}, "test": {"25", "30", "31"}}   # 11 left with one version
    assert read_manifest(data / "test" / "dataset.txt")[0]["wav"].endswith("25/25-0.wav")
    assert (data / "train" / "full.txt").is_file() and (data / "test" / "full.txt").is_file()
    assert "LEAK" not in r.stderr + r.stdout


def test_stage1_without_audio_fails_clearly(tmp_path):
    repo, audio = make_tree(tmp_path, audio_ok=False)
    r, data = _stage1(tmp_path, repo, audio)
    assert r.returncode != 0 and "--download_audio true" in r.stderr and "kept no recording" in r.stderr
    assert not (data / ".stage1.done").exists()


def test_stage1_malformed_split_names_file_and_line(tmp_path):
    repo, audio = make_tree(tmp_path)
    val = repo / "meta" / "SHS100K-VAL"
    val.write_text(val.read_text() + "20 x\n")
    r, _ = _stage1(tmp_path, repo, audio)
    assert r.returncode != 0 and f"{val}:5: set_id and ver_id must be numbers" in r.stderr


def test_stage0_offline_names_url_and_option(tmp_path):
    url = (tmp_path / "absent" / "shs.tar.gz").as_uri()
    dl = tmp_path / "dl"
    r = run_bash([RUN, "--stop_stage", "0", "--shs_url", url, "--download_dir", str(dl), "--data", str(tmp_path / "d")])
    assert r.returncode != 0
    assert url in r.stderr and "--shs_dir" in r.stderr
    assert not dl.exists() or not [p for p in dl.rglob("*") if p.is_file()]   # nothing half-written
    r = run_bash([RUN, "--stop_stage", "1", "--shs_dir", str(tmp_path / "nowhere"), "--data", str(tmp_path / "d")])
    assert r.returncode != 0 and "SHS100K-TRAIN" in r.stderr and str(tmp_path / "nowhere") in r.stderr
    assert not (tmp_path / "d").exists()


def test_stage0_downloads_metadata_archive_and_audio(tmp_path):
    """The repository archive (SHS100K2-master/meta/...) downloaded and unpacked; the URL list
    names every recording of the splits once, a video filed under two set ids once."""
    import sys
    import tarfile

    repo, _ = make_tree(tmp_path / "src", shared_videos=[("30_1", "21_0")])
    archive = tmp_path / "shs.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(repo, arcname="SHS100K2-master")
    bin_dir = tmp_path / "bin"   # a fake yt-dlp: every video is unavailable
    bin_dir.mkdir()
    (bin_dir / "yt-dlp").write_text(f"#!{sys.executable}\nimport sys\nprint('ERROR: Video unavailable', file=sys.stderr)\n"
                                    "sys.exit(1)\n")
    (bin_dir / "yt-dlp").chmod(0o755)
    dl = tmp_path / "dl"
    script = (f"PATH={bin_dir}:$PATH bash {RUN} --stop_stage 0 --shs_url {archive.as_uri()} --download_dir {dl} "
              f"--download_audio true --rate_limit_s 0 --jobs 10")
    r = run_bash(script)
    assert r.returncode == 0, r.stderr
    assert (dl / "shs100k" / "SHS100K2-master" / "meta" / "SHS100K-TRAIN").is_file()
    ids = [line.split("\t")[0] for line in (dl / "urls.tsv").read_text().splitlines()]
    assert len(ids) == 15 and "21_0" not in ids and "30_1" in ids and "99_7" not in ids   # 16 named, 99_7 has no URL
    assert len((dl / "audio" / "missing.txt").read_text().splitlines()) == 15
    assert "15 of 15 recordings unavailable" in r.stderr


def test_split_lines_both_forms_and_errors(tmp_path):
    assert shs.parse_split_line("5982\t7", "f:1") == ("5982", "7", "set<TAB>ver")
    assert shs.parse_split_line("5982_7\n", "f:1") == ("5982", "7", "set_ver")
    assert shs.parse_split_line("  \n", "f:1") is None
    for bad in ("5982", "5982-7", "a_b", "1_2_3"):
        with pytest.raises(shs.ShsError, match="f:9"):
            shs.parse_split_line(bad, "f:9")
    with pytest.raises(shs.ShsError, match="not found"):
        shs.read_split(tmp_path / "SHS100K-TRAIN")
    (tmp_path / "list").write_text("1\t0\tonly three\n")
    with pytest.raises(shs.ShsError, match=r"list:1: expected 6 tab-separated columns"):
        shs.read_list(tmp_path / "list")


def test_published_sizes_and_overlaps_resolved(tmp_path):
    """Split files of the published sizes, with the published overlaps (5982: the same 6
    recordings in TRAIN and VAL; 8110: the same 5 in VAL and TEST): no size warning, TEST
    intact, 87,085 / 10,879 / 10,547 recordings left and disjoint works."""
    def works(first, n_lines, overlap):
        out, s = {overlap[0]: list(range(overlap[1]))}, first
        left = n_lines - overlap[1]
        while left:
            k = min(left, 7)
            if s not in (5982, 8110):
                out[s] = list(range(k))
                left -= k
            s += 1
        return out

    splits = {"train": works(0, 87091, (5982, 6)), "val": {**works(20000, 10884 - 5, (5982, 6)), 8110: list(range(5))},
              "test": works(30000, 10547, (8110, 5))}
    assert [sum(len(v) for v in w.values()) for w in splits.values()] == [87091, 10884, 10547]
    tree = write_shs100k2(tmp_path, splits, extra_list_rows=0)
    logs = []
    loaded = shs.load_splits(tree["meta"], log=logs.append)
    assert not [m for m in logs if m.startswith("warning")]
    resolved, rows = shs.resolve_overlaps(loaded)
    assert {name: len(r) for name, r in resolved.items()} == {"train": 87085, "val": 10879, "test": 10547}
    assert resolved["test"] == loaded["test"]
    assert [(r["id"], r["kept_in"], r["dropped_from"], r["recordings"], r["shared"]) for r in rows] == [
        ("5982", "val", "train", 6, 6), ("8110", "test", "val", 5, 5)]
    sets = {name: {r["song"] for r in recs} for name, recs in resolved.items()}
    assert not (sets["train"] & sets["val"] or sets["val"] & sets["test"] or sets["train"] & sets["test"])
    # another size is read, with a warning naming the file
    (tree["meta"] / "SHS100K-VAL").write_text("1\t0\n1\t1\n")
    shs.load_splits(tree["meta"], log=logs.append)
    assert any("SHS100K-VAL has 2 lines, the published SHS100K2 SHS100K-VAL has 10,884" in m for m in logs)


def test_one_video_under_two_ids_is_kept_once():
    info = {"1_0": {"url": "https://www.youtube.com/watch?v=e5QhJHA3ykQ"},
            "2_0": {"url": "https://youtu.be/e5QhJHA3ykQ"}, "2_1": {"url": "https://www.youtube.com/watch?v=AAAAAAAAAAA"},
            "3_0": {"url": "https://www.youtube.com/watch?v=e5QhJHA3ykQ&t=3"}}
    rec = {u: {"utt": u, "song": u.split("_")[0], "version": u.split("_")[1]} for u in info}
    splits = {"train": [rec["1_0"], rec["3_0"]], "val": [], "test": [rec["2_0"], rec["2_1"]]}
    out, rows = shs.share_urls(splits, info)
    assert [r["utt"] for r in out["train"]] == [] and [r["utt"] for r in out["test"]] == ["2_0", "2_1"]
    assert [(r["id"], r["same_as"], r["dropped_from"]) for r in rows] == [("1_0", "2_0", "train"),
                                                                          ("3_0", "2_0", "train")]


def test_audio_index_reads_both_layouts(tmp_path):
    write_audio(tmp_path, ["12_3", "5_0"], layout="clews")
    write_audio(tmp_path, ["7_1"], layout="flat")
    write_audio(tmp_path, ["12_3"], layout="flat", exts=("flac",))     # a flat file wins over CLEWS's
    (tmp_path / "12" / "13-0.wav").write_bytes(b"")                   # in the wrong folder: not CLEWS's layout
    (tmp_path / "7_2.webm.part").write_bytes(b"")
    found, n = shs.index_audio(tmp_path)
    assert found == {"12_3": tmp_path / "12_3.flac", "5_0": tmp_path / "5-" / "5-0.wav", "7_1": tmp_path / "7_1.flac"}
    assert n == {"flat": 2, "clews": 1}
    assert shs.index_audio(tmp_path / "none") == ({}, {"flat": 0, "clews": 0})


def test_stages_1_to_6_tiny_model_and_covers80_with_model_dir(tmp_path):
    """Train on the (fake) SHS100K splits, evaluate its test split and covers80 (--covers80_data),
    then covers80's own recipe with --model_dir (stages 3-5 skipped)."""

    from tests.recipes.test_covers80 import make_tree as make_covers80

    repo, audio = make_tree(tmp_path, seconds=4.0)
    tiny_coverhunter_config(tmp_path / "tiny.yaml")
    c80 = REPO / "egs" / "covers80" / "run.sh"
    make_covers80(tmp_path / "c80", base_s=3)
    r = run_bash([str(c80), "--stage", "1", "--stop_stage", "1", "--covers80_dir", str(tmp_path / "c80"),
                  "--data", str(tmp_path / "c80data")])
    assert r.returncode == 0, r.stderr[-2000:]
    exp = tmp_path / "exp"
    test_features = str(REPO / "conf" / "features" / "test.yaml")
    r = run_bash([RUN, "--stage", "1", "--shs_dir", str(repo), "--audio_dir", str(audio), "--data", str(tmp_path / "data"),
                  "--exp", str(exp), "--train_config", str(tmp_path / "tiny.yaml"), "--train_features", test_features,
                  "--covers80_data", str(tmp_path / "c80data")], timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    for model in (exp, tmp_path / "exp_fine"):
        assert json.loads((model / "eval_test" / "metrics.json").read_text())["queries"] == 4
        covers80 = json.loads((model / "eval_covers80_all_vs_all" / "metrics.json").read_text())
        assert covers80["protocol"] == "all-vs-all" and covers80["queries"] == 7  # the paper's protocol: all 7 recordings
    assert (tmp_path / "exp_fine" / "comparison.txt").is_file()
    r = run_bash([str(c80), "--stage", "3", "--covers80_dir", str(tmp_path / "c80"), "--data", str(tmp_path / "c80data"),
                  "--model_dir", str(exp), "--exp", str(tmp_path / "unused")], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "stages 3-5 skipped" in r.stderr and "stage 3:" not in r.stderr and "test-set metrics" in r.stderr
    assert not (tmp_path / "unused").exists()
    r = run_bash([str(c80), "--stage", "6", "--covers80_dir", str(tmp_path / "c80"), "--data", str(tmp_path / "c80data"),
                  "--model_dir", str(tmp_path / "nothing")])
    assert r.returncode != 0 and "holds no trained model" in r.stderr
