"""The learned distance as a picklable callable on raw rows of the table.

scikit-learn calls a callable ``metric=`` once per pair of rows, from Python. That route is
inherently slower than embedding once and using a built-in metric, so :class:`LearnedMetric`
makes each call as cheap as it can be: a row is embedded the first time it is seen (then served
from a cache keyed by its bytes) and the distance of two cached embeddings is a numpy
one-liner. Unlike metric-learn's closure, it pickles (with the estimator it refers to).
"""

from __future__ import annotations

import math

import numpy as np

from ._training import embed

__all__ = ["LearnedMetric"]

# Rows kept in the embedding cache before it is cleared (bounds its memory).
_CACHE_ROWS = 1 << 18


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


class LearnedMetric:
    """``d(u, v)``: the distance between the embeddings of rows ``u`` and ``v``.

    Obtain it from a fitted embedder's ``get_metric()``. Equal to
    ``embedder.pairwise_distances`` on the same rows (to float32 precision). A row holds the
    values of the table's columns in the order of fit: numbers (NaN where missing), or, for a
    table with text columns, any values (``df.iloc[i]``). scikit-learn's estimators pass
    numeric rows only: for a table with text columns use the pipeline route below.

    Examples
    --------
    >>> knn = KNeighborsClassifier(metric=emb.get_metric()).fit(X_train, y_train)
    >>> # same predictions, much faster:
    >>> knn = make_pipeline(emb, KNeighborsClassifier(metric=emb.embedding_metric_))
    """

    def __init__(self, embedder):
        self.embedder = embedder
        self.metric = embedder.embedding_metric_
        self._pair = _PAIR[self.metric]
        self._cache: dict[bytes, np.ndarray] = {}

    def _embedding(self, row: np.ndarray) -> np.ndarray:
        key = row.tobytes() if row.dtype != object else repr(row.tolist())
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= _CACHE_ROWS:
                self._cache.clear()
            encoded = self.embedder.schema_.encode(list(row.reshape(1, -1).T))
            found = embed(self.embedder.module_, encoded)[0]
            found = found.astype(np.float64)
            if self.metric == "cosine":
                norm = np.linalg.norm(found)
                found = found / norm if norm > 0 else found
            self._cache[key] = found
        return found

    def __call__(self, u, v) -> float:
        return self._pair(self._embedding(np.asarray(u)), self._embedding(np.asarray(v)))

    def pairwise(self, X, Y=None) -> np.ndarray:
        """The whole (n, m) matrix at once: ``embedder.pairwise_distances(X, Y)``."""
        return self.embedder.pairwise_distances(X, Y)

    def __getstate__(self):
        return {"embedder": self.embedder, "metric": self.metric}

    def __setstate__(self, state):
        self.__dict__.update(state, _cache={}, _pair=_PAIR[state["metric"]])

    def __repr__(self) -> str:
        return f"LearnedMetric({type(self.embedder).__name__}, metric={self.metric!r})"
