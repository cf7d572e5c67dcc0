"""The whole feature stage over a data directory, on one machine or across torchrun ranks.

``DATA_DIR/dataset.txt`` + ``DATA_DIR/hparams.yaml`` → ``DATA_DIR/cqt_feat/``,
``full.txt`` (sorted by song_id, version_id), ``song_id.map`` (``<song> <song_id>``),
``song_id_num.map`` (``<song_id> <count>``), ``song_name_num.map`` (``<song> <count>``),
``bad.txt`` (``<utt>\t<wav>\t<reason>``) and ``extract_csi_features.yaml`` (resolved
config and environment).

Under torchrun (``WORLD_SIZE`` > 1) each rank takes every WORLD_SIZE-th recording, writes
its part to ``DATA_DIR/shards/``, and rank 0 merges after a barrier (gloo), so a cluster
with a shared file system can split SHS100K.
"""
from __future__ import annotations

import datetime
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from csi.config import from_dict, load_yaml, to_dict
from csi.env import write_run_info
from csi.features.config import FeatureConfig
from csi.features.extract import fingerprint, read_dataset, run
from csi.features.store import FeatureStore
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
                     progress: bool = True, log=print) -> Summary:
    data_dir = Path(data_dir)
    t0 = time.time()
    cfg = load_config(data_dir)
    records = read_dataset(data_dir / "dataset.txt")
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    dist = _init_distributed() if world > 1 else None

    store_root = data_dir / "cqt_feat"
    if rank == 0:
        FeatureStore(store_root, fingerprint(cfg), cfg.feat_dtype).open(overwrite=overwrite)
    if dist:
        dist.barrier()

    mine = records[rank::world]
    produced: list[Record] = []
    bad: list[tuple[str, str, str]] = []
    wav_of = {r["utt"]: r["wav"] for r in records}
    computed, audio_s = 0, 0.0
    for outcome in run(mine, cfg, store_root, nj=nj, progress=progress and rank == 0):
        if outcome.bad_reason:
            bad.append((outcome.source_utt, wav_of[outcome.source_utt], outcome.bad_reason))
            log(f"extract_csi_features: left out {outcome.source_utt} ({wav_of[outcome.source_utt]}): {outcome.bad_reason}")
            continue
        produced.extend(dict(r, source_utt=outcome.source_utt) for r in outcome.records)
        computed += outcome.computed
        audio_s += outcome.audio_s

    if dist:
        shard_dir = data_dir / "shards"
        write_manifest(shard_dir / f"full.{rank}.txt", produced)
        atomic_write_text(shard_dir / f"bad.{rank}.txt", json.dumps({"bad": bad, "computed": computed, "audio_s": audio_s}))
        dist.barrier()
        if rank != 0:
            return Summary(len(mine), len(produced), len(bad), computed, audio_s, time.time() - t0)
        produced, bad, computed, audio_s = [], [], 0, 0.0
        for r in range(world):
            produced.extend(read_manifest(shard_dir / f"full.{r}.txt"))
            part = json.loads((shard_dir / f"bad.{r}.txt").read_text())
            bad.extend(tuple(b) for b in part["bad"])
            computed += part["computed"]
            audio_s += part["audio_s"]

    summary = Summary(len(records), len(produced), len(bad), computed, audio_s, time.time() - t0)
    atomic_write_text(data_dir / "bad.txt", "".join(f"{u}\t{w}\t{why}\n" for u, w, why in sorted(bad)))
    if produced:
        full = assign_ids(produced)
        write_maps(data_dir, full)
        write_manifest(data_dir / "full.txt", full)
    write_run_info(data_dir / "extract_csi_features.yaml", to_dict(cfg),
                   summary=summary.line(), world_size=world, nj=nj)
    return summary


def _init_distributed():
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=48))
    return dist
