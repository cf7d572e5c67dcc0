"""csi.io.audio on what YouTube serves: AAC in .m4a/.mp4 and Opus in .webm, decoded by PyAV
(files written with PyAV itself), and the message when PyAV is missing."""
import builtins

import numpy as np
import pytest
import soxr

from csi.io.audio import AudioError, DecoderUnavailable, load, probe
from csi.io.coverage import select
from tests.fixtures.discogs_vi import write_av

av = pytest.importorskip("av")


def signal(sr, seconds=1.5):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234 * t * (1 + 0.1 * t))).astype(np.float32)


def compare(y, z):
    """Correlation and RMS error relative to the source's RMS, over the common length."""
    n = min(len(y), len(z))
    return float(np.corrcoef(y[:n], z[:n])[0, 1]), float(np.sqrt(np.mean((y[:n] - z[:n]) ** 2) / np.mean(y[:n] ** 2)))


@pytest.mark.parametrize("name, codec, sr, min_corr, max_err", [
    ("a.m4a", "aac", 44100, 0.998, 0.08),      # YouTube's format 140 (the Discogs-VI downloader's .mp4)
    ("a.mp4", "aac", 44100, 0.998, 0.08),
    ("a.webm", "libopus", 48000, 0.999, 0.05),  # YouTube's Opus audio
])
def test_decoded_samples_match_the_source(tmp_path, name, codec, sr, min_corr, max_err):
    y = signal(sr)
    path = write_av(tmp_path / name, y, sr, codec)
    info = probe(path)
    assert info.samplerate == sr and info.channels == 1 and info.duration == pytest.approx(1.5, abs=0.03)
    z, rate = load(path)
    assert rate == sr and z.dtype == np.float32 and z.ndim == 1
    assert len(z) / sr == pytest.approx(1.5, abs=0.03)
    corr, err = compare(y, z)
    assert corr > min_corr and err < max_err, (corr, err)
    z16, rate = load(path, sr=16000)                 # resampled with soxr as every other format
    assert rate == 16000 and len(z16) == pytest.approx(len(z) * 16000 / sr, abs=2)
    corr, err = compare(soxr.resample(y, sr, 16000), z16)
    assert corr > min_corr and err < max_err, (corr, err)


def test_stereo_is_mixed_down_as_the_other_formats(tmp_path):
    sr = 44100
    left, right = signal(sr), 0.5 * signal(sr)[::-1].copy()
    path = write_av(tmp_path / "s.m4a", np.stack([left, right]), sr, "aac")
    assert probe(path).channels == 2
    z, _ = load(path)
    corr, err = compare((left + right) / 2, z)
    assert corr > 0.99 and err < 0.15, (corr, err)     # stereo AAC at the encoder's default rate
    assert compare(left, z)[0] < 0.9                    # not one channel


def test_corrupt_and_empty_containers_are_unreadable(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    for read in (probe, load):
        with pytest.raises(AudioError, match="^unreadable: "):
            read(bad)
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="^unreadable: "):
        probe(empty)
    with pytest.raises(AudioError, match="^file not found: .*nope.m4a$"):
        load(tmp_path / "nope.m4a")


def test_without_pyav_the_error_names_the_file_and_pip_install_av(tmp_path, monkeypatch):
    path = write_av(tmp_path / "x.m4a", signal(22050), 22050, "aac")
    real_import = builtins.__import__

    def no_av(name, *args, **kwargs):
        if name == "av" or name.startswith("av."):
            raise ImportError("No module named 'av'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_av)
    for read in (probe, load):
        with pytest.raises(DecoderUnavailable, match=r"x\.m4a: \.m4a audio is decoded by PyAV.*pip install av"):
            read(path)
    assert not issubclass(DecoderUnavailable, AudioError)   # never counted as an unreadable file
    with pytest.raises(DecoderUnavailable, match="pip install av"):
        select("train", [{"utt": "x", "song": "w"}, {"utt": "y", "song": "w"}], {"x": path, "y": path}, progress=False)
