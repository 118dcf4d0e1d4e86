"""Which column is what: the class labels or continuous values of the target, and the
feature, key, excluded, categorical and text columns that ``fit``'s options name.

The CLI encodes nothing itself: ``fit`` hands the feature columns, as pandas read them, to the
embedder, which learns their encoding (:mod:`sk_dml.tabular`). Here the names given on the
command line are checked against the table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.multiclass import type_of_target

from ..tabular import categorical_positions
from .errors import CLIError, names


def column_list(text: str) -> list[str]:
    """The column names of ``COL[,COL...]``, as written (no name may be empty)."""
    columns = text.split(",")
    if not all(columns):
        raise ValueError(text)
    return columns


column_list.__name__ = "COL[,COL...]"  # how argparse names the type in its errors


def add_column_list_option(parser, flag: str, help: str) -> None:
    """A repeatable ``--flag COL[,COL...]`` option of ``parser`` that gathers column names
    (default: none)."""
    parser.add_argument(
        flag, type=column_list, action="extend", default=[], metavar="COL[,COL...]", help=help
    )


def check_named(frame: pd.DataFrame, flag: str, columns, source) -> None:
    """Refuse a name given with ``flag`` that is not a column of ``frame``."""
    unknown = [c for c in columns if c not in frame.columns]
    if unknown:
        raise CLIError(
            f"{source}: {flag} names {names(unknown)}, not a column of the table; the columns "
            f"are {names(list(frame.columns))}"
        )


def feature_columns(frame: pd.DataFrame, args, source) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The feature columns of ``frame`` under ``fit``'s options, which are categorical and
    which are text.

    The features are all columns but the target (``args.target``; None when the fit learns
    from a pairs file), the key (``args.key``) and the excluded ones (``args.exclude``). The
    categorical ones are those pandas read as text, true/false or category (the embedder's
    ``categorical_features="from_dtype"``) and those named by ``args.categorical``, except
    the text ones, named by ``args.text`` (read by character n-grams; never categorical).
    """
    key = [] if args.key is None else [args.key]
    check_named(frame, "--key", key, source)
    check_named(frame, "--exclude", args.exclude, source)
    check_named(frame, "--categorical", args.categorical, source)
    check_named(frame, "--text", args.text, source)
    both = [c for c in args.text if c in set(args.categorical)]
    if both:
        raise CLIError(
            f"--text {both[0]!r} is also named by --categorical; a column is read one way"
        )
    left_out = dict.fromkeys(args.exclude, "excluded")
    if args.target is not None:
        left_out[args.target] = "the target column"
    left_out.update(dict.fromkeys(key, "the key column"))
    for flag, named in (("--categorical", args.categorical), ("--text", args.text)):
        for name in named:
            if name in left_out:
                raise CLIError(f"{flag} {name!r}: {left_out[name]}, not a feature")
    features = frame[[c for c in frame.columns if c not in left_out]]
    if features.shape[1] == 0:
        raise CLIError(
            f"{source}: no feature columns left besides the target, key and excluded columns"
        )
    columns = [features[c] for c in features.columns]
    text = [c for c in features.columns if c in set(args.text)]
    skipped = {p for p, c in enumerate(features.columns) if c in set(text)}
    from_dtype = set(categorical_positions(columns, list(features.columns), exclude=skipped))
    chosen = set(args.categorical)
    categorical = [c for p, c in enumerate(features.columns) if p in from_dtype or c in chosen]
    return features, categorical, text


def target_column(frame: pd.DataFrame, column: str, source) -> pd.Series:
    """The target ``column`` of ``frame``: present and without missing values."""
    if column not in frame.columns:
        raise CLIError(
            f"{source}: no target column {column!r}; the columns are {names(list(frame.columns))}"
        )
    values = frame[column]
    if values.isna().any():
        raise CLIError(
            f"{source}: the target column {column!r} has {int(values.isna().sum())} missing "
            "value(s)"
        )
    return values


def class_labels(frame: pd.DataFrame, column: str, source, hint: str = "") -> np.ndarray:
    """The class labels in ``column``: present, complete, of one type and of 2+ classes.
    ``hint`` follows the message for a column of continuous values."""
    labels = target_column(frame, column, source)
    values = labels.to_numpy()
    try:
        n_classes = len(np.unique(values))
        kind = type_of_target(values)
    except (TypeError, ValueError) as error:  # values of several types that do not compare
        raise CLIError(f"{source}: the target column {column!r} mixes types ({error})") from None
    if n_classes < 2:
        raise CLIError(
            f"{source}: the target column {column!r} holds a single class ({labels.iloc[0]!r}); "
            "at least 2 are needed"
        )
    if kind not in ("binary", "multiclass"):
        raise CLIError(
            f"{source}: the target column {column!r} holds {kind} values, not class labels"
            + (hint if kind == "continuous" else "")
        )
    return values
