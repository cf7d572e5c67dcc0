"""Chunk alignments (issue 10) scored against the demo corpus's ground truth. From the repo root:

    python3 egs/synthcovers/local/alignment.py --alignments ALIGN.jsonl --manifest FULL_OR_DATASET.txt \
        [--manifest MORE.txt] [--chunk_s 15] [--tol_s 2] [--cross_source phrase|none]

ALIGN.jsonl holds one alignment a line, ``{"utt_a", "utt_b", "shift_s", "scale",
"confidence", ...}`` meaning ``t_b = scale * t_a + shift_s``; lines with a ``header`` key
are skipped. The manifests (a data directory's ``full.txt`` or a corpus ``dataset.txt``,
whose records carry ``layout``) give the truth (:mod:`synthcovers.truth`); a tempo copy
``sp_<k>-<utt>`` missing from them is derived from ``<utt>``. A pair is right when the map
is within ``tol_s`` of the true time for at least half of the chunk centres of a (every
``chunk_s / 2`` s) that b plays. Prints one JSON line: ``overall_share`` (right / scored),
``shift0_share`` (the same pairs scored for ``t_b = t_a``, the reference to beat),
``pairs_scored``, ``pairs_not_scorable`` (no truth: different works, scores that cannot be
matched, no probe played in b; unknown utts; no prediction), the shares by confidence
bucket and by same / different source score, and the counts behind them.
"""
from __future__ import annotations

import argparse
import json
import sys

from synthcovers.truth import CROSS_SOURCE, accuracy_table
from csi.io.manifest import read_manifest


def read_alignments(path: str) -> list[dict]:
    """The alignment lines of ``path`` (blank lines and ``{"header": ...}`` lines skipped)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{lineno}: malformed JSON ({e.msg})") from None
            if isinstance(rec, dict) and "header" not in rec:
                out.append(rec)
    return out


def shift_zero(alignments: list[dict]) -> list[dict]:
    """The same pairs with the map ``t_b = t_a`` ("shift 0": the versions assumed to start
    together and keep time), the reference an alignment has to beat."""
    return [{**al, "shift_s": 0.0, "scale": 1.0} for al in alignments if al.get("shift_s") is not None]


def figures(alignments: list[dict], records_by_utt: dict, chunk_s: float, tol_s: float,
            cross_source: str = "phrase") -> dict:
    table = accuracy_table(alignments, records_by_utt, chunk_s, tol_s, cross_source=cross_source)
    zero = accuracy_table(shift_zero(alignments), records_by_utt, chunk_s, tol_s, cross_source=cross_source)
    not_scored = table["not_scored"]
    return {
        "overall_share": table["overall"]["share"],
        "shift0_share": zero["overall"]["share"],
        "pairs_scored": table["overall"]["scored"],
        "pairs_right": table["overall"]["ok"],
        "pairs_not_scorable": not_scored["no_truth"] + not_scored["unknown_utt"] + not_scored["no_prediction"],
        "alignments": len(alignments),
        "bucket_shares": {f"{r['lo']:g}-{r['hi']:g}": r["share"] for r in table["buckets"]},
        "bucket_counts": {f"{r['lo']:g}-{r['hi']:g}": r["scored"] for r in table["buckets"]},
        "same_source_share": table["by_pairing"]["same_source"]["share"],
        "same_source_scored": table["by_pairing"]["same_source"]["scored"],
        "cross_source_share": table["by_pairing"]["cross_source"]["share"],
        "cross_source_scored": table["by_pairing"]["cross_source"]["scored"],
        "not_scored": not_scored,
        "chunk_s": chunk_s, "tol_s": tol_s, "cross_source": cross_source,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alignments", required=True, help="JSONL of alignments (a header line is skipped)")
    parser.add_argument("--manifest", required=True, action="append",
                        help="full.txt or dataset.txt with layout fields (repeatable)")
    parser.add_argument("--chunk_s", type=float, default=15.0, help="chunk length: probes every chunk_s/2 s")
    parser.add_argument("--tol_s", type=float, default=2.0, help="tolerance in seconds")
    parser.add_argument("--cross_source", choices=CROSS_SOURCE, default="phrase",
                        help="versions of different member scores: matched phrase by phrase, or not scored")
    args = parser.parse_args(argv)
    records = {}
    for path in args.manifest:
        for rec in read_manifest(path, required=("utt",)):
            records.setdefault(rec["utt"], rec)
    if not any("layout" in r for r in records.values()):
        print(f"alignment bench: no record of {', '.join(args.manifest)} has a layout field "
              f"(made before synthcovers recorded it?): nothing can be scored", file=sys.stderr)
    out = figures(read_alignments(args.alignments), records, args.chunk_s, args.tol_s, args.cross_source)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
