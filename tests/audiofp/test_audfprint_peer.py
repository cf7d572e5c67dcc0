"""Dan Ellis's audfprint (package audfprint2) as a peer on the fingerprint bench: it finds a
clean excerpt of its reference, its in-memory analysis is the package's own file analysis,
the bench's JSON carries it beside the other systems, and a missing package is named."""
import importlib.util
import json
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofp.peers import PeerUnavailableError, build_peer
from tests.audiofp.test_landmark import synthetic_recording
from tests.helpers import local_module

SR = 8000
needs_audfprint = pytest.mark.skipif(
    importlib.util.find_spec("audfprint2") is None,
    reason="the peer needs the package audfprint2 (pip install audfprint2)")


@needs_audfprint
def test_audfprint_finds_a_clean_excerpt_of_its_reference():
    peer = build_peer("audfprint", SR)
    recordings = {f"rec{i}": synthetic_recording(i, 20.0) for i in range(4)}
    for name, audio in recordings.items():
        assert peer.add(name, audio) > 100
    with pytest.raises(ValueError, match="already"):
        peer.add("rec0", recordings["rec0"])
    start = 7.3
    answer = peer.identify(recordings["rec2"][int(start * SR):int((start + 3) * SR)], topk=2)
    assert answer[0]["recording"] == "rec2" and abs(answer[0]["offset_s"] - start) <= 0.05
    assert answer[0]["score"] > 5 and all(a["recording"] != "rec2" for a in answer[1:])
    assert peer.identify(np.zeros(3 * SR, np.float32)) == []
    assert peer.size_bytes() == 4 * peer.n_hashes > 0
    params = peer.describe()        # the package's command-line defaults
    assert (params["density"], params["hashbits"], params["bucketsize"], params["samplerate"]) == (20.0, 20, 100, 11025)
    assert (params["shifts_reference"], params["shifts_query"], params["min_count"], params["match_win"]) == (1, 4, 5, 2)


@needs_audfprint
def test_in_memory_analysis_is_the_packages_own_file_analysis(tmp_path, monkeypatch):
    from audfprint2.utils import audio as afp_audio

    monkeypatch.setattr(afp_audio, "HAVE_FFMPEG", False)     # its reader for .wav at its own rate, no ffmpeg
    peer = build_peer("audfprint", 11025)
    path = tmp_path / "x.wav"
    sf.write(path, synthetic_recording(5, 6.0, sr=11025), 11025, subtype="PCM_16")
    y = sf.read(path, dtype="float64")[0]
    for analyzer, is_match in ((peer.ingest, False), (peer.query, True)):
        expected = analyzer.wavfile2hashes(str(path))
        assert len(expected) > 50 and np.array_equal(peer.hashes(y, is_match=is_match), expected)


def test_a_missing_package_is_named(tmp_path, monkeypatch, capsys):
    from tools import eval_fingerprint

    monkeypatch.setitem(sys.modules, "audfprint2", None)    # import audfprint2 now fails
    with pytest.raises(PeerUnavailableError, match=r"'audfprint2'.*pip install audfprint2"):
        build_peer("audfprint", SR)
    with pytest.raises(ValueError, match="unknown peer 'nope'; known: audfprint"):
        build_peer("nope", SR)
    out = tmp_path / "eval"
    assert eval_fingerprint.main([str(tmp_path / "db"), str(tmp_path / "refs"), "--out_dir", str(out),
                                  "--peer", "audfprint"]) == 1
    err = capsys.readouterr().err
    assert "eval_fingerprint: peer 'audfprint' needs the Python package 'audfprint2'" in err
    assert "pip install audfprint2" in err and not out.exists()       # stopped before any work


class _Pairs(torch.utils.data.Dataset):
    """1-s segments and a noisy copy: enough for a fingerprinter the bench can run."""

    def __init__(self, recordings, n, seed):
        rng = np.random.default_rng(seed)
        self.items = []
        for _ in range(n):
            y = recordings[rng.integers(len(recordings))]
            s = int(rng.integers(0, len(y) - SR))
            clean = y[s:s + SR]
            self.items.append((torch.from_numpy(clean),
                               torch.from_numpy(clean + rng.normal(0, 0.05, SR).astype(np.float32))))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


@needs_audfprint
def test_bench_json_includes_the_peer(tmp_path, capsys):
    from audiofp.train import FingerprintConfig, Trainer, TrainSettings
    from tools import create_faiss_indexes, generate_fingerprints

    recordings = [synthetic_recording(10 + i, 12.0) for i in range(3)]
    cfg = FingerprintConfig(model={"name": "nafp_cnn", "channels": [4, 8, 8], "dim": 16, "hidden_per_dim": 4},
                            train=TrainSettings(epochs=1, batch_size=8, learning_rate=3e-3))
    Trainer(cfg, tmp_path / "model").fit(_Pairs(recordings, 16, 0), _Pairs(recordings, 8, 1), progress=False)
    refs = tmp_path / "refs"
    refs.mkdir()
    for i, y in enumerate(recordings):
        sf.write(refs / f"rec{i}.wav", y, SR)
    assert generate_fingerprints.main([str(tmp_path / "model"), str(refs), "--out_dir", str(tmp_path / "fp"),
                                       "--no_progress", "--device", "cpu"]) == 0
    assert create_faiss_indexes.main(["--input", str(tmp_path / "fp"), "--name", "refs", "--out_dir",
                                      str(tmp_path / "db"), "--type", "flat"]) == 0
    capsys.readouterr()
    local_module("fingerprint", "hit_rates").main([str(refs), str(tmp_path / "bench"), "--db", str(tmp_path / "db"),
                                                   "--seeds", "1", "--per_cell", "1", "--peer", "audfprint"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(line) >= {"learned", "landmark", "audfprint"}
    peer = line["audfprint"]
    assert peer["runs"] == 1 and 0 <= peer["mean_hit_rate"] <= 1 and peer["bytes_per_audio_s"] > 0
    assert peer["query_ms_p50"] > 0 and 0 <= peer["recording_right"] <= 1
    run = next((tmp_path / "bench").glob("*/seed1"))
    result = json.loads((run / "results.json").read_text())
    assert len(result["audfprint"]["hit_rate"]) == 20 and result["audfprint"]["params"]["density"] == 20.0
    assert (run / result["audfprint"]["database_file"]).is_file() and result["audfprint"]["file_bytes_per_audio_s"] > 0
    assert "audfprint 0 dB" in (run / "table.md").read_text()
    assert result["queries"] == 20 and result["audfprint"]["hit_rate"]["10s@20dB"] == 1.0
