"""Quality of an embedding: retrieval (precision@k, R-precision, MAP@R, recall@k) and
clustering (NMI, AMI) scores.

Retrieval definitions follow pytorch-metric-learning's ``AccuracyCalculator`` (Musgrave,
Belongie & Lim, "A Metric Learning Reality Check", ECCV 2020).

Queries and references
    By default every sample is a query against all the others: it is never its own neighbour
    (leave-one-out), though an identical copy of it is. With ``reference=`` (and
    ``reference_labels=``) the rows of ``X`` are queries that search the reference rows
    instead, e.g. a test set against a gallery. With ``precomputed=True``, ``X`` is the
    (n_queries, n_references) distance matrix: square for leave-one-out, or with
    ``reference_labels`` naming the label of each column. Labels may be of any type (ints,
    strings, ...); query and reference labels are matched by value.

R_q and lone queries
    R_q is the number of references with query q's label (not counting q itself in the
    leave-one-out case). Queries with R_q = 0 ("lone" queries: a singleton class, or a class
    absent from the reference set) are left out of every score, as in pytorch-metric-learning;
    when no query remains the scores are undefined and a ValueError is raised.

Scores, each averaged over the remaining queries
    - ``precision_at_k``: fraction of the k nearest references that share the query's label
      (of the min(k, number of references) nearest when k exceeds the references);
    - ``r_precision``: the same fraction among the R_q nearest;
    - ``mean_average_precision_at_r``: ``1/R_q * sum_{i <= R_q} precision@i * [neighbour i
      relevant]`` (MAP@R);
    - ``recall_at_k``: 1 if at least one of the k nearest references shares the query's label,
      else 0 (the "Recall@K" of image retrieval, e.g. Song et al., CVPR 2016; not a recall in
      the information-retrieval sense);
    - ``retrieval_scores``: all of them from a single neighbour search.

Ties
    Neighbours are ranked by distance, equal distances by increasing reference index (a stable
    sort), exactly: the k nearest of a query are the first k of that order even when several
    references lie at the k-th distance. A NaN distance counts as +inf.

Memory
    Queries are processed in blocks, so memory stays O(block x n_references).

``clustering_scores`` runs k-means on the embedding and compares the clusters with the labels
(normalised and adjusted mutual information). The ``*_scorer`` objects plug into
``GridSearchCV(scoring=...)``; ``RetrievalScorer(recall_at_k, k=10)`` makes another.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd
import torch

from .distances import check_metric, pairwise_distance

__all__ = [
    "clustering_scores",
    "map_at_r_scorer",
    "mean_average_precision_at_r",
    "precision_at_1_scorer",
    "precision_at_k",
    "r_precision",
    "r_precision_scorer",
    "recall_at_k",
    "retrieval_scores",
    "RetrievalScorer",
]

# Distances held at once: a block of queries times the references.
_CHUNK_ELEMENTS = 1 << 24


# ----------------------------------------------------------------------------- inputs
def _check_k(k, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise ValueError(f"{name} must be >= 1 (an integer), got {k!r}.")
    return int(k)


def _label_codes(labels, reference_labels) -> tuple[np.ndarray, np.ndarray | None]:
    """Integer codes of the query labels and of the reference labels, on the union of both
    label sets (equal values get equal codes, whatever their type)."""
    queries = np.asarray(labels).ravel()
    if reference_labels is None:
        return pd.factorize(queries, use_na_sentinel=False)[0], None
    references = np.asarray(reference_labels).ravel()
    if queries.dtype.kind in "biuf" and references.dtype.kind in "biuf":
        both = np.concatenate([queries, references])
    else:  # no casting between types (1 must not match "1")
        both = np.concatenate([queries.astype(object), references.astype(object)])
    codes = pd.factorize(both, use_na_sentinel=False)[0]
    return codes[: len(queries)], codes[len(queries) :]


def _as_features(A, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A 2-D CPU tensor of features: float32 for array input (or ``dtype``)."""
    if torch.is_tensor(A):
        A = A.detach().cpu()
        A = A if dtype is None else A.to(dtype)
    else:
        np_dtype = np.float64 if dtype == torch.float64 else np.float32
        A = torch.as_tensor(np.asarray(A, dtype=np_dtype))
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {tuple(A.shape)}.")
    return A


class _Search:
    """The validated queries and references of a retrieval score."""

    def __init__(self, X, labels, reference, reference_labels, metric, precomputed):
        self.metric = check_metric(metric)
        self.precomputed = bool(precomputed)
        if self.precomputed and reference is not None:
            raise ValueError(
                "reference must be None with precomputed=True: X already holds the "
                "query-to-reference distances; give reference_labels only."
            )
        if not self.precomputed and (reference is None) != (reference_labels is None):
            raise ValueError(
                "reference_labels is required when reference is given."
                if reference_labels is None
                else "reference_labels was given without reference (or precomputed=True)."
            )
        self.leave_one_out = reference_labels is None
        self.query_codes, reference_codes = _label_codes(labels, reference_labels)
        n = len(self.query_codes)
        if self.precomputed:
            D = X.detach().cpu() if torch.is_tensor(X) else torch.as_tensor(np.asarray(X))
            self.queries = D.to(torch.float64)
            self.references = None
            if D.ndim != 2 or (self.leave_one_out and D.shape[0] != D.shape[1]):
                raise ValueError(
                    f"precomputed distances must be square, got shape {tuple(D.shape)}."
                    if self.leave_one_out
                    else f"precomputed distances must be 2-D, got shape {tuple(D.shape)}."
                )
            n_references = D.shape[1]
        else:
            self.queries = _as_features(X, "X")
            self.references = (
                self.queries
                if self.leave_one_out
                else _as_features(reference, "reference", self.queries.dtype)
            )
            if self.references.shape[1] != self.queries.shape[1]:
                raise ValueError(
                    f"reference has {self.references.shape[1]} features but X has "
                    f"{self.queries.shape[1]}."
                )
            n_references = self.references.shape[0]
        if self.queries.shape[0] != n:
            raise ValueError(f"Got {self.queries.shape[0]} samples but {n} labels.")
        if self.leave_one_out:
            reference_codes = self.query_codes
        elif len(reference_codes) != n_references:
            what = "precomputed distances have" if self.precomputed else "reference has"
            unit = "columns" if self.precomputed else "rows"
            raise ValueError(
                f"{what} {n_references} {unit} but reference_labels has "
                f"{len(reference_codes)} labels."
            )
        self.n_references = n_references
        # Candidate neighbours of a query, and R_q.
        self.n_candidates = n_references - int(self.leave_one_out)
        n_codes = int(max(self.query_codes.max(initial=-1), reference_codes.max(initial=-1))) + 1
        counts = np.bincount(reference_codes, minlength=n_codes)
        self.r = torch.from_numpy(counts[self.query_codes] - int(self.leave_one_out))
        self.reference_codes = torch.from_numpy(reference_codes)
        self.query_codes = torch.from_numpy(self.query_codes)

    def distances(self, rows: torch.Tensor) -> torch.Tensor:
        """(len(rows), n_references) distances of the queries ``rows``, a new tensor."""
        if self.precomputed:
            return self.queries[rows]
        with torch.no_grad():
            return pairwise_distance(self.queries[rows], self.references, metric=self.metric)


def _nearest(dist: torch.Tensor, k: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Column indices of the ``k`` nearest entries of each row of ``dist``, nearest first, equal
    distances by increasing column index, exactly; NaN counts as +inf. Column ``exclude[i]``
    (the query itself) is never chosen in row i, which must have ``k`` other columns.
    ``dist`` is overwritten."""
    c, m = dist.shape
    if k == 0:
        return torch.empty(c, 0, dtype=torch.long)
    inf = float("inf")
    dist = dist.nan_to_num_(nan=inf, posinf=inf, neginf=-inf)
    if exclude is not None:
        dist[torch.arange(c), exclude] = inf
    values, chosen = dist.topk(min(k + 1, m), dim=1, largest=False, sorted=True)
    kth = values[:, k - 1 : k]
    # topk takes any of the columns at the k-th distance: redo the rows where it had a choice
    # (the (k+1)-th is at that distance too) and those at an infinite k-th distance (where the
    # excluded column lies), taking the lowest-index columns.
    redo = kth.squeeze(1).isinf()
    if k < m:
        redo |= values[:, k] == values[:, k - 1]
    values, chosen = values[:, :k], chosen[:, :k]
    redo = redo.nonzero().squeeze(1)
    if len(redo):
        skip = None if exclude is None else exclude[redo]
        chosen[redo] = _lowest_index_nearest(dist[redo], k, kth[redo], skip)
        values[redo] = dist[redo].gather(1, chosen[redo])
    # topk orders equal distances arbitrarily: order the rows with ties (and the redone rows)
    # by index, then stably by distance.
    ties = (values[:, 1:] == values[:, :-1]).any(1)
    ties[redo] = True
    ties = ties.nonzero().squeeze(1)
    if len(ties):
        by_index = chosen[ties].sort(dim=1).values
        order = dist[ties].gather(1, by_index).sort(dim=1, stable=True).indices
        chosen[ties] = by_index.gather(1, order)
    return chosen


def _lowest_index_nearest(dist, k, kth, exclude) -> torch.Tensor:
    """The columns below ``kth`` and, of those at ``kth``, the lowest-index ones: the first
    ``k`` in (distance, index) order, by increasing index. Never column ``exclude[i]``."""
    c = dist.shape[0]
    below = dist < kth
    at_kth = dist == kth
    if exclude is not None:
        at_kth[torch.arange(c), exclude] = False
    missing = k - below.sum(1, keepdim=True)  # taken from the columns at the k-th distance
    at_kth &= at_kth.cumsum(1) <= missing
    return (below | at_kth).nonzero()[:, 1].view(c, k)


def _retrieval(search: _Search, precision_at=(), recall_at=(), at_r=False) -> dict[str, float]:
    """The requested scores (keys ``precision@k``, ``recall@k``, ``r_precision``, ``map@r``)
    from one neighbour search over the queries that are not lone."""
    valid = torch.from_numpy(np.flatnonzero(search.r.numpy() > 0))
    if len(valid) == 0:
        raise ValueError(
            "No query has another sample of its class: the metric is undefined."
            if search.leave_one_out
            else "No query has a reference sample of its class: the metric is undefined."
        )
    n_candidates = search.n_candidates
    cut = {k: min(k, n_candidates) for k in (*precision_at, *recall_at)}
    fixed_depth = max(cut.values(), default=0)
    parts: dict[str, list[torch.Tensor]] = {}
    chunk = max(1, _CHUNK_ELEMENTS // max(search.n_references, 1))
    for start in range(0, len(valid), chunk):
        rows = valid[start : start + chunk]
        r = search.r[rows]
        depth = max(fixed_depth, int(r.max()) if at_r else 0)
        exclude = rows if search.leave_one_out else None
        neighbours = _nearest(search.distances(rows), depth, exclude)
        hits = search.reference_codes[neighbours] == search.query_codes[rows].unsqueeze(1)
        scores = {}
        for k in precision_at:
            scores[f"precision@{k}"] = hits[:, : cut[k]].double().mean(1)
        for k in recall_at:
            scores[f"recall@{k}"] = hits[:, : cut[k]].any(1).double()
        if at_r:
            rank = torch.arange(1, depth + 1, dtype=torch.float64).unsqueeze(0)  # (1, depth)
            relevant = hits & (rank <= r.unsqueeze(1))
            scores["r_precision"] = relevant.sum(1).double() / r
            precision_at_i = relevant.cumsum(1) / rank
            scores["map@r"] = (precision_at_i * relevant).sum(1) / r
        for name, values in scores.items():
            parts.setdefault(name, []).append(values.double())
    return {name: float(torch.cat(values).mean()) for name, values in parts.items()}


# ------------------------------------------------------------------------------ scores
_PARAMETERS = """
    Parameters
    ----------
    X : array-like or tensor of shape (n_queries, d)
        Query embeddings; with ``precomputed=True``, the (n_queries, n_references) distances
        (square, queries against themselves, when ``reference_labels`` is None).
    labels : array-like of shape (n_queries,)
        Labels of the queries, of any type.{k}
    reference : array-like or tensor of shape (n_references, d), default=None
        Embeddings searched by the queries. None: the queries search each other, never
        retrieving themselves (leave-one-out).
    reference_labels : array-like of shape (n_references,), default=None
        Labels of the references; required with ``reference`` (or with ``precomputed=True``
        distances to a separate reference set).
    metric : str, default="euclidean"
        Distance between embeddings (ignored when ``precomputed``).
    precomputed : bool, default=False
        Whether ``X`` holds distances.

    Returns
    -------
    {returns}

    Raises
    ------
    ValueError
        When no query has a reference of its class (every query is lone), or on inconsistent
        shapes and labels.
"""


def precision_at_k(
    X,
    labels,
    *,
    k: int = 1,
    reference=None,
    reference_labels=None,
    metric: str = "euclidean",
    precomputed=False,
) -> float:
    k = _check_k(k)
    search = _Search(X, labels, reference, reference_labels, metric, precomputed)
    return _retrieval(search, precision_at=(k,))[f"precision@{k}"]


def recall_at_k(
    X,
    labels,
    *,
    k: int = 1,
    reference=None,
    reference_labels=None,
    metric: str = "euclidean",
    precomputed=False,
) -> float:
    k = _check_k(k)
    search = _Search(X, labels, reference, reference_labels, metric, precomputed)
    return _retrieval(search, recall_at=(k,))[f"recall@{k}"]


def r_precision(
    X,
    labels,
    *,
    reference=None,
    reference_labels=None,
    metric: str = "euclidean",
    precomputed=False,
) -> float:
    search = _Search(X, labels, reference, reference_labels, metric, precomputed)
    return _retrieval(search, at_r=True)["r_precision"]


def mean_average_precision_at_r(
    X,
    labels,
    *,
    reference=None,
    reference_labels=None,
    metric: str = "euclidean",
    precomputed=False,
) -> float:
    search = _Search(X, labels, reference, reference_labels, metric, precomputed)
    return _retrieval(search, at_r=True)["map@r"]


def retrieval_scores(
    X,
    labels,
    *,
    reference=None,
    reference_labels=None,
    metric: str = "euclidean",
    recall_at=(1, 10),
    precomputed=False,
) -> dict[str, float]:
    recall_at = (recall_at,) if isinstance(recall_at, Integral) else tuple(recall_at)
    recall_at = tuple(dict.fromkeys(_check_k(k, "recall_at") for k in recall_at))
    search = _Search(X, labels, reference, reference_labels, metric, precomputed)
    scores = _retrieval(search, precision_at=(1,), recall_at=recall_at, at_r=True)
    order = ["precision@1", "r_precision", "map@r", *(f"recall@{k}" for k in recall_at)]
    return {name: scores[name] for name in order}


_K = """
    k : int, default=1
        Number of neighbours."""
precision_at_k.__doc__ = (
    "Mean fraction of each query's k nearest references that share its label.\n\n"
    "    Queries with fewer than k candidate references count the min(k, n) they have.\n"
    + _PARAMETERS.format(k=_K, returns="float")
)
recall_at_k.__doc__ = (
    "Fraction of queries with at least one reference of their label among their k nearest\n"
    '    (the "Recall@K" of image retrieval).\n' + _PARAMETERS.format(k=_K, returns="float")
)
r_precision.__doc__ = (
    "Mean over queries of the fraction of their R_q nearest references that share the label.\n"
    + _PARAMETERS.format(k="", returns="float")
)
mean_average_precision_at_r.__doc__ = (
    "MAP@R (Musgrave et al. 2020): average precision over the R_q nearest references.\n"
    + _PARAMETERS.format(k="", returns="float")
)
retrieval_scores.__doc__ = (
    "precision@1, R-precision, MAP@R and recall@k for each k of ``recall_at``, from one\n"
    "    neighbour search (the same values as the single functions).\n"
    + _PARAMETERS.format(
        k="""
    recall_at : int or sequence of int, default=(1, 10)
        The k of the recall@k scores.""",
        returns="""scores : dict
        ``{"precision@1", "r_precision", "map@r", "recall@{k}" for k in recall_at}``, in
        that order.""",
    )
)


def clustering_scores(
    X, labels, *, metric: str = "euclidean", n_clusters=None, random_state=0
) -> dict[str, float]:
    """Normalised and adjusted mutual information between k-means clusters and the labels.

    k-means (scikit-learn's ``KMeans``) is Euclidean whatever ``metric``: with
    ``metric="cosine"`` the rows are L2-normalised first (Euclidean distance between unit
    vectors ranks pairs as the cosine distance does); other metrics cluster the rows as they
    are.

    Parameters
    ----------
    X : array-like or tensor of shape (n_samples, d)
    labels : array-like of shape (n_samples,)
    metric : str, default="euclidean"
        The embedding's metric.
    n_clusters : int, default=None
        Number of clusters; None means the number of distinct labels.
    random_state : int, RandomState instance or None, default=0
        Seed of k-means.

    Returns
    -------
    scores : dict
        ``{"nmi": normalized_mutual_info_score, "ami": adjusted_mutual_info_score}`` (both
        with arithmetic-mean normalisation, scikit-learn's default).
    """
    from sklearn.cluster import KMeans

    metric = check_metric(metric)
    Z = _as_features(X, "X").numpy()
    codes = _label_codes(labels, None)[0]
    if len(codes) != len(Z):
        raise ValueError(f"Got {len(Z)} samples but {len(codes)} labels.")
    if metric == "cosine":
        norms = np.linalg.norm(Z, axis=1, keepdims=True)
        Z = Z / np.where(norms > 0, norms, 1)
    n_clusters = int(codes.max()) + 1 if n_clusters is None else _check_k(n_clusters, "n_clusters")
    clusters = KMeans(n_clusters=n_clusters, random_state=random_state).fit_predict(Z)
    return _mutual_information(codes, clusters)


def _mutual_information(labels, clusters) -> dict[str, float]:
    from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

    return {
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ami": float(adjusted_mutual_info_score(labels, clusters)),
    }


# ----------------------------------------------------------------------------- scorers
class RetrievalScorer:
    """``scorer(estimator, X, y)`` for ``GridSearchCV(scoring=...)``: embeds X with the fitted
    estimator and scores retrieval in its embedding metric (``estimator.embedding_metric_``),
    leave-one-out on X, e.g. ``RetrievalScorer(recall_at_k, k=10)``."""

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
