"""Build (or extend) the search index of a reference collection.

    python3 -m tools.build_index MODEL_DIR MANIFEST OUT_DIR [--type flat|ivfpq|hnsw]
        [--nlist N] [--m M] [--nbits B] [--nprobe N] [--hnsw_m M] [--ef_construction N]
        [--ef_search N] [--add] [--centroids] [--batch_size N] [--checkpoint C] [--hop_s S] [--device D]
        [--shard K/N | --merge N]

Each record of MANIFEST (JSON lines with utt, song and feat, or only wav: its features are
computed on the fly by the model's front end, config/model_card.yaml) is cut into chunks of
the model's training length (every ``--hop_s``, default one chunk length), embedded and
indexed with its recording and work. Index parameters not given are chosen from the
collection size (see csi/index/params.py). ``--add`` appends the recordings not yet in
OUT_DIR's index (same model required; IVF lists are not retrained). ``--centroids`` also
writes each work's spherical mean and radius (csi.index.centroids; ``tools.identify
--centroids``). Writes OUT_DIR/index.faiss,
meta.jsonl, index.json and build_index_run.yaml (resolved config and environment).
``--shard K/N`` only embeds every N-th record into OUT_DIR/shards/part-K-of-N/ (one job of
``python3 -m jobs``; no index is written) and ``--merge N`` builds the index from the N parts,
equal to a single build: a missing part, a part of another manifest or chunk hop, or one
embedded by another model is refused, naming the part (csi.index.shards).
Unusable records are reported and left out; the exit status is 1 if nothing could be indexed
(or on bad input: a missing file, another model than the index's with ``--add``).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("csi.index")


def build_parser() -> argparse.ArgumentParser:
    from csi.cli import add_checkpoint_arg, add_device_arg, add_progress_arg, add_shard_args

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path, help="model directory (config/hparams.yaml, pt_model/)")
    parser.add_argument("manifest", type=Path, help="reference collection (JSON lines)")
    parser.add_argument("out_dir", type=Path, help="index directory")
    parser.add_argument("--type", dest="kind", choices=("flat", "ivfpq", "hnsw"), help="index type (default flat)")
    parser.add_argument("--nlist", type=int, help="ivfpq: inverted lists")
    parser.add_argument("--m", type=int, help="ivfpq: PQ sub-quantisers (code bytes)")
    parser.add_argument("--nbits", type=int, help="ivfpq: bits a sub-quantiser code")
    parser.add_argument("--nprobe", type=int, help="ivfpq: lists visited a query")
    parser.add_argument("--hnsw_m", type=int, help="hnsw: links a node")
    parser.add_argument("--ef_construction", type=int, help="hnsw: build beam")
    parser.add_argument("--ef_search", type=int, help="hnsw: search beam")
    parser.add_argument("--add", action="store_true", help="extend the index in OUT_DIR")
    parser.add_argument("--centroids", action="store_true", help="also write per-work centroids and radii")
    parser.add_argument("--batch_size", type=int, default=32, help="chunks a forward pass")
    add_checkpoint_arg(parser)
    parser.add_argument("--hop_s", type=float, help="seconds between chunk starts (default: the chunk length)")
    add_device_arg(parser)
    add_progress_arg(parser)
    add_shard_args(parser, "record")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from csi.cli import check_shard_args, run_tool_main, setup_logging

    check_shard_args(parser, args)
    if args.shard and args.centroids:
        parser.error("--centroids belongs to the merge (--merge N), which writes the index")
    from csi.index import IndexFileError, ModelMismatchError

    setup_logging()
    logging.getLogger("faiss").setLevel(logging.WARNING)     # its loader logs at INFO
    return run_tool_main("build_index", lambda: build(args), (IndexFileError, ModelMismatchError))


def build(args: argparse.Namespace) -> int:
    from csi.env import write_run_info
    from csi.index.build import build_index
    from csi.io.manifest import read_manifest

    records = read_manifest(args.manifest, required=("utt", "song"))
    params = {k: getattr(args, k) for k in ("nlist", "m", "nbits", "nprobe", "hnsw_m", "ef_construction", "ef_search")}
    result = build_index(args.model_dir, records, args.out_dir, kind=args.kind, params=params, add=args.add,
                         hop_s=args.hop_s, checkpoint=args.checkpoint, batch_size=args.batch_size,
                         device=args.device, progress=not args.no_progress, shard=args.shard, merge=args.merge)
    if args.shard:
        return 0              # a part only; the merge reports the unusable records and writes the index
    if result.index is None:
        log.error("build_index: nothing to index (%d records, %d unusable)", len(records), len(result.failed))
        return 1
    index = result.index
    if args.centroids:
        from csi.index.centroids import WorkCentroids
        WorkCentroids.from_index(index).save(args.out_dir)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_run_info(args.out_dir / "build_index_run.yaml", config, index=index.info(), added_recordings=result.added,
                   failed=[{"utt": result.records[i]["utt"], "reason": r} for i, r in result.failed])
    log.info("%s: %d recordings added (%d chunks), %d unusable; index: %s %s, %d recordings, %d works, "
             "%d vectors; %.1f s", args.out_dir, result.added, result.chunks, len(result.failed), index.kind,
             index.params.to_dict(), len(index), len(index.songs), index.ntotal, result.seconds)
    return 0 if result.added or not result.records else 1


if __name__ == "__main__":
    sys.exit(main())
