"""Track distances from chunk embeddings, block by block.

A track is cut into chunks, each embedded and L2-normalised. Two modes:

- ``"min"`` (CoverHunter's evaluation): the distance of two tracks is the smallest cosine
  distance ``1 - <q, r>`` over all pairs of their chunks;
- ``"mean"``: the chunk embeddings of a track are averaged and renormalised, and tracks are
  compared by cosine distance;
- ``"best_pairs"`` (the "best pairs" reduction of segment models, CLEWS, Serrà et al.
  2025): the mean cosine distance of the ``k`` best chunk pairs taken without replacement
  (greedily: the closest pair, then the closest among the chunks not used yet, ...), with
  ``k = min(best_k, chunks of either track)``; ``best_k = 1`` is ``"min"``.

``ChunkDistances.rows(start, stop)`` returns the distances of a block of query tracks to
every reference (``rows_into`` writes them into a caller's buffer), computed as matrix
products over query sub-blocks bounded by ``block_elements`` chunk-pair similarities (one
reused buffer), so memory never grows with the square of the collection. Tracks are
grouped by their number of chunks ``c`` and their chunks laid out chunk-major (first chunk
of every track, then the second...), so the maximum similarity over a track's chunks is an
elementwise maximum of ``c`` contiguous slices — vectorised, on the GPU when the
embeddings are there — whatever the chunk counts. A track without chunk (its features
could not be read) is at distance +inf from everything.
"""
from __future__ import annotations

import numpy as np
import torch

from csi.scoring.matching import DISTANCES as MODES
from csi.scoring.best_pairs import greedy_best_pairs
from csi.utils import resolve_device

__all__ = ["ChunkDistances", "MODES", "track_mean_embeddings", "naive_track_distances", "resolve_device"]

DEFAULT_BLOCK_ELEMENTS = 1 << 26   # chunk-pair similarities per matrix product (256 MB in float32)
BEST_PAIRS_TILE = 32               # reference tracks a tile in the best-pairs layout (see _Layout.tiled_rows)


def _as_tensor(x, device: torch.device) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device=device, dtype=torch.float32)


def _as_owner(x) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    return t.to("cpu", torch.long).reshape(-1)


def track_mean_embeddings(emb, owner, n_tracks: int, device: str | torch.device | None = "cpu") -> torch.Tensor:
    """(n_tracks, dim) average of each track's chunk embeddings, L2-normalised; a track
    without chunk gets a zero row."""
    device = resolve_device(device)
    emb = _as_tensor(emb, device)
    owner = _as_owner(owner).to(device)
    sums = torch.zeros(n_tracks, emb.shape[1], device=device).index_add_(0, owner, emb)
    return torch.nn.functional.normalize(sums, dim=1)


class _Layout:
    """Chunks of a set of tracks grouped by chunk count: for each count ``c`` the tracks that
    have ``c`` chunks and their chunk rows, contiguous and in track order."""

    def __init__(self, owner: torch.Tensor, n_tracks: int):
        owner = owner.numpy()
        if len(owner) and (owner.min() < 0 or owner.max() >= n_tracks):
            raise ValueError(f"chunk owner index out of range for {n_tracks} tracks")
        self.n_tracks = n_tracks
        self.counts = np.bincount(owner, minlength=n_tracks)
        self.chunk_order = np.argsort(owner, kind="stable")          # chunk rows sorted by track
        self.track_offset = np.concatenate([[0], np.cumsum(self.counts)])

    def chunk_rows(self, tracks: np.ndarray, c: int) -> np.ndarray:
        """Chunk rows of ``tracks`` (all with ``c`` chunks), chunk-major: the first chunk of
        every track, then the second..., so that the maximum over a track's chunks is an
        elementwise maximum of ``c`` contiguous slices."""
        return self.chunk_order[(np.arange(c)[:, None] + self.track_offset[tracks][None, :]).ravel()]

    def tiled_rows(self, tracks: np.ndarray, c: int, tile: int) -> np.ndarray:
        """Chunk rows of ``tracks`` (all with ``c`` chunks) in tiles of ``tile`` tracks, each
        tile chunk-major (the first chunk of its tracks, then the second...), the last tile
        padded with row -1: the best-pairs layout, where a track's best chunk over the
        other's is a maximum over a middle axis with ``tile`` contiguous values, and a
        track's ``c`` similarities to one chunk lie within one tile."""
        tile = min(tile, len(tracks))
        n_pad = -(-len(tracks) // tile) * tile
        starts = np.full(n_pad, -1, dtype=np.int64)
        starts[:len(tracks)] = self.track_offset[tracks]
        grid = starts.reshape(-1, 1, tile) + np.arange(c)[None, :, None]        # (tiles, c, tile)
        rows = self.chunk_order[np.clip(grid, 0, None)]
        rows[np.broadcast_to(starts.reshape(-1, 1, tile) < 0, grid.shape)] = -1
        return rows.ravel()

    def groups(self, tracks: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """``[(c, positions in tracks)]`` for each chunk count c > 0 among ``tracks``."""
        counts = self.counts[tracks]
        return [(int(c), np.flatnonzero(counts == c)) for c in np.unique(counts) if c > 0]


class ChunkDistances:
    """(queries, refs) track distances from chunk embeddings, computed by blocks of rows.

    ``q_emb`` (query chunks, dim) L2-normalised, ``q_owner`` the query track of each chunk
    (any order); same for the references. Without references (``r_emb=None``) the queries
    are the references (all-vs-all, the embeddings are shared). Implements
    ``csi.scoring.metrics.DistanceRows``.
    """

    def __init__(self, q_emb, q_owner, n_queries: int, r_emb=None, r_owner=None, n_refs: int | None = None, *,
                 mode: str = "min", block_elements: int = DEFAULT_BLOCK_ELEMENTS,
                 device: str | torch.device | None = None, best_k: int = 3):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if best_k < 1:
            raise ValueError(f"best_k must be >= 1, got {best_k}")
        self.mode = mode
        self.best_k = int(best_k)
        self.device = resolve_device(device)
        self.block_elements = int(block_elements)
        self.n_queries = int(n_queries)
        shared = r_emb is None
        if shared:
            r_emb, r_owner, n_refs = q_emb, q_owner, n_queries
        self.n_refs = int(n_refs)
        q_owner, r_owner = _as_owner(q_owner), _as_owner(r_owner)
        self.q_layout = _Layout(q_owner, self.n_queries)
        self.r_layout = self.q_layout if shared else _Layout(r_owner, self.n_refs)
        self.q_emb = _as_tensor(q_emb, self.device)
        self.r_emb = self.q_emb if shared else _as_tensor(r_emb, self.device)
        if mode == "mean":
            self.q_mean = track_mean_embeddings(self.q_emb, q_owner, self.n_queries, self.device)
            self.r_mean = self.q_mean if shared else track_mean_embeddings(self.r_emb, r_owner, self.n_refs,
                                                                           self.device)
            self._q_empty = torch.from_numpy(self.q_layout.counts == 0).to(self.device)
            self._r_empty = torch.from_numpy(self.r_layout.counts == 0).to(self.device)
            return
        # references grouped by chunk count: R (ref chunks, dim) in group order, and for each
        # reference track the column of its similarity in the grouped order (empty → an extra -inf column)
        self._r_groups: list[tuple[int, int, int]] = []           # (c, first chunk row in R, n tracks)
        rows, tracks_in_order = [], []
        at = 0
        for c, tracks in self.r_layout.groups(np.arange(self.n_refs)):
            group_rows = self.r_layout.tiled_rows(tracks, c, BEST_PAIRS_TILE) if mode == "best_pairs" \
                else self.r_layout.chunk_rows(tracks, c)
            rows.append(group_rows)
            tracks_in_order.append(tracks)
            self._r_groups.append((c, at, len(tracks)))
            at += len(group_rows)
        order = np.concatenate(tracks_in_order) if tracks_in_order else np.zeros(0, dtype=np.int64)
        self._n_ref_chunks = at
        # best pairs: (c, tracks a tile, tracks padded to whole tiles) of each group
        self._r_tiles = [(c, min(BEST_PAIRS_TILE, n), -(-n // min(BEST_PAIRS_TILE, n)) * min(BEST_PAIRS_TILE, n))
                         for c, _, n in self._r_groups]
        chunk_rows = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        identity = len(order) == self.n_refs and np.array_equal(order, np.arange(self.n_refs))
        if identity and np.array_equal(chunk_rows, np.arange(len(self.r_emb))):
            self._r_grouped = self.r_emb
        else:                                                  # padding rows (-1, best_pairs tiles) are zero
            padded = torch.cat([self.r_emb, torch.zeros(1, self.r_emb.shape[1], device=self.device)])
            self._r_grouped = padded[torch.from_numpy(chunk_rows).to(self.device)]
        column = np.full(self.n_refs, len(order), dtype=np.int64)
        column[order] = np.arange(len(order))
        self._r_column = None if identity else torch.from_numpy(column).to(self.device)

    # ------------------------------------------------------------------------------------
    def rows(self, start: int, stop: int) -> np.ndarray:
        """float32 (stop - start, n_refs) distances of query tracks ``start..stop-1`` (a new array)."""
        return self.rows_tensor(start, stop).cpu().numpy()

    def rows_into(self, start: int, stop: int, out: np.ndarray) -> None:
        """Write the rows into ``out`` (float32, (stop - start, n_refs), C-contiguous): reusing
        one buffer spares the page faults of a new 60 MB array per block."""
        if self.device.type == "cpu" and out.dtype == np.float32 and out.flags.c_contiguous:
            self._fill(start, stop, torch.from_numpy(out))
        else:
            out[...] = self.rows(start, stop)

    def full(self) -> np.ndarray:
        return self.rows(0, self.n_queries)

    def rows_tensor(self, start: int, stop: int) -> torch.Tensor:
        out = torch.empty((stop - start, self.n_refs), device=self.device)
        self._fill(start, stop, out)
        return out

    @torch.inference_mode()
    def _fill(self, start: int, stop: int, out: torch.Tensor) -> None:
        if not 0 <= start <= stop <= self.n_queries:
            raise IndexError(f"rows({start}, {stop}) out of range for {self.n_queries} queries")
        if out.shape != (stop - start, self.n_refs):
            raise ValueError(f"out has shape {tuple(out.shape)}, expected {(stop - start, self.n_refs)}")
        if self.mode == "mean":
            torch.mm(self.q_mean[start:stop], self.r_mean.T, out=out)
            torch.sub(1.0, out, out=out)
            out[self._q_empty[start:stop]] = float("inf")
            out[:, self._r_empty] = float("inf")
            return
        tracks = np.arange(start, stop)
        if self._n_ref_chunks == 0:
            out.fill_(float("inf"))
            return
        no_chunk = np.flatnonzero(self.q_layout.counts[start:stop] == 0)
        if len(no_chunk):
            out[torch.from_numpy(no_chunk).to(self.device)] = float("inf")
        best_pairs = self.mode == "best_pairs"      # products a reference group at a time
        width = max(c_r * n_pad for c_r, _, n_pad in self._r_tiles) if best_pairs else self._n_ref_chunks
        max_rows = max(1, self.block_elements // width)
        for c, positions in self.q_layout.groups(tracks):
            per_block = max(1, max_rows // c)
            for b in range(0, len(positions), per_block):
                pos = positions[b:b + per_block]
                n = len(pos)
                chunk_rows = torch.from_numpy(self.q_layout.chunk_rows(tracks[pos], c)).to(self.device)
                if best_pairs:
                    best = self._best_pairs(self.q_emb[chunk_rows], c, n)
                else:
                    sims = torch.mm(self.q_emb[chunk_rows], self._r_grouped.T, out=self._buffer(c * n, width))
                    best = sims[:n]                               # max over the query track's chunks, in place
                    for k in range(1, c):
                        torch.maximum(best, sims[k * n:(k + 1) * n], out=best)
                    best = self._reduce_refs(best)
                if pos[-1] - pos[0] == n - 1:                     # consecutive tracks: write in place
                    torch.sub(1.0, best, out=out[pos[0]:pos[0] + n])
                else:
                    out[torch.from_numpy(pos).to(self.device)] = 1.0 - best

    def _buffer(self, rows: int, cols: int) -> torch.Tensor:
        """A reused contiguous (rows, cols) buffer: fresh 100 MB allocations cost more than the products."""
        if getattr(self, "_sim_buffer", None) is None or self._sim_buffer.numel() < rows * cols:
            self._sim_buffer = torch.empty(max(rows * cols, min(self.block_elements, cols << 16)), device=self.device)
        return self._sim_buffer[:rows * cols].view(rows, cols)

    def _best_pairs(self, q_rows: torch.Tensor, c_q: int, n_q: int) -> torch.Tensor:
        """(c_q * n_q chunk-major query chunk embeddings) → (n_q, n_refs) mean similarity of
        the ``k`` best pairs without replacement to every reference track, the products one
        reference group at a time (the block is then read back while still in cache)."""
        extra = 0 if self._r_column is None else 1
        result = torch.empty(n_q, self.n_refs + extra, device=q_rows.device)
        col = 0
        for (c_r, at, n_r), (_, tile, n_pad) in zip(self._r_groups, self._r_tiles):
            sims = torch.mm(q_rows, self._r_grouped[at:at + c_r * n_pad].T, out=self._buffer(len(q_rows), c_r * n_pad))
            pair_sims = greedy_best_pairs(sims, c_q, n_q, c_r, n_pad // tile, tile, min(self.best_k, c_q, c_r))
            result[:, col:col + n_r] = pair_sims[:, :n_r]
            col += n_r
        if self._r_column is None:
            return result
        result[:, col:] = float("-inf")
        return result.index_select(1, self._r_column)

    def _reduce_refs(self, sims: torch.Tensor) -> torch.Tensor:
        """Per-reference-track maximum of (rows, ref chunks) similarities → (rows, n_refs)."""
        extra = 0 if self._r_column is None else 1
        result = torch.empty(len(sims), self.n_refs + extra, device=sims.device)
        col = 0
        for c, at, n in self._r_groups:                    # chunk-major: slice k = k-th chunk of every track
            target = result[:, col:col + n]
            if c == 1:
                target.copy_(sims[:, at:at + n])
            else:
                torch.maximum(sims[:, at:at + n], sims[:, at + n:at + 2 * n], out=target)
            for k in range(2, c):
                torch.maximum(target, sims[:, at + k * n:at + (k + 1) * n], out=target)
            col += n
        if self._r_column is None:
            return result
        result[:, col:] = float("-inf")
        return result.index_select(1, self._r_column)


def naive_track_distances(q_emb, q_owner, n_queries: int, r_emb, r_owner, n_refs: int,
                          mode: str = "min", best_k: int = 3) -> np.ndarray:
    """Reference implementation (all chunk pairs at once, loops over tracks) for tests."""
    q_emb, r_emb = np.asarray(q_emb, dtype=np.float32), np.asarray(r_emb, dtype=np.float32)
    q_owner, r_owner = np.asarray(q_owner), np.asarray(r_owner)
    out = np.full((n_queries, n_refs), np.inf, dtype=np.float32)
    if mode == "mean":
        def means(emb, owner, n):
            m = np.zeros((n, emb.shape[1]), dtype=np.float32)
            for t in range(n):
                if (owner == t).any():
                    v = emb[owner == t].mean(axis=0)
                    m[t] = v / np.linalg.norm(v)
            return m
        qm, rm = means(q_emb, q_owner, n_queries), means(r_emb, r_owner, n_refs)
        for i in range(n_queries):
            for j in range(n_refs):
                if (q_owner == i).any() and (r_owner == j).any():
                    out[i, j] = 1.0 - qm[i] @ rm[j]
        return out
    chunk_dist = 1.0 - q_emb @ r_emb.T
    for i in range(n_queries):
        for j in range(n_refs):
            block = chunk_dist[np.ix_(q_owner == i, r_owner == j)]
            if not block.size:
                continue
            if mode == "min":
                out[i, j] = block.min()
                continue
            pairs = sorted((float(block[a, b]), a, b) for a in range(block.shape[0]) for b in range(block.shape[1]))
            used_a, used_b, taken = set(), set(), []
            for d, a, b in pairs:
                if a not in used_a and b not in used_b and len(taken) < min(best_k, *block.shape):
                    taken.append(d)
                    used_a.add(a)
                    used_b.add(b)
            out[i, j] = float(np.mean(taken))
    return out
