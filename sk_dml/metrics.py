"""Retrieval quality of an embedding: precision@k, R-precision and MAP@R.

Definitions follow pytorch-metric-learning's ``AccuracyCalculator``: every sample is a query
against all the others (it is never its own neighbour), and queries whose class has no other
member are left out. With R_q the number of other samples of query q's class:

- ``precision_at_k``: fraction of the k nearest neighbours that share the query's label;
- ``r_precision``: the same fraction among the R_q nearest;
- ``mean_average_precision_at_r``: ``1/R_q * sum_{i <= R_q} precision@i * [neighbour i relevant]``.

Each is averaged over the queries. Queries are processed in chunks, so memory stays
O(chunk x n) for n samples. The ``*_scorer`` objects plug into ``GridSearchCV(scoring=...)``.
"""

from __future__ import annotations

import numpy as np
import torch

from .distances import check_metric, pairwise_distance

__all__ = [
    "map_at_r_scorer",
    "mean_average_precision_at_r",
    "precision_at_1_scorer",
    "precision_at_k",
    "r_precision",
    "r_precision_scorer",
    "RetrievalScorer",
]

_CHUNK_ELEMENTS = 1 << 24


def _neighbour_hits(X, labels, k_of_query, metric: str, precomputed: bool):
    """Yield, per chunk of queries, a bool (c, k_max) tensor of 'neighbour i has my label'
    for the k_max nearest other samples, with k_of_query[q] telling how many count."""
    codes = torch.from_numpy(np.unique(np.asarray(labels), return_inverse=True)[1].ravel())
    if precomputed:
        X = torch.as_tensor(np.asarray(X, dtype=np.float64))
        if X.ndim != 2 or X.shape[0] != X.shape[1]:
            raise ValueError(f"precomputed distances must be square, got shape {tuple(X.shape)}.")
    else:
        X = torch.as_tensor(np.asarray(X, dtype=np.float32)) if not torch.is_tensor(X) else X
        X = X.detach().cpu()
    n = len(codes)
    if X.shape[0] != n:
        raise ValueError(f"Got {X.shape[0]} samples but {n} labels.")
    chunk = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, n, chunk):
        rows = torch.arange(start, min(start + chunk, n))
        dist = X[rows] if precomputed else pairwise_distance(X[rows], X, metric=metric)
        dist = dist.clone()
        dist[torch.arange(len(rows)), rows] = float("inf")  # a query is not its own neighbour
        k_max = int(k_of_query[rows].max())
        if k_max == 0:
            continue
        neighbours = dist.topk(k_max, dim=1, largest=False).indices  # (c, k_max), nearest first
        yield rows, codes[neighbours] == codes[rows].unsqueeze(1)


def _class_sizes(labels) -> torch.Tensor:
    """R_q for every query: the number of *other* samples of its class."""
    _, codes, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    return torch.from_numpy(counts[codes.ravel()] - 1)


def _mean_over_queries(per_query: list[torch.Tensor]) -> float:
    if not per_query or sum(len(p) for p in per_query) == 0:
        raise ValueError("No query has another sample of its class: the metric is undefined.")
    return float(torch.cat(per_query).double().mean())


def precision_at_k(X, labels, *, k: int = 1, metric: str = "euclidean", precomputed=False):
    """Mean fraction of each query's k nearest neighbours that share its label.

    Parameters
    ----------
    X : array-like or tensor of shape (n, d), or (n, n) distances with ``precomputed=True``
    labels : array-like of shape (n,)
    k : int, default=1
    metric : str, default="euclidean"
        Distance between embeddings (ignored when ``precomputed``).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    metric = check_metric(metric)
    r = _class_sizes(labels)
    k_of_query = torch.full_like(r, min(k, len(r) - 1))
    scores = []
    for rows, hits in _neighbour_hits(X, labels, k_of_query, metric, precomputed):
        scores.append(hits.double().mean(dim=1)[r[rows] > 0])
    return _mean_over_queries(scores)


def r_precision(X, labels, *, metric: str = "euclidean", precomputed=False) -> float:
    """Mean over queries of the fraction of the R_q nearest neighbours that share the label."""
    r = _class_sizes(labels)
    scores = []
    for rows, hits in _neighbour_hits(X, labels, r, check_metric(metric), precomputed):
        r_rows = r[rows]
        within_r = torch.arange(hits.shape[1]).unsqueeze(0) < r_rows.unsqueeze(1)
        valid = r_rows > 0
        scores.append(((hits & within_r).sum(1) / r_rows.clamp_min(1))[valid])
    return _mean_over_queries(scores)


def mean_average_precision_at_r(X, labels, *, metric: str = "euclidean", precomputed=False):
    """MAP@R (Musgrave et al. 2020): average precision over the R_q nearest neighbours."""
    r = _class_sizes(labels)
    scores = []
    for rows, hits in _neighbour_hits(X, labels, r, check_metric(metric), precomputed):
        r_rows = r[rows]
        rank = torch.arange(1, hits.shape[1] + 1).unsqueeze(0)  # (1, k_max)
        relevant = hits & (rank <= r_rows.unsqueeze(1))
        precision_at_i = relevant.cumsum(1) / rank
        valid = r_rows > 0
        ap = (precision_at_i * relevant).sum(1) / r_rows.clamp_min(1)
        scores.append(ap[valid])
    return _mean_over_queries(scores)


class RetrievalScorer:
    """``scorer(estimator, X, y)`` for ``GridSearchCV(scoring=...)``: embeds X with the fitted
    estimator and scores retrieval in its embedding metric (``estimator.embedding_metric_``)."""

    def __init__(self, score_func, **kwargs):
        self.score_func = score_func
        self.kwargs = kwargs

    def __call__(self, estimator, X, y) -> float:
        # A Pipeline ending in an embedder carries the metric on its last step.
        embedder = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
        Z = estimator.transform(X)
        return self.score_func(Z, y, metric=embedder.embedding_metric_, **self.kwargs)

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return f"RetrievalScorer({self.score_func.__name__}{args})"


precision_at_1_scorer = RetrievalScorer(precision_at_k, k=1)
r_precision_scorer = RetrievalScorer(r_precision)
map_at_r_scorer = RetrievalScorer(mean_average_precision_at_r)
