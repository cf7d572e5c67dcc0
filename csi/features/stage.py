"""The whole feature stage over a data directory, on one machine or across torchrun ranks.

``DATA_DIR/dataset.txt`` + ``DATA_DIR/hparams.yaml`` → ``DATA_DIR/cqt_feat/``,
``full.txt`` (sorted by song_id, version_id), ``song_id.map`` (``<song> <song_id>``),
``song_id_num.map`` (``<song_id> <count>``), ``song_name_num.map`` (``<song> <count>``),
``bad.txt`` (``<utt>\t<wav>\t<reason>``) and ``extract_csi_features.yaml`` (resolved
config and environment).

Split into N jobs (``shard=(k, N)``, e.g. Slurm array tasks through ``python3 -m jobs``) or
torchrun ranks, each takes every N-th recording and writes its part to ``DATA_DIR/shards/``;
the parts are merged once all are complete (after a barrier under torchrun, by
:func:`merge_shards` otherwise), so a cluster with a shared file system can split SHS100K.
The outputs equal those of one process.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from csi.config import from_dict, load_yaml, to_dict
from csi.env import write_run_info
from csi.features.config import FeatureConfig
from csi.features.extract import fingerprint, read_dataset, run
from csi.features.store import FeatureStore, FeatureStoreError
from csi.io.manifest import Record, atomic_write_text, read_manifest, write_manifest


@dataclass
class Summary:
    recordings: int
    utts: int
    bad: int
    computed: int
    audio_s: float
    seconds: float

    def line(self) -> str:
        return (f"{self.recordings - self.bad}/{self.recordings} recordings -> {self.utts} utts "
                f"({self.computed} computed, {self.utts - self.computed} reused), {self.bad} bad, "
                f"{self.audio_s:.0f} audio-s in {self.seconds:.1f} s")


def load_config(data_dir: str | os.PathLike) -> FeatureConfig:
    path = Path(data_dir) / "hparams.yaml"
    data = load_yaml(path) if path.exists() else {}
    return from_dict(FeatureConfig, data, where=str(path))


def assign_ids(records: list[Record]) -> list[Record]:
    """Add ``song_id`` (dense from 0, in song-name order, so it is stable for a manifest)
    and ``version_id`` (per song, dense, one per source recording: augmented copies share
    their source's id); return the records sorted by (song_id, version_id, utt)."""
    song_ids = {song: i for i, song in enumerate(sorted({r["song"] for r in records}))}
    sources: dict[int, dict[str, int]] = {}
    for rec in sorted(records, key=lambda r: r.get("source_utt", r["utt"])):
        per_song = sources.setdefault(song_ids[rec["song"]], {})
        per_song.setdefault(rec.get("source_utt", rec["utt"]), len(per_song))
    out = []
    for rec in records:
        sid = song_ids[rec["song"]]
        rec = dict(rec, song_id=sid, version_id=sources[sid][rec.get("source_utt", rec["utt"])])
        rec.pop("source_utt", None)
        out.append(rec)
    return sorted(out, key=lambda r: (r["song_id"], r["version_id"], r["utt"]))


def write_maps(data_dir: Path, records: list[Record]) -> None:
    songs: dict[str, int] = {}
    counts: dict[int, int] = {}
    for rec in records:
        songs[rec["song"]] = rec["song_id"]
        counts[rec["song_id"]] = counts.get(rec["song_id"], 0) + 1
    atomic_write_text(data_dir / "song_id.map", "".join(f"{s} {i}\n" for s, i in sorted(songs.items(), key=lambda x: x[1])))
    atomic_write_text(data_dir / "song_id_num.map", "".join(f"{i} {n}\n" for i, n in sorted(counts.items())))
    atomic_write_text(data_dir / "song_name_num.map",
                      "".join(f"{s} {counts[i]}\n" for s, i in sorted(songs.items())))


def extract_features(data_dir: str | os.PathLike, nj: int = 1, overwrite: bool = False,
                     progress: bool = True, log=print, shard: tuple[int, int] | None = None) -> Summary:
    """The feature stage over DATA_DIR with ``nj`` worker processes.

    ``shard=(k, n)``: job k (1-based) of n independent jobs (a job dispatcher's, e.g. Slurm
    array tasks) takes every n-th recording from the k-th and writes its part to
    ``DATA_DIR/shards/``; :func:`merge_shards` joins the n parts. Under torchrun the ranks
    are those shards, and rank 0 merges after a barrier.
    """
    data_dir = Path(data_dir)
    cfg = load_config(data_dir)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if shard is not None and world > 1:
        raise ValueError("shard: give either a shard or torchrun ranks, not both")
    if shard is not None and overwrite:
        raise ValueError("--overwrite empties the store, which the other shards write: run it unsharded")
    dist = _init_distributed() if world > 1 else None
    store = FeatureStore(data_dir / "cqt_feat", fingerprint(cfg), cfg.feat_dtype)
    if shard is not None:
        store.open(clean_temporaries=False)   # other jobs may be writing
    elif rank == 0:
        store.open(overwrite=overwrite)
    if dist:
        dist.barrier()
    if shard is None and not dist:
        return _merge(data_dir, cfg, [_extract_part(data_dir, cfg, None, nj, progress, log)], nj)
    k, n = shard if shard is not None else (rank + 1, world)
    part = _extract_part(data_dir, cfg, (k, n), nj, progress and k == 1, log)
    if not dist:
        return part.summary
    dist.barrier()
    return merge_shards(data_dir, world, nj) if rank == 0 else part.summary


@dataclass
class _Part:
    records: list[Record]
    bad: list[tuple[str, str, str]]
    summary: Summary


def _part_paths(data_dir: Path, k: int, n: int) -> tuple[Path, Path]:
    """A shard's records and its summary (written last: the shard's completion marker)."""
    return data_dir / "shards" / f"full.{k}-of-{n}.txt", data_dir / "shards" / f"part.{k}-of-{n}.json"


def _inputs_signature(data_dir: Path, cfg: FeatureConfig) -> str:
    """What a shard was made from: the manifest's bytes and the resolved config (device aside)."""
    settings = {key: value for key, value in to_dict(cfg).items() if key != "device"}
    digest = hashlib.sha1((data_dir / "dataset.txt").read_bytes())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def _extract_part(data_dir: Path, cfg: FeatureConfig, shard: tuple[int, int] | None, nj: int,
                  progress: bool, log) -> _Part:
    t0 = time.time()
    records = read_dataset(data_dir / "dataset.txt")
    mine = records if shard is None else records[shard[0] - 1::shard[1]]
    produced: list[Record] = []
    bad: list[tuple[str, str, str]] = []
    wav_of = {r["utt"]: r["wav"] for r in records}
    computed, audio_s = 0, 0.0
    for outcome in run(mine, cfg, data_dir / "cqt_feat", nj=nj, progress=progress):
        if outcome.bad_reason:
            bad.append((outcome.source_utt, wav_of[outcome.source_utt], outcome.bad_reason))
            log(f"extract_csi_features: left out {outcome.source_utt} ({wav_of[outcome.source_utt]}): {outcome.bad_reason}")
            continue
        produced.extend(dict(r, source_utt=outcome.source_utt) for r in outcome.records)
        computed += outcome.computed
        audio_s += outcome.audio_s
    summary = Summary(len(mine), len(produced), len(bad), computed, audio_s, time.time() - t0)
    if shard is not None:
        manifest, marker = _part_paths(data_dir, *shard)
        marker.unlink(missing_ok=True)
        write_manifest(manifest, produced)
        atomic_write_text(marker, json.dumps({"inputs": _inputs_signature(data_dir, cfg), "bad": bad,
                                              "summary": asdict(summary)}) + "\n")
    return _Part(produced, bad, summary)


def merge_shards(data_dir: str | os.PathLike, n: int, nj: int = 1) -> Summary:
    """Join the parts of the n shard jobs into DATA_DIR's outputs. Every part must be complete
    and made from the present manifest and config: a missing, unfinished or stale one is
    named (run that shard again) and nothing is merged."""
    data_dir = Path(data_dir)
    cfg = load_config(data_dir)
    expected = _inputs_signature(data_dir, cfg)
    parts, problems = [], []
    for k in range(1, n + 1):
        manifest, marker = _part_paths(data_dir, k, n)
        if not marker.exists():
            problems.append(f"shard {k}/{n}: not finished ({marker} missing)")
            continue
        info = json.loads(marker.read_text(encoding="utf-8"))
        if info.get("inputs") != expected:
            problems.append(f"shard {k}/{n}: made from another dataset.txt or config ({marker})")
            continue
        parts.append(_Part(read_manifest(manifest), [tuple(b) for b in info["bad"]], Summary(**info["summary"])))
    if problems:
        raise FeatureStoreError("cannot merge the feature shards of " + str(data_dir) + ": " + "; ".join(problems))
    for tmp in (data_dir / "cqt_feat").glob("??/.*.tmp"):   # left by killed jobs (none runs now)
        tmp.unlink(missing_ok=True)
    return _merge(data_dir, cfg, parts, nj, jobs=n)


def _merge(data_dir: Path, cfg: FeatureConfig, parts: list[_Part], nj: int, jobs: int = 1) -> Summary:
    produced = [r for part in parts for r in part.records]
    bad = [b for part in parts for b in part.bad]
    s = [part.summary for part in parts]
    summary = Summary(sum(x.recordings for x in s), len(produced), len(bad), sum(x.computed for x in s),
                      sum(x.audio_s for x in s), max(x.seconds for x in s))
    atomic_write_text(data_dir / "bad.txt", "".join(f"{u}\t{w}\t{why}\n" for u, w, why in sorted(bad)))
    if produced:
        full = assign_ids(produced)
        write_maps(data_dir, full)
        write_manifest(data_dir / "full.txt", full)
    write_run_info(data_dir / "extract_csi_features.yaml", to_dict(cfg),
                   summary=summary.line(), world_size=jobs, nj=nj)
    return summary


def _init_distributed():
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=48))
    return dist
