"""Index types and their parameters, chosen from the collection size (every one overridable).

Rules for ``N`` vectors of ``dim`` dimensions (all vectors L2-normalised, inner product):

``flat``   exact search (``IndexFlatIP``): 4·dim bytes a vector, cost linear in N.
``ivfpq``  inverted lists + product quantisation (``IVF{nlist},PQ{m}x{nbits}np``, residuals):
           - ``nlist`` = 4·sqrt(N) rounded to a power of two, at most N/39 (faiss wants 39
             training points a list) and 65536, at least 1;
           - ``m`` (sub-quantisers = code bytes at 8 bits) = dim/2 (64-byte codes at 128-d,
             ~74 bytes a vector with the 8-byte ids and the codebooks), the largest divisor
             of dim not above it. Measured on 1M clustered 128-d vectors (nlist 4096,
             nprobe 64, tests/bench/index.py): recall@10 against exact search 0.86 with
             m = 16, 0.92 with m = 32, 0.96 with m = 64 — the margin over the 0.9 target
             is worth the bytes;
           - ``nbits`` = 8, fewer when N < 256 (k-means needs N ≥ 2^nbits);
           - ``nprobe`` (lists visited per query) = nlist/64, at least min(nlist, 8)
             (1M vectors: 64 of 4096 lists, ~0.5 ms a query on one core);
           - training samples: 40 vectors a list for the coarse k-means, 64 a code word
             (16384) for the PQ codebooks.
``hnsw``   graph search (``HNSW{hnsw_m},Flat``): ``hnsw_m`` links = 16 up to 100k vectors,
           32 above; ``ef_construction`` = 4·hnsw_m; ``ef_search`` = 4·hnsw_m (raised to k
           at query time).

``nprobe`` and ``ef_search`` are search-time settings: they can be changed on a saved index.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

KINDS = ("flat", "ivfpq", "hnsw")
MAX_NLIST = 65536
MIN_POINTS_PER_LIST = 39


@dataclass
class IndexParams:
    """The faiss index of a collection. Fields that do not apply to ``kind`` are None."""
    kind: str = "flat"
    nlist: Optional[int] = None
    m: Optional[int] = None
    nbits: Optional[int] = None
    nprobe: Optional[int] = None
    hnsw_m: Optional[int] = None
    ef_construction: Optional[int] = None
    ef_search: Optional[int] = None
    extra: dict = field(default_factory=dict)

    def factory_string(self) -> str:
        if self.kind == "flat":
            return "Flat"
        if self.kind == "ivfpq":
            return f"IVF{self.nlist},PQ{self.m}x{self.nbits}np"   # np: no polysemous training (slow, unused)
        if self.kind == "hnsw":
            return f"HNSW{self.hnsw_m},Flat"
        raise ValueError(f"unknown index type {self.kind!r}; choose one of {', '.join(KINDS)}")

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "IndexParams":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def _pow2(x: float) -> int:
    return 1 << max(0, round(math.log2(max(x, 1.0))))


def _divisor_at_most(dim: int, target: int) -> int:
    return max(d for d in range(1, max(1, min(dim, target)) + 1) if dim % d == 0)


def auto_params(kind: str, n: int, dim: int, **overrides: Any) -> IndexParams:
    """Parameters of a ``kind`` index for ``n`` vectors of ``dim`` dimensions (module rules);
    keyword arguments that are not None replace the chosen values."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if kind not in KINDS:
        raise ValueError(f"unknown index type {kind!r}; choose one of {', '.join(KINDS)}")
    if n < 1:
        raise ValueError("an index needs at least one vector")
    p = IndexParams(kind=kind)
    if kind == "ivfpq":
        if n < 2:
            raise ValueError("ivfpq needs at least 2 vectors to train; use --type flat")
        p.nlist = int(min(_pow2(4 * math.sqrt(n)), max(1, n // MIN_POINTS_PER_LIST), MAX_NLIST))
        p.m = _divisor_at_most(dim, max(1, dim // 2))
        p.nbits = 8 if n >= 256 else max(1, int(math.log2(n)))
    elif kind == "hnsw":
        p.hnsw_m = 16 if n <= 100_000 else 32
        p.ef_construction = 4 * p.hnsw_m
        p.ef_search = 4 * p.hnsw_m
    unknown = [k for k in overrides if k not in IndexParams.__dataclass_fields__ or k in ("kind", "extra")]
    if unknown:
        raise ValueError(f"unknown index parameter(s) {', '.join(unknown)}")
    for key, value in overrides.items():
        if key not in _KEYS[kind]:
            raise ValueError(f"parameter {key} does not apply to a {kind} index")
        if int(value) < 1:
            raise ValueError(f"{key} must be positive, got {value}")
        setattr(p, key, int(value))
    if kind == "ivfpq":
        if dim % p.m:
            raise ValueError(f"m={p.m} must divide the embedding size {dim}")
        if p.nlist > n:
            raise ValueError(f"nlist={p.nlist} needs at least as many training vectors, got {n}")
        if 2 ** p.nbits > n:
            raise ValueError(f"nbits={p.nbits} needs at least {2 ** p.nbits} training vectors, got {n}")
        if "nprobe" not in overrides:
            p.nprobe = default_nprobe(p.nlist)
        p.nprobe = min(p.nprobe, p.nlist)
    return p


_KEYS = {"flat": (), "ivfpq": ("nlist", "m", "nbits", "nprobe"),
         "hnsw": ("hnsw_m", "ef_construction", "ef_search")}


def default_nprobe(nlist: int) -> int:
    """Lists visited per query: nlist/64, at least min(nlist, 8)."""
    return max(min(nlist, 8), nlist // 64)
