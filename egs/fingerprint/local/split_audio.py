"""Training audio and held-out references for the fingerprint recipe, as folders of links.

    python3 egs/fingerprint/local/split_audio.py SOURCE OUT_DIR [--ref_fraction 0.2]

SOURCE is the demo corpus's ``dataset.txt`` (its ``split`` field: train and val recordings
train the fingerprinter, the test recordings — other works, other timbres — are the
database references) or a folder of audio (files split by a hash of their path, a
``--ref_fraction`` share held out as references). Writes OUT_DIR/train_audio/ and
OUT_DIR/ref_audio/ (symbolic links named after the recording) and prints the counts.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from csi.io.tree import AUDIO_EXTENSIONS, safe_name  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--ref_fraction", type=float, default=0.2)
    args = p.parse_args()
    if args.source.is_file():
        records = [json.loads(line) for line in args.source.read_text().splitlines() if line.strip()]
        items = [(r["utt"], Path(r["wav"]), r.get("split") == "test") for r in records]
    elif args.source.is_dir():
        files = sorted(f for f in args.source.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS)
        items = [(str(f.relative_to(args.source).with_suffix("")), f,
                  zlib.crc32(str(f.relative_to(args.source)).encode()) % 1000 < 1000 * args.ref_fraction)
                 for f in files]
    else:
        print(f"split_audio: not found: {args.source}", file=sys.stderr)
        return 1
    counts = {"train_audio": 0, "ref_audio": 0}
    for name, path, held_out in items:
        sub = "ref_audio" if held_out else "train_audio"
        link = args.out_dir / sub / f"{safe_name(name)}{path.suffix}"
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(path.resolve(), link)
        counts[sub] += 1
    if not counts["train_audio"] or not counts["ref_audio"]:
        print(f"split_audio: {args.source}: need recordings for training and references, got {counts}",
              file=sys.stderr)
        return 1
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
