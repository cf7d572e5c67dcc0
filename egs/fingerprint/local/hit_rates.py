"""Fingerprint hit rates over query seeds and trained models: the learned database beside
landmark hashing (and other projects' fingerprinters, ``--peer``), as mean ± sd.

    python3 egs/fingerprint/local/hit_rates.py REFERENCES OUT_DIR --db DB [--db DB2 ...] [--seeds 1,2,3]
        [--per_cell 40] [--db_hop 0.5] [--peer audfprint]

Workload: for each database (one a trained fingerprinter, e.g. the recipe's
``exp/fingerprint/db`` trained with ``--set seed=N``) and each query seed,
``tools.eval_fingerprint DB REFERENCES --seed S`` (``--per_cell`` queries of each of 1, 2, 3, 5
and 10 s at 0, 5, 10 and 20 dB, reverberated; other noises and rooms for every seed), into
``OUT_DIR/<db name>/seed<S>``; finished runs are read back, not redone (a run without a
system asked for now is redone). Landmark hashing and the peers (``--peer audfprint``: Dan
Ellis's audfprint from the package audfprint2, audiofp.peers) do not depend on the model:
they are run with the first database only, on the same queries. ``--db_hop S`` also builds
a sibling database of the same fingerprinter with fingerprints every S seconds, so that two
database hops are compared on the same queries.

Prints one JSON line: per system the mean hit rate (20 cells) as mean ± sd over all its runs,
the share of queries naming the right recording, bytes per audio-second and ms per query
(median over runs).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
from pathlib import Path

from tools import create_faiss_indexes, eval_fingerprint, generate_fingerprints


def _run(db: Path, references: Path, out: Path, seed: int, per_cell: int, landmark: bool,
         peers: list[str]) -> dict:
    wanted = ["learned"] + (["landmark"] + peers if landmark else [])
    done = out / "results.json"
    if not done.is_file() or any(name not in json.loads(done.read_text()) for name in wanted):
        args = [str(db), str(references), "--out_dir", str(out), "--seed", str(seed), "--per_cell", str(per_cell)]
        args += [a for name in peers for a in ("--peer", name)] if landmark else ["--no_landmark"]
        with contextlib.redirect_stdout(sys.stderr):            # the tool's table: stdout keeps one JSON line
            status = eval_fingerprint.main(args)
        if status != 0:
            raise SystemExit(f"tools.eval_fingerprint failed on {db} (seed {seed})")
    return json.loads((out / "results.json").read_text())


def _sibling(db: Path, references: Path, hop: float, out: Path) -> Path:
    """The fingerprinter of ``db`` with a database every ``hop`` seconds, built once."""
    target = out / f"{db.parent.name}_{db.name}_hop{hop:g}"
    if not (target / "db" / "index.faiss").is_file():
        model_dir = json.loads((db / "index.json").read_text())["model"]["model_dir"]
        with contextlib.redirect_stdout(sys.stderr):
            built = generate_fingerprints.main([model_dir, str(references), "--out_dir", str(target / "fingerprints"),
                                                "--hop_s", str(hop), "--no_progress"]) == 0 and \
                create_faiss_indexes.main(["--input", str(target / "fingerprints"), "--name", "references",
                                           "--out_dir", str(target / "db")]) == 0
        if not built:
            raise SystemExit(f"could not build the {hop} s database of {model_dir}")
    return target / "db"


def _mean_hit_rate(result: dict) -> float:
    return statistics.fmean(result["hit_rate"].values())


def _summary(results: list[dict]) -> dict:
    rates = [_mean_hit_rate(r) for r in results]
    return {"mean_hit_rate": round(statistics.fmean(rates), 4),
            "sd": round(statistics.stdev(rates), 4) if len(rates) > 1 else None, "runs": len(rates),
            "recording_right": round(statistics.fmean(r["recording_right"] for r in results), 4),
            "bytes_per_audio_s": statistics.median(r["bytes_per_audio_s"] for r in results),
            "query_ms_p50": statistics.median(r["query_ms_p50"] for r in results)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("references", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--db", type=Path, action="append", required=True)
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--per_cell", type=int, default=40)
    p.add_argument("--db_hop", type=float, help="also a database every DB_HOP s of the first fingerprinter")
    p.add_argument("--peer", action="append", default=[], choices=sorted(eval_fingerprint.PEERS),
                   help="also another project's fingerprinter (repeatable)")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    systems: dict[str, list[dict]] = {}
    dbs = [("learned", db) for db in args.db]
    if args.db_hop:
        dbs.append((f"learned, database hop {args.db_hop:g} s", _sibling(args.db[0], args.references, args.db_hop,
                                                                          args.out_dir)))
    for k, (name, db) in enumerate(dbs):
        for seed in seeds:
            out = args.out_dir / f"{db.parent.name}_{db.name}" / f"seed{seed}"
            result = _run(db, args.references, out, seed, args.per_cell, landmark=k == 0, peers=args.peer)
            systems.setdefault(name, []).append(result["learned"])
            for other in (["landmark", *dict.fromkeys(args.peer)] if k == 0 else []):
                systems.setdefault(other, []).append(result[other])
    print(json.dumps({"per_cell": args.per_cell, "seeds": seeds, "databases": [str(db) for _, db in dbs],
                      **{name: _summary(results) for name, results in systems.items()}}))


if __name__ == "__main__":
    main()
