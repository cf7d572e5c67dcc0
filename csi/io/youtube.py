"""Audio downloads from YouTube through yt-dlp: resumable, rate-limited, at most 10 at once.

yt-dlp is an optional dependency (``pip install yt-dlp``): the ``yt_dlp`` module is used
when importable, else the ``yt-dlp`` executable on PATH. Each item ``(id, url)`` becomes
``OUT_DIR/<id>.<ext>``; it is downloaded into a temporary directory and renamed when
complete, so a finished file is kept on a re-run and a ``.part`` is never taken as done.
Unavailable items are listed in ``OUT_DIR/missing.txt`` (``id<TAB>reason``).
"""
from __future__ import annotations

import glob
import importlib
import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from csi.utils import progress_bar

from csi.utils import atomic_write_text

MAX_JOBS = 10   # more parallel downloads than this get the address banned
PARTIAL_SUFFIXES = (".part", ".ytdl", ".tmp", ".temp")
# reasons in missing.txt that a retry will not change (others, e.g. network errors, are retried)
PERMANENT = ("video unavailable", "video is unavailable", "not available", "private video", "removed",
             "terminated", "copyright", "does not exist")
INSTALL_HINT = "yt-dlp is not installed: pip install yt-dlp (audio extraction to opus also needs ffmpeg)"

Backend = Callable[[str, Path], None]   # (url, directory to download into) -> None, raises on failure


class YoutubeError(RuntimeError):
    """A download run that cannot proceed (no yt-dlp, bad list, too many jobs)."""


class ItemError(RuntimeError):
    """One item could not be downloaded; the message is the reason written to missing.txt."""


@dataclass
class Summary:
    """What a run did: ids downloaded, ids already there, ``{id: reason}`` of the missing, and
    the ids of those skipped because an earlier run found them permanently unavailable."""
    downloaded: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def read_missing(path: str | os.PathLike) -> dict[str, str]:
    """``{id: reason}`` of a ``missing.txt`` (empty if there is none)."""
    path = Path(path)
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        item_id, _, reason = line.partition("\t")
        if item_id:
            out[item_id] = reason
    return out


def is_permanent(reason: str) -> bool:
    """True if ``reason`` says the video is gone (a retry would fail the same way)."""
    return any(word in reason.lower() for word in PERMANENT)


def read_url_list(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``id<TAB>url`` lines (blank lines and ``#`` comments skipped); a malformed line or a
    repeated id is a YoutubeError naming ``path:line``."""
    items, seen = [], set()
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise YoutubeError(f"{path}:{lineno}: expected id<TAB>url, got {line!r}")
        item_id, url = parts[0].strip(), parts[1].strip()
        if "/" in item_id or item_id.startswith("."):
            raise YoutubeError(f"{path}:{lineno}: id {item_id!r} is not a file name")
        if item_id in seen:
            raise YoutubeError(f"{path}:{lineno}: id {item_id!r} repeated")
        seen.add(item_id)
        items.append((item_id, url))
    return items


def finished_file(out_dir: Path, item_id: str) -> Path | None:
    """The finished download of ``item_id`` in ``out_dir`` (``<id>.<ext>``), if any."""
    for path in out_dir.glob(f"{glob.escape(item_id)}.*"):
        if path.is_file() and path.stem == item_id and not path.name.endswith(PARTIAL_SUFFIXES):
            return path
    return None


def check_jobs(jobs: int) -> None:
    if not 1 <= jobs <= MAX_JOBS:
        raise YoutubeError(f"--jobs {jobs}: use 1 to {MAX_JOBS} (more parallel downloads than "
                           f"{MAX_JOBS} get the address banned by YouTube)")


def find_backend(audio_format: str = "opus") -> Backend:
    """The yt-dlp module if importable, else the ``yt-dlp`` executable; YoutubeError naming
    ``pip install yt-dlp`` when neither exists. ``audio_format`` ("" for the file as
    served) is the codec audio is extracted to."""
    try:
        module = importlib.import_module("yt_dlp")
    except ImportError:
        module = None
    if module is not None:
        return _module_backend(module, audio_format)
    exe = shutil.which("yt-dlp")
    if exe is None:
        raise YoutubeError(INSTALL_HINT)
    return _executable_backend(exe, audio_format)


def _module_backend(module, audio_format: str) -> Backend:
    def run(url: str, into: Path) -> None:
        options = {"format": "bestaudio/best", "outtmpl": str(into / "%(id)s.%(ext)s"), "quiet": True,
                   "noprogress": True, "no_warnings": True, "noplaylist": True}
        if audio_format:
            options["postprocessors"] = [{"key": "FFmpegExtractAudio", "preferredcodec": audio_format}]
        try:
            with module.YoutubeDL(options) as ydl:
                status = ydl.download([url])
        except Exception as e:   # yt_dlp.utils.DownloadError and friends: the item is unavailable
            raise ItemError(_one_line(str(e)) or type(e).__name__) from None
        if status:
            raise ItemError(f"yt-dlp returned status {status}")
    return run


def _executable_backend(exe: str, audio_format: str) -> Backend:
    def run(url: str, into: Path) -> None:
        cmd = [exe, "-f", "bestaudio/best", "--no-playlist", "--no-progress", "--quiet", "--no-warnings",
               "-o", str(into / "%(id)s.%(ext)s")]
        if audio_format:
            cmd += ["-x", "--audio-format", audio_format]
        r = subprocess.run([*cmd, url], capture_output=True, text=True)
        if r.returncode != 0:
            lines = [line for line in r.stderr.splitlines() if line.strip()]
            raise ItemError(_one_line(lines[-1]) if lines else f"yt-dlp exit status {r.returncode}")
    return run


def _one_line(text: str) -> str:
    return " ".join(text.split())


def download_one(item_id: str, url: str, out_dir: Path, backend: Backend) -> Path:
    """Download one item into a temporary directory, then rename its file to ``<id>.<ext>``."""
    tmp = out_dir / f".tmp-{item_id}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        backend(url, tmp)
        done = [p for p in tmp.iterdir() if p.is_file() and not p.name.endswith(PARTIAL_SUFFIXES)]
        if len(done) != 1:
            raise ItemError(f"yt-dlp left {len(done)} finished files (expected 1)")
        dest = out_dir / f"{item_id}{done[0].suffix}"
        os.replace(done[0], dest)
        return dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _Pacer:
    """Spaces the starts of downloads at least ``interval_s`` apart (across threads)."""

    def __init__(self, interval_s: float):
        self.interval_s, self.next_start, self.lock = interval_s, 0.0, threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            delay = max(0.0, self.next_start - now)
            self.next_start = max(now, self.next_start) + self.interval_s
        if delay:
            time.sleep(delay)


def download_all(items: Sequence[tuple[str, str]], out_dir: str | os.PathLike, jobs: int = 4,
                 rate_limit_s: float = 1.0, progress: bool = True, backend: Backend | None = None,
                 audio_format: str = "opus", retry_missing: bool = False) -> Summary:
    """Download every ``(id, url)`` not already finished in ``out_dir``, ``jobs`` at a time
    with starts ``rate_limit_s`` apart; writes ``missing.txt`` (empty when nothing is).
    Ids an earlier ``missing.txt`` gives a permanent reason (video unavailable, private,
    removed ...) are not tried again unless ``retry_missing``; other failures are retried.
    ``backend`` defaults to ``find_backend(audio_format)``, looked up only if there is work."""
    check_jobs(jobs)
    if rate_limit_s < 0:
        raise YoutubeError(f"--rate_limit_s must be >= 0, got {rate_limit_s}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = Summary()
    before = {} if retry_missing else read_missing(out_dir / "missing.txt")
    todo = []
    for item_id, url in items:
        if finished_file(out_dir, item_id):
            summary.kept.append(item_id)
        elif is_permanent(before.get(item_id, "")):
            summary.skipped.append(item_id)
            summary.missing[item_id] = before[item_id]
        else:
            todo.append((item_id, url))
    if todo:
        backend = backend or find_backend(audio_format)
    pacer, lock = _Pacer(rate_limit_s), threading.Lock()

    def work(item: tuple[str, str]) -> None:
        pacer.wait()
        try:
            download_one(item[0], item[1], out_dir, backend)
        except (ItemError, OSError) as e:
            with lock:
                summary.missing[item[0]] = _one_line(str(e))
        else:
            with lock:
                summary.downloaded.append(item[0])

    with progress_bar(total=len(todo), desc="yt-dlp", unit="file", disable=not progress) as bar, \
            ThreadPoolExecutor(max_workers=jobs) as pool:
        for _ in pool.map(work, todo):
            bar.update(1)
    order = {item_id: k for k, (item_id, _) in enumerate(items)}
    atomic_write_text(out_dir / "missing.txt", "".join(
        f"{i}\t{summary.missing[i]}\n" for i in sorted(summary.missing, key=order.get)))
    return summary


def write_url_list(path: str | os.PathLike, items: Iterable[tuple[str, str]]) -> int:
    """Write ``id<TAB>url`` lines atomically; returns their number."""
    lines = [f"{i}\t{u}\n" for i, u in items]
    atomic_write_text(path, "".join(lines))
    return len(lines)
