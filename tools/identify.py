"""Identify the work of audio recordings against an index (tools.build_index).

    python3 -m tools.identify INDEX_DIR AUDIO... [--topk 10] [--json] [--model_dir DIR]
        [--checkpoint C] [--nprobe N] [--ef_search N] [--k_chunks K] [--distance D] [--best_pairs_k K]
        [--centroids] [--rerank qmax --rerank_top K] [--device D]

Each query is decoded, its CQT computed and cut into the index's chunks, which are
embedded and searched; chunk hits are aggregated to recordings (best chunk score; or, with
``--distance best_pairs|mean``, default the model card's ``matching``, ``1 - distance`` over
all the chunks of each recording hit) and works (best recording score). With ``--centroids``
(an index built with ``build_index --centroids``) works are ranked instead by the cosine of
the query's spherical mean to each work's centroid, with ``within`` (inside the work's
radius); no recordings are listed. Prints the ranked works with their score and best
recording, or with ``--json`` one JSON object a query:
``{"query", "duration_s", "chunks", "works": [{"rank", "song", "score", "utt", "recordings"}],
"recordings": [{"rank", "utt", "song", "score"}]}``.
``--rerank qmax`` re-orders the search's ``--rerank_top`` best recordings by Serrà's Qmax
(csi.eval.rerank: refusals there), adding ``qmax_distance``; ``score`` stays the embedding
similarity. With INDEX_DIR/calibration.json (tools.calibrate_matches) each work also gets
``p_same_work``, the calibrated probability that it is the query's work.
The model is the one recorded in INDEX_DIR/index.json unless ``--model_dir`` is given; a
model other than the index's is refused with the reason (exit status 1). Each query's
features come from the model's own front end (config/model_card.yaml). A query that cannot
be used (missing, unreadable, empty, silent) gets one line on stderr and the others are
still answered; the exit status is 1 if every query failed, 2 on a usage error.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from csi.cli import add_device_arg, add_index_query_args, add_rerank_args

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index_dir", type=Path)
    parser.add_argument("audio", nargs="+", help="query audio files")
    parser.add_argument("--topk", type=int, default=10, help="works (and recordings) listed a query")
    parser.add_argument("--json", action="store_true", help="one JSON object a query on stdout")
    add_index_query_args(parser)
    parser.add_argument("--best_pairs_k", type=int, help="pairs averaged by best_pairs (default: the model's)")
    parser.add_argument("--centroids", action="store_true", help="rank works by their centroids (fast)")
    add_rerank_args(parser)
    parser.add_argument("--batch_size", type=int, default=32)
    add_device_arg(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.topk < 1 or (args.best_pairs_k is not None and args.best_pairs_k < 1) or args.rerank_top < 1 \
            or (args.rerank and args.centroids):
        parser.error("--topk, --rerank_top and --best_pairs_k must be positive; --rerank needs recordings "
                     "(not --centroids)")
    from csi.cli import run_tool_main, setup_logging
    from csi.baselines import BaselineError
    from csi.scoring.calibration import CalibrationMismatch
    from csi.index import IndexFileError, ModelMismatchError

    setup_logging()
    logging.getLogger("csi").setLevel(logging.WARNING)        # stdout is the answer; stderr one line a bad query
    logging.getLogger("csi.embed").setLevel(logging.ERROR)
    errors = (IndexFileError, ModelMismatchError, CalibrationMismatch, BaselineError)
    return run_tool_main("identify", lambda: identify(args), errors)


def identify(args: argparse.Namespace) -> int:
    from csi.features.reader import EmbedInputError
    from csi.identify import Identifier, SearchOptions

    options = SearchOptions(nprobe=args.nprobe, ef_search=args.ef_search, k_chunks=args.k_chunks,
                            distance=args.distance, best_pairs_k=args.best_pairs_k, centroids=args.centroids,
                            rerank=args.rerank, rerank_top=args.rerank_top, batch_size=args.batch_size)
    identifier = Identifier(args.index_dir, args.model_dir, args.checkpoint, args.device, options)
    answered = 0
    for path in args.audio:
        try:
            answer = identifier.identify(path, args.topk)
        except EmbedInputError as e:
            print(f"identify: {path}: {e}", file=sys.stderr)
            continue
        print(json.dumps(answer, ensure_ascii=False) if args.json else format_text(answer), flush=True)
        answered += 1
    return 0 if answered else 1


def format_text(result: dict) -> str:
    lines = [f"{result['query']}: {result['duration_s']:.1f} s, {result['chunks']} chunks"]
    if not result["works"]:
        lines.append("  no match")
    for w in result["works"]:
        p = f"  p={w['p_same_work']:.3f}" if "p_same_work" in w else ""
        where = f"(best: {w['utt']})" if "utt" in w else f"({'within' if w['within'] else 'outside'} its radius)"
        q = f"  qmax {w['qmax_distance']:.4f}" if w.get("qmax_distance") is not None else ""
        lines.append(f"  {w['rank']:3d}  {w['score']:.4f}{p}{q}  {w['song']}  {where}")
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
