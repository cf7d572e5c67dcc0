"""A job array: ``JOB=FIRST:LAST``, the log-path template and the command template."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

PLACEHOLDER = "JOB"
_RANGE = re.compile(r"^JOB=(\d+):(\d+)$")


class JobSpecError(ValueError):
    """A job array that cannot be run as written."""


@dataclass(frozen=True)
class JobArray:
    first: int
    last: int
    log: str                 # log path with JOB in it, e.g. data/log/features.JOB.log
    command: tuple[str, ...]  # argv with JOB where the job number goes
    signature: str = ""      # what else the jobs' outputs depend on (e.g. a checksum of their inputs)

    @classmethod
    def parse(cls, job_range: str, log: str, command: list[str], signature: str = "") -> "JobArray":
        match = _RANGE.match(job_range)
        if not match:
            raise JobSpecError(f"expected JOB=FIRST:LAST (e.g. JOB=1:4), got {job_range!r}")
        first, last = int(match[1]), int(match[2])
        if first < 1 or last < first:
            raise JobSpecError(f"{job_range}: jobs are numbered from 1, FIRST <= LAST")
        if PLACEHOLDER not in Path(log).name or not log.endswith(".log"):
            raise JobSpecError(f"log path {log!r}: it must end in .log and name each job with JOB "
                               "(e.g. log/features.JOB.log), so the jobs do not share one log")
        if not command:
            raise JobSpecError("no command given after the log path")
        return cls(first, last, log, tuple(command), signature)

    @property
    def numbers(self) -> range:
        return range(self.first, self.last + 1)

    @property
    def name(self) -> str:
        """NAME of LOGDIR/NAME.JOB.log (the job name Slurm shows)."""
        return Path(self.log).name.split(PLACEHOLDER)[0].rstrip("._-") or "job"

    def log_of(self, job: int) -> Path:
        return Path(self.log.replace(PLACEHOLDER, str(job)))

    @property
    def status_template(self) -> str:
        """The status path with JOB in it (LOGDIR/NAME.JOB.status): where a job writes its exit status."""
        return self.log[: -len(".log")] + ".status"

    def status_of(self, job: int) -> Path:
        return Path(self.status_template.replace(PLACEHOLDER, str(job)))

    def done_of(self, job: int) -> Path:
        return self.log_of(job).with_suffix(".done")

    def command_of(self, job: int) -> list[str]:
        return [arg.replace(PLACEHOLDER, str(job)) for arg in self.command]

    def signature_of(self, job: int) -> str:
        """What a job's done marker holds: its command and the array's signature."""
        text = "\0".join([*self.command_of(job), self.signature])
        return hashlib.sha1(text.encode()).hexdigest()
