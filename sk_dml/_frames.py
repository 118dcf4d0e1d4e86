"""A pandas DataFrame's columns as an embedder reads them: matched to the columns seen at fit
by name (in any order) or by position, with scikit-learn's messages for duplicated, unseen or
missing names."""

from __future__ import annotations

import pandas as pd


def is_dataframe(X) -> bool:
    """Whether ``X`` is a pandas DataFrame (read column by column, with its dtypes)."""
    return isinstance(X, pd.DataFrame)


def has_string_names(X) -> bool:
    """Whether every column name of the DataFrame ``X`` is a string (then matched by name)."""
    return all(isinstance(c, str) for c in X.columns)


def frame_columns(X: pd.DataFrame, fitted_names=None) -> list[pd.Series]:
    """The columns of ``X``: in the order of ``fitted_names`` (the string column names seen
    at fit; ``X``'s may come in any order) when given and ``X``'s names are strings, else in
    ``X``'s order. Duplicated or mismatched names and an empty table are ValueErrors in
    scikit-learn's words."""
    duplicated = X.columns[X.columns.duplicated()]
    if len(duplicated):
        shown = "\n".join(f"- {name!r}" for name in dict.fromkeys(duplicated))
        raise ValueError(f"Expected unique column names, got duplicates:\n{shown}")
    if X.shape[0] == 0:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if fitted_names is None or not has_string_names(X):
        return [X.iloc[:, j] for j in range(X.shape[1])]
    given = [str(c) for c in X.columns]
    unseen = [c for c in given if c not in set(fitted_names)]
    absent = [c for c in fitted_names if c not in set(given)]
    if unseen or absent:
        message = "The feature names should match those that were passed during fit.\n"
        if unseen:
            message += "Feature names unseen at fit time:\n" + _bullets(unseen)
        if absent:
            message += "Feature names seen at fit time, yet now missing:\n" + _bullets(absent)
        raise ValueError(message)
    position = {name: j for j, name in enumerate(given)}
    return [X.iloc[:, position[name]] for name in fitted_names]


def _bullets(names: list[str], shown: int = 5) -> str:
    """scikit-learn's list of feature names in its mismatch message."""
    lines = [f"- {name}" for name in names[:shown]]
    if len(names) > shown:
        lines.append("- ...")
    return "\n".join(lines) + "\n"
