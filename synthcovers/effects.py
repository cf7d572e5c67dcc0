"""Post-render effects and noises of the demo corpus, split into a *train* and a *held-out*
pool so that test renderings go through processing never seen in training.

* train pool effects: ``tilt`` (spectral tilt EQ), ``bells`` (peaking-EQ bells),
  ``lowpass``; noises ``white`` and ``pink``;
* held-out pool effects: ``bandpass`` (telephone/radio band), ``reshighpass`` (resonant
  high-pass), ``softclip`` (tanh distortion), ``comb`` (feedback comb filter); noises
  ``brown`` and ``hum`` (mains 50/60 Hz with harmonics);
* both pools: ``reverb`` (exponentially decaying noise impulse response).

Every setting is drawn from a numpy Generator and returned as a plain dict (name plus
parameters) for the manifest; :func:`apply` replays such a dict, so a record describes
its audio exactly. Everything is numpy/scipy on float64 and cheap (< 0.1 s a minute).
"""
from __future__ import annotations

import numpy as np
from scipy import signal

POOLS = ("train", "heldout")
EFFECTS = {
    "train": ("tilt", "bells", "lowpass", "reverb"),
    "heldout": ("bandpass", "reshighpass", "softclip", "comb", "reverb"),
}
NOISES = {"train": ("white", "pink"), "heldout": ("brown", "hum")}
# processing order inside a chain: filters, then distortion, comb, room
CHAIN_ORDER = ("tilt", "bells", "lowpass", "bandpass", "reshighpass", "softclip", "comb", "reverb")


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


# ---------------------------------------------------------------- drawing settings

def draw_effect(name: str, rng: np.random.Generator, sr: int) -> dict:
    """Random settings of effect ``name`` (rounded, so the manifest replays them)."""
    if name == "tilt":  # dB per octave around 1 kHz
        return {"name": name, "db_per_octave": _r(rng.choice([-1, 1]) * rng.uniform(1.0, 3.0), 2)}
    if name == "bells":
        n = int(rng.integers(1, 4))
        return {"name": name, "bells": [
            {"freq_hz": _r(_loguniform(rng, 150.0, min(6000.0, 0.4 * sr)), 1),
             "gain_db": _r(rng.choice([-1, 1]) * rng.uniform(3.0, 12.0), 2),
             "q": _r(rng.uniform(0.7, 3.0), 2)} for _ in range(n)]}
    if name == "lowpass":
        return {"name": name, "cutoff_hz": _r(_loguniform(rng, 1800.0, min(6000.0, 0.45 * sr)), 1),
                "order": int(rng.choice([2, 4]))}
    if name == "bandpass":  # telephone / AM radio
        return {"name": name, "low_hz": _r(rng.uniform(250.0, 500.0), 1),
                "high_hz": _r(min(rng.uniform(2800.0, 4000.0), 0.45 * sr), 1), "order": 4}
    if name == "reshighpass":
        return {"name": name, "cutoff_hz": _r(_loguniform(rng, 200.0, 900.0), 1), "q": _r(rng.uniform(2.0, 6.0), 2)}
    if name == "softclip":
        return {"name": name, "drive": _r(rng.uniform(2.0, 8.0), 2)}
    if name == "comb":
        return {"name": name, "delay_ms": _r(rng.uniform(2.0, 12.0), 2), "feedback": _r(rng.uniform(0.4, 0.75), 3)}
    if name == "reverb":
        return {"name": name, "rt60_s": _r(rng.uniform(0.3, 1.8), 2), "wet": _r(rng.uniform(0.15, 0.5), 2),
                "predelay_ms": _r(rng.uniform(0.0, 25.0), 1), "seed": int(rng.integers(2**31))}
    raise ValueError(f"unknown effect {name!r}")


def draw_chain(pool: str, rng: np.random.Generator, sr: int) -> list[dict]:
    """One or two distinct effects of ``pool`` with random settings, in chain order."""
    names = EFFECTS[pool]
    k = int(rng.integers(1, 3))
    picked = [str(n) for n in rng.choice(names, size=k, replace=False)]
    picked.sort(key=CHAIN_ORDER.index)
    return [draw_effect(n, rng, sr) for n in picked]


# ---------------------------------------------------------------- applying

def _peaking_sos(freq: float, gain_db: float, q: float, sr: int) -> np.ndarray:
    """RBJ audio-EQ-cookbook peaking biquad as one second-order section."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * freq / sr
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


def _highpass_sos(freq: float, q: float, sr: int) -> np.ndarray:
    """RBJ high-pass biquad; q well above 0.707 gives a resonant peak at ``freq``."""
    w0 = 2 * np.pi * freq / sr
    alpha = np.sin(w0) / (2 * q)
    c = np.cos(w0)
    b = np.array([(1 + c) / 2, -(1 + c), (1 + c) / 2])
    den = np.array([1 + alpha, -2 * c, 1 - alpha])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


def _tilt(y: np.ndarray, db_per_octave: float, sr: int) -> np.ndarray:
    """Gain linear in log-frequency around 1 kHz (clipped at +-18 dB, flat below 40 Hz)
    as a 511-tap linear-phase FIR, delay compensated."""
    f = np.linspace(0.0, sr / 2, 257)
    gain_db = np.clip(db_per_octave * np.log2(np.maximum(f, 40.0) / 1000.0), -18.0, 18.0)
    taps = signal.firwin2(511, f, 10 ** (gain_db / 20), fs=sr)
    return signal.oaconvolve(y, taps)[255:255 + len(y)]


def _comb(y: np.ndarray, delay: int, g: float) -> np.ndarray:
    """Feedback comb y[n] = x[n] + g y[n - delay], computed a block of ``delay`` at a time."""
    out = y.copy()
    for start in range(delay, len(y), delay):
        end = min(start + delay, len(y))
        out[start:end] += g * out[start - delay:end - delay]
    return out * (1 - g)


def _reverb(y: np.ndarray, rt60: float, wet: float, predelay_ms: float, seed: int, sr: int) -> np.ndarray:
    length = max(1, int(min(rt60, 2.0) * sr))
    t = np.arange(length) / sr
    ir = np.random.default_rng(seed).standard_normal(length) * np.exp(-6.91 * t / rt60)
    ir = np.concatenate([np.zeros(int(predelay_ms * sr / 1000)), ir])
    wet_sig = signal.oaconvolve(y, ir)[:len(y)]
    rms_dry = float(np.sqrt(np.mean(np.square(y))))
    rms_wet = float(np.sqrt(np.mean(np.square(wet_sig))))
    if rms_wet > 0:
        wet_sig *= rms_dry / rms_wet
    return (1 - wet) * y + wet * wet_sig


def apply(y: np.ndarray, effect: dict, sr: int) -> np.ndarray:
    """``y`` (float64, mono) through one effect described by a :func:`draw_effect` dict."""
    name = effect["name"]
    if len(y) == 0:
        return y
    if name == "tilt":
        return _tilt(y, effect["db_per_octave"], sr)
    if name == "bells":
        sos = np.concatenate([_peaking_sos(b["freq_hz"], b["gain_db"], b["q"], sr) for b in effect["bells"]])
        return signal.sosfilt(sos, y)
    if name == "lowpass":
        return signal.sosfilt(signal.butter(effect["order"], effect["cutoff_hz"], "lowpass", fs=sr, output="sos"), y)
    if name == "bandpass":
        sos = signal.butter(effect["order"], [effect["low_hz"], effect["high_hz"]], "bandpass", fs=sr, output="sos")
        return signal.sosfilt(sos, y)
    if name == "reshighpass":
        return signal.sosfilt(_highpass_sos(effect["cutoff_hz"], effect["q"], sr), y)
    if name == "softclip":
        peak = float(np.max(np.abs(y)))
        if peak == 0:
            return y
        d = effect["drive"]
        return np.tanh(d * y / peak) / np.tanh(d) * peak
    if name == "comb":
        return _comb(y, max(1, int(round(effect["delay_ms"] * sr / 1000))), effect["feedback"])
    if name == "reverb":
        return _reverb(y, effect["rt60_s"], effect["wet"], effect["predelay_ms"], effect["seed"], sr)
    raise ValueError(f"unknown effect {name!r}")


def apply_chain(y: np.ndarray, chain: list[dict], sr: int) -> np.ndarray:
    for effect in chain:
        y = apply(y, effect, sr)
    return y


# ---------------------------------------------------------------- noises

# J. O. Smith's pink-noise filter (within 0.3 dB of 1/f from 9 Hz to 20 kHz at 44.1 kHz)
_PINK_B = (0.049922035, -0.095993537, 0.050612699, -0.004408786)
_PINK_A = (1.0, -2.494956002, 2.017265875, -0.522189400)


def noise(kind: str, n: int, rng: np.random.Generator, sr: int) -> tuple[np.ndarray, dict]:
    """``n`` samples of noise ``kind`` (any scale; the caller sets the SNR) and the drawn
    parameters (``hum``: mains frequency, harmonic count)."""
    if kind == "white":
        return rng.standard_normal(n), {}
    if kind == "pink":  # 1/f power: a 3-pole/3-zero approximation of the -3 dB/octave slope
        return signal.lfilter(_PINK_B, _PINK_A, rng.standard_normal(n)), {}
    if kind == "brown":  # 1/f^2 power: leaky integration of white noise (flat below ~5 Hz)
        return signal.lfilter([1.0], [1.0, -0.998], rng.standard_normal(n)), {}
    if kind == "hum":
        mains = int(rng.choice([50, 60]))
        harmonics = int(rng.integers(3, 9))
        t = np.arange(n) / sr
        phases = rng.uniform(0, 2 * np.pi, harmonics)
        amps = 1.0 / np.arange(1, harmonics + 1) ** rng.uniform(0.5, 1.2)
        y = sum(a * np.sin(2 * np.pi * mains * (k + 1) * t + p)
                for k, (a, p) in enumerate(zip(amps, phases)) if mains * (k + 1) < sr / 2)
        y = np.asarray(y, dtype=np.float64) + 0.05 * rng.standard_normal(n)  # a little buzz
        return y, {"mains_hz": mains, "harmonics": harmonics}
    raise ValueError(f"unknown noise {kind!r}")
