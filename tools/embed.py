"""Chunk embeddings of audio files with a trained model directory.

    python3 -m tools.embed MODEL_DIR AUDIO... [--out_dir DIR] [--hop_s S] [--checkpoint C] [--device D]
    csi embed AUDIO... --model MODEL_DIR [--out_dir DIR]

Each file is decoded, its features computed by the model's own front end, cut into the
model's training chunks every ``--hop_s`` (default: the model card's matching hop) and
embedded through the one embedding path (csi.api → csi.embed). Prints one JSON line a file:
``{"audio", "chunks", "dim", "duration_s", "out"}``; with ``--out_dir`` the (chunks, dim)
float32 L2-normalised embeddings are written to ``DIR/<file stem>.npy`` (atomically) and the
values used to ``DIR/embed.yaml``. A file that cannot be used gets one line on stderr and the
others are still embedded; the exit status is 1 if every file failed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from csi.cli import add_checkpoint_arg, add_device_arg

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("audio", nargs="+", help="audio files")
    parser.add_argument("--out_dir", type=Path, help="write <stem>.npy a file here")
    parser.add_argument("--hop_s", type=float, help="seconds between chunk starts (default: the model card's)")
    add_checkpoint_arg(parser)
    add_device_arg(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.hop_s is not None and not args.hop_s > 0:
        build_parser().error("--hop_s must be positive")
    from csi.cli import run_tool_main

    return run_tool_main("embed", lambda: embed(args))


def embed(args: argparse.Namespace) -> int:
    import numpy as np

    import csi
    from csi.env import write_run_info
    from csi.features.reader import EmbedInputError
    from csi.utils import atomic_write

    model = csi.load(args.model_dir, args.checkpoint, args.device)
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        write_run_info(args.out_dir / "embed.yaml", vars(args), model=model.loaded.identity())
    stems: dict[str, str] = {}
    done = 0
    for path in args.audio:
        try:
            emb = model.embed(path, hop_s=args.hop_s)
        except EmbedInputError as e:
            print(f"embed: {e}", file=sys.stderr)
            continue
        out = None
        if args.out_dir:
            stem = Path(path).stem
            if stems.setdefault(stem, path) != path:
                print(f"embed: {path}: a second file named {stem}.* (first {stems[stem]}); not written", file=sys.stderr)
                continue
            out = args.out_dir / f"{stem}.npy"
            atomic_write(out, lambda f: np.save(f, emb))
        print(json.dumps({"audio": path, "chunks": int(len(emb)), "dim": int(emb.shape[1]),
                          "duration_s": model.last_duration_s,
                          "out": None if out is None else str(out)}), flush=True)
        done += 1
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
