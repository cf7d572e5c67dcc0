"""SHS100K recipe stages 0-1 on generated metadata and audio (no network)."""
from __future__ import annotations

import json

import numpy as np
import soundfile as sf

from csi.io.manifest import read_manifest
from tests.helpers import REPO, run_bash, tiny_coverhunter_config

RUN = str(REPO / "egs" / "shs100k" / "run.sh")

# split -> {set_id: number of versions}; audio is written for the versions not in ABSENT
SPLITS = {"TRAIN": {"10": 3, "11": 2, "12": 2}, "VAL": {"20": 2, "21": 2}, "TEST": {"30": 2, "31": 3}}
ABSENT = {"10_2", "12_1", "31_0"}   # 12 is left with 1 version; 10 and 31 keep 2


def make_tree(root, audio_ok=True, seconds=1.0):
    meta, audio = root / "SHS100K2", root / "audio"
    meta.mkdir(parents=True)
    audio.mkdir()
    rows = []
    for split, works in SPLITS.items():
        lines = []
        for set_id, n in works.items():
            for v in range(n):
                lines.append(f"{set_id}\t{v}\n")
                rows.append(f"{set_id}\t{v}\tSong {set_id}\tArtist {v}\thttps://www.youtube.com/watch?v=y{set_id}{v}\tT\n")
                if f"{set_id}_{v}" not in ABSENT and audio_ok:
                    sr = 8000
                    t = np.arange(int(sr * (seconds + 0.25 * v))) / sr
                    sf.write(audio / f"{set_id}_{v}.{['wav', 'flac', 'ogg'][v]}", 0.2 * np.sin(2 * np.pi * 220 * t), sr)
        lines.append("99\t7\n") if split == "TEST" else None   # named by the split, absent from list and audio
        (meta / f"SHS100K-{split}").write_text("".join(lines))
    (meta / "list").write_text("".join(rows))
    (audio / "11_0.opus.part").write_bytes(b"partial")
    return meta, audio


def test_stage1_manifests_and_coverage(tmp_path):
    meta, audio = make_tree(tmp_path)
    data = tmp_path / "data"
    args = [RUN, "--stage", "1", "--stop_stage", "1", "--shs_dir", str(meta), "--audio_dir", str(audio),
            "--data", str(data)]
    r = run_bash(args)
    assert r.returncode == 0, r.stderr
    train = read_manifest(data / "train" / "dataset.txt")
    assert sorted(rec["utt"] for rec in train) == ["10_0", "10_1", "11_0", "11_1"]
    rec = next(rec for rec in train if rec["utt"] == "11_1")
    assert rec["song"] == "11" and rec["version"] == "1" and rec["title"] == "Song 11" and rec["dur_s"] == 1.25
    assert rec["wav"].endswith("11_1.flac")
    test = read_manifest(data / "test" / "dataset.txt")
    assert sorted(rec["utt"] for rec in test) == ["30_0", "30_1", "31_1", "31_2"]
    cov = json.loads((data / "coverage.json").read_text())
    assert cov["train"]["tracks_wanted"] == 7 and cov["train"]["tracks_found"] == 5
    assert cov["train"]["works_single_version"] == 1 and cov["train"]["tracks_single_version"] == 1
    assert cov["train"]["works_kept"] == 2 and cov["train"]["tracks_kept"] == 4 and cov["train"]["absent"] == 2
    assert cov["test"]["absent"] == 2 and cov["test"]["works_wanted"] == 3 and cov["test"]["works_without_audio"] == 1
    assert (data / "test" / "absent.txt").read_text().split() == ["31_0", "99_7"]
    assert "works left with 1 version (dropped)" in r.stderr and "coverage (" in r.stderr
    assert run_bash(args).stderr.count("already done") == 1


def test_stage1_without_audio_fails_clearly(tmp_path):
    meta, audio = make_tree(tmp_path, audio_ok=False)
    r = run_bash([RUN, "--stage", "1", "--stop_stage", "1", "--shs_dir", str(meta), "--audio_dir", str(audio),
                  "--data", str(tmp_path / "data")])
    assert r.returncode != 0 and "--download_audio true" in r.stderr and "kept no recording" in r.stderr
    assert not (tmp_path / "data" / ".stage1.done").exists()


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
    import sys
    import tarfile

    meta, _ = make_tree(tmp_path / "src")
    archive = tmp_path / "shs.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(meta, arcname="SHS100K2-master")
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
    assert (dl / "shs100k" / "SHS100K2-master" / "SHS100K-TRAIN").is_file()
    assert len((dl / "urls.tsv").read_text().splitlines()) == 16
    assert len((dl / "audio" / "missing.txt").read_text().splitlines()) == 16
    assert "16 of 16 recordings unavailable" in r.stderr


def test_stages_1_to_6_tiny_model_and_covers80_with_model_dir(tmp_path):
    """Train on the (fake) SHS100K splits, evaluate its test split and covers80 (--covers80_data),
    then covers80's own recipe with --model_dir (stages 3-5 skipped)."""

    from tests.recipes.test_covers80 import make_tree as make_covers80

    meta, audio = make_tree(tmp_path, seconds=4.0)
    tiny_coverhunter_config(tmp_path / "tiny.yaml")
    c80 = REPO / "egs" / "covers80" / "run.sh"
    make_covers80(tmp_path / "c80", base_s=3)
    r = run_bash([str(c80), "--stage", "1", "--stop_stage", "1", "--covers80_dir", str(tmp_path / "c80"),
                  "--data", str(tmp_path / "c80data")])
    assert r.returncode == 0, r.stderr[-2000:]
    exp = tmp_path / "exp"
    test_features = str(REPO / "conf" / "features" / "test.yaml")
    r = run_bash([RUN, "--stage", "1", "--shs_dir", str(meta), "--audio_dir", str(audio), "--data", str(tmp_path / "data"),
                  "--exp", str(exp), "--train_config", str(tmp_path / "tiny.yaml"), "--train_features", test_features,
                  "--covers80_data", str(tmp_path / "c80data")], timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    for model in (exp, tmp_path / "exp_fine"):
        assert json.loads((model / "eval_test" / "metrics.json").read_text())["queries"] == 4
        assert json.loads((model / "eval_covers80" / "metrics.json").read_text())["queries"] == 3
    assert (tmp_path / "exp_fine" / "comparison.txt").is_file()
    r = run_bash([str(c80), "--stage", "3", "--covers80_dir", str(tmp_path / "c80"), "--data", str(tmp_path / "c80data"),
                  "--model_dir", str(exp), "--exp", str(tmp_path / "unused")], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "stages 3-5 skipped" in r.stderr and "stage 3:" not in r.stderr and "test-set metrics" in r.stderr
    assert not (tmp_path / "unused").exists()
    r = run_bash([str(c80), "--stage", "6", "--covers80_dir", str(tmp_path / "c80"), "--data", str(tmp_path / "c80data"),
                  "--model_dir", str(tmp_path / "nothing")])
    assert r.returncode != 0 and "holds no trained model" in r.stderr
