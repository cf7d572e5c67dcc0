"""Discogs-VI-YT recipe stages 0-1 on generated metadata and audio (no network)."""
from __future__ import annotations

import json

import numpy as np
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
