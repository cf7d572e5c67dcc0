"""Build the fingerprint database: a faiss index of fingerprints (the seed system's command).

    python3 -m tools.create_faiss_indexes -i FINGERPRINTS -n NAME [-m 32] [-d 128] [-nlist 256]
        [--nprobe N] [--type ivfpq|flat|hnsw] [-o DB_DIR]

FINGERPRINTS is a directory written by ``tools.generate_fingerprints``. IVF-PQ by default
with ``m`` sub-quantisers and ``nlist`` lists (the seed's 32 and 256 up to 100,000 vectors,
fewer lists for small collections, the automatic choice of csi/index/params.py above);
``-d`` checks the fingerprint size. Writes DB_DIR (default FINGERPRINTS/../NAME):
``index.faiss``, ``meta.jsonl``, ``index.json`` (with the fingerprinter's identity: another
model's queries are refused) and ``NAME.json``, the map from vector ids to (recording, time).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from csi.cli import add_renamed_arg, require_options, run_tool_main, setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", type=Path, help="fingerprint directory")
    add_renamed_arg(p, "-i", "--input", type=Path)
    p.add_argument("--name", help="database name (NAME.json id map)")
    add_renamed_arg(p, "-n", "--name")
    p.add_argument("--pq_m", type=int, help="PQ sub-quantisers (default 32)")
    add_renamed_arg(p, "-m", "--pq_m", type=int)
    p.add_argument("--dim", type=int, help="fingerprint size, checked (default: as stored)")
    add_renamed_arg(p, "-d", "--dim", type=int)
    p.add_argument("--nlist", type=int, help="inverted lists (default 256, automatic above 100k vectors)")
    add_renamed_arg(p, "-nlist", "--nlist", type=int)
    p.add_argument("--nprobe", type=int, help="lists visited a query (default nlist/16, at least 16)")
    p.add_argument("--type", dest="kind", choices=("ivfpq", "flat", "hnsw"), default="ivfpq")
    p.add_argument("--out_dir", type=Path, help="database directory (default: beside the input, NAME)")
    add_renamed_arg(p, "-o", "--out_dir", type=Path)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    require_options(parser, args, "--input", "--name")
    setup_logging()
    return run_tool_main("create_faiss_indexes", lambda: run(args), (ValueError,))


def run(args: argparse.Namespace) -> int:
    from csi.env import write_run_info
    from audiofp.database import build_database

    out_dir = args.out_dir or args.input.resolve().parent / args.name
    index = build_database(args.input, out_dir, args.name, args.kind, args.pq_m, args.dim, args.nlist, args.nprobe)
    write_run_info(out_dir / "create_faiss_indexes.yaml", {k: str(v) for k, v in vars(args).items()},
                   index=index.info())
    size = (out_dir / "index.faiss").stat().st_size
    print(f"{out_dir}: {index.ntotal} fingerprints of {len(index)} recordings, {index.kind} "
          f"{index.params.to_dict()}, {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
