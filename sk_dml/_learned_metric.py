"""The learned distance as a picklable callable on raw rows of the table.

scikit-learn calls a callable ``metric=`` once per pair of rows, from Python. That route is
inherently slower than embedding once and using a built-in metric, so :class:`LearnedMetric`
makes each call as cheap as it can be: a row is embedded the first time it is seen (then served
from a cache keyed by its bytes) and the distance of two cached embeddings is a numpy
one-liner. It is a snapshot: it holds its own frozen copy of the fitted model (the schema, the
network on the CPU, the embedding metric), so a refit of the estimator it came from changes
nothing it answers, and it pickles without the estimator's training state or pair table.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from ._inference import embed
from .distances import check_metric

__all__ = ["LearnedMetric"]

# Rows kept in the embedding cache before it is cleared (bounds its memory).
_CACHE_ROWS = 1 << 18
# What a snapshot leaves out: the table of a pair or triplet embedder (data, not the model) and
# the training state (optimizer, loss parameters).
_LEFT_OUT = ("preprocessor", "_trainer", "module_")


def _euclidean(a, b):
    d = a - b
    return math.sqrt(np.dot(d, d))


def _sqeuclidean(a, b):
    d = a - b
    return float(np.dot(d, d))


# Distances of two 1-D float64 embeddings, the cheapest numpy way (this runs once per pair).
# Cosine embeddings are cached already L2-normalised, so cosine is one dot product.
_PAIR = {
    "euclidean": _euclidean,
    "sqeuclidean": _sqeuclidean,
    "manhattan": lambda a, b: float(np.abs(a - b).sum()),
    "chebyshev": lambda a, b: float(np.abs(a - b).max()),
    "cosine": lambda a, b: max(0.0, 1.0 - float(np.dot(a, b))),
}


def frozen_copy(embedder):
    """A fitted copy of ``embedder`` that shares nothing mutable with it: its network deep-copied
    to the CPU, its other fitted attributes and parameters deep-copied, without the training
    state and, for a pair or triplet embedder, without the preprocessor table."""
    state = {key: value for key, value in vars(embedder).items() if key not in _LEFT_OUT}
    frozen = type(embedder).__new__(type(embedder))
    frozen.__dict__.update(copy.deepcopy(state))
    frozen.module_ = copy.deepcopy(embedder.module_).cpu().eval()
    frozen.device_ = torch.device("cpu")
    if "preprocessor" in vars(embedder):
        frozen.preprocessor = None
    return frozen


def _check_squared(squared, metric: str, estimator: str) -> bool:
    """``squared`` as a bool, if the learned metric has a squared form (Euclidean only)."""
    if not isinstance(squared, bool | np.bool_):
        raise ValueError(f"squared must be True or False, got {squared!r}.")
    if squared and metric != "euclidean":
        hint = (
            "it is the squared Euclidean distance already; use squared=False"
            if metric == "sqeuclidean"
            else "squared=True is defined for a Euclidean embedding metric only"
        )
        raise ValueError(
            f"squared=True gives the square of the Euclidean distance between embeddings, but "
            f"this {estimator}'s embedding metric is {metric!r}: {hint}."
        )
    return bool(squared)


class LearnedMetric:
    """``d(u, v)``: the distance between the embeddings of rows ``u`` and ``v``.

    Obtain it from a fitted embedder's ``get_metric()``. Equal to
    ``embedder.pairwise_distances`` on the same rows (to float32 precision). A row is a 1-D
    vector holding the values of the table's columns in the order of fit: numbers (NaN where
    missing), or, for a table with text columns, any values (``df.iloc[i]``); anything else
    (a vector of another length, a 2-D array, a scalar) is a ValueError naming the expected
    shape. scikit-learn's estimators pass numeric rows only: for a table with text columns use
    the pipeline route below.

    It is a snapshot of the model it was created from: ``embedder`` is a frozen copy of the
    fitted estimator (network on the CPU, no training state, no preprocessor table), so refitting
    or warm-starting the estimator later changes nothing it answers, pickled or not.

    ``squared=True`` (here, or per call: ``d(u, v, squared=True)``, which is how scikit-learn's
    ``metric_params={"squared": True}`` reaches it) gives the squared Euclidean distance; it
    is defined where the embedding metric is ``"euclidean"``, and a ValueError otherwise.

    Examples
    --------
    >>> knn = KNeighborsClassifier(metric=emb.get_metric()).fit(X_train, y_train)
    >>> # same predictions, much faster:
    >>> knn = make_pipeline(emb, KNeighborsClassifier(metric=emb.embedding_metric_))
    """

    def __init__(self, embedder, squared=False):
        self.embedder = frozen_copy(embedder)
        self.metric = check_metric(self.embedder.embedding_metric_)
        self.squared = _check_squared(squared, self.metric, type(embedder).__name__)
        self._start()

    def _start(self):
        """The state derived from the snapshot: the distance function and an empty cache."""
        self._estimator = type(self.embedder).__name__
        self._n_features = self.embedder.n_features_in_
        self._pair = _sqeuclidean if self.squared else _PAIR[self.metric]
        self._cache: dict[bytes, np.ndarray] = {}

    def _row(self, value, name: str) -> np.ndarray:
        """``value`` as one row of the table (a 1-D vector of ``n_features`` values), numbers as
        float64; a ValueError naming what is wrong otherwise."""
        row = np.asarray(value)
        if row.ndim != 1:
            raise ValueError(
                f"{name} must be a 1-D vector, one row of the table (as scikit-learn passes to a "
                f"metric); got an array of shape {row.shape}."
            )
        if len(row) != self._n_features:
            raise ValueError(
                f"{name} has {len(row)} features, but {self._estimator} is expecting "
                f"{self._n_features} features as input."
            )
        if row.dtype.kind == "c":
            raise ValueError(f"Complex data not supported\n{row}\n")
        return row.astype(np.float64, copy=False) if row.dtype.kind in "biuf" else row

    def _embedding(self, value, name: str) -> np.ndarray:
        row = self._row(value, name)
        key = row.tobytes() if row.dtype != object else repr(row.tolist())
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= _CACHE_ROWS:
                self._cache.clear()
            encoded = self.embedder.schema_.encode(list(row.reshape(1, -1).T))
            found = embed(self.embedder.module_, encoded)[0].astype(np.float64)
            if self.metric == "cosine":
                norm = np.linalg.norm(found)
                found = found / norm if norm > 0 else found
            self._cache[key] = found
        return found

    def __call__(self, u, v, squared=None) -> float:
        """The learned distance of rows ``u`` and ``v``; ``squared`` (None: the metric's own
        setting) asks for the squared Euclidean distance, or not."""
        pair = self._pair
        if squared is not None and squared is not self.squared:
            squared = _check_squared(squared, self.metric, self._estimator)
            pair = _sqeuclidean if squared else _PAIR[self.metric]
        return pair(self._embedding(u, "u"), self._embedding(v, "v"))

    def pairwise(self, X, Y=None) -> np.ndarray:
        """The whole (n, m) matrix at once: the snapshot's ``pairwise_distances(X, Y)``,
        squared when the metric is."""
        distances = self.embedder.pairwise_distances(X, Y)
        return distances**2 if self.squared else distances

    def __getstate__(self):
        return {"embedder": self.embedder, "metric": self.metric, "squared": self.squared}

    def __setstate__(self, state):
        self.__dict__.update({"squared": False, **state})  # pickled before squared existed
        self._start()

    def __repr__(self) -> str:
        squared = ", squared=True" if self.squared else ""
        return f"LearnedMetric({self._estimator}, metric={self.metric!r}{squared})"
