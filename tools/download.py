"""Download a dataset archive and optionally unpack it.

    python3 -m tools.download URL DEST [--extract_to DIR]

DEST is kept if it exists (a finished download is not repeated); the download goes to
DEST.part and is renamed when complete. Exit status 1 with a message naming the URL and
paths on failure.
"""
from __future__ import annotations

import argparse
import sys

from csi.io.download import DownloadError, extract_tar, fetch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("dest", help="where the archive is stored")
    parser.add_argument("--extract_to", help="unpack the (tar) archive into this directory")
    parser.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
    args = parser.parse_args(argv)
    try:
        archive = fetch(args.url, args.dest, timeout=args.timeout)
        if args.extract_to:
            extract_tar(archive, args.extract_to)
    except DownloadError as e:
        print(f"download: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
