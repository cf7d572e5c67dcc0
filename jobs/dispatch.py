"""Run a job array on an engine, skip the jobs that succeeded before, collect exit statuses,
and name the failed jobs (:mod:`jobs`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jobs.engines import ENGINES
from jobs.spec import JobArray, JobSpecError


@dataclass
class Outcome:
    ran: list[int]
    skipped: list[int]
    failed: list[str]       # one line a failed job: name, exit status, log, its last lines

    @property
    def ok(self) -> bool:
        return not self.failed


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _tail(path: Path, lines: int = 5) -> str:
    text = _read(path) or ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def dispatch(array: JobArray, cmd: list[str]) -> Outcome:
    """``cmd``: the engine name and its options (``["local"]``, ``["slurm", "-p", "cpu"]``)."""
    if not cmd or cmd[0] not in ENGINES:
        raise JobSpecError(f"unknown engine {cmd[0] if cmd else ''!r}: expected one of {', '.join(ENGINES)}")
    skipped = [j for j in array.numbers if _read(array.done_of(j)) == array.signature_of(j)]
    pending = [j for j in array.numbers if j not in skipped]
    for job in pending:
        array.log_of(job).parent.mkdir(parents=True, exist_ok=True)
        array.status_of(job).unlink(missing_ok=True)
        array.done_of(job).unlink(missing_ok=True)
    if pending:
        ENGINES[cmd[0]](array, pending, cmd[1:])
    failed = []
    for job in pending:
        status, log = _read(array.status_of(job)), array.log_of(job)
        if status == "0":
            array.done_of(job).write_text(array.signature_of(job) + "\n")
        elif status is None:
            failed.append(f"{array.name}.{job}: no exit status (killed, or lost with its node); log {log}\n{_tail(log)}")
        else:
            killed = f" (signal {int(status) - 128})" if status.isdigit() and int(status) > 128 else ""
            failed.append(f"{array.name}.{job}: exit status {status}{killed}; log {log}\n{_tail(log)}")
    return Outcome(pending, skipped, failed)
