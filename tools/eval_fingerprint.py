"""Hit rates of the fingerprint database beside landmark hashing on the same noisy snippets.

    python3 -m tools.eval_fingerprint DB_DIR REFERENCES --out_dir DIR [--lengths 1,2,3,5,10]
        [--snrs 0,5,10,20] [--per_cell 40] [--noise_dir D] [--ir_dir D] [--seed 1]
        [--verify 10] [--no_landmark] [--peer audfprint] [--sr 16000] [--model_dir DIR]

REFERENCES are the database's recordings (the folder or manifest given to
``tools.generate_fingerprints``). For every query length and SNR, ``--per_cell`` snippets
are cut at random offsets, reverberated and mixed with noise (``--noise_dir``/``--ir_dir``,
else coloured noises and synthetic room responses generated with the test seed, never seen
in training), identified by the learned database (audiofp.search) and by landmark
hashing (audiofp.landmark) built on the same references, and by each ``--peer`` (another
project's fingerprinter, audiofp.peers: ``audfprint``, Dan Ellis's, from the package
audfprint2) on the same reference and query audio. A hit is the right
recording with the offset within ±0.5 s. References are read and queries made at ``--sr``;
each system gets them resampled to the rate it analyses (as it would read a file). Writes ``results.json``, ``table.md``,
``hit_rate.png`` and a run record to DIR; prints the table and one JSON line of figures
(hit rates, bytes per reference audio-second, milliseconds per query).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audiofp.peers import PEERS
from csi.cli import add_device_arg, non_negative_int, positive_int, run_tool_main, setup_logging


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("db_dir", type=Path)
    p.add_argument("references", type=Path)
    p.add_argument("--out_dir", type=Path, required=True)
    p.add_argument("--lengths", type=_floats, default=[1, 2, 3, 5, 10], help="query lengths in seconds")
    p.add_argument("--snrs", type=_floats, default=[0, 5, 10, 20], help="SNRs in dB")
    p.add_argument("--per_cell", type=int, default=40, help="queries a (length, SNR)")
    p.add_argument("--noise_dir", type=Path)
    p.add_argument("--ir_dir", type=Path)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--verify", type=non_negative_int, default=10,
                   help="best vote windows verified along the whole query (0: votes only)")
    p.add_argument("--no_landmark", action="store_true", help="skip the landmark-hashing baseline")
    p.add_argument("--peer", action="append", default=[], choices=sorted(PEERS),
                   help="also another project's fingerprinter (repeatable; audfprint: pip install audfprint2)")
    p.add_argument("--sr", type=positive_int, default=16000,
                   help="Hz of the bench audio: references read and queries degraded at this rate, then "
                        "resampled to each system's own (learned and landmark 8 kHz, audfprint 11025 Hz)")
    p.add_argument("--model_dir", type=Path, help="default: the fingerprinter recorded in the database")
    add_device_arg(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    from csi.index import IndexFileError, ModelMismatchError
    return run_tool_main("eval_fingerprint", lambda: run(args), (ValueError, IndexFileError, ModelMismatchError))


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from csi.env import write_run_info
    from audiofp import augment, evaluate
    from audiofp.database import open_with_model
    from audiofp.landmark import LandmarkIndex
    from audiofp.peers import build_peer, check_peer, evaluate_peer
    from audiofp.references import list_recordings
    from audiofp.search import identify_snippet
    from csi.io.audio import load
    from csi.utils import atomic_write_text, resolve_device

    for name in args.peer:
        check_peer(name)                         # a missing package stops the run before any work
    loaded, index = open_with_model(args.db_dir, args.model_dir, str(resolve_device(args.device)))
    sr, bench_sr = loaded.mel.sr, args.sr
    bench_refs = [(rec, load(path, bench_sr)[0]) for rec, path in list_recordings(args.references) if rec in index]
    seconds = sum(len(a) for _, a in bench_refs) / bench_sr
    rng = np.random.default_rng(args.seed + 7919)
    noises = augment.read_audio_folder(args.noise_dir, bench_sr, "noise") if args.noise_dir else \
        [augment.coloured_noise(rng, 10 * bench_sr, bench_sr, kind) for kind in ("white", "pink", "brown") for _ in range(3)]
    irs = augment.read_audio_folder(args.ir_dir, bench_sr, "IR") if args.ir_dir else \
        [augment.synthetic_room_ir(rng, bench_sr) for _ in range(20)]
    bench_queries = evaluate.make_queries(bench_refs, bench_sr, args.lengths, args.snrs, args.per_cell, noises, irs,
                                          args.seed)
    refs, queries = evaluate.resample_bench(bench_refs, bench_queries, bench_sr, sr)
    results = {"learned": evaluate.score(queries, lambda y: identify_snippet(index, loaded, y, verify=args.verify))}
    results["learned"]["bytes_per_audio_s"] = round((args.db_dir / "index.faiss").stat().st_size / seconds, 1)
    if not args.no_landmark:
        results["landmark"] = evaluate.build_and_score(LandmarkIndex(sr), refs, queries, seconds)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in dict.fromkeys(args.peer):
        results[name] = evaluate_peer(build_peer(name, bench_sr), bench_refs, bench_queries, seconds, args.out_dir)
    text = evaluate.table(results, args.lengths, args.snrs)
    summary = {"references": len(refs), "reference_seconds": round(seconds, 1), "queries": len(queries),
               "bench_sr": bench_sr, **results}
    atomic_write_text(args.out_dir / "results.json", json.dumps(summary, indent=1) + "\n")
    atomic_write_text(args.out_dir / "table.md", text + "\n")
    evaluate.plot(results, args.lengths, args.snrs, args.out_dir / "hit_rate.png")
    write_run_info(args.out_dir / "eval_fingerprint.yaml",
                   {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, figures=summary)
    print(text)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
