"""Dan Ellis's audfprint (landmark fingerprinting, 2014) as a peer on the fingerprint bench,
through its PyPI port ``audfprint2`` (the same analyzer, hash table and matcher modules,
packaged, with HDF databases added).

Every setting is the package's command-line default, read from its own parser
(``audfprint2.cli.build_parser``) and applied by its own ``setup_analyzer`` /
``setup_matcher``: 11025 Hz, STFT 512 / hop 256 (23.2 ms frames), density 20 (target hashes a
second), at most 5 peaks a frame, fan-out 3, a 2^20-bucket table of 100 entries each, 14 time
bits; queries analysed at 4 sub-frame shifts (references at 1), a match needs more than 5
hashes agreeing on one time skew, ±2 frames. What the CLI would do by reading a file is done
on the bench's audio in memory: resampled to 11025 Hz with soxr, then the analyzer's
``find_peaks`` → ``peaks2landmarks`` → ``landmarks2hashes`` for each shift, the unique (time,
hash) pairs (as ``Analyzer.wavfile2hashes``), stored with ``HashTable.store`` or matched with
``Matcher.match_hashes``.

Size: ``size_bytes`` is the stored table entries, 4 bytes each (recording and time packed in a
uint32; the 20-bit hash is the bucket); the table itself is allocated whole (2^20 x 100 x 4 B,
419 MB in memory), and ``save`` writes the package's own HDF file (gzip-compressed table plus
the 4-MB bucket counts).
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np

from audiofp.peers import PEERS, require_package

NAME = "audfprint"


class AudfprintPeer:
    """audfprint's hash table over the references: ``add`` recordings, then ``identify``."""

    name = NAME

    def __init__(self, sr: int) -> None:
        package = require_package(NAME, PEERS[NAME][2])
        from audfprint2 import cli
        from audfprint2.core import hash_table

        self.sr = int(sr)
        self.version = metadata.version(package.__name__)
        d = cli.build_parser().parse_args(["match"])          # its command line's defaults

        def analyzer(is_match: bool):
            return cli.setup_analyzer(d.density, is_match, d.pks_per_frame, d.fanout, d.freq_sd, d.shifts,
                                      d.samplerate, d.continue_on_error, d.ffmpeg_path)

        self.ingest, self.query = analyzer(False), analyzer(True)
        self.matcher = cli.setup_matcher(d.match_win, d.search_depth, d.min_count, d.max_matches, d.exact_count,
                                         d.find_time_range, d.time_quantile, d.sortbytime, d.illustrate,
                                         d.illustrate_hpf)
        maxtimebits = d.maxtimebits if d.maxtimebits is not None else hash_table._bitsfor(d.maxtime)
        self.table = hash_table.HashTable(hashbits=d.hashbits, depth=d.bucketsize, maxtime=1 << maxtimebits)
        self.table.params["samplerate"] = self.ingest.target_sr

    def __len__(self) -> int:
        return len(self.table.names)

    def hashes(self, audio: np.ndarray, is_match: bool = False) -> np.ndarray:
        """``(n, 2)`` int32 unique (frame, hash) rows of mono audio at ``self.sr``, as the
        package's ``wavfile2hashes`` gives them for a file (query analysis when ``is_match``)."""
        from audfprint2.core.analyzer import landmarks2hashes

        analyzer = self.query if is_match else self.ingest
        y = np.asarray(audio, dtype=np.float32)
        if y.ndim != 1:
            raise ValueError(f"expected mono audio (one dimension), got shape {y.shape}")
        if self.sr != analyzer.target_sr:
            import soxr
            y = soxr.resample(y, self.sr, analyzer.target_sr, quality="HQ")
        y = y.astype(np.float64)
        if len(y) <= analyzer.n_fft // 2:          # its STFT pads by reflection: n_fft / 2 samples needed
            return np.zeros((0, 2), np.int32)
        shifts = max(1, analyzer.shifts)
        starts = [int(s / shifts * analyzer.n_hop) for s in range(shifts)] if shifts > 1 else [0]
        rows = [landmarks2hashes(analyzer.peaks2landmarks(analyzer.find_peaks(y[k:], analyzer.target_sr)))
                for k in starts]
        rows = np.concatenate(rows).astype(np.int32)
        return np.unique(rows, axis=0) if len(rows) else rows

    def add(self, recording_id: str, audio: np.ndarray) -> int:
        """Store one recording's hashes; returns how many. A recording id can be added once."""
        recording_id = str(recording_id)
        if recording_id in self.table.names:
            raise ValueError(f"recording {recording_id!r} is already in the audfprint table")
        rows = self.hashes(audio)
        self.table.store(recording_id, [(int(t), int(h)) for t, h in rows.tolist()])
        return len(rows)

    def identify(self, snippet: np.ndarray, topk: int = 1) -> list[dict]:
        """The ``topk`` best recordings, best first: ``{"recording", "offset_s", "score" (hashes
        agreeing on the time skew), "raw" (hashes in common)}``; ``[]`` when no recording gets
        past the matcher's minimum count."""
        rows = self.hashes(snippet, is_match=True)
        if len(rows) == 0 or topk < 1 or len(self.table.names) == 0:
            return []
        found = np.asarray(self.matcher.match_hashes(self.table, rows))
        frame_s = self.query.n_hop / self.query.target_sr
        out, seen = [], set()
        for track, count, skew, raw, *_ in found.tolist():     # sorted by aligned count
            name = self.table.names[track]
            if name in seen:
                continue
            seen.add(name)
            out.append({"recording": name, "offset_s": float(skew * frame_s), "score": int(count), "raw": int(raw)})
            if len(out) == topk:
                break
        return out

    @property
    def n_hashes(self) -> int:
        """Entries held by the table (a full bucket keeps ``bucketsize`` of its hashes)."""
        return int(np.minimum(self.table.counts, self.table.depth).sum())

    def size_bytes(self) -> int:
        """Bytes of the stored entries: 4 a hash (the preallocated empty slots not counted)."""
        return 4 * self.n_hashes

    def save(self, path: str | Path) -> Path:
        """Write the package's HDF database (``HashTable.save``); returns the file written."""
        return Path(self.table.save(str(Path(path).with_suffix(".hdf"))))

    def describe(self) -> dict:
        """The package, its version and the settings in force."""
        a, q, m = self.ingest, self.query, self.matcher
        return {"package": "audfprint2", "version": self.version, "samplerate": a.target_sr, "n_fft": a.n_fft,
                "n_hop": a.n_hop, "density": a.density, "pks_per_frame": a.maxpksperframe,
                "fanout": a.maxpairsperpeak, "freq_sd": a.f_sd, "shifts_reference": a.shifts,
                "shifts_query": q.shifts, "hashbits": self.table.hashbits, "bucketsize": self.table.depth,
                "maxtimebits": int(self.table.maxtimebits), "match_win": m.window, "min_count": m.threshcount,
                "search_depth": m.search_depth, "exact_count": m.exact_count, "stored_hashes": self.n_hashes,
                "dropped_hashes": int(self.table.counts.sum()) - self.n_hashes,
                "input_sr": self.sr}
