#!/usr/bin/env python3
"""Discogs-VI-YT metadata (Araz et al. 2024): URL list and manifests.

    python3 local/prepare_discogs_vi.py urls DISCOGS_DIR OUT_TSV [--name NAME]
    python3 local/prepare_discogs_vi.py manifests DISCOGS_DIR AUDIO_DIR OUT_DIR [--name NAME] [--no_progress]

DISCOGS_DIR holds ``NAME.{train,val,test}`` (default NAME ``Discogs-VI-YT-20240701-light.json``),
each a JSON object ``{clique: [{version_id, youtube_id}, ...]}`` (JSON lines of such
objects are read too). A recording is its YouTube id (audio ``AUDIO_DIR/<youtube_id>.<ext>``),
its work the clique. ``urls`` writes ``id<TAB>url`` for tools.download_youtube; ``manifests``
writes ``OUT_DIR/{train,val,test}/dataset.txt`` from the audio present, with coverage reports
(csi.io.coverage). Exit status 1 when a split keeps no recording.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from csi.io.coverage import table, write_splits
from csi.io.youtube import write_url_list

NAME = "Discogs-VI-YT-20240701-light.json"
SPLITS = ("train", "val", "test")


def read_cliques(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(f"prepare_discogs_vi: split file {path} not found")
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    doc.update(json.loads(line))
                except (json.JSONDecodeError, TypeError, ValueError) as e:
                    raise SystemExit(f"prepare_discogs_vi: {path}:{lineno}: not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise SystemExit(f"prepare_discogs_vi: {path}: expected an object {{clique: [versions]}}")
    return doc


def records_of(path: Path) -> list[dict]:
    """One record per (clique, version, YouTube id), in file order."""
    records = []
    for clique, versions in read_cliques(path).items():
        for version in versions:
            ids = version.get("youtube_id")
            for yt in [ids] if isinstance(ids, str) else (ids or []):
                records.append({"utt": yt, "song": str(clique), "version": str(version.get("version_id", yt))})
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    urls = sub.add_parser("urls")
    urls.add_argument("discogs_dir", type=Path)
    urls.add_argument("out", type=Path)
    man = sub.add_parser("manifests")
    man.add_argument("discogs_dir", type=Path)
    man.add_argument("audio_dir", type=Path)
    man.add_argument("out_dir", type=Path)
    man.add_argument("--no_progress", action="store_true")
    for p in (urls, man):
        p.add_argument("--name", default=NAME, help=f"split file prefix (default {NAME})")
    args = parser.parse_args(argv)
    splits = {name: records_of(args.discogs_dir / f"{args.name}.{name}") for name in SPLITS}
    if args.command == "urls":
        ids = dict.fromkeys(r["utt"] for records in splits.values() for r in records)
        n = write_url_list(args.out, ((yt, f"https://www.youtube.com/watch?v={yt}") for yt in ids))
        print(f"prepare_discogs_vi: {n} YouTube ids -> {args.out}", file=sys.stderr)
        return 0
    reports = write_splits(args.out_dir, splits, args.audio_dir, progress=not args.no_progress)
    print(table(reports), end="", file=sys.stderr)
    empty = [r.split for r in reports if not r.tracks_kept]
    if empty:
        print(f"prepare_discogs_vi: no recording kept for split(s) {', '.join(empty)}: no audio under "
              f"{args.audio_dir} for cliques of 2 versions or more (run stage 0 with --download_audio true)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
