"""A pairs file: labelled pairs of rows of a table, for ``fit --pairs`` and ``evaluate --pairs``.

A pairs file is a CSV or Parquet table with a header row and exactly three columns, read by
position: the two rows of each pair, and its label (1 for alike, 0 or -1 for not alike; or
true/false). The rows are named by the values of a key column of the data table when there is
one (``--key``), else by their 0-based row numbers in it. Here the names become row numbers;
what the labels and pairs must be beyond that (both kinds of label, no pair of a row with
itself, ...) is the estimator's to check (:func:`sk_dml.cli.model.check_pairs`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import CLIError, names
from .tables import read_table

PAIR_COLUMNS = 3  # the two rows and the label


def read_pairs(path, frame: pd.DataFrame, key: str | None, source) -> tuple[np.ndarray, pd.Series]:
    """The pairs of the pairs file ``path`` as row numbers of ``frame`` (the table read from
    ``source``), int64 of shape (n_pairs, 2), and their labels as read (the third column).

    ``key`` names the column of ``frame`` whose values the pairs give; None: the pairs give
    0-based row numbers of ``frame``.
    """
    table = read_table(path)
    if table.shape[1] != PAIR_COLUMNS:
        raise CLIError(
            f"{path}: a pairs file has exactly {PAIR_COLUMNS} columns (the two rows of each pair, "
            f"then its label); this one has {table.shape[1]}: {names(list(table.columns))}"
        )
    for column in table.columns:
        missing = table[column].isna()
        if missing.any():
            raise CLIError(
                f"{path}: column {column!r} has {int(missing.sum())} missing value(s) (first in "
                f"pair {int(np.flatnonzero(missing)[0])}, counting from 0)"
            )
    members = table.iloc[:, :2]
    if key is None:
        pairs = np.column_stack(
            [_row_numbers(members[c], len(frame), path, source) for c in members]
        )
    else:
        if key not in frame.columns:
            raise CLIError(
                f"{source}: no key column {key!r} for the pairs of {path}; the columns are "
                f"{names(list(frame.columns))}"
            )
        lookup = _KeyLookup(frame[key], key, source)
        pairs = np.column_stack([lookup.rows(members[c], path) for c in members])
    return pairs.astype(np.int64), table.iloc[:, 2]


def _row_numbers(column: pd.Series, n_rows: int, path, source) -> np.ndarray:
    """The 0-based row numbers in ``column``, each a row of the ``n_rows`` of ``source``."""
    values = column.to_numpy()
    if _is_number(column):
        whole = np.isfinite(values) & (values == np.round(values))
    else:
        whole = np.zeros(len(values), dtype=bool)
    if not whole.all():
        bad = _plain(values[~whole][0])
        raise CLIError(
            f"{path}: without --key, a pair names its rows by their 0-based row numbers in "
            f"{source}, but column {column.name!r} holds {bad!r}; --key COL names rows by the "
            "values of a column"
        )
    rows = values.astype(np.int64)
    outside = (rows < 0) | (rows >= n_rows)
    if outside.any():
        raise CLIError(
            f"{path}: column {column.name!r} holds row number {int(rows[outside][0])}, but "
            f"{source} has {n_rows} rows (numbered 0 to {n_rows - 1}); "
            f"{int(outside.sum())} pair(s) name a row outside it"
        )
    return rows


def _as_text(values: pd.Series) -> pd.Series:
    """Values as text, whole numbers without a decimal point (``3.0`` -> ``"3"``), so that a
    column pandas read as numbers matches one it read as text."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.map(lambda v: str(int(v)) if float(v).is_integer() else str(v))
    return values.astype(str)


class _KeyLookup:
    """The row numbers of the values of a key column, whose values are unique."""

    def __init__(self, key: pd.Series, name: str, source):
        present = key.notna().to_numpy()
        self.values = key[present]
        self.positions = np.flatnonzero(present)
        self.name, self.source = name, source
        self.numeric = _is_number(self.values)
        index = pd.Index(self.values if self.numeric else _as_text(self.values))
        repeated = index.duplicated()
        if repeated.any():
            twice = _plain(self.values[repeated].iloc[0])
            raise CLIError(
                f"{source}: the key column {name!r} holds {twice!r} more than once "
                f"({int(repeated.sum())} repeated value(s)); pairs name rows by its values, so "
                "each must be unique"
            )
        self.index = index

    def rows(self, column: pd.Series, path) -> np.ndarray:
        """The row numbers of the key values in ``column`` of the pairs file ``path``."""
        numeric = self.numeric and _is_number(column)
        wanted = column if numeric else _as_text(column)
        index = self.index if numeric or not self.numeric else pd.Index(_as_text(self.values))
        found = index.get_indexer(pd.Index(wanted))
        unknown = found < 0
        if unknown.any():
            absent = _plain(column[unknown].iloc[0])
            raise CLIError(
                f"{path}: column {column.name!r} holds {absent!r}, not a value of the key column "
                f"{self.name!r} of {self.source} ({int(unknown.sum())} pair(s) name a row that is "
                "not there)"
            )
        return self.positions[found]


def _is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _plain(value):
    """A numpy scalar as the Python value it holds, for messages (``3``, not ``np.int64(3)``)."""
    return value.item() if isinstance(value, np.generic) else value
