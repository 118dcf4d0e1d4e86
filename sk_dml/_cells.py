"""Reading one column's cells: numbers (finite, within float32), levels (their keys, how
often they occur) and text (hashed character n-grams), with the dtype tests that decide
which. :mod:`sk_dml.tabular` builds a table's schema and encoding from these."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import HashingVectorizer

from ._ngrams import ngram_counts


def _rare_share(column, threshold: int) -> tuple[float, int]:
    """The share of ``column``'s non-missing cells whose level (:func:`_key`) occurs fewer
    than ``threshold`` times, and its number of levels."""
    codes, keys = _factorize(column)
    present = codes[codes >= 0]
    if not len(present):
        return 0.0, 0
    by_key = pd.Series(np.bincount(present, minlength=len(keys)), index=keys)
    totals = by_key.groupby(level=0).sum()
    per_code = totals.reindex(keys).to_numpy()
    return float(np.mean(per_code[present] < threshold)), len(totals)


def _check_text_column(column, name: str) -> None:
    """A numeric column read as text must hold whole numbers (IDs, codes, postcodes, read as
    their digits): a measurement's digits are no text, and its value would be lost."""
    dtype = getattr(column, "dtype", None)
    if dtype is None or not _is_numeric_dtype(dtype):
        return
    values = _as_float(column)
    values = values[~np.isnan(values)]
    fractional = values[values != np.round(values)]
    if len(fractional):
        raise ValueError(
            f"Column {name} is listed in text_features but holds numbers such as "
            f"{float(fractional[0])!r}: a text column is read by its characters (whole numbers, "
            "e.g. IDs or postcodes, as their digits). Leave a measurement numeric, or convert "
            "the column to strings yourself if its characters are what matters."
        )


def text_hasher(ngram_range: tuple[int, int], n_buckets: int) -> HashingVectorizer:
    """scikit-learn's hasher of character n-grams within words (lower-cased), giving each
    bucket's count of occurrences (no sign flips, no normalisation)."""
    return HashingVectorizer(
        analyzer="char_wb",
        ngram_range=tuple(ngram_range),
        n_features=n_buckets,
        alternate_sign=False,
        norm=None,
        lowercase=True,
        dtype=np.float64,
    )


def _present_texts(column) -> tuple[np.ndarray, list[str]]:
    """Which rows of ``column`` hold a value, and those values as text (:func:`_key`)."""
    values = pd.Series(column, copy=False).to_numpy(dtype=object)
    present = ~pd.isna(values)
    return present, [_key(v) for v in values[present]]


def _ngram_counts(column, hasher):
    """The (present rows, buckets) CSR matrix of n-gram counts, or None if no row has a
    value."""
    present, texts = _present_texts(column)
    if not texts:
        return None
    counts = ngram_counts(texts, hasher)
    counts.sort_indices()
    return counts


def _ngram_ids(column, hasher, width: int) -> np.ndarray:
    """Each row's n-gram bucket ids + 1, one per occurrence, in increasing order, the first
    ``width`` of them, padded with 0 (all 0 for a missing cell): (n_rows, width) float32.
    Each distinct value is hashed once (names, cities and codes repeat a lot)."""
    codes, texts = _factorize(column)
    out = np.zeros((len(codes), width), np.float32)
    if not texts:
        return out
    counts = ngram_counts(texts, hasher)
    counts.sort_indices()
    repeats = np.rint(counts.data).astype(np.int64)
    ids = np.repeat(counts.indices.astype(np.int64) + 1, repeats)
    per_row = np.rint(np.asarray(counts.sum(axis=1))).astype(np.int64).ravel()
    row = np.repeat(np.arange(len(texts)), per_row)
    start = np.concatenate([[0], np.cumsum(per_row)[:-1]])
    rank = np.arange(len(ids)) - start[row]
    keep = rank < width
    rows = np.zeros((len(texts), width), np.float32)
    rows[row[keep], rank[keep]] = ids[keep]
    present = codes >= 0
    out[present] = rows[codes[present]]
    return out


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


def _is_missing(value) -> bool:
    """Whether a cell is missing (None, NaN, pd.NA, NaT)."""
    missing = pd.isna(value)
    return bool(missing) if np.ndim(missing) == 0 else False


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
