"""Split a manifest into subsets by work (no work in two subsets).

    python3 -m tools.split_manifest IN --out_dir OUT_DIR --fractions train=0.8,test=0.2 --seed 0 \
        [--query_ref test]
    python3 -m tools.split_manifest IN --out_dir OUT_DIR --by_field split [--subsets train val test] \
        [--query_ref val test]

Writes OUT_DIR/<subset>/dataset.txt for every subset (for those of --query_ref also
query.txt, the first version of each work, and ref.txt, the others) and
OUT_DIR/split_manifest.yaml (settings used, subset sizes, environment). OUT_DIR as the
second positional argument (the old form) still works, with a warning. With --fractions
the split depends only on the set of works and the seed. With --by_field FIELD the
subsets are the values of that record field (the demo corpus writes "split":
train/val/test, fixed per work); every record must have it and all versions of a work
must agree. --subsets names the subsets that must be present. A subset with fewer than
two works is an error: its queries would have nothing to retrieve. Exit status 1 on bad
input (one line naming it), 2 on a usage error.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from csi.cli import run_tool_main
from csi.io.manifest import ManifestError, query_ref_split, read_manifest, split_by_work, works_of, write_manifest

MIN_WORKS = 2


def parse_fractions(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected name=fraction[,name=fraction...], got {item!r}") from None
    return out


def split_by_field(records: list[dict], field: str) -> dict[str, list[dict]]:
    """Records grouped by the (string) value of ``field``, in first-seen order of values.
    ManifestError if a record lacks the field or a work has records with different values."""
    missing = [r["utt"] for r in records if field not in r or r[field] in (None, "")]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ManifestError(f"{len(missing)} record(s) have no {field!r} field: {shown}")
    subsets: dict[str, list[dict]] = {}
    value_of: dict[str, str] = {}
    for rec in records:
        value = str(rec[field])
        if value_of.setdefault(rec["song"], value) != value:
            raise ManifestError(f"work {rec['song']!r} has records with {field}={value_of[rec['song']]!r} "
                                f"and {field}={value!r}: a work must be in one subset")
        subsets.setdefault(value, []).append(rec)
    return subsets


def check_subsets(subsets: dict[str, list[dict]], required: list[str]) -> None:
    """ManifestError naming a required subset that is empty, or any subset with one work."""
    for name in required:
        if not subsets.get(name):
            present = ", ".join(sorted(k for k, v in subsets.items() if v)) or "none"
            raise ManifestError(f"subset {name!r} is empty (non-empty: {present})")
    for name, subset in subsets.items():
        n = len(works_of(subset))
        if n < MIN_WORKS:
            raise ManifestError(f"subset {name!r} has {n} work{'s' if n != 1 else ''}: it needs at least "
                                f"{MIN_WORKS} (its queries would have nothing to retrieve)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("legacy_out_dir", nargs="?", type=Path, help=argparse.SUPPRESS)   # the old OUT_DIR
    parser.add_argument("--out_dir", type=Path, help="where OUT_DIR/<subset>/dataset.txt ... are written")
    parser.add_argument("--fractions", type=parse_fractions, default=None,
                        help="name=fraction,... of the works (default train=0.8,test=0.2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--by_field", default=None, metavar="FIELD",
                        help="split by the values of this record field instead of by fractions")
    parser.add_argument("--subsets", nargs="+", default=None, metavar="NAME",
                        help="with --by_field: subsets that must be present (others are an error)")
    parser.add_argument("--query_ref", nargs="*", default=[], metavar="SUBSET",
                        help="subsets that also get query.txt/ref.txt")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.legacy_out_dir is not None:
        if args.out_dir is not None:
            parser.error("give the output directory once (--out_dir)")
        print(f"{parser.prog}: warning: OUT_DIR as a second positional argument is deprecated, use --out_dir",
              file=sys.stderr)
        args.out_dir = args.legacy_out_dir
    del args.legacy_out_dir
    if args.out_dir is None:
        parser.error("the following arguments are required: --out_dir")
    if args.by_field is not None and args.fractions is not None:
        parser.error("--by_field and --fractions are exclusive")
    if args.subsets is not None and args.by_field is None:
        parser.error("--subsets needs --by_field")
    if args.by_field is None:
        args.fractions = args.fractions or parse_fractions("train=0.8,test=0.2")
        unknown = set(args.query_ref) - set(args.fractions)
        if unknown:
            parser.error(f"--query_ref names subsets not in --fractions: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_tool_main("split_manifest", lambda: run(args))


def run(args: argparse.Namespace) -> None:
    from csi.env import write_run_info

    records = read_manifest(args.manifest)
    if args.by_field is None:
        subsets = split_by_work(records, args.fractions, seed=args.seed)
        check_subsets(subsets, [name for name, f in args.fractions.items() if f > 0])
    else:
        subsets = split_by_field(records, args.by_field)
        required = list(dict.fromkeys([*(args.subsets or []), *args.query_ref]))
        if args.subsets is not None:
            extra = sorted(set(subsets) - set(args.subsets))
            if extra:
                raise ManifestError(f"{args.by_field} values not in --subsets: {', '.join(extra)}")
        check_subsets(subsets, required)
        subsets = {name: subsets[name] for name in (args.subsets or sorted(subsets))}
    for name, subset in subsets.items():
        out = args.out_dir / name
        if name in args.query_ref:
            queries, refs = query_ref_split(subset)
            write_manifest(out / "query.txt", queries)
            write_manifest(out / "ref.txt", refs)
        write_manifest(out / "dataset.txt", subset)
        print(f"split_manifest: {name}: {len(works_of(subset))} works, {len(subset)} recordings -> {out}",
              file=sys.stderr)
    config = {"manifest": args.manifest, "out_dir": args.out_dir, "query_ref": args.query_ref,
              **({"by_field": args.by_field, "subsets": list(subsets)} if args.by_field else
                 {"fractions": args.fractions, "seed": args.seed})}
    write_run_info(args.out_dir / "split_manifest.yaml", config,
                   subsets={name: {"works": len(works_of(s)), "recordings": len(s)} for name, s in subsets.items()})


if __name__ == "__main__":
    sys.exit(main())
