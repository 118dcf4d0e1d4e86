"""``sk-dml evaluate``: a table scored in the learned space, by what the model learned from.

Class labels get retrieval scores and cross-validated k-NN accuracies (:class:`ClassScores`), a
continuous target the R^2 of k-NN regression (:class:`TargetScores`): both read DATA's target
column and, with ``--reference``, REF's, embed both tables and score them in one way
(:func:`run_evaluate`). With ``--pairs``, any model gets the ROC AUC of labelled pairs of DATA's
rows (:func:`evaluate_pairs`).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

from ...distances import paired_distance
from ...metrics import retrieval_scores
from ...supervision import ContinuousTarget, neighbors_r2
from ..columns import class_labels, target_column
from ..errors import CLIError
from ..model import Model, check_target, pair_labels
from ..pairs import read_pairs
from ..tables import read_table
from .common import N_NEIGHBORS, key_of, print_scores, target_of

# Folds of evaluate's cross-validation.
N_FOLDS = 5
# The k of evaluate's recall@k.
RECALL_AT = 10
# What the baseline scores are computed on.
BASELINE = "the input features: numbers standardised, categories one-hot, text as TF-IDF (baseline)"


@dataclass
class Rows:
    """A table's rows as evaluate scores them: the file, what they learned from (``y``) and
    their embeddings (``Z``); their plain features (``X``, :meth:`Model.baseline`) are read
    when a score needs them."""

    model: Model
    frame: object
    source: str
    y: np.ndarray
    Z: np.ndarray

    @classmethod
    def read(cls, model: Model, source: str, scores) -> Rows:
        """The rows of the table ``source``, their targets read by ``scores``."""
        frame = read_table(source)
        return cls.of(model, frame, source, scores.targets(frame, source))

    @classmethod
    def of(cls, model: Model, frame, source: str, y: np.ndarray) -> Rows:
        return cls(model, frame, source, y, model.embed(frame, source))

    @functools.cached_property
    def X(self):
        return self.model.baseline(self.frame, self.source)


class Scores:
    """What a model is scored on, by what it learned from: the ``target`` column of DATA's
    (and REF's) rows, read by :meth:`targets` and checked by :meth:`check`; :meth:`evaluate`
    says what the tables hold and gives the scores."""

    def __init__(self, model: Model, target: str):
        self.model, self.target = model, target

    def targets(self, frame, source) -> np.ndarray:
        raise NotImplementedError

    def check(self, y: np.ndarray, source, reference) -> None:
        """Refuse DATA's targets ``y`` when there are too few rows to score (``reference``:
        REF's file, or None)."""

    def evaluate(self, data: Rows, ref: Rows | None) -> tuple[list[str], list]:
        """The lines that describe DATA (and REF), and the ``(name, value, note)`` scores."""
        raise NotImplementedError


class ClassScores(Scores):
    """Scores of a model of class labels: retrieval scores (leave-one-out in DATA, or DATA's
    rows against REF's) and cross-validated k-NN accuracies, learned and baseline."""

    def targets(self, frame, source) -> np.ndarray:
        return class_labels(frame, self.target, source)

    def check(self, labels: np.ndarray, source, reference) -> None:
        if reference is not None:  # a k-NN fitted on REF scores DATA: no folds
            return
        if len(labels) < 2 * N_FOLDS or np.unique(labels, return_counts=True)[1].max() < N_FOLDS:
            raise CLIError(
                f"{source}: {N_FOLDS}-fold cross-validation needs at least {2 * N_FOLDS} rows "
                f"and a class of {N_FOLDS} or more"
            )

    def evaluate(self, data: Rows, ref: Rows | None) -> tuple[list[str], list]:
        metric = self.model.estimator.embedding_metric_
        classes = len(np.unique(data.y))
        lines = [f"{data.source}: {len(data.y)} rows, {classes} classes in {self.target!r}"]
        if ref is None:
            retrieval = retrieval_scores(data.Z, data.y, metric=metric, recall_at=RECALL_AT)
            notes = [
                "each row queries all other rows (leave-one-out)",
                "same queries; R = the number of other rows of the query's class",
                "same queries and R",
                f"share of queries with a row of their class among their {RECALL_AT} nearest",
            ]
        else:
            known = set(ref.y.tolist())
            lone = sum(label not in known for label in data.y.tolist())
            if lone == len(data.y):
                raise CLIError(
                    f"{ref.source}: none of the classes of {data.source} in {self.target!r} "
                    "occurs in it; there is nothing to retrieve"
                )
            retrieval = retrieval_scores(
                data.Z,
                data.y,
                reference=ref.Z,
                reference_labels=ref.y,
                metric=metric,
                recall_at=RECALL_AT,
            )
            notes = [
                "queries: DATA, references: REF",
                "same queries; R = the number of REF rows of the query's class",
                "same queries and R",
                f"share of queries with a REF row of their class among their {RECALL_AT} nearest",
            ]
            absent = f"; {lone} DATA row(s) of a class absent from REF left out" if lone else ""
            lines.append(
                f"{ref.source}: {len(ref.y)} rows, {len(np.unique(ref.y))} classes{absent}"
            )
        accuracies = self._accuracies(data, ref, metric)
        titles = ["precision@1", "R-precision", "MAP@R", f"recall@{RECALL_AT}"]
        keys = ["precision@1", "r_precision", "map@r", f"recall@{RECALL_AT}"]
        scores = [
            (name, f"{retrieval[key]:.4f}", note)
            for name, key, note in zip(titles, keys, notes, strict=True)
        ]
        return lines, scores + accuracies

    @staticmethod
    def _accuracies(data: Rows, ref: Rows | None, metric: str) -> list:
        """k-NN accuracy on the embeddings and on the baseline's features: cross-validated
        within DATA, or with REF, a k-NN fitted on REF's rows predicting DATA's (those of a
        class REF has)."""
        learned_knn = KNeighborsClassifier(N_NEIGHBORS, metric=metric)
        plain_knn = KNeighborsClassifier(N_NEIGHBORS)
        if ref is None:
            folds = StratifiedKFold(N_FOLDS, shuffle=True, random_state=0)
            learned, plain = (
                cross_val_score(knn, Z, data.y, cv=folds, error_score="raise")
                for knn, Z in [(learned_knn, data.Z), (plain_knn, data.X)]
            )
            return [
                (f"{N_NEIGHBORS}-NN accuracy", f"{learned.mean():.4f} +/- {learned.std():.4f}",
                 f"{N_FOLDS}-fold stratified cross-validation (shuffled, seed 0) of DATA, on "
                 "the embeddings"),
                (f"{N_NEIGHBORS}-NN accuracy", f"{plain.mean():.4f} +/- {plain.std():.4f}",
                 f"same folds, on {BASELINE}"),
            ]  # fmt: skip
        k = min(N_NEIGHBORS, len(ref.y))
        known = np.isin(data.y, ref.y)
        learned_knn.set_params(n_neighbors=k).fit(ref.Z, ref.y)
        plain_knn.set_params(n_neighbors=k).fit(ref.X, ref.y)
        learned = learned_knn.score(data.Z[known], data.y[known])
        plain = plain_knn.score(data.X[known], data.y[known])
        return [
            (f"{N_NEIGHBORS}-NN accuracy", f"{learned:.4f}",
             f"{k}-NN fitted on REF's rows predicts DATA's, on the embeddings"),
            (f"{N_NEIGHBORS}-NN accuracy", f"{plain:.4f}", f"same, on {BASELINE}"),
        ]  # fmt: skip


class TargetScores(Scores):
    """Scores of a model of a continuous target: the R^2 of k-NN regression of the target
    column, leave-one-out in DATA (the estimator's ``score``) or DATA's rows from REF's, in
    the learned space and on the input features."""

    def targets(self, frame, source) -> np.ndarray:
        values = target_column(frame, self.target, source).to_numpy()
        return check_target(
            self.model.estimator, values, f"{source}: the target column {self.target!r}"
        )

    def check(self, y: np.ndarray, source, reference) -> None:
        if reference is None and len(y) <= N_NEIGHBORS:
            raise CLIError(
                f"{source}: leave-one-out {N_NEIGHBORS}-NN regression needs more than "
                f"{N_NEIGHBORS} rows; it has {len(y)}"
            )

    def evaluate(self, data: Rows, ref: Rows | None) -> tuple[list[str], list]:
        metric = self.model.estimator.embedding_metric_
        y = data.y
        lines = [
            f"{data.source}: {len(y)} rows, continuous target {self.target!r} (mean "
            f"{y.mean():.4g}, standard deviation {y.std():.4g})"
        ]
        if ref is None:
            learned = neighbors_r2(data.Z, y, n_neighbors=N_NEIGHBORS, metric=metric)
            plain = neighbors_r2(data.X, y, n_neighbors=N_NEIGHBORS)
            note = f"leave-one-out {N_NEIGHBORS}-NN regression of {self.target!r} in DATA"
        else:
            k = min(N_NEIGHBORS, len(ref.y))
            learned = KNeighborsRegressor(k, metric=metric).fit(ref.Z, ref.y).score(data.Z, y)
            plain = KNeighborsRegressor(k).fit(ref.X, ref.y).score(data.X, y)
            note = f"{k}-NN regression of {self.target!r}: DATA's rows from REF's"
            lines.append(f"{ref.source}: {len(ref.y)} rows")
        scores = [
            (f"{N_NEIGHBORS}-NN R^2", f"{learned:.4f}", f"{note}, on the embeddings"),
            (f"{N_NEIGHBORS}-NN R^2", f"{plain:.4f}", f"same, on {BASELINE}"),
        ]
        return lines, scores


def run_evaluate(args) -> None:
    """Score DATA in the learned space, by what the model learned from: for class labels,
    retrieval scores (leave-one-out in DATA, or DATA's rows against REF's) and cross-validated
    5-NN accuracies; for a continuous target, 5-NN regression R^2; with ``--pairs``, the ROC
    AUC of labelled pairs of DATA's rows."""
    model = Model.load(args.model)
    if args.pairs is not None:
        evaluate_pairs(args, model)
        return
    if args.key is not None or args.no_key:
        flag = "--key" if args.key is not None else "--no-key"
        raise CLIError(f"{flag} says how a pairs file names rows; it needs --pairs")
    frame = read_table(args.data)
    target = target_of(args, model, instead="--pairs FILE to score it on labelled pairs, or ")
    kind = TargetScores if model.supervision is ContinuousTarget else ClassScores
    scores = kind(model, target)
    y = scores.targets(frame, args.data)
    scores.check(y, args.data, args.reference)
    data = Rows.of(model, frame, args.data, y)
    ref = None if args.reference is None else Rows.read(model, args.reference, scores)
    lines, results = scores.evaluate(data, ref)
    warn_if_fitted_on(model, frame, args.data)  # once the input is known to be good
    print(f"model  {model.describe()}")
    for title, line in zip(("data", "ref"), lines, strict=False):
        print(f"{title:<6} {line}")
    print_scores(results)


def warn_if_fitted_on(model: Model, frame, source) -> None:
    """Warn when DATA holds rows the model was fitted on (by the fingerprint in its file):
    scores on them flatter it."""
    found = model.fitted_share(frame, source)
    if found is None or found[0] == 0:
        return
    share, n_rows = found
    if share == 1 and len(frame) == n_rows:
        what = "is the table the model was fitted on"
    else:
        what = (
            f"holds rows the model was fitted on (about {share:.0%} of its {n_rows} fitting rows)"
        )
    warnings.warn(
        f"{source} {what}: scores on rows it learned from flatter it; evaluate rows held out "
        "of fit (the fitting table may be the --reference of new rows)",
        UserWarning,
        stacklevel=2,
    )


def evaluate_pairs(args, model: Model) -> None:
    """ROC AUC of the labelled pairs of ``--pairs`` (rows of DATA): the embedding distance
    against the label, and the input features' as a baseline; a PairEmbedder's accuracy at its
    threshold too."""
    if args.target is not None or args.reference is not None:
        given = "--target" if args.target is not None else "--reference"
        raise CLIError(f"{given}: not with --pairs, whose labels are the pairs' own")
    frame = read_table(args.data)
    purpose = f" to find the rows of {args.pairs} by"
    key = key_of(args, model, frame, purpose=purpose, instead="takes row numbers")
    pairs, labels = read_pairs(args.pairs, frame, key, args.data)
    alike = pair_labels(labels, args.pairs)
    Z = model.embed(frame, args.data)
    metric = model.estimator.embedding_metric_
    distance = paired_distance(Z[pairs[:, 0]], Z[pairs[:, 1]], metric)
    X = model.baseline(frame, args.data)
    diff = X[pairs[:, 0]] - X[pairs[:, 1]]
    plain = np.sqrt(np.asarray(diff.multiply(diff).sum(axis=1)).ravel())
    scores = [
        ("ROC AUC", f"{roc_auc_score(alike, -distance):.4f}",
         f"alike pairs against the others, by the embedding distance ({metric})"),
        ("ROC AUC", f"{roc_auc_score(alike, -plain):.4f}",
         f"same pairs, by the euclidean distance of {BASELINE}"),
    ]  # fmt: skip
    threshold = getattr(model.estimator, "threshold_", None)
    if threshold is not None:  # a PairEmbedder's: alike when -distance >= threshold
        accuracy = np.mean((-distance >= threshold) == alike)
        rule = (
            "every pair not alike (the most accurate rule on the training pairs)"
            if threshold == np.inf
            else f"alike when their embedding distance is at most {-threshold:.4g}"
        )
        scores.append(
            ("accuracy", f"{accuracy:.4f}",
             f"of the model's threshold (threshold_, set at fit), which predicts {rule}")
        )  # fmt: skip
    named = f"by {key!r}" if key is not None else "by row number"
    print(f"model  {model.describe()}")
    print(f"data   {args.data}: {len(frame)} rows")
    print(
        f"pairs  {args.pairs}: {len(pairs)} pairs ({int(alike.sum())} alike) of its rows, "
        f"named {named}"
    )
    print_scores(scores)
