"""Stage 4: align the versions of every work with the coarse model (CoverHunter's command line).

    python3 -m tools.alignment_for_frames MODEL_DIR DATA_PATH OUT_PATH [--chunk_s 15] [--hop_s 1.25]
        [--match csls|nearest] [--tol_s 2] [--max_tempo_ratio 1] [--max_pairs_per_work 100] [--seed 0] [--checkpoint C]
        [--plot_work WORK ...] [--batch_size N] [--device D] [--no_progress] [--shard K/N | --merge N]

DATA_PATH: a manifest (JSON lines with utt, song and feat or wav). Every recording is
embedded in chunks of ``--chunk_s`` every ``--hop_s`` through the model's own front end
(csi.embed); for every pair of versions of a work, each chunk is matched to its nearest
chunk in the other version (both ways; ``--match csls`` corrects the cosine for chunks close
to everything) and the time map most matches agree on (within
``--tol_s``) is kept: ``t_b = scale * t_a + shift_s``, scale 1 unless ``--max_tempo_ratio``
> 1 lets it search tempo ratios. Tempo copies (``sp_<k>-<utt>``) count as their source
recording; a work with one recording is skipped and counted; a recording shorter than a
chunk is one padded chunk; works with more than ``--max_pairs_per_work`` pairs get that many,
drawn with ``--seed`` (the log says how many works were capped).

OUT_PATH (JSON lines): a header naming the manifest, the model and the settings, then one
line a pair ``{"utt_a", "utt_b", "shift_s", "scale", "shift_frames", "confidence",
"n_chunks", "n_chunks_b"}``. Also OUT_PATH.yaml (resolved settings, counts, environment)
and, for each ``--plot_work``, ``align_<work>.png`` beside OUT_PATH (with the true positions
when the records carry the demo corpus's ``layout``). As N jobs (``python3 -m jobs``):
``--shard K/N`` aligns every N-th work into OUT_PATH.part-K-of-N, and ``--merge N`` writes
OUT_PATH from the N parts (refusing a missing one, or one made from another manifest, model
or settings). Exit status 0; 1 on bad input; 2 on a usage error.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

from csi.cli import (add_checkpoint_arg, add_device_arg, add_progress_arg, add_shard_args, check_shard_args,
                     run_tool_main, setup_logging)

log = logging.getLogger("csi.align")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path, help="coarse model directory (config/, pt_model/)")
    p.add_argument("data_path", type=Path, help="manifest of the recordings to align")
    p.add_argument("out_path", type=Path, help="alignment file (JSON lines)")
    p.add_argument("--chunk_s", type=float, default=15.0, help="chunk length in seconds")
    p.add_argument("--hop_s", type=float, default=1.25, help="seconds between chunk starts")
    p.add_argument("--match", choices=("csls", "nearest"), default="csls",
                   help="chunk similarity: hubness-corrected (csls) or plain cosine (nearest)")
    p.add_argument("--tol_s", type=float, default=2.0, help="votes within this many seconds agree")
    p.add_argument("--max_tempo_ratio", type=float, default=1.0, help="search tempo ratios up to this (1: shifts only)")
    p.add_argument("--max_pairs_per_work", type=int, default=100, help="pairs aligned per work at most (0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pair sampling")
    add_checkpoint_arg(p)
    p.add_argument("--plot_work", action="append", default=[], metavar="WORK", help="draw align_<WORK>.png")
    p.add_argument("--batch_size", type=int, default=32)
    add_device_arg(p)
    add_shard_args(p, "work")
    add_progress_arg(p)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.chunk_s <= 0 or args.hop_s <= 0 or args.tol_s < 0 or args.max_tempo_ratio < 1 \
            or args.max_pairs_per_work < 0 or args.batch_size < 1:
        parser.error("--chunk_s/--hop_s must be > 0, --tol_s >= 0, --max_tempo_ratio >= 1, --batch_size >= 1")
    check_shard_args(parser, args)
    setup_logging()
    from csi.align import AlignmentError
    return run_tool_main("alignment_for_frames", lambda: align(args), (AlignmentError,))


def align(args: argparse.Namespace) -> int:
    from csi.align import AlignmentError
    from csi.align.aligner import AlignSettings, AlignStats, align_collection, header, merge_parts, write_alignments
    from csi.io.manifest import atomic_write_text
    from csi.align.plot import check_plot_works, plot_work
    from csi.modeldir import open_model
    from csi.env import write_run_info
    from csi.io.manifest import read_manifest

    t0 = time.time()
    records = read_manifest(args.data_path, required=("utt", "song"))
    check_plot_works(records, args.plot_work)
    loaded = open_model(args.model_dir, args.checkpoint, args.device)
    settings = AlignSettings(args.chunk_s, args.hop_s, args.match, args.tol_s, args.max_tempo_ratio,
                             args.max_pairs_per_work or None, args.seed, args.batch_size)
    stats = AlignStats()
    head = header(loaded, args.data_path, settings)
    if args.shard:                  # job K of N: its part and counts only (the merge writes the rest)
        part = part_path(args.out_path, *args.shard)
        n = write_alignments(part, {**head, "shard": list(args.shard)},
                             align_collection(loaded, records, settings, stats, progress=not args.no_progress,
                                              shard=args.shard))
        atomic_write_text(part.with_name(part.name + ".stats.json"), json.dumps(asdict(stats)) + "\n")
        log.info("%s: shard %d/%d: %d pairs of %d works in %.1f s", part, *args.shard, n, stats.works, time.time() - t0)
        return 0
    if args.merge:
        parts = [part_path(args.out_path, k, args.merge) for k in range(1, args.merge + 1)]
        missing = [str(p) for p in parts if not p.with_name(p.name + ".stats.json").is_file()]
        if missing:
            raise AlignmentError(f"cannot merge the alignment parts of {args.out_path}: not finished: {', '.join(missing)}")
        n = merge_parts(args.out_path, head, parts, records)
        for p in parts:
            counts = json.loads(p.with_name(p.name + ".stats.json").read_text())
            for key, value in counts.items():
                setattr(stats, key, getattr(stats, key) + value)
    else:
        n = write_alignments(args.out_path, head,
                             align_collection(loaded, records, settings, stats, progress=not args.no_progress))
    seconds = time.time() - t0
    log.info("%s: %d pairs of %d works in %.1f s (%.1f pairs/s); %d works with one recording skipped; %d works "
             "capped at %d pairs (%d of %d possible pairs aligned); %d recordings unusable", args.out_path, n,
             stats.works, seconds, n / max(seconds, 1e-9), stats.works_single, stats.works_capped,
             args.max_pairs_per_work, stats.pairs, stats.pairs_possible, stats.failed_records)
    plots = {}
    truth = None
    if all("layout" in r for r in records):   # the demo corpus knows where each version plays what
        from synthcovers.truth import time_map as truth
    for work in args.plot_work:
        png = args.out_path.parent / f"align_{work}.png"
        plots[work] = {"png": str(png), **plot_work(loaded, records, work, settings, png, truth)}
        log.info("wrote %s", png)
    write_run_info(args.out_path.with_name(args.out_path.name + ".yaml"),
                   {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                    "checkpoint": loaded.checkpoint.name, "settings": asdict(settings)},
                   counts=asdict(stats), pairs_per_s=round(n / max(seconds, 1e-9), 2), seconds=round(seconds, 2),
                   plots=plots)
    return 0


def part_path(out_path: Path, k: int, n: int) -> Path:
    return out_path.with_name(f"{out_path.name}.part-{k}-of-{n}")


if __name__ == "__main__":
    sys.exit(main())
