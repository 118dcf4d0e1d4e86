"""Nearest-neighbour graphs on the learned embedding, exact or approximate, at scale.

:class:`ApproximateKNeighborsTransformer` is a drop-in for scikit-learn's
:class:`~sklearn.neighbors.KNeighborsTransformer` (same graph: CSR, ``n_neighbors + 1``
entries per row in "distance" mode, sorted by distance, explicit zeros kept) with two search
backends:

- ``"faiss"``: an inverted-file index (faiss ``IndexIVFFlat``): k-means cells over the fitted
  rows, and each query scans only the ``n_probe`` nearest cells. Approximate; faiss is an
  optional extra (``pip install sk_dml[faiss]``) imported only when used.
- ``"exact"``: brute force in torch, blocked over both the queries and the fitted rows with a
  running top-k merge, so that no (n_queries, n_samples_fit) matrix is ever built. Fast float32
  scores preselect candidates, and a bound on their rounding error certifies, query by query,
  that no true neighbour was left out; a query the bound cannot clear is searched again in
  float64, where every row that could be among its k nearest is compared exactly.

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
# computed on at most _BLOCK_ELEMENTS gathered floats at a time (32 MB of float32 and their
# 64 MB float64 copy).
_TILE_QUERIES = 256
_TILE_ROWS = 4096
_BLOCK_ELEMENTS = 2**23
# The fast search keeps this many candidates beyond k by the float32 matmul scores. The scores
# carry a rounding error with a known bound: when the k-th and the last candidate's scores are
# further apart than twice that bound, no row left out can be nearer than the k-th candidate,
# and the exact distances of the candidates (from differences, in float64) give the k nearest.
# Otherwise (rows far from the centre, many rows at nearly the same distance, duplicates) the
# query is searched again in float64 (see _band_search).
_EXTRA_CANDIDATES = 8
# Unit roundoffs of the float64 and float32 matmuls; the latter depends on the precision torch
# is allowed for float32 matmuls on the CPU (torch.set_float32_matmul_precision: "high" and
# "medium" let oneDNN use TF32 or bfloat16 where the CPU has them). The bound stays valid with
# them, but is then too wide to certify much: most queries take the float64 path.
_UNIT_ROUNDOFF = {torch.float64: 2.0**-53, "ieee": 2.0**-24, "tf32": 2.0**-11, "bf16": 2.0**-8}
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


def _float32_matmul_precision() -> str:
    """ "ieee", "tf32" or "bf16": what float32 matmuls on the CPU may round their inputs to."""
    try:
        precision = torch.backends.mkldnn.matmul.fp32_precision
        if precision == "none":  # inherits the backend-wide setting
            precision = torch.backends.fp32_precision
    except AttributeError:  # torch < 2.9
        precision = {"high": "tf32", "medium": "bf16"}.get(
            torch.get_float32_matmul_precision(), "ieee"
        )
    return precision if precision in _UNIT_ROUNDOFF else "ieee"


def _score_error_bound(n_features: int, dtype, radius: float, query_norms: torch.Tensor):
    """A bound on the rounding error of each score ``||f||^2 - 2 q.f`` (centred rows) computed
    in ``dtype``, for fitted rows of norm at most ``radius`` and queries of these norms.

    The score is a sum of ``n_features + 1`` terms whose absolute values add up to at most
    ``radius^2 + 2 ||q|| radius`` (Cauchy-Schwarz); in any summation order its rounding error
    is at most gamma_n times that (Higham, *Accuracy and Stability of Numerical Algorithms*,
    3.1). n counts the products and sums plus a few roundings more: of the centring, of the
    stored squared norms, of the final addition.
    """
    n = n_features + 8
    unit = _UNIT_ROUNDOFF[dtype if dtype == torch.float64 else _float32_matmul_precision()]
    gamma = n * unit / (1.0 - n * unit)
    return gamma * (radius * radius + 2.0 * radius * query_norms)


def _k_smallest(sq_distances: torch.Tensor, indices: torch.Tensor, k: int):
    """The k smallest of each row, nearest first, equal distances by increasing index."""
    by_index = torch.argsort(indices, dim=1)
    sq_distances = torch.gather(sq_distances, 1, by_index)
    indices = torch.gather(indices, 1, by_index)
    order = torch.argsort(sq_distances, dim=1, stable=True)[:, :k]
    return torch.gather(sq_distances, 1, order), torch.gather(indices, 1, order)


class ApproximateKNeighborsTransformer(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Graph of k nearest neighbours, by an approximate (faiss IVF) or exact (torch) search.

    The output is the graph :class:`sklearn.neighbors.KNeighborsTransformer` returns: a CSR
    matrix of shape (n_queries, n_samples_fit) with, in each row, the query's nearest fitted
    rows in increasing distance (``n_neighbors + 1`` of them in "distance" mode, where a query
    that is also a fitted row finds itself, or a duplicate, at distance 0, an explicit zero;
    ``n_neighbors`` in "connectivity" mode, with weight 1). So it goes before any estimator
    that accepts ``metric="precomputed"`` (``KNeighborsClassifier``, ``DBSCAN``, ``Isomap``,
    ``TSNE``...), after an embedder::

        make_pipeline(emb, ApproximateKNeighborsTransformer(n_neighbors=5),
                      KNeighborsClassifier(n_neighbors=5, metric="precomputed"))

    The rows are searched as float32 (as faiss stores them), and distances are returned as
    float64. The exact backend returns the k nearest rows exactly: its distances are computed
    from differences in float64, and no true neighbour is lost to the rounding of its fast
    float32 scores (a bound on that rounding is checked for every query). Rows at equal
    distance come in increasing index order, and those with the lowest indices are kept when
    ties straddle the k-th place: with duplicate rows, a query that is a fitted row may find a
    duplicate of lower index first, or only duplicates. With the faiss backend a neighbour may
    be missed (recall below 1), ties come in no particular order, but every distance returned
    is the distance to the neighbour found (computed in float32, from differences: a fitted
    row is at exactly 0 from itself, for cosine too). scikit-learn's own brute force gives no
    order for ties either.

    Parameters
    ----------
    n_neighbors : int, default=5
        Neighbours per row of the graph (plus one in "distance" mode, as in scikit-learn).
    mode : {"distance", "connectivity"}, default="distance"
        "distance": the entries are distances; "connectivity": they are 1.
    metric : {"euclidean", "sqeuclidean", "cosine"}, default="euclidean"
        Distance between rows; "cosine" is ``1 - cosine similarity`` (an all-zero row is at
        distance 1 from everything). Use the embedder's ``embedding_metric_``. Read by ``fit``
        (``effective_metric_``): changing it afterwards needs a refit.
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
        queries x 4096 fitted rows of scores (4 MB; 8 MB and a few such tiles for a query
        searched again in float64), the candidates of those queries and the fitted rows
        themselves, however many rows there are.
    random_state : int, RandomState instance or None, default=None
        Seeds the row sample and the initialisation of the IVF k-means, so that a fit is
        reproducible. Ignored by the exact backend.

    Attributes
    ----------
    effective_metric_ : str
        The metric the fit prepared the search for, which ``transform`` uses.
    backend_ : str
        "faiss" or "exact": the search the fit prepared.
    n_lists_ : int or None
        Cells of the IVF index (faiss backend), else None.
    index_ : faiss.IndexIVFFlat or None
        The index (faiss backend), else None: an L2 index, over the unit rows for cosine (with
        one more dimension when some rows are all zero). Pickles through
        ``faiss.serialize_index``.
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
        metric = self.metric
        backend = self.backend
        if backend == "auto":
            backend = (
                "faiss" if n_samples >= self.auto_min_samples and _faiss_available() else "exact"
            )
        if backend == "faiss":
            index, n_lists = self._build_index(X, metric)
            fit_X, center, norms, radius = None, None, None, None
        else:
            index, n_lists = None, None
            fit_X, center, norms, radius = self._prepare_exact(X, metric)
        self.effective_metric_ = metric
        self.backend_ = backend
        self.index_ = index
        self.n_lists_ = n_lists
        self._fit_X = fit_X
        self._center = center
        self._fit_norms = norms
        self._fit_radius = radius
        self.n_samples_fit_ = n_samples
        self._n_features_out = n_samples
        return self

    @staticmethod
    def _prepare_exact(X: np.ndarray, metric: str):
        """The fitted rows as the exact search uses them, and what its fast scores need.

        Returns (rows, center, norms, radius): the rows as given (float32, a copy) or, for
        cosine, scaled to unit norm; the centre that the fast scores subtract from rows and
        queries, as float32 (Euclidean metrics: the matmul scores lose less precision near the
        origin; None for cosine, whose rows all have norm 1); the squared norms of the centred
        rows, computed in float64 and stored as float32 (for cosine, 1 for an all-zero row: its
        score is then that of a row at distance 1); and the largest of their square roots.
        """
        if metric == "cosine":
            rows, center = _unit_rows(_as_tensor(X)), None
        else:
            rows = torch.from_numpy(np.array(X, dtype=np.float32))  # not a view of the caller's X
            center = torch.from_numpy(X.mean(0, dtype=np.float64).astype(np.float32))
        norms = torch.empty(rows.shape[0], dtype=torch.float32)
        largest = 0.0
        step = max(1, _BLOCK_ELEMENTS // max(1, rows.shape[1]))
        for start in range(0, rows.shape[0], step):
            F = rows[start : start + step].double()
            if center is not None:
                F -= center.double()
            squared = (F * F).sum(1)
            if metric == "cosine":
                squared = torch.where(squared == 0, 1.0, squared)
            norms[start : start + step] = squared
            largest = max(largest, float(squared.max()))
        return rows, center, norms, math.sqrt(largest)

    def _build_index(self, X: np.ndarray, metric: str):
        faiss = _import_faiss()
        n_samples, n_features = X.shape
        n_lists = self.n_lists
        if n_lists is None:
            n_lists = round(4 * math.sqrt(n_samples))
        n_lists = max(1, min(n_lists, n_samples // _MIN_TRAIN_ROWS_PER_LIST))
        rng = check_random_state(self.random_state)
        if metric == "cosine":
            # An L2 index over unit rows, whose squared distances are twice the cosine
            # distances: faiss computes them from differences, so a row is at exactly 0 from
            # itself (1 - u.v in float32 is not). An all-zero row, at cosine distance 1 from
            # everything, becomes (0, ..., 0, 1) in one more dimension that the other rows and
            # the queries have at 0: at squared distance 2 from every unit query.
            X = _unit_rows(_as_tensor(X)).numpy()
            zero = ~X.any(axis=1)
            if zero.any():
                X = np.hstack([X, zero[:, None].astype(np.float32)])
                n_features += 1
        quantizer = faiss.IndexFlatL2(n_features)
        index = faiss.IndexIVFFlat(quantizer, n_features, n_lists, faiss.METRIC_L2)
        index.cp.seed = int(rng.randint(np.iinfo(np.int32).max))
        index.cp.spherical = metric == "cosine"
        if n_lists == 1:
            # k-means with one cell is the mean: no training (and no faiss warning about
            # too few rows on tiny data).
            centroid = X.mean(0, dtype=np.float64).astype(np.float32)[None]
            if metric == "cosine":
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

        Each row finds itself first (distance 0), as with ``KNeighborsTransformer``, unless it
        has duplicates (see the class docstring).

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
        """(distances float64, indices int64), both (n_queries, k), rows sorted by distance."""
        n_queries = X.shape[0]
        distances = np.empty((n_queries, k), dtype=np.float64)
        indices = np.empty((n_queries, k), dtype=np.int64)
        search = self._search_faiss if self.backend_ == "faiss" else self._search_exact
        for start in range(0, n_queries, self.batch_size):
            stop = min(start + self.batch_size, n_queries)
            distances[start:stop], indices[start:stop] = search(X[start:stop], k)
        return distances, indices

    def _search_faiss(self, Q: np.ndarray, k: int):
        faiss = _import_faiss()
        index = self.index_
        cosine = self.effective_metric_ == "cosine"
        if cosine:
            Q = _unit_rows(_as_tensor(Q)).numpy()
            zero_queries = ~Q.any(axis=1)
            if index.d > Q.shape[1]:  # the index has all-zero rows: see _build_index
                Q = np.hstack([Q, np.zeros((len(Q), 1), dtype=np.float32)])
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
        distances = np.maximum(scores, 0.0)  # squared L2
        if cosine:
            distances = np.minimum(distances * 0.5, 2.0)
            distances[zero_queries] = 1.0  # at distance 1 from everything, any rows will do
        elif self.effective_metric_ == "euclidean":
            distances = np.sqrt(distances)
        return distances, indices

    def _search_exact(self, Q: np.ndarray, k: int):
        """Brute force: the fast search of each tile of queries, whose result stands for every
        query that its rounding-error bound certifies; the others go to :meth:`_band_search`.

        Works on squared Euclidean distances between the stored rows (unit rows for cosine),
        converted to the metric at the end."""
        Q_t = torch.from_numpy(np.array(Q, dtype=np.float32))
        if self.effective_metric_ == "cosine":
            Q_t = _unit_rows(Q_t)
        n_queries, n_fit = Q_t.shape[0], self._fit_X.shape[0]
        n_candidates = min(n_fit, k + _EXTRA_CANDIDATES)
        sq_distances = torch.empty((n_queries, k), dtype=torch.float64)
        indices = torch.empty((n_queries, k), dtype=torch.int64)
        uncertain, bounds = [], []
        with torch.no_grad():
            for start in range(0, n_queries, _TILE_QUERIES):
                q = Q_t[start : start + _TILE_QUERIES]
                scores, candidates = self._exact_candidates(q, n_candidates)
                d, i = _k_smallest(self._sq_distances(q, candidates), candidates, k)
                sq_distances[start : start + len(q)], indices[start : start + len(q)] = d, i
                if n_candidates < n_fit:  # else every row was a candidate: nothing to certify
                    doubtful = ~self._certified(q, scores, k)
                    uncertain.append(torch.nonzero(doubtful)[:, 0] + start)
                    bounds.append(d[doubtful, -1])
            if uncertain:
                uncertain, bounds = torch.cat(uncertain), torch.cat(bounds)
                for start in range(0, len(uncertain), _TILE_QUERIES):
                    rows = uncertain[start : start + _TILE_QUERIES]
                    d, i = self._band_search(Q_t[rows], bounds[start : start + _TILE_QUERIES], k)
                    sq_distances[rows], indices[rows] = d, i
        if self.effective_metric_ == "cosine":
            distances = (sq_distances * 0.5).clamp_(0.0, 2.0)
        elif self.effective_metric_ == "euclidean":
            distances = sq_distances.sqrt()
        else:
            distances = sq_distances
        return distances.numpy(), indices.numpy()

    def _exact_candidates(self, q: torch.Tensor, n_candidates: int):
        """Scores and indices of the ``n_candidates`` best fitted rows for each query by the
        fast (float32 matmul) scores ``||f - c||^2 - 2 (q - c).(f - c)``, which order the rows
        as their distances to q do.

        Each tile's best go to a pending list, merged into one top-k only now and then: the
        per-call overhead of small merges would otherwise cost as much as the matmuls.
        """
        fit_X, center, norms = self._fit_X, self._center, self._fit_norms
        if center is not None:
            q = q - center
        n_fit = fit_X.shape[0]
        rows = max(_TILE_ROWS, n_candidates)
        merge_at = max(4 * n_candidates, 512)  # pending candidates per query before a merge
        pending_scores, pending_indices, n_pending = [], [], 0
        for start in range(0, n_fit, rows):
            F = fit_X[start : start + rows]
            if center is not None:
                F = F - center
            scores = torch.addmm(norms[start : start + rows][None], q, F.T, alpha=-2.0)
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
        return pending_scores[0], pending_indices[0]

    def _query_norms(self, q: torch.Tensor) -> torch.Tensor:
        """Norms of the centred queries, in float64."""
        q = q.double()
        if self._center is not None:
            q = q - self._center.double()
        return torch.linalg.vector_norm(q, dim=1)

    def _certified(self, q: torch.Tensor, scores: torch.Tensor, k: int) -> torch.Tensor:
        """Whether the candidates (with these fast scores) surely hold each query's k nearest.

        Every score is within ``e`` of its exact value (:func:`_score_error_bound`). A row left
        out scores at least the last candidate's ``s_last``, so its exact score is at least
        ``s_last - e``; the k-th nearest row's exact score is at most ``s_k + e``. When
        ``s_last - s_k > 2 e``, every row left out is further than the k-th nearest (strictly:
        rows at the same distance as the k-th are candidates too, so that ties can be broken
        by index).
        """
        scores = torch.sort(scores.double(), dim=1).values
        query_norms = self._query_norms(q)
        error = _score_error_bound(q.shape[1], torch.float32, self._fit_radius, query_norms)
        if self.effective_metric_ == "cosine":
            # A zero row scores 1 (see _prepare_exact), and 2 - ||q||^2 would be exact: the
            # rounded unit query's squared norm is only nearly 1.
            error = error + (query_norms * query_norms - 1.0).abs()
        certified = scores[:, -1] - scores[:, k - 1] > 2.0 * error
        if self.effective_metric_ == "cosine":
            certified |= ~q.any(1)  # a zero query is at distance 1 from every row: any will do
        return certified

    def _band_search(self, q: torch.Tensor, bounds: torch.Tensor, k: int):
        """The k nearest rows of queries whose fast search was not certified, exactly.

        ``bounds`` holds, per query, the squared distance of the k-th nearest candidate of the
        fast search: the k-th nearest row is at most that far. The scores are computed again,
        in float64 (tiles converted on the fly: the stored rows stay float32), and every row
        whose score could, within its rounding-error bound, belong to a row nearer than the
        bound (or than the k-th nearest found so far, which only comes closer) is compared by
        its exact distance and merged into a running top-k. Memory: a few tiles of scores.
        """
        fit_X, n_features = self._fit_X, self._fit_X.shape[1]
        center = None if self._center is None else self._center.double()
        cosine = self.effective_metric_ == "cosine"
        q_c = q.double() if center is None else q.double() - center
        q_sq_norms = (q_c * q_c).sum(1)
        gamma = _score_error_bound(n_features, torch.float64, 1.0, torch.zeros(()))
        error = _score_error_bound(n_features, torch.float64, self._fit_radius, q_sq_norms.sqrt())
        best = torch.full((len(q), k), math.inf, dtype=torch.float64)
        best_indices = torch.zeros((len(q), k), dtype=torch.int64)
        step = max(1, _BLOCK_ELEMENTS // max(1, n_features))
        for start in range(0, fit_X.shape[0], _TILE_ROWS):
            F = fit_X[start : start + _TILE_ROWS]
            F_c = F.double() if center is None else F.double() - center
            norms = (F_c * F_c).sum(1)
            scores = torch.addmm(norms[None], q_c, F_c.T, alpha=-2.0)
            if cosine and (norms == 0).any():
                # A zero row is at squared distance 2 (cosine distance 1): its exact score.
                scores[:, norms == 0] = (2.0 - q_sq_norms)[:, None]
            # The exact score of a row is its squared distance minus ||q - c||^2; the slack
            # covers the float64 rounding of both.
            reach = torch.minimum(bounds, best[:, -1])
            limit = reach - q_sq_norms + error + gamma * (reach + q_sq_norms)
            query, row = torch.nonzero(scores <= limit[:, None], as_tuple=True)
            if len(query) == 0:
                continue
            sq_distances = torch.empty(len(query), dtype=torch.float64)
            for at in range(0, len(query), step):
                a, b = query[at : at + step], row[at : at + step]
                sq_distances[at : at + step] = self._pair_sq_distances(q[a], F[b])
            # Each query's k best of the tile by (distance, index): the pairs come by query
            # then row; sort by distance, then stably by query.
            order = torch.argsort(sq_distances, stable=True)
            order = order[torch.argsort(query[order], stable=True)]
            query, row, sq_distances = query[order], row[order], sq_distances[order]
            counts = torch.bincount(query, minlength=len(q))
            rank = torch.arange(len(query)) - (torch.cumsum(counts, 0) - counts)[query]
            kept = rank < k
            tile_best = torch.full((len(q), k), math.inf, dtype=torch.float64)
            tile_indices = torch.zeros((len(q), k), dtype=torch.int64)
            tile_best[query[kept], rank[kept]] = sq_distances[kept]
            tile_indices[query[kept], rank[kept]] = row[kept] + start
            # Merge, earlier tiles first on equal distances: ties stay in increasing index.
            merged = torch.cat([best, tile_best], 1)
            pos = torch.argsort(merged, dim=1, stable=True)[:, :k]
            best = torch.gather(merged, 1, pos)
            best_indices = torch.gather(torch.cat([best_indices, tile_indices], 1), 1, pos)
        return best, best_indices

    def _sq_distances(self, q: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Squared distances of each query to its candidate rows, exactly (see
        :meth:`_pair_sq_distances`), in chunks of queries so that the gathered rows stay within
        the block budget."""
        n_queries, n_candidates = candidates.shape
        out = torch.empty((n_queries, n_candidates), dtype=torch.float64)
        step = max(1, _BLOCK_ELEMENTS // max(1, n_candidates * q.shape[1]))
        for start in range(0, n_queries, step):
            rows = self._fit_X[candidates[start : start + step]]  # (step, n_candidates, d)
            out[start : start + step] = self._pair_sq_distances(q[start : start + step, None], rows)
        return out

    def _pair_sq_distances(self, q: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Squared distances between float32 queries and rows (broadcast), from differences in
        float64: exact but for float64 rounding (no cancellation, unlike the matmul scores).

        For cosine the rows are unit rows, and ``|u - v|^2 / 2 = 1 - cos`` (with no
        cancellation for nearly parallel rows, where ``1 - u.v`` keeps few digits); a zero row
        has cosine similarity 0 with everything: squared distance 2, cosine distance 1.
        """
        diff = rows.double() - q.double()
        sq_distances = (diff * diff).sum(-1)
        if self.effective_metric_ == "cosine":
            zero = ~rows.any(-1) | ~q.any(-1)
            sq_distances = torch.where(zero, 2.0, sq_distances)
        return sq_distances

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
