"""Turn a :class:`Score` into one "cover": key, tempo, instrumentation, structure and, for
monophonic tunes, an accompaniment. Pure functions of the score and a numpy Generator."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import covers
from .covers import CoverStats, Segment
from .score import Note, Performance, Score, Timed, estimate_key, key_name

# General MIDI programs (0-based) per role, by timbre pool: the programs of the train pool
# and of the held-out pool come from different GM families, so val/test works sound
# through instruments no train work uses. Train: piano 0-7, guitar 24-31, bass 32-37,
# strings 40-47, ensemble 48-55, brass 56-63, pipe 72-79, synth pad 88-95, ethnic 104-111.
# Held-out: chromatic percussion 8-15, organ 16-23, reed 64-71, synth lead 80-87, synth
# bass 38-39. A version draws one program per part from one
# ensemble of its pool, or from the whole pool ("mixed").
POOL_ENSEMBLES: dict[str, dict[str, dict[str, tuple[int, ...]]]] = {
    "train": {
        "piano": {"lead": (0, 1, 2), "inner": (0, 1), "bass": (0, 1), "comp": (0, 1, 2)},
        "keys": {"lead": (4, 5, 6), "inner": (4, 5), "bass": (33, 34), "comp": (4, 5, 6, 7)},
        "guitar": {"lead": (24, 25, 26, 27, 29), "inner": (24, 25), "bass": (32, 33, 34), "comp": (24, 25, 26, 27)},
        "strings": {"lead": (40, 41, 44), "inner": (41, 48, 49), "bass": (42, 43), "comp": (45, 46, 48, 49)},
        "choir": {"lead": (52, 53), "inner": (52, 53), "bass": (52,), "comp": (50, 51, 52, 53)},
        "brass": {"lead": (56, 59, 61), "inner": (57, 60, 61), "bass": (57, 58), "comp": (61, 62, 63)},
        "pipes": {"lead": (72, 73, 74, 75, 79), "inner": (73, 74, 75), "bass": (32, 43), "comp": (46, 48, 25)},
        "pads": {"lead": (73, 40, 61, 4), "inner": (88, 89, 91), "bass": (35, 36), "comp": (88, 89, 90, 91, 93)},
        "ethnic": {"lead": (104, 105, 106, 107, 109, 110, 111), "inner": (104, 107, 110), "bass": (32, 35),
                   "comp": (105, 107, 108, 46)},
        "folk": {"lead": (110, 73, 74, 109, 105), "inner": (46, 24, 25), "bass": (32, 42, 43),
                 "comp": (46, 24, 25, 105)},
    },
    "heldout": {
        "organ": {"lead": (16, 17, 18, 19), "inner": (16, 19, 20), "bass": (16, 19), "comp": (16, 17, 19)},
        "reeds": {"lead": (64, 65, 66, 68, 71), "inner": (65, 66, 69, 71), "bass": (67, 70), "comp": (65, 66, 69, 71)},
        "mallets": {"lead": (8, 9, 11, 12, 13, 14), "inner": (11, 12), "bass": (38, 39), "comp": (8, 10, 11, 12, 15)},
        "synth": {"lead": (80, 81, 82, 83, 84, 85, 86, 87), "inner": (80, 81, 87), "bass": (38, 39),
                  "comp": (16, 18, 81)},
        "squeezebox": {"lead": (21, 22, 23), "inner": (21, 23), "bass": (19, 70), "comp": (21, 23)},
        "musicbox": {"lead": (10, 14, 15, 9), "inner": (8, 11), "bass": (38, 70), "comp": (10, 13, 15)},
    },
}
ROLES = ("lead", "inner", "bass", "comp")
# pitches a role may play (folded by octaves into the range); every program of a role
# sounds in TimGM6mb across it (tests/synthcovers/test_synth_covers.py checks)
ROLE_RANGE = {"lead": (36, 96), "inner": (36, 84), "bass": (28, 72), "comp": (36, 84)}
MIXED = "mixed"


def pool_programs(pool: str, role: str | None = None) -> tuple[int, ...]:
    """Every program of ``pool`` (for one ``role``, or all roles), sorted."""
    roles = ROLES if role is None else (role,)
    return tuple(sorted({p for ens in POOL_ENSEMBLES[pool].values() for r in roles for p in ens[r]}))


def ensemble_table(pool: str, ensemble: str) -> dict[str, tuple[int, ...]]:
    """Role -> programs of ``ensemble`` in ``pool``; ``mixed`` is the whole pool per role."""
    if ensemble == MIXED:
        return {r: pool_programs(pool, r) for r in ROLES}
    return POOL_ENSEMBLES[pool][ensemble]


GM_NAMES = (
    "acoustic grand piano", "bright acoustic piano", "electric grand piano", "honky-tonk piano",
    "electric piano 1", "electric piano 2", "harpsichord", "clavinet",
    "celesta", "glockenspiel", "music box", "vibraphone", "marimba", "xylophone", "tubular bells", "dulcimer",
    "drawbar organ", "percussive organ", "rock organ", "church organ", "reed organ", "accordion", "harmonica",
    "tango accordion",
    "nylon guitar", "steel guitar", "jazz guitar", "clean electric guitar", "muted electric guitar",
    "overdriven guitar", "distortion guitar", "guitar harmonics",
    "acoustic bass", "fingered bass", "picked bass", "fretless bass", "slap bass 1", "slap bass 2",
    "synth bass 1", "synth bass 2",
    "violin", "viola", "cello", "contrabass", "tremolo strings", "pizzicato strings", "orchestral harp", "timpani",
    "string ensemble 1", "string ensemble 2", "synth strings 1", "synth strings 2", "choir aahs", "voice oohs",
    "synth voice", "orchestra hit",
    "trumpet", "trombone", "tuba", "muted trumpet", "french horn", "brass section", "synth brass 1", "synth brass 2",
    "soprano sax", "alto sax", "tenor sax", "baritone sax", "oboe", "english horn", "bassoon", "clarinet",
    "piccolo", "flute", "recorder", "pan flute", "blown bottle", "shakuhachi", "whistle", "ocarina",
    "square lead", "sawtooth lead", "calliope lead", "chiff lead", "charang lead", "voice lead", "fifths lead",
    "bass + lead",
    "new age pad", "warm pad", "polysynth pad", "choir pad", "bowed pad", "metallic pad", "halo pad", "sweep pad",
    "rain", "soundtrack", "crystal", "atmosphere", "brightness", "goblins", "echoes", "sci-fi",
    "sitar", "banjo", "shamisen", "koto", "kalimba", "bagpipe", "fiddle", "shanai",
    "tinkle bell", "agogo", "steel drums", "woodblock", "taiko drum", "melodic tom", "synth drum", "reverse cymbal",
    "guitar fret noise", "breath noise", "seashore", "bird tweet", "telephone ring", "helicopter", "applause",
    "gunshot",
)
DOUBLING_PROB = 0.3
LEAD_OCTAVE_PROB = 0.3
PATTERNS = ("block", "pad", "arpeggio", "oompah", "alberti")
VELOCITY = {"lead": 100, "inner": 76, "bass": 84, "comp": 66, "double": 88}
LEVEL_DB = {"lead": 0.0, "inner": -5.0, "bass": -6.0, "comp": -7.0, "double": -4.0}  # RMS relative to the melody

# Diatonic triads (root offset, chord tones) from the tonic, with a prior preference.
_CHORDS = {
    "major": (("I", 0, (0, 4, 7), 0.30), ("V", 7, (7, 11, 2), 0.20), ("IV", 5, (5, 9, 0), 0.15),
              ("vi", 9, (9, 0, 4), 0.05), ("ii", 2, (2, 5, 9), 0.0)),
    "minor": (("i", 0, (0, 3, 7), 0.30), ("V", 7, (7, 11, 2), 0.20), ("iv", 5, (5, 8, 0), 0.15),
              ("VI", 8, (8, 0, 3), 0.05), ("III", 3, (3, 7, 10), 0.0)),
}


@dataclass(frozen=True)
class VersionChoice:
    """The choices that make versions of one work differ (drawn per work)."""

    transpose: int
    tempo_factor: float
    ensemble: str
    pattern: str
    pool: str = "train"


def work_choices(rng: np.random.Generator, n_versions: int, pool: str = "train", stats: CoverStats | None = None,
                 key_policy: str = "realistic") -> list[VersionChoice]:
    """Transpositions (:func:`synthcovers.covers.draw_transposes` under ``key_policy``) and
    tempi of the versions of a work; ensembles of ``pool`` (and ``mixed``) and
    accompaniment patterns rotate through a shuffled list."""
    stats = stats or CoverStats()
    transposes = covers.draw_transposes(rng, n_versions, stats, key_policy)
    tempi = [covers.draw_tempo(rng, stats) for _ in range(n_versions)]
    ensembles = [str(e) for e in rng.permutation(sorted(POOL_ENSEMBLES[pool]) + [MIXED])]
    patterns = [str(p) for p in rng.permutation(PATTERNS)]
    return [VersionChoice(transposes[v], tempi[v], ensembles[v % len(ensembles)],
                          patterns[v % len(patterns)], pool) for v in range(n_versions)]


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


def base_tempo(score: Score, chorale: bool) -> float:
    """Quarter-note BPM of the plain performance: a chorale's marking if plausible, else
    80; for tunes, whose notation ranges from 1/4 to 1/32 units, a melody rate of 3.5
    notes per second."""
    if chorale:
        ok = score.tempo_bpm is not None and 50 <= score.tempo_bpm <= 120
        return float(score.tempo_bpm) if ok else 80.0
    density = len(score.melody()) / max(score.end, 1.0)  # notes per quarter
    return float(np.clip(60.0 * 3.5 / max(density, 0.1), 40.0, 480.0))


def improvise(melody: list[Note], rng: np.random.Generator) -> list[Note]:
    """A new line in the rhythm of ``melody``: a random walk (0-2 steps a note) over the
    pitches the melody uses, so a solo sounds in the work's key but plays another tune."""
    pitches = sorted({n.pitch for n in melody})
    if not pitches:
        return []
    k = int(rng.integers(len(pitches)))
    out = []
    for n in melody:
        k = int(np.clip(k + rng.choice([-2, -1, 1, 2, 0], p=[0.15, 0.3, 0.3, 0.15, 0.1]), 0, len(pitches) - 1))
        out.append(Note(n.onset, n.dur, pitches[k], 0))
    return out


def lay_out(score: Score, segments: list[Segment], rng: np.random.Generator) -> tuple[list[Note], float]:
    """Notes of ``segments`` laid out back to back (see :class:`synthcovers.covers.Segment`:
    a score segment plays every part, an intro/outro the parts under the melody, a solo
    those plus :func:`improvise`); returns them and the total length in quarters."""
    out, cursor = [], 0.0
    melody = score.melody()
    for seg in segments:
        a, b = seg.start, seg.end
        inside = [n for n in score.notes if a - 1e-6 <= n.onset < b - 1e-6]
        if seg.kind != "score":
            inside = [n for n in inside if n.part != 0]
        if seg.kind == "solo":
            inside += improvise([n for n in melody if a - 1e-6 <= n.onset < b - 1e-6], rng)
        out += [Note(n.onset - a + cursor, n.dur, n.pitch, n.part) for n in inside]
        cursor += b - a
    return out, cursor


def fit_form(form: covers.Form, spq: float, min_dur: float, max_dur: float) -> tuple[list[Segment], int]:
    """The segments to play: the body played again (up to 4 times) while the version is
    shorter than ``min_dur`` s, then trailing segments dropped while it is longer than
    ``max_dur`` less the lead-in and a 1.5 s release (one score segment always stays)."""
    body, plays = list(form.body), 1
    extra = sum(s.length for s in (form.intro, form.outro) if s)
    while (sum(s.length for s in body) + extra) * spq < min_dur and plays < 4:
        body += form.body
        plays += 1
    segs = replace(form, body=tuple(body)).segments()
    budget = max_dur - 1.5 - form.lead_in_s
    while sum(s.length for s in segs) * spq > budget and sum(s.kind == "score" for s in segs[:-1]) >= 1:
        segs.pop()
    return segs, plays


# ---------------------------------------------------------------- instrumentation

def _lead_octave(lead: list[int], rng: np.random.Generator) -> int:
    """-1, 0 or +1: with probability LEAD_OCTAVE_PROB the melody moves an octave (the
    drawn direction, else the other) if it stays within the lead range and register."""
    if not lead or rng.random() >= LEAD_OCTAVE_PROB:
        return 0
    want = int(rng.choice([-1, 1]))
    lo, hi = ROLE_RANGE["lead"]
    centre = float(np.mean(lead))
    for k in (want, -want):
        if lo <= min(lead) + 12 * k and max(lead) + 12 * k <= hi and 52 <= centre + 12 * k <= 88:
            return k
    return 0


def _doubling(lead: list[int], lead_octave: int, lead_program: int, pool: str,
              rng: np.random.Generator) -> dict | None:
    """With probability DOUBLING_PROB, a second lead program of ``pool`` doubling the
    melody an octave up or down (whichever fits the lead range, the drawn one first)."""
    if not lead or rng.random() >= DOUBLING_PROB:
        return None
    program = int(rng.choice([p for p in pool_programs(pool, "lead") if p != lead_program]))
    want = int(rng.choice([-1, 1]))
    lo, hi = ROLE_RANGE["lead"]
    for k in (want, -want):
        if lo <= min(lead) + 12 * (lead_octave + k) and max(lead) + 12 * (lead_octave + k) <= hi:
            return {"program": program, "octave": k}
    return None


# ---------------------------------------------------------------- one version

def arrange(score: Score, choice: VersionChoice, rng: np.random.Generator, *, chorale: bool = False,
            max_dur: float = 90.0, min_dur: float = 20.0, stats: CoverStats | None = None) -> tuple[Performance, dict]:
    """The performance of one version and a description of it for the manifest; its
    structure is drawn from ``stats`` (:func:`synthcovers.covers.draw_form`)."""
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
    form = covers.draw_form(phrases, list(score.measure_starts), rng, stats or CoverStats())
    segments, plays = fit_form(form, spq, min_dur, max_dur)
    notes, length = lay_out(score, segments, rng)
    lead_in = form.lead_in_s

    shift = choice.transpose
    mel = [n.pitch for n in notes if n.part == 0] or [n.pitch for n in notes]
    centre = float(np.mean(mel)) + shift if mel else 70.0
    shift += -12 if centre > 80 else 12 if centre < 56 else 0

    table = ensemble_table(choice.pool, choice.ensemble)
    programs = [int(rng.choice(table[r])) for r in roles]
    lead = [n.pitch + shift for n in notes if n.part == 0]
    lead_octave = _lead_octave(lead, rng)
    doubling = _doubling(lead, lead_octave, programs[0], choice.pool, rng)
    parts = roles + (["double"] if doubling else [])
    channels = [min(i if i < 9 else i + 1, 15) for i in range(len(parts))]  # 9 is drums
    if doubling:
        notes = notes + [Note(n.onset, n.dur, n.pitch + 12 * doubling["octave"], len(roles))
                         for n in notes if n.part == 0]
    timed = []
    jitter: dict[tuple[int, float], float] = {}  # one offset per part and onset: chords stay together
    for n in notes:
        role = parts[n.part]
        pitch = n.pitch + shift + (12 * lead_octave if role in ("lead", "double") else 0)
        lo, hi = ROLE_RANGE["lead" if role == "double" else role]
        while pitch < lo:
            pitch += 12
        while pitch > hi:
            pitch -= 12
        at = (0 if role == "double" else n.part, round(n.onset, 6))  # a doubling plays with the lead
        if at not in jitter:
            jitter[at] = float(np.clip(rng.normal(0.0, 0.006), -0.012, 0.012))
        start = max(0.0, lead_in + n.onset * spq + jitter[at])
        vel = int(np.clip(VELOCITY[role] + rng.normal(0.0, 5.0), 20, 127))
        timed.append(Timed(round(start, 4), round(max(n.dur * spq, 0.03), 4), pitch, vel, channels[n.part]))
    duration = min(lead_in + length * spq + 1.5, max_dur)
    timed = [t for t in timed if t.start < duration - 0.5]
    levels = {c: round(LEVEL_DB[r] + float(rng.uniform(-2.0, 2.0)), 2) for c, r in zip(channels, parts)}
    all_programs = programs + ([doubling["program"]] if doubling else [])
    perf = Performance(notes=timed, programs=dict(zip(channels, all_programs)), levels_db=levels, duration=duration)
    info = {
        "transpose": shift,
        "key": key_name(tonic + shift, mode),
        "tempo_bpm": round(bpm / pulse, 1),
        "beat_quarters": pulse,
        "tempo_factor": choice.tempo_factor,
        "pool": choice.pool,
        "ensemble": choice.ensemble,
        "programs": programs,
        "instruments": [GM_NAMES[p] for p in programs],
        "lead_octave": lead_octave,
        "doubling": doubling and {**doubling, "instrument": GM_NAMES[doubling["program"]]},
        "accompaniment": pattern,
        "structure": "+".join(form.edits) or "full",
        "plays": plays,
        "phrases": " ".join(str(seg.phrase) for seg in segments),
        "n_phrases": len(phrases),
        # where the audio plays which part of the score (synthcovers.truth): a quarter lasts
        # 60 / quarter_bpm s (tempo_bpm counts beats of beat_quarters); after lead_in_s s of
        # silence the segments are laid out back to back, each the [start, end] quarters of
        # the source score it is made from, `segment_kinds` saying which play the work
        # ("score") and which are inserted (intro, solo, outro); the audio stops after dur_s
        "quarter_bpm": bpm,
        "lead_in_s": lead_in,
        "layout": [[round(seg.start, 6), round(seg.end, 6)] for seg in segments],
        "segment_kinds": [seg.kind for seg in segments],
        "levels_db": [levels[c] for c in channels],
    }
    return perf, info
