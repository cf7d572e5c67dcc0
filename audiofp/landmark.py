"""Spectral-peak landmark hashing: the non-learned fingerprinting baseline.

After A. Wang, "An Industrial-Strength Audio Search Algorithm", ISMIR 2003. The idea:
the strongest local maxima of a spectrogram ("constellation" peaks) survive noise,
equalisation and compression far better than the spectrogram itself; pairing each peak
(the *anchor*) with a few peaks shortly after it (its *target zone*) gives hashes
``(f1, f2, t2 - t1)`` that are specific enough to look up in a table, and time-shift
invariant. A snippet matching a recording has many hashes whose reference time minus query
time agree on one value (the snippet's offset in the recording); chance matches spread over
all offsets. The score of a recording is the height of that offset histogram's best bin.

Pipeline and parameters (defaults for mono audio at ``sr = 8000`` Hz):

* **Spectrogram** -- Hann window of ``n_fft = 512`` samples (64 ms, 15.6 Hz bins, 257 bins)
  every ``hop = 128`` samples (16 ms, 62.5 frames per second), no padding: frame ``k`` covers
  samples ``[k*hop, k*hop + n_fft)``. Magnitude in dB, scaled so a full-scale sine reads
  0 dB, floored at -120 dB.
* **Peaks** -- a bin is a peak when it is the maximum of its ``peak_size = (freq_bins,
  frames)`` neighbourhood (``scipy.ndimage.maximum_filter``; default 15 bins x 7 frames,
  about ±110 Hz x ±48 ms), and it stands ``margin_db = 6`` dB above the adaptive threshold:
  the local mean dB over a ``threshold_size`` (default 31 bins x 31 frames) neighbourhood.
  It must also be within ``dynamic_range_db = 70`` dB of the loudest bin and above
  ``floor_db = -90`` dB. Bins 0 (DC) and the top bin are never peaks. The density is then
  capped: in each 1-s block of frames only the ``peaks_per_second = 30`` most prominent
  peaks (height above the threshold) are kept.
* **Landmarks** -- each anchor peak ``(t1, f1)`` is paired with the first ``fan_out = 8``
  peaks (in time order) of its target zone ``1 <= t2 - t1 <= max_dt = 63`` frames (~1 s),
  ``|f2 - f1| <= max_df = 64`` bins (1 kHz).
* **Hash layout** -- an unsigned 32-bit integer ``(f1 << (F + D)) | (f2 << D) | dt`` with
  ``F`` bits for a frequency bin (``(n_fft // 2).bit_length()``: 9 for 257 bins) and ``D``
  bits for ``dt`` (``max_dt.bit_length()``: 6 for 63), 24 bits in all by default;
  ``2 F + D <= 32`` is required.
* **Index** -- three parallel arrays sorted by hash: ``hashes`` (uint32), ``recs`` (uint32,
  recording number) and ``times`` (uint32, anchor frame ``t1``), 12 bytes per landmark;
  lookups by ``np.searchsorted``. Recordings added since the last lookup are merged in on
  the next ``identify`` / ``save`` / ``size_bytes``.
* **Scoring** -- for each recording the differences ``t_ref - t_query`` of the matched
  hashes are histogrammed in frames; a bin's score is its count plus its two neighbours'
  (±1 frame tolerance, since snippet and recording frames are not sample-aligned); the best
  bin gives the recording's score and its offset (the counts' weighted mean over the three
  bins, times ``hop / sr`` seconds).

    index = LandmarkIndex()
    index.add("rec-1", audio)          # mono float32 at 8 kHz
    index.identify(snippet, topk=3)    # [{"recording": "rec-1", "offset_s": 7.31, "score": 212}, ...]
    index.save("landmarks.npz"); LandmarkIndex.load("landmarks.npz")
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from csi.utils import SILENCE_PEAK, atomic_write

SR = 8000
FORMAT = "csi-landmark-1"
_FLOOR_DB = -120.0
_BLOCK = 2048  # frames per FFT block (bounds the complex intermediate's memory)


@dataclass(frozen=True)
class LandmarkParams:
    """Every setting of the spectrogram, the peak picker and the landmark pairing (see the
    module docstring for their meaning)."""
    sr: int = SR
    n_fft: int = 512
    hop: int = 128
    peak_size: tuple[int, int] = (15, 7)
    threshold_size: tuple[int, int] = (31, 31)
    margin_db: float = 6.0
    dynamic_range_db: float = 70.0
    floor_db: float = -90.0
    peaks_per_second: float = 30.0
    fan_out: int = 8
    max_dt: int = 63
    max_df: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "peak_size", tuple(int(v) for v in self.peak_size))
        object.__setattr__(self, "threshold_size", tuple(int(v) for v in self.threshold_size))
        if self.sr <= 0 or self.hop <= 0 or self.n_fft < 2:
            raise ValueError(f"bad sr/n_fft/hop: {self.sr}/{self.n_fft}/{self.hop}")
        if self.fan_out < 1 or self.max_dt < 1 or self.max_df < 0 or self.peaks_per_second <= 0:
            raise ValueError("fan_out, max_dt and peaks_per_second must be positive, max_df >= 0")
        if 2 * self.freq_bits + self.dt_bits > 32:
            raise ValueError(f"hash needs {2 * self.freq_bits + self.dt_bits} bits > 32: "
                             "lower n_fft or max_dt")

    @property
    def freq_bits(self) -> int:
        """Bits of one frequency bin number in a hash."""
        return (self.n_fft // 2).bit_length()

    @property
    def dt_bits(self) -> int:
        """Bits of the anchor-to-target frame distance in a hash."""
        return int(self.max_dt).bit_length()

    @property
    def frame_s(self) -> float:
        """Seconds between two frames."""
        return self.hop / self.sr


def _mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio (one dimension), got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio holds NaN or infinite samples")
    return audio


def spectrogram_db(audio: np.ndarray, params: LandmarkParams = LandmarkParams()) -> np.ndarray:
    """Magnitude STFT in dB, ``(n_fft // 2 + 1, frames)`` float32; 0 dB is a full-scale sine."""
    audio = _mono(audio)
    n_bins = params.n_fft // 2 + 1
    if len(audio) < params.n_fft:
        return np.zeros((n_bins, 0), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(audio, params.n_fft)[::params.hop]
    window = np.hanning(params.n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
    scale = 2.0 / window.sum()
    out = np.empty((n_bins, len(frames)), np.float32)
    for start in range(0, len(frames), _BLOCK):
        mag = np.abs(np.fft.rfft(frames[start:start + _BLOCK] * window, axis=1)) * scale
        out[:, start:start + _BLOCK] = (20.0 * np.log10(np.maximum(mag, 10 ** (_FLOOR_DB / 20)))).T
    return out


def find_peaks(spec_db: np.ndarray, params: LandmarkParams = LandmarkParams()) -> tuple[np.ndarray, np.ndarray]:
    """Constellation peaks of a dB spectrogram: ``(frames, bins)`` int64 arrays sorted by
    frame then bin, at most ``peaks_per_second`` per 1-s block of frames."""
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if spec_db.size == 0:
        return empty
    local_max = ndimage.maximum_filter(spec_db, size=params.peak_size, mode="nearest")
    threshold = ndimage.uniform_filter(spec_db, size=params.threshold_size, mode="nearest")
    prominence = spec_db - threshold
    ok = ((spec_db == local_max) & (prominence >= params.margin_db)
          & (spec_db >= max(params.floor_db, float(spec_db.max()) - params.dynamic_range_db)))
    ok[0] = ok[-1] = False  # DC and Nyquist bins
    bins, frames = np.nonzero(ok)
    if len(frames) == 0:
        return empty
    prom = prominence[bins, frames]
    block_frames = max(1, int(round(params.sr / params.hop)))
    cap = max(1, int(round(params.peaks_per_second * block_frames * params.frame_s)))
    block = frames // block_frames
    order = np.lexsort((-prom, block))
    block_sorted = block[order]
    first = np.searchsorted(block_sorted, block_sorted, side="left")
    keep = order[np.arange(len(order)) - first < cap]
    frames, bins = frames[keep], bins[keep]
    order = np.lexsort((bins, frames))
    return frames[order].astype(np.int64), bins[order].astype(np.int64)


def pair_peaks(frames: np.ndarray, bins: np.ndarray,
               params: LandmarkParams = LandmarkParams()) -> tuple[np.ndarray, np.ndarray]:
    """Landmark hashes of peaks sorted by frame: ``(hashes uint32, anchor frames int64)``.

    Each anchor takes the first ``fan_out`` peaks (in time order) with ``1 <= dt <= max_dt``
    and ``|df| <= max_df``; vectorised over anchors, one pass per peak distance ``j``.
    """
    n = len(frames)
    taken = np.zeros(n, np.int64)
    anchors, targets = [], []
    for j in range(1, n):
        i = np.arange(n - j)
        dt = frames[j:] - frames[:n - j]
        if dt.min() > params.max_dt:  # frames are sorted: farther peaks are farther still
            break
        ok = ((dt >= 1) & (dt <= params.max_dt) & (np.abs(bins[j:] - bins[:n - j]) <= params.max_df)
              & (taken[:n - j] < params.fan_out))
        anchors.append(i[ok])
        targets.append(i[ok] + j)
        taken[i[ok]] += 1
        if taken.min() >= params.fan_out:
            break
    if not anchors:
        return np.zeros(0, np.uint32), np.zeros(0, np.int64)
    a, b = np.concatenate(anchors), np.concatenate(targets)
    fb, db = params.freq_bits, params.dt_bits
    hashes = ((bins[a].astype(np.uint32) << np.uint32(fb + db)) | (bins[b].astype(np.uint32) << np.uint32(db))
              | (frames[b] - frames[a]).astype(np.uint32))
    return hashes, frames[a]


def landmarks(audio: np.ndarray, params: LandmarkParams = LandmarkParams()) -> tuple[np.ndarray, np.ndarray]:
    """Hashes and anchor frames of a mono signal (none for a silent one: peak below -80 dBFS)."""
    audio = _mono(audio)
    if len(audio) == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK:
        return np.zeros(0, np.uint32), np.zeros(0, np.int64)
    frames, bins = find_peaks(spectrogram_db(audio, params), params)
    return pair_peaks(frames, bins, params)


class LandmarkIndex:
    """Landmark hash table over a set of recordings: ``add`` them, then ``identify`` snippets."""

    def __init__(self, sr: int = SR, **params) -> None:
        self.params = LandmarkParams(sr=sr, **params)
        self.names: list[str] = []
        self._ids: dict[str, int] = {}
        self._hashes = np.zeros(0, np.uint32)
        self._recs = np.zeros(0, np.uint32)
        self._times = np.zeros(0, np.uint32)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return len(self.names)

    def add(self, recording_id: str, audio: np.ndarray) -> int:
        """Fingerprint one recording (mono, at ``params.sr``); returns its number of hashes.
        A recording id can be added once."""
        recording_id = str(recording_id)
        if recording_id in self._ids:
            raise ValueError(f"recording {recording_id!r} is already in the index")
        hashes, times = landmarks(audio, self.params)
        number = len(self.names)
        self._ids[recording_id] = number
        self.names.append(recording_id)
        self._pending.append((hashes, np.full(len(hashes), number, np.uint32), times.astype(np.uint32)))
        return len(hashes)

    def _merge(self) -> None:
        if not self._pending:
            return
        hashes = np.concatenate([self._hashes] + [p[0] for p in self._pending])
        recs = np.concatenate([self._recs] + [p[1] for p in self._pending])
        times = np.concatenate([self._times] + [p[2] for p in self._pending])
        order = np.argsort(hashes, kind="stable")
        self._hashes, self._recs, self._times = hashes[order], recs[order], times[order]
        self._pending = []

    @property
    def n_hashes(self) -> int:
        """Number of stored landmarks."""
        return len(self._hashes) + sum(len(p[0]) for p in self._pending)

    def size_bytes(self) -> int:
        """Bytes of the stored hash table (hashes, recording numbers and anchor frames)."""
        self._merge()
        return int(self._hashes.nbytes + self._recs.nbytes + self._times.nbytes)

    def identify(self, snippet: np.ndarray, topk: int = 1, min_score: int = 1) -> list[dict]:
        """The ``topk`` best recordings for a snippet, best first: ``{"recording", "offset_s"
        (where the snippet starts in it), "score" (hashes agreeing on that offset, ±1 frame)}``.
        Recordings scoring below ``min_score`` are left out; a silent snippet gives ``[]``.
        The offset is not clamped: a chance match (score of a few hashes) may put it below 0."""
        self._merge()
        q_hashes, q_times = landmarks(snippet, self.params)
        if len(q_hashes) == 0 or len(self._hashes) == 0 or topk < 1:
            return []
        lo = np.searchsorted(self._hashes, q_hashes, side="left")
        counts = np.searchsorted(self._hashes, q_hashes, side="right") - lo
        total = int(counts.sum())
        if total == 0:
            return []
        starts = np.cumsum(counts) - counts
        idx = np.repeat(lo, counts) + (np.arange(total) - np.repeat(starts, counts))
        diff = self._times[idx].astype(np.int64) - np.repeat(q_times, counts)
        # one key per (recording, offset); offsets shifted to >= 1 and rows padded so that
        # key ± 1 never reaches another recording
        shift = int(q_times.max()) + 1
        width = int(self._times.max()) + shift + 2
        keys, n = np.unique(self._recs[idx].astype(np.int64) * width + diff + shift, return_counts=True)

        def neighbour(delta: int) -> np.ndarray:
            pos = np.searchsorted(keys, keys + delta)
            pos_c = np.minimum(pos, len(keys) - 1)
            return np.where((pos < len(keys)) & (keys[pos_c] == keys + delta), n[pos_c], 0)

        below, above = neighbour(-1), neighbour(1)
        score = n + below + above
        rec = keys // width
        order = np.lexsort((-n, -score, rec))  # per recording: best score, then tallest bin
        first = order[np.r_[True, rec[order][1:] != rec[order][:-1]]]
        ranked = first[np.lexsort((np.array([self.names[r] for r in rec[first]]), -score[first]))]
        results = []
        for k in ranked[:topk]:
            if score[k] < min_score:
                break
            frame = keys[k] % width - shift + (above[k] - below[k]) / score[k]
            results.append({"recording": self.names[int(rec[k])],
                            "offset_s": float(frame * self.params.frame_s),
                            "score": int(score[k])})
        return results

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to an ``.npz`` file, atomically (temporary name, then ``os.replace``)."""
        self._merge()
        meta = {"format": FORMAT, "params": asdict(self.params)}
        atomic_write(path, lambda f: np.savez(f, hashes=self._hashes, recs=self._recs, times=self._times,
                                              names=np.array(self.names, dtype=str),
                                              meta=np.array(json.dumps(meta))))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LandmarkIndex":
        """Read an index written by ``save``."""
        with np.load(os.fspath(path), allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path}: not a landmark index (format {meta.get('format')!r})")
            index = cls(**meta["params"])
            index.names = [str(name) for name in data["names"]]
            index._ids = {name: i for i, name in enumerate(index.names)}
            index._hashes = data["hashes"].astype(np.uint32)
            index._recs = data["recs"].astype(np.uint32)
            index._times = data["times"].astype(np.uint32)
        return index
