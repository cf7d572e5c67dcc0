"""Stage 1 of egs/datacos: Da-TACOS metadata + HDF5 trees (+ optional audio) → manifests.

    python3 local/prepare_datacos.py DATACOS_DIR DATA_ROOT [--feature crema] [--audio_dir DIR]

For each subset whose metadata JSON (da-tacos_<subset>_subset_metadata.json, anywhere under
DATACOS_DIR) is there: DATA_ROOT/<subset>/dataset.txt (records with ``h5``, and ``wav`` when
an audio file <P_id>.<ext> is in --audio_dir), missing.txt (performances without a file), and
for the benchmark query.txt / ref.txt (the protocol) and, with --audio_dir, audio_query.txt /
audio_ref.txt (only the performances that have audio). Prints the counts and the folders used.

The h5 files are looked for in the da-tacos_<subset>_subset_single_files folder and the
per-feature folder of --feature (da-tacos_<subset>_subset_<crema|hpcp|cens>) wherever they are
under DATACOS_DIR (at most 4 levels down). A subset whose metadata is there but none of whose
performances has a file stops the stage (exit 1) with what was found, unless --audio_dir is
given (the audio route needs no h5 file): then that subset is skipped with a warning.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from datacos import METADATA_FILES, DatacosError, archive_name, counts, find_trees, index_audio, index_h5, \
    load_metadata, subset_records, write_protocol
from csi.io.manifest import atomic_write_text, write_manifest


def find_metadata(root: Path, subset: str) -> Path | None:
    hits = sorted(root.rglob(METADATA_FILES[subset]))
    return hits[0] if hits else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datacos_dir")
    p.add_argument("data_root")
    p.add_argument("--feature", default="crema", help="per-feature archive to use when there is no single-files bundle")
    p.add_argument("--audio_dir", default="")
    args = p.parse_args(argv)
    root = Path(args.datacos_dir)
    if not root.is_dir():
        print(f"prepare_datacos: {root}: no such directory", file=sys.stderr)
        return 1
    audio = index_audio(args.audio_dir) if args.audio_dir else None
    done, skipped = 0, 0
    for subset in METADATA_FILES:
        meta_path = find_metadata(root, subset)
        if meta_path is None:
            print(f"prepare_datacos: no {METADATA_FILES[subset]} under {root}: subset {subset} skipped", file=sys.stderr)
            continue
        try:
            meta = load_metadata(meta_path)
        except DatacosError as e:
            print(f"prepare_datacos: {e}", file=sys.stderr)
            return 1
        trees = find_trees(root, subset)
        usable = [(kind, t) for kind, t in trees if kind in ("single_files", archive_name(args.feature))]
        h5 = {}
        for kind, tree in usable:
            for perf, path in index_h5(tree, args.feature).items():
                h5.setdefault(perf, path)
        records, missing = subset_records(meta, h5, audio)
        if not records:
            seen = ", ".join(f"{t} ({kind})" for kind, t in trees) or "none"
            why = (f"prepare_datacos: {subset}: no file for any of the {len(missing)} performances of {meta_path}: "
                   f"no P_<id>.h5 holding {args.feature!r} under {root} (folders da-tacos_{subset}_subset_single_files "
                   f"or da-tacos_{subset}_subset_{archive_name(args.feature)}, at most 4 levels down; found: {seen})")
            if audio is not None:
                print(f"{why}; subset skipped (--audio_dir given)", file=sys.stderr)
                skipped += 1
                continue
            print(f"{why}. Unpack da-tacos_{subset}_subset_single_files.zip (or _{archive_name(args.feature)}.zip) "
                  f"under {root}", file=sys.stderr)
            return 1
        for kind, tree in usable:
            print(f"prepare_datacos: {subset}: h5 files from {tree} ({kind})", file=sys.stderr)
        out = Path(args.data_root) / subset
        out.mkdir(parents=True, exist_ok=True)
        write_manifest(out / "dataset.txt", records)
        atomic_write_text(out / "missing.txt", "".join(f"{u}\t{why}\n" for u, why in missing))
        info = dict(counts(meta), with_h5=sum("h5" in r for r in records), with_audio=sum("wav" in r for r in records),
                    missing=len(missing))
        if subset == "benchmark":
            info["query"], info["ref"] = write_protocol(out, records)
            if audio is not None:
                with_audio = [{k: v for k, v in r.items() if k != "h5"} for r in records if "wav" in r]
                info["audio_query"], info["audio_ref"] = write_protocol(out, with_audio, prefix="audio_")
        atomic_write_text(out / "counts.json", json.dumps(info, indent=1) + "\n")
        print(f"prepare_datacos: {subset}: {json.dumps(info)}")
        done += 1
    if not done and skipped:
        print(f"prepare_datacos: no subset has a file (h5 or audio) under {root} / {args.audio_dir}", file=sys.stderr)
        return 1
    if not done:
        print(f"prepare_datacos: no Da-TACOS metadata under {root} (expected {' or '.join(METADATA_FILES.values())})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
