"""Stage 2 for data sets that ship features: import one key of every record's HDF5 file
(``h5`` field of ``DATA_DIR/dataset.txt``) into a feature store, and write the stage's usual
outputs (``full.txt`` with ``feat``/``feat_len``/``song_id``/``version_id``, the id maps,
``bad.txt``). The store's fingerprint is the ``datacos_pcp`` front end naming the source key
(``{"sr", "frontend": {name, source, n_bins, sr, hop_length, pad_value}, "feat_dtype"}``),
so training writes it into the model card and a store of another key is refused.

A (frames, bins) or (bins, frames) array is read as (frames, bins) (csi.io.h5features.pcp_layout:
the Da-TACOS cover-analysis ``crema`` is bins first, the benchmark's frames first); how many files
were stored in each layout is logged and written to ``DATA_DIR/h5_layout.json``. A record whose
file lacks the key, or holds a value of another shape, goes to ``bad.txt``
(``<utt>\t<h5>\t<reason naming the key>``) and the rest are processed; features already
imported from the same file (path, size, mtime) are reused.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from csi.features.frontend import resolve_frontend
from csi.features import pcp as _pcp  # noqa: F401  (registers datacos_pcp)
from csi.features.stage import Summary, assign_ids, write_maps
from csi.features.store import FeatureStore, NonFiniteFeatureError, source_signature
from csi.io.h5features import H5FeatureError, key_shape, pcp_layout, read_pcp_layout
from csi.io.manifest import atomic_write_text, read_manifest, write_manifest

STORE_DIR = "pcp_feat"
LAYOUT_FILE = "h5_layout.json"
_LAYOUT_WORDS = {"frames_bins": "(frames, {n}), frames first", "bins_frames": "({n}, frames), bins first: transposed"}


@dataclass
class H5ImportSummary(Summary):
    """The stage summary and ``layouts``: how many imported files stored the key in each layout."""
    layouts: dict[str, int] = field(default_factory=dict)

    def layout_line(self, key: str, n_bins: int = 12) -> str:
        parts = [f"{n} file(s) {_LAYOUT_WORDS[k].format(n=n_bins)}" for k, n in sorted(self.layouts.items()) if n]
        return f"key {key!r} stored as " + ("; ".join(parts) if parts else "nothing (no file imported)")


def pcp_fingerprint(key: str = "crema", n_bins: int = 12, sr: int = 44100, hop_length: int = 512,
                    pad_value: float = 0.0, feat_dtype: str = "float16") -> dict[str, Any]:
    frontend = {"name": "datacos_pcp", "source": key, "n_bins": n_bins, "sr": sr, "hop_length": hop_length,
                "pad_value": pad_value}
    resolve_frontend(frontend)  # checks the settings
    return {"sr": sr, "frontend": frontend, "feat_dtype": feat_dtype, "imported_from": "h5"}


def import_h5_features(data_dir: str | os.PathLike, key: str = "crema", n_bins: int = 12, sr: int = 44100,
                       hop_length: int = 512, pad_value: float = 0.0, feat_dtype: str = "float16",
                       min_frames: int = 1, overwrite: bool = False,
                       log: Callable[[str], None] = print) -> H5ImportSummary:
    data_dir = Path(data_dir)
    t0 = time.time()
    records = read_manifest(data_dir / "dataset.txt", required=("utt", "song", "h5"))
    store = FeatureStore(data_dir / STORE_DIR, pcp_fingerprint(key, n_bins, sr, hop_length, pad_value, feat_dtype),
                         feat_dtype).open(overwrite=overwrite)
    produced, bad, computed, frames = [], [], 0, 0
    layouts = {"frames_bins": 0, "bins_frames": 0}
    for rec in records:
        src = source_signature(rec["h5"])
        n = store.length(rec["utt"], src) if src is not None else None
        try:
            if n is None:
                feat, layout = read_pcp_layout(rec["h5"], key, n_bins, min_frames)
                store.save(rec["utt"], feat, src)
                n = len(feat)
                computed += 1
            else:                       # reused: the layout from the file's header
                layout = pcp_layout(key_shape(rec["h5"], key), n_bins)
        except (H5FeatureError, NonFiniteFeatureError, ValueError) as e:
            bad.append((rec["utt"], rec["h5"], f"key {key}: {e}"))
            log(f"import_h5_features: left out {rec['utt']}: {e}")
            continue
        layouts[layout] += 1
        frames += n
        produced.append(dict(rec, feat=str(store.path(rec["utt"])), feat_len=int(n)))
    summary = H5ImportSummary(len(records), len(produced), len(bad), computed, frames * hop_length / sr,
                              time.time() - t0, layouts)
    atomic_write_text(data_dir / "bad.txt", "".join(f"{u}\t{p}\t{why}\n" for u, p, why in sorted(bad)))
    atomic_write_text(data_dir / LAYOUT_FILE, json.dumps({"key": key, "n_bins": n_bins, **layouts}) + "\n")
    log(f"import_h5_features: {data_dir}: {summary.layout_line(key, n_bins)}")
    if produced:
        full = assign_ids(produced)
        write_maps(data_dir, full)
        write_manifest(data_dir / "full.txt", full)
    return summary
