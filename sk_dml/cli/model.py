"""A model file as the commands use it: an embedder saved by :func:`sk_dml.save`, and what
``fit`` was told about (the target column or the pairs file, the key and excluded columns), kept
in the file's ``extra``.

The embedder holds its own encoding of the table (its ``schema_``), so any embedder fitted on a
table with named columns, by ``sk-dml fit`` or by Python on a pandas DataFrame, can be used.
Tables enter the embedder here, and the estimator's own checks of a table (a column of the
wrong type, an infinite value, ...) are run first, as bad input: :func:`encode`. So are its
checks of what it learns from: a continuous target (:func:`check_target`) and labelled pairs
(:func:`check_pairs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from sklearn.utils.validation import column_or_1d

from .._inference import embed
from ..persistence import load, read_metadata
from ..supervision import ContinuousTarget, numeric_target
from ..supervision import pair_labels as checked_pair_labels
from ..tuple_embedders import PairEmbedder, TripletConstraintEmbedder
from .errors import CLIError, names, one_line

# What the ``extra`` of model files written by earlier versions of ``sk-dml fit`` held: their
# one-hot preprocessing, which this version no longer applies.
OLD_PREPROCESSING = "preprocessing"


def encode(estimator, features: pd.DataFrame, source, *, fitting: bool) -> np.ndarray:
    """``features`` encoded as the embedder's ``fit`` (``fitting``) or ``transform`` would:
    the estimator's checks of a table, and their ``ValueError``, are the user's input errors.
    """
    try:
        return estimator._encode(features, reset=fitting)[0]
    except ValueError as error:
        hint = (
            " (fit: --exclude COL leaves a column out, --categorical COL learns it as categories,"
            " --text COL reads it as text)"
            if fitting
            else ""
        )
        raise CLIError(f"{source}: {one_line(error)}{hint}") from error


def check_target(estimator, values: np.ndarray, source) -> np.ndarray:
    """The continuous target ``values`` as float64, checked as the embedder's ``fit`` checks
    them (numbers, finite, 3 or more, not constant); their ``ValueError`` is the user's."""
    try:
        target = numeric_target(column_or_1d(values))
        ContinuousTarget.from_y(np.empty((len(target), 0)), target, estimator)
    except ValueError as error:
        raise CLIError(f"{source}: {one_line(error)}") from error
    return target


def pair_labels(labels: pd.Series, source) -> np.ndarray:
    """Whether each pair is alike (True) under the ``labels`` column of the pairs file
    ``source``, checked as :class:`~sk_dml.PairEmbedder` checks them (1 and 0 or -1, or
    booleans; both kinds)."""
    try:
        return checked_pair_labels(column_or_1d(labels.to_numpy()))[1]
    except ValueError as error:
        raise CLIError(f"{source}: the label column {labels.name!r}: {one_line(error)}") from error


def check_pairs(estimator, pairs: np.ndarray, labels: pd.Series, source) -> np.ndarray:
    """The checks a :class:`~sk_dml.PairEmbedder` with its table makes of the pairs and labels
    of the pairs file ``source`` that it is to fit (labels of both kinds, no pair of a row with
    itself, ...), their ``ValueError`` the user's; returns whether each pair is alike."""
    alike = pair_labels(labels, source)
    try:
        estimator._check_tuples(pairs, fitting=True)
    except ValueError as error:
        raise CLIError(f"{source}: {one_line(error)}") from error
    return alike


# What a model learned from, as the commands say it (the kinds of sk_dml.supervision).
SUPERVISION_WORDS = {
    "classes": "class labels",
    "target": "a continuous target",
    "pairs": "labelled pairs",
    "triplets": "triplet constraints",
}


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
        )

    @property
    def supervision(self) -> str:
        """What the embedder learned from: "classes", "target" (a continuous target), "pairs"
        or "triplets" (:attr:`sk_dml.criteria.Loss.supervisions`)."""
        if isinstance(self.estimator, PairEmbedder):
            return "pairs"
        if isinstance(self.estimator, TripletConstraintEmbedder):
            return "triplets"
        kinds = self.estimator._get_loss().supervisions
        return "classes" if "classes" in kinds else kinds[0]

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
        return encode(self.estimator, self.features(frame, source), source, fitting=False)

    def embed(self, frame: pd.DataFrame, source) -> np.ndarray:
        """The embedding of ``frame``'s rows (the table is encoded once, and checked as it
        is)."""
        return embed(self.estimator.module_, self.encoded(frame, source))

    def baseline(self, frame: pd.DataFrame, source) -> sparse.csr_matrix:
        """``frame``'s rows as plain features, for a baseline: the numbers as the network's
        input layer presents them (standardised with the training rows' statistics, a missing
        value as the mean and, where fit saw some, a missing indicator), and each categorical
        column one-hot over its levels (missing, and rare or unseen, are levels too), and each
        text column's counts of hashed character n-grams."""
        encoded = self.encoded(frame, source)
        inputs = self.estimator.module_.inputs
        schema = self.estimator.schema_
        n_plain = len(schema.numeric) + len(schema.missing_indicators)
        with torch.no_grad():
            x = torch.as_tensor(encoded, device=inputs.mean.device)
            numbers = inputs(x)[:, :n_plain].cpu().numpy()
        rows = np.arange(len(encoded))
        codes = encoded[:, len(schema.numeric) :].astype(np.int64)
        one_hot = [
            sparse.csr_matrix(
                (np.ones(len(rows), np.float32), (rows, codes[:, j])),
                shape=(len(rows), size),
            )
            for j, size in enumerate(schema.table_sizes)
        ]
        start = len(schema.numeric) + len(schema.categorical)
        for width in schema.max_ngrams:
            ids = encoded[:, start : start + width].astype(np.int64)
            start += width
            used = ids > 0
            one_hot.append(
                sparse.csr_matrix(
                    (np.ones(used.sum(), np.float32), (np.nonzero(used)[0], ids[used] - 1)),
                    shape=(len(rows), schema.text_n_buckets),
                )
            )
        return sparse.hstack([sparse.csr_matrix(numbers), *one_hot], format="csr")

    def describe(self) -> str:
        """One line: the file, the embedder, the embedding's size and metric."""
        est = self.estimator
        return (
            f"{self.path}: {type(est).__name__}, {len(est.get_feature_names_out())}-D "
            f"embedding, metric {est.embedding_metric_}"
        )
