"""Download the audio of YouTube videos through yt-dlp (optional: pip install yt-dlp).

    python3 -m tools.download_youtube LIST [LIST ...] --out_dir DIR [--jobs N] [--rate_limit_s S]
        [--audio_format opus] [--retry_missing] [--no_progress]

Each LIST holds ``id<TAB>url`` lines; each item becomes ``DIR/<id>.<ext>``. A finished file
is kept (a re-run resumes), a download in progress is never taken as done. At most 10
downloads run at once (more get the address banned), starting at least ``--rate_limit_s``
apart. Unavailable items are listed in ``DIR/missing.txt`` (``id<TAB>reason``) and do not
fail the run; ids it gives as gone (unavailable, private, removed) are not tried again
without ``--retry_missing`` (other failures are); exit status 1 when yt-dlp is absent or a list is malformed, 2 on a usage error.
"""
from __future__ import annotations

import argparse
import logging
import sys

from csi.cli import add_progress_arg, run_tool_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lists", nargs="+", help="files of id<TAB>url lines")
    parser.add_argument("--out_dir", required=True, help="where <id>.<ext> files and missing.txt go")
    parser.add_argument("--jobs", type=int, default=4, help="parallel downloads, 1 to 10 (default 4)")
    parser.add_argument("--rate_limit_s", type=float, default=1.0,
                        help="at least this many seconds between the starts of two downloads (default 1)")
    parser.add_argument("--audio_format", default="opus",
                        help="codec the audio is extracted to by yt-dlp/ffmpeg; '' keeps the file as served")
    parser.add_argument("--retry_missing", action="store_true",
                        help="try again the ids missing.txt gives as unavailable (default: skipped)")
    add_progress_arg(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from csi.io.youtube import MAX_JOBS, YoutubeError
    if not 1 <= args.jobs <= MAX_JOBS:
        parser.error(f"--jobs {args.jobs}: use 1 to {MAX_JOBS} (more parallel downloads than {MAX_JOBS} "
                     "get the address banned by YouTube)")
    if args.rate_limit_s < 0:
        parser.error(f"--rate_limit_s must be >= 0, got {args.rate_limit_s}")
    return run_tool_main("download_youtube", lambda: run(args), (YoutubeError,))


def run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from csi.env import write_run_info
    from csi.io.youtube import download_all, read_url_list

    items = [item for path in args.lists for item in read_url_list(path)]
    summary = download_all(items, args.out_dir, jobs=args.jobs, rate_limit_s=args.rate_limit_s,
                           progress=not args.no_progress, audio_format=args.audio_format,
                           retry_missing=args.retry_missing)
    write_run_info(Path(args.out_dir) / "download_youtube.yaml", vars(args))
    logging.info("download_youtube: %d downloaded, %d already there, %d missing (%d of them unavailable in an "
                 "earlier run, not tried again; --retry_missing tries them) (%s)", len(summary.downloaded),
                 len(summary.kept), len(summary.missing), len(summary.skipped), Path(args.out_dir) / "missing.txt")


if __name__ == "__main__":
    sys.exit(main())
