"""Build (or extend) the search index of a reference collection.

    python3 -m tools.build_index MODEL_DIR MANIFEST OUT_DIR [--type flat|ivfpq|hnsw]
        [--nlist N] [--m M] [--nbits B] [--nprobe N] [--hnsw_m M] [--ef_construction N]
        [--ef_search N] [--add] [--batch_size N] [--checkpoint C] [--hop_frames N] [--device D]

Each record of MANIFEST (JSON lines with utt, song and feat, or only wav: its CQT is
computed on the fly) is cut into chunks of the model's length (``chunk_frame[0]`` ×
``mean_size`` CQT frames, every ``--hop_frames``, default one chunk length), embedded and
indexed with its recording and work. Index parameters not given are chosen from the
collection size (see csi/index/params.py). ``--add`` appends the recordings not yet in
OUT_DIR's index (same model required; IVF lists are not retrained). Writes OUT_DIR/index.faiss,
meta.jsonl, index.json and build_index_run.yaml (resolved config and environment).
Unusable records are reported and left out; the exit status is 1 if nothing could be indexed.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger("csi.index")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    parser.add_argument("--batch_size", type=int, default=32, help="chunks a forward pass")
    parser.add_argument("--checkpoint", help="epoch number or file name in pt_model/ (default: latest)")
    parser.add_argument("--hop_frames", type=int, help="CQT frames between chunk starts (default: chunk length)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no_progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("faiss").setLevel(logging.WARNING)     # its loader logs at INFO
    from csi.io.manifest import ManifestError
    from csi.registry import ConfigError

    try:
        return build(args)
    except (ManifestError, ConfigError, FileNotFoundError, ValueError) as e:
        log.error("build_index: %s", e)
        return 2


def build(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from csi.env import write_run_info
    from csi.index import ChunkIndex, check_model, model_identity
    from csi.index.embed import ChunkSettings, embed_stream, record_features
    from csi.io.manifest import read_manifest
    from csi.train.checkpoint import load_model

    t0 = time.time()
    identity = model_identity(args.model_dir, args.checkpoint)
    records = read_manifest(args.manifest, required=("utt", "song"))
    index = None
    if args.add:
        index = ChunkIndex.load(args.out_dir)
        check_model(index.model, identity, index.dim)
        settings = ChunkSettings(identity["chunk_frames"], identity["mean_size"], int(index.model["hop_frames"]))
        if args.hop_frames and args.hop_frames != settings.hop_frames:
            raise ValueError(f"--hop_frames {args.hop_frames}: the index uses {settings.hop_frames}")
        ignored = [k for k in ("nlist", "m", "nbits", "hnsw_m", "ef_construction") if getattr(args, k) is not None]
        if args.kind and args.kind != index.kind:
            ignored.insert(0, "type")
        if ignored:
            log.warning("--add keeps the index's type and parameters (%s %s); ignoring %s", index.kind,
                        index.params.to_dict(), ", ".join(f"--{k}" for k in ignored))
        index.set_search_params(args.nprobe, args.ef_search)
        skipped = [r["utt"] for r in records if r["utt"] in index]
        if skipped:
            log.info("%d recordings already in the index are skipped", len(skipped))
        records = [r for r in records if r["utt"] not in index]
    else:
        settings = ChunkSettings(identity["chunk_frames"], identity["mean_size"],
                                 args.hop_frames or identity["chunk_frames"])
        if (args.out_dir / "index.json").exists():
            log.info("replacing the index in %s", args.out_dir)
    identity["hop_frames"] = settings.hop_frames

    model = load_model(args.model_dir, args.device, identity["checkpoint"])
    failed: list[tuple[int, str]] = []
    bar = tqdm(records, desc="embed", unit="rec", disable=args.no_progress or not records, file=sys.stderr)
    blocks = list(embed_stream(model, record_features(bar, failed, identity["input_dim"]), settings,
                               args.batch_size, args.device))
    bar.close()
    vectors = np.concatenate([b[0] for b in blocks]) if blocks else np.zeros((0, model.output_size), np.float32)
    owners = np.concatenate([b[1] for b in blocks]) if blocks else np.zeros(0, np.int64)
    t_embed = time.time() - t0

    if index is not None:
        added = index.add(vectors, owners, records)
    else:
        if not len(vectors):
            log.error("build_index: nothing to index (%d records, %d unusable)", len(records), len(failed))
            return 1
        overrides = {k: getattr(args, k) for k in ("nlist", "m", "nbits", "nprobe", "hnsw_m", "ef_construction",
                                                   "ef_search")}
        index = ChunkIndex.build(vectors, owners, records, kind=args.kind or "flat", model=identity, **overrides)
        added = len(index)
    index.save(args.out_dir)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_run_info(args.out_dir / "build_index_run.yaml", config, index=index.info(),
                   added_recordings=added, failed=[{"utt": records[i]["utt"], "reason": r} for i, r in failed])
    log.info("%s: %d recordings added (%d chunks), %d unusable; index: %s %s, %d recordings, %d works, "
             "%d vectors; %.1f s (embedding %.1f s)", args.out_dir, added, len(vectors), len(failed), index.kind,
             index.params.to_dict(), len(index), len(index.songs), index.ntotal, time.time() - t0, t_embed)
    return 0 if added or not records else 1


if __name__ == "__main__":
    sys.exit(main())
