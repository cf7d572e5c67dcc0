"""music21 score -> :class:`Score` (plain note lists): parts, repeats played out, ties
merged, fermatas, bars, beat and tempo."""
from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .score import Note, Score
from .sources import abc_tunes, corpus_root, read_text, satb_parts

SCORE_CACHE_VERSION = 1
_score_dir: Path | None = None  # on-disk Score cache, set by :func:`set_score_cache`


def set_score_cache(path: str | os.PathLike | None) -> None:
    """Keep extracted Scores as JSON in ``path`` (None: memory only). A warm cache means
    no music21 parse at all; the files are a pure function of the corpus and this code."""
    global _score_dir
    _score_dir = Path(path) if path else None
    if _score_dir is not None:
        _score_dir.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=64)
def load_score(source: str) -> Score:
    """The :class:`Score` of ``source``: from the on-disk cache, else parsed with music21."""
    path = _score_dir / f"{hashlib.sha1(source.encode()).hexdigest()[:24]}.json" if _score_dir else None
    if path is not None and path.exists():
        try:
            return score_from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged entry is parsed again
    score = parse_score(source)
    if path is not None:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(score_to_json(score), f, separators=(",", ":"))
        os.replace(tmp, path)
    return score


def parse_score(source: str) -> Score:
    """Parse ``source`` with music21 and return it as a :class:`Score`."""
    from music21 import converter

    rel, _, ordinal = source.partition(":")
    path = corpus_root() / rel
    if ordinal:
        tunes = abc_tunes(read_text(path))
        with _no_beaming():
            parsed = converter.parse(tunes[int(ordinal) - 1], format="abc")
    else:
        parsed = converter.parse(path)
    return score_from_music21(parsed, source, satb_only=rel.startswith("bach/"))


@contextlib.contextmanager
def _no_beaming():
    """music21's ABC import beams every part (half its parse time); beams are notation
    only and never reach a Score, so they are skipped while parsing, in this process."""
    from music21 import stream

    original = stream.Stream.makeBeams

    def no_beams(self, *, inPlace=False, **kwargs):  # noqa: N803 (music21's keyword)
        return None if inPlace else self

    stream.Stream.makeBeams = no_beams
    try:
        yield
    finally:
        stream.Stream.makeBeams = original


def score_to_json(score: Score) -> dict:
    return {"source": score.source, "title": score.title,
            "notes": [[n.onset, n.dur, n.pitch, n.part] for n in score.notes],
            "part_names": list(score.part_names), "measure_starts": list(score.measure_starts),
            "phrase_ends": list(score.phrase_ends), "beat": score.beat, "tempo_bpm": score.tempo_bpm}


def score_from_json(d: dict) -> Score:
    return Score(source=d["source"], title=d["title"],
                 notes=tuple(Note(float(o), float(du), int(p), int(pt)) for o, du, p, pt in d["notes"]),
                 part_names=tuple(d["part_names"]), measure_starts=tuple(float(x) for x in d["measure_starts"]),
                 phrase_ends=tuple(float(x) for x in d["phrase_ends"]), beat=float(d["beat"]),
                 tempo_bpm=None if d["tempo_bpm"] is None else float(d["tempo_bpm"]))


def score_from_music21(parsed, source: str, satb_only: bool = False) -> Score:
    """Note lists of a music21 Score/Part: repeats (with 1st/2nd endings) played out, ties
    merged, chord symbols and grace notes dropped; fermatas in part 0 mark phrase ends."""
    from music21 import bar, meter, spanner, tempo

    parts = list(getattr(parsed, "parts", [])) or [parsed]
    if satb_only:
        picked = [p for _, p in satb_parts([(p.partName or "", p) for p in parts])]
        parts = picked if len(picked) == 4 else parts
    measures = list(parts[0].getElementsByClass("Measure"))
    starts = [float(m.offset) for m in measures] or [0.0]
    if measures:
        ends = starts[1:] + [starts[-1] + float(measures[-1].duration.quarterLength)]
        endings: dict[int, set[int]] = {}
        index = {id(m): i for i, m in enumerate(measures)}
        for rb in parts[0].spannerBundle.getByClass(spanner.RepeatBracket):
            for m in rb.getSpannedElements():
                if id(m) in index:
                    endings.setdefault(index[id(m)], set()).update(rb.numberRange or [])
        marks = [RepeatMarks(isinstance(m.leftBarline, bar.Repeat),
                             isinstance(m.rightBarline, bar.Repeat),
                             int(getattr(m.rightBarline, "times", None) or 2),
                             frozenset(endings.get(i, ()))) for i, m in enumerate(measures)]
        order = play_order(marks)
    else:
        ends, order = [float(parsed.highestTime)], [0]
    # new onset of each played measure
    new_starts, t = [], 0.0
    for i in order:
        new_starts.append(t)
        t += ends[i] - starts[i]

    notes, names, fermatas = [], [], []
    for part in parts:
        idx = len(names)
        raw = _part_notes(part, idx, fermatas if idx == 0 else None)
        if not raw:
            continue
        names.append(part.partName or f"part{idx}")
        for onset, dur, pitch in raw:
            m = max(0, bisect.bisect_right(starts, onset + 1e-9) - 1)
            for k, i in enumerate(order):
                if i == m:
                    notes.append(Note(new_starts[k] + onset - starts[m], dur, pitch, idx))
    phrase_ends = sorted({new_starts[k] + f - starts[i] for f in fermatas for k, i in enumerate(order)
                          if starts[i] < f <= ends[i] + 1e-9})
    first = parts[0]
    ts = first.recurse().getElementsByClass(meter.TimeSignature).first()
    mm = first.recurse().getElementsByClass(tempo.MetronomeMark).first()
    bpm = mm.getQuarterBPM() if mm is not None and mm.number else None
    title = (parsed.metadata.title if getattr(parsed, "metadata", None) is not None else None) or ""
    score = Score(source=source, title=str(title), notes=(), part_names=tuple(names),
                  measure_starts=tuple(new_starts), phrase_ends=tuple(phrase_ends),
                  beat=float(ts.beatDuration.quarterLength) if ts is not None else 1.0,
                  tempo_bpm=float(bpm) if bpm else None)
    return score.with_notes(notes)


def _part_notes(part, idx: int, fermatas: list | None) -> list[tuple[float, float, int]]:
    """(onset, duration, pitch) of a part with tied notes merged."""
    from music21 import expressions, harmony

    out: list[list] = []
    open_ties: dict[int, int] = {}  # pitch -> index in out
    for n in part.flatten().notes:
        if isinstance(n, harmony.Harmony) or n.quarterLength <= 0:
            continue
        onset, dur = float(n.offset), float(n.quarterLength)
        tie = n.tie.type if n.tie is not None else None
        for p in n.pitches:
            midi = int(p.midi)
            if not 0 <= midi <= 127:
                continue
            j = open_ties.get(midi)
            if tie in ("stop", "continue") and j is not None and abs(out[j][0] + out[j][1] - onset) < 1e-6:
                out[j][1] += dur
                if tie == "stop":
                    del open_ties[midi]
            else:
                out.append([onset, dur, midi])
                if tie in ("start", "continue"):
                    open_ties[midi] = len(out) - 1
        if fermatas is not None and any(isinstance(e, expressions.Fermata) for e in n.expressions):
            fermatas.append(onset + dur)
    return [tuple(x) for x in out]


@dataclass(frozen=True)
class RepeatMarks:
    """Repeat signs of one measure: ``|:`` on the left, ``:|`` on the right (played
    ``times`` in all) and the volta numbers (1st/2nd ending) it belongs to."""

    start: bool = False
    end: bool = False
    times: int = 2
    endings: frozenset = frozenset()


def play_order(marks: list[RepeatMarks]) -> list[int]:
    """Measure indices in performance order: simple repeats with 1st/2nd endings (no
    D.C./segno); an end repeat without a start goes back to the previous section."""
    order: list[int] = []
    i, section, pass_no, jumped, in_volta = 0, 0, 1, False, False
    jumps: dict[int, int] = {}
    while i < len(marks) and len(order) < 4 * len(marks):
        m = marks[i]
        if m.start and not jumped:
            section, pass_no = i, 1
        if not m.endings and in_volta and pass_no > 1:
            section, pass_no = i, 1  # past the last ending: a new section starts
        jumped, in_volta = False, bool(m.endings)
        if m.endings and pass_no not in m.endings:
            i += 1
            continue
        order.append(i)
        if m.end and jumps.get(i, 0) < m.times - 1:
            jumps[i] = jumps.get(i, 0) + 1
            i, pass_no, jumped, in_volta = section, pass_no + 1, True, False
            continue
        if m.end and not m.endings:
            section, pass_no = i + 1, 1
        i += 1
    return order
