"""Downloading and unpacking dataset archives, atomically and with a progress bar."""
from __future__ import annotations

import os
import shutil
import tarfile
import urllib.request
from pathlib import Path

from csi.utils import progress_bar


class DownloadError(RuntimeError):
    """A failed download or extraction; the message names the URL and the paths."""


def fetch(url: str, dest: str | os.PathLike, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``; an existing ``dest`` is kept."""
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with progress_bar(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except (OSError, ValueError) as e:  # URLError and socket errors are OSErrors
        part.unlink(missing_ok=True)
        raise DownloadError(f"could not download {url} to {dest}: {e}") from None
    os.replace(part, dest)
    return dest


def extract_tar(archive: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Unpack a tar archive into ``out_dir`` via a temporary sibling directory.

    Members that would land outside ``out_dir`` are refused.
    """
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:  # Python < 3.11.4: refuse escaping members ourselves
                for member in tar.getmembers():
                    target = (tmp / member.name).resolve()
                    if not str(target).startswith(str(tmp.resolve()) + os.sep):
                        raise tarfile.TarError(f"member {member.name!r} escapes the target directory")
                tar.extractall(tmp)
    except (tarfile.TarError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DownloadError(f"could not extract {archive} into {out_dir}: {e}") from None
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir
