"""Serve identification over HTTP: a JSON endpoint and a page to drop an audio file on.

    python3 -m tools.serve_identify INDEX_DIR [--host 127.0.0.1] [--port 8000] [--topk 10]
        [--max_mb 50] [--max_seconds 900] [--model_dir DIR] [--checkpoint C] [--device D]
        [--nprobe N] [--ef_search N] [--k_chunks K] [--distance D] [--out_dir DIR]

Opens INDEX_DIR (tools.build_index) with its model once — csi.identify's Identifier, the
query path of tools.identify — and serves, until interrupted (Ctrl-C, SIGTERM):
``GET /`` the page, ``POST /identify`` (the audio as the body, or a multipart form's
``file``; ``?topk=N``) answering tools.identify's JSON with offsets, ``distance``,
``p_same_work`` (a calibrated index) and ``plot``, ``GET /plot/<id>.png`` the best match's
alignment plot, ``GET /health``. A bad upload (empty, too large, too long, not audio,
silent) gets a 4xx and ``{"error": reason}``; the service goes on (docs/serve.md).
Prints the URL on stdout once listening (``--port 0``: a free port). With ``--out_dir`` the
log goes to OUT_DIR/serve_identify.log and the resolved options with the environment to
OUT_DIR/serve_identify.yaml; without it they are logged. The index or model failing to open
is exit status 1 with one line.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

log = logging.getLogger("csi.serve")


def build_parser() -> argparse.ArgumentParser:
    from csi.cli import add_device_arg, add_index_query_args, positive_int

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("index_dir", type=Path)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: a free one)")
    parser.add_argument("--topk", type=positive_int, default=10, help="works listed unless ?topk= says (default 10)")
    parser.add_argument("--max_topk", type=positive_int, default=100, help="largest ?topk= accepted")
    parser.add_argument("--max_mb", type=float, default=50.0, help="largest upload in MB (default 50)")
    parser.add_argument("--max_seconds", type=float, default=900.0, help="longest upload in seconds (default 900)")
    add_index_query_args(parser)
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads for a query (default 1)")
    parser.add_argument("--out_dir", type=Path, help="log and run record here (default: log on stderr only)")
    add_device_arg(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535 or args.max_mb <= 0 or args.max_seconds <= 0 or args.topk > args.max_topk:
        parser.error("--port must be 0..65535, --max_mb and --max_seconds positive, --topk at most --max_topk")
    from csi.cli import run_tool_main
    from csi.index import IndexFileError, ModelMismatchError
    from csi.scoring.calibration import CalibrationMismatch

    return run_tool_main("serve_identify", lambda: serve(args), (IndexFileError, ModelMismatchError,
                                                                  CalibrationMismatch))


def serve(args: argparse.Namespace) -> int:
    import torch

    from csi.cli import setup_logging
    from csi.env import write_run_info
    from csi.identify import SearchOptions
    from csi.serve import IdentifyService, ServeOptions, ServingIdentifier, make_server

    torch.set_num_threads(args.threads)
    search = SearchOptions(nprobe=args.nprobe, ef_search=args.ef_search, k_chunks=args.k_chunks,
                           distance=args.distance)
    limits = ServeOptions.from_mb(args.max_mb, max_seconds=args.max_seconds, topk=args.topk, max_topk=args.max_topk)
    identifier = ServingIdentifier(args.index_dir, args.model_dir, args.checkpoint, args.device, search)
    server = make_server(IdentifyService(identifier, limits), args.host, args.port)
    config = {**vars(args), "search": search, "limits": limits, "url": server.url,
              "model_dir": str(identifier.loaded.model_dir), "checkpoint": identifier.loaded.checkpoint.name,
              "device": str(identifier.loaded.device)}
    if args.out_dir is not None:
        setup_logging(args.out_dir / "serve_identify.log")
        write_run_info(args.out_dir / "serve_identify.yaml", config)
    else:
        from csi.env import environment, plain
        log.info("options: %s; environment: %s", plain(config), environment())
    stop = lambda *_: threading.Thread(target=server.shutdown, daemon=True).start()   # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    log.info("%d recordings of %d works; serving on %s", len(identifier.index.recordings),
             len(identifier.index.songs), server.url)
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
