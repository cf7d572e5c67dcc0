"""Plain score data: note lists in quarter notes, independent of music21.

A :class:`Score` is what the corpus reader extracts from a music21 score; arrangement and
rendering work only on these lists, so they are fast and testable without music21.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Note:
    """One note: onset and duration in quarter notes, MIDI pitch, part index (0 = melody)."""

    onset: float
    dur: float
    pitch: int
    part: int


@dataclass(frozen=True)
class Score:
    """A piece as note lists plus the little structure the arranger needs.

    ``measure_starts`` are bar onsets (quarters, a pickup bar included), ``phrase_ends``
    are phrase boundaries from fermatas (empty when the score has none), ``beat`` is the
    beat length in quarters (1.5 in 6/8).
    """

    source: str
    title: str
    notes: tuple[Note, ...]
    part_names: tuple[str, ...]
    measure_starts: tuple[float, ...]
    phrase_ends: tuple[float, ...] = ()
    beat: float = 1.0
    tempo_bpm: float | None = None

    @property
    def n_parts(self) -> int:
        return len(self.part_names)

    @property
    def end(self) -> float:
        """Onset of silence after the last note (quarters)."""
        return max((n.onset + n.dur for n in self.notes), default=0.0)

    def melody(self) -> list[Note]:
        """Part 0 as a monophonic line: the highest note at each onset."""
        best: dict[float, Note] = {}
        for n in self.notes:
            if n.part == 0 and (n.onset not in best or n.pitch > best[n.onset].pitch):
                best[n.onset] = n
        return [best[t] for t in sorted(best)]

    def with_notes(self, notes, part_names=None) -> "Score":
        return replace(self, notes=tuple(sorted(notes, key=note_order)),
                       part_names=tuple(part_names) if part_names is not None else self.part_names)


def note_order(n: Note) -> tuple:
    return (n.onset, n.part, n.pitch, n.dur)


def melody_intervals(notes: list[Note], collapse_repeats: bool = True) -> list[int]:
    """Successive pitch intervals of a melody (repeated pitches merged when asked)."""
    pitches = [n.pitch for n in notes]
    if collapse_repeats:
        pitches = [p for i, p in enumerate(pitches) if i == 0 or p != pitches[i - 1]]
    return [b - a for a, b in zip(pitches, pitches[1:])]


def similarity(a: list[int], b: list[int]) -> float:
    """1 - normalised Levenshtein distance between two symbol sequences (1.0 = equal)."""
    if not a and not b:
        return 1.0
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a):
        cur = [i + 1]
        for j, y in enumerate(b):
            cur.append(min(prev[j + 1] + 1, cur[j] + 1, prev[j] + (x != y)))
        prev = cur
    return 1.0 - prev[-1] / max(len(a), len(b))


# Krumhansl-Kessler key profiles (probe-tone ratings), tonic first.
_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def estimate_key(notes: list[Note]) -> tuple[int, str]:
    """(tonic pitch class, "major"|"minor") by correlating a duration-weighted pitch-class
    histogram with the Krumhansl-Kessler profiles; among near ties the key whose tonic is
    the last melody note wins (folk tunes end on the tonic)."""
    hist = np.zeros(12)
    for n in notes:
        hist[n.pitch % 12] += n.dur
    if not hist.any():
        return 0, "major"
    scores = []
    for mode, prof in (("major", _MAJOR), ("minor", _MINOR)):
        for tonic in range(12):
            r = float(np.corrcoef(hist, np.roll(prof, tonic))[0, 1]) if hist.std() > 0 else 0.0
            scores.append((r, tonic, mode))
    scores.sort(key=lambda s: (-s[0], s[1], s[2]))
    mel = [n for n in notes if n.part == 0] or list(notes)
    last = max(mel, key=lambda n: (n.onset, n.pitch)).pitch % 12
    for r, tonic, mode in scores:
        if r < scores[0][0] - 0.1:
            break
        if tonic == last:
            return tonic, mode
    return scores[0][1], scores[0][2]


def key_name(tonic: int, mode: str) -> str:
    return f"{PITCH_NAMES[tonic % 12]} {mode}"


@dataclass
class Timed:
    """A rendered note: start and duration in seconds, MIDI pitch and velocity, channel."""

    start: float
    dur: float
    pitch: int
    velocity: int
    channel: int


@dataclass
class Performance:
    """Everything the renderer needs: timed notes, GM program and RMS level (dB, relative)
    per channel, total duration in seconds."""

    notes: list[Timed]
    programs: dict[int, int]
    levels_db: dict[int, float] = field(default_factory=dict)
    duration: float = 0.0
