"""Reading the features shipped as HDF5 files (Da-TACOS: one file per performance, written
by deepdish).

deepdish saves a dict of numpy arrays as one dataset per key at the file's root (``/crema``,
``/hpcp``, ...), a nested dict as a group (``/madmom_features``, ``/key_extractor``) and a
string or number as an attribute of the group that holds it (``label``, ``track_id`` are
attributes of the root). :func:`read_key` reads any of them; :func:`read_pcp` reads a
pitch-class profile stored (frames, bins) or (bins, frames) — the Da-TACOS cover-analysis
``crema`` is bins first, the benchmark's frames first — as (frames, bins), and refuses
anything else with a reason that names the file and the key, which the importer writes to
``bad.txt``. Every Da-TACOS feature has one frame every 512 samples of 44.1 kHz audio (acoss).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


class H5FeatureError(ValueError):
    """A performance file without the asked key, or with a value of unexpected shape."""


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a runtime dependency (setup.py)
        raise H5FeatureError("reading HDF5 features needs h5py: pip install h5py") from None
    return h5py


def _decode(value: Any) -> Any:
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.dtype.kind == "S":
        return value.astype(str)
    return value


def keys(path: str | os.PathLike) -> list[str]:
    """The datasets, groups and attributes at the root of ``path`` (deepdish's dict keys)."""
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        return sorted(set(f.keys()) | {k for k in f.attrs.keys() if not k.isupper()})


def read_key(path: str | os.PathLike, key: str) -> Any:
    """The value of ``key`` in the performance file ``path``: a numpy array for a dataset,
    a str or number for an attribute. A missing file or key, or a group, is an H5FeatureError."""
    h5py = _h5py()
    path = Path(path)
    if not path.is_file():
        raise H5FeatureError(f"file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            if key in f:
                node = f[key]
                if not isinstance(node, h5py.Dataset):
                    raise H5FeatureError(f"{path}: key {key!r} is a group (a nested dict), not an array")
                return _decode(node[()])
            if key in f.attrs:
                return _decode(f.attrs[key])
            available = sorted(set(f.keys()) | {k for k in f.attrs.keys() if not k.isupper()})
    except OSError as e:
        raise H5FeatureError(f"{path}: unreadable HDF5 file ({' '.join(str(e).split())})") from None
    raise H5FeatureError(f"{path}: no key {key!r} (keys: {', '.join(available) or 'none'})")


LAYOUTS = ("frames_bins", "bins_frames")


def pcp_layout(shape: tuple[int, ...], bins: int = 12, layout: str = "auto") -> str:
    """Which axis of a 2-D array of ``shape`` holds the ``bins`` pitch classes: ``frames_bins``
    (frames, bins) or ``bins_frames`` (bins, frames). ``auto`` decides when it is unambiguous
    (exactly one axis has ``bins`` entries); a (bins, bins) array or one without such an axis
    is a ValueError. Da-TACOS stores ``crema`` as (12, frames) in the cover-analysis subset and
    (frames, 12) in the benchmark subset; ``hpcp`` and ``chroma_cens`` as (frames, 12) in both."""
    if len(shape) != 2:
        raise ValueError(f"shape {tuple(shape)} is not 2-D, expected (frames, {bins}) or ({bins}, frames)")
    if layout not in ("auto",) + LAYOUTS:
        raise ValueError(f"layout must be auto, {' or '.join(LAYOUTS)}, got {layout!r}")
    rows, cols = shape
    if layout == "auto":
        if (rows == bins) == (cols == bins):
            why = "both axes" if rows == bins else "no axis"
            raise ValueError(f"shape {tuple(shape)}: {why} of size {bins}, expected (frames, {bins}) or "
                             f"({bins}, frames) with frames != {bins}")
        return "bins_frames" if rows == bins else "frames_bins"
    if (cols if layout == "frames_bins" else rows) != bins:
        wanted = f"(frames, {bins})" if layout == "frames_bins" else f"({bins}, frames)"
        raise ValueError(f"shape {tuple(shape)}, expected {wanted} (layout {layout})")
    return layout


def key_shape(path: str | os.PathLike, key: str) -> tuple[int, ...]:
    """The shape of the dataset ``key`` of ``path``, read from the header (no data)."""
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            node = f.get(key)
            if isinstance(node, h5py.Dataset):
                return tuple(node.shape)
    except OSError as e:
        raise H5FeatureError(f"{path}: unreadable HDF5 file ({' '.join(str(e).split())})") from None
    raise H5FeatureError(f"{path}: no array {key!r}")


def read_pcp_layout(path: str | os.PathLike, key: str = "crema", bins: int = 12, min_frames: int = 1,
                    layout: str = "auto") -> tuple[np.ndarray, str]:
    """The (frames, ``bins``) float32 pitch-class profile stored under ``key`` and the layout it
    was stored in (:func:`pcp_layout`; a (bins, frames) array is transposed). Another shape,
    fewer than ``min_frames`` frames or a non-finite value is an H5FeatureError."""
    value = read_key(path, key)
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise H5FeatureError(f"{path}: key {key!r} is not numeric ({arr.dtype})")
    try:
        found = pcp_layout(arr.shape, bins, layout)
    except ValueError as e:
        raise H5FeatureError(f"{path}: key {key!r} has {e}") from None
    if found == "bins_frames":
        arr = arr.T
    if arr.shape[0] < min_frames:
        raise H5FeatureError(f"{path}: key {key!r} has {arr.shape[0]} frames, fewer than {min_frames}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise H5FeatureError(f"{path}: key {key!r} has non-finite values (NaN/Inf)")
    return arr, found


def read_pcp(path: str | os.PathLike, key: str = "crema", bins: int = 12, min_frames: int = 1,
             layout: str = "auto") -> np.ndarray:
    """:func:`read_pcp_layout` without the layout: the (frames, ``bins``) float32 PCP."""
    return read_pcp_layout(path, key, bins, min_frames, layout)[0]
