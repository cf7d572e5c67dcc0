"""JSONL manifests, the CoverHunter ``dataset.txt`` format.

One recording per line::

    {"utt": "...", "wav": "path", "dur_s": 316.7, "song": "<work>", "version": "<performance>"}

Later stages add ``song_id``, ``version_id``, ``feat`` and ``feat_len``; keys this module
does not know are kept as they are, in their order.

CoverHunterMPS (github alanngnet/CoverHunterMPS) writes the same lines with three fields
renamed — ``perf`` (the recording), ``work`` and ``work_id`` — and its intermediate files
carry ``dur_ms`` instead of ``dur_s``. :func:`read_manifest` reads them as csi's ``utt``,
``song``, ``song_id`` and ``dur_s`` (:data:`MPS_FIELDS`; one log line a file says so), so
its ``dataset.txt`` and ``full.txt`` are accepted as they are. A name is read so only where
csi's own is absent, so a line that has both keeps both (a csi or CoverHunter manifest reads
exactly as before). Manifests are always written with csi's names.
"""
from __future__ import annotations

import json
import logging
import os
import random
from collections import OrderedDict
from typing import Iterable, Sequence

from csi.io import tempo_copy
from csi.utils import atomic_write_text  # noqa: F401  (re-exported: many modules import it from here)

Record = dict

REQUIRED_KEYS = ("utt", "wav", "song")

# CoverHunterMPS's manifest field -> csi's (the same meaning; CoverHunterMPS tools/extract_csi_features.py)
MPS_FIELDS = {"perf": "utt", "work": "song", "work_id": "song_id"}

log = logging.getLogger("csi.io.manifest")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and line."""


def read_manifest(path: str | os.PathLike, required: Sequence[str] = REQUIRED_KEYS) -> list[Record]:
    """Read a JSONL manifest; blank lines are ignored.

    CoverHunterMPS's field names are read as csi's (module docstring). Raises ManifestError
    naming ``path:line`` for a malformed line, a line without a required key, or an ``utt``
    seen before.
    """
    records: list[Record] = []
    first_line_of: dict[str, int] = {}
    mapped: dict[str, int] = {}          # "perf -> utt": lines read with that CoverHunterMPS name
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(line, object_pairs_hook=OrderedDict)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(rec, dict):
                raise ManifestError(f"{where}: expected a JSON object, got {type(rec).__name__}")
            rec = _csi_field_names(rec, where, mapped)
            missing = [k for k in required if k not in rec]
            if missing:
                raise ManifestError(f"{where}: missing key(s) {', '.join(_with_mps_name(k) for k in missing)}")
            utt = rec.get("utt")
            if utt is not None:
                if utt in first_line_of:
                    raise ManifestError(
                        f"{where}: duplicate utt {utt!r} (first seen on line {first_line_of[utt]})")
                first_line_of[utt] = lineno
            records.append(rec)
    if mapped:
        log.info("%s: CoverHunterMPS field names read as csi's: %s", path,
                 ", ".join(f"{rename} ({n} lines)" for rename, n in mapped.items()))
    return records


def _csi_field_names(rec: OrderedDict, where: str, mapped: dict[str, int]) -> dict:
    """``rec`` with CoverHunterMPS's field names (:data:`MPS_FIELDS`, ``dur_ms``) as csi's, in
    their places, each only where csi's own name is absent (a line that has both keeps both, as
    any unknown key is kept); counts each renaming in ``mapped``."""
    renames = {k: v for k, v in MPS_FIELDS.items() if k in rec and v not in rec}
    if "dur_ms" in rec and "dur_s" not in rec:
        renames["dur_ms"] = "dur_s"
    if not renames:
        return dict(rec)
    out: dict = {}
    for key, value in rec.items():
        ours = renames.get(key)
        if ours is None:
            out[key] = value
            continue
        if key == "dur_ms":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ManifestError(f"{where}: dur_ms: expected a number of milliseconds, got {value!r}")
            value = value / 1000.0
        out[ours] = value
        rename = f"{key} -> {ours}" if key != "dur_ms" else "dur_ms -> dur_s (/ 1000)"
        mapped[rename] = mapped.get(rename, 0) + 1
    return out


def _with_mps_name(key: str) -> str:
    """``key``, with its CoverHunterMPS name when it has one (for messages)."""
    theirs = [k for k, v in MPS_FIELDS.items() if v == key]
    return f"{key} (or CoverHunterMPS's {theirs[0]})" if theirs else key


def check_unique_utts(records: Iterable[Record], what: str = "manifest") -> None:
    """Raise ManifestError if two records share an ``utt``."""
    seen: set[str] = set()
    for rec in records:
        if rec["utt"] in seen:
            raise ManifestError(f"{what}: duplicate utt {rec['utt']!r}")
        seen.add(rec["utt"])


def write_manifest(path: str | os.PathLike, records: Iterable[Record]) -> None:
    """Write records as JSON lines, atomically (temporary file in the same directory, then rename).

    Duplicate ``utt`` values are an error and leave any existing file untouched.
    """
    records = list(records)
    check_unique_utts(records, what=str(path))
    lines = "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records)
    atomic_write_text(path, lines)


def works_of(records: Iterable[Record]) -> dict[str, list[Record]]:
    """Group records by work (``song``), keeping first-seen order."""
    groups: dict[str, list[Record]] = {}
    for rec in records:
        groups.setdefault(rec["song"], []).append(rec)
    return groups


def split_by_work(records: Sequence[Record], fractions: dict[str, float],
                  seed: int = 0) -> dict[str, list[Record]]:
    """Split records into named subsets so that no work is in two of them.

    ``fractions`` maps subset name to its share of the works (normalised to 1); works are
    shuffled with ``seed`` after sorting by name, so the split depends only on the set of
    works and the seed. Each subset keeps the input order of its records.
    """
    if not fractions or any(v < 0 for v in fractions.values()) or sum(fractions.values()) <= 0:
        raise ValueError(f"bad split fractions {fractions}")
    works = sorted(works_of(records))
    random.Random(seed).shuffle(works)
    total = sum(fractions.values())
    names = list(fractions)
    assignment: dict[str, str] = {}
    start, acc = 0, 0.0
    for i, name in enumerate(names):
        acc += fractions[name] / total
        end = len(works) if i == len(names) - 1 else round(acc * len(works))
        for work in works[start:end]:
            assignment[work] = name
        start = end
    out: dict[str, list[Record]] = {name: [] for name in names}
    for rec in records:
        out[assignment[rec["song"]]].append(rec)
    return out


def query_ref_split(records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
    """Queries and references for a work-level protocol: the first version of each work
    (in ``version`` order) queries the other versions. Works with a single version are
    references only (distractors)."""
    queries: list[Record] = []
    refs: list[Record] = []
    for versions in works_of(records).values():
        ordered = sorted(versions, key=lambda r: str(r.get("version", r["utt"])))
        if len(ordered) >= 2:
            queries.append(ordered[0])
            refs.extend(ordered[1:])
        else:
            refs.extend(ordered)
    return queries, refs


def source_utt(utt: str) -> str:
    """The recording an augmented utt came from: ``sp_0.8-abc`` → ``abc`` (csi.io.tempo_copy)."""
    return tempo_copy.source(utt)


def find_leakage(a: Sequence[Record], b: Sequence[Record]) -> dict[str, list[str]]:
    """Works and recordings present in both manifests.

    Recordings are matched by audio path and by source utt (augmented copies count as
    their source), so a tempo copy of a test recording in a training set is found.
    """
    def recordings(records: Sequence[Record]) -> set[str]:
        keys = set()
        for r in records:
            keys.add(f"utt:{source_utt(r['utt'])}")
            if "wav" in r:
                keys.add(f"wav:{os.path.normpath(str(r['wav']))}")
        return keys

    return {
        "works": sorted({r["song"] for r in a} & {r["song"] for r in b}),
        "recordings": sorted(recordings(a) & recordings(b)),
    }
