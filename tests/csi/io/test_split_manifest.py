"""tools/split_manifest.py: --by_field (subsets from a record field, e.g. the demo corpus's
"split") and the fraction mode; subsets that are empty or hold a single work are errors."""
from __future__ import annotations

import pytest

from csi.io.manifest import read_manifest, write_manifest
from tools.split_manifest import main


def _records(splits: dict[str, str], versions: int = 3) -> list[dict]:
    return [{"utt": f"{work}-v{v}", "wav": f"audio/{work}/v{v}.flac", "dur_s": 30.0, "song": work,
             "version": f"v{v}", "split": split} for work, split in splits.items() for v in range(versions)]


WORKS = {"a": "train", "b": "test", "c": "train", "d": "val", "e": "test", "f": "val", "g": "train"}


@pytest.fixture
def manifest(tmp_path):
    path = tmp_path / "dataset.txt"
    write_manifest(path, _records(WORKS))
    return path


def test_by_field_writes_one_subset_per_value(manifest, tmp_path, capsys):
    out = tmp_path / "data"
    assert main([str(manifest), "--out_dir", str(out), "--by_field", "split", "--query_ref", "val", "test"]) == 0
    for split in ("train", "val", "test"):
        recs = read_manifest(out / split / "dataset.txt")
        assert {r["song"] for r in recs} == {w for w, s in WORKS.items() if s == split}
        assert all(r["split"] == split for r in recs)
        assert len(recs) == 3 * sum(s == split for s in WORKS.values())
    for split in ("val", "test"):  # query/ref exactly as in fraction mode: first version queries the others
        queries = read_manifest(out / split / "query.txt")
        refs = read_manifest(out / split / "ref.txt")
        assert [q["version"] for q in queries] == ["v0", "v0"] and len(refs) == 4
    assert not (out / "train" / "query.txt").exists()
    assert "train: 3 works, 9 recordings" in capsys.readouterr().err


def test_by_field_keeps_record_order(manifest, tmp_path):
    assert main([str(manifest), "--out_dir", str(tmp_path / "o"), "--by_field", "split"]) == 0
    want = [r["utt"] for r in read_manifest(manifest) if r["split"] == "train"]
    assert [r["utt"] for r in read_manifest(tmp_path / "o" / "train" / "dataset.txt")] == want


def test_missing_field_is_an_error(tmp_path, capsys):
    recs = _records(WORKS)
    del recs[4]["split"]
    path = tmp_path / "m.txt"
    write_manifest(path, recs)
    assert main([str(path), "--out_dir", str(tmp_path / "o"), "--by_field", "split"]) == 1
    err = capsys.readouterr().err
    assert "1 record(s) have no 'split' field" in err and recs[4]["utt"] in err
    assert not (tmp_path / "o").exists()


def test_work_in_two_subsets_is_an_error(tmp_path, capsys):
    recs = _records(WORKS)
    recs[1]["split"] = "test"  # a-v1 while a-v0 is train
    path = tmp_path / "m.txt"
    write_manifest(path, recs)
    assert main([str(path), "--out_dir", str(tmp_path / "o"), "--by_field", "split"]) == 1
    assert "work 'a' has records with split='train' and split='test'" in capsys.readouterr().err


@pytest.mark.parametrize("works,argv,message", [
    ({**WORKS, "f": "test"}, [], "subset 'val' has 1 work"),
    ({k: v for k, v in WORKS.items() if v != "val"}, ["--subsets", "train", "val", "test"], "subset 'val' is empty"),
    ({k: v for k, v in WORKS.items() if v != "val"}, ["--query_ref", "val"], "subset 'val' is empty"),
    (WORKS, ["--subsets", "train", "test"], "split values not in --subsets: val"),
])
def test_bad_subsets_are_errors_naming_the_subset(tmp_path, capsys, works, argv, message):
    path = tmp_path / "m.txt"
    write_manifest(path, _records(works))
    assert main([str(path), "--out_dir", str(tmp_path / "o"), "--by_field", "split", *argv]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_fraction_mode_still_splits_by_work(manifest, tmp_path):
    out = tmp_path / "o"
    assert main([str(manifest), "--out_dir", str(out), "--fractions", "train=0.5,test=0.5", "--seed", "1",
                 "--query_ref", "test"]) == 0
    train = {r["song"] for r in read_manifest(out / "train" / "dataset.txt")}
    test = {r["song"] for r in read_manifest(out / "test" / "dataset.txt")}
    assert train | test == set(WORKS) and not train & test and (out / "test" / "query.txt").exists()


def test_fraction_mode_single_work_subset_is_an_error(manifest, tmp_path, capsys):
    # 7 works: 5 train, 1 val, 1 test
    assert main([str(manifest), "--out_dir", str(tmp_path / "o"), "--fractions", "train=0.7,val=0.15,test=0.15"]) == 1
    assert "subset 'val' has 1 work" in capsys.readouterr().err
    assert main([str(manifest), "--out_dir", str(tmp_path / "o"), "--fractions", "train=0.8,val=0.1,test=0.1"]) == 1
    assert "subset 'val' is empty (non-empty: test, train)" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["--by_field", "split", "--fractions", "train=1"], ["--subsets", "train"],
    ["--fractions", "train=1", "--query_ref", "test"],
])
def test_bad_option_combinations(manifest, tmp_path, argv):
    with pytest.raises(SystemExit) as e:
        main([str(manifest), "--out_dir", str(tmp_path / "o"), *argv])
    assert e.value.code == 2
