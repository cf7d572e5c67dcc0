"""How the versions of a demo work differ: the cover statistics the arranger draws from.

Key, tempo and structure of each version are drawn from :class:`CoverStats`. The numbers
are documented where they come from. No published distribution of transpositions, tempo
ratios or structural edits between the versions of a work could be consulted for this
corpus (the Da-TACOS "cover analysis" subset ships features, not these statistics); the
kinds of change are those that Serrà, Gómez & Herrera (2010, "Audio cover song
identification and similarity: background, approaches, evaluation, and beyond", in
*Advances in Music Information Retrieval*, §2) list as what distinguishes covers — key
(often kept, transposed to suit a singer's range otherwise), tempo, and structure:
added or removed introductions and outros, repeated or skipped sections, inserted solos
and bridges. The values below are **assumptions** chosen to be plausible, and are
labelled so; :func:`describe` prints them, and the tests check that a rendered corpus
follows them.

Two key policies:

* ``realistic`` (the default, train, val and the main test split): version 0 is the
  "original" in the score's key; every other version keeps that key with probability
  ``same_key_prob`` and is otherwise moved by an interval drawn from ``transpose_weights``
  (small steps and fourths/fifths, the moves a singer's range asks for, are likelier);
* ``distinct`` (the hard test split): every version of a work in a different key, drawn
  without replacement from -5..+6 semitones (the corpus before issue 20).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

KEY_POLICIES = ("realistic", "distinct")
DISTINCT_TRANSPOSES = tuple(range(-5, 7))
SEGMENT_KINDS = ("score", "intro", "solo", "outro")  # "score": plays the work; the rest: inserted material


def _default_transpose_weights() -> dict[int, float]:
    # assumption: semitone and whole-tone moves and fourths/fifths most often, tritone rarely
    return {-5: 1.5, -4: 1.0, -3: 1.5, -2: 2.5, -1: 2.0, 1: 2.0, 2: 2.5, 3: 1.5, 4: 1.0, 5: 1.5, 6: 0.5}


@dataclass(frozen=True)
class CoverStats:
    """The distributions of how versions differ (see the module doc for sources)."""

    same_key_prob: float = 0.5            # assumption: half the covers keep the original key
    transpose_weights: dict[int, float] = field(default_factory=_default_transpose_weights)
    tempo_log_sd: float = 0.12            # assumption: tempo ratio exp(N(0, 0.12)): 68 % within ±13 %
    tempo_range: tuple[float, float] = (0.7, 1.4)
    lead_in_s: tuple[float, float] = (0.0, 2.5)  # assumption: silence before the music, uniform
    intro_prob: float = 0.5               # assumption: an instrumental intro of 1-4 bars
    outro_prob: float = 0.4               # assumption: an instrumental outro (vamp) of 1-4 bars
    bars: tuple[int, int] = (1, 4)
    solo_prob: float = 0.3                # assumption: an inserted instrumental solo / bridge
    repeat_prob: float = 0.3              # assumption: one phrase played twice
    drop_prob: float = 0.25               # assumption: one inner phrase left out


def describe(stats: CoverStats) -> dict:
    """The statistics as a plain dict (for the corpus's run record)."""
    out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(stats).items()}
    out["transpose_weights"] = {str(k): v for k, v in sorted(stats.transpose_weights.items())}
    return out


def draw_transposes(rng: np.random.Generator, n_versions: int, stats: CoverStats,
                    policy: str = "realistic") -> list[int]:
    """Semitone moves of the ``n_versions`` versions from the score's key."""
    if policy == "distinct":
        return [int(x) for x in rng.choice(DISTINCT_TRANSPOSES, size=n_versions, replace=False)]
    if policy != "realistic":
        raise ValueError(f"key policy must be one of {KEY_POLICIES}, got {policy!r}")
    steps = sorted(stats.transpose_weights)
    p = np.array([stats.transpose_weights[s] for s in steps], dtype=float)
    p /= p.sum()
    out = [0]
    for _ in range(1, n_versions):
        out.append(0 if rng.random() < stats.same_key_prob else int(rng.choice(steps, p=p)))
    return out


def draw_tempo(rng: np.random.Generator, stats: CoverStats) -> float:
    """A version's tempo factor from the score's base tempo (two decimals)."""
    lo, hi = stats.tempo_range
    return round(float(np.clip(np.exp(rng.normal(0.0, stats.tempo_log_sd)), lo, hi)), 2)


@dataclass(frozen=True)
class Segment:
    """One stretch of a version in playing order: ``kind`` (:data:`SEGMENT_KINDS`), the
    phrase of the score it is made from, and its span ``[start, end)`` in score quarters.
    A ``score`` segment plays the span; an ``intro``/``outro`` plays only its accompaniment
    (the parts under the melody); a ``solo`` its accompaniment under a new melodic line."""

    kind: str
    phrase: int
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Form:
    """A version's structure: the segments played, the edit names and the lead-in."""

    body: tuple[Segment, ...]
    intro: Segment | None
    outro: Segment | None
    edits: tuple[str, ...]
    lead_in_s: float

    def segments(self) -> list[Segment]:
        return ([self.intro] if self.intro else []) + list(self.body) + ([self.outro] if self.outro else [])


def _bars_span(measures: list[float], start: float, end: float, n_bars: int, from_end: bool) -> tuple[float, float]:
    """``n_bars`` whole bars (at most the phrase) at the start or end of ``[start, end)``."""
    inside = [m for m in measures if start - 1e-6 <= m < end - 1e-6] or [start]
    bar = min((b - a for a, b in zip(inside, inside[1:] + [end]) if b - a > 1e-6), default=end - start)
    span = min(n_bars * bar, end - start)
    return (end - span, end) if from_end else (start, start + span)


def draw_form(phrases: list[tuple[float, float]], measures: list[float], rng: np.random.Generator,
              stats: CoverStats) -> Form:
    """Phrase edits (repeat, drop), an inserted solo, an intro and an outro, and the lead-in,
    each drawn with its probability in ``stats``."""
    n = len(phrases)
    order = list(range(n))
    edits = []
    if n >= 2 and rng.random() < stats.repeat_prob:
        i = int(rng.integers(n))
        order.insert(order.index(i) + 1, i)
        edits.append("repeat")
    if n >= 3 and rng.random() < stats.drop_prob:
        inner = [k for k in range(1, len(order) - 1) if order.count(order[k]) == 1 and 0 < order[k] < n - 1]
        if inner:
            order.pop(int(rng.choice(inner)))
            edits.append("drop")
    body = [Segment("score", i, *phrases[i]) for i in order]
    if n >= 2 and rng.random() < stats.solo_prob:
        j = int(rng.integers(n))
        at = int(rng.integers(1, len(body) + 1))
        body.insert(at, Segment("solo", j, *phrases[j]))
        edits.append("solo")
    intro = outro = None
    if rng.random() < stats.intro_prob:
        a, b = _bars_span(measures, *phrases[0], int(rng.integers(stats.bars[0], stats.bars[1] + 1)), False)
        intro = Segment("intro", 0, a, b)
        edits.append("intro")
    if rng.random() < stats.outro_prob:
        a, b = _bars_span(measures, *phrases[-1], int(rng.integers(stats.bars[0], stats.bars[1] + 1)), True)
        outro = Segment("outro", n - 1, a, b)
        edits.append("outro")
    lead_in = round(float(rng.uniform(*stats.lead_in_s)), 3)
    return Form(tuple(body), intro, outro, tuple(edits), lead_in)


def measure(records: list[dict]) -> dict:
    """The statistics of rendered records (one split), to set beside :func:`describe`:
    versions (after each work's first) in the first version's key, pairs of versions in the
    same key, the tempo factors' log standard deviation, the share of versions with each
    edit, and the mean lead-in."""
    by_work: dict = {}
    for r in records:
        by_work.setdefault(r["song"], []).append(r)
    later = same_first = pairs = same_pair = 0
    for recs in by_work.values():
        keys = [int(r["transpose"]) % 12 for r in recs]
        later += len(keys) - 1
        same_first += sum(k == keys[0] for k in keys[1:])
        for i in range(len(keys)):
            for j in range(i + 1, len(keys)):
                pairs += 1
                same_pair += keys[i] == keys[j]
    n = max(len(records), 1)
    edits = {e: round(sum(e in str(r.get("structure", "")).split("+") for r in records) / n, 4)
             for e in ("repeat", "drop", "solo", "intro", "outro")}
    tempi = np.log([float(r["tempo_factor"]) for r in records]) if records else np.zeros(1)
    return {"versions": len(records), "works": len(by_work),
            "same_key_as_first": round(same_first / later, 4) if later else None,
            "same_key_pairs": round(same_pair / pairs, 4) if pairs else None,
            "tempo_log_sd": round(float(np.std(tempi)), 4),
            "edit_share": edits,
            "lead_in_s_mean": round(float(np.mean([float(r.get("lead_in_s") or 0) for r in records] or [0])), 3)}
