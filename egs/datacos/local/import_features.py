"""Stage 2 of egs/datacos: import one key of the Da-TACOS HDF5 files into the feature store.

    python3 local/import_features.py DATA_DIR [--key crema] [--overwrite]

Reads DATA_DIR/dataset.txt (records with ``h5``), writes DATA_DIR/pcp_feat/, full.txt, the id
maps, bad.txt and h5_layout.json (how many files stored the key (frames, 12) and how many
(12, frames), the cover-analysis crema's layout, transposed on import; csi.features.h5import);
for the benchmark (a DATA_DIR with query.txt) also
feat_query.txt / feat_ref.txt, the protocol on the imported features (bad files left out);
with --dev_fraction F (cover-analysis), train.txt and dev.txt: the works whose hash is below F
(at least 2) held out as a development set (all-vs-all), the others for training.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from csi.features.h5import import import_h5_features
from csi.features.store import FeatureStoreError
from datacos import split_by_work, write_protocol
from csi.io.manifest import read_manifest, write_manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir")
    p.add_argument("--key", default="crema", choices=("crema", "hpcp", "chroma_cens"))
    p.add_argument("--hop_length", type=int, default=512)
    p.add_argument("--sr", type=int, default=44100)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--dev_fraction", type=float, default=None, help="hold out this fraction of the works (train.txt, dev.txt)")
    args = p.parse_args(argv)
    data = Path(args.data_dir)
    try:
        s = import_h5_features(data, key=args.key, sr=args.sr, hop_length=args.hop_length, overwrite=args.overwrite,
                               log=lambda m: print(m, file=sys.stderr))
    except (FeatureStoreError, OSError, ValueError) as e:
        print(f"import_features: {e}", file=sys.stderr)
        return 1
    print(f"import_features: {data}: {s.line()}", file=sys.stderr)
    if s.recordings and s.bad == s.recordings:
        print("import_features: every file failed (see bad.txt)", file=sys.stderr)
        return 1
    if (data / "query.txt").is_file():
        nq, nr = write_protocol(data, read_manifest(data / "full.txt", required=("utt", "song", "feat")), "feat_")
        print(f"import_features: protocol {nq} queries, {nr} references", file=sys.stderr)
    if args.dev_fraction is not None:
        full = read_manifest(data / "full.txt", required=("utt", "song", "feat"))
        train, dev = split_by_work(full, args.dev_fraction)
        write_manifest(data / "train.txt", train)
        write_manifest(data / "dev.txt", dev)
        print(f"import_features: {len(train)} training and {len(dev)} development performances "
              f"({len({r['song'] for r in dev})} works held out)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
