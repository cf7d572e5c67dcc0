"""Best pairs without replacement (the track reduction of segment models, CLEWS, Serrà et al.
2025): the mean similarity of the ``k`` segment pairs chosen greedily (the most similar pair,
then the most similar among the segments of neither track used yet, ...), for every pair of
(query track, reference track) of one block of similarities.

``block`` (c_q * n_q, tiles * c_r * tile) holds
``block[a * n_q + q, (t * c_r + b) * tile + s]``: segment a of query q against segment b of
reference ``t * tile + s`` (ChunkDistances' best-pairs layout). Two implementations give the
same values (ties as the naive greedy sorting by (distance, a, b)):

- ``greedy_best_pairs_numba`` (CPU, numba, ``k <= 3``): one pass over the block keeps, for
  every query segment, its 3 best reference segments (value, index), branch-free over the
  ``tile`` references of a tile; the greedy then runs on that (c_q, 3) table, which is
  exact since before the j-th pick (j <= 3) at most j - 1 of a segment's best references
  are used. Work is split over (query, tile) and a tile's rows stay in cache;
- ``greedy_best_pairs_torch`` (any device): a step takes every query segment's best
  similarity by one maximum over the block, the best of those, the reference segment
  where it is attained, then strikes both segments out (-inf) for the next step; ``k``
  passes over the block, which it overwrites.
"""
from __future__ import annotations

import os

import numpy as np
import torch

try:
    import numba
except ImportError:          # optional: the torch implementation is used
    numba = None
else:
    if "NUMBA_THREADING_LAYER" not in os.environ:
        # numba's OpenMP layer next to torch's OpenMP costs ~2 ms a call here (spinning
        # threads); its own work queue ~0.1 ms
        numba.config.THREADING_LAYER = "workqueue"

__all__ = ["greedy_best_pairs", "greedy_best_pairs_numba", "greedy_best_pairs_torch", "HAVE_NUMBA"]

HAVE_NUMBA = numba is not None
NUMBA_MAX_K = 3              # the kernel keeps each query segment's 3 best references


def greedy_best_pairs(block: torch.Tensor, c_q: int, n_q: int, c_r: int, tiles: int, tile: int,
                      k: int) -> torch.Tensor:
    """(n_q, tiles * tile) mean similarity of the ``k`` best pairs: numba on the CPU when
    installed, else torch (``block`` may be overwritten)."""
    if HAVE_NUMBA and k <= NUMBA_MAX_K and block.device.type == "cpu" and block.dtype == torch.float32:
        return greedy_best_pairs_numba(block, c_q, n_q, c_r, tiles, tile, k)
    return greedy_best_pairs_torch(block, c_q, n_q, c_r, tiles, tile, k)


def greedy_best_pairs_torch(block: torch.Tensor, c_q: int, n_q: int, c_r: int, tiles: int, tile: int,
                            k: int) -> torch.Tensor:
    neg_inf = float("-inf")
    n_pairs = n_q * tiles * tile
    cells = block.view(c_q, n_q, tiles, c_r, tile)                     # [a, q, t, b, s]
    pair_q = torch.arange(n_q, device=block.device).repeat_interleave(tiles * tile)
    pair_t = torch.arange(tiles, device=block.device).repeat_interleave(tile).repeat(n_q)
    pair_s = torch.arange(tile, device=block.device).repeat(n_q * tiles)
    total = torch.zeros(n_pairs, device=block.device)
    for step in range(k):
        value, a = cells.amax(dim=3).view(c_q, n_pairs).max(dim=0)
        total += value
        if step == k - 1:
            break
        b = cells[a, pair_q, pair_t, :, pair_s].argmax(dim=1)
        cells[a, pair_q, pair_t, :, pair_s] = neg_inf
        cells[:, pair_q, pair_t, b, pair_s] = neg_inf
    return (total / k).view(n_q, tiles * tile)


def greedy_best_pairs_numba(block: torch.Tensor, c_q: int, n_q: int, c_r: int, tiles: int, tile: int,
                            k: int) -> torch.Tensor:
    out = np.empty((n_q, tiles * tile), dtype=np.float32)
    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    rows, col0 = _c_contiguous_rows(block)
    _kernel(rows.numpy(), col0, c_q, n_q, c_r, tiles, tile, k, out)
    return torch.from_numpy(out)


def _c_contiguous_rows(block: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``block`` as (whole rows of its C-contiguous storage, first column): the kernel
    vectorises only over arrays known to be contiguous (a column slice of the products'
    buffer is not)."""
    if block.is_contiguous():
        return block, 0
    stride = block.stride(0)
    col0 = block.storage_offset() % stride
    if block.stride(1) != 1 or col0 + block.shape[1] > stride or \
            block.storage_offset() - col0 + block.shape[0] * stride > block.untyped_storage().nbytes() // 4:
        return block.contiguous(), 0
    return block.as_strided((block.shape[0], stride), (stride, 1), block.storage_offset() - col0), col0


if HAVE_NUMBA:
    @numba.njit(parallel=True, cache=True, nogil=True, fastmath={"nsz", "arcp", "contract", "reassoc"})
    def _kernel(block, col0, c_q, n_q, c_r, tiles, tile, k, out):                 # pragma: no cover (compiled)
        neg_inf = np.float32(-np.inf)
        for job in numba.prange(n_q * tiles):
            q = job // tiles
            t = job - q * tiles
            # each query segment's 3 best reference segments, one array a rank (no aliasing: vectorised)
            top_v0 = np.full((c_q, tile), neg_inf, dtype=np.float32)
            top_v1 = np.full((c_q, tile), neg_inf, dtype=np.float32)
            top_v2 = np.full((c_q, tile), neg_inf, dtype=np.float32)
            top_b0 = np.zeros((c_q, tile), dtype=np.int32)
            top_b1 = np.zeros((c_q, tile), dtype=np.int32)
            top_b2 = np.zeros((c_q, tile), dtype=np.int32)
            for a in range(c_q):
                row = block[a * n_q + q]
                v0, v1, v2, b0, b1, b2 = top_v0[a], top_v1[a], top_v2[a], top_b0[a], top_b1[a], top_b2[a]
                for b in range(c_r):
                    start = col0 + (t * c_r + b) * tile
                    seg = row[start:start + tile]                           # a slice: no index wrap-around
                    bb = np.int32(b)
                    for s in range(tile):                                  # branch-free over s;
                        x = seg[s]                                         # ties keep the lower b first
                        m0 = x > v0[s]
                        m1 = x > v1[s]
                        m2 = x > v2[s]
                        new_v2 = v1[s] if m1 else (x if m2 else v2[s])
                        new_b2 = b1[s] if m1 else (bb if m2 else b2[s])
                        new_v1 = v0[s] if m0 else (x if m1 else v1[s])
                        new_b1 = b0[s] if m0 else (bb if m1 else b1[s])
                        v0[s] = x if m0 else v0[s]
                        b0[s] = bb if m0 else b0[s]
                        v1[s] = new_v1
                        b1[s] = new_b1
                        v2[s] = new_v2
                        b2[s] = new_b2
            used_a = np.zeros(c_q, dtype=np.bool_)
            used_b = np.zeros(c_r, dtype=np.bool_)
            for s in range(tile):
                used_a[:] = False
                used_b[:] = False
                total = 0.0
                for _ in range(k):
                    best, best_a, best_b = neg_inf, -1, -1
                    for a in range(c_q):                                    # ties: the lowest a
                        if used_a[a]:
                            continue
                        if not used_b[top_b0[a, s]]:                       # the row's best unused reference
                            value, b = top_v0[a, s], top_b0[a, s]
                        elif not used_b[top_b1[a, s]]:
                            value, b = top_v1[a, s], top_b1[a, s]
                        else:
                            value, b = top_v2[a, s], top_b2[a, s]
                        if value > best:
                            best, best_a, best_b = value, a, b
                    total += best
                    used_a[best_a] = True
                    used_b[best_b] = True
                out[q, t * tile + s] = total / k
