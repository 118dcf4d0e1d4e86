"""A model file as the commands use it: an embedder saved by :func:`sk_dml.save`, and what
``fit`` was told about (the target column or the pairs file, the key and excluded columns), kept
in the file's ``extra``.

The embedder holds its own encoding of the table (its ``schema_``), so any embedder fitted on a
table with named columns, by ``sk-dml fit`` or by Python on a pandas DataFrame, can be used.
Tables enter the embedder here, and the library's checks of a table (a column of the wrong
type, an infinite value, ...) are run first, as bad input: :func:`check_table` before a fit,
:meth:`sk_dml.tabular.TableSchema.check` before an embedding. So are its checks of what it
learns from: a continuous target (:func:`check_target`) and labelled pairs
(:func:`check_pairs`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from sklearn.utils.validation import column_or_1d

from ..persistence import load, read_metadata
from ..supervision import ContinuousTarget, learns_from, numeric_target
from ..supervision import pair_labels as checked_pair_labels
from ..tabular import learn_table_schema
from ..tuple_embedders import check_tuples
from .errors import CLIError, names, one_line

# What the ``extra`` of model files written by earlier versions of ``sk-dml fit`` held: their
# one-hot preprocessing, which this version no longer applies.
OLD_PREPROCESSING = "preprocessing"
# Rows of the fitting table whose hashes a model file keeps: the smallest distinct ones, a
# sample by which evaluate estimates how many of DATA's rows the model was fitted on.
FINGERPRINT_ROWS = 256
# How fit's message for a table its embedder refuses goes on: the options that change it.
FIT_HINT = (
    " (fit: --exclude COL leaves a column out, --categorical COL learns it as categories,"
    " --text COL reads it as text)"
)


@contextlib.contextmanager
def input_errors(source, hint: str = ""):
    """The library's ``ValueError`` inside the block as the user's input error, naming
    ``source`` (and followed by ``hint``)."""
    try:
        yield
    except ValueError as error:
        raise CLIError(f"{source}: {one_line(error)}{hint}") from error


def check_table(estimator, features: pd.DataFrame, source) -> None:
    """The checks the embedder's ``fit`` makes of the table ``features``
    (:func:`sk_dml.tabular.learn_table_schema`), their ``ValueError`` the user's input error."""
    with input_errors(source, FIT_HINT):
        learn_table_schema(features, estimator.get_params(deep=False))


def check_target(estimator, values: np.ndarray, source) -> np.ndarray:
    """The continuous target ``values`` as float64, checked as the embedder's ``fit`` checks
    them (numbers, finite, 3 or more, not constant); their ``ValueError`` is the user's."""
    with input_errors(source):
        target = numeric_target(column_or_1d(values))
        ContinuousTarget.from_y(np.empty((len(target), 0)), target, estimator)
    return target


def pair_labels(labels: pd.Series, source) -> np.ndarray:
    """Whether each pair is alike (True) under the ``labels`` column of the pairs file
    ``source``, checked as :class:`~sk_dml.PairEmbedder` checks them (1 and 0 or -1, or
    booleans; both kinds)."""
    with input_errors(f"{source}: the label column {labels.name!r}"):
        return checked_pair_labels(column_or_1d(labels.to_numpy()))[1]


def check_pairs(estimator, pairs: np.ndarray, labels: pd.Series, source) -> np.ndarray:
    """The checks a :class:`~sk_dml.PairEmbedder` with its table makes of the pairs and labels
    of the pairs file ``source`` that it is to fit (labels of both kinds, no pair of a row with
    itself, ...: :func:`sk_dml.tuple_embedders.check_tuples`), their ``ValueError`` the user's;
    returns whether each pair is alike."""
    alike = pair_labels(labels, source)
    with input_errors(source):
        check_tuples(estimator, pairs)
    return alike


def row_hashes(features: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each row's cells (pandas' ``hash_pandas_object``), its index left out."""
    return pd.util.hash_pandas_object(features, index=False).to_numpy()


def fingerprint(features: pd.DataFrame) -> dict:
    """What a model file keeps of its fitting table's feature columns: the number of rows and
    the smallest :data:`FINGERPRINT_ROWS` distinct row hashes (a bottom-k sample, as hex)."""
    sample = np.unique(row_hashes(features))[:FINGERPRINT_ROWS]
    return {"rows": len(features), "sample": [f"{h:016x}" for h in sample]}


@dataclass
class Model:
    """A model file: the embedder, the columns ``fit`` was given, and the pairs file it
    learned from (``pairs``; empty when it learned from a target column)."""

    path: Path
    estimator: object
    target: str = ""
    key: str | None = None
    excluded: list[str] = field(default_factory=list)
    pairs: str = ""
    fitted_on: dict | None = None  # the fitting table's fingerprint (fingerprint())

    @classmethod
    def load(cls, path) -> Model:
        """Read a model file; a file that is not one raises :class:`CLIError`."""
        path = Path(path)
        if not path.is_file():
            raise CLIError(f"{path}: no such model file")
        try:
            extra = read_metadata(path)["extra"]
            if isinstance(extra, dict) and OLD_PREPROCESSING in extra:
                raise CLIError(
                    f"{path}: written by an earlier sk-dml, which one-hot encoded the table "
                    "before the embedder; this version leaves the encoding to the embedder, so "
                    "refit the model with 'sk-dml fit'"
                )
            estimator = load(path)
        except (ValueError, OSError) as error:  # not a model file, damaged, ...: names the file
            raise CLIError(one_line(error)) from error
        except (TypeError, KeyError, RuntimeError) as error:
            raise CLIError(f"{path}: damaged model file ({one_line(error)})") from error
        if getattr(estimator, "feature_names_in_", None) is None:
            raise CLIError(
                f"{path}: the embedder was fitted without column names, so the columns of a "
                "table cannot be matched to its inputs; fit it with 'sk-dml fit' or on a pandas "
                "DataFrame"
            )
        extra = extra if isinstance(extra, dict) else {}
        key = extra.get("key")
        return cls(
            path,
            estimator,
            target=str(extra.get("target") or ""),
            key=key if isinstance(key, str) else None,
            excluded=[str(c) for c in extra.get("excluded") or []],
            pairs=str(extra.get("pairs") or ""),
            fitted_on=extra.get("fingerprint")
            if isinstance(extra.get("fingerprint"), dict)
            else None,
        )

    @property
    def supervision(self):
        """What the embedder learned from: a kind of :mod:`sk_dml.supervision`
        (:func:`~sk_dml.supervision.learns_from`)."""
        return learns_from(self.estimator)

    @property
    def columns(self) -> list[str]:
        """The feature columns, in the order of fit."""
        return [str(c) for c in self.estimator.feature_names_in_]

    def features(self, frame: pd.DataFrame, source) -> pd.DataFrame:
        """The model's feature columns of ``frame`` (others are ignored), checked as the
        embedder checks them; a numeric column read as text is read as numbers when it
        holds only numbers."""
        absent = [c for c in self.columns if c not in frame.columns]
        if absent:
            raise CLIError(f"{source}: missing column(s) {names(absent)} that the model needs")
        features = frame[self.columns].copy()
        schema = self.estimator.schema_
        for position in schema.numeric:
            name = self.columns[position]
            column = features[name]
            if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
                continue
            values = pd.to_numeric(column, errors="coerce")
            garbage = values.isna() & column.notna()
            if garbage.any():
                raise CLIError(
                    f"{source}: column {name!r} must be numeric (it was at fit) but holds "
                    f"{column[garbage].iloc[0]!r}"
                )
            features[name] = values.astype(np.float64)
        return features

    def encoded(self, frame: pd.DataFrame, source) -> np.ndarray:
        """The encoding of ``frame``'s feature columns (the network's input)."""
        features = self.features(frame, source)
        with input_errors(source):
            return self.estimator.schema_.encode_table(features)

    def embed(self, frame: pd.DataFrame, source) -> np.ndarray:
        """The embedding of ``frame``'s rows, the table checked first as the embedder checks
        it (:meth:`sk_dml.tabular.TableSchema.check`)."""
        features = self.features(frame, source)
        with input_errors(source):
            self.estimator.schema_.check(features)
        return self.estimator.transform(features)

    def baseline(self, frame: pd.DataFrame, source) -> sparse.csr_matrix:
        """``frame``'s rows as plain features, for a baseline: the numbers as the network's
        input layer presents them (standardised with the training rows' statistics, a missing
        value as the mean and, where fit saw some, a missing indicator), and each categorical
        column one-hot over its levels (missing, and rare or unseen, are levels too), and each
        text column's TF-IDF of hashed character n-grams (what the untrained network reads;
        a model of schema version 1, without document frequencies: their counts)."""
        encoded = self.encoded(frame, source)
        inputs = self.estimator.module_.inputs
        schema = self.estimator.schema_
        n_plain = len(schema.numeric) + len(schema.missing_indicators)  # the layer's first
        with torch.no_grad():
            x = torch.as_tensor(encoded, device=inputs.mean.device)
            numbers = inputs(x)[:, :n_plain].cpu().numpy()
        rows = np.arange(len(encoded))
        codes = encoded[:, schema.categorical_slice].astype(np.int64)
        one_hot = [
            sparse.csr_matrix(
                (np.ones(len(rows), np.float32), (rows, codes[:, j])),
                shape=(len(rows), size),
            )
            for j, size in enumerate(schema.table_sizes)
        ]
        features = self.features(frame, source) if schema.version >= 2 else None
        for j, columns in enumerate(schema.text_slices):
            if features is not None:
                one_hot.append(schema.text_tfidf(features.iloc[:, schema.text[j]], j))
                continue
            ids = encoded[:, columns].astype(np.int64)
            used = ids > 0
            one_hot.append(
                sparse.csr_matrix(
                    (np.ones(used.sum(), np.float32), (np.nonzero(used)[0], ids[used] - 1)),
                    shape=(len(rows), schema.text_n_buckets),
                )
            )
        return sparse.hstack([sparse.csr_matrix(numbers), *one_hot], format="csr")

    def fitted_share(self, frame: pd.DataFrame, source) -> tuple[float, int] | None:
        """How much of the fitting table ``frame`` holds, estimated from the model's
        fingerprint: the share of the fitting table's rows found in ``frame`` and the number of
        its rows; None when the model file has no fingerprint (an earlier sk-dml's, or a model
        fitted in Python)."""
        try:
            n_rows = int(self.fitted_on["rows"])
            sample = {int(h, 16) for h in self.fitted_on["sample"]}
        except (TypeError, KeyError, ValueError):
            return None
        if not sample:
            return None
        seen = set(row_hashes(self.features(frame, source)).tolist())
        return len(sample & seen) / len(sample), n_rows

    def describe(self) -> str:
        """One line: the file, the embedder, the embedding's size and metric."""
        est = self.estimator
        return (
            f"{self.path}: {type(est).__name__}, {len(est.get_feature_names_out())}-D "
            f"embedding, metric {est.embedding_metric_}"
        )
