"""Generated training works: new tunes from a melody model fitted on the train split only,
so the demo's training set can grow past what the music21 corpus holds.

The model is a second-order Markov chain over melodic intervals (semitones, within an
octave) conditioned on the scale degrees of the last two notes relative to the tune's
tonic, per mode (as in the n-gram melody models of Conklin & Witten 1995, "Multiple
viewpoint systems for music prediction", J. New Music Research 24(1), here with the
viewpoint pair (degree, interval) only). A generated tune takes the rhythm, bars and
phrases of a train tune (its *template*) and draws new pitches: the first note from the
degrees train tunes start on, each next one from the chain (falling back to the first
order, then to a step), kept within a singable range, the last note on the tonic; with
probability ``REPEAT_PROB`` a later phrase of the same rhythm as the first repeats its
pitches (the A A B A forms of songs). A work has one or two member scores, the second a
variant of the first (``VARIANT_SHARE`` of its notes moved by a scale step), like the
variants of a folk tune.

Only train works may be fitted on: :func:`fit` refuses a val or test work by name, and
generated works are always train works.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from . import arrange, extract
from .score import Note, Score, estimate_key

KIND = "generated"
GENERATE = 11  # seed word of the generator's random streams
REPEAT_PROB = 0.5
VARIANT_PROB = 0.5
VARIANT_SHARE = 0.12
RANGE = (55, 84)
_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}


class LeakageError(ValueError):
    """A melody model would be fitted on a val or test work."""


@dataclass
class MelodyModel:
    """Interval counts by (mode, degree before last, last degree), by (mode, last degree),
    first degrees by mode, and the rhythm templates (monophonic train tunes)."""

    second: dict[tuple[str, int, int], Counter]
    first: dict[tuple[str, int], Counter]
    starts: dict[str, Counter]
    templates: list[Score]
    fitted_on: tuple[str, ...]


def fit(specs, load=extract.load_score) -> MelodyModel:
    """Fit the model on the member scores of ``specs`` (synth.WorkSpec), every one of which
    must be a train work (:class:`LeakageError` names the first that is not)."""
    for spec in specs:
        if spec.split != "train":
            raise LeakageError(f"generated works are fitted on train works only: work {spec.work_id!r} is in "
                               f"the {spec.split!r} split, and fitting on it would leak its melody into training")
    second: dict = defaultdict(Counter)
    first: dict = defaultdict(Counter)
    starts: dict = defaultdict(Counter)
    templates = []
    for spec in specs:
        for src in spec.members:
            score = load(src)
            melody = score.melody()
            if len(melody) < 8:
                continue
            tonic, mode = estimate_key(list(score.notes))
            degrees = [(n.pitch - tonic) % 12 for n in melody]
            starts[mode][degrees[0]] += 1
            for k in range(1, len(melody)):
                step = int(np.clip(melody[k].pitch - melody[k - 1].pitch, -12, 12))
                first[(mode, degrees[k - 1])][step] += 1
                if k >= 2:
                    second[(mode, degrees[k - 2], degrees[k - 1])][step] += 1
            if score.n_parts == 1 and len(arrange.phrase_bounds(score)) >= 2:
                templates.append(score)
    if not templates:
        raise LeakageError("no train work has a monophonic tune of two or more phrases to take rhythms from: "
                           "ask for more works (generated works are fitted on the train split)")
    return MelodyModel(dict(second), dict(first), dict(starts), templates, tuple(s.work_id for s in specs))


def _draw(counter: Counter, rng: np.random.Generator) -> int:
    keys = sorted(counter)
    p = np.array([counter[k] for k in keys], dtype=float)
    return int(keys[int(rng.choice(len(keys), p=p / p.sum()))])


def _pitches(model: MelodyModel, n: int, tonic: int, mode: str, rng: np.random.Generator) -> list[int]:
    lo, hi = RANGE
    start_degree = _draw(model.starts.get(mode) or Counter({0: 1}), rng)
    p = 60 + (tonic + start_degree) % 12
    out = [p + 12 if p < lo else p]
    while len(out) < n:
        d1 = (out[-1] - tonic) % 12
        d0 = (out[-2] - tonic) % 12 if len(out) >= 2 else None
        counter = model.second.get((mode, d0, d1)) if d0 is not None else None
        counter = counter or model.first.get((mode, d1)) or Counter({-2: 1, -1: 1, 1: 1, 2: 1})
        step = _draw(counter, rng)
        nxt = out[-1] + step
        if not lo <= nxt <= hi:
            nxt = out[-1] - step
        out.append(int(np.clip(nxt, lo, hi)))
    last = out[-1]
    out[-1] = min((last + k for k in range(-6, 7) if (last + k - tonic) % 12 == 0 and lo <= last + k <= hi),
                  key=lambda q: abs(q - last), default=last)
    return out


def _variant(notes: list[Note], tonic: int, mode: str, rng: np.random.Generator) -> list[Note]:
    """``notes`` with VARIANT_SHARE of the inner ones moved one scale step up or down."""
    scale = sorted({(tonic + d) % 12 for d in _SCALES[mode]})
    out = list(notes)
    for k in range(1, len(notes) - 1):
        if rng.random() < VARIANT_SHARE:
            p, up = notes[k].pitch, bool(rng.random() < 0.5)
            cand = [q for q in (range(p + 1, p + 3) if up else range(p - 1, p - 3, -1)) if q % 12 in scale]
            if cand:
                out[k] = Note(notes[k].onset, notes[k].dur, cand[0], 0)
    return out


def generate_work(model: MelodyModel, name: str, rng: np.random.Generator) -> tuple[Score, ...]:
    """The member scores of generated work ``name`` (one, or two with a variant)."""
    template = model.templates[int(rng.integers(len(model.templates)))]
    _, mode = estimate_key(list(template.notes))
    tonic = int(rng.integers(12))
    melody = template.melody()
    pitches = _pitches(model, len(melody), tonic, mode, rng)
    phrases = arrange.phrase_bounds(template)
    inside = [[k for k, n in enumerate(melody) if a - 1e-6 <= n.onset < b - 1e-6] for a, b in phrases]
    rhythm = [tuple((round(melody[k].onset - a, 6), round(melody[k].dur, 6)) for k in ks)
              for (a, _), ks in zip(phrases, inside)]
    for j in range(2, len(phrases)):
        if rhythm[j] == rhythm[0] and rhythm[0] and rng.random() < REPEAT_PROB:
            for k0, kj in zip(inside[0], inside[j]):
                pitches[kj] = pitches[k0]
    notes = [Note(n.onset, n.dur, p, 0) for n, p in zip(melody, pitches)]
    members = [notes] + ([_variant(notes, tonic, mode, rng)] if rng.random() < VARIANT_PROB else [])
    return tuple(Score(source=f"{KIND}/{name}/m{m}", title=f"generated tune {name}", notes=tuple(ns),
                       part_names=("melody",), measure_starts=template.measure_starts,
                       phrase_ends=template.phrase_ends, beat=template.beat, tempo_bpm=None)
                 for m, ns in enumerate(members))


def work_id(i: int) -> str:
    """The id of generated work ``i``."""
    return f"{KIND}-{i:05d}"


def generate_works(model: MelodyModel, n: int, seed: int) -> list[tuple[str, tuple[Score, ...]]]:
    """``n`` works ``(work id, member scores)``, work ``i`` from ``default_rng([seed, GENERATE, i])``."""
    return [(work_id(i), generate_work(model, work_id(i), np.random.default_rng([seed, GENERATE, i])))
            for i in range(n)]
