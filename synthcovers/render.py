"""Performance -> audio with tinysoundfont and pretty_midi's General MIDI soundfont, then
effects, level and noise, then an atomic 16-bit FLAC write."""
from __future__ import annotations

import importlib.util
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from . import effects
from .score import Performance

TAIL_FADE_S = 1.0
PEAK = 10 ** (-1.0 / 20)  # -1 dBFS before the version's gain


def soundfont_path() -> Path:
    """TimGM6mb.sf2, the General MIDI soundfont shipped inside the pretty_midi wheel."""
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("pretty_midi is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "TimGM6mb.sf2"


@lru_cache(maxsize=2)
def _soundfont_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def synthesize(perf: Performance, sr: int) -> np.ndarray:
    """Render ``perf`` to mono float32 at ``sr``. Each channel is rendered alone and scaled
    to its RMS level in ``perf.levels_db`` (soundfont presets differ in loudness by up to
    20 dB), then the channels are summed."""
    total = max(1, int(round(perf.duration * sr)))
    mix = np.zeros(total, dtype=np.float64)
    for chan, program in sorted(perf.programs.items()):
        y = _render_channel([n for n in perf.notes if n.channel == chan], chan, program, total, sr)
        rms = float(np.sqrt(np.mean(np.square(y))))  # (np.dot would start BLAS threads)
        if rms > 0:
            mix += y * (10 ** (perf.levels_db.get(chan, 0.0) / 20) * 0.1 / rms)
    return mix.astype(np.float32)


_SYNTHS: dict[int, tuple] = {}  # sample rate -> (Synth, soundfont id), one per process
_FLUSH_BLOCK = 64


def _synth(sr: int):
    """This process's synth at ``sr`` with the soundfont loaded (parsing TimGM6mb takes
    ~10 ms, more than rendering a short channel, so it is done once)."""
    if sr not in _SYNTHS:
        from tinysoundfont.synth import Synth

        synth = Synth(samplerate=sr)
        _SYNTHS[sr] = (synth, synth.sfload(_soundfont_bytes(str(soundfont_path()))))
    return _SYNTHS[sr]


def _flush(sr: int) -> None:
    """Silence every voice of the shared synth so the next channel starts as from a fresh
    one (byte-identical output, see tests); a synth that will not fall silent is dropped."""
    synth, _ = _SYNTHS[sr]
    synth.sounds_off()
    scratch = np.zeros((_FLUSH_BLOCK, 2), dtype=np.float32)
    for _ in range(64):
        synth.generate_simple(_FLUSH_BLOCK, buffer=memoryview(scratch).cast("B"))
        if not scratch.any():
            return
    del _SYNTHS[sr]


def _render_channel(notes, chan: int, program: int, total: int, sr: int) -> np.ndarray:
    """One channel through tinysoundfont; note events are applied at exact samples between
    blocks of ``generate_simple``, so the result is deterministic."""
    synth, sfid = _synth(sr)
    synth.program_select(chan, sfid, 0, program, is_drums=False)
    events = []  # (sample, 0=off/1=on, key, velocity)
    for n in notes:
        start = int(round(n.start * sr))
        if start >= total:
            continue
        end = min(max(start + 1, int(round((n.start + n.dur) * sr))), total)
        events.append((start, 1, n.pitch, n.velocity))
        events.append((end, 0, n.pitch, 0))
    events.sort()
    out = np.zeros((total, 2), dtype=np.float32)
    pos = 0
    try:
        for sample, kind, key, vel in events:
            if sample > pos:
                synth.generate_simple(sample - pos, buffer=memoryview(out[pos:sample]).cast("B"))
                pos = sample
            if kind:
                synth.noteon(chan, key, vel)
            else:
                synth.noteoff(chan, key)
        if pos < total:
            synth.generate_simple(total - pos, buffer=memoryview(out[pos:total]).cast("B"))
    finally:
        _flush(sr)
    return (out[:, 0].astype(np.float64) + out[:, 1]) * 0.5


def program_rms(program: int, pitch: int, sr: int = 16000, velocity: int = 90) -> float:
    """RMS of one half-second note of GM ``program`` at ``pitch`` (0 = the soundfont has
    no sample there): checks that the instrument tables only name sounding programs."""
    from .score import Timed

    y = _render_channel([Timed(0.05, 0.5, pitch, velocity, 0)], 0, program, sr, sr)
    return float(np.sqrt(np.mean(np.square(y))))


def finish(audio: np.ndarray, sr: int, gain_db: float, chain: list[dict], snr_db: float | None, noise: str,
           rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Apply the effect ``chain`` (:mod:`synthcovers.effects`), fade the tail, normalise the
    peak to -1 dBFS, apply ``gain_db`` and add ``noise`` at ``snr_db`` (signal power over
    noise power) when given. Returns the audio and the noise's drawn parameters."""
    y = effects.apply_chain(audio.astype(np.float64), chain, sr)
    fade = min(len(y), int(TAIL_FADE_S * sr))
    if fade:
        y[-fade:] *= np.linspace(1.0, 0.0, fade)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 0:
        y *= PEAK / peak
    y *= 10 ** (gain_db / 20)
    params: dict = {}
    if snr_db is not None and len(y):
        n, params = effects.noise(noise, len(y), rng, sr)
        p_sig = float(np.mean(np.square(y)))
        p_noise = float(np.mean(np.square(n)))
        if p_sig > 0 and p_noise > 0:
            y += n * np.sqrt(p_sig / (p_noise * 10 ** (snr_db / 10)))
    return np.clip(y, -1.0, 1.0).astype(np.float32), params


def write_flac(path: str | os.PathLike, audio: np.ndarray, sr: int) -> None:
    """Write mono 16-bit FLAC through a temporary name in the same directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".flac.tmp", dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, audio, sr, format="FLAC", subtype="PCM_16")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
