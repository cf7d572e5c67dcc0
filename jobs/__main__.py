"""``python3 -m jobs [--cmd ENGINE] [--signature S] JOB=1:N LOGDIR/NAME.JOB.log COMMAND...``
(see :mod:`jobs`). Exit status 0 when every job succeeded, 1 when one failed (each is named),
2 on a usage error."""
from __future__ import annotations

import argparse
import shlex
import sys

from jobs.dispatch import dispatch
from jobs.engines import EngineError
from jobs.spec import JobArray, JobSpecError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m jobs", description=__doc__)
    parser.add_argument("--cmd", default="local",
                        help="'local [--max_parallel M]' or 'slurm [SBATCH OPTION...]' (default local)")
    parser.add_argument("--signature", default="", help="what the outputs depend on besides the command "
                                                         "(a changed one re-runs jobs that succeeded)")
    parser.add_argument("job_range", metavar="JOB=FIRST:LAST")
    parser.add_argument("log", metavar="LOGDIR/NAME.JOB.log")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        array = JobArray.parse(args.job_range, args.log, args.command, args.signature)
        outcome = dispatch(array, shlex.split(args.cmd))
    except JobSpecError as e:
        parser.error(str(e))
    except EngineError as e:
        print(f"jobs: {e}", file=sys.stderr)
        return 1
    engine = shlex.split(args.cmd)[0]
    print(f"jobs: {array.name} {len(array.numbers) - len(outcome.failed)}/{len(array.numbers)} succeeded "
          f"({len(outcome.ran)} run on {engine}, {len(outcome.skipped)} done before)", file=sys.stderr)
    for line in outcome.failed:
        print(f"jobs: FAILED {line}", file=sys.stderr)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
