"""Identify the work of audio recordings against an index (tools.build_index).

    python3 -m tools.identify INDEX_DIR AUDIO... [--topk 10] [--json] [--model_dir DIR]
        [--checkpoint C] [--nprobe N] [--ef_search N] [--k_chunks K] [--device D]

Each query is decoded, its CQT computed and cut into the index's chunks, which are
embedded and searched; chunk hits are aggregated to recordings (best chunk score) and
works (best recording score). Prints the ranked works with their score and best
recording, or with ``--json`` one JSON object a query:
``{"query", "duration_s", "chunks", "works": [{"rank", "song", "score", "utt", "recordings"}],
"recordings": [{"rank", "utt", "song", "score"}]}``.
The model is the one recorded in INDEX_DIR/index.json unless ``--model_dir`` is given; a
model other than the index's is refused with the reason (exit status 2). A query that
cannot be used (unreadable, empty, silent) gets one line on stderr and the others are
still answered; the exit status is 1 only if every query failed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index_dir", type=Path)
    parser.add_argument("audio", nargs="+", help="query audio files")
    parser.add_argument("--topk", type=int, default=10, help="works (and recordings) listed a query")
    parser.add_argument("--json", action="store_true", help="one JSON object a query on stdout")
    parser.add_argument("--model_dir", type=Path, help="default: the model recorded in index.json")
    parser.add_argument("--checkpoint", help="epoch number or file name in pt_model/ (default: the index's)")
    parser.add_argument("--nprobe", type=int, help="ivfpq: lists visited (default: the index's)")
    parser.add_argument("--ef_search", type=int, help="hnsw: search beam (default: the index's)")
    parser.add_argument("--k_chunks", type=int, help="vectors retrieved a query chunk (default max(100, 10·topk))")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.topk < 1:
        print("identify: --topk must be positive", file=sys.stderr)
        return 2
    from csi.index import ChunkIndex, IndexFileError, ModelMismatchError, check_model, model_identity
    from csi.registry import ConfigError

    try:
        index = ChunkIndex.load(args.index_dir)
        recorded = index.model
        model_dir = args.model_dir or Path(recorded.get("model_dir", ""))
        checkpoint = args.checkpoint
        recorded_file = model_dir / "pt_model" / str(recorded.get("checkpoint"))
        if checkpoint is None and recorded.get("checkpoint") and recorded_file.is_file():
            checkpoint = recorded["checkpoint"]
        identity = model_identity(model_dir, checkpoint)
        check_model(recorded, identity, index.dim)
    except (IndexFileError, ModelMismatchError, ConfigError, FileNotFoundError, OSError) as e:
        print(f"identify: {e}", file=sys.stderr)
        return 2
    index.set_search_params(args.nprobe, args.ef_search)

    from csi.eval.embed import audio_features
    from csi.index.embed import FRAMES_PER_SECOND, ChunkSettings, embed_all
    from csi.io.audio import AudioError
    from csi.train.checkpoint import load_model

    model = load_model(model_dir, args.device, identity["checkpoint"])
    settings = ChunkSettings(identity["chunk_frames"], identity["mean_size"],
                             int(recorded.get("hop_frames") or identity["chunk_frames"]))
    answered = 0
    for path in args.audio:
        try:
            feat = audio_features(path)
            if len(feat) == 0:
                raise AudioError("too short: no CQT frame")
        except (AudioError, OSError, ValueError) as e:
            print(f"identify: {path}: {' '.join(str(e).split()) or type(e).__name__}", file=sys.stderr)
            continue
        vectors, _ = embed_all(model, [(0, feat)], settings, args.batch_size, args.device)
        ranking = index.rank(vectors, args.topk, args.k_chunks)
        result = {"query": path, "duration_s": round(len(feat) / FRAMES_PER_SECOND, 2), "chunks": len(vectors),
                  **ranking.to_dict()}
        print(json.dumps(result, ensure_ascii=False) if args.json else format_text(result), flush=True)
        answered += 1
    return 0 if answered else 1


def format_text(result: dict) -> str:
    lines = [f"{result['query']}: {result['duration_s']:.1f} s, {result['chunks']} chunks"]
    if not result["works"]:
        lines.append("  no match")
    for w in result["works"]:
        lines.append(f"  {w['rank']:3d}  {w['score']:.4f}  {w['song']}  (best: {w['utt']})")
    return "\n".join(lines)


def run_and_exit() -> None:
    """Run ``main`` and leave without the interpreter's teardown of torch (~0.3 s of an
    identification's ~2 s): output is flushed first, nothing else needs finalising."""
    import os

    status = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(status)


if __name__ == "__main__":
    run_and_exit()
