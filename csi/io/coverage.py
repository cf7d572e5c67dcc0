"""Manifests of a published split from the audio that could be obtained, with a coverage report.

A split names recordings (``utt``, work) that may not all be downloadable. ``select``
keeps those with a readable audio file, then drops works left with fewer than 2 versions
(no pair to match), and counts everything on the way; ids the split names but the audio
lacks are counted and listed, never an error.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from csi.utils import progress_bar

from csi.io.audio import AudioError, probe_many
from csi.io.manifest import Record, works_of, write_manifest
from csi.io.tree import AUDIO_EXTENSIONS
from csi.utils import atomic_write_text

AUDIO_SUFFIXES = AUDIO_EXTENSIONS + (".m4a", ".mp4", ".webm")    # also what YouTube serves (csi.io.audio.AV_SUFFIXES)


@dataclass
class Coverage:
    """Counts of one split; ``absent`` / ``unreadable`` hold the ids left out for that reason."""
    split: str
    tracks_wanted: int = 0
    tracks_found: int = 0
    tracks_kept: int = 0
    works_wanted: int = 0
    works_kept: int = 0
    works_single_version: int = 0     # works left with 1 version: dropped
    tracks_single_version: int = 0
    works_without_audio: int = 0
    duplicates: int = 0               # ids named twice by the split (the first is kept)
    absent: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def counts(self) -> dict:
        out = asdict(self)
        out["absent"], out["unreadable"] = len(self.absent), len(self.unreadable)
        return out


def audio_files(directory: str | os.PathLike) -> list[Path]:
    """The finished audio files directly in ``directory``, sorted (partial downloads such as
    ``.part``, hidden files, sidecars such as ``.meta`` and other suffixes ignored)."""
    return [p for p in sorted(Path(directory).iterdir())
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_SUFFIXES]


def index_audio(audio_dir: str | os.PathLike) -> dict[str, Path]:
    """``{stem: path}`` of the finished audio files directly in ``audio_dir`` (:func:`audio_files`;
    empty if the directory is absent)."""
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        return {}
    return {p.stem: p for p in audio_files(audio_dir)}


def index_prefixed_audio(audio_dir: str | os.PathLike) -> tuple[dict[str, Path], dict[str, int]]:
    """``{id: path}`` of the audio files of ``audio_dir`` in either layout: flat ``<id>.<ext>``,
    or ``<id[:2]>/<id>.<ext>`` (a folder named by the id's first two characters, its case
    ignored, as the Discogs-VI downloader and CLEWS's loader write and read them). The first
    file of an id wins (flat before prefixed, then by name: ``x.m4a`` before ``x.mp4``).
    Also returns how many ids each layout gave (``flat``, ``prefixed``)."""
    audio_dir = Path(audio_dir)
    found: dict[str, Path] = {}
    n = {"flat": 0, "prefixed": 0}
    if not audio_dir.is_dir():
        return found, n
    for p in audio_files(audio_dir):
        if p.stem not in found:
            found[p.stem] = p
            n["flat"] += 1
    for sub in sorted(d for d in audio_dir.iterdir() if d.is_dir() and len(d.name) == 2 and not d.name.startswith(".")):
        for p in audio_files(sub):
            if p.stem[:2].lower() == sub.name.lower() and p.stem not in found:
                found[p.stem] = p
                n["prefixed"] += 1
    return found, n


def select(split: str, wanted: Iterable[Record], audio: Mapping[str, Path],
           progress: bool = True) -> tuple[list[Record], Coverage]:
    """Records of ``wanted`` (``utt``, ``song``, ...) whose ``audio[utt]`` is readable, with
    ``wav`` and ``dur_s`` added, in works of at least 2 versions; and their Coverage."""
    cov = Coverage(split)
    unique: dict[str, Record] = {}
    for rec in wanted:
        if rec["utt"] in unique:
            cov.duplicates += 1
        else:
            unique[rec["utt"]] = rec
    cov.tracks_wanted = len(unique)
    cov.works_wanted = len(works_of(unique.values()))
    found = []
    present = [rec for rec in unique.values() if rec["utt"] in audio]
    cov.absent.extend(rec["utt"] for rec in unique.values() if rec["utt"] not in audio)
    bar = progress_bar(total=len(present), desc=f"probe {split}", unit="file", disable=not progress)
    paths = [audio[rec["utt"]] for rec in present]
    for rec, path, info in zip(present, paths, probe_many(paths, progress=lambda: bar.update(1))):
        if isinstance(info, AudioError):
            cov.unreadable.append(rec["utt"])
            continue
        found.append({**rec, "wav": str(path), "dur_s": round(info.duration, 3)})
    bar.close()
    cov.tracks_found = len(found)
    works = works_of(found)
    cov.works_without_audio = cov.works_wanted - len(works)
    kept = []
    for versions in works.values():
        if len(versions) < 2:
            cov.works_single_version += 1
            cov.tracks_single_version += len(versions)
        else:
            kept.extend(versions)
    cov.tracks_kept, cov.works_kept = len(kept), len(works) - cov.works_single_version
    return kept, cov


def table(reports: Sequence[Coverage]) -> str:
    """A readable table, one column per split."""
    rows = [("tracks wanted", "tracks_wanted"), ("tracks found (readable audio)", "tracks_found"),
            ("  absent from the audio", "absent"), ("  unreadable", "unreadable"),
            ("  named twice by the split", "duplicates"), ("tracks kept", "tracks_kept"),
            ("works wanted", "works_wanted"), ("works without any audio", "works_without_audio"),
            ("works left with 1 version (dropped)", "works_single_version"),
            ("  their tracks", "tracks_single_version"), ("works kept", "works_kept")]
    counts = [r.counts() for r in reports]
    width = max(len(label) for label, _ in rows)
    lines = [f"{'':{width}}" + "".join(f"{r.split:>10}" for r in reports)]
    for label, key in rows:
        lines.append(f"{label:{width}}" + "".join(f"{c[key]:>10}" for c in counts))
    for r, c in zip(reports, counts):
        if c["tracks_wanted"]:
            lines.append(f"{r.split}: {c['tracks_kept'] / c['tracks_wanted']:.1%} of the tracks, "
                         f"{c['works_kept'] / max(c['works_wanted'], 1):.1%} of the works kept")
    return "\n".join(lines) + "\n"


def write_split(out_dir: str | os.PathLike, split: str, wanted: Iterable[Record], audio: Mapping[str, Path],
                progress: bool = True) -> Coverage:
    """``select`` and write ``out_dir/{coverage.json, coverage.txt, absent.txt, dataset.txt}``
    (dataset.txt last); an empty selection writes the report and no manifest."""
    out_dir = Path(out_dir)
    records, cov = select(split, wanted, audio, progress=progress)
    doc = {**cov.counts(), "absent_ids": "absent.txt", "unreadable_ids": cov.unreadable}
    atomic_write_text(out_dir / "coverage.json", json.dumps(doc, indent=1) + "\n")
    atomic_write_text(out_dir / "coverage.txt", table([cov]))
    atomic_write_text(out_dir / "absent.txt", "".join(f"{u}\n" for u in cov.absent))
    if records:
        write_manifest(out_dir / "dataset.txt", records)
    return cov


def write_splits(out_dir: str | os.PathLike, splits: Mapping[str, Iterable[Record]], audio_dir: str | os.PathLike,
                 progress: bool = True, audio: Mapping[str, Path] | None = None) -> list[Coverage]:
    """``write_split`` for each split into ``out_dir/<split>/``, then the table of all of them
    (``out_dir/coverage.txt``, ``coverage.json``). ``audio`` (``{utt: path}``) is used when given,
    else :func:`index_audio` of ``audio_dir``. Returns the reports."""
    out_dir = Path(out_dir)
    if audio is None:
        audio = index_audio(audio_dir)
    reports = [write_split(out_dir / name, name, wanted, audio, progress=progress) for name, wanted in splits.items()]
    atomic_write_text(out_dir / "coverage.json", json.dumps({r.split: r.counts() for r in reports}, indent=1) + "\n")
    atomic_write_text(out_dir / "coverage.txt", table(reports))
    return reports
