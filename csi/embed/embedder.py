"""Batched, streaming chunk embeddings of many recordings (CoverHunter's evaluation: a track
is cut into chunks, each chunk embedded; track distances come from chunk distances,
csi.scoring.distance). Chunks of several recordings share a batch; memory holds one batch.

Failure policy: a record that cannot be read (``EmbedInputError``, e.g. missing, silent,
wrong shape) is logged, reported in ``failed`` with its reason and has no chunk; anything
else (a bug, a front-end mismatch) stops the run.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from csi.chunking import ChunkPolicy
from csi.features.reader import EmbedInputError, FeatureReader

log = logging.getLogger("csi.embed")


@dataclass
class ChunkEmbeddings:
    """L2-normalised chunk embeddings (chunks, dim), the record index of each chunk (records
    in order, a record's chunks contiguous), the start frame of each chunk in its record,
    and the records that failed, with the reason."""
    emb: np.ndarray
    owner: np.ndarray
    failed: dict[int, str] = field(default_factory=dict)
    start: np.ndarray | None = None

    def bounds(self, n_records: int) -> np.ndarray:
        """Row ranges: the chunks of record i are rows ``bounds[i]:bounds[i + 1]``."""
        return np.searchsorted(self.owner, np.arange(n_records + 1))

    def per_record(self, n_records: int) -> list[np.ndarray]:
        """The (chunks, dim) embeddings of each of ``n_records`` records (empty when failed)."""
        bounds = self.bounds(n_records)
        return [self.emb[bounds[i]:bounds[i + 1]] for i in range(n_records)]


class _RecordChunks(torch.utils.data.Dataset):
    """Item i: ``(i, (chunks, starts) or None, reason or None)``; run in DataLoader workers when asked."""

    def __init__(self, records: Sequence[Mapping[str, Any]], policy: ChunkPolicy, reader: FeatureReader):
        self.records, self.policy, self.reader = records, policy, reader

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        try:
            feat = self.reader(self.records[i])
            return i, (self.policy.chunks(feat), np.asarray(self.policy.starts(len(feat)), np.int64)), None
        except EmbedInputError as e:
            return i, None, " ".join(str(e).split()) or type(e).__name__


def _chunk_items(records, policy, reader, num_workers: int) -> Iterator:
    dataset = _RecordChunks(records, policy, reader)
    if num_workers <= 0:
        return (dataset[i] for i in range(len(dataset)))
    return iter(torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=num_workers,
                                            collate_fn=lambda item: item))


@torch.inference_mode()
def embed_stream(model: torch.nn.Module, records: Sequence[Mapping[str, Any]], policy: ChunkPolicy,
                 reader: FeatureReader, batch_size: int = 32, device: Any = "cpu", failed: dict | None = None,
                 num_workers: int = 0, progress: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(L2-normalised embeddings float32, record indices, chunk start frames)`` blocks of up to
    ``batch_size`` chunks. Failed records go to ``failed`` (index → reason). The model runs
    in eval mode; its training mode is restored afterwards."""
    from csi.utils import progress_bar

    failed = {} if failed is None else failed
    was_training = model.training
    model.eval()
    pending: list[torch.Tensor] = []
    owners: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    n_pending = 0

    def flush(count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nonlocal pending, owners, starts, n_pending
        feats, owner, start = torch.cat(pending), np.concatenate(owners), np.concatenate(starts)
        emb = torch.nn.functional.normalize(model(feats[:count].to(device)).float(), dim=1).cpu().numpy()
        if count < len(feats):
            pending, owners, starts = [feats[count:]], [owner[count:]], [start[count:]]
        else:
            pending, owners, starts = [], [], []
        n_pending -= count
        return np.ascontiguousarray(emb, dtype=np.float32), owner[:count].astype(np.int64), start[:count]

    bar = progress_bar(total=len(records), desc="embed", unit="rec", disable=not progress or not records, file=sys.stderr,
               dynamic_ncols=True)
    try:
        for i, item, reason in _chunk_items(records, policy, reader, num_workers):
            bar.update(1)
            if item is None:
                log.warning("%s left out: %s", records[i].get("utt", f"#{i}"), reason)
                failed[i] = reason
                continue
            chunks, chunk_starts = item
            pending.append(chunks)
            starts.append(chunk_starts)
            owners.append(np.full(len(chunks), i, dtype=np.int64))
            n_pending += len(chunks)
            while n_pending >= batch_size:
                yield flush(batch_size)
        if n_pending:
            yield flush(n_pending)
    finally:
        bar.close()
        model.train(was_training)


def embed_records(model: torch.nn.Module, records: Sequence[Mapping[str, Any]], policy: ChunkPolicy,
                  reader: FeatureReader, batch_size: int = 32, device: Any = "cpu", num_workers: int = 0,
                  progress: bool = False) -> ChunkEmbeddings:
    """All of :func:`embed_stream` at once."""
    failed: dict[int, str] = {}
    blocks = list(embed_stream(model, records, policy, reader, batch_size, device, failed, num_workers, progress))
    if not blocks:
        dim = int(getattr(model, "output_size", 0) or 0)
        return ChunkEmbeddings(np.zeros((0, dim), np.float32), np.zeros(0, np.int64), failed, np.zeros(0, np.int64))
    return ChunkEmbeddings(*(np.concatenate([b[k] for b in blocks]) for k in (0, 1)), failed,
                           np.concatenate([b[2] for b in blocks]))
