"""Da-TACOS (Yesiler et al., ISMIR 2019): metadata and HDF5 trees → manifests and the protocol.

Subsets: ``benchmark`` (15,000 performances: 1,000 works × 13 and 2,000 works of a single
performance, the noise) and ``coveranalysis`` (10,000: 5,000 works × 2, for training). A
subset's metadata is ``{W_id: {P_id: {work_title, work_artist, perf_title, perf_artist,
release_year, work_id, perf_id, instrumental, ...}}}``; its features are one HDF5 file per
performance, ``da-tacos_<subset>_subset_single_files/W_<work>/P_<perf>.h5`` (every feature in one
file) or ``da-tacos_<subset>_subset_<f>/W_<work>_<f>/P_<perf>_<f>.h5`` (the per-feature archives;
``<f>`` is ``crema``, ``hpcp`` or ``cens`` for chroma_cens). Each zip unpacks into a folder of
that name; the folders are found wherever they are under the given root (:func:`find_trees`:
beside ``da-tacos_metadata/``, or a folder further down when the archives were unpacked into
a subdirectory).

Manifest record (one per performance of the metadata): ``utt`` = P_id,
``song`` = W_id, ``version`` = P_id, ``h5`` (the file, when found), ``wav`` (with an audio
directory of ``<P_id>.<ext>`` files), ``noise`` (the work has a single performance), and the
metadata fields. Protocol of the benchmark (as acoss evaluates it): every performance of a
multi-version work is a query (13,000), every performance a reference (15,000, noise
included); a query's own entry is never ranked and a work with fewer than two members is
never queried (csi.scoring.metrics).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

from csi.io.manifest import Record, write_manifest
from csi.io.tree import AUDIO_EXTENSIONS

SUBSETS = ("benchmark", "coveranalysis")
METADATA_FILES = {s: f"da-tacos_{s}_subset_metadata.json" for s in SUBSETS}
AUDIO_EXTS = AUDIO_EXTENSIONS + (".m4a",)
ARCHIVE_SUFFIX = {"chroma_cens": "cens"}     # per-feature archive name of a feature key, when not the key
_PERF_FILE = re.compile(r"^(P_[^_/.]+)(?:_([A-Za-z0-9_]+))?\.h5$")
TREE_DEPTH = 4          # how far below the root find_trees looks for the archive folders


class DatacosError(ValueError):
    """Metadata or a tree that does not look like Da-TACOS."""


def load_metadata(path: str | os.PathLike) -> dict[str, dict[str, dict[str, Any]]]:
    path = Path(path)
    if not path.is_file():
        raise DatacosError(f"metadata file not found: {path}")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise DatacosError(f"{path}: not JSON ({e})") from None
    if not isinstance(meta, dict) or not all(isinstance(v, dict) for v in meta.values()):
        raise DatacosError(f"{path}: expected {{W_id: {{P_id: {{...}}}}}}")
    return meta


def archive_name(feature: str) -> str:
    """The per-feature archive folder suffix of a feature key (``chroma_cens`` → ``cens``)."""
    return ARCHIVE_SUFFIX.get(feature, feature)


def find_trees(root: str | os.PathLike, subset: str, max_depth: int = TREE_DEPTH) -> list[tuple[str, Path]]:
    """``(kind, folder)`` of every ``da-tacos_<subset>_subset_<kind>`` folder at most
    ``max_depth`` levels under ``root`` (kind: ``single_files``, ``crema``, ``hpcp``, ``cens``,
    ...), single-files bundles first, then by path. Work folders (``W_*``) are not entered."""
    prefix = f"da-tacos_{subset}_subset_"
    found: list[tuple[str, Path]] = []
    root = Path(root)
    for dirpath, dirnames, _ in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        keep = []
        for d in sorted(dirnames):
            if d.startswith(prefix) and len(d) > len(prefix):
                found.append((d[len(prefix):], Path(dirpath) / d))
            elif depth + 1 < max_depth and not d.startswith(("W_", ".")):
                keep.append(d)
        dirnames[:] = keep
    return sorted(found, key=lambda kp: (kp[0] != "single_files", str(kp[1])))


def index_h5(tree: str | os.PathLike, feature: str | None = None) -> dict[str, Path]:
    """P_id → HDF5 file under ``tree`` (any depth). ``P_<id>.h5`` files and, for the per-feature
    archives, ``P_<id>_<feature>.h5`` ones (only ``feature``'s when it is given)."""
    out: dict[str, Path] = {}
    for dirpath, _, files in os.walk(tree):
        for name in files:
            m = _PERF_FILE.match(name)
            if not m or (m.group(2) and feature and m.group(2) not in (feature, ARCHIVE_SUFFIX.get(feature))):
                continue
            if m.group(1) not in out or not m.group(2):   # a single-files bundle wins
                out[m.group(1)] = Path(dirpath) / name
    return out


def index_audio(audio_dir: str | os.PathLike) -> dict[str, Path]:
    """P_id → audio file ``<P_id>.<ext>`` under ``audio_dir`` (any depth)."""
    out: dict[str, Path] = {}
    for dirpath, _, files in os.walk(audio_dir):
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() in AUDIO_EXTS:
                out.setdefault(stem, Path(dirpath) / name)
    return out


def subset_records(meta: dict, h5: dict[str, Path] | None = None,
                   audio: dict[str, Path] | None = None) -> tuple[list[Record], list[tuple[str, str]]]:
    """Manifest records of every performance of ``meta`` and the (P_id, reason) of those
    without any file (no h5 and no audio)."""
    records, missing = [], []
    for work, perfs in sorted(meta.items()):
        for perf, info in sorted(perfs.items()):
            rec: Record = {"utt": perf, "song": work, "version": perf, "noise": len(perfs) < 2}
            rec.update({k: v for k, v in (info or {}).items() if k not in rec and isinstance(v, (str, int, float, bool))})
            if h5 is not None and perf in h5:
                rec["h5"] = str(h5[perf])
            if audio is not None and perf in audio:
                rec["wav"] = str(audio[perf])
            if "h5" not in rec and "wav" not in rec:
                missing.append((perf, f"no file for {work}/{perf}"))
                continue
            records.append(rec)
    return records, missing


def protocol(records: Iterable[Record]) -> tuple[list[Record], list[Record]]:
    """(queries, references): queries are the performances of works that have two or more
    (noise excluded), references all of them."""
    refs = list(records)
    return [r for r in refs if not r.get("noise")], refs


def counts(meta: dict) -> dict[str, int]:
    sizes = [len(p) for p in meta.values()]
    return {"works": len(sizes), "performances": sum(sizes), "multi_version_works": sum(s >= 2 for s in sizes),
            "single_version_works": sum(s < 2 for s in sizes),
            "queries": sum(s for s in sizes if s >= 2)}


def write_protocol(out_dir: str | os.PathLike, records: list[Record], prefix: str = "") -> tuple[int, int]:
    """``<prefix>query.txt`` and ``<prefix>ref.txt`` in ``out_dir``; returns their sizes."""
    queries, refs = protocol(records)
    write_manifest(Path(out_dir) / f"{prefix}query.txt", queries)
    write_manifest(Path(out_dir) / f"{prefix}ref.txt", refs)
    return len(queries), len(refs)


def split_by_work(records: list[Record], fraction: float, min_works: int = 2) -> tuple[list[Record], list[Record]]:
    """(train, dev): the works whose sha1(W_id) mapped to [0, 1) is below ``fraction`` are dev
    (fixed whatever the other works are); at least ``min_works`` of them when there are twice
    that many works, none when ``fraction`` is 0."""
    import hashlib

    def position(work: str) -> float:
        return int.from_bytes(hashlib.sha1(work.encode("utf-8")).digest()[:8], "big") / 2 ** 64

    works = sorted({r["song"] for r in records}, key=position)
    if fraction <= 0 or len(works) < 2 * min_works:
        return list(records), []
    dev = {w for w in works if position(w) < fraction}
    if len(dev) < min_works:
        dev = set(works[:min_works])
    return [r for r in records if r["song"] not in dev], [r for r in records if r["song"] in dev]
