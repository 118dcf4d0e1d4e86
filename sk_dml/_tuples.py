"""Reading tuples of rows (pairs, triplets) as the tuple embedders take them: integer row
indices into a table, indicators that a callable maps to rows, or the rows themselves."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_array

from .tabular import is_dataframe


def read_tuples(X, preprocessor, *, size: int, name: str, fitting: bool):
    """The tuples ``X`` (of ``size`` members; ``name`` them in messages) as int64 indices of
    shape (n, size) into a table, and that table: the ``preprocessor``'s rows (indices into it,
    or indicators it maps to rows when callable), or the rows ``X`` holds (3-D). When
    ``fitting``, a tuple naming one row twice is a ValueError, and identical rows of a 3-D
    ``X`` are merged into one."""
    if preprocessor is None or np.ndim(X) == 3:
        return _formed_tuples(X, preprocessor, size, name, merge=fitting)
    index = check_array(X, dtype=None, input_name="X")
    read = callable(preprocessor)
    if index.shape[1] != size or not (read or np.issubdtype(index.dtype, np.integer)):
        what = "indicators" if read else "integer row indices"
        raise ValueError(
            f"With a preprocessor, {name} are {what} of shape (n_{name}, {size}) or rows, "
            f"{_formed(name, size)}; got an array of dtype {index.dtype} and shape "
            f"{index.shape}."
        )
    if read:  # each distinct indicator read once: one row per record
        indicators, index = np.unique(index, return_inverse=True)
        table = _read_rows(preprocessor, indicators)
        index = index.reshape(-1, size)
    else:
        table = preprocessor
        n_rows = len(table)
        outside = (index < 0) | (index >= n_rows)
        if outside.any():
            raise ValueError(
                f"{np.count_nonzero(outside.any(axis=1))} of the {name} index rows outside "
                f"the preprocessor, which has {n_rows} rows (indices 0 to {n_rows - 1}); "
                f"e.g. {index[outside][0]}."
            )
    if fitting:
        _check_distinct_members(index, name)
    return index.astype(np.int64), table


def _formed_tuples(X, preprocessor, size: int, name: str, *, merge: bool):
    """Tuples that hold their rows (n, size, n_features): indices into those rows, with
    identical rows merged into one when ``merge``."""
    tuples = check_array(X, allow_nd=True, ensure_all_finite="allow-nan", input_name="X")
    if tuples.ndim != 3 or tuples.shape[1] != size:
        if preprocessor is None:
            raise ValueError(
                f"Without a preprocessor, {name} are rows: {_formed(name, size)}; got shape "
                f"{tuples.shape}. To give row indices, set the table they index: "
                "set_params(preprocessor=table) (a model loaded by sk_dml.load has none: "
                "model files hold no table)."
            )
        raise ValueError(
            f"{name.capitalize()} given as rows must be {_formed(name, size)}; got shape "
            f"{tuples.shape}."
        )
    n, _, width = tuples.shape
    rows = tuples.reshape(n * size, width)
    if not (merge and width):
        return np.arange(n * size).reshape(n, size), rows
    rows, index = _distinct_rows(rows)
    return index.reshape(n, size), rows


def _read_rows(preprocessor, indicators: np.ndarray):
    """The rows the callable ``preprocessor`` gives for ``indicators``, checked."""
    rows = preprocessor(indicators)
    if not is_dataframe(rows):
        rows = np.asarray(rows)
    if rows.ndim != 2 or len(rows) != len(indicators):
        raise ValueError(
            f"The preprocessor must map an array of {len(indicators)} indicators to as many "
            f"rows, an array of shape ({len(indicators)}, n_features) or a DataFrame; it "
            f"returned {type(rows).__name__} of shape {rows.shape}."
        )
    return rows


def _check_distinct_members(index: np.ndarray, name: str) -> None:
    """A tuple that names one row twice says nothing (a pair of a row with itself)."""
    repeated = np.zeros(len(index), dtype=bool)
    for i in range(index.shape[1]):
        for j in range(i + 1, index.shape[1]):
            repeated |= index[:, i] == index[:, j]
    if repeated.any():
        first = int(np.flatnonzero(repeated)[0])
        raise ValueError(
            f"{np.count_nonzero(repeated)} of the {name} name the same row twice "
            f"(e.g. {name} {first}: {index[first].tolist()}); each member of a "
            "tuple must be a different row."
        )


def _formed(name: str, size: int) -> str:
    return f"an array of shape (n_{name}, {size}, n_features)"


def _distinct_rows(rows: np.ndarray):
    """The distinct rows of ``rows`` (equal bytes) in order of first appearance, and the
    position of each row of ``rows`` among them."""
    keys = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1])))
    _, first, inverse = np.unique(keys.ravel(), return_index=True, return_inverse=True)
    order = np.argsort(first)
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    return rows[first[order]], position[inverse.ravel()]
