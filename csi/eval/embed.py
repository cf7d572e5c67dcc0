"""Track embeddings from chunks, and track distances as the minimum chunk distance
(CoverHunter's evaluation: a track is cut into chunks, the distance of two tracks is the
smallest cosine distance between their chunks; see csi.eval.distance)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from csi.data.dataset import chunk_starts, read_chunk
from csi.eval.distance import ChunkDistances
from csi.eval.metrics import retrieval_metrics, same_source_pairs
from csi.features.cqt import mean_pool_frames
from csi.features.store import load_feature

log = logging.getLogger("csi.eval")

FRAMES_PER_SECOND = 25   # CoverHunter CQT hop: 40 ms


@dataclass
class ChunkEmbeddings:
    """L2-normalised chunk embeddings (chunks, dim), the track index of each chunk (tracks in
    order, chunks of a track contiguous) and the tracks that failed, with the reason."""
    emb: torch.Tensor
    owner: torch.Tensor
    failed: dict[int, str] = field(default_factory=dict)


def track_features(rec: dict) -> np.ndarray:
    """The (frames, bins) features of a record: its stored ``feat`` (memory-mapped), else the
    CQT of its ``wav`` computed on the fly. Raises for anything unusable."""
    if rec.get("feat"):
        feat = load_feature(rec["feat"])
    elif rec.get("wav"):
        feat = audio_features(rec["wav"])
    else:
        raise ValueError("the record has neither 'feat' nor 'wav'")
    if feat.ndim != 2 or feat.shape[0] < 1:
        raise ValueError(f"unexpected feature shape {feat.shape}")
    return feat


class TrackChunks(Dataset):
    """Item i: ``(i, chunks (n, chunk_frames // mean_size, bins) or None, error or None)``:
    the padded, mean-pooled chunks covering track i (csi.data.dataset.chunk_starts)."""

    def __init__(self, records: Sequence[dict], chunk_frames: int, mean_size: int, hop_frames: int | None = None):
        self.records = records
        self.chunk_frames = int(chunk_frames)
        self.hop_frames = int(hop_frames or chunk_frames)
        self.mean_size = int(mean_size)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        try:
            feat = track_features(self.records[i])
            starts = chunk_starts(feat.shape[0], self.chunk_frames, self.hop_frames)
            chunks = torch.stack([mean_pool_frames(read_chunk(feat, s, self.chunk_frames), self.mean_size)
                                  for s in starts])
            return i, chunks, None
        except Exception as e:  # noqa: BLE001 - any unusable file is reported and left out, never fatal
            return i, None, f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"


def _items(batch):
    return batch


@torch.inference_mode()
def embed_tracks(model: torch.nn.Module, records: Sequence[dict], chunk_frames: int, mean_size: int,
                 batch_size: int = 32, device: torch.device | str = "cpu", hop_frames: int | None = None,
                 num_workers: int = 0) -> ChunkEmbeddings:
    """Embed every chunk of every track (features from ``feat``, or computed from ``wav``).

    ``chunk_frames``/``hop_frames`` count feature frames (before ``mean_size`` pooling).
    Tracks that cannot be read are logged and listed in ``failed``; they have no chunk.
    ``num_workers`` DataLoader processes read/compute the features.
    """
    dataset = TrackChunks(records, chunk_frames, mean_size, hop_frames)
    loader = DataLoader(dataset, batch_size=None, shuffle=False, num_workers=num_workers, collate_fn=_items)
    out, owners, failed = [], [], {}
    pending: list[torch.Tensor] = []
    n_pending = 0

    def flush(final: bool) -> None:
        nonlocal pending, n_pending
        feats = torch.cat(pending) if pending else torch.zeros(0)
        while len(feats) >= batch_size or (final and len(feats)):
            batch, feats = feats[:batch_size], feats[batch_size:]
            emb, _ = model.inference(batch.to(device))
            out.append(torch.nn.functional.normalize(emb.float(), dim=1).cpu())
        pending, n_pending = ([feats] if len(feats) else []), len(feats)

    for i, chunks, error in loader:
        if chunks is None:
            log.warning("track %s left out: %s", records[i].get("utt", i), error)
            failed[i] = error
            continue
        pending.append(chunks)
        owners.append(torch.full((len(chunks),), i, dtype=torch.long))
        n_pending += len(chunks)
        if n_pending >= batch_size:
            flush(final=False)
    flush(final=True)
    owner = torch.cat(owners) if owners else torch.zeros(0, dtype=torch.long)
    emb = torch.cat(out) if out else torch.zeros(0, getattr(model, "output_size", 0) or 0)
    return ChunkEmbeddings(emb, owner, failed)


def embed_chunks(model: torch.nn.Module, records: Sequence[dict], chunk_frames: int, mean_size: int,
                 batch_size: int = 32, device: torch.device | str = "cpu",
                 hop_frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """L2-normalised chunk embeddings (chunks, dim), the track index of each chunk, and the
    tracks whose features could not be read (logged; they have no chunk).

    ``chunk_frames`` counts stored feature frames (before ``mean_size`` pooling).
    """
    result = embed_tracks(model, records, chunk_frames, mean_size, batch_size, device, hop_frames)
    return result.emb, result.owner, sorted(result.failed)


_FRONTEND = None


def audio_features(path: str, sr: int = 16000) -> np.ndarray:
    """The CoverHunter CQT (frames, 96) of an audio file, computed on the fly (for queries
    that have no stored features). Raises csi.io.audio.AudioError for unusable audio."""
    global _FRONTEND
    from csi.features.cqt import CoverHunterCQT
    from csi.io.audio import AudioError, load

    if _FRONTEND is None:
        _FRONTEND = CoverHunterCQT(sr=sr).eval()
    y, _ = load(path, sr)
    if float(np.max(np.abs(y))) < 1e-4:
        raise AudioError("silent")
    with torch.inference_mode():
        return _FRONTEND(torch.from_numpy(y)).numpy()


def track_distances(q_emb: torch.Tensor, q_owner: torch.Tensor, n_queries: int,
                    r_emb: torch.Tensor, r_owner: torch.Tensor, n_refs: int) -> np.ndarray:
    """(queries, refs) minimum cosine distance over chunk pairs (+inf for a track without
    chunk), computed block by block (csi.eval.distance.ChunkDistances)."""
    return ChunkDistances(q_emb, q_owner, n_queries, r_emb, r_owner, n_refs, mode="min", device="cpu").full()


def evaluate_map(model: torch.nn.Module, queries: Sequence[dict], refs: Sequence[dict], chunk_frames: int,
                 mean_size: int, batch_size: int = 32, device: torch.device | str = "cpu", *,
                 keep_tempo_copies: bool = False) -> float:
    """MAP of ``queries`` against ``refs`` (relevance: same ``song``). A query never ranks its
    own recording: references with the same source recording (itself and its tempo copies
    ``sp_<k>-<utt>``, csi.eval.metrics.same_source_pairs) are excluded, or with
    ``keep_tempo_copies=True`` only the identical ``utt``. Tracks whose features cannot be
    read are left out (and logged)."""
    was_training = model.training
    model.eval()
    try:
        q = embed_tracks(model, queries, chunk_frames, mean_size, batch_size, device)
        same = [x["utt"] for x in queries] == [x["utt"] for x in refs]
        r = q if same else embed_tracks(model, refs, chunk_frames, mean_size, batch_size, device)
    finally:
        model.train(was_training)
    keep_q = np.setdiff1d(np.arange(len(queries)), list(q.failed))
    keep_r = np.setdiff1d(np.arange(len(refs)), list(r.failed))
    q_emb, q_owner = _renumber(q, keep_q)
    distances = ChunkDistances(q_emb, q_owner, len(keep_q), mode="min", device=device) if same else \
        ChunkDistances(q_emb, q_owner, len(keep_q), *_renumber(r, keep_r), len(keep_r), mode="min", device=device)
    exclude = same_source_pairs([queries[i]["utt"] for i in keep_q], [refs[j]["utt"] for j in keep_r],
                                keep_tempo_copies=keep_tempo_copies)
    result = retrieval_metrics(distances, [queries[i]["song"] for i in keep_q], [refs[j]["song"] for j in keep_r],
                               exclude=exclude)
    return result.metrics["MAP"]


def _renumber(chunks: ChunkEmbeddings, keep: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunk embeddings and owners renumbered to positions in ``keep`` (failed tracks have no chunk)."""
    new_index = torch.full((int(keep.max()) + 1 if len(keep) else 1,), -1, dtype=torch.long)
    new_index[torch.from_numpy(keep)] = torch.arange(len(keep))
    owner = new_index[chunks.owner] if len(chunks.owner) else chunks.owner
    return chunks.emb, owner
