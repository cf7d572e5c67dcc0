"""Audio loading (csi.io.audio): clear reasons for missing files and non-finite samples,
and no non-finite feature in the feature store or in stage 2's output."""
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from csi.features.store import FeatureStore, NonFiniteFeatureError
from csi.io.audio import AudioError, load, probe
from csi.io.manifest import read_manifest
from tests.helpers import REPO

SR = 16000


def tone(seconds=4.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_missing_file_says_file_not_found(tmp_path):
    missing = tmp_path / "nope.wav"
    for read in (load, probe):
        with pytest.raises(AudioError, match="^file not found: .*nope.wav$"):
            read(missing)
    with pytest.raises(AudioError, match="is a directory"):
        load(tmp_path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_file_with_a_non_finite_sample_is_refused(tmp_path, bad):
    y = np.stack([tone(), tone()], axis=1)
    y[1234, 1] = bad                        # one sample of one channel is enough
    path = tmp_path / "float.wav"
    sf.write(path, y, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"^non-finite samples \(NaN/Inf\) in the audio: 1 of "):
        load(path, sr=22050)
    sf.write(path, np.full(SR, np.nan, dtype=np.float32), SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="non-finite samples"):
        load(path)


def test_finite_float_file_loads(tmp_path):
    path = tmp_path / "ok.wav"
    sf.write(path, tone(), SR, subtype="FLOAT")
    y, sr = load(path)
    assert sr == SR and y.dtype == np.float32 and np.array_equal(y, tone())


def test_store_refuses_non_finite_features(tmp_path):
    store = FeatureStore(tmp_path / "feat", {"x": 1}).open()
    good = np.zeros((5, 4), dtype=np.float32)
    for bad in (np.nan, np.inf, 1e6):       # 1e6 overflows float16 to inf
        feat = good.copy()
        feat[2, 3] = bad
        with pytest.raises(NonFiniteFeatureError, match="u1: non-finite feature values"):
            store.save("u1", feat, source="s")
        assert not store.path("u1").exists() and store.length("u1") is None
    store.save("u1", good, source="s")
    assert store.length("u1", "s") == 5


def test_stage2_puts_non_finite_and_missing_audio_in_bad_txt(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    y = tone()
    sf.write(tmp_path / "ok.wav", y, SR)
    nan = y.copy()
    nan[::1000] = np.nan
    sf.write(tmp_path / "nan.wav", nan, SR, subtype="FLOAT")
    sf.write(tmp_path / "inf.wav", np.full(len(y), np.inf, dtype=np.float32), SR, subtype="FLOAT")
    recs = [{"utt": name, "wav": str(tmp_path / f"{name}.wav"), "song": f"s{i % 2}", "dur_s": 4.0}
            for i, name in enumerate(["ok", "nan", "inf", "missing"])]
    (data / "dataset.txt").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (data / "hparams.yaml").write_text("aug_speed_mode: [1.0]\n")
    r = subprocess.run([sys.executable, "-m", "tools.extract_csi_features", str(data), "--no_progress"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    bad = {u: why for u, _, why in (line.split("\t") for line in (data / "bad.txt").read_text().splitlines())}
    assert set(bad) == {"nan", "inf", "missing"}
    assert bad["nan"].startswith("non-finite samples (NaN/Inf) in the audio: 64 of 64000")
    assert bad["inf"].startswith("non-finite samples (NaN/Inf) in the audio: 64000 of 64000")
    assert bad["missing"] == f"file not found: {tmp_path / 'missing.wav'}"
    assert [rec["utt"] for rec in read_manifest(data / "full.txt")] == ["ok"]
    assert sorted(p.name for p in (data / "cqt_feat").glob("*/*.npy")) == ["ok.cqt.npy"]


def test_headers_are_read_in_parallel_in_order_with_errors_in_place(tmp_path):
    from csi.io.audio import AudioError, probe_many

    paths = []
    for i in range(40):
        path = tmp_path / f"a{i}.wav"
        if i == 7:
            path.write_bytes(b"not audio")
        else:
            sf.write(path, np.zeros(1000 + i, np.float32), 8000)
        paths.append(path)
    paths.append(tmp_path / "missing.wav")
    calls = []
    out = list(probe_many(paths, threads=8, progress=lambda: calls.append(1)))
    assert len(out) == len(calls) == 41
    assert [o.frames for i, o in enumerate(out) if i not in (7, 40)] == [1000 + i for i in range(40) if i != 7]
    assert isinstance(out[7], AudioError) and isinstance(out[40], AudioError)
