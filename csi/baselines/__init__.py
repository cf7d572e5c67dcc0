"""Non-learned reference systems for the retrieval metrics, chosen by name:

- ``chance``: a random ranking; its metrics are computed exactly (``chance.py``);
- ``chroma_mean``: key-invariant mean chroma, cosine at the best of 12 transpositions
  (``chroma_mean.py``);
- ``2dftm``: median 2D Fourier transform magnitude of 75-step chroma patches, Euclidean
  (Bertin-Mahieux & Ellis 2012; ``ftm2d.py``);
- ``qmax``: Serra, Serra & Andrzejak 2009 — HPCP-style chroma, optimal transposition, a
  binarised cross-recurrence plot and the Qmax local alignment of every track pair
  (``qmax.py``; the strongest of them on the demo, and quadratic in the collection);
- ``mean_cqt``: cosine of the mean CQT frame — a timbre/level baseline, not key-invariant
  (``mean_cqt.py``).

The chroma systems need a 12-bins-per-octave CQT and refuse anything else (``chroma.py``).

    from csi.baselines import evaluate_baselines, format_table, table_rows
    results = evaluate_baselines(queries, refs, "all")      # {name: metrics}
    print(format_table(table_rows(results)))

On two rendered demo corpora (all-vs-all; 30 works / 92 tracks and 40 works / 123 tracks)
the chosen settings gave MAP chroma_mean 0.35 / 0.38, 2dftm 0.27 / 0.20, mean_cqt 0.08 / 0.04;
on the demo's cross-timbre test split (236 recordings) chroma_mean 0.107, 2dftm 0.103,
qmax 0.340.
"""
from csi.baselines.chance import chance_metrics, expected_average_precision, random_distances
from csi.baselines.chroma import BaselineError, CqtLayout, check_chroma_input, cqt_layout, fold_chroma
from csi.baselines.evaluate import (NO_FEATURES, baseline_distances, baselines_beside_model, check_split,
                                         comparison_table, evaluate_baselines,
                                         format_table, has_stored_features, metrics_entries, summary_table,
                                         table_rows, track_vectors)
from csi.baselines.systems import BASELINES, Baseline, baseline_names, get_baseline, resolve_systems

__all__ = ["BASELINES", "Baseline", "BaselineError", "CqtLayout", "NO_FEATURES", "baseline_distances",
           "baselines_beside_model",
           "baseline_names", "chance_metrics", "check_chroma_input", "check_split", "comparison_table", "cqt_layout",
           "evaluate_baselines", "expected_average_precision", "fold_chroma", "format_table",
           "get_baseline", "has_stored_features", "metrics_entries", "random_distances", "resolve_systems",
           "summary_table", "table_rows", "track_vectors"]
