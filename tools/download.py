"""Download a dataset archive and optionally unpack it.

    python3 -m tools.download URL DEST [--out_dir DIR] [--timeout_s S] [--no_progress]

DEST is kept if it exists (a finished download is not repeated); the download goes to
DEST.part and is renamed when complete. ``--out_dir DIR`` unpacks the (tar) archive into
DIR (the old spelling ``--extract_to`` still works, with a warning). Exit status 1 with a
message naming the URL and paths on failure, 2 on a usage error.
"""
from __future__ import annotations

import argparse
import os
import sys

from csi.cli import add_progress_arg, add_renamed_arg, run_tool_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("dest", help="where the archive is stored")
    parser.add_argument("--out_dir", help="unpack the (tar) archive into this directory")
    add_renamed_arg(parser, "--extract_to", "--out_dir")
    parser.add_argument("--timeout_s", type=float, default=60.0, help="network timeout in seconds")
    add_renamed_arg(parser, "--timeout", "--timeout_s", type=float)
    add_progress_arg(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.timeout_s <= 0:
        parser.error(f"--timeout_s must be > 0, got {args.timeout_s}")
    from csi.io.download import DownloadError
    return run_tool_main("download", lambda: run(args), (DownloadError,))


def run(args: argparse.Namespace) -> None:
    from csi.io.download import extract_tar, fetch

    if args.no_progress:
        os.environ["TQDM_DISABLE"] = "1"   # csi.io.download's bar takes tqdm's defaults
    archive = fetch(args.url, args.dest, timeout=args.timeout_s)
    if args.out_dir:
        extract_tar(archive, args.out_dir)


if __name__ == "__main__":
    sys.exit(main())
