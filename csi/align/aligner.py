"""Align every pair of versions of every work of a manifest with a coarse model (csi.align).

Recordings are embedded through the one embedding path (csi.embed) in chunks of
``chunk_s`` every ``hop_s``, a block of works at a time (memory does not grow with the
collection). For a pair (a, b) each chunk of a is matched to its most similar chunk of b
and each chunk of b to its most similar chunk of a (similarity: cosine corrected for hubs,
``chunk_similarity``); the matched chunk start times, in
source time (tempo copies scaled back), vote for the time map (csi.align.votes).

The output is JSON lines: a header ``{"header": {...}}`` naming the manifest (path and
SHA-256), the model (checkpoint SHA-256 and card) and the settings, then one line a pair
``{"utt_a", "utt_b", "shift_s", "scale", "shift_frames", "confidence", "n_chunks",
"n_chunks_b"}`` meaning ``t_b = scale * t_a + shift_s`` in seconds of the source recordings
``utt_a`` and ``utt_b`` (``shift_frames``: the shift in feature frames).
"""
from __future__ import annotations

import json
import logging
import os
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from csi.align.pairs import representatives, tempo_of, work_pairs
from csi.io.alignment import FORMAT
from csi.align.votes import dominant_map, tempo_scales

log = logging.getLogger("csi.align")

MATCHES = ("csls", "nearest")
CSLS_NEIGHBOURS = 3


@dataclass(frozen=True)
class AlignSettings:
    chunk_s: float = 15.0             # chunk length (CoverHunter's alignment uses 15 s)
    hop_s: float = 1.25               # between chunk starts: the resolution of the votes
    match: str = "csls"               # "csls" (hubness-corrected) or "nearest" (plain cosine)
    tol_s: float = 2.0                # votes within this many seconds agree
    max_tempo_ratio: float = 1.0      # 1: shifts only; >1 also searches tempo ratios up to this
    max_pairs_per_work: int | None = 100
    seed: int = 0
    batch_size: int = 32
    block_records: int = 256          # recordings embedded at a time

    def __post_init__(self) -> None:
        if self.match not in MATCHES:
            raise ValueError(f"match must be one of {', '.join(MATCHES)}, got {self.match!r}")

    def scales(self) -> tuple[float, ...]:
        return tempo_scales(self.max_tempo_ratio)


@dataclass
class AlignStats:
    works: int = 0
    works_single: int = 0             # skipped: one recording (tempo copies count as one)
    works_capped: int = 0             # more pairs than max_pairs_per_work: sampled
    pairs: int = 0
    pairs_possible: int = 0
    failed_records: int = 0


def align_collection(loaded, records: Sequence[Mapping[str, Any]], settings: AlignSettings,
                     stats: AlignStats | None = None, progress: bool = False,
                     shard: tuple[int, int] | None = None) -> Iterator[dict[str, Any]]:
    """Yield one alignment dict a pair (module docstring). ``loaded``: a csi.embed.LoadedModel.
    ``shard=(k, n)``: only every n-th work from the k-th (job k of n; :func:`merge_parts`
    joins the parts). The pairs of a capped work are drawn by a generator seeded with
    (seed, work), so a work gets the same pairs whichever job aligns it."""
    from csi.embed import embed_records

    stats = AlignStats() if stats is None else stats
    card = loaded.card
    policy = card.chunking(settings.chunk_s, settings.hop_s)
    fps = card.frontend.frames_per_s
    reader = loaded.reader()
    scales = settings.scales()
    works = list(representatives(records).items())
    if shard is not None:
        works = works[shard[0] - 1::shard[1]]
    multi = [(w, srcs) for w, srcs in works if len(srcs) >= 2]
    stats.works, stats.works_single = len(multi), len(works) - len(multi)
    for block in _blocks(multi, settings.block_records):
        todo = [records[i] for _, srcs in block for i in srcs.values()]
        result = embed_records(loaded.model, todo, policy, reader, settings.batch_size, loaded.device,
                               progress=progress)
        stats.failed_records += len(result.failed)
        bounds = result.bounds(len(todo))
        at = 0
        for work, srcs in block:
            chunks = {}
            for src, i in srcs.items():
                rows = slice(bounds[at], bounds[at + 1])
                if at not in result.failed:
                    seconds = result.start[rows] / fps * tempo_of(records[i])      # source time
                    chunks[src] = (result.emb[rows], seconds)
                at += 1
            names = list(chunks)
            n_possible = len(names) * (len(names) - 1) // 2
            pairs = work_pairs(len(names), settings.max_pairs_per_work,
                               np.random.default_rng([settings.seed, zlib.crc32(work.encode())]))
            stats.pairs_possible += n_possible
            stats.works_capped += len(pairs) < n_possible
            for i, j in pairs:
                stats.pairs += 1
                yield align_pair(names[i], chunks[names[i]], names[j], chunks[names[j]], settings.tol_s, scales, fps,
                                 settings.match)


def chunk_similarity(emb_a: np.ndarray, emb_b: np.ndarray, match: str = "csls") -> np.ndarray:
    """(chunks of a, chunks of b) similarities: cosine, or with ``csls`` the cross-domain
    similarity local scaling of Conneau et al. 2018 ("Word Translation Without Parallel
    Data", eq. 6): ``2 cos(x, y) - r_b(x) - r_a(y)``, r the mean cosine to the k nearest
    chunks of the other recording, so a chunk close to everything (a hub: silence, a held
    chord) no longer wins every match."""
    sim = emb_a @ emb_b.T
    if match == "nearest":
        return sim
    r_a = np.sort(sim, axis=1)[:, -min(CSLS_NEIGHBOURS, sim.shape[1]):].mean(axis=1)
    r_b = np.sort(sim, axis=0)[-min(CSLS_NEIGHBOURS, sim.shape[0]):].mean(axis=0)
    return 2 * sim - r_a[:, None] - r_b[None, :]


def align_pair(utt_a: str, a: tuple[np.ndarray, np.ndarray], utt_b: str, b: tuple[np.ndarray, np.ndarray],
               tol_s: float, scales, fps: float, match: str = "csls") -> dict[str, Any]:
    """Match the chunks of a and b both ways and vote (csi.align.votes.dominant_map)."""
    (emb_a, t_a), (emb_b, t_b) = a, b
    sim = chunk_similarity(emb_a, emb_b, match)
    best_b, best_a = sim.argmax(axis=1), sim.argmax(axis=0)
    found = dominant_map(np.concatenate([t_a, t_a[best_a]]), np.concatenate([t_b[best_b], t_b]), tol_s, scales)
    return {"utt_a": utt_a, "utt_b": utt_b, "shift_s": round(found.shift_s, 3), "scale": round(found.scale, 5),
            "shift_frames": int(round(found.shift_s * fps)), "confidence": round(found.confidence, 4),
            "n_chunks": len(t_a), "n_chunks_b": len(t_b)}


def _blocks(works: list, limit: int) -> Iterator[list]:
    block, size = [], 0
    for work, srcs in works:
        if block and size + len(srcs) > limit:
            yield block
            block, size = [], 0
        block.append((work, srcs))
        size += len(srcs)
    if block:
        yield block


def header(loaded, manifest: str | os.PathLike, settings: AlignSettings) -> dict[str, Any]:
    """What the file was made from: checked by csi.io.alignment.read_alignments."""
    from csi.utils import file_sha256

    identity = loaded.identity()
    return {"format": FORMAT, "manifest": str(Path(manifest).resolve()), "manifest_sha256": file_sha256(manifest),
            "model_dir": identity["model_dir"], "checkpoint": identity["checkpoint"],
            "checkpoint_sha256": identity["checkpoint_sha256"], "frontend": identity["frontend"],
            "settings": asdict(settings)}


def write_alignments(path: str | os.PathLike, head: dict[str, Any], lines: Iterator[dict[str, Any]]) -> int:
    """Write the header and the pairs to ``path`` through a temporary name; returns the pair count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps({"header": head}) + "\n")
            for line in lines:
                f.write(json.dumps(line) + "\n")
                n += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def merge_parts(path: str | os.PathLike, head: dict[str, Any], parts: Sequence[Path],
                records: Sequence[Mapping[str, Any]]) -> int:
    """Write the alignment file ``path`` from the part files of n shard jobs: every part must
    exist and carry ``head`` (same manifest, checkpoint and settings) with its shard; the pairs
    come in the order one job writes them (works in manifest order). Returns the pair count."""
    from csi.io.alignment import AlignmentError
    from csi.io.manifest import source_utt

    order = {work: i for i, work in enumerate(representatives(records))}
    work_of = {source_utt(str(r["utt"])): str(r["song"]) for r in records}
    lines: list[dict[str, Any]] = []
    problems = []
    for k, part in enumerate(parts, 1):
        if not part.is_file():
            problems.append(f"shard {k}/{len(parts)}: not finished ({part} missing)")
            continue
        with open(part, encoding="utf-8") as f:
            part_head = json.loads(f.readline()).get("header", {})
            if {key: v for key, v in part_head.items() if key != "shard"} != head or \
                    part_head.get("shard") != [k, len(parts)]:
                problems.append(f"shard {k}/{len(parts)}: made from another manifest, model or settings ({part})")
                continue
            lines.extend(json.loads(line) for line in f if line.strip())
    if problems:
        raise AlignmentError(f"cannot merge the alignment parts of {path}: " + "; ".join(problems))
    lines.sort(key=lambda line: order[work_of[line["utt_a"]]])       # stable: a work's pairs keep their order
    return write_alignments(path, head, iter(lines))
