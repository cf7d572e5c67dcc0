"""Split a manifest into subsets by work (no work in two subsets).

    python3 -m tools.split_manifest IN OUT_DIR --fractions train=0.8,test=0.2 --seed 0 \
        [--query_ref test]

Writes OUT_DIR/<subset>/dataset.txt for every subset; for the subsets named by
--query_ref also query.txt (first version of each work) and ref.txt (the other versions).
The split depends only on the set of works and the seed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from csi.io.manifest import ManifestError, query_ref_split, read_manifest, split_by_work, works_of, write_manifest


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--fractions", type=parse_fractions, default=parse_fractions("train=0.8,test=0.2"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--query_ref", nargs="*", default=[], metavar="SUBSET",
                        help="subsets that also get query.txt/ref.txt")
    args = parser.parse_args(argv)
    unknown = set(args.query_ref) - set(args.fractions)
    if unknown:
        parser.error(f"--query_ref names subsets not in --fractions: {', '.join(sorted(unknown))}")
    try:
        records = read_manifest(args.manifest)
    except (ManifestError, OSError) as e:
        print(f"split_manifest: {e}", file=sys.stderr)
        return 1
    subsets = split_by_work(records, args.fractions, seed=args.seed)
    for name, subset in subsets.items():
        out = args.out_dir / name
        if name in args.query_ref:
            queries, refs = query_ref_split(subset)
            write_manifest(out / "query.txt", queries)
            write_manifest(out / "ref.txt", refs)
        write_manifest(out / "dataset.txt", subset)
        print(f"split_manifest: {name}: {len(works_of(subset))} works, {len(subset)} recordings -> {out}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
