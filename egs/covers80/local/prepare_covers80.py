#!/usr/bin/env python3
"""Stage 1 of the covers80 recipe: JSONL manifests for the covers80 collection.

    python3 local/prepare_covers80.py COVERS80_DIR OUT_DIR

COVERS80_DIR is the unpacked ``covers32k`` directory (or a directory holding it): one
sub-directory per work, one audio file per performance, and the protocol lists
``list1.list`` / ``list2.list`` (lines ``<work>/<performance>``, no extension). Writes to
OUT_DIR:

- ``dataset.txt``: every readable track (164 in the published collection)
- ``query.txt`` / ``ref.txt``: the standard protocol, list1 (80 queries) against list2
  (80 references)
- ``all160.txt``: list1 + list2, for the all-vs-all 160 protocol (``dataset.txt`` is the
  all-vs-all 164 protocol)
- ``bad.txt``: files left out, with the reason

Without list files (a private copy), list1/list2 are derived: the first two performances
of each work in name order.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from csi.io.manifest import Record, works_of, write_manifest
from csi.io.tree import scan_work_tree, write_bad_list


def find_covers32k(path: Path) -> Path:
    for candidate in (path / "covers32k", path / "coversongs" / "covers32k", path):
        if candidate.is_dir() and any(p.is_dir() for p in candidate.iterdir()):
            return candidate
    raise SystemExit(f"prepare_covers80: no covers32k tree (covers32k/<work>/<performance>.<ext>) under {path}")


def read_list(path: Path, by_key: dict[str, Record]) -> list[Record]:
    """Records named by a covers80 list file; entries without a usable track are reported."""
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        key = line.strip()
        if not key:
            continue
        if key not in by_key:
            print(f"prepare_covers80: {path}:{lineno}: {key} has no usable audio file: left out", file=sys.stderr)
            continue
        out.append(by_key[key])
    return out


def derived_lists(records: list[Record]) -> tuple[list[Record], list[Record]]:
    list1, list2 = [], []
    for versions in works_of(records).values():
        if len(versions) >= 2:
            first, second = sorted(versions, key=lambda r: r["version"])[:2]
            list1.append(first)
            list2.append(second)
    return list1, list2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("covers80_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    if not args.covers80_dir.is_dir():
        raise SystemExit(f"prepare_covers80: {args.covers80_dir} is not a directory")
    root = find_covers32k(args.covers80_dir)

    records, bad = scan_work_tree(root, utt_prefix="covers80-")
    write_bad_list(args.out_dir / "bad.txt", bad)
    for path, reason in bad:
        print(f"prepare_covers80: left out {path}: {reason}", file=sys.stderr)
    if not records:
        raise SystemExit(f"prepare_covers80: no readable audio under {root}")

    by_key = {f"{r['song']}/{r['version']}": r for r in records}
    if (root / "list1.list").is_file() and (root / "list2.list").is_file():
        list1, list2 = read_list(root / "list1.list", by_key), read_list(root / "list2.list", by_key)
    else:
        print(f"prepare_covers80: no list1.list/list2.list in {root}: deriving them "
              "(first two performances of each work)", file=sys.stderr)
        list1, list2 = derived_lists(records)

    write_manifest(args.out_dir / "query.txt", list1)
    write_manifest(args.out_dir / "ref.txt", list2)
    write_manifest(args.out_dir / "all160.txt", list1 + list2)
    write_manifest(args.out_dir / "dataset.txt", records)  # last: marks the stage as done
    print(f"prepare_covers80: {len(records)} tracks of {len(works_of(records))} works, "
          f"{len(list1)} queries / {len(list2)} references, {len(bad)} left out -> {args.out_dir}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
