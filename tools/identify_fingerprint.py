"""Identify the recording (and offset) of audio snippets against a fingerprint database.

    python3 -m tools.identify_fingerprint DB_DIR AUDIO... [--model_dir DIR] [--topk 1] [--k 20]
        [--verify 10] [--json] [--device D]

Each snippet is read at the fingerprinter's rate, fingerprinted every 0.1 s (1-s
segments), searched; the hits vote for (recording, offset) and the best candidates are
verified along the whole snippet (audiofp.search); the score is the mean cosine
similarity along that path.
Prints ``AUDIO: recording  offset_s  score`` (or one JSON object a snippet). The
fingerprinter is the one recorded in DB_DIR/index.json unless ``--model_dir`` is given; a
database built by another fingerprinter is refused (exit status 1). A snippet shorter than
one segment gets one line on stderr; exit status 1 if no snippet could be answered.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from csi.cli import add_device_arg, non_negative_int, run_tool_main, setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("db_dir", type=Path)
    p.add_argument("audio", nargs="+")
    p.add_argument("--model_dir", type=Path, help="default: the fingerprinter recorded in the database")
    p.add_argument("--topk", type=int, default=1, help="recordings listed a snippet")
    p.add_argument("--k", type=int, default=20, help="neighbours searched a segment")
    p.add_argument("--verify", type=non_negative_int, default=10,
                   help="best vote windows verified along the whole snippet (0: votes only)")
    p.add_argument("--json", action="store_true")
    add_device_arg(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    from csi.index import IndexFileError, ModelMismatchError
    return run_tool_main("identify_fingerprint", lambda: run(args), (IndexFileError, ModelMismatchError))


def run(args: argparse.Namespace) -> int:
    from audiofp.database import open_with_model
    from audiofp.search import identify_snippet
    from csi.io.audio import load
    from csi.utils import resolve_device

    loaded, index = open_with_model(args.db_dir, args.model_dir, str(resolve_device(args.device)))
    answered = 0
    for path in args.audio:
        try:
            audio, _ = load(path, loaded.mel.sr)
        except (OSError, ValueError) as e:
            print(f"identify_fingerprint: {path}: {e}", file=sys.stderr)
            continue
        answers = identify_snippet(index, loaded, audio, topk=args.topk, k=args.k, verify=args.verify)
        if not answers:
            print(f"identify_fingerprint: {path}: shorter than one segment or no match", file=sys.stderr)
            continue
        answered += 1
        if args.json:
            print(json.dumps({"query": path, "answers": answers}, ensure_ascii=False))
        else:
            for a in answers:
                print(f"{path}: {a['recording']}  {a['offset_s']:.2f} s  score {a['score']:.3f}")
    return 0 if answered else 1


if __name__ == "__main__":
    sys.exit(main())
