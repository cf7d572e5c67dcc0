"""Turn a :class:`Score` into one "cover": key, tempo, instrumentation, structure and, for
monophonic tunes, an accompaniment. Pure functions of the score and a numpy Generator."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .score import Note, Performance, Score, Timed, estimate_key, key_name

# General MIDI programs (0-based) per role; a version draws one program per part.
ENSEMBLES: dict[str, dict[str, tuple[int, ...]]] = {
    "piano": {"lead": (0, 1), "inner": (0,), "bass": (0,), "comp": (0, 1)},
    "organ": {"lead": (19, 16), "inner": (19, 16), "bass": (19,), "comp": (19, 16)},
    "strings": {"lead": (40, 48), "inner": (41, 48, 49), "bass": (42, 43), "comp": (48, 49)},
    "brass": {"lead": (56,), "inner": (60, 57), "bass": (58, 57), "comp": (61, 60)},
    "winds": {"lead": (73, 68, 71), "inner": (71, 68, 69), "bass": (70,), "comp": (71, 69)},
    "choir": {"lead": (52, 53), "inner": (52, 53), "bass": (52,), "comp": (52, 53)},
    "guitar": {"lead": (24, 25), "inner": (24, 25), "bass": (32,), "comp": (24, 25)},
    "band": {"lead": (65, 66, 22, 21), "inner": (4, 5), "bass": (33, 34), "comp": (4, 0, 16)},
    "folk": {"lead": (40, 73, 21, 22, 110, 78), "inner": (46, 24), "bass": (32, 42), "comp": (46, 24, 25, 0)},
    "mallets": {"lead": (11, 12, 8), "inner": (11, 0), "bass": (32,), "comp": (0, 88)},
}
GM_NAMES = {
    0: "acoustic grand piano", 1: "bright piano", 4: "electric piano 1", 5: "electric piano 2",
    8: "celesta", 11: "vibraphone", 12: "marimba", 16: "drawbar organ", 19: "church organ",
    21: "accordion", 22: "harmonica", 24: "nylon guitar", 25: "steel guitar", 32: "acoustic bass",
    33: "fingered bass", 34: "picked bass", 40: "violin", 41: "viola", 42: "cello", 43: "contrabass",
    46: "harp", 48: "string ensemble", 49: "slow strings", 52: "choir aahs", 53: "voice oohs",
    56: "trumpet", 57: "trombone", 58: "tuba", 60: "french horn", 61: "brass section", 65: "alto sax",
    66: "tenor sax", 68: "oboe", 69: "english horn", 70: "bassoon", 71: "clarinet", 73: "flute",
    78: "whistle", 88: "new age pad", 110: "fiddle",
}
PATTERNS = ("block", "pad", "arpeggio", "oompah", "alberti")
TRANSPOSES = tuple(range(-5, 7))
TEMPO_FACTORS = tuple(round(0.70 + 0.05 * i, 2) for i in range(15))  # 0.70 .. 1.40
VELOCITY = {"lead": 100, "inner": 76, "bass": 84, "comp": 66}
LEVEL_DB = {"lead": 0.0, "inner": -5.0, "bass": -6.0, "comp": -7.0}  # RMS relative to the melody

# Diatonic triads (root offset, chord tones) from the tonic, with a prior preference.
_CHORDS = {
    "major": (("I", 0, (0, 4, 7), 0.30), ("V", 7, (7, 11, 2), 0.20), ("IV", 5, (5, 9, 0), 0.15),
              ("vi", 9, (9, 0, 4), 0.05), ("ii", 2, (2, 5, 9), 0.0)),
    "minor": (("i", 0, (0, 3, 7), 0.30), ("V", 7, (7, 11, 2), 0.20), ("iv", 5, (5, 8, 0), 0.15),
              ("VI", 8, (8, 0, 3), 0.05), ("III", 3, (3, 7, 10), 0.0)),
}


@dataclass(frozen=True)
class VersionChoice:
    """The choices that make versions of one work differ (drawn per work, all distinct)."""

    transpose: int
    tempo_factor: float
    ensemble: str
    pattern: str


def work_choices(rng: np.random.Generator, n_versions: int) -> list[VersionChoice]:
    """Distinct transpositions and tempi for the versions of a work; ensembles and
    accompaniment patterns rotate through a shuffled list."""
    transposes = rng.choice(TRANSPOSES, size=n_versions, replace=False)
    tempi = rng.choice(TEMPO_FACTORS, size=n_versions, replace=False)
    ensembles = [str(e) for e in rng.permutation(sorted(ENSEMBLES))]
    patterns = [str(p) for p in rng.permutation(PATTERNS)]
    return [VersionChoice(int(transposes[v]), float(tempi[v]), ensembles[v % len(ensembles)],
                          patterns[v % len(patterns)]) for v in range(n_versions)]


# ---------------------------------------------------------------- accompaniment

def harmonize(score: Score, tonic: int, mode: str, unit: float = 1.0,
              max_window: float = 4.0) -> list[tuple[float, float, str, int, tuple[int, ...]]]:
    """One diatonic triad per measure or half measure: (start, end, numeral, root pc, pcs).

    Each candidate (I, IV, V, vi, ii, or i, iv, V, VI, III in minor) scores the melody
    time it covers minus half the time it clashes, plus a small prior; the last window is
    the tonic. Windows are measures cut into parts of at most ``max_window`` quarters on the
    ``unit`` grid; one shorter than ``unit`` (a pickup) gets no chord."""
    melody = score.melody()
    out = []
    prev = None
    windows = _windows(score, unit, max_window)
    for w, (a, b) in enumerate(windows):
        if b - a < unit - 1e-6:
            continue
        weights = np.zeros(12)
        for n in melody:
            overlap = min(b, n.onset + n.dur) - max(a, n.onset)
            if overlap > 0:
                weights[n.pitch % 12] += overlap * (1.5 if abs(n.onset - a) < 1e-6 else 1.0)
        total = weights.sum()
        best = None
        for name, root, tones, prior in _CHORDS[mode]:
            pcs = {(tonic + t) % 12 for t in tones}
            hit = sum(weights[pc] for pc in pcs)
            s = hit - 0.5 * (total - hit) + prior * max(total, 1.0)
            if w == len(windows) - 1:
                s += 100.0 if root == 0 else 0.0
            if best is None or s > best[0]:
                best = (s, name, root, tones)
        if total == 0 and prev is not None and w != len(windows) - 1:
            best = prev
        prev = best
        _, name, root, tones = best
        out.append((a, b, name, (tonic + root) % 12, tuple((tonic + t) % 12 for t in tones)))
    return out


def _windows(score: Score, unit: float, max_window: float) -> list[tuple[float, float]]:
    bounds = [m for m in score.measure_starts if m < score.end - 1e-6] + [score.end]
    wins = []
    for a, b in zip(bounds, bounds[1:]):
        k = max(1, int(np.ceil((b - a) / max_window - 1e-6)))
        cuts = sorted({a + round((b - a) * i / k / unit) * unit for i in range(1, k)} - {a, b})
        edges = [a] + [c for c in cuts if a < c < b] + [b]
        wins += list(zip(edges, edges[1:]))
    return wins


def accompaniment_unit(beat: float, bpm: float) -> float:
    """The notated beat doubled or halved until it lasts 0.45-0.9 s at ``bpm``."""
    unit = beat
    while unit * 60.0 / bpm < 0.45:
        unit *= 2
    while unit * 60.0 / bpm > 0.9 and unit / 2 >= 0.25:
        unit /= 2
    return unit


def _place(pc: int, low: int) -> int:
    return low + (pc - low) % 12


def accompaniment(chords, pattern: str, beat: float, compound: bool = False) -> list[Note]:
    """Bass (part 1) and chord (part 2) notes for ``chords`` in one of :data:`PATTERNS`;
    ``beat`` is the accompaniment's pulse in quarters (divided in three when compound)."""
    sub = beat / 3 if compound else beat / 2
    notes: list[Note] = []
    for a, b, _, root, pcs in chords:
        length = b - a
        bass = _place(root, 40)
        voicing = sorted(_place(pc, 53) for pc in pcs)
        nbeats = max(1, int(round(length / beat)))
        if pattern == "oompah":
            for k in range(nbeats):
                t = a + k * beat
                if k % 2 == 0:
                    p = bass if k % 4 == 0 else _place((root + 7) % 12, 40)
                    notes.append(Note(t, beat * 0.9, p, 1))
                if k % 2 == 1 or nbeats == 1:
                    t2 = t if k % 2 == 1 else t + beat / 2
                    notes += [Note(t2, beat * 0.45, p, 2) for p in voicing]
            continue
        notes.append(Note(a, length * 0.95, bass, 1))
        if pattern == "block":
            for k in range(nbeats):
                notes += [Note(a + k * beat, beat * 0.85, p, 2) for p in voicing]
        elif pattern == "pad":
            notes += [Note(a, length * 0.98, p, 2) for p in voicing]
        else:
            cycle = ([voicing[0], voicing[1], voicing[2], voicing[0] + 12, voicing[2], voicing[1]]
                     if pattern == "arpeggio" else [voicing[0], voicing[2], voicing[1], voicing[2]])
            for k in range(int(round(length / sub))):
                notes.append(Note(a + k * sub, sub * (1.8 if pattern == "arpeggio" else 0.95),
                                  cycle[k % len(cycle)], 2))
    return notes


def with_accompaniment(score: Score, tonic: int, mode: str, pattern: str, bpm: float) -> Score:
    """The monophonic ``score`` plus bass and chord parts, paced for ``bpm``."""
    unit = accompaniment_unit(score.beat, bpm)
    chords = harmonize(score, tonic, mode, unit, max_window=2.4 * bpm / 60.0)
    compound = abs(score.beat / 1.5 - round(score.beat / 1.5)) < 1e-6 and score.beat >= 1.5
    extra = accompaniment(chords, pattern, unit, compound and abs(unit / 1.5 - round(unit / 1.5)) < 1e-6)
    return score.with_notes(list(score.notes) + extra, part_names=(score.part_names[0], "bass", "chords"))


# ---------------------------------------------------------------- structure and tempo

def phrase_bounds(score: Score) -> list[tuple[float, float]]:
    """Phrases: between fermatas when there are at least two, else groups of 4 measures
    (2 in short pieces), counted from the first full measure; a short tail joins the last."""
    end = score.end
    cuts = [t for t in score.phrase_ends if 0.5 < t < end - 0.5]
    if len(cuts) < 2:
        ms = [m for m in score.measure_starts if m < end - 1e-6]
        lengths = [b - a for a, b in zip(ms, ms[1:] + [end])]
        first = 1 if len(lengths) > 1 and lengths[0] < lengths[1] - 1e-6 else 0
        group = 4 if len(ms) - first >= 12 else 2
        cuts = [ms[i] for i in range(first + group, len(ms), group)]
        if cuts and end - cuts[-1] < group * max(lengths) / 2:
            cuts.pop()
    edges = [0.0] + sorted(set(cuts)) + [end]
    return list(zip(edges, edges[1:]))


def edit_structure(n_phrases: int, rng: np.random.Generator) -> tuple[str, list[int]]:
    """("full"|"repeat"|"drop", phrase order): repeat one phrase or drop an inner one."""
    order = list(range(n_phrases))
    options = ["full", "repeat", "drop"] if n_phrases >= 3 else ["full", "repeat"] if n_phrases == 2 else ["full"]
    edit = str(rng.choice(options))
    if edit == "repeat":
        i = int(rng.integers(n_phrases))
        order.insert(i + 1, i)
    elif edit == "drop":
        order.pop(int(rng.integers(1, n_phrases - 1)))
    return edit, order


def base_tempo(score: Score, chorale: bool) -> float:
    """Quarter-note BPM of the plain performance: a chorale's marking if plausible, else
    80; for tunes, whose notation ranges from 1/4 to 1/32 units, a melody rate of 3.5
    notes per second."""
    if chorale:
        ok = score.tempo_bpm is not None and 50 <= score.tempo_bpm <= 120
        return float(score.tempo_bpm) if ok else 80.0
    density = len(score.melody()) / max(score.end, 1.0)  # notes per quarter
    return float(np.clip(60.0 * 3.5 / max(density, 0.1), 40.0, 480.0))


def apply_structure(notes, phrases, order) -> tuple[list[Note], float]:
    """Notes laid out phrase by phrase in ``order``; returns them and the total length."""
    out, cursor = [], 0.0
    for i in order:
        a, b = phrases[i]
        out += [Note(n.onset - a + cursor, n.dur, n.pitch, n.part) for n in notes if a - 1e-6 <= n.onset < b - 1e-6]
        cursor += b - a
    return out, cursor


# ---------------------------------------------------------------- one version

def arrange(score: Score, choice: VersionChoice, rng: np.random.Generator, *, chorale: bool = False,
            max_dur: float = 90.0, min_dur: float = 20.0) -> tuple[Performance, dict]:
    """The performance of one version and a description of it for the manifest."""
    tonic, mode = estimate_key(list(score.notes))
    roles = ["lead"] + ["inner"] * (score.n_parts - 2) + (["bass"] if chorale and score.n_parts > 1 else
                                                          ["inner"] if score.n_parts > 1 else [])
    pattern = None
    base = base_tempo(score, chorale)
    pulse = 1.0 if chorale else accompaniment_unit(score.beat, base)  # beat length in quarters
    if score.n_parts == 1:
        score = with_accompaniment(score, tonic, mode, choice.pattern, base)
        pattern, roles = choice.pattern, ["lead", "bass", "comp"]
    bpm = round(base * choice.tempo_factor, 1)
    spq = 60.0 / bpm

    phrases = phrase_bounds(score)
    edit, order = edit_structure(len(phrases), rng)
    length = sum(b - a for a, b in (phrases[i] for i in order))
    base_order, plays = list(order), 1
    while length * spq < min_dur and plays < 4:  # short tunes are played again
        order += base_order
        length += sum(b - a for a, b in (phrases[i] for i in base_order))
        plays += 1
    while length * spq > max_dur - 1.5 and len(order) > 1:
        a, b = phrases[order.pop()]
        length -= b - a
    notes, length = apply_structure(score.notes, phrases, order)

    shift = choice.transpose
    mel = [n.pitch for n in notes if n.part == 0] or [n.pitch for n in notes]
    centre = float(np.mean(mel)) + shift if mel else 70.0
    shift += -12 if centre > 80 else 12 if centre < 56 else 0

    ensemble = ENSEMBLES[choice.ensemble]
    programs = [int(rng.choice(ensemble[r])) for r in roles]
    channels = [min(i if i < 9 else i + 1, 15) for i in range(len(roles))]  # 9 is drums
    timed = []
    jitter: dict[tuple[int, float], float] = {}  # one timing offset per part and onset: chords stay together
    for n in notes:
        role = roles[n.part]
        pitch = n.pitch + shift
        while pitch < 28:
            pitch += 12
        while pitch > 108:
            pitch -= 12
        at = (n.part, round(n.onset, 6))
        if at not in jitter:
            jitter[at] = float(np.clip(rng.normal(0.0, 0.006), -0.012, 0.012))
        start = max(0.0, n.onset * spq + jitter[at])
        vel = int(np.clip(VELOCITY[role] + rng.normal(0.0, 5.0), 20, 127))
        timed.append(Timed(round(start, 4), round(max(n.dur * spq, 0.03), 4), pitch, vel, channels[n.part]))
    duration = min(length * spq + 1.5, max_dur)
    timed = [t for t in timed if t.start < duration - 0.5]
    levels = {c: round(LEVEL_DB[r] + float(rng.uniform(-2.0, 2.0)), 2) for c, r in zip(channels, roles)}
    perf = Performance(notes=timed, programs=dict(zip(channels, programs)), levels_db=levels, duration=duration)
    info = {
        "transpose": shift,
        "key": key_name(tonic + shift, mode),
        "tempo_bpm": round(bpm / pulse, 1),
        "beat_quarters": pulse,
        "tempo_factor": choice.tempo_factor,
        "ensemble": choice.ensemble,
        "programs": programs,
        "instruments": [GM_NAMES.get(p, f"program {p}") for p in programs],
        "accompaniment": pattern,
        "structure": edit,
        "plays": plays,
        "phrases": " ".join(str(i) for i in order),
        "n_phrases": len(phrases),
        "levels_db": [levels[c] for c in channels],
    }
    return perf, info
