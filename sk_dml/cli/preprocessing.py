"""From a table to the network's input: checked columns, and the fitted ColumnTransformer as data.

``fit`` standardises numeric columns and one-hot encodes categorical ones (text, bool,
category) with a scikit-learn ``ColumnTransformer``. The fitted transformer travels in the
model file as plain JSON data (no pickle) and is rebuilt when the model is used. The class
labels of a table are checked here too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.multiclass import type_of_target

from .errors import CLIError, names

# The category that stands for a missing value in a categorical column.
MISSING = "<missing>"
PREPROCESSING_FORMAT = "sk_dml.cli.preprocessing"  # stored in model files: never change it
PREPROCESSING_VERSION = 1


def split_columns(frame: pd.DataFrame, source) -> tuple[list[str], list[str]]:
    """Names of the numeric and of the categorical columns of ``frame``."""
    numeric, categorical = [], []
    for name, column in frame.items():
        dtype = column.dtype
        if (
            pd.api.types.is_bool_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype)
        ):
            categorical.append(name)
        elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
            numeric.append(name)
        else:
            raise CLIError(
                f"{source}: column {name!r} has type {dtype}; sk-dml encodes numeric and "
                "categorical (text, bool, category) columns only"
            )
    return numeric, categorical


def _as_text(column: pd.Series) -> np.ndarray:
    """Categorical values as strings, missing values as :data:`MISSING`: the encoder's input."""
    values = column.astype(object)
    return np.where(values.isna(), MISSING, values.map(str)).astype(object)


def prepare(frame: pd.DataFrame, columns: list[str], numeric: list[str], source) -> pd.DataFrame:
    """The input of the preprocessing: ``columns`` of ``frame`` in that order, the ``numeric``
    ones as finite float64 and the others as strings. Other columns of ``frame`` are ignored.
    """
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise CLIError(f"{source}: missing column(s) {names(absent)} that the model needs")
    numeric = set(numeric)
    prepared = {}
    for name in columns:
        column = frame[name]
        if name not in numeric:
            prepared[name] = _as_text(column)
            continue
        values = pd.to_numeric(column, errors="coerce").astype(np.float64)
        garbage = values.isna() & column.notna()
        if garbage.any():
            raise CLIError(
                f"{source}: column {name!r} must be numeric but holds {column[garbage].iloc[0]!r}"
            )
        if values.isna().any():
            raise CLIError(
                f"{source}: column {name!r} has {int(values.isna().sum())} missing value(s); "
                "fill or drop them first"
            )
        if not np.isfinite(values).all():
            raise CLIError(f"{source}: column {name!r} holds infinite values")
        prepared[name] = values
    return pd.DataFrame(prepared, index=frame.index)


def preprocess(transformer: ColumnTransformer, prepared: pd.DataFrame, source) -> np.ndarray:
    """``transformer.transform(prepared)``, refusing values that overflow float32 (the
    network's precision): numbers too large to standardise, or far outside the training range.
    """
    with np.errstate(all="ignore"):
        X = transformer.transform(prepared)
    overflow = ~(np.abs(X) <= np.finfo(np.float32).max)  # also true for inf and NaN
    if overflow.any():
        features = transformer.get_feature_names_out()[overflow.any(axis=0)]
        columns = sorted({name.split("__", 1)[1] for name in features})
        raise CLIError(
            f"{source}: column(s) {names(columns)} hold numbers too large for float32 once "
            "standardised"
        )
    return X


def class_labels(frame: pd.DataFrame, column: str, source) -> np.ndarray:
    """The class labels in ``column``: present, complete, of one type and of 2+ classes."""
    if column not in frame.columns:
        raise CLIError(
            f"{source}: no target column {column!r}; the columns are {names(list(frame.columns))}"
        )
    labels = frame[column]
    if labels.isna().any():
        raise CLIError(
            f"{source}: the target column {column!r} has {int(labels.isna().sum())} missing "
            "value(s)"
        )
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
        )
    return values


def column_transformer(numeric, categorical, categories="auto") -> ColumnTransformer:
    """StandardScaler on ``numeric``, OneHotEncoder on ``categorical``; dense output."""
    parts = []
    if numeric:
        parts.append(("num", StandardScaler(), list(numeric)))
    if categorical:
        encoder = OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False)
        parts.append(("cat", encoder, list(categorical)))
    return ColumnTransformer(parts, sparse_threshold=0.0)


def preprocessing_to_dict(transformer: ColumnTransformer) -> dict:
    """The fitted ``ColumnTransformer`` made by ``fit`` as JSON-serialisable data.

    Returns
    -------
    dict
        ``columns`` (the input columns in order), ``numeric`` (columns, ``mean_``, ``var_``,
        ``scale_``, ``n_samples_seen_`` of the scaler) and ``categorical`` (columns and the
        encoder's ``categories_``). :func:`preprocessing_from_dict` rebuilds the transformer.
    """
    fitted = transformer.named_transformers_
    numeric = {"columns": [], "mean": [], "var": [], "scale": [], "n_samples_seen": 0}
    if "num" in fitted:
        scaler = fitted["num"]
        numeric = {
            "columns": [str(c) for c in scaler.feature_names_in_],
            "mean": scaler.mean_.tolist(),
            "var": scaler.var_.tolist(),
            "scale": scaler.scale_.tolist(),
            "n_samples_seen": int(scaler.n_samples_seen_),
        }
    categorical = {"columns": [], "categories": []}
    if "cat" in fitted:
        encoder = fitted["cat"]
        categorical = {
            "columns": [str(c) for c in encoder.feature_names_in_],
            "categories": [[str(v) for v in cats] for cats in encoder.categories_],
        }
    return {
        "format": PREPROCESSING_FORMAT,
        "version": PREPROCESSING_VERSION,
        "columns": [str(c) for c in transformer.feature_names_in_],
        "numeric": numeric,
        "categorical": categorical,
    }


def preprocessing_from_dict(data: dict) -> ColumnTransformer:
    """Rebuild the fitted ``ColumnTransformer`` described by :func:`preprocessing_to_dict`.

    The encoder is fitted with its stored categories, and the scaler gets its stored
    statistics: the result transforms exactly like the original.
    """
    if data.get("format") != PREPROCESSING_FORMAT or data.get("version") != PREPROCESSING_VERSION:
        raise ValueError("unknown preprocessing format")
    numeric, categorical = data["numeric"], data["categorical"]
    categories = [np.asarray(cats, dtype=object) for cats in categorical["categories"]]
    transformer = column_transformer(numeric["columns"], categorical["columns"], categories)
    one_row = {name: [0.0] for name in numeric["columns"]}
    one_row.update(
        {name: [cats[0]] for name, cats in zip(categorical["columns"], categories, strict=True)}
    )
    transformer.fit(pd.DataFrame(one_row)[data["columns"]])
    if numeric["columns"]:
        scaler = transformer.named_transformers_["num"]
        scaler.mean_ = np.asarray(numeric["mean"], dtype=np.float64)
        scaler.var_ = np.asarray(numeric["var"], dtype=np.float64)
        scaler.scale_ = np.asarray(numeric["scale"], dtype=np.float64)
        scaler.n_samples_seen_ = int(numeric["n_samples_seen"])
    return transformer
