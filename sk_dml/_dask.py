"""Dask collections in ``transform``, ``pairwise_distances`` and ``score``.

Dask is optional (``pip install sk_dml[dask]``) and never imported by ``import sk_dml``: an
object can only be a dask collection if dask is already imported, so :func:`is_dask_collection`
looks in ``sys.modules`` first and costs nothing otherwise.

What goes in and what comes out:

- a **dask array** (n, n_features_in_) of numbers gives a lazy float32 dask array (n, dim)
  whose row chunks are the input's and whose columns are one chunk of the embedding's width
  ``dim``, so ``.shape`` and ``.chunks`` are right before anything runs (dask-ml's
  ``ParallelPostFit`` reports the input's width for a lazy ``transform``). Input split into
  several column chunks is first rechunked to one. Each block is validated with
  scikit-learn's ``check_array`` (missing values, NaN, are allowed; infinity raises), then
  encoded with the fitted ``schema_`` like an in-memory array.
- a **dask DataFrame** (numeric, bool, string, object and category columns, missing values
  allowed) gives a dask array too, as a pandas DataFrame gives a numpy array to the in-memory
  ``transform``: arrays are what ``pairwise_distances``, ``score`` and most downstream
  consumers take, and the index would not survive the in-memory path either. Each pandas
  partition goes through the estimator's own ``transform``, so its columns are matched by
  name (any order), a categorical level unseen at fit gets the "rare or unseen" embedding and
  a missing value the "missing" one, exactly as in memory: the result equals the in-memory
  ``transform`` of the computed frame. Categories need not be known (``ddf.categorize()`` is
  not required): levels are read from each partition's values, not from the dtype. Dask turns
  object columns into strings by default (``dataframe.convert-string``); levels are compared as
  text, so strings and bools (``True`` is ``"True"``) keep their levels, but a number stored in
  an object column, say ``3.0``, arrives as the text ``"3.0"`` rather than the level ``3``.
  The output's row chunk lengths are unknown (``nan``), as after
  ``DataFrame.to_dask_array()``; call ``compute_chunk_sizes()`` if you need them, or wrap it
  back with ``dd.from_dask_array(Z, columns=emb.get_feature_names_out())``.

Everything that the metadata decides is checked at once, with the in-memory messages: the
estimator is fitted and the input is 2-D; for an array, its width equals ``n_features_in_``
(scikit-learn's check); for a DataFrame, the estimator's ``transform`` runs on a one-row
stand-in with the frame's columns and dtypes, every value missing, so a missing, extra or
duplicate column, a wrong width or a numeric column whose dtype is text raises just as it
would in memory. What depends on the values (infinity, text in an object column that was
numeric at fit) is checked per block, so it raises when the result is
computed, again with the in-memory message.

The fitted estimator enters the graph once, as a single key (``dask.delayed(est, pure=True)``)
that every block task depends on: a cluster ships it to each worker once, not with every task.
Pickling it puts its network on the CPU (``MetricEmbedder.__getstate__``), so a CUDA-trained
model runs on CPU workers.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._inference import embed
from .distances import pairwise_distance
from .metrics import precision_at_k

__all__ = ["is_dask_collection", "pairwise_distances", "score", "transform"]

_FLOATS = [np.float32, np.float64]


def is_dask_collection(X) -> bool:
    """True when ``X`` is a dask collection; never imports dask."""
    if "dask" not in sys.modules:
        return False
    return bool(sys.modules["dask"].is_dask_collection(X))


def _kind(X) -> str:
    """``"array"`` or ``"frame"``; a clear error for any other dask collection."""
    dask_array = sys.modules.get("dask.array")
    if dask_array is not None and isinstance(X, dask_array.Array):
        return "array"
    dask_frame = sys.modules.get("dask.dataframe")
    if dask_frame is not None:
        if isinstance(X, dask_frame.DataFrame):
            return "frame"
        if isinstance(X, dask_frame.Series):
            raise ValueError(
                "Expected 2D data, got a dask Series (1D) instead; use a dask DataFrame, e.g. "
                "series.to_frame(), if it holds a single feature."
            )
    raise TypeError(
        f"sk_dml accepts dask arrays and dask DataFrames, got {type(X).__module__}."
        f"{type(X).__qualname__}; convert it first (e.g. dask.array.from_delayed)."
    )


def _shipped(estimator, for_array: bool = True):
    """The estimator as one graph key, shared by every task that needs it."""
    import dask
    import dask.array as da

    if for_array and getattr(da, "array_expr_enabled", lambda: False)():
        # dask's experimental array query planning (off by default in dask 2026.8) drops a
        # Delayed argument's graph: the estimator then travels inside every task instead.
        return estimator
    return dask.delayed(estimator, pure=True)


def _check_array_metadata(estimator, X) -> None:
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D dask array instead (shape {X.shape}); reshape "
            "it, e.g. X.reshape(-1, 1) if it holds a single feature."
        )
    if math.isnan(X.shape[1]):
        raise ValueError(
            f"X has an unknown number of columns (shape {X.shape}); call "
            "X.compute_chunk_sizes() or give the chunk sizes explicitly."
        )
    # A stand-in with X's shape, minus the rows, through scikit-learn's own checks: its
    # messages for the width ("X has 5 features, but ... is expecting 4 features as input.")
    # and for an empty X.
    n_rows = 0 if X.shape[0] == 0 else 1
    validate_data(estimator, np.zeros((n_rows, X.shape[1]), np.float32), reset=False)


def _check_frame_metadata(estimator, X) -> None:
    # The in-memory transform on one row with X's columns and dtypes, every value missing
    # (missing values are always allowed at transform): the columns are matched by name, and
    # a missing, extra or duplicate column or a text dtype where numbers were fitted raises
    # exactly as for a pandas DataFrame, before anything is computed.
    stand_in = X._meta.reindex(index=pd.RangeIndex(1))
    estimator.transform(stand_in)


def _embed_block(block, estimator) -> np.ndarray:
    """One block of an array: validate its values (dtype, inf), encode, embed."""
    block = check_array(
        block,
        dtype=_FLOATS,
        ensure_min_samples=0,
        ensure_all_finite="allow-nan",
        estimator=estimator,
        input_name="X",
    )
    if len(block) == 0:
        return np.empty((0, len(estimator.get_feature_names_out())), np.float32)
    return embed(estimator.module_, estimator.schema_.encode(list(block.T)))


def _embed_partition(partition, estimator) -> pd.DataFrame:
    """One pandas partition through the estimator's own ``transform``, into a frame with the
    output's names and the partition's index."""
    names = estimator.get_feature_names_out()
    if len(partition) == 0:  # transform refuses an empty table; an empty partition is fine
        Z = np.empty((0, len(names)), np.float32)
    else:
        Z = np.asarray(estimator.transform(partition), dtype=np.float32)  # set_output aside
    return pd.DataFrame(Z, index=partition.index, columns=names)


def transform(estimator, X):
    """Lazy embedding of a dask array or DataFrame: a float32 dask array (n, dim)."""
    kind = _kind(X)
    check_is_fitted(estimator)
    width = len(estimator.get_feature_names_out())
    if kind == "frame":
        _check_frame_metadata(estimator, X)
        names = estimator.get_feature_names_out()
        meta = pd.DataFrame(np.empty((0, width), np.float32), columns=names)
        frame = X.map_partitions(_embed_partition, _shipped(estimator, for_array=False), meta=meta)
        return frame.to_dask_array()
    _check_array_metadata(estimator, X)
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    return X.map_blocks(
        _embed_block,
        _shipped(estimator),
        dtype=np.float32,
        chunks=(X.chunks[0], (width,)),
        meta=np.empty((0, 0), np.float32),
    )


def _embedded(estimator, X):
    """Lazy embedding of a dask collection, or the in-memory one as a single-chunk array."""
    import dask.array as da

    if is_dask_collection(X):
        return transform(estimator, X)
    Z = estimator.transform(X)
    return da.from_array(Z, chunks=Z.shape)


def _distance_block(x, y, metric: str, same: bool) -> np.ndarray:
    # With Y=None, a diagonal block compares a block with itself: pairwise_distance(x, None)
    # then gives the exact zero diagonal of the in-memory result. (Identical blocks off the
    # diagonal hold identical rows, for which None is just as right.)
    if same and (x is y or (x.shape == y.shape and np.array_equal(x, y))):
        return pairwise_distance(x, None, metric)
    return pairwise_distance(x, y, metric)


def pairwise_distances(estimator, X, Y=None):
    """Lazy (n, m) learned distances: blocks of rows of X against blocks of rows of Y."""
    import dask.array as da

    ZX = _embedded(estimator, X)
    ZY = ZX if Y is None else _embedded(estimator, Y)
    return da.blockwise(
        _distance_block, "ij",
        ZX, "ik",
        ZY, "jk",
        dtype=np.float32,
        concatenate=True,
        meta=np.empty((0, 0), np.float32),
        metric=estimator.embedding_metric_,
        same=Y is None,
    )  # fmt: skip


def score(estimator, X, y) -> float:
    """Leave-one-out precision@1: embeddings are computed block-wise (on the cluster, when a
    client is active), then the (n, dim) embedding and ``y`` come back to this process, where
    the neighbour search runs in memory."""
    import dask

    Z = transform(estimator, X) if is_dask_collection(X) else estimator.transform(X)
    dask_frame = sys.modules.get("dask.dataframe")
    if dask_frame is not None and isinstance(y, (dask_frame.Series, dask_frame.DataFrame)):
        y = y.to_dask_array()  # one kind of graph with Z's, so that a single compute runs both
    Z, y = dask.compute(Z, y)
    return precision_at_k(Z, np.asarray(y), k=1, metric=estimator.embedding_metric_)
