"""``VectorFile``: float32 vectors in a raw file on disk, read a slice at a time with plain
reads (a memmap would count every page it touched in the process's resident memory), for
building an index of more chunk embeddings than memory holds (csi.index.store.build_streaming)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class VectorFile:
    """Rows of ``dim`` float32 values, row after row, in ``path``."""

    def __init__(self, path: str | os.PathLike, dim: int):
        self.path = Path(path)
        size = self.path.stat().st_size
        if size % (4 * dim):
            raise ValueError(f"{self.path}: {size} bytes is not a whole number of {dim}-d float32 rows")
        self.shape = (size // (4 * dim), dim)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("a VectorFile is read in contiguous slices")
        start, stop, _ = rows.indices(len(self))
        count = max(0, stop - start) * self.shape[1]
        with open(self.path, "rb") as f:
            out = np.fromfile(f, np.float32, count=count, offset=start * self.shape[1] * 4)
        return out.reshape(-1, self.shape[1])

    @staticmethod
    def append(f, vectors: np.ndarray) -> None:
        """Write rows to an open binary file (the format this class reads)."""
        f.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
