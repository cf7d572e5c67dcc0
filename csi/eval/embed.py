"""Track embeddings from chunks, and track distances as the minimum chunk distance
(CoverHunter's evaluation: a track is cut into chunks, the distance of two tracks is the
smallest cosine distance between their chunks)."""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

from csi.data.dataset import chunk_starts, load_chunk
from csi.eval.metrics import mean_average_precision

log = logging.getLogger("csi.eval")


@torch.inference_mode()
def embed_chunks(model: torch.nn.Module, records: Sequence[dict], chunk_frames: int, mean_size: int,
                 batch_size: int = 32, device: torch.device | str = "cpu",
                 hop_frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """L2-normalised chunk embeddings (chunks, dim), the track index of each chunk, and the
    tracks whose features could not be read (logged; they have no chunk).

    ``chunk_frames`` counts stored feature frames (before ``mean_size`` pooling).
    """
    chunks: list[tuple[int, torch.Tensor]] = []
    failed: list[int] = []
    for i, rec in enumerate(records):
        try:
            starts = chunk_starts(int(rec["feat_len"]), chunk_frames, hop_frames or chunk_frames)
            chunks.extend((i, load_chunk(rec["feat"], start, chunk_frames, mean_size)) for start in starts)
        except (OSError, ValueError, EOFError) as e:
            log.warning("cannot read the features of %s (%s): %s; track left out", rec["utt"], rec["feat"], e)
            failed.append(i)
    embeddings = []
    for b in range(0, len(chunks), batch_size):
        feats = torch.stack([feat for _, feat in chunks[b:b + batch_size]])
        emb, _ = model.inference(feats.to(device))
        embeddings.append(torch.nn.functional.normalize(emb.float(), dim=1).cpu())
    owners = torch.tensor([i for i, _ in chunks], dtype=torch.long)
    if not embeddings:
        return torch.zeros(0, getattr(model, "output_size", 0)), owners, failed
    return torch.cat(embeddings), owners, failed


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
    """(queries, refs) minimum cosine distance over chunk pairs."""
    chunk_dist = 1.0 - q_emb @ r_emb.T                                   # (q chunks, r chunks)
    per_ref = torch.full((len(q_emb), n_refs), float("inf"))
    per_ref.scatter_reduce_(1, r_owner.expand(len(q_emb), -1), chunk_dist, reduce="amin")
    per_track = torch.full((n_queries, n_refs), float("inf"))
    per_track.scatter_reduce_(0, q_owner[:, None].expand(-1, n_refs), per_ref, reduce="amin")
    return per_track.numpy()


def evaluate_map(model: torch.nn.Module, queries: Sequence[dict], refs: Sequence[dict], chunk_frames: int,
                 mean_size: int, batch_size: int = 32, device: torch.device | str = "cpu") -> float:
    """MAP of ``queries`` against ``refs`` (relevance: same ``song``; a track never ranks
    itself). Tracks whose features cannot be read are left out (and logged)."""
    was_training = model.training
    model.eval()
    try:
        q_emb, q_owner, q_failed = embed_chunks(model, queries, chunk_frames, mean_size, batch_size, device)
        same = [q["utt"] for q in queries] == [r["utt"] for r in refs]
        r_emb, r_owner, r_failed = (q_emb, q_owner, q_failed) if same else embed_chunks(
            model, refs, chunk_frames, mean_size, batch_size, device)
    finally:
        model.train(was_training)
    dist = track_distances(q_emb, q_owner, len(queries), r_emb, r_owner, len(refs))
    keep_q = np.setdiff1d(np.arange(len(queries)), q_failed)
    keep_r = np.setdiff1d(np.arange(len(refs)), r_failed)
    dist = dist[np.ix_(keep_q, keep_r)]
    q_utts = np.array([queries[i]["utt"] for i in keep_q])
    r_utts = np.array([refs[i]["utt"] for i in keep_r])
    songs_q = np.array([queries[i]["song"] for i in keep_q])
    songs_r = np.array([refs[i]["song"] for i in keep_r])
    return mean_average_precision(dist, songs_q, songs_r, exclude=q_utts[:, None] == r_utts[None, :])
