import json

import pytest

from csi.io.manifest import (ManifestError, query_ref_split, read_manifest, split_by_work,
                             write_manifest)


def rec(utt, song, version="v", **extra):
    return {"utt": utt, "wav": f"/a/{utt}.wav", "dur_s": 1.5, "song": song, "version": version, **extra}


def test_round_trip_keeps_unknown_keys_and_order(tmp_path):
    records = [rec("a", "w1", feat="x.npy", feat_len=10, custom={"k": [1, 2]}), rec("b", "w2", "é ünïcode")]
    path = tmp_path / "m" / "dataset.txt"
    write_manifest(path, records)
    back = read_manifest(path)
    assert back == records
    assert list(back[0]) == list(records[0])
    assert path.read_text(encoding="utf-8").count("\n") == 2
    assert [p.name for p in path.parent.iterdir()] == ["dataset.txt"]  # no temporary left behind


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "dataset.txt"
    path.write_text(json.dumps(rec("a", "w")) + "\n\n" + '{"utt": "b", "wav": \n')
    with pytest.raises(ManifestError, match=r"dataset\.txt:3: malformed JSON"):
        read_manifest(path)


def test_missing_key_and_non_object(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text('{"utt": "a", "song": "w"}\n')
    with pytest.raises(ManifestError, match=r"d\.txt:1: missing key\(s\) wav"):
        read_manifest(path)
    path.write_text('[1, 2]\n')
    with pytest.raises(ManifestError, match=r"d\.txt:1: expected a JSON object"):
        read_manifest(path)


def test_duplicate_utt_is_an_error_on_read_and_write(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text(json.dumps(rec("a", "w")) + "\n" + json.dumps(rec("a", "w2")) + "\n")
    with pytest.raises(ManifestError, match=r"d\.txt:2: duplicate utt 'a' \(first seen on line 1\)"):
        read_manifest(path)
    out = tmp_path / "out.txt"
    write_manifest(out, [rec("x", "w")])
    with pytest.raises(ManifestError, match="duplicate utt 'a'"):
        write_manifest(out, [rec("a", "w"), rec("a", "w")])
    assert read_manifest(out) == [rec("x", "w")]  # the existing file is untouched


def test_split_by_work_is_disjoint_deterministic_and_complete():
    records = [rec(f"{w}-{v}", f"work{w}", f"v{v}") for w in range(20) for v in range(3)]
    split = split_by_work(records, {"train": 0.8, "test": 0.2}, seed=3)
    train_works = {r["song"] for r in split["train"]}
    test_works = {r["song"] for r in split["test"]}
    assert not train_works & test_works
    assert len(test_works) == 4 and len(train_works) == 16
    assert sorted(r["utt"] for s in split.values() for r in s) == sorted(r["utt"] for r in records)
    reversed_split = split_by_work(list(reversed(records)), {"train": 0.8, "test": 0.2}, seed=3)
    assert {r["song"] for r in reversed_split["test"]} == test_works  # depends on the works, not the order
    other = {r["song"] for r in split_by_work(records, {"train": 0.8, "test": 0.2}, seed=4)["test"]}
    assert other != test_works


def test_query_ref_split_first_version_queries():
    records = [rec("a2", "A", "2"), rec("a1", "A", "1"), rec("b1", "B", "1"), rec("b2", "B", "2"), rec("c", "C", "1")]
    queries, refs = query_ref_split(records)
    assert [r["utt"] for r in queries] == ["a1", "b1"]
    assert sorted(r["utt"] for r in refs) == ["a2", "b2", "c"]
