"""Nearest-neighbour graphs on the learned embedding, exact or approximate, at scale.

:class:`ApproximateKNeighborsTransformer` returns the graph of scikit-learn's
:class:`~sklearn.neighbors.KNeighborsTransformer` (CSR, ``n_neighbors + 1`` entries per row in
"distance" mode, sorted by distance, explicit zeros kept) from one of two searches:

- ``"faiss"``: an inverted-file index (faiss ``IndexIVFFlat``): k-means cells over the fitted
  rows, and each query scans only the ``n_probe`` nearest cells. Approximate; faiss is an
  optional extra (``pip install sk_dml[faiss]``) imported only when used.
- ``"exact"``: scikit-learn's own brute force, ``NearestNeighbors(algorithm="brute")``, in
  float64.

Put it between an embedder and a neighbours model that takes precomputed graphs::

    make_pipeline(emb, ApproximateKNeighborsTransformer(n_neighbors=5),
                  KNeighborsClassifier(n_neighbors=5, metric="precomputed"))
"""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ._sklearn_compat import Interval, StrOptions, _align_api_if_sparse, _fit_context

__all__ = ["ApproximateKNeighborsTransformer"]

#: Metrics both backends support (``embedding_metric_`` of the embedders is among them).
NEIGHBOR_METRICS = ("euclidean", "sqeuclidean", "cosine")

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


def _unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); all-zero rows stay zero."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1)


def _build_index(X: np.ndarray, metric: str, n_lists, random_state):
    """A trained and filled faiss ``IndexIVFFlat`` over the float32 rows X, and its cells.

    For cosine it is an L2 index over the unit rows, whose squared distances are twice the
    cosine distances: faiss computes them from differences, so a row is at exactly 0 from
    itself (1 - u.v in float32 is not). An all-zero row, at cosine distance 1 from everything,
    becomes (0, ..., 0, 1) in one more dimension that the other rows and the queries have at
    0: at squared distance 2 from every unit query.
    """
    faiss = _import_faiss()
    n_samples, n_features = X.shape
    if n_lists is None:
        n_lists = round(4 * math.sqrt(n_samples))
    n_lists = max(1, min(n_lists, n_samples // _MIN_TRAIN_ROWS_PER_LIST))
    rng = check_random_state(random_state)
    if metric == "cosine":
        X = _unit_rows(X)
        zero = ~X.any(axis=1)
        if zero.any():
            X = np.hstack([X, zero[:, None].astype(np.float32)])
            n_features += 1
    quantizer = faiss.IndexFlatL2(n_features)
    index = faiss.IndexIVFFlat(quantizer, n_features, n_lists, faiss.METRIC_L2)
    index.cp.seed = int(rng.randint(np.iinfo(np.int32).max))
    index.cp.spherical = metric == "cosine"
    if n_lists == 1:
        # k-means with one cell is the mean: no training (and no faiss warning about too few
        # rows on tiny data).
        centroid = X.mean(0, dtype=np.float64).astype(np.float32)[None]
        quantizer.add(_unit_rows(centroid) if metric == "cosine" else centroid)
        index.is_trained = True
    else:
        n_train = min(n_samples, _TRAIN_ROWS_PER_LIST * n_lists)
        rows = np.sort(rng.choice(n_samples, n_train, replace=False))
        index.train(np.ascontiguousarray(X[rows]))
    index.add(np.ascontiguousarray(X))
    return index, n_lists


def _search_index(index, Q: np.ndarray, k: int, metric: str, n_probe: int, n_lists: int):
    """(distances, indices), both (n_queries, k), of the float32 queries Q in the index."""
    faiss = _import_faiss()
    if metric == "cosine":
        Q = _unit_rows(Q)
        zero_queries = ~Q.any(axis=1)
        if index.d > Q.shape[1]:  # the index has all-zero rows: see _build_index
            Q = np.hstack([Q, np.zeros((len(Q), 1), dtype=np.float32)])
    Q = np.ascontiguousarray(Q)
    # Search parameters per call: the fitted index is not modified by transform.
    probe = faiss.SearchParametersIVF(nprobe=min(n_probe, n_lists))
    scores, indices = index.search(Q, k, params=probe)
    missing = (indices < 0).any(axis=1)
    if missing.any():
        # The probed cells held fewer than k rows: scan every cell for those queries, which
        # always finds k (k <= n_samples_fit was checked).
        every = faiss.SearchParametersIVF(nprobe=n_lists)
        scores[missing], indices[missing] = index.search(Q[missing], k, params=every)
    distances = np.maximum(scores, 0.0)  # squared L2
    if metric == "cosine":
        distances = np.minimum(distances * 0.5, 2.0)
        distances[zero_queries] = 1.0  # at distance 1 from everything, any rows will do
    elif metric == "euclidean":
        distances = np.sqrt(distances)
    return distances, indices


class ApproximateKNeighborsTransformer(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Graph of k nearest neighbours, by an approximate (faiss IVF) or exact search.

    The output is the graph :class:`sklearn.neighbors.KNeighborsTransformer` returns: a CSR
    matrix of shape (n_queries, n_samples_fit) with, in each row, the query's nearest fitted
    rows in increasing distance (``n_neighbors + 1`` of them in "distance" mode, where a query
    that is also a fitted row finds itself, or a duplicate, at distance 0, an explicit zero;
    ``n_neighbors`` in "connectivity" mode, with weight 1). So it goes before any estimator
    that accepts ``metric="precomputed"`` (``KNeighborsClassifier``, ``DBSCAN``, ``Isomap``,
    ``TSNE``...), after an embedder::

        make_pipeline(emb, ApproximateKNeighborsTransformer(n_neighbors=5),
                      KNeighborsClassifier(n_neighbors=5, metric="precomputed"))

    The exact backend is scikit-learn's brute force on the rows as float64 (float32 input,
    such as an embedding, is converted first): its graph is that of
    ``KNeighborsTransformer(algorithm="brute")`` on the float64 rows, ties included, in
    whatever order scikit-learn gives them. The faiss backend searches the rows as float32
    (as faiss stores them); a neighbour may be missed (recall below 1) and ties come in no
    particular order, but every distance returned is the distance to the neighbour found
    (computed in float32, from differences: a fitted row is at exactly 0 from itself, for
    cosine too). Distances are returned as float64 either way.

    Parameters
    ----------
    n_neighbors : int, default=5
        Neighbours per row of the graph (plus one in "distance" mode, as in scikit-learn).
        Read at ``transform`` time.
    mode : {"distance", "connectivity"}, default="distance"
        "distance": the entries are distances; "connectivity": they are 1. Read at
        ``transform`` time.
    metric : {"euclidean", "sqeuclidean", "cosine"}, default="euclidean"
        Distance between rows; "cosine" is ``1 - cosine similarity`` (an all-zero row is at
        distance 1 from everything). Use the embedder's ``embedding_metric_``. Read by ``fit``
        (``effective_metric_``): changing it afterwards needs a refit.
    backend : {"auto", "faiss", "exact"}, default="auto"
        "faiss": an IVF index (needs ``pip install sk_dml[faiss]``). "exact": scikit-learn's
        ``NearestNeighbors(algorithm="brute")``. "auto": faiss when it is installed and the
        fitted set has at least ``auto_min_samples`` rows (below that an index does not pay
        for its training), else exact. ``backend_`` says which one a fit used.
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
        Queries per faiss search call. Ignored by the exact backend, which scikit-learn's
        brute force chunks by itself (see :func:`sklearn.set_config`, ``working_memory``).
    random_state : int, RandomState instance or None, default=None
        Seeds the row sample and the initialisation of the IVF k-means, so that a fit is
        reproducible. Ignored by the exact backend.

    Attributes
    ----------
    effective_metric_ : str
        The metric the fit prepared the search for, which ``transform`` uses.
    backend_ : str
        "faiss" or "exact": the search the fit prepared.
    nearest_neighbors_ : sklearn.neighbors.NearestNeighbors or None
        The fitted brute-force search (exact backend), on the float64 rows, else None.
    index_ : faiss.IndexIVFFlat or None
        The index (faiss backend), else None: an L2 index, over the unit rows for cosine (with
        one more dimension when some rows are all zero). Pickles through
        ``faiss.serialize_index``.
    n_lists_ : int or None
        Cells of the IVF index (faiss backend), else None.
    n_samples_fit_ : int
        Number of rows in the fitted data.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during ``fit``. Defined only when X has feature names that are
        all strings.

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

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Prepare the search over the rows of ``X``.

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
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
        backend = self.backend
        if backend == "auto":
            large = X.shape[0] >= self.auto_min_samples
            backend = "faiss" if large and _faiss_available() else "exact"

        nearest_neighbors, index, n_lists = None, None, None
        if backend == "exact":
            nearest_neighbors = NearestNeighbors(algorithm="brute", metric=self.metric)
            nearest_neighbors.fit(X.astype(np.float64, copy=False))
        else:
            X32 = X.astype(np.float32, copy=False)
            index, n_lists = _build_index(X32, self.metric, self.n_lists, self.random_state)

        self.effective_metric_ = self.metric
        self.backend_ = backend
        self.nearest_neighbors_ = nearest_neighbors
        self.index_ = index
        self.n_lists_ = n_lists
        self.n_samples_fit_ = X.shape[0]
        self._n_features_out = X.shape[0]
        return self

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
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32], order="C")
        k = self.n_neighbors + (self.mode == "distance")
        if k > self.n_samples_fit_:
            raise ValueError(
                "Expected n_neighbors <= n_samples_fit, but "
                f"n_neighbors = {k}, n_samples_fit = {self.n_samples_fit_}, "
                f"n_samples = {X.shape[0]}"
            )
        if self.backend_ == "exact":
            X = X.astype(np.float64, copy=False)
            return self.nearest_neighbors_.kneighbors_graph(X, n_neighbors=k, mode=self.mode)

        X = X.astype(np.float32, copy=False)
        n_queries = X.shape[0]
        distances = np.empty((n_queries, k), dtype=np.float64)
        indices = np.empty((n_queries, k), dtype=np.int64)
        for start in range(0, n_queries, self.batch_size):
            batch = slice(start, start + self.batch_size)
            distances[batch], indices[batch] = _search_index(
                self.index_, X[batch], k, self.effective_metric_, self.n_probe, self.n_lists_
            )
        data = np.ones(n_queries * k) if self.mode == "connectivity" else distances.ravel()
        indptr = np.arange(0, n_queries * k + 1, k)
        graph = sparse.csr_array(
            (data, indices.ravel(), indptr), shape=(n_queries, self.n_samples_fit_)
        )
        return _align_api_if_sparse(graph)

    def fit_transform(self, X, y=None):
        """Fit on ``X``, then return the graph of ``X`` against itself.

        Each row finds itself first (distance 0), as with ``KNeighborsTransformer``, unless it
        has duplicates, which may come first. With the exact backend, cosine metric and
        float32 input, the self-distances are 0 up to float64 rounding (about 1e-16):
        scikit-learn zeroes them only when it is queried with the very array it fitted, and
        fit and transform each convert the rows to float64.

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
