"""Measured identification of noisy snippets: the learned fingerprinter against landmark
hashing (Wang 2003, audiofp.landmark) on the same queries.

Queries are cut from the reference recordings at random offsets, for every query length
and SNR: reverberated with a room impulse response and mixed with noise at the SNR, both
from sets never used in training (generated with a test seed, or the user's folders). A
query is a hit when the top answer is its recording and the offset is within ±``tolerance_s``
(0.5 s) of the truth; the share of queries whose recording alone is right is reported too
(a recording that repeats a passage exactly leaves the offset ambiguous). Also measured: database bytes per reference audio-second and the
time to identify one query (fingerprints included; median and 90th percentile).
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from audiofp.augment import add_noise, reverberate


def make_queries(references: list[tuple[str, np.ndarray]], sr: int, lengths_s: list[float], snrs_db: list[float],
                 per_cell: int, noises: list[np.ndarray], irs: list[np.ndarray], seed: int = 0) -> list[dict]:
    """``per_cell`` queries a (length, SNR): recording, true offset, length, SNR and audio."""
    rng = np.random.default_rng(seed)
    queries = []
    for length in lengths_s:
        n = round(length * sr)
        usable = [(rec, audio) for rec, audio in references if len(audio) >= n]
        if not usable:
            raise ValueError(f"no reference is {length} s long")
        for snr in snrs_db:
            for _ in range(per_cell):
                rec, audio = usable[rng.integers(len(usable))]
                start = int(rng.integers(0, len(audio) - n + 1))
                y = reverberate(audio[start:start + n], irs[rng.integers(len(irs))])
                y = add_noise(y, noises[rng.integers(len(noises))], snr, rng)
                queries.append({"recording": rec, "offset_s": start / sr, "length_s": length, "snr_db": snr,
                                "audio": y.astype(np.float32)})
    return queries


def resample_bench(references: list[tuple[str, np.ndarray]], queries: list[dict], from_sr: int, to_sr: int
                   ) -> tuple[list[tuple[str, np.ndarray]], list[dict]]:
    """The bench's references and queries (made at ``from_sr``) at a system's own rate
    ``to_sr``: each system is given the audio at the bench's rate and resamples it, as it would
    read a file (the learned fingerprinter and landmark hashing analyse 8 kHz, audfprint 11025 Hz)."""
    if from_sr == to_sr:
        return references, queries
    import soxr

    def at(y: np.ndarray) -> np.ndarray:
        return soxr.resample(y, from_sr, to_sr, quality="HQ").astype(np.float32)

    return [(rec, at(y)) for rec, y in references], [dict(q, audio=at(q["audio"])) for q in queries]


def score(queries: list[dict], identify: Callable[[np.ndarray], list[dict]], tolerance_s: float = 0.5
          ) -> dict[str, Any]:
    """Hit rate per (length, SNR) of a system (right recording and offset), the share of
    queries whose recording alone is right, and its time per query."""
    cells: dict[tuple[float, float], list[bool]] = {}
    recording_right: list[bool] = []
    times = []
    for q in queries:
        t0 = time.perf_counter()
        answer = identify(q["audio"])
        times.append(time.perf_counter() - t0)
        right = bool(answer) and answer[0]["recording"] == q["recording"]
        hit = right and abs(answer[0]["offset_s"] - q["offset_s"]) <= tolerance_s
        recording_right.append(right)
        cells.setdefault((q["length_s"], q["snr_db"]), []).append(hit)
    return {"hit_rate": {f"{length:g}s@{snr:g}dB": round(float(np.mean(h)), 4) for (length, snr), h in cells.items()},
            "recording_right": round(float(np.mean(recording_right)), 4),
            "query_ms_p50": round(1000 * float(np.median(times)), 2),
            "query_ms_p90": round(1000 * float(np.percentile(times, 90)), 2)}


def build_and_score(index: Any, references: list[tuple[str, np.ndarray]], queries: list[dict], seconds: float
                    ) -> dict[str, Any]:
    """A hash index (audiofp.landmark.LandmarkIndex or a peer of audiofp.peers) built from the
    references and scored on the queries: ``score``'s figures, its bytes per reference
    audio-second (``index.size_bytes()``) and the build time."""
    t0 = time.perf_counter()
    for rec, audio in references:
        index.add(rec, audio)
    build_s = time.perf_counter() - t0
    result = score(queries, lambda y: index.identify(y))
    result.update(bytes_per_audio_s=round(index.size_bytes() / seconds, 1), build_s=round(build_s, 2))
    return result


def table(results: dict[str, dict], lengths_s: list[float], snrs_db: list[float]) -> str:
    """Markdown: a row per query length, a column per (system, SNR)."""
    systems = list(results)
    head = "| query | " + " | ".join(f"{s} {snr:g} dB" for s in systems for snr in snrs_db) + " |"
    rule = "|---|" + "---|" * (len(systems) * len(snrs_db))
    rows = [f"| {length:g} s | " + " | ".join(f"{results[s]['hit_rate'][f'{length:g}s@{snr:g}dB']:.3f}"
                                             for s in systems for snr in snrs_db) + " |" for length in lengths_s]
    return "\n".join([head, rule, *rows])


def plot(results: dict[str, dict], lengths_s: list[float], snrs_db: list[float], path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.8), sharey=True, squeeze=False)
    for ax, (system, res) in zip(axes[0], results.items()):
        for snr in snrs_db:
            ax.plot(lengths_s, [res["hit_rate"][f"{length:g}s@{snr:g}dB"] for length in lengths_s], "o-",
                    label=f"{snr:g} dB")
        ax.set_title(f"{system} (p50 {res['query_ms_p50']:.0f} ms a query)", fontsize=10)
        ax.set_xlabel("query length (s)")
        ax.set_xscale("log")
        ax.set_xticks(lengths_s, [f"{x:g}" for x in lengths_s])
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("top-1 hit rate (recording and offset ±0.5 s)")
    axes[0][0].set_ylim(0, 1.02)
    axes[0][-1].legend(title="SNR, with reverb", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
