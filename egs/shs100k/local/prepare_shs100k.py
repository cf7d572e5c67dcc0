#!/usr/bin/env python3
"""SHS100K2 metadata (Yu et al. 2019, as used by CoverHunter): URL list and manifests.

    python3 local/prepare_shs100k.py urls SHS_DIR OUT_TSV
    python3 local/prepare_shs100k.py manifests SHS_DIR AUDIO_DIR OUT_DIR [--no_progress]

SHS_DIR holds the split files ``SHS100K-TRAIN``, ``SHS100K-VAL``, ``SHS100K-TEST`` (lines
``set_id<TAB>ver_id`` or ``set_id_ver_id``) and ``list`` (``set_id, ver_id, title, performer,
URL, status``, tab-separated); library ``local/shs100k.py``. A recording is
``<set_id>_<ver_id>``, its work the set_id; its audio ``AUDIO_DIR/<set_id>_<ver_id>.<ext>`` or,
in CLEWS's layout, ``AUDIO_DIR/<id[:2]>/<set_id>-<ver_id>.<ext>``. Both commands give a work
named by two splits to the split nearer TEST (the published splits share works 5982 and
8110) and keep one id of a video named under several (the URL is downloaded once); the drops
are logged, and ``manifests`` writes them to ``OUT_DIR/overlaps.tsv``. ``urls`` writes
``id<TAB>url`` for tools.download_youtube; ``manifests`` writes ``OUT_DIR/{train,val,test}/dataset.txt``
from the audio present, with coverage reports (csi.io.coverage). Exit status 1 when a split
keeps no recording or a metadata file is malformed (the message names file and line).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from csi.io.coverage import table, write_split
from csi.io.manifest import atomic_write_text
from csi.io.youtube import write_url_list
from shs100k import SPLITS, ShsError, index_audio, load_splits, read_list, report_lines, resolve_overlaps, share_urls

REPORT_COLUMNS = ("kind", "id", "kept_in", "dropped_from", "recordings", "shared", "same_as", "url")


def _log(msg: str) -> None:
    print(f"prepare_shs100k: {msg}", file=sys.stderr)


def resolved_splits(shs_dir: Path, info: dict) -> tuple[dict[str, list[dict]], list[dict]]:
    """The three splits read, their overlaps resolved and shared videos kept once; the report rows."""
    splits = load_splits(shs_dir, info, log=_log)
    splits, rows = resolve_overlaps(splits)
    splits, url_rows = share_urls(splits, info)
    rows += url_rows
    for line in report_lines(rows):
        _log(line)
    if rows:
        dropped = {name: sum(r.get("recordings", 1) for r in rows if r["dropped_from"] == name) for name in SPLITS}
        _log(f"{len(rows)} overlap(s) resolved: " + ", ".join(f"{n} recording(s) dropped from {name}"
                                                           for name, n in dropped.items() if n))
    return splits, rows


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
    try:
        if args.command == "urls":
            if not list_path.is_file():
                raise ShsError(f"{list_path} not found (the six-column SHS100K2 list file)")
            info = read_list(list_path)
            splits, _ = resolved_splits(args.shs_dir, info)
            wanted = [r["utt"] for records in splits.values() for r in records]
            pairs = {utt: info[utt]["url"] for utt in wanted if info.get(utt, {}).get("url")}
            n = write_url_list(args.out, sorted(pairs.items()))
            _log(f"{n} URLs of {len(set(wanted))} recordings named by the splits -> {args.out}")
            return 0
        info = read_list(list_path) if list_path.is_file() else {}
        splits, rows = resolved_splits(args.shs_dir, info)
    except ShsError as e:
        _log(str(e))
        return 1
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "overlaps.tsv", "\t".join(REPORT_COLUMNS) + "\n" + "".join(
        "\t".join(str(r.get(c, "")) for c in REPORT_COLUMNS) + "\n" for r in rows))
    audio, layouts = index_audio(args.audio_dir)
    _log(f"{len(audio)} audio files under {args.audio_dir} ({layouts['flat']} <set>_<ver>.<ext>, "
         f"{layouts['clews']} in CLEWS's <id[:2]>/<set>-<ver>.<ext>)")
    reports = [write_split(out / name, name, records, audio, progress=not args.no_progress)
               for name, records in splits.items()]
    atomic_write_text(out / "coverage.json", json.dumps({r.split: r.counts() for r in reports}, indent=1) + "\n")
    atomic_write_text(out / "coverage.txt", table(reports))
    print(table(reports), end="", file=sys.stderr)
    empty = [r.split for r in reports if not r.tracks_kept]
    if empty:
        _log(f"no recording kept for split(s) {', '.join(empty)}: no audio under {args.audio_dir} for works of "
             f"2 versions or more (run stage 0 with --download_audio true)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
