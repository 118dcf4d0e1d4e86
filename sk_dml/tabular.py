"""A table's schema: which columns are numeric and which categorical, learned from the training
rows, and the encoding of a table into the one float32 matrix the network reads.

An embedder learns a :class:`TableSchema` at ``fit`` and keeps it: the columns (names or
positions) and their dtypes, each categorical column's vocabulary and embedding width, and
which numeric columns had missing values. ``transform`` encodes any later table with it,
matching columns by name. The encoded matrix has one column per numeric input column (its raw
value, NaN where missing) followed by one per categorical column (the level's code, stored as
a float32 integer). The network's input layer (:class:`sk_dml.nets.TableInput`) then
standardises, fills and flags the numbers and looks the codes up in embedding tables, so a
column with a million levels costs one (levels x width) table, never a one-hot matrix.

Codes: 0 is "missing", 1 is "rare or not seen at fit time" (levels seen fewer than
``min_frequency`` times at fit share it with levels first seen later), 2, 3, ... are the
levels kept, in sorted order. A level is identified by its text: ``1``, ``1.0`` and ``"1"`` are
one level, ``True`` is ``"True"``.

The schema is plain data (:meth:`TableSchema.to_dict`), stored in model files as JSON.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

__all__ = [
    "MISSING_CODE",
    "RARE_CODE",
    "TableSchema",
    "default_embedding_dim",
    "learn_schema",
]

MISSING_CODE = 0
RARE_CODE = 1
_FIRST_LEVEL = 2
# Codes travel as float32, which holds every integer up to 2**24 exactly.
MAX_LEVELS = 2**24 - _FIRST_LEVEL
# The widest embedding the "auto" rule gives a categorical column.
MAX_AUTO_DIM = 32


def default_embedding_dim(n_rows: int) -> int:
    """The "auto" width of a categorical column's embedding table of ``n_rows`` rows (its
    levels plus "missing" and "rare"): ``min(32, round(1.6 * n_rows ** 0.56))``, the rule of
    thumb of fastai (Howard & Gugger 2020) with a lower cap, since the whole embedding here is
    small (64 by default)."""
    return max(1, min(MAX_AUTO_DIM, round(1.6 * n_rows**0.56)))


@dataclass
class TableSchema:
    """The columns a model was fitted on, and how each is encoded.

    Attributes
    ----------
    n_features : int
        Input columns.
    feature_names : list of str or None
        Their names when the training table had string column names (then ``transform``
        matches columns by name), else None (matched by position).
    dtypes : list of str
        Each column's dtype at fit, for messages.
    numeric : list of int
        Positions of the numeric columns, in encoded order.
    categorical : list of int
        Positions of the categorical columns, in encoded order (after the numeric ones).
    levels : list of list of str
        Each categorical column's levels kept at fit (codes 2, 3, ...), sorted.
    embedding_dims : list of int
        Each categorical column's embedding width.
    missing_indicators : list of int
        Indices into ``numeric`` of the columns that had missing values at fit: those get a
        missing-indicator feature.
    """

    n_features: int
    feature_names: list[str] | None
    dtypes: list[str]
    numeric: list[int]
    categorical: list[int]
    levels: list[list[str]]
    embedding_dims: list[int]
    missing_indicators: list[int]

    # -- what the network reads ------------------------------------------------------------
    @property
    def table_sizes(self) -> list[int]:
        """Rows of each categorical column's embedding table (levels + missing + rare)."""
        return [len(levels) + _FIRST_LEVEL for levels in self.levels]

    @property
    def n_encoded(self) -> int:
        """Columns of :meth:`encode`'s output."""
        return len(self.numeric) + len(self.categorical)

    def column_name(self, position: int) -> str:
        """How messages name the column at ``position``."""
        if self.feature_names is not None:
            return repr(self.feature_names[position])
        return f"at position {position}"

    # -- encoding ------------------------------------------------------------------------------
    def encode(self, columns: list) -> np.ndarray:
        """The (n_rows, n_encoded) float32 matrix of ``columns`` (one 1-D array or pandas
        Series per input column, in fit order): numeric values (NaN where missing), then the
        categorical codes."""
        n_rows = len(columns[0]) if columns else 0
        encoded = np.empty((n_rows, self.n_encoded), dtype=np.float32)
        for j, position in enumerate(self.numeric):
            encoded[:, j] = self._numbers(columns[position], position)
        offset = len(self.numeric)
        for j, position in enumerate(self.categorical):
            codes = _level_codes(columns[position], self.levels[j])
            encoded[:, offset + j] = codes
        return encoded

    def _numbers(self, column, position: int) -> np.ndarray:
        """A numeric column as float64 (NaN where missing); a clear error for text or inf."""
        if isinstance(column, pd.Series) and not _is_numeric_dtype(column.dtype):
            texts = column.dropna()
            texts = texts[texts.map(lambda v: isinstance(v, str | bytes))]
            if len(texts) or not (
                pd.api.types.is_object_dtype(column.dtype) or _is_bool(column.dtype)
            ):
                example = f", e.g. {texts.iloc[0]!r}" if len(texts) else ""
                raise ValueError(
                    f"Column {self.column_name(position)} was numeric at fit "
                    f"({self.dtypes[position]}) but now has dtype {column.dtype}{example}; "
                    "convert it to numbers (pd.to_numeric)."
                )
        return _finite_numbers(_as_float(column), self.column_name(position))

    # -- as data -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TableSchema:
        schema = cls(**data)
        if not (
            len(schema.levels) == len(schema.categorical) == len(schema.embedding_dims)
            and sorted(schema.numeric + schema.categorical) == list(range(schema.n_features))
            and all(0 <= i < len(schema.numeric) for i in schema.missing_indicators)
        ):
            raise ValueError("the table schema is inconsistent")
        return schema


def learn_schema(
    columns: list,
    feature_names: list[str] | None,
    *,
    categorical_features,
    min_frequency: int,
    embedding_dim,
) -> TableSchema:
    """The schema of the training table ``columns`` (one 1-D array or Series per column).

    ``categorical_features`` follows HistGradientBoostingClassifier: "from_dtype" (category,
    string/object and bool columns), None, names, indices or a boolean mask. ``embedding_dim``
    is "auto" (:func:`default_embedding_dim`), an int for every column, or a dict from column
    name (or position) to int, "auto" for the others.
    """
    n_features = len(columns)
    if n_features == 0:
        raise ValueError("Found array with 0 feature(s) while a minimum of 1 is required.")
    if len(columns[0]) == 0:
        raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
    names = feature_names
    label = (lambda p: repr(names[p])) if names is not None else (lambda p: f"at position {p}")
    dtypes = [str(getattr(c, "dtype", np.asarray(c).dtype)) for c in columns]
    chosen = _categorical_positions(columns, names, categorical_features)
    numeric = [p for p in range(n_features) if p not in chosen]
    categorical = sorted(chosen)
    for p in numeric:
        dtype = getattr(columns[p], "dtype", None)
        if dtype is not None and not (_is_numeric_dtype(dtype) or _is_bool(dtype)):
            raise ValueError(
                f"Column {label(p)} has dtype {dtype}, which is neither numeric nor one of the "
                f"categorical columns (categorical_features={categorical_features!r}); "
                + (
                    "convert it to numbers or to a category."
                    if not _is_textual(dtype)
                    else "list it in categorical_features, or convert it to numbers."
                )
            )
    missing_indicators = []
    for j, p in enumerate(numeric):
        missing = np.isnan(_finite_numbers(_as_float(columns[p]), label(p)))
        if missing.all():
            raise ValueError(f"Column {label(p)} has no value at all (every row is missing).")
        if missing.any():
            missing_indicators.append(j)
    levels, dims = [], []
    for p in categorical:
        codes, keys = _factorize(columns[p])
        if (codes < 0).all():
            raise ValueError(f"Column {label(p)} has no value at all (every row is missing).")
        counts = pd.Series(np.bincount(codes[codes >= 0], minlength=len(keys)), index=keys)
        counts = counts.groupby(level=0).sum()  # 1, 1.0 and "1" are one level
        kept = sorted(counts.index[counts.to_numpy() >= min_frequency])
        if len(kept) > MAX_LEVELS:
            raise ValueError(
                f"Column {label(p)} has {len(kept)} levels; at most {MAX_LEVELS} are supported."
            )
        levels.append([str(k) for k in kept])
        dims.append(_embedding_dim(embedding_dim, p, names, len(kept) + _FIRST_LEVEL))
    return TableSchema(
        n_features=n_features,
        feature_names=None if names is None else [str(n) for n in names],
        dtypes=dtypes,
        numeric=numeric,
        categorical=categorical,
        levels=levels,
        embedding_dims=dims,
        missing_indicators=missing_indicators,
    )


def _categorical_positions(columns, names, categorical_features) -> set[int]:
    """The positions ``categorical_features`` designates (HistGradientBoosting's semantics)."""
    n_features = len(columns)
    if categorical_features is None:
        return set()
    if isinstance(categorical_features, str):  # "from_dtype"; the constraint refused others
        return {
            p
            for p, column in enumerate(columns)
            if (dtype := getattr(column, "dtype", None)) is not None
            and (_is_textual(dtype) or _is_bool(dtype) or isinstance(dtype, pd.CategoricalDtype))
        }
    given = np.asarray(categorical_features)
    if given.ndim != 1:
        raise ValueError(
            "categorical_features must be 'from_dtype', None or a 1-D list of column names, "
            f"indices or booleans; got shape {given.shape}."
        )
    if given.size == 0:
        return set()
    if given.dtype.kind == "b":
        if len(given) != n_features:
            raise ValueError(
                f"categorical_features as a boolean mask must have one entry per column "
                f"(n_features={n_features}), got {len(given)}."
            )
        return set(np.flatnonzero(given).tolist())
    if given.dtype.kind in "iu":
        bad = [int(i) for i in given if not -n_features <= i < n_features]
        if bad:
            raise ValueError(
                f"categorical_features has index {bad[0]}, outside the {n_features} columns of X."
            )
        return {int(i) % n_features for i in given}
    if given.dtype.kind in "UO":
        if names is None:
            raise ValueError(
                "categorical_features names columns, but X has no column names; pass a "
                "pandas DataFrame or give positions."
            )
        position = {name: p for p, name in enumerate(names)}
        unknown = [str(n) for n in given if n not in position]
        if unknown:
            raise ValueError(
                f"categorical_features names {unknown[0]!r}, which is not a column of X."
            )
        return {position[n] for n in given}
    raise ValueError(
        "categorical_features must hold column names, indices or booleans; got values of "
        f"dtype {given.dtype}."
    )


def _embedding_dim(embedding_dim, position: int, names, n_rows: int) -> int:
    if isinstance(embedding_dim, dict):
        key = names[position] if names is not None else position
        embedding_dim = embedding_dim.get(key, embedding_dim.get(position, "auto"))
    if isinstance(embedding_dim, str):
        return default_embedding_dim(n_rows)
    if not (isinstance(embedding_dim, numbers.Integral) and embedding_dim >= 1):
        raise ValueError(
            f"category_embedding_dim must be 'auto', a positive int or a dict of them; got "
            f"{embedding_dim!r}."
        )
    return int(embedding_dim)


def _level_codes(column, levels: list[str]) -> np.ndarray:
    """Each row's code: 0 when missing, 1 when rare or unseen, else 2 + the level's index."""
    codes, keys = _factorize(column)
    if not keys:  # every row missing (or no rows)
        return np.full(len(codes), MISSING_CODE)
    lookup = pd.Index(levels).get_indexer(pd.Index(keys, dtype=object))
    by_key = np.where(lookup >= 0, lookup + _FIRST_LEVEL, RARE_CODE)
    return np.where(codes >= 0, by_key[np.maximum(codes, 0)], MISSING_CODE)


def _factorize(column) -> tuple[np.ndarray, list[str]]:
    """Integer codes (-1 where missing) into the column's distinct values, and each value's
    key (:func:`_key`)."""
    codes, uniques = pd.factorize(pd.Series(column, copy=False), use_na_sentinel=True)
    return np.asarray(codes), [_key(v) for v in np.asarray(uniques, dtype=object)]


def _key(value) -> str:
    """A level's identity: its text, with whole numbers written as integers."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    return str(value)


def _finite_numbers(values: np.ndarray, column: str) -> np.ndarray:
    """``values``, if each is missing (NaN) or a finite number within float32's range (the
    network computes in float32); else a ValueError naming the column."""
    if np.isinf(values).any():
        raise ValueError(
            f"Input X contains infinity in column {column}; replace it (a missing value, NaN, "
            "is allowed)."
        )
    too_large = np.abs(values) > np.finfo(np.float32).max
    if too_large.any():
        raise ValueError(
            f"Column {column} holds {float(values[too_large][0])!r}, beyond the range of float32 "
            "in which the network computes; rescale it."
        )
    return values


def _as_float(column) -> np.ndarray:
    """A column as float64, NaN where missing (NaN, None, pd.NA)."""
    if isinstance(column, pd.Series):
        try:
            return column.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            return pd.to_numeric(column, errors="raise").to_numpy(np.float64, na_value=np.nan)
    return np.asarray(column, dtype=np.float64)


def _is_numeric_dtype(dtype) -> bool:
    return (
        pd.api.types.is_numeric_dtype(dtype)
        and not pd.api.types.is_complex_dtype(dtype)
        and not _is_bool(dtype)
        and not isinstance(dtype, pd.CategoricalDtype)
    )


def _is_bool(dtype) -> bool:
    return pd.api.types.is_bool_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)


def _is_textual(dtype) -> bool:
    return not isinstance(dtype, pd.CategoricalDtype) and (
        pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
    )
