"""Nearest-neighbour graphs on the learned embedding, exact or approximate, at scale.

:class:`ApproximateKNeighborsTransformer` is a drop-in for scikit-learn's
:class:`~sklearn.neighbors.KNeighborsTransformer` (same graph: CSR, ``n_neighbors + 1``
entries per row in "distance" mode, sorted by distance, explicit zeros kept) with two search
backends:

- ``"faiss"``: an inverted-file index (faiss ``IndexIVFFlat``): k-means cells over the fitted
  rows, and each query scans only the ``n_probe`` nearest cells. Approximate; faiss is an
  optional extra (``pip install sk_dml[faiss]``) imported only when used.
- ``"exact"``: brute force in torch, blocked over both the queries and the fitted rows with a
  running top-k merge, so that no (n_queries, n_samples_fit) matrix is ever built.

Put it between an embedder and a neighbours model that takes precomputed graphs::

    make_pipeline(emb, ApproximateKNeighborsTransformer(n_neighbors=5),
                  KNeighborsClassifier(n_neighbors=5, metric="precomputed"))
"""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np
import torch
from scipy import sparse
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

try:  # scikit-learn >= 1.8: the sparse container type follows set_config(sparse_interface=)
    from sklearn.utils._sparse import _align_api_if_sparse
except ImportError:  # older scikit-learn returns csr_matrix

    def _align_api_if_sparse(graph):
        return sparse.csr_matrix(graph)


__all__ = ["ApproximateKNeighborsTransformer"]

#: Metrics both backends support (``embedding_metric_`` of the embedders is among them).
NEIGHBOR_METRICS = ("euclidean", "sqeuclidean", "cosine")

# The exact search scores tiles of _TILE_QUERIES queries x _TILE_ROWS fitted rows (4 MB of
# float32: small enough to stay in cache between the matmul and the top-k, which is what makes
# it as fast as scikit-learn's brute force); the exact distances of the candidates are then
# computed on at most _BLOCK_ELEMENTS gathered floats (64 MB) at a time.
_TILE_QUERIES = 256
_TILE_ROWS = 4096
_BLOCK_ELEMENTS = 2**24
# The exact search keeps this many candidates beyond k from the fast (matmul) scores, then
# recomputes their distances from differences and keeps the k nearest: a neighbour that
# float32 rounding of the matmul pushed just past rank k still comes back.
_EXTRA_CANDIDATES = 8
# The IVF k-means trains on at most this many rows per cell (a random sample); faiss asks
# for at least 39, and more than ~64 changes little but costs time at a million rows.
_TRAIN_ROWS_PER_LIST = 64
_MIN_TRAIN_ROWS_PER_LIST = 39

_FAISS_HINT = "pip install sk_dml[faiss]"


def _import_faiss():
    """The faiss module, or an ImportError that says how to install it."""
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            f"backend='faiss' needs the faiss package, which is not installed: "
            f"`{_FAISS_HINT}` (or install faiss-cpu or faiss-gpu yourself), or use "
            "backend='exact'."
        ) from error
    return faiss


def _faiss_available() -> bool:
    try:
        _import_faiss()
    except ImportError:
        return False
    return True


def _as_tensor(X: np.ndarray) -> torch.Tensor:
    """A float32 tensor sharing X's memory, or a copy when X is read-only (torch would warn)."""
    return torch.from_numpy(X if X.flags.writeable else np.array(X, dtype=np.float32))


def _unit_rows(X: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm; all-zero rows stay zero (cosine similarity 0 to all)."""
    norms = torch.linalg.vector_norm(X, dim=1, keepdim=True)
    return X / torch.where(norms > 0, norms, 1.0)


class ApproximateKNeighborsTransformer(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Graph of k nearest neighbours, by an approximate (faiss IVF) or exact (torch) search.

    The output is the graph :class:`sklearn.neighbors.KNeighborsTransformer` returns: a CSR
    matrix of shape (n_queries, n_samples_fit) with, in each row, the query's nearest fitted
    rows in increasing distance (``n_neighbors + 1`` of them in "distance" mode, where a query
    that is also a fitted row finds itself at distance 0, an explicit zero; ``n_neighbors`` in
    "connectivity" mode, with weight 1). So it goes before any estimator that accepts
    ``metric="precomputed"`` (``KNeighborsClassifier``, ``DBSCAN``, ``Isomap``, ``TSNE``...),
    after an embedder::

        make_pipeline(emb, ApproximateKNeighborsTransformer(n_neighbors=5),
                      KNeighborsClassifier(n_neighbors=5, metric="precomputed"))

    Distances are computed in float32 and returned as float64. With the faiss backend a
    neighbour may be missed (recall below 1) but every distance returned is the exact
    distance to the neighbour found.

    Parameters
    ----------
    n_neighbors : int, default=5
        Neighbours per row of the graph (plus one in "distance" mode, as in scikit-learn).
    mode : {"distance", "connectivity"}, default="distance"
        "distance": the entries are distances; "connectivity": they are 1.
    metric : {"euclidean", "sqeuclidean", "cosine"}, default="euclidean"
        Distance between rows; "cosine" is ``1 - cosine similarity`` (an all-zero row is at
        distance 1 from everything). Use the embedder's ``embedding_metric_``.
    backend : {"auto", "faiss", "exact"}, default="auto"
        "faiss": an IVF index (needs ``pip install sk_dml[faiss]``). "exact": brute force in
        torch, in blocks of bounded memory. "auto": faiss when it is installed and the fitted
        set has at least ``auto_min_samples`` rows (below that an index does not pay for its
        training), else exact. ``backend_`` says which one a fit used.
    n_lists : int or None, default=None
        Number of k-means cells of the IVF index. None: ``round(4 * sqrt(n_samples_fit))``.
        Either way it is capped at ``n_samples_fit // 39`` (and at least 1), so that each cell
        has the 39 training rows faiss asks for. Ignored by the exact backend.
    n_probe : int, default=32
        Cells scanned per query (capped at the number of cells): the speed/recall trade-off.
        Read at ``transform`` time, so it can be changed with ``set_params`` without refitting.
        ``n_probe >= n_lists_`` scans everything and is exact. Ignored by the exact backend.
    auto_min_samples : int, default=50_000
        With ``backend="auto"``: the smallest fitted set that gets a faiss index.
    batch_size : int, default=2048
        Queries searched at a time. The exact backend never holds more than a tile of 256
        queries x 4096 fitted rows of scores (4 MB), the candidates of those queries and the
        fitted rows themselves, however many rows there are.
    random_state : int, RandomState instance or None, default=None
        Seeds the row sample and the initialisation of the IVF k-means, so that a fit is
        reproducible. Ignored by the exact backend.

    Attributes
    ----------
    backend_ : str
        "faiss" or "exact": the search the fit prepared.
    n_lists_ : int or None
        Cells of the IVF index (faiss backend), else None.
    index_ : faiss.IndexIVFFlat or None
        The index (faiss backend), else None. Pickles through ``faiss.serialize_index``.
    n_samples_fit_ : int
        Number of rows in the fitted data.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has string column names.

    See Also
    --------
    sklearn.neighbors.KNeighborsTransformer : The exact transformer this one mirrors.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_dml import ApproximateKNeighborsTransformer
    >>> X = np.random.default_rng(0).normal(size=(100, 8))
    >>> graph = ApproximateKNeighborsTransformer(n_neighbors=3, backend="exact").fit_transform(X)
    >>> graph.shape, graph.nnz
    ((100, 100), 400)
    """

    _parameter_constraints: dict = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "mode": [StrOptions({"distance", "connectivity"})],
        "metric": [StrOptions(set(NEIGHBOR_METRICS))],
        "backend": [StrOptions({"auto", "faiss", "exact"})],
        "n_lists": [None, Interval(Integral, 1, None, closed="left")],
        "n_probe": [Interval(Integral, 1, None, closed="left")],
        "auto_min_samples": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        n_neighbors=5,
        mode="distance",
        metric="euclidean",
        backend="auto",
        n_lists=None,
        n_probe=32,
        auto_min_samples=50_000,
        batch_size=2048,
        random_state=None,
    ):
        self.n_neighbors = n_neighbors
        self.mode = mode
        self.metric = metric
        self.backend = backend
        self.n_lists = n_lists
        self.n_probe = n_probe
        self.auto_min_samples = auto_min_samples
        self.batch_size = batch_size
        self.random_state = random_state

    # -- fitting ------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Prepare the search over the rows of ``X`` (n_samples, n_features).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The rows that queries will find as neighbours (the graph's columns).
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        self : ApproximateKNeighborsTransformer
            The fitted transformer.
        """
        X = validate_data(self, X, dtype=np.float32, order="C")
        n_samples = X.shape[0]
        backend = self.backend
        if backend == "auto":
            backend = (
                "faiss" if n_samples >= self.auto_min_samples and _faiss_available() else "exact"
            )
        if backend == "faiss":
            index, n_lists = self._build_index(X)
            fit_X, center = None, None
        else:
            index, n_lists = None, None
            fit_X, center = self._prepare_exact(X)
        self.backend_ = backend
        self.index_ = index
        self.n_lists_ = n_lists
        self._fit_X = fit_X
        self._center = center
        self.n_samples_fit_ = n_samples
        self._n_features_out = n_samples
        return self

    def _prepare_exact(self, X: np.ndarray):
        """The fitted rows as the exact search uses them: centred (Euclidean metrics: the
        matmul scores lose less precision near the origin) or scaled to unit norm (cosine)."""
        X_t = _as_tensor(X)  # both branches below make new tensors: X is left untouched
        if self.metric == "cosine":
            return _unit_rows(X_t), None
        center = torch.from_numpy(X.mean(0, dtype=np.float64).astype(np.float32))
        return X_t - center, center

    def _build_index(self, X: np.ndarray):
        faiss = _import_faiss()
        n_samples, n_features = X.shape
        n_lists = self.n_lists
        if n_lists is None:
            n_lists = round(4 * math.sqrt(n_samples))
        n_lists = max(1, min(n_lists, n_samples // _MIN_TRAIN_ROWS_PER_LIST))
        rng = check_random_state(self.random_state)
        if self.metric == "cosine":
            X = _unit_rows(_as_tensor(X)).numpy()
            quantizer = faiss.IndexFlatIP(n_features)
            metric = faiss.METRIC_INNER_PRODUCT
        else:
            quantizer = faiss.IndexFlatL2(n_features)
            metric = faiss.METRIC_L2
        index = faiss.IndexIVFFlat(quantizer, n_features, n_lists, metric)
        index.cp.seed = int(rng.randint(np.iinfo(np.int32).max))
        index.cp.spherical = self.metric == "cosine"
        if n_lists == 1:
            # k-means with one cell is the mean: no training (and no faiss warning about
            # too few rows on tiny data).
            centroid = X.mean(0, dtype=np.float64).astype(np.float32)[None]
            if self.metric == "cosine":
                centroid = _unit_rows(torch.from_numpy(centroid)).numpy()
            quantizer.add(centroid)
            index.is_trained = True
        else:
            n_train = min(n_samples, _TRAIN_ROWS_PER_LIST * n_lists)
            rows = np.sort(rng.choice(n_samples, n_train, replace=False))
            index.train(np.ascontiguousarray(X[rows]))
        index.add(np.ascontiguousarray(X))
        return index, n_lists

    # -- querying -----------------------------------------------------------------------------
    def transform(self, X):
        """The graph of each row's nearest fitted rows.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features)
            Query rows.

        Returns
        -------
        Xt : sparse matrix of shape (n_queries, n_samples_fit)
            CSR; row i holds the distances (or ones) to the nearest fitted rows of query i, in
            increasing distance: ``n_neighbors + 1`` entries per row in "distance" mode,
            ``n_neighbors`` in "connectivity" mode. Zero distances are explicit entries.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float32, order="C")
        n_neighbors = self.n_neighbors + (self.mode == "distance")
        if n_neighbors > self.n_samples_fit_:
            raise ValueError(
                "Expected n_neighbors <= n_samples_fit, but "
                f"n_neighbors = {n_neighbors}, n_samples_fit = {self.n_samples_fit_}, "
                f"n_samples = {X.shape[0]}"
            )
        distances, indices = self._kneighbors(X, n_neighbors)
        n_queries = X.shape[0]
        if self.mode == "connectivity":
            data = np.ones(n_queries * n_neighbors)
        else:
            data = distances.astype(np.float64).ravel()
        indptr = np.arange(0, n_queries * n_neighbors + 1, n_neighbors)
        graph = sparse.csr_array(
            (data, indices.ravel(), indptr), shape=(n_queries, self.n_samples_fit_)
        )
        return _align_api_if_sparse(graph)

    def fit_transform(self, X, y=None):
        """Fit on ``X``, then return the graph of ``X`` against itself.

        Each row finds itself first (distance 0), as with ``KNeighborsTransformer``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows.
        y : Ignored
            Not used, present for API consistency by convention.

        Returns
        -------
        Xt : sparse matrix of shape (n_samples, n_samples)
            As returned by :meth:`transform`.
        """
        return self.fit(X).transform(X)

    def _kneighbors(self, X: np.ndarray, k: int):
        """(distances float32, indices int64), both (n_queries, k), rows sorted by distance."""
        n_queries = X.shape[0]
        distances = np.empty((n_queries, k), dtype=np.float32)
        indices = np.empty((n_queries, k), dtype=np.int64)
        search = self._search_faiss if self.backend_ == "faiss" else self._search_exact
        for start in range(0, n_queries, self.batch_size):
            stop = min(start + self.batch_size, n_queries)
            distances[start:stop], indices[start:stop] = search(X[start:stop], k)
        return distances, indices

    def _search_faiss(self, Q: np.ndarray, k: int):
        faiss = _import_faiss()
        index = self.index_
        if self.metric == "cosine":
            Q = _unit_rows(_as_tensor(Q)).numpy()
        Q = np.ascontiguousarray(Q)
        # Search parameters per call: the fitted index is not modified by transform.
        probe = faiss.SearchParametersIVF(nprobe=min(self.n_probe, self.n_lists_))
        scores, indices = index.search(Q, k, params=probe)
        missing = (indices < 0).any(axis=1)
        if missing.any():
            # The probed cells held fewer than k rows: scan every cell for those queries,
            # which always finds k (k <= n_samples_fit was checked).
            every = faiss.SearchParametersIVF(nprobe=self.n_lists_)
            scores[missing], indices[missing] = index.search(Q[missing], k, params=every)
        if self.metric == "cosine":
            distances = np.clip(1.0 - scores, 0.0, 2.0)
        else:
            distances = np.maximum(scores, 0.0)  # faiss returns squared L2
            if self.metric == "euclidean":
                distances = np.sqrt(distances)
        return distances, indices

    def _search_exact(self, Q: np.ndarray, k: int):
        """Brute force over tiles of (queries x fitted rows), each scored by one matmul and cut
        to its ``k + _EXTRA_CANDIDATES`` best; the exact distances of the surviving
        candidates, from differences, then pick the k nearest."""
        Q_t = torch.from_numpy(np.array(Q, dtype=np.float32))
        Q_t = _unit_rows(Q_t) if self.metric == "cosine" else Q_t - self._center
        distances, indices = [], []
        with torch.no_grad():
            for start in range(0, len(Q_t), _TILE_QUERIES):
                q = Q_t[start : start + _TILE_QUERIES]
                candidates = self._exact_candidates(q, k + _EXTRA_CANDIDATES)
                d, i = self._nearest_candidates(q, candidates, k)
                distances.append(d)
                indices.append(i)
        return torch.cat(distances).numpy(), torch.cat(indices).numpy()

    def _exact_candidates(self, q: torch.Tensor, n_candidates: int) -> torch.Tensor:
        """Indices of the ``n_candidates`` best fitted rows for each query by the fast scores.

        Each tile's best go to a pending list, merged into one top-k only now and then: the
        per-call overhead of small merges would otherwise cost as much as the matmuls.
        """
        fit_X = self._fit_X
        n_fit = fit_X.shape[0]
        n_candidates = min(n_fit, n_candidates)
        rows = max(_TILE_ROWS, n_candidates)
        merge_at = max(4 * n_candidates, 512)  # pending candidates per query before a merge
        pending_scores, pending_indices, n_pending = [], [], 0
        for start in range(0, n_fit, rows):
            F = fit_X[start : start + rows]
            if self.metric == "cosine":
                scores = -(q @ F.T)  # smaller is nearer, like the Euclidean score
            else:
                # ||q - f||^2 - ||q||^2: the same order for each query.
                scores = torch.addmm((F * F).sum(1)[None], q, F.T, alpha=-2.0)
            top = min(n_candidates, scores.shape[1])
            scores, idx = torch.topk(scores, top, dim=1, largest=False, sorted=False)
            pending_scores.append(scores)
            pending_indices.append(idx + start)
            n_pending += top
            if n_pending >= merge_at or start + rows >= n_fit:
                scores, idx = torch.cat(pending_scores, 1), torch.cat(pending_indices, 1)
                top = min(n_candidates, scores.shape[1])
                scores, pos = torch.topk(scores, top, dim=1, largest=False, sorted=False)
                pending_scores, pending_indices = [scores], [torch.gather(idx, 1, pos)]
                n_pending = top
        return pending_indices[0]

    def _nearest_candidates(self, q: torch.Tensor, best_indices: torch.Tensor, k: int):
        """The k nearest of each query's candidates by exact distance, nearest first (equal
        distances by increasing index, however the tiles fell)."""
        distances = self._exact_distances(q, best_indices)
        by_index = torch.argsort(best_indices, dim=1)
        distances = torch.gather(distances, 1, by_index)
        candidates = torch.gather(best_indices, 1, by_index)
        order = torch.argsort(distances, dim=1, stable=True)[:, :k]
        return torch.gather(distances, 1, order), torch.gather(candidates, 1, order)

    def _exact_distances(self, Q_t: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Distances of each query to its candidate rows, from differences (no cancellation),
        in chunks of queries so that the gathered rows stay within the block budget."""
        n_queries, n_candidates = candidates.shape
        out = torch.empty((n_queries, n_candidates), dtype=torch.float32)
        width = n_candidates * Q_t.shape[1]
        step = max(1, _BLOCK_ELEMENTS // max(1, width))
        for start in range(0, n_queries, step):
            q = Q_t[start : start + step]
            rows = self._fit_X[candidates[start : start + step]]  # (step, n_candidates, d)
            diff = rows - q[:, None, :]
            d = (diff * diff).sum(-1)
            if self.metric == "cosine":
                # Between unit rows, 1 - cos = |u - v|^2 / 2: no cancellation for nearly
                # parallel rows (where 1 - u.v keeps almost no float32 digits). A zero row
                # has cosine similarity 0 with everything: distance 1.
                zero = (q.abs().sum(1) == 0)[:, None] | (rows.abs().sum(-1) == 0)
                d = torch.where(zero, 1.0, d * 0.5).clamp_(0.0, 2.0)
            elif self.metric == "euclidean":
                d = d.sqrt_()
            out[start : start + step] = d
        return out

    # -- scikit-learn plumbing ----------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64"]  # as KNeighborsTransformer
        return tags

    def __getstate__(self):
        """Pickle a faiss index as its serialised bytes (faiss objects do not pickle)."""
        state = super().__getstate__()
        index = state.get("index_")
        if index is not None:
            state = dict(state)
            state["index_"] = None
            state["_serialized_index"] = _import_faiss().serialize_index(index)
        return state

    def __setstate__(self, state):
        state = dict(state)
        serialized = state.pop("_serialized_index", None)
        if serialized is not None:
            state["index_"] = _import_faiss().deserialize_index(serialized)
        super().__setstate__(state)
