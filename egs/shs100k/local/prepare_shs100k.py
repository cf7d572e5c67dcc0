#!/usr/bin/env python3
"""SHS100K2 metadata (Yu et al. 2019, as used by CoverHunter): URL list and manifests.

    python3 local/prepare_shs100k.py urls SHS_DIR OUT_TSV
    python3 local/prepare_shs100k.py manifests SHS_DIR AUDIO_DIR OUT_DIR [--no_progress]

SHS_DIR holds the split files ``SHS100K-TRAIN``, ``SHS100K-VAL``, ``SHS100K-TEST`` (lines
``set_id<TAB>ver_id``) and ``list`` (``set_id, ver_id, title, performer, URL, status``,
tab-separated). A recording is ``<set_id>_<ver_id>`` (its audio ``AUDIO_DIR/<set_id>_<ver_id>.<ext>``),
its work the set_id. ``urls`` writes ``id<TAB>url`` for tools.download_youtube; ``manifests``
writes ``OUT_DIR/{train,val,test}/dataset.txt`` from the audio present, with coverage reports
(csi.io.coverage). Exit status 1 when a split keeps no recording.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from csi.io.coverage import table, write_splits
from csi.io.youtube import write_url_list

SPLITS = {"train": "SHS100K-TRAIN", "val": "SHS100K-VAL", "test": "SHS100K-TEST"}


def read_list(path: Path) -> dict[str, dict]:
    """``{utt: {title, performer, url, status}}`` from the six-column ``list`` file."""
    rows = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 5:
            raise SystemExit(f"prepare_shs100k: {path}:{lineno}: expected 6 tab-separated columns "
                             f"(set_id, ver_id, title, performer, URL, status), got {len(cols)}")
        cols += [""] * (6 - len(cols))
        rows[f"{cols[0].strip()}_{cols[1].strip()}"] = {"title": cols[2], "performer": cols[3],
                                                        "url": cols[4].strip(), "status": cols[5].strip()}
    return rows


def read_split(path: Path, info: dict[str, dict]) -> list[dict]:
    if not path.is_file():
        raise SystemExit(f"prepare_shs100k: split file {path} not found")
    records = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        cols = line.split()
        if not cols:
            continue
        if len(cols) < 2:
            raise SystemExit(f"prepare_shs100k: {path}:{lineno}: expected set_id<TAB>ver_id, got {line!r}")
        set_id, ver_id = cols[0], cols[1]
        extra = {k: v for k, v in info.get(f"{set_id}_{ver_id}", {}).items() if k in ("title", "performer")}
        records.append({"utt": f"{set_id}_{ver_id}", "song": set_id, "version": ver_id, **extra})
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    urls = sub.add_parser("urls")
    urls.add_argument("shs_dir", type=Path)
    urls.add_argument("out", type=Path)
    man = sub.add_parser("manifests")
    man.add_argument("shs_dir", type=Path)
    man.add_argument("audio_dir", type=Path)
    man.add_argument("out_dir", type=Path)
    man.add_argument("--no_progress", action="store_true")
    args = parser.parse_args(argv)
    list_path = args.shs_dir / "list"
    if args.command == "urls":
        if not list_path.is_file():
            raise SystemExit(f"prepare_shs100k: {list_path} not found (the six-column SHS100K2 list file)")
        wanted = {r["utt"] for name in SPLITS.values() for r in read_split(args.shs_dir / name, {})}
        rows = read_list(list_path)
        n = write_url_list(args.out, ((utt, row["url"]) for utt, row in rows.items() if utt in wanted and row["url"]))
        print(f"prepare_shs100k: {n} URLs of {len(wanted)} recordings named by the splits -> {args.out}",
              file=sys.stderr)
        return 0
    info = read_list(list_path) if list_path.is_file() else {}
    splits = {name: read_split(args.shs_dir / fname, info) for name, fname in SPLITS.items()}
    reports = write_splits(args.out_dir, splits, args.audio_dir, progress=not args.no_progress)
    print(table(reports), end="", file=sys.stderr)
    empty = [r.split for r in reports if not r.tracks_kept]
    if empty:
        print(f"prepare_shs100k: no recording kept for split(s) {', '.join(empty)}: no audio under "
              f"{args.audio_dir} for works of 2 versions or more (run stage 0 with --download_audio true)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
