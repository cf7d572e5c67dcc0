"""Ground truth of time alignment between two versions of a demo-corpus work, and the
scoring of predicted alignments (issue 10) against it.

Every manifest record of :mod:`synthcovers.synth` says where its audio plays which part of
its source score (:func:`synthcovers.arrange.arrange`): ``layout`` lists the ``[start, end]``
quarter positions in the source score of each segment played, in playing order (repeats,
drops, extra plays and inserted material included), ``phrases`` the phrase each is made
from, ``segment_kinds`` whether it plays the work (``score``) or is inserted material
(``intro``/``outro``: the accompaniment alone, ``solo``: the accompaniment under a new
line), and ``quarter_bpm`` the rendering tempo. After ``lead_in_s`` seconds of silence the
segments are played back to back (notes move by at most 12 ms of onset jitter), so the
audio at ``t`` seconds plays score position ``start_j + (t - lead_in_s) / spq - cursor_j``
of the layout entry ``j`` whose span of playing time ``[cursor_j, cursor_j + end_j -
start_j)`` (quarters) holds ``(t - lead_in_s) / spq``, with ``spq = 60 / quarter_bpm``,
when that entry is a ``score`` segment; inserted material corresponds to nothing in
another version. The audio stops after ``dur_s`` seconds.

The feature stage's tempo copies (utt ``sp_<k>-<utt>``, ``aug: {"tempo": k}``) play the
source recording k times faster: time in the copy = source time / k.

Two versions of a work:

* playing the same source score (``source`` equal): the truth is exact: the content at
  ``t_a`` in a is the score position it plays, found in b wherever b plays it (nowhere
  when b drops that phrase, several times when b repeats it or plays the tune again);
* playing different member scores of the work (variants of one tune, or harmonizations of
  one chorale melody): with ``cross_source="phrase"`` (default) phrase i of a corresponds
  to phrase i of b, position within the phrase proportionally (linear in quarters), when
  both scores have the same number of phrases; otherwise, or with
  ``cross_source="none"``, the pair has no truth (:class:`NoTruth`). This is an
  approximation: on the quick corpus (seed 0, 400 works), against a note-level alignment
  (DTW) of the two scores' melodies, it is off by under 0.4 s at the median note for 90%
  or more of such pairs, and by over 1 s at the 90th-percentile note for 4-14% of them
  (by kind; times at the scores' base tempi; the 11% of pairs whose melodies the DTW
  could not align, mostly Essen variants, left out). ``cross_source="none"`` scores the
  exact pairs only.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from csi.io import tempo_copy

Record = Mapping[str, Any]
CROSS_SOURCE = ("phrase", "none")


class NoTruth(ValueError):
    """The two records have no known time correspondence (no layout, other works, or
    different source scores that cannot be matched phrase by phrase)."""


# ---------------------------------------------------------------- one record

def speed(rec: Record) -> float:
    """The tempo factor k of a feature-stage copy (``aug.tempo``, else the ``sp_<k>-``
    prefix of its utt); 1.0 for a rendered recording."""
    return tempo_copy.factor(rec)


def seconds_per_quarter(rec: Record) -> float:
    """Seconds per score quarter in the rendered recording (before any tempo copy):
    ``60 / quarter_bpm``; for records without it, ``tempo_bpm * beat_quarters`` (rounded
    in the manifest, so ~0.1% off)."""
    if rec.get("quarter_bpm"):
        return 60.0 / float(rec["quarter_bpm"])
    if rec.get("tempo_bpm"):
        return 60.0 / (float(rec["tempo_bpm"]) * float(rec.get("beat_quarters") or 1.0))
    raise NoTruth(f"{rec.get('utt')}: no quarter_bpm or tempo_bpm")


def segments(rec: Record) -> list[tuple[int, float, float, float, str]]:
    """``(phrase index, score start, score end, cursor, kind)`` per played segment, in
    playing order, the cursor being where it starts in playing time (quarters after the
    lead-in); ``kind`` is ``score`` for a segment that plays the work, else what was
    inserted (``intro``, ``solo``, ``outro``: no correspondence anywhere). Records without
    ``segment_kinds`` play the score throughout."""
    layout = rec.get("layout")
    if not layout:
        raise NoTruth(f"{rec.get('utt')}: the record has no layout (made before synthcovers recorded it)")
    order = [int(i) for i in str(rec.get("phrases", "")).split()]
    if len(order) != len(layout):
        order = [-1] * len(layout)  # phrase indices unknown: same-source mapping only
    kinds = rec.get("segment_kinds") or ["score"] * len(layout)
    if len(kinds) != len(layout):
        raise NoTruth(f"{rec.get('utt')}: segment_kinds has {len(kinds)} entries for {len(layout)} layout entries")
    out, cursor = [], 0.0
    for i, (a, b), kind in zip(order, layout, kinds):
        out.append((i, float(a), float(b), cursor, str(kind)))
        cursor += float(b) - float(a)
    return out


def duration(rec: Record) -> float:
    """Length of the recording in its own time (seconds): ``dur_s``, else the layout's."""
    if rec.get("dur_s") is not None:
        return float(rec["dur_s"])
    segs = segments(rec)
    played = segs[-1][3] + segs[-1][2] - segs[-1][1] if segs else 0.0
    return (played * seconds_per_quarter(rec) + float(rec.get("lead_in_s") or 0.0)) / speed(rec)


def score_position(rec: Record, t: float) -> tuple[int, float, float, float] | None:
    """What the recording plays at ``t`` seconds (its own time): ``(phrase index, score
    position, phrase score start, phrase score end)``; None in the lead-in, in inserted
    material (intro, solo, outro), after the last segment or past the end of the audio."""
    if t < 0 or t > duration(rec):
        return None
    q = (t * speed(rec) - float(rec.get("lead_in_s") or 0.0)) / seconds_per_quarter(rec)
    if q < 0:
        return None
    for i, a, b, cursor, kind in segments(rec):
        if cursor <= q < cursor + (b - a):
            return (i, a + (q - cursor), a, b) if kind == "score" else None
    return None


def times_of(rec: Record, phrase: int | None, pos: float) -> list[float]:
    """Every time (seconds, the recording's own time) at which it plays score position
    ``pos`` of its source, within phrase ``phrase`` (None: any phrase holding ``pos``)."""
    spq, k, lead = seconds_per_quarter(rec), speed(rec), float(rec.get("lead_in_s") or 0.0)
    end = duration(rec)
    out = []
    for i, a, b, cursor, kind in segments(rec):
        if kind == "score" and (phrase is None or i == phrase) and a <= pos < b:
            t = ((cursor + pos - a) * spq + lead) / k
            if t <= end:
                out.append(t)
    return out


# ---------------------------------------------------------------- two records

def _work(rec: Record):
    return rec.get("song", rec.get("work"))


def same_source(rec_a: Record, rec_b: Record) -> bool:
    return rec_a.get("source") == rec_b.get("source")


def check_pair(rec_a: Record, rec_b: Record, cross_source: str = "phrase") -> None:
    """Raise :class:`NoTruth` unless the two records have a defined time correspondence."""
    if cross_source not in CROSS_SOURCE:
        raise ValueError(f"cross_source must be one of {CROSS_SOURCE}, got {cross_source!r}")
    segments(rec_a), segments(rec_b)
    if _work(rec_a) != _work(rec_b):
        raise NoTruth(f"{rec_a.get('utt')} and {rec_b.get('utt')} are versions of different works")
    if same_source(rec_a, rec_b):
        return
    if cross_source == "none":
        raise NoTruth(f"{rec_a.get('utt')} and {rec_b.get('utt')} play different source scores")
    if rec_a.get("n_phrases") is None or rec_a.get("n_phrases") != rec_b.get("n_phrases"):
        raise NoTruth(f"{rec_a.get('utt')} and {rec_b.get('utt')} play scores with different phrase counts "
                      f"({rec_a.get('n_phrases')} and {rec_b.get('n_phrases')})")
    if any(s[0] < 0 for s in segments(rec_a) + segments(rec_b)):
        raise NoTruth(f"{rec_a.get('utt')} / {rec_b.get('utt')}: phrase indices do not match the layout")


def _phrase_span(rec: Record, phrase: int) -> tuple[float, float] | None:
    for i, a, b, _, kind in segments(rec):
        if kind == "score" and i == phrase:
            return a, b
    return None


def time_map(rec_a: Record, rec_b: Record, t_a: float, cross_source: str = "phrase") -> list[float]:
    """The true times (seconds in b, sorted) of the musical content at ``t_a`` seconds in
    a: empty when b does not play it (or a plays nothing at ``t_a``), several when b plays
    it more than once. Raises :class:`NoTruth` when the pair has no defined correspondence
    (see the module doc for ``cross_source``)."""
    check_pair(rec_a, rec_b, cross_source)
    at = score_position(rec_a, t_a)
    if at is None:
        return []
    phrase, pos, a0, a1 = at
    if same_source(rec_a, rec_b):
        return sorted(times_of(rec_b, None, pos))
    span = _phrase_span(rec_b, phrase)
    if span is None:
        return []
    b0, b1 = span
    return sorted(times_of(rec_b, phrase, b0 + (pos - a0) / (a1 - a0) * (b1 - b0)))


# ---------------------------------------------------------------- scoring predictions

def probe_times(dur_s: float, chunk_s: float) -> list[float]:
    """Centres of the chunks of ``chunk_s`` seconds every ``chunk_s / 2`` that fit in a
    recording of ``dur_s`` seconds (its middle when none fits)."""
    hop = chunk_s / 2
    n = int(math.floor((dur_s - chunk_s) / hop + 1e-9)) + 1 if dur_s >= chunk_s else 0
    return [hop + i * hop for i in range(n)] or [dur_s / 2]


def probe_agreement(alignment: Mapping[str, Any], rec_a: Record, rec_b: Record, chunk_s: float,
                    tol_s: float = 2.0, cross_source: str = "phrase") -> tuple[int, int]:
    """``(probes within tol_s, probes with a true correspondence in b)`` for the predicted
    map ``t_b = scale * t_a + shift_s`` at the :func:`probe_times` of a."""
    scale = 1.0 if alignment.get("scale") is None else float(alignment["scale"])
    shift = float(alignment["shift_s"])
    ok = n = 0
    for t in probe_times(duration(rec_a), chunk_s):
        truth = time_map(rec_a, rec_b, t, cross_source)
        if truth:
            n += 1
            pred = scale * t + shift
            ok += min(abs(pred - x) for x in truth) <= tol_s
    return ok, n


def score_alignment(alignment: Mapping[str, Any], rec_a: Record, rec_b: Record, chunk_s: float,
                    tol_s: float = 2.0, cross_source: str = "phrase") -> bool | None:
    """Whether the predicted map agrees with the truth within ``tol_s`` seconds (nearest
    true time) for at least half of the probe times of a that have a true correspondence
    in b; None when none has one, or when the pair has no truth at all (:class:`NoTruth`)."""
    try:
        ok, n = probe_agreement(alignment, rec_a, rec_b, chunk_s, tol_s, cross_source)
    except NoTruth:
        return None
    return None if n == 0 else 2 * ok >= n


def record_for(utt: str, records_by_utt: Mapping[str, Record]) -> Record | None:
    """The record of ``utt``; a tempo copy ``sp_<k>-<utt>`` missing from the manifest (a
    dataset.txt has only the rendered recordings) is made from its source's record."""
    if utt in records_by_utt:
        return records_by_utt[utt]
    parsed = tempo_copy.parse(utt)
    if parsed and parsed[1] in records_by_utt:
        k = parsed[0]
        src = dict(records_by_utt[parsed[1]])
        aug = {"tempo": k, **{key: v for key, v in (src.get("aug") or {}).items() if key != "tempo"}}
        dur = src.get("dur_s")
        return {**src, "utt": utt, "aug": aug, **({"dur_s": round(float(dur) / k, 3)} if dur is not None else {})}
    return None


def _share(ok: int, n: int) -> float | None:
    return round(ok / n, 4) if n else None


def accuracy_table(alignments: Iterable[Mapping[str, Any]], records_by_utt: Mapping[str, Record],
                   chunk_s: float, tol_s: float = 2.0, buckets: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.01),
                   cross_source: str = "phrase") -> dict:
    """Score every alignment (:func:`score_alignment`) and tabulate: per confidence bucket
    ``[lo, hi)`` the pairs scored and the share within tolerance, the same overall, by
    same/different source score, and the pairs that could not be scored (no truth, unknown
    utt, no prediction)."""
    edges = [float(x) for x in buckets]
    rows = [{"lo": lo, "hi": hi, "scored": 0, "ok": 0} for lo, hi in zip(edges, edges[1:])]
    total = {"scored": 0, "ok": 0}
    pairing = {"same_source": {"scored": 0, "ok": 0}, "cross_source": {"scored": 0, "ok": 0}}
    skipped = {"no_truth": 0, "unknown_utt": 0, "no_prediction": 0, "outside_buckets": 0}
    for al in alignments:
        rec_a = record_for(str(al.get("utt_a")), records_by_utt)
        rec_b = record_for(str(al.get("utt_b")), records_by_utt)
        if rec_a is None or rec_b is None:
            skipped["unknown_utt"] += 1
            continue
        if al.get("shift_s") is None:
            skipped["no_prediction"] += 1
            continue
        good = score_alignment(al, rec_a, rec_b, chunk_s, tol_s, cross_source)
        if good is None:
            skipped["no_truth"] += 1
            continue
        for tally in (total, pairing["same_source" if same_source(rec_a, rec_b) else "cross_source"]):
            tally["scored"] += 1
            tally["ok"] += int(good)
        conf = al.get("confidence")
        row = next((r for r in rows if conf is not None and r["lo"] <= float(conf) < r["hi"]), None)
        if row is None:
            skipped["outside_buckets"] += 1
        else:
            row["scored"] += 1
            row["ok"] += int(good)
    for tally in (total, *pairing.values(), *rows):
        tally["share"] = _share(tally["ok"], tally["scored"])
    return {"chunk_s": chunk_s, "tol_s": tol_s, "cross_source": cross_source, "overall": total,
            "by_pairing": pairing, "buckets": rows, "not_scored": skipped}
