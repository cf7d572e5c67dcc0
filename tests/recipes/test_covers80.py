"""covers80 recipe stages 0-1 on a small generated tree in the covers80 layout."""
import tarfile

import numpy as np
import soundfile as sf

from csi.io.download import fetch, extract_tar, DownloadError
from csi.io.manifest import read_manifest
from tests.helpers import REPO, run_bash, tiny_coverhunter_config

RUN = str(REPO / "egs" / "covers80" / "run.sh")


def make_tree(root, with_lists=True, base_s=0):
    """3 works (one with 3 versions) in covers32k/<work>/<performance>.<ext>, plus a corrupt and an empty file."""
    tree = root / "covers32k"
    sr = 8000
    for w, n in enumerate([3, 2, 2]):
        for v in range(n):
            d = tree / f"Work_{w}"
            d.mkdir(parents=True, exist_ok=True)
            y = 0.2 * np.sin(2 * np.pi * 110 * (w + 1) * np.arange(sr * (base_s + v + 1)) / sr)
            sf.write(d / f"artist{v}+album+0{v}-Work_{w}.{['wav', 'flac', 'ogg'][v]}", y, sr)
    (tree / "Work_1" / "corrupt+x.mp3").write_bytes(b"\x00garbage" * 10)
    sf.write(tree / "Work_2" / "empty+y.wav", np.zeros(0), sr)
    if with_lists:
        (tree / "list1.list").write_text("".join(f"Work_{w}/artist0+album+00-Work_{w}\n" for w in range(3)))
        (tree / "list2.list").write_text("".join(f"Work_{w}/artist1+album+01-Work_{w}\n" for w in range(3)))
    return tree


def test_stage1_writes_manifests_and_lists_bad_files(tmp_path):
    make_tree(tmp_path / "c80")
    data = tmp_path / "data"
    r = run_bash([RUN, "--stage", "1", "--stop_stage", "1", "--covers80_dir", str(tmp_path / "c80"), "--data", str(data)])
    assert r.returncode == 0, r.stderr
    records = read_manifest(data / "dataset.txt")
    assert len(records) == 7
    assert {rec["song"] for rec in records} == {"Work_0", "Work_1", "Work_2"}
    by_version = {rec["version"]: rec for rec in records if rec["song"] == "Work_0"}
    assert by_version["artist2+album+02-Work_0"]["dur_s"] == 3.0  # read from the ogg header
    assert by_version["artist1+album+01-Work_0"]["wav"].endswith(".flac")
    queries, refs = read_manifest(data / "query.txt"), read_manifest(data / "ref.txt")
    assert [q["version"] for q in queries] == [f"artist0+album+00-Work_{w}" for w in range(3)]
    assert [q["song"] for q in refs] == ["Work_0", "Work_1", "Work_2"]
    assert len(read_manifest(data / "all160.txt")) == 6
    bad = (data / "bad.txt").read_text().splitlines()
    assert len(bad) == 2
    assert any("corrupt+x.mp3\tunreadable" in line for line in bad)
    assert any("empty+y.wav\tempty" in line for line in bad)
    assert "left out" in r.stderr and "===== stage 1: JSONL manifest done in" in r.stderr

    again = run_bash([RUN, "--stage", "1", "--stop_stage", "1", "--covers80_dir", str(tmp_path / "c80"), "--data", str(data)])
    assert again.returncode == 0 and "already done" in again.stderr


def test_stage2_extracts_features_of_every_track(tmp_path):
    make_tree(tmp_path / "c80", base_s=3)
    data = tmp_path / "data"
    r = run_bash([RUN, "--stage", "1", "--stop_stage", "2", "--covers80_dir", str(tmp_path / "c80"), "--data", str(data)])
    assert r.returncode == 0, r.stderr
    full = read_manifest(data / "full.txt")
    assert len(full) == 7 and all(rec["feat_len"] >= 100 for rec in full)
    assert sorted({rec["song_id"] for rec in full}) == [0, 1, 2]
    assert (data / "hparams.yaml").read_text() == (REPO / "conf" / "features" / "test.yaml").read_text()
    again = run_bash([RUN, "--stage", "2", "--stop_stage", "2", "--covers80_dir", str(tmp_path / "c80"), "--data", str(data)])
    assert again.returncode == 0 and "already done" in again.stderr


def test_stage1_derives_lists_without_list_files(tmp_path):
    make_tree(tmp_path / "c80", with_lists=False)
    data = tmp_path / "data"
    r = run_bash([RUN, "--stage", "1", "--stop_stage", "1", "--covers80_dir", str(tmp_path / "c80" / "covers32k"), "--data", str(data)])
    assert r.returncode == 0, r.stderr
    assert "deriving them" in r.stderr
    assert len(read_manifest(data / "query.txt")) == 3 == len(read_manifest(data / "ref.txt"))


def test_missing_directory_names_path_and_url(tmp_path):
    missing = tmp_path / "nowhere"
    r = run_bash([RUN, "--stop_stage", "1", "--covers80_dir", str(missing), "--data", str(tmp_path / "d")])
    assert r.returncode != 0
    assert str(missing) in r.stderr and "covers80.tgz" in r.stderr


def test_failed_download_names_url_and_path(tmp_path):
    url = "http://127.0.0.1:9/covers80.tgz"  # nothing listens on the discard port
    r = run_bash([RUN, "--stop_stage", "0", "--covers80_url", url, "--download_dir", str(tmp_path / "dl"),
                  "--data", str(tmp_path / "d")])
    assert r.returncode != 0
    assert url in r.stderr and str(tmp_path / "dl") in r.stderr
    assert not (tmp_path / "dl" / "covers80.tgz.part").exists()


def test_stage4_without_a_trained_model_says_so(tmp_path):
    make_tree(tmp_path / "c80")
    r = run_bash([RUN, "--stage", "4", "--covers80_dir", str(tmp_path / "c80"), "--data", str(tmp_path / "d"),
                  "--exp", str(tmp_path / "exp")])
    assert r.returncode != 0 and "run stage 3 first" in r.stderr


def test_fetch_and_extract(tmp_path):
    make_tree(tmp_path / "src" / "coversongs")
    archive = tmp_path / "covers80.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "coversongs", arcname="coversongs")
    got = fetch(archive.as_uri(), tmp_path / "dl" / "covers80.tgz")
    assert got.read_bytes() == archive.read_bytes()
    out = extract_tar(got, tmp_path / "covers80")
    assert (out / "coversongs" / "covers32k" / "list1.list").is_file()
    try:
        fetch((tmp_path / "absent.tgz").as_uri(), tmp_path / "dl" / "x.tgz")
    except DownloadError as e:
        assert "absent.tgz" in str(e) and "x.tgz" in str(e)
    else:
        raise AssertionError("fetching a missing URL must fail")
    assert not (tmp_path / "dl" / "x.tgz").exists()


def test_stage6_runs_the_papers_protocol_by_default_and_list1_vs_list2_on_request(tmp_path):
    """Stage 6 from audio: all-vs-all over dataset.txt by default (the CoverHunter paper's
    covers80 figure), list1 against list2 with --protocol; the protocol is named in the output
    directory, metrics.json and the logged table."""
    import json

    from tests.helpers import write_model_dir

    make_tree(tmp_path / "c80", base_s=3)
    data = tmp_path / "data"
    assert run_bash([RUN, "--stage", "1", "--stop_stage", "1", "--covers80_dir", str(tmp_path / "c80"),
                     "--data", str(data)]).returncode == 0
    exp = tmp_path / "exp"
    hp = {"train_path": "unused", "chunk_frame": [50], "mean_size": 2, "m_per_class": 2, "batch_size": 4,
          "input_dim": 96, "embed_dim": 32, "encoder": {"output_dims": 32, "num_blocks": 1, "attention_dim": 64},
          "pool_type": "attention", "ce": {"output_dims": 4, "weight": 1.0, "gamma": 2},
          "triplet": {"margin": 0.3, "weight": 0.1}, "center": {"weight": 0.0}}
    write_model_dir(exp, hp)
    common = ["--stage", "6", "--stop_stage", "6", "--covers80_dir", str(tmp_path / "c80"), "--data", str(data),
              "--exp", str(exp)]
    r = run_bash([RUN, *common])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "stage 6 protocol(s): all_vs_all" in r.stderr
    assert sorted(p.name for p in exp.glob("eval_*")) == ["eval_covers80_all_vs_all"]
    metrics = json.loads((exp / "eval_covers80_all_vs_all" / "metrics.json").read_text())
    assert metrics["protocol"] == "all-vs-all" and metrics["queries"] == 7 and metrics["references"] == 7
    assert metrics["protocol_detail"] == "7 recordings, each queries the other 6"
    assert "[all-vs-all: 7 recordings, each queries the other 6]" in r.stderr   # the logged table's header

    r = run_bash([RUN, *common, "--protocol", "all_vs_all list1_vs_list2"])
    assert r.returncode == 0, r.stderr[-3000:]
    lists = json.loads((exp / "eval_covers80_list1_vs_list2" / "metrics.json").read_text())
    assert lists["protocol"] == "query-vs-reference" and lists["queries"] == 3 and lists["references"] == 3
    assert lists["protocol_detail"] == "3 queries against 3 references"
    assert lists["query_path"].endswith("query.txt") and lists["ref_path"].endswith("ref.txt")

    r = run_bash([RUN, *common, "--protocol", "list1_vs_all"])
    assert r.returncode != 0 and "--protocol: expected all_vs_all and/or list1_vs_list2, got 'list1_vs_all'" in r.stderr


def test_stages_3_to_6_with_a_tiny_model_align_fine_tune_and_compare(tmp_path):
    import json

    make_tree(tmp_path / "c80", base_s=4)
    tiny_coverhunter_config(tmp_path / "tiny.yaml")
    common = ["--covers80_dir", str(tmp_path / "c80"), "--data", str(tmp_path / "data"), "--exp", str(tmp_path / "exp"),
              "--train_config", str(tmp_path / "tiny.yaml")]
    r = run_bash([RUN, "--stage", "1", *common], timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    head = json.loads((tmp_path / "exp" / "align" / "train.jsonl").read_text().splitlines()[0])["header"]
    assert head["checkpoint"] == "g_best" or head["checkpoint"].startswith("g_0")
    assert (tmp_path / "exp_fine" / "pt_model").is_dir()
    comparison = (tmp_path / "exp_fine" / "comparison.txt").read_text().splitlines()
    assert comparison[0].startswith("protocol: ")  # the table names its evaluation protocol
    assert comparison[2].startswith("coarse") and comparison[3].startswith("fine")
