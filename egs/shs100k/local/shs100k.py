"""SHS100K2 metadata (Yu et al. 2019; github.com/NovaFrost/SHS100K2): split files, the ``list``,
the known faults of the published splits, and the audio layouts.

Split files ``SHS100K-TRAIN``, ``SHS100K-VAL``, ``SHS100K-TEST`` (``meta/`` in the repository):
one recording a line, ``set_id<TAB>ver_id``; a widely used copy (CQTNet's ``data/`` lists)
writes ``set_id_ver_id`` instead: both are read. The published files have 87,091 / 10,884 /
10,547 lines (5,324 / 1,842 / 1,692 works); other sizes are read with a warning (a subset such
as ``SHS100K-TRAIN_6``, another version). ``list``: ``set_id, ver_id, title, performer, URL,
status`` tab-separated (status ``True``/``False``: youtube-dl could fetch it at the time).

The published splits are not disjoint: work 5982 has the same 6 recordings in TRAIN and VAL,
work 8110 the same 5 in VAL and TEST. :func:`resolve_overlaps` keeps TEST as published and
gives a work named by two splits to the one nearer TEST (test > val > train), dropping it
from the other; the ``list`` also names one YouTube video under two set ids (e.g. a medley
filed under two works): :func:`share_urls` keeps the first id in that order (then by
set id, ver id) and drops the others, so the video is downloaded once and never in two works
or two splits. Both return the rows of the report.

Audio: ``<set_id>_<ver_id>.<ext>`` directly in the audio directory (this recipe's download),
or CLEWS's layout (sony/clews ``data_preproc.py``): the id ``<set_id>-<ver_id>`` in a folder of
its first two characters, ``<id[:2]>/<set_id>-<ver_id>.<ext>`` (``12/12-3.mp3``, ``5-/5-0.mp3``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterable

from csi.io.coverage import AUDIO_SUFFIXES

SPLITS = {"train": "SHS100K-TRAIN", "val": "SHS100K-VAL", "test": "SHS100K-TEST"}
PUBLISHED_LINES = {"train": 87091, "val": 10884, "test": 10547}
PRIORITY = ("test", "val", "train")          # a work or a URL named twice goes to the first of these
_ID = re.compile(r"^\d+$")
_YOUTUBE_ID = re.compile(r"(?:[?&]v=|youtu\.be/|/embed/|/shorts/)([A-Za-z0-9_-]{11})")


class ShsError(ValueError):
    """A split or list file that is not in an SHS100K2 form (message names file and line)."""


def utt_id(set_id: str, ver_id: str) -> str:
    return f"{set_id}_{ver_id}"


def parse_split_line(line: str, where: str) -> tuple[str, str, str] | None:
    """``(set_id, ver_id, form)`` of one split line (``set<TAB>ver`` or ``set_ver``), None for
    a blank line; ``where`` (file:line) names it in the error."""
    cols = line.split()
    if not cols:
        return None
    if len(cols) >= 2:
        set_id, ver_id, form = cols[0], cols[1], "set<TAB>ver"
    elif cols[0].count("_") == 1:
        (set_id, ver_id), form = cols[0].split("_"), "set_ver"
    else:
        raise ShsError(f"{where}: expected set_id<TAB>ver_id or set_id_ver_id, got {line.strip()!r}")
    if not (_ID.match(set_id) and _ID.match(ver_id)):
        raise ShsError(f"{where}: set_id and ver_id must be numbers, got {line.strip()!r}")
    return set_id, ver_id, form


def read_split(path: str | os.PathLike) -> tuple[list[tuple[str, str]], set[str]]:
    """The ``(set_id, ver_id)`` of a split file in file order, and the line forms it used."""
    path = Path(path)
    if not path.is_file():
        raise ShsError(f"split file {path} not found")
    pairs, forms = [], set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parsed = parse_split_line(line, f"{path}:{lineno}")
        if parsed:
            pairs.append(parsed[:2])
            forms.add(parsed[2])
    return pairs, forms


def read_list(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """``{utt: {title, performer, url, status}}`` from the six-column ``list`` file."""
    path = Path(path)
    rows = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 5:
            raise ShsError(f"{path}:{lineno}: expected 6 tab-separated columns (set_id, ver_id, title, performer, "
                           f"URL, status), got {len(cols)}")
        cols += [""] * (6 - len(cols))
        rows[utt_id(cols[0].strip(), cols[1].strip())] = {"title": cols[2], "performer": cols[3],
                                                          "url": cols[4].strip(), "status": cols[5].strip()}
    return rows


def load_splits(shs_dir: str | os.PathLike, info: dict[str, dict] | None = None,
                log: Callable[[str], None] = print) -> dict[str, list[dict]]:
    """``{split: [record]}`` (``utt``, ``song`` = set_id, ``version`` = ver_id, title and
    performer from ``info``) of the three split files, logging each file's form and a warning
    when its size is not the published one."""
    info = info or {}
    splits = {}
    for name, fname in SPLITS.items():
        pairs, forms = read_split(Path(shs_dir) / fname)
        log(f"{fname}: {len(pairs)} lines ({', '.join(sorted(forms)) or 'empty'})")
        if len(pairs) != PUBLISHED_LINES[name]:
            log(f"warning: {Path(shs_dir) / fname} has {len(pairs):,} lines, the published SHS100K2 {fname} has "
                f"{PUBLISHED_LINES[name]:,} (a subset or another version of the split)")
        splits[name] = [{"utt": utt_id(s, v), "song": s, "version": v,
                         **{k: x for k, x in info.get(utt_id(s, v), {}).items() if k in ("title", "performer")}}
                        for s, v in pairs]
    return splits


def _rank(split: str) -> int:
    return PRIORITY.index(split) if split in PRIORITY else len(PRIORITY)


def resolve_overlaps(splits: dict[str, list[dict]]) -> tuple[dict[str, list[dict]], list[dict]]:
    """Give every work named by two or more splits to the one nearest TEST (:data:`PRIORITY`)
    and drop it from the others. Returns the new splits and one report row per drop
    (``kind: work``, ``id``, ``kept_in``, ``dropped_from``, ``recordings``, ``shared``: how many
    of them the kept split names too)."""
    where: dict[str, list[str]] = {}
    for name, records in splits.items():
        for work in dict.fromkeys(r["song"] for r in records):
            where.setdefault(work, []).append(name)
    owner = {w: min(names, key=_rank) for w, names in where.items() if len(names) > 1}
    rows, out = [], {}
    for name, records in splits.items():
        out[name] = [r for r in records if owner.get(r["song"], name) == name]
    for work, keep in sorted(owner.items(), key=lambda wk: int(wk[0]) if wk[0].isdigit() else -1):
        kept = {r["utt"] for r in splits[keep] if r["song"] == work}
        for name in where[work]:
            if name != keep:
                utts = [r["utt"] for r in splits[name] if r["song"] == work]
                rows.append({"kind": "work", "id": work, "kept_in": keep, "dropped_from": name,
                             "recordings": len(utts), "shared": sum(u in kept for u in utts)})
    return out, rows


def video_key(url: str) -> str:
    """The YouTube video id of ``url`` (the same video under another URL spelling is one), else the URL."""
    m = _YOUTUBE_ID.search(url)
    return m.group(1) if m else url.strip()


def share_urls(splits: dict[str, list[dict]], info: dict[str, dict]) -> tuple[dict[str, list[dict]], list[dict]]:
    """Keep one recording of every video named under several ids (the first in
    :data:`PRIORITY` order, then by set id and ver id) and drop the others. Returns the new
    splits and one report row per drop (``kind: url``, ``id``, ``kept_in``, ``dropped_from``,
    ``same_as``, ``url``)."""
    order = []
    for name, records in splits.items():
        for r in records:
            url = info.get(r["utt"], {}).get("url", "")
            if url:
                order.append(((_rank(name), int(r["song"]), int(r["version"])), name, r["utt"], video_key(url)))
    first: dict[str, tuple[str, str]] = {}
    drop: dict[tuple[str, str], str] = {}
    for _, name, utt, key in sorted(order):
        if key in first and first[key][1] != utt:
            drop[(name, utt)] = key
        else:
            first.setdefault(key, (name, utt))
    rows = [{"kind": "url", "id": utt, "kept_in": first[key][0], "dropped_from": name, "same_as": first[key][1],
             "url": info[utt]["url"]} for (name, utt), key in sorted(drop.items())]
    return {name: [r for r in records if (name, r["utt"]) not in drop] for name, records in splits.items()}, rows


def report_lines(rows: Iterable[dict]) -> list[str]:
    """Readable lines of the :func:`resolve_overlaps` / :func:`share_urls` rows."""
    lines = []
    for r in rows:
        if r["kind"] == "work":
            lines.append(f"work {r['id']}: in {r['dropped_from']} and {r['kept_in']}: kept in {r['kept_in']}, "
                         f"{r['recordings']} recording(s) dropped from {r['dropped_from']} "
                         f"({r['shared']} named by both)")
        else:
            lines.append(f"recording {r['id']} ({r['dropped_from']}): the same video as {r['same_as']} "
                         f"({r['kept_in']}), {r['url']}: dropped")
    return lines


def index_audio(audio_dir: str | os.PathLike) -> tuple[dict[str, Path], dict[str, int]]:
    """``{utt: path}`` of the finished audio files of ``audio_dir`` in either layout (the module
    docstring; a flat ``<set>_<ver>`` file wins over a CLEWS one), and how many files each
    layout gave (``flat``, ``clews``)."""
    audio_dir = Path(audio_dir)
    found: dict[str, Path] = {}
    n = {"flat": 0, "clews": 0}
    if not audio_dir.is_dir():
        return found, n

    def audio_files(d: Path) -> list[Path]:
        return [p for p in sorted(d.iterdir()) if p.is_file() and not p.name.startswith(".")
                and p.suffix.lower() in AUDIO_SUFFIXES]

    for p in audio_files(audio_dir):
        parsed = p.stem.split("_")
        if len(parsed) == 2 and all(_ID.match(x) for x in parsed) and p.stem not in found:
            found[p.stem] = p
            n["flat"] += 1
    for sub in sorted(d for d in audio_dir.iterdir() if d.is_dir() and len(d.name) == 2):
        for p in audio_files(sub):
            parsed = p.stem.split("-")
            if len(parsed) == 2 and all(_ID.match(x) for x in parsed) and p.stem[:2] == sub.name:
                if utt_id(*parsed) not in found:
                    found[utt_id(*parsed)] = p
                    n["clews"] += 1
    return found, n
