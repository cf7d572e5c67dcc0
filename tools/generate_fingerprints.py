"""Fingerprint reference recordings with a trained fingerprinter (the database's input).

    python3 -m tools.generate_fingerprints MODEL_DIR AUDIO --out_dir FP_DIR [--hop_s 0.5]
        [--device D] [--no_progress] [--shard K/N | --merge N]

AUDIO is a folder (every audio file under it; the recording id is its relative path
without extension) or a manifest with ``utt`` and ``wav``. Each recording is read at the
model's rate (8 kHz) and fingerprinted every ``--hop_s`` seconds (1-s segments); one
shorter than a segment is skipped and listed in FP_DIR/skipped.txt. Writes
``FP_DIR/<n>.npy``, ``fingerprints.jsonl`` (audiofp.database) and a run record.
``--shard K/N`` fingerprints every N-th recording into FP_DIR/shards/part-K-of-N/ (one job
of ``python3 -m jobs``) and ``--merge N`` joins the N parts into FP_DIR (the database
built from it equals one job's; a missing part or one of another model is refused by name).
Exit status 0; 1 on bad input or when nothing could be fingerprinted; 2 on a usage error.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from csi.cli import (ToolError, add_device_arg, add_progress_arg, add_shard_args, check_shard_args, run_tool_main,
                     setup_logging)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument("audio", type=Path, help="folder of audio files or manifest (utt, wav)")
    p.add_argument("--out_dir", type=Path, required=True)
    p.add_argument("--hop_s", type=float, default=0.5, help="seconds between fingerprints")
    add_device_arg(p)
    add_progress_arg(p)
    add_shard_args(p, "recording")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_shard_args(parser, args)
    if args.hop_s <= 0:
        parser.error("--hop_s must be positive")
    setup_logging()
    return run_tool_main("generate_fingerprints", lambda: run(args), (ValueError,))


def run(args: argparse.Namespace) -> int:
    from csi.utils import progress_bar

    from csi.env import write_run_info
    from audiofp.database import merge_parts, part_dir, recordings_digest, write_fingerprints
    from audiofp.references import list_recordings
    from audiofp.inference import fingerprints, load_fingerprinter
    from csi.io.audio import load
    from csi.utils import atomic_write_text, resolve_device

    loaded = load_fingerprinter(args.model_dir, str(resolve_device(args.device)))
    recordings = list_recordings(args.audio)
    digest = recordings_digest(recordings)
    if args.merge is not None:
        written = merge_parts(args.out_dir, args.merge, loaded.identity, args.hop_s, digest)
        print(f"{written} recordings fingerprinted (merged from {args.merge} shards) -> {args.out_dir}")
        return 0
    out_dir, header = args.out_dir, {}
    if args.shard:
        k, n = args.shard
        recordings, out_dir, header = recordings[k - 1::n], part_dir(args.out_dir, k, n), {"shard": [k, n],
                                                                                          "recordings": digest}
    skipped: list[str] = []

    def items():
        for rec, path in progress_bar(recordings, desc="fingerprints", disable=args.no_progress):
            audio, sr = load(path, loaded.mel.sr)
            fp, _ = fingerprints(loaded, audio, args.hop_s)
            if not len(fp):
                skipped.append(f"{rec}\t{path}\tshorter than one segment ({len(audio) / sr:.2f} s)")
                continue
            yield rec, fp, len(audio) / sr

    written = write_fingerprints(out_dir, loaded.identity, args.hop_s, items(), **header)
    atomic_write_text(out_dir / "skipped.txt", "".join(line + "\n" for line in skipped))
    write_run_info(out_dir / "generate_fingerprints.yaml", {k: str(v) for k, v in vars(args).items()},
                   recordings=written, skipped=len(skipped))
    if args.shard:
        print(f"shard {args.shard[0]}/{args.shard[1]}: {written} recordings fingerprinted, {len(skipped)} skipped "
              f"-> {out_dir}")
        return 0              # an empty shard is not a failure of the whole set
    if not written:
        raise ToolError(f"{args.audio}: no recording long enough to fingerprint (see {args.out_dir}/skipped.txt)")
    print(f"{written} recordings fingerprinted, {len(skipped)} skipped -> {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
