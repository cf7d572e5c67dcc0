"""Fingerprint reference recordings with a trained fingerprinter (the database's input).

    python3 -m tools.generate_fingerprints MODEL_DIR AUDIO --out_dir FP_DIR [--hop_s 0.5]
        [--device D] [--no_progress]

AUDIO is a folder (every audio file under it; the recording id is its relative path
without extension) or a manifest with ``utt`` and ``wav``. Each recording is read at the
model's rate (8 kHz) and fingerprinted every ``--hop_s`` seconds (1-s segments); one
shorter than a segment is skipped and listed in FP_DIR/skipped.txt. Writes
``FP_DIR/<n>.npy``, ``fingerprints.jsonl`` (audiofp.database) and a run record.
Exit status 0; 1 on bad input or when nothing could be fingerprinted; 2 on a usage error.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from csi.cli import ToolError, add_device_arg, add_progress_arg, run_tool_main, setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument("audio", type=Path, help="folder of audio files or manifest (utt, wav)")
    p.add_argument("--out_dir", type=Path, required=True)
    p.add_argument("--hop_s", type=float, default=0.5, help="seconds between fingerprints")
    add_device_arg(p)
    add_progress_arg(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.hop_s <= 0:
        build_parser().error("--hop_s must be positive")
    setup_logging()
    return run_tool_main("generate_fingerprints", lambda: run(args), (ValueError,))


def run(args: argparse.Namespace) -> int:
    from csi.utils import progress_bar

    from csi.env import write_run_info
    from audiofp.database import write_fingerprints
    from audiofp.references import list_recordings
    from audiofp.inference import fingerprints, load_fingerprinter
    from csi.io.audio import load
    from csi.utils import atomic_write_text, resolve_device

    loaded = load_fingerprinter(args.model_dir, str(resolve_device(args.device)))
    skipped: list[str] = []

    def items():
        for rec, path in progress_bar(list_recordings(args.audio), desc="fingerprints", disable=args.no_progress):
            audio, sr = load(path, loaded.mel.sr)
            fp, _ = fingerprints(loaded, audio, args.hop_s)
            if not len(fp):
                skipped.append(f"{rec}\t{path}\tshorter than one segment ({len(audio) / sr:.2f} s)")
                continue
            yield rec, fp, len(audio) / sr

    written = write_fingerprints(args.out_dir, loaded.identity, args.hop_s, items())
    atomic_write_text(args.out_dir / "skipped.txt", "".join(line + "\n" for line in skipped))
    write_run_info(args.out_dir / "generate_fingerprints.yaml", {k: str(v) for k, v in vars(args).items()},
                   recordings=written, skipped=len(skipped))
    if not written:
        raise ToolError(f"{args.audio}: no recording long enough to fingerprint (see {args.out_dir}/skipped.txt)")
    print(f"{written} recordings fingerprinted, {len(skipped)} skipped -> {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
