"""Stage 2: CQT features with augmentation (CoverHunter's command line).

    python3 -m tools.extract_csi_features DATA_DIR [--nj 4] [--overwrite]
    torchrun --nproc_per_node 4 -m tools.extract_csi_features DATA_DIR     # shards by rank

Reads DATA_DIR/dataset.txt and DATA_DIR/hparams.yaml (optional; defaults: no
augmentation, CoverHunter CQT). Writes DATA_DIR/full.txt, cqt_feat/, song_id.map,
song_id_num.map, song_name_num.map, bad.txt and extract_csi_features.yaml. Finished
features are reused; a store made with other settings is refused unless --overwrite.
Exit status 0 unless the input is invalid or every recording failed.
"""
from __future__ import annotations

import argparse
import os
import sys

from csi.features.stage import extract_features
from csi.features.store import FeatureStoreError
from csi.io.manifest import ManifestError
from csi.registry import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("--nj", type=int, default=1, help="worker processes (per rank)")
    parser.add_argument("--overwrite", action="store_true", help="recompute a store made with other settings")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        summary = extract_features(args.data_dir, nj=args.nj, overwrite=args.overwrite,
                                   progress=not args.no_progress, log=log)
    except (ConfigError, ManifestError, FeatureStoreError, FileNotFoundError) as e:
        log(f"extract_csi_features: {e}")
        return 1
    if int(os.environ.get("RANK", 0)) == 0:
        log(f"extract_csi_features: {summary.line()} -> {os.path.join(args.data_dir, 'full.txt')}")
    if summary.recordings and summary.bad == summary.recordings:
        log("extract_csi_features: every recording failed (see bad.txt)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
