"""CoverHunterMPS manifests (perf / work / work_id / dur_ms) read as csi's (utt / song / song_id / dur_s);
a line with csi's names reads as before."""
import json
import logging

import pytest

from csi.io.manifest import ManifestError, read_manifest, write_manifest
from tests.fixtures import coverhunter_mps


def test_dataset_and_full_are_read_with_csi_names(tmp_path, caplog):
    dataset = coverhunter_mps.write_dataset(tmp_path / "data", n_works=2, per_work=2, seconds=0.5)
    with caplog.at_level(logging.INFO, logger="csi.io.manifest"):
        records = read_manifest(dataset)
    first = json.loads(dataset.read_text().splitlines()[0])
    assert list(records[0]) == ["utt", "wav", "dur_s", "song", "version"]     # in their places
    assert records[0]["utt"] == first["perf"] and records[0]["song"] == first["work"] == "Work_0"
    assert [r["song"] for r in records] == ["Work_0", "Work_0", "Work_1", "Work_1"]
    assert "CoverHunterMPS field names read as csi's: perf -> utt (4 lines), work -> song (4 lines)" in caplog.text
    full = coverhunter_mps.write_full(tmp_path / "feat", n_works=3, per_work=2, frames=10)
    rows = read_manifest(full, required=("utt", "song", "song_id", "feat", "feat_len"))
    assert [r["song_id"] for r in rows] == [0, 0, 1, 1, 2, 2] and "work_id" not in rows[0]
    out = tmp_path / "out.txt"                             # written back with csi's names
    write_manifest(out, rows)
    assert "perf" not in out.read_text() and '"utt"' in out.read_text()


def test_a_csi_manifest_is_read_as_before_and_logs_nothing(tmp_path, caplog):
    path = tmp_path / "m.txt"
    line = {"utt": "a", "wav": "a.wav", "dur_s": 1.0, "song": "w", "version": "v", "work": "kept as it is"}
    path.write_text(json.dumps(line) + "\n")
    with caplog.at_level(logging.INFO, logger="csi.io.manifest"):
        records = read_manifest(path)
    assert records == [line] and list(records[0]) == list(line) and "CoverHunterMPS" not in caplog.text
    both = dict(line, perf="b")                            # csi's names win; the others stay unknown keys
    path.write_text(json.dumps(both) + "\n")
    assert read_manifest(path) == [both]


def test_dur_ms_becomes_seconds_and_a_missing_key_names_both_spellings(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text(json.dumps({"perf": "a", "work_id": 0, "work": "w", "dur_ms": 2500, "wav": "a.wav"}) + "\n")
    (rec,) = read_manifest(path)
    assert rec["dur_s"] == 2.5 and rec["song_id"] == 0 and "dur_ms" not in rec
    path.write_text(json.dumps({"work": "w", "wav": "a.wav"}) + "\n")
    with pytest.raises(ManifestError, match=r"m\.txt:1: missing key\(s\) utt \(or CoverHunterMPS's perf\)"):
        read_manifest(path)
    path.write_text(json.dumps({"perf": "a", "work": "w", "wav": "", "dur_ms": "long"}) + "\n")
    with pytest.raises(ManifestError, match="dur_ms: expected a number of milliseconds"):
        read_manifest(path)
