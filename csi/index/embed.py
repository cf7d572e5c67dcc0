"""Chunk embeddings of in-memory or stored CQT features, batched across recordings.

Chunks are cut as in ``csi.eval.embed.embed_chunks`` (``chunk_starts`` every ``hop_frames``,
the last one aligned to the end, padded with -100 dB when the recording is shorter, then
``mean_pool_frames``), so indexed and evaluated embeddings agree.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from csi.data.dataset import chunk_starts, read_chunk
from csi.features.cqt import mean_pool_frames

log = logging.getLogger("csi.index")

FRAMES_PER_SECOND = 25  # CQT hop of 40 ms


@dataclass(frozen=True)
class ChunkSettings:
    chunk_frames: int        # stored CQT frames a chunk (model frames × mean_size)
    mean_size: int
    hop_frames: int          # between chunk starts

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def chunks_of(feat: np.ndarray, settings: ChunkSettings) -> list[torch.Tensor]:
    """The pooled chunks ``(chunk_frames // mean_size, bins)`` of one (frames, bins) feature."""
    return [mean_pool_frames(read_chunk(feat, start, settings.chunk_frames), settings.mean_size).contiguous()
            for start in chunk_starts(len(feat), settings.chunk_frames, settings.hop_frames)]


@torch.inference_mode()
def embed_stream(model: torch.nn.Module, items: Iterable[tuple[int, np.ndarray]], settings: ChunkSettings,
                 batch_size: int = 32, device: str | torch.device = "cpu") -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Embed ``(owner, feature)`` pairs; yields ``(L2-normalised embeddings, owners)`` blocks
    of up to ``batch_size`` chunks (chunks of several recordings share a batch)."""
    pending: list[torch.Tensor] = []
    owners: list[int] = []

    def flush(count: int) -> tuple[np.ndarray, np.ndarray]:
        emb, _ = model.inference(torch.stack(pending[:count]).to(device))
        emb = torch.nn.functional.normalize(emb.float(), dim=1).cpu().numpy()
        out = (np.ascontiguousarray(emb, dtype=np.float32), np.asarray(owners[:count], dtype=np.int64))
        del pending[:count], owners[:count]
        return out

    for owner, feat in items:
        chunks = chunks_of(feat, settings)
        pending.extend(chunks)
        owners.extend([owner] * len(chunks))
        while len(pending) >= batch_size:
            yield flush(batch_size)
    if pending:
        yield flush(len(pending))


def embed_all(model: torch.nn.Module, items: Iterable[tuple[int, np.ndarray]], settings: ChunkSettings,
              batch_size: int = 32, device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """All of ``embed_stream`` at once: ``(embeddings (chunks, dim), owners (chunks,))``."""
    blocks = list(embed_stream(model, items, settings, batch_size, device))
    if not blocks:
        dim = int(getattr(model, "output_size", 0))
        return np.zeros((0, dim), np.float32), np.zeros(0, np.int64)
    return np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])


def record_features(records: Sequence[dict[str, Any]], failed: list[tuple[int, str]],
                    input_dim: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(position, feature)`` of each record: its stored ``feat`` (memory-mapped) or, without
    one, the CQT of its ``wav``. Unusable records are logged, appended to ``failed`` as
    ``(position, reason)`` and skipped."""
    from csi.eval.embed import track_features
    from csi.io.audio import AudioError

    for i, rec in enumerate(records):
        source = rec.get("feat") or rec.get("wav")
        try:
            feat = track_features(rec)
            if input_dim is not None and feat.shape[1] != input_dim:
                raise ValueError(f"unexpected feature shape {feat.shape}")
        except (OSError, ValueError, EOFError, AudioError) as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            log.warning("%s (%s): %s; left out", rec.get("utt", f"#{i}"), source, reason)
            failed.append((i, reason))
            continue
        yield i, feat
