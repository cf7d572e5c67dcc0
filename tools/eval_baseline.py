"""Evaluate non-learned reference systems on a test set (no model needed):

    python3 -m tools.eval_baseline QUERY_PATH REF_PATH [--system NAME ...|all] [--out_dir DIR]
        [--keep_tempo_copies] [--no_progress]

QUERY_PATH / REF_PATH are feature manifests (JSON lines with ``utt``, ``song`` and ``feat``,
a stored CQT); the same file for both is the all-vs-all protocol. Systems
(``csi.baselines``): ``chance`` (exact expectation of a random ranking),
``chroma_mean`` (key-invariant mean chroma), ``2dftm`` (2D Fourier transform magnitude,
Bertin-Mahieux & Ellis 2012), ``qmax`` (Serra, Serra & Andrzejak 2009: cross-recurrence
and Qmax alignment of every track pair; its pairs aligned and pairs/s are printed; more than
2M pairs are refused: re-rank an embedding search instead), ``mean_cqt`` (mean CQT, not
key-invariant); ``--system`` may
be repeated or comma-separated (default ``all``). A query never ranks its own recording nor,
unless ``--keep_tempo_copies``, its tempo copies (``csi.scoring.metrics.same_source_pairs``).

Prints the metrics of ``tools.eval_testset`` (MAP, MR1, P@10, HR@1, HR@10, queries) per
system as a table and one JSON line; with ``--out_dir`` writes ``metrics.json`` (``chance``
and ``baselines`` entries as in eval_testset's) and ``eval_baseline.yaml`` (resolved config
and environment). Exit status 1 with a message on bad input (missing file, empty split or a
single work, records without stored features, a feature a system cannot use), 2 on a usage
error.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from csi.cli import add_progress_arg, run_tool_main

log = logging.getLogger("csi.eval")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("query_path", type=Path)
    p.add_argument("ref_path", type=Path)
    p.add_argument("--system", action="append", default=None,
                   help="system name(s), comma-separated or repeated, or 'all' (default)")
    p.add_argument("--keep_tempo_copies", action="store_true",
                   help="rank the tempo copies (sp_<k>-<utt>) of a query's recording (default: excluded)")
    p.add_argument("--out_dir", type=Path, help="write metrics.json and eval_baseline.yaml here")
    add_progress_arg(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from csi.baselines import BaselineError
    return run_tool_main("eval_baseline", lambda: run(args), (BaselineError,))


def read_split(path: Path, role: str) -> list[dict]:
    from csi.baselines import BaselineError, check_split, has_stored_features
    from csi.io.manifest import read_manifest

    if not path.is_file():
        raise BaselineError(f"{role} manifest {path} not found")
    records = read_manifest(path, required=("utt", "song"))
    check_split(records, path)
    if not has_stored_features(records):
        missing = sum(1 for r in records if not r.get("feat"))
        raise BaselineError(f"{path}: {missing} of {len(records)} records have no stored feature (feat); "
                            "the baselines read stored features (run the feature stage first)")
    return records


def run(args: argparse.Namespace) -> dict[str, Any]:
    from csi.baselines import evaluate_baselines, format_table, metrics_entries, resolve_systems, table_rows
    from csi.scoring.metrics import same_source_pairs

    t_start = time.time()
    systems = resolve_systems(args.system or "all")
    queries = read_split(args.query_path, "query")
    all_vs_all = args.ref_path.exists() and os.path.samefile(args.query_path, args.ref_path)
    refs = queries if all_vs_all else read_split(args.ref_path, "reference")
    exclude = same_source_pairs([r["utt"] for r in queries], [r["utt"] for r in refs],
                                keep_tempo_copies=args.keep_tempo_copies)
    results = evaluate_baselines(queries, refs, systems, exclude=exclude, progress=not args.no_progress)
    entries = metrics_entries(results)
    summary = {"protocol": "all-vs-all" if all_vs_all else "query-vs-reference",
               "query_path": str(args.query_path), "ref_path": str(args.ref_path),
               "queries_total": len(queries), "references": len(refs), "excluded_pairs": len(exclude[0]),
               "systems": systems, **entries, "time_total_s": round(time.time() - t_start, 3)}
    if args.out_dir:
        from csi.env import write_run_info
        from csi.io.manifest import atomic_write_text

        args.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out_dir / "metrics.json", json.dumps(summary, indent=1) + "\n")
        write_run_info(args.out_dir / "eval_baseline.yaml", vars(args),
                       resolved={"systems": systems, "protocol": summary["protocol"],
                                 "excluded_pairs": summary["excluded_pairs"]})
    print(f"eval_baseline {args.query_path.name} vs {args.ref_path.name} ({summary['protocol']}, "
          f"{len(queries)} queries, {len(refs)} references):")
    print(format_table(table_rows(results)))
    for name, m in results.items():
        if "pairs_per_s" in m:
            print(f"{name}: {m['pairs']:,} track pairs aligned, {m['pairs_per_s']:,.0f} pairs/s, {m['time_s']:.1f} s "
                  "with the features")
    print(json.dumps({name: {k: m[k] for k in ("MAP", "MR1", "P@10", "HR@1", "HR@10", "queries", "time_s", "pairs",
                                                 "pairs_per_s") if k in m}
                      for name, m in results.items()}))
    if args.out_dir:
        log.info("wrote %s", args.out_dir)
    return summary


if __name__ == "__main__":
    sys.exit(main())
