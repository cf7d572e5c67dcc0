"""Stage 2 for data sets that ship features: import one key of every record's HDF5 file
(``h5`` field of ``DATA_DIR/dataset.txt``) into a feature store, and write the stage's usual
outputs (``full.txt`` with ``feat``/``feat_len``/``song_id``/``version_id``, the id maps,
``bad.txt``). The store's fingerprint is the ``datacos_pcp`` front end naming the source key
(``{"sr", "frontend": {name, source, n_bins, sr, hop_length, pad_value}, "feat_dtype"}``),
so training writes it into the model card and a store of another key is refused.

A record whose file lacks the key, or holds a value of unexpected shape, goes to ``bad.txt``
(``<utt>\t<h5>\t<reason naming the key>``) and the rest are processed; features already
imported from the same file (path, size, mtime) are reused.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from csi.features.frontend import resolve_frontend
from csi.features import pcp as _pcp  # noqa: F401  (registers datacos_pcp)
from csi.features.stage import Summary, assign_ids, write_maps
from csi.features.store import FeatureStore, NonFiniteFeatureError, source_signature
from csi.io.h5features import H5FeatureError, read_pcp
from csi.io.manifest import atomic_write_text, read_manifest, write_manifest

STORE_DIR = "pcp_feat"


def pcp_fingerprint(key: str = "crema", n_bins: int = 12, sr: int = 44100, hop_length: int = 512,
                    pad_value: float = 0.0, feat_dtype: str = "float16") -> dict[str, Any]:
    frontend = {"name": "datacos_pcp", "source": key, "n_bins": n_bins, "sr": sr, "hop_length": hop_length,
                "pad_value": pad_value}
    resolve_frontend(frontend)  # checks the settings
    return {"sr": sr, "frontend": frontend, "feat_dtype": feat_dtype, "imported_from": "h5"}


def import_h5_features(data_dir: str | os.PathLike, key: str = "crema", n_bins: int = 12, sr: int = 44100,
                       hop_length: int = 512, pad_value: float = 0.0, feat_dtype: str = "float16",
                       min_frames: int = 1, overwrite: bool = False, log: Callable[[str], None] = print) -> Summary:
    data_dir = Path(data_dir)
    t0 = time.time()
    records = read_manifest(data_dir / "dataset.txt", required=("utt", "song", "h5"))
    store = FeatureStore(data_dir / STORE_DIR, pcp_fingerprint(key, n_bins, sr, hop_length, pad_value, feat_dtype),
                         feat_dtype).open(overwrite=overwrite)
    produced, bad, computed, frames = [], [], 0, 0
    for rec in records:
        src = source_signature(rec["h5"])
        n = store.length(rec["utt"], src) if src is not None else None
        if n is None:
            try:
                feat = read_pcp(rec["h5"], key, n_bins, min_frames)
                store.save(rec["utt"], feat, src)
            except (H5FeatureError, NonFiniteFeatureError) as e:
                bad.append((rec["utt"], rec["h5"], f"key {key}: {e}"))
                log(f"import_h5_features: left out {rec['utt']}: {e}")
                continue
            n = len(feat)
            computed += 1
        frames += n
        produced.append(dict(rec, feat=str(store.path(rec["utt"])), feat_len=int(n)))
    summary = Summary(len(records), len(produced), len(bad), computed, frames * hop_length / sr, time.time() - t0)
    atomic_write_text(data_dir / "bad.txt", "".join(f"{u}\t{p}\t{why}\n" for u, p, why in sorted(bad)))
    if produced:
        full = assign_ids(produced)
        write_maps(data_dir, full)
        write_manifest(data_dir / "full.txt", full)
    return summary
