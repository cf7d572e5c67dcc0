"""Retrieval metrics for cover song identification, defined as the field defines them
(Serra et al. 2009; MIREX; Da-TACOS/acoss): every query ranks all references except
itself; AP is the mean of precision@k over the ranks k of *all* its relevant references;
MAP averages AP over the queries that have at least one relevant reference."""
from __future__ import annotations

import numpy as np


def average_precisions(distances: np.ndarray, query_labels: np.ndarray, ref_labels: np.ndarray,
                       exclude: np.ndarray | None = None) -> np.ndarray:
    """AP per query (NaN for a query without relevant reference).

    ``distances`` (queries, refs), smaller is closer; ``exclude`` (queries, refs) bool marks
    pairs that are not ranked (the query itself). Ties are broken by reference index.
    """
    distances = np.asarray(distances, dtype=np.float64)
    relevant = np.asarray(query_labels)[:, None] == np.asarray(ref_labels)[None, :]
    if exclude is not None:
        distances = np.where(exclude, np.inf, distances)
        relevant &= ~exclude
    order = np.argsort(distances, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    cum_hits = np.cumsum(hits, axis=1)
    ranks = np.arange(1, hits.shape[1] + 1)
    n_relevant = hits.sum(axis=1)
    precision_sum = np.where(hits, cum_hits / ranks, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, precision_sum / n_relevant, np.nan)


def mean_average_precision(distances: np.ndarray, query_labels, ref_labels, exclude=None) -> float:
    aps = average_precisions(distances, np.asarray(query_labels), np.asarray(ref_labels), exclude)
    valid = aps[~np.isnan(aps)]
    return float(valid.mean()) if len(valid) else float("nan")
