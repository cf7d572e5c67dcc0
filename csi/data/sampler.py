"""M-per-class batch sampler for contrastive / triplet training, DDP-aware and resumable.

Each batch of ``batch_size`` consecutive indices holds ``batch_size // m_per_class``
distinct classes with ``m_per_class`` samples each (the reference's ``m_per_class: 8``).
Per epoch, the class list is shuffled with ``(seed, epoch)`` (the same on every rank) and
split round-robin, so rank ``r`` trains on its own disjoint set of classes and every
contrastive batch stays on one rank. Each rank then walks through shuffled passes over its
classes (a class is not repeated inside a batch).

Epoch length: ``len(labels) // (batch_size * world_size)`` batches per rank (at least one),
the same on every rank so that DistributedDataParallel ranks run the same number of steps;
the rest of the epoch is dropped, like the reference. A rank whose classes hold fewer
samples just makes more passes over them.

Samples of a class: a class with at least ``m`` samples gives ``m`` distinct ones, taken
from a shuffled pass over its members; a class with fewer than ``m`` samples is sampled
*with replacement*: all its samples once, plus random repeats to make up ``m``.

Repeated indices: the datasets draw each item's random numbers from
``(seed, epoch, index)``, so an index yielded twice in one epoch would give the same chunk
twice. With ``distinct_repeats=True`` (default) the r-th repeat (r ≥ 1) of index ``i`` within
the epoch is yielded as ``i + r * len(labels)``; ``ChunkDataset`` reads item
``index % len(dataset)`` and seeds with the full value, so every repeat gets its own chunk
and augmentation. Use ``index % len(labels)`` to map back (``labels_of``).

Resuming: ``set_start_batch(k)`` skips the first k batches of the current epoch; the
remaining batches are identical to the tail of an uninterrupted epoch.
"""
from __future__ import annotations

from collections import deque
from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class MPerClassSampler(Sampler[int]):
    """Yields indices; every ``batch_size`` consecutive ones form one M-per-class batch."""

    def __init__(self, labels: Sequence[int], m_per_class: int, batch_size: int,
                 rank: int = 0, world_size: int = 1, seed: int = 0, distinct_repeats: bool = True,
                 with_epoch: bool = False):
        """``with_epoch``: yield ``(epoch, index)`` pairs (read by ``ChunkDataset``), so the
        items of persistent DataLoader workers follow the epoch without ``set_epoch``."""
        if m_per_class < 1 or batch_size < 1:
            raise ValueError(f"m_per_class and batch_size must be positive, got {m_per_class}, {batch_size}")
        if batch_size % m_per_class:
            raise ValueError(f"batch_size ({batch_size}) must be a multiple of m_per_class ({m_per_class})")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.labels.ndim != 1 or len(self.labels) == 0:
            raise ValueError("labels must be a non-empty 1-d sequence")
        self.m_per_class = int(m_per_class)
        self.batch_size = int(batch_size)
        self.classes_per_batch = self.batch_size // self.m_per_class
        self.rank, self.world_size, self.seed = int(rank), int(world_size), int(seed)
        self.distinct_repeats = distinct_repeats
        self.with_epoch = with_epoch
        self.classes, class_of = np.unique(self.labels, return_inverse=True)
        order = np.argsort(class_of, kind="stable")
        bounds = np.cumsum(np.bincount(class_of, minlength=len(self.classes)))[:-1]
        self.members: list[np.ndarray] = np.split(order, bounds)   # indices of each class
        fewest = len(self.classes) // self.world_size
        if fewest < self.classes_per_batch:
            raise ValueError(
                f"{len(self.classes)} classes over {self.world_size} rank(s) leave {fewest} per rank, "
                f"fewer than the {self.classes_per_batch} classes a batch needs "
                f"(batch_size {self.batch_size} / m_per_class {self.m_per_class})")
        self.num_batches = max(1, len(self.labels) // (self.batch_size * self.world_size))
        self.epoch = 0
        self.start_batch = 0

    # -- epoch and resume state --------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's shuffle (same on all ranks). A new epoch resets the start batch."""
        if int(epoch) != self.epoch:
            self.start_batch = 0
        self.epoch = int(epoch)

    def set_start_batch(self, k: int) -> None:
        """Skip the first ``k`` batches of the current epoch (to resume mid-epoch)."""
        if not 0 <= k <= self.num_batches:
            raise ValueError(f"start batch must be in [0, {self.num_batches}], got {k}")
        self.start_batch = int(k)

    def state_dict(self, batches_done: int = 0) -> dict[str, int]:
        """Resume state after the trainer consumed ``batches_done`` batches of this iteration."""
        return {"epoch": self.epoch, "start_batch": min(self.num_batches, self.start_batch + int(batches_done))}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.set_epoch(state["epoch"])
        self.set_start_batch(state["start_batch"])

    def __len__(self) -> int:
        """Indices yielded by ``__iter__`` (the whole epoch minus skipped batches)."""
        return (self.num_batches - self.start_batch) * self.batch_size

    def labels_of(self, indices: Sequence[int]) -> np.ndarray:
        """Labels of yielded indices (which may be offset by repeats, see the module docstring)."""
        return self.labels[np.asarray(indices, dtype=np.int64) % len(self.labels)]

    # -- the epoch's indices -----------------------------------------------------------
    def rank_classes(self, epoch: int | None = None) -> np.ndarray:
        """Class positions (into ``self.classes``) assigned to this rank for ``epoch``."""
        epoch = self.epoch if epoch is None else int(epoch)
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.classes))
        return perm[self.rank::self.world_size]

    def epoch_indices(self) -> np.ndarray:
        """All indices of the current epoch on this rank, before skipping batches."""
        rng = np.random.default_rng([self.seed, self.epoch, 1, self.rank])
        mine = self.rank_classes()
        m = self.m_per_class
        queue: deque[int] = deque()
        passes: dict[int, tuple[np.ndarray, int]] = {}   # class → (shuffled members, next position)
        out = np.empty(self.num_batches * self.batch_size, dtype=np.int64)
        pos = 0
        for _ in range(self.num_batches):
            chosen: list[int] = []
            while len(chosen) < self.classes_per_batch:
                if not queue:
                    fresh = rng.permutation(mine).tolist()
                    # classes already in this batch go last so that none repeats within it
                    queue.extend([c for c in fresh if c not in chosen] + [c for c in fresh if c in chosen])
                chosen.append(queue.popleft())
            for c in chosen:
                members = self.members[c]
                if len(members) >= m:
                    shuffled, at = passes.get(c, (members, len(members)))
                    if at + m > len(shuffled):
                        shuffled, at = rng.permutation(members), 0
                    picked = shuffled[at:at + m]
                    passes[c] = (shuffled, at + m)
                else:
                    extra = rng.choice(members, size=m - len(members), replace=True)
                    picked = rng.permutation(np.concatenate([members, extra]))
                out[pos:pos + m] = picked
                pos += m
        if self.distinct_repeats:
            out = self._offset_repeats(out)
        return out

    def _offset_repeats(self, indices: np.ndarray) -> np.ndarray:
        """Turn the r-th repeat of index i into ``i + r * len(labels)``."""
        order = np.argsort(indices, kind="stable")
        ordered = indices[order]
        starts = np.r_[0, np.flatnonzero(np.diff(ordered)) + 1]
        run_start = np.repeat(starts, np.diff(np.r_[starts, len(ordered)]))
        repeat = np.empty_like(indices)
        repeat[order] = np.arange(len(ordered)) - run_start
        return indices + repeat * len(self.labels)

    def __iter__(self) -> Iterator[int] | Iterator[tuple[int, int]]:
        indices = self.epoch_indices()[self.start_batch * self.batch_size:].tolist()
        if self.with_epoch:
            return iter([(self.epoch, i) for i in indices])
        return iter(indices)
