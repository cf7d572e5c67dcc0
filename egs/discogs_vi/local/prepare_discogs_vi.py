#!/usr/bin/env python3
"""Discogs-VI-YT metadata (Araz et al. 2024): where the splits are, URL list and manifests.

    python3 local/prepare_discogs_vi.py locate DISCOGS_DIR [--name NAME]
    python3 local/prepare_discogs_vi.py urls DISCOGS_DIR OUT_TSV [--name NAME]
    python3 local/prepare_discogs_vi.py manifests DISCOGS_DIR AUDIO_DIR OUT_DIR [--name NAME] [--no_progress]

The splits are ``NAME.{train,val,test}`` at or under DISCOGS_DIR (3 levels), as files or inside
a ``.zip`` (Zenodo's ``main.zip``; read in place), NAME the official
``Discogs-VI-YT-20240701-light.json`` or CLEWS's ``DiscogsVI-YT-20240701-light.json`` unless
``--name`` is given. Each is a JSON object ``{clique_id: [{version_id, track_title, youtube_id},
...]}`` (JSON lines of such objects are read too). A recording is its YouTube id, its work the
clique. Audio: ``AUDIO_DIR/<yt>.<ext>`` or ``AUDIO_DIR/<yt[:2]>/<yt>.<ext>`` (the dataset's
downloader, whose root ``AUDIO_DIR/audio/`` is looked into, and CLEWS). ``locate`` prints the
files holding the splits (relative to DISCOGS_DIR); ``urls`` writes ``id<TAB>url`` for
tools.download_youtube; ``manifests`` writes ``OUT_DIR/{train,val,test}/dataset.txt`` from the
audio present, with coverage reports (csi.io.coverage). Exit status 1 when the splits are not
found or a split keeps no recording.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from csi.io.audio import AV_SUFFIXES, DecoderUnavailable
from csi.io.coverage import index_prefixed_audio, table, write_splits
from csi.io.youtube import write_url_list

NAMES = ("Discogs-VI-YT-20240701-light.json", "DiscogsVI-YT-20240701-light.json")   # official, CLEWS
SPLITS = ("train", "val", "test")
DEPTH = 3
UNSPLIT = ("Discogs-VI-YT-20240701-light.json", "Discogs-VI-YT-light-20240701.json", "Discogs-VI-YT-20240701.jsonl")


class DiscogsError(Exception):
    """Metadata that cannot be used; the message names the file (and line or clique)."""


@dataclass(frozen=True)
class Source:
    """One split file: ``path``, or the member ``member`` of the zip ``path``."""
    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    def read(self) -> str:
        try:
            if self.member is None:
                return self.path.read_text(encoding="utf-8")
            with zipfile.ZipFile(self.path) as z:
                return z.read(self.member).decode("utf-8")
        except UnicodeDecodeError as e:
            raise DiscogsError(f"{self}: not UTF-8 text ({e})") from None
        except (OSError, zipfile.BadZipFile, KeyError) as e:
            raise DiscogsError(f"{self}: cannot be read ({e})") from None


def _walk(root: Path, depth: int = DEPTH) -> list[Path]:
    """Files at or under ``root``, ``depth`` levels of folders at most, sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        level = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if level < depth else []
        out.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return sorted(out)


def locate(discogs_dir: Path, names: tuple[str, ...] = NAMES) -> dict[str, Source]:
    """``{split: Source}`` of the first name of ``names`` whose three splits are all found,
    plain files before zip members; DiscogsError naming what was looked for otherwise."""
    files = _walk(discogs_dir) if discogs_dir.is_dir() else []
    members: list[tuple[Path, str]] = []
    bad_zips = []
    for path in (p for p in files if p.suffix.lower() == ".zip"):
        try:
            with zipfile.ZipFile(path) as z:
                members.extend((path, m) for m in z.namelist() if not m.endswith("/"))
        except (OSError, zipfile.BadZipFile) as e:
            bad_zips.append(f"{path} ({e})")
    partial = []
    for name in names:
        found: dict[str, Source] = {}
        for split in SPLITS:
            want = f"{name}.{split}"
            plain = [p for p in files if p.name == want]
            zipped = [Source(p, m) for p, m in members if m.rsplit("/", 1)[-1] == want]
            if plain or zipped:
                found[split] = Source(plain[0]) if plain else zipped[0]
        if len(found) == len(SPLITS):
            return found
        if found:
            partial.append(f"{name}: found {', '.join(str(s) for s in found.values())} but not "
                           f"{', '.join(f'{name}.{s}' for s in SPLITS if s not in found)}")
    looked = " or ".join(f"{n}.train, .val, .test" for n in names)
    msg = (f"no Discogs-VI-YT splits at or under {discogs_dir} ({DEPTH} levels, as files or inside .zip archives): "
           f"looked for {looked}")
    if not discogs_dir.is_dir():
        msg += f"; {discogs_dir} is not a directory"
    if partial:
        msg += "; " + "; ".join(partial)
    unsplit = [str(p) for p in files if p.name in UNSPLIT] + [f"{p}:{m}" for p, m in members if m.rsplit("/", 1)[-1] in UNSPLIT]
    if unsplit:
        msg += (f"; {unsplit[0]} is the whole dataset, not its splits (the release's main.zip, "
                f"zenodo.org/records/13983028, holds the .train, .val and .test files)")
    if bad_zips:
        msg += "; unreadable zip archive(s): " + ", ".join(bad_zips)
    raise DiscogsError(msg)


def read_cliques(source: Source) -> dict[str, tuple[list, int | None]]:
    """``{clique_id: (versions, line)}`` of one split file (``line`` for JSON lines, else None)."""
    text = source.read()
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise DiscogsError(f"{source}: expected a JSON object {{clique_id: [versions]}}, got {type(doc).__name__}")
        return {str(c): (v, None) for c, v in doc.items()}
    except json.JSONDecodeError as whole:
        out: dict[str, tuple[list, int | None]] = {}
        first = True
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                if first:   # neither one JSON document nor JSON lines
                    raise DiscogsError(f"{source}: not JSON ({whole})") from None
                raise DiscogsError(f"{source}:{lineno}: not JSON ({e})") from None
            first = False
            if not isinstance(obj, dict):
                raise DiscogsError(f"{source}:{lineno}: expected an object {{clique_id: [versions]}}")
            out.update({str(c): (v, lineno) for c, v in obj.items()})
        return out


def records_of(source: Source) -> list[dict]:
    """One record per (clique, version, YouTube id), in file order."""
    records = []
    for clique, (versions, lineno) in read_cliques(source).items():
        where = f"{source}:{lineno}" if lineno else str(source)
        if not isinstance(versions, list):
            raise DiscogsError(f"{where}: clique {clique}: expected a list of versions, got {type(versions).__name__}")
        for k, version in enumerate(versions):
            if not isinstance(version, dict) or "youtube_id" not in version:
                raise DiscogsError(f"{where}: clique {clique}, version {k}: expected an object with a youtube_id key")
            ids = version["youtube_id"]
            ids = [ids] if isinstance(ids, str) else ids
            if not isinstance(ids, list) or not ids or not all(
                    isinstance(yt, str) and yt.strip() == yt and yt and "/" not in yt for yt in ids):
                raise DiscogsError(f"{where}: clique {clique}, version {k}: youtube_id must be a YouTube id "
                                   f"(or a list of them), got {version['youtube_id']!r}")
            for yt in ids:
                records.append({"utt": yt, "song": clique, "version": str(version.get("version_id", yt))})
    return records


def audio_root(audio_dir: Path) -> Path:
    """The downloader's root holds the audio in ``audio/`` (beside ``logs/``): look there."""
    sub = audio_dir / "audio"
    return sub if sub.is_dir() else audio_dir


def _log(msg: str) -> None:
    print(f"prepare_discogs_vi: {msg}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    loc = sub.add_parser("locate")
    loc.add_argument("discogs_dir", type=Path)
    urls = sub.add_parser("urls")
    urls.add_argument("discogs_dir", type=Path)
    urls.add_argument("out", type=Path)
    man = sub.add_parser("manifests")
    man.add_argument("discogs_dir", type=Path)
    man.add_argument("audio_dir", type=Path)
    man.add_argument("out_dir", type=Path)
    man.add_argument("--no_progress", action="store_true")
    for p in (loc, urls, man):
        p.add_argument("--name", help=f"split file prefix (default: {NAMES[0]} or {NAMES[1]})")
    args = parser.parse_args(argv)
    try:
        sources = locate(args.discogs_dir, (args.name,) if args.name else NAMES)
        if args.command == "locate":
            rel = dict.fromkeys(os.path.relpath(s.path, args.discogs_dir) for s in sources.values())
            print(" ".join(rel))
            return 0
        _log("splits: " + ", ".join(str(s) for s in sources.values()))
        splits = {name: records_of(sources[name]) for name in SPLITS}
    except DiscogsError as e:
        _log(str(e))
        return 1
    if args.command == "urls":
        ids = dict.fromkeys(r["utt"] for records in splits.values() for r in records)
        n = write_url_list(args.out, ((yt, f"https://www.youtube.com/watch?v={yt}") for yt in ids))
        _log(f"{n} YouTube ids -> {args.out}")
        return 0
    root = audio_root(args.audio_dir)
    audio, layouts = index_prefixed_audio(root)
    _log(f"{len(audio)} audio files under {root} ({layouts['flat']} <id>.<ext>, {layouts['prefixed']} <id[:2]>/<id>.<ext>)")
    try:
        reports = write_splits(args.out_dir, splits, root, progress=not args.no_progress, audio=audio)
    except DecoderUnavailable as e:
        _log(f"{e} (needed for the {', '.join(AV_SUFFIXES)} files under {root})")
        return 1
    print(table(reports), end="", file=sys.stderr)
    empty = [r.split for r in reports if not r.tracks_kept]
    if empty:
        _log(f"no recording kept for split(s) {', '.join(empty)}: no audio under {root} for cliques of 2 versions "
             f"or more (run stage 0 with --download_audio true)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
