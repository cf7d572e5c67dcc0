"""Reading the features shipped as HDF5 files (Da-TACOS: one file per performance, written
by deepdish).

deepdish saves a dict of numpy arrays as one dataset per key at the file's root (``/crema``,
``/hpcp``, ...), a nested dict as a group (``/madmom_features``, ``/key_extractor``) and a
string or number as an attribute of the group that holds it (``label``, ``track_id`` are
attributes of the root). :func:`read_key` reads any of them; :func:`read_pcp` reads a
(frames, bins) pitch-class profile and refuses anything else with a reason that names the
file and the key, which the importer writes to ``bad.txt``.
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


def read_pcp(path: str | os.PathLike, key: str = "crema", bins: int = 12, min_frames: int = 1) -> np.ndarray:
    """The (frames, ``bins``) float32 pitch-class profile stored under ``key``; any other
    shape, fewer than ``min_frames`` frames or a non-finite value is an H5FeatureError."""
    value = read_key(path, key)
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise H5FeatureError(f"{path}: key {key!r} is not numeric ({arr.dtype})")
    if arr.ndim != 2 or arr.shape[1] != bins:
        raise H5FeatureError(f"{path}: key {key!r} has shape {arr.shape}, expected (frames, {bins})")
    if arr.shape[0] < min_frames:
        raise H5FeatureError(f"{path}: key {key!r} has {arr.shape[0]} frames, fewer than {min_frames}")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise H5FeatureError(f"{path}: key {key!r} has non-finite values (NaN/Inf)")
    return arr


def write_deepdish_like(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write ``data`` the way deepdish lays out a dict (arrays as root datasets, nested dicts
    as groups, strings and numbers as attributes): for tests and small fixtures."""
    h5py = _h5py()

    def level(group, d: dict[str, Any]) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                level(group.create_group(k), v)
            elif isinstance(v, np.ndarray):
                group.create_dataset(k, data=v)
            elif isinstance(v, str):
                group.attrs[k] = np.bytes_(v.encode("utf-8"))
            else:
                group.attrs[k] = v

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["DEEPDISH_IO_VERSION"] = 12
        level(f, data)
