"""Evaluate a model on a test set (stage 6), CoverHunter's command line:

    python3 -m tools.eval_testset MODEL_DIR QUERY_PATH REF_PATH [--query_in_ref_path P] [--keep_tempo_copies]
        [--chunk_s S] [--hop_s H] [--distance min|mean|best_pairs] [--best_pairs_k K] [--batch_size N] [--device D]
        [--num_workers N] [--distractors MANIFEST] [--out_dir DIR] [--checkpoint C]
        [--bootstrap N] [--plot] [--baselines NAMES|all] [--rerank qmax --rerank_top K]
        [--protocol all-vs-all|query-vs-reference]

QUERY_PATH / REF_PATH are manifests (JSON lines with ``utt``, ``song`` and ``feat`` (stored
features) or ``wav`` (features computed on the fly by the model's own front end, read from
MODEL_DIR/config/model_card.yaml; the CoverHunter CQT for a reference directory without one)). The same file for both is the all-vs-all
protocol: each track ranks every other one (CoverHunter's covers80 figure: 164 recordings, each
querying the other 163); two files are the query-vs-reference protocol (e.g. covers80's list1
against list2). ``--protocol`` names the one meant (``all_vs_all`` also spelled so) and refuses
files that do not make it; the protocol and its counts are in ``metrics.json`` (``protocol``,
``protocol_detail``), the printed line and the header row of ``metrics_table.txt``. A track whose features or audio cannot be used
is reported (``failed.tsv``) and left out, never fatal. Each track is cut into chunks of
``--chunk_s`` seconds (default the model's training chunk, from its card) every
``--hop_s`` (default the card's ``matching.hop_s``, else no overlap; the last chunk is aligned
to the end); by default tracks are compared as the card's ``matching`` says; the distance of two
tracks is the smallest cosine distance of their chunks (``--distance min``), the mean of the
``--best_pairs_k`` best chunk pairs taken without replacement (``--distance best_pairs``, the
reduction of segment models, CLEWS), or with ``--distance mean`` (``--mean_embedding``) the
cosine distance of their averaged chunk embeddings.

Excluded pairs (not ranked): a query and a reference with the same source recording (the same
``utt``, or one a tempo copy ``sp_<k>-<utt>`` of the other or both copies of one recording;
csi.scoring.metrics.same_source_pairs; with ``--keep_tempo_copies`` only the same ``utt``), and
the pairs of ``--query_in_ref_path``: JSON lines ``{"query": utt, "ref": utt}`` or ``[utt, utt]``,
two-column text ``query_utt ref_utt``, or the reference's ``{"query_in_ref": [[i, j], ...]}``
(0-based line numbers of the query and reference manifests). An unknown id is an error.
``--distractors MANIFEST``: extra references that are never relevant (e.g. Da-TACOS noise).

Metrics (csi.scoring.metrics: MAP over all relevant references, MR1, P@10, HR@1, HR@10; queries
without relevant reference counted apart) are printed and written to ``--out_dir`` (default
``MODEL_DIR/eval_<query file name>``): ``metrics.json``, ``per_query.tsv``, ``failed.tsv``,
``eval_testset.yaml`` (resolved config and environment), ``embeddings/<key>/`` (chunk
embeddings ``chunks.npy`` + ``index.jsonl``: utt, source, first and last chunk row,
inclusive), where ``key`` hashes the checkpoint file, the front end and the chunking, so embeddings
are reused only for the same model, settings and unchanged source files; failed tracks
are not cached, so they are tried again), and with
``--plot`` ``distance_hist.png`` and ``embedding_pca.png``.

``--baselines chroma_mean,2dftm,...|all`` evaluates non-learned reference systems
(csi.baselines: chance, chroma_mean, 2dftm, qmax, mean_cqt) on the same records, labels and
excluded pairs from their stored features (records with audio only: every system but chance
is skipped, saying so); ``metrics.json`` gets ``"chance"`` and ``"baselines": {name:
{MAP, MR1, P@10, HR@1, HR@10, ...}}``, and the table model | chance | baselines is printed
and written to ``metrics_table.txt``.

``--rerank qmax --rerank_top K`` (two-stage retrieval, csi.eval.rerank): the embedding search
ranks every reference, then Serrà's Qmax (csi.baselines.qmax) re-scores each query's top
K, aligned on the model's own features (a front end that is not a 12-bins-per-octave CQT is
refused). The metrics are the two-stage ranking's; ``metrics.json`` adds ``first_stage`` (the
embeddings alone) and ``rerank`` (pairs aligned, ms per query of each stage), and the table
shows both rows.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from csi.cli import add_checkpoint_arg, add_device_arg, add_progress_arg, add_rerank_args

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument("query_path", type=Path)
    p.add_argument("ref_path", type=Path)
    p.add_argument("--query_in_ref_path", "-query_in_ref_path", type=Path, default=None,
                   help="(query utt, ref utt) pairs that are the same recording: not ranked")
    p.add_argument("--keep_tempo_copies", action="store_true",
                   help="rank the tempo copies (sp_<k>-<utt>) of a query's recording; by default they are "
                        "excluded like the query itself")
    p.add_argument("--chunk_s", type=float, help="chunk length in seconds (default: the model's training chunk)")
    p.add_argument("--hop_s", type=float, help="chunk hop in seconds (default: the card's matching.hop_s for the "
                                                "training chunk, else chunk_s: no overlap)")
    p.add_argument("--distance", choices=("min", "mean", "best_pairs"),
                   help="track distance from chunk distances (csi.scoring.distance; default: the model card's "
                        "matching.distance, min for CoverHunter)")
    p.add_argument("--best_pairs_k", type=int, help="pairs averaged by --distance best_pairs (default: the card's)")
    p.add_argument("--mean_embedding", action="store_true", help="the same as --distance mean")
    p.add_argument("--batch_size", type=int, default=32)
    add_device_arg(p)
    add_progress_arg(p)
    p.add_argument("--num_workers", type=int, default=0, help="processes reading features / decoding audio")
    p.add_argument("--distractors", type=Path, help="manifest of references that are never relevant")
    p.add_argument("--out_dir", type=Path)
    add_checkpoint_arg(p)
    p.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamplings for a 95%% CI of MAP")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--plot", action="store_true", help="write distance_hist.png and embedding_pca.png")
    p.add_argument("--baselines", default="", metavar="NAMES",
                   help="also evaluate non-learned reference systems on the same records and excluded pairs "
                        "(comma-separated names or 'all'; csi.baselines; they read stored features)")
    add_rerank_args(p)
    p.add_argument("--protocol", metavar="all-vs-all|query-vs-reference",
                   help="the protocol meant (default: the files say: the same one twice is all-vs-all); "
                        "files that make the other one are an error")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from csi.cli import run_tool_main
    from csi.eval.testset import EvalError, TestsetRequest, run
    return run_tool_main("eval_testset", lambda: report(run(TestsetRequest(**vars(args)))), (EvalError,))


def report(result) -> dict:
    """Print an evaluation's line, its table beside the baselines and its metrics as JSON."""
    import json

    summary = result.summary
    print(f"eval_testset {Path(summary['query_path']).name} vs {Path(summary['ref_path']).name}: {result.line}")
    if result.table is not None:
        print(result.table)
    print(json.dumps({k: summary[k] for k in result.metric_names}, default=lambda x: x.item()))  # NumPy scalars
    return summary


if __name__ == "__main__":
    sys.exit(main())
