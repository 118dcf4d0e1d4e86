"""What a fit learns from, ready for the trainer: class labels, a continuous target, labelled
pairs of rows or triplet constraints.

Each kind holds the encoded table (``rows``, float32, one row per table row) and says

- what a batch indexes (``items``): the rows themselves, or tuples of row indices;
- what the loss receives for each item (``targets``): a class code, a target value or a pair
  label (:meth:`Supervision.targets_for` maps class codes onto a proxy loss's proxies);
- how items are grouped into batches (``groups``): rows of one class, rows of neighbouring
  target values, or no groups (random batches of tuples);
- how to hold out a validation part (:meth:`Supervision.split`) and score it after each
  epoch for early stopping (:meth:`Supervision.score_function`).

Each kind also checks what the user gave for it (:meth:`ClassLabels.from_y`, ...), says
which losses learn from it (:meth:`Supervision.check_loss`), builds the loss module and the
objective the trainer minimises, and names itself in messages (``words``). The embedders ask
it; nothing outside this module compares kinds, and the trainer (:mod:`sk_dml._training`)
never sees which kind it is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, column_or_1d

from ._objectives import InBatchPairCriterion, Objective, TupleCriterion, TupleObjective
from .criteria import loss_names
from .distances import paired_distance
from .metrics import mean_average_precision_at_r, precision_at_k

__all__ = [
    "ClassLabels",
    "ContinuousTarget",
    "LabelledPairs",
    "Supervision",
    "TripletConstraints",
    "labels_kind",
    "learns_from",
    "neighbors_r2",
    "numeric_target",
    "pair_labels",
]


@dataclass
class Supervision:
    """Base of the kinds of supervision; ``kind`` names it in :attr:`Loss.supervisions`,
    ``words`` in messages."""

    kind: ClassVar[str]
    words: ClassVar[str]
    rows: np.ndarray
    targets: np.ndarray

    @property
    def items(self) -> np.ndarray:
        """What a batch indexes: the rows, unless tuples of row indices."""
        return self.rows

    @property
    def classes(self) -> np.ndarray | None:
        """The sorted class labels a proxy loss learns one proxy for (None: no classes)."""
        return None

    @property
    def loss_kind(self) -> str:
        """The kind of supervision the loss must learn from (:attr:`Loss.supervisions`)."""
        return self.kind

    @property
    def training_kind(self) -> str:
        """What a trainer was built for: the kind, and the kind its loss learns from."""
        return f"{self.kind}:{self.loss_kind}"

    def check_loss(self, loss) -> None:
        """A ValueError naming the losses that learn from this, unless ``loss`` does."""
        if self.loss_kind in loss.supervisions:
            return
        what = self.words
        if self.loss_kind != self.kind:
            what += f" read as {KINDS[self.loss_kind].words} (negatives='in_batch')"
        raise ValueError(
            f"The {loss.name} loss does not learn from {what}; losses that do: "
            f"{', '.join(loss_names(self.loss_kind))}."
        )

    def criterion(self, loss, width: int):
        """The module of ``loss`` that a fresh fit minimises (new parameters, if it has any),
        for embeddings ``width`` wide."""
        return loss.build(self.classes, width, self.loss_kind)

    def objective(self, module, criterion) -> Objective:
        """What the trainer minimises: ``criterion`` of ``module``'s embeddings of a batch."""
        return Objective(module, criterion)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The data this supervision is made of (for checkpoints' fingerprints)."""
        if self.items is self.rows:
            return self.rows, self.targets
        return self.rows, self.items, self.targets

    def groups(self) -> np.ndarray | None:
        """Each item's batch group (rows of one group travel together); None: random batches."""
        return None

    def targets_for(self, criterion) -> np.ndarray:
        """What the built loss ``criterion`` receives for each item."""
        return self.targets

    def split(self, fraction: float, by: str, rng) -> tuple[Supervision, np.ndarray, np.ndarray]:
        """Hold out ``fraction`` of the items: the training part, then the rows to embed for
        validation and what :meth:`score_function` scores their embeddings against."""
        raise NotImplementedError

    def score_function(self, metric: str) -> Callable[[np.ndarray, np.ndarray], float]:
        """``score(embeddings of the validation rows, validation targets)``, higher better."""
        raise NotImplementedError


def _refuse_class_split(by: str, kind: str) -> None:
    if by == "classes":
        raise ValueError(
            f"validation_split='classes' holds out whole classes, but this fit learns from "
            f"{kind}; use validation_split='rows'."
        )


# ---------------------------------------------------------------------------- class labels


@dataclass
class ClassLabels(Supervision):
    """Class labels: ``targets`` are codes into the sorted ``labels``."""

    kind = "classes"
    words = "class labels"
    labels: np.ndarray = None
    held_out_classes: bool = False
    #: fit's ``y`` holds numbers only for a continuous target.
    numeric_y: ClassVar[bool] = False

    @classmethod
    def from_y(cls, rows: np.ndarray, y: np.ndarray, estimator) -> ClassLabels:
        """The class labels ``y`` of the encoded ``rows``, checked (scikit-learn's wording),
        and checked against ``estimator``'s batches (``batch_size``, ``samples_per_class``)."""
        name = type(estimator).__name__
        _check_class_labels(y, name)
        classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
        if len(classes) < 2:
            raise ValueError(f"{name} needs samples of at least 2 classes in y; got 1 class.")
        if counts.max() < 2:
            raise ValueError(
                "Every class in y has a single sample, so no positive pair exists; metric "
                "learning needs at least one class with 2 or more samples."
            )
        size, group = estimator.batch_size, estimator.samples_per_class
        if size % group or size < 2 * group:
            raise ValueError(
                f"batch_size={size} must be a multiple of samples_per_class={group} and hold "
                f"at least two classes' groups (>= {2 * group}), so that batches contain "
                "negatives."
            )
        if group > counts.max():
            raise ValueError(
                f"samples_per_class={group} is larger than every class (the largest has "
                f"{counts.max()} samples)."
            )
        return cls(rows, codes.ravel(), labels=classes)

    @staticmethod
    def score(embeddings: np.ndarray, y, metric: str) -> float:
        """Leave-one-out precision@1 of the labels ``y`` among ``embeddings``."""
        return precision_at_k(embeddings, np.asarray(y), k=1, metric=metric)

    @property
    def classes(self) -> np.ndarray:
        return self.labels

    def groups(self) -> np.ndarray:
        return self.targets

    def targets_for(self, criterion) -> np.ndarray:
        return criterion.codes_for(self.labels)[self.targets]

    def split(self, fraction, by, rng):
        codes = self.targets
        if by == "classes":
            train, val = _split_classes(codes, fraction, rng)
        else:
            counts = np.bincount(codes)
            stratify = codes if counts.min() >= 2 else None
            train, val = train_test_split(
                np.arange(len(codes)), test_size=fraction, stratify=stratify, random_state=rng
            )
            if np.bincount(codes[val]).max() < 2:
                raise ValueError(
                    f"validation_fraction={fraction} leaves no class with 2 samples in the "
                    "validation set; raise it or set early_stopping=False."
                )
        seen = np.unique(codes[train])  # the classes left for training
        part = replace(
            self,
            rows=self.rows[train],
            targets=np.searchsorted(seen, codes[train]),
            labels=self.labels[seen],
            held_out_classes=by == "classes",
        )
        return part, self.rows[val], codes[val]

    def score_function(self, metric):
        score = mean_average_precision_at_r if self.held_out_classes else precision_at_k
        return functools.partial(score, metric=metric)


def check_no_missing_labels(y) -> None:
    """Refuse a missing class label (NaN, None, pd.NA) in ``y`` by name, before scikit-learn's
    checks, which cannot sort it among strings or test pd.NA."""
    missing = np.flatnonzero(pd.isna(np.asarray(y, dtype=object)))
    if missing.size:
        raise ValueError(
            f"Input y contains NaN: {missing.size} missing class label(s), the first in row "
            f"{missing[0]}; drop those rows or give them a class."
        )


def _check_class_labels(y, estimator: str) -> None:
    """scikit-learn's check that ``y`` holds class labels, pointing a continuous target to
    the losses that learn from one."""
    try:
        check_classification_targets(y)
    except ValueError as error:
        if type_of_target(y) != "continuous":
            raise
        raise ValueError(
            f"{error} {estimator} learns from class labels; for a continuous target use a loss "
            f"that learns from one ({', '.join(loss_names(ContinuousTarget.kind))}): "
            "LogRatioEmbedder, or MetricEmbedder(loss=LogRatioLoss())."
        ) from None


def _split_classes(codes: np.ndarray, fraction: float, rng):
    """Hold out ``fraction`` of the classes of 2+ rows (at least 2 of them), all their rows."""
    counts = np.bincount(codes)
    candidates = np.flatnonzero(counts >= 2)
    n_held = max(2, int(round(fraction * len(counts))))
    if len(candidates) < n_held + 2:
        raise ValueError(
            f"validation_split='classes' holds out {n_held} classes of 2 or more samples and "
            f"trains on at least 2 others, but y has {len(candidates)} such classes; use "
            "validation_split='rows' or set early_stopping=False."
        )
    held = np.isin(codes, rng.choice(candidates, n_held, replace=False))
    return np.flatnonzero(~held), np.flatnonzero(held)


# ------------------------------------------------------------------------ continuous target
@dataclass
class ContinuousTarget(Supervision):
    """A continuous target, standardised (``targets``, float32). Batches hold groups of rows
    with neighbouring targets: each group comes from one of ``n_rows / (2 K)`` equal-count
    bins of the target (K = ``samples_per_class``), so a batch holds near and far pairs."""

    kind = "target"
    words = "a continuous target"
    numeric_y: ClassVar[bool] = True
    samples_per_class: int = 4

    @classmethod
    def from_y(cls, rows: np.ndarray, y: np.ndarray, estimator) -> ContinuousTarget:
        """The target ``y`` (finite numbers) of the encoded ``rows``, standardised, and checked
        against ``estimator``'s batches."""
        name, group = type(estimator).__name__, estimator.samples_per_class
        if group > estimator.batch_size:
            raise ValueError(
                f"samples_per_class={group} rows of neighbouring targets travel together, so "
                f"batch_size={estimator.batch_size} must be at least as large."
            )
        y = np.asarray(y, dtype=np.float64)
        if len(y) < 3:
            raise ValueError(
                f"{name} compares each row with two others, so it needs at least 3 samples; "
                f"got {len(y)} sample(s)."
            )
        scale = y.std()
        if not scale > 0:
            raise ValueError(
                f"y is constant (every target is {y[0]:g}); {name} learns which rows have "
                "close targets, so it needs a target that varies."
            )
        return cls(rows, ((y - y.mean()) / scale).astype(np.float32), group)

    @staticmethod
    def score(embeddings: np.ndarray, y, metric: str) -> float:
        """R^2 of leave-one-out 5-nearest-neighbour regression of ``y`` in ``embeddings``."""
        return neighbors_r2(embeddings, numeric_target(column_or_1d(y)), metric=metric)

    def groups(self) -> np.ndarray:
        n = len(self.targets)
        n_bins = int(np.clip(n // (2 * self.samples_per_class), 2, n))
        ranks = np.empty(n, dtype=np.int64)
        ranks[np.argsort(self.targets, kind="stable")] = np.arange(n)
        return ranks * n_bins // n

    def split(self, fraction, by, rng):
        _refuse_class_split(by, "a continuous target")
        train, val = train_test_split(
            np.arange(len(self.rows)), test_size=fraction, random_state=rng
        )
        if len(val) < 2:
            raise ValueError(
                f"validation_fraction={fraction} holds out {len(val)} row; raise it or set "
                "early_stopping=False."
            )
        part = replace(self, rows=self.rows[train], targets=self.targets[train])
        return part, self.rows[val], self.targets[val]

    def score_function(self, metric):
        return functools.partial(neighbors_r2, metric=metric)


def numeric_target(y) -> np.ndarray:
    """``y`` as finite float64 numbers, with scikit-learn's errors for anything else."""
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"A continuous target must be numeric; y holds {type_of_target(y)!r} labels "
                f"such as {y[0]!r}."
            ) from None
    return check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")


def labels_kind(loss) -> type[ClassLabels] | type[ContinuousTarget]:
    """What ``y`` of ``fit(X, y)`` is for ``loss``: a continuous target if it learns from one,
    else class labels."""
    return ContinuousTarget if ContinuousTarget.kind in loss.supervisions else ClassLabels


def neighbors_r2(X, y, *, n_neighbors: int = 5, metric: str = "euclidean") -> float:
    """R^2 of leave-one-out k-nearest-neighbour regression: each row's target predicted by
    the mean target of its ``n_neighbors`` nearest other rows of ``X``."""
    y = np.asarray(y, dtype=np.float64)
    k = min(n_neighbors, len(y) - 1)
    neighbors = NearestNeighbors(n_neighbors=k, metric=metric).fit(X)
    index = neighbors.kneighbors(return_distance=False)  # the query row itself excluded
    return float(r2_score(y, y[index].mean(axis=1)))


# ---------------------------------------------------------------------------------- tuples
@dataclass
class _Tuples(Supervision):
    """Tuples of row indices (``tuples``, int64 of shape (n, t)) into ``rows``."""

    tuples: np.ndarray = None
    #: Whether the tuple loss takes each tuple's label (pairs) or not (triplets).
    labelled: ClassVar[bool] = False

    @property
    def items(self) -> np.ndarray:
        return self.tuples

    def criterion(self, loss, width):
        """The loss's tuple function with its parameters, given each tuple's rows (and
        label, for labelled pairs)."""
        return TupleCriterion(loss.bound_function(self.kind), labelled=self.labelled)

    def objective(self, module, criterion) -> TupleObjective:
        return TupleObjective(module, criterion)

    def _split_tuples(self, fraction, by, rng, stratify):
        _refuse_class_split(by, f"{self.kind}")
        train, val = train_test_split(
            np.arange(len(self.tuples)), test_size=fraction, stratify=stratify, random_state=rng
        )
        part = replace(self, tuples=self.tuples[train], targets=self.targets[train])
        return part, self.rows[self.tuples[val].ravel()], self.targets[val]


@dataclass
class LabelledPairs(_Tuples):
    """Pairs of rows, ``targets`` 1 where the two are alike, 0 where they are not.

    With ``in_batch``, alike is read as an equivalence: the connected components of the alike
    pairs are the entities, and the loss is a class loss on the rows of a batch labelled by
    their entity, so every two rows of different entities in a batch count as not alike
    (in-batch negatives). Otherwise the loss sees the labelled pairs only.
    """

    kind = "pairs"
    words = "labelled pairs"
    labelled = True
    in_batch: bool = False

    @property
    def loss_kind(self) -> str:
        return ClassLabels.kind if self.in_batch else self.kind

    def criterion(self, loss, width):
        if self.in_batch:
            return InBatchPairCriterion(loss.build(None, width, self.loss_kind).function)
        return super().criterion(loss, width)

    def targets_for(self, criterion) -> np.ndarray:
        """The labels; with ``in_batch``, (label, entity of the first row, of the second)."""
        if not self.in_batch:
            return self.targets
        n_rows = len(self.rows)
        alike = self.tuples[self.targets == 1]
        graph = coo_matrix((np.ones(len(alike)), (alike[:, 0], alike[:, 1])), (n_rows, n_rows))
        _, entity = connected_components(graph, directed=False)
        return np.column_stack([self.targets, entity[self.tuples]]).astype(np.int64)

    def split(self, fraction, by, rng):
        counts = np.bincount(self.targets, minlength=2)
        if counts.min() < 2:
            raise ValueError(
                "early_stopping holds out pairs of both kinds, but y has fewer than 2 pairs of "
                "one kind; set early_stopping=False."
            )
        part, rows, labels = self._split_tuples(fraction, by, rng, stratify=self.targets)
        if len(np.unique(labels)) < 2 or len(np.unique(part.targets)) < 2:
            raise ValueError(
                f"validation_fraction={fraction} leaves pairs of a single kind in the training "
                "or validation pairs; change it or set early_stopping=False."
            )
        return part, rows, labels

    def score_function(self, metric):
        def pairs_roc_auc(embeddings, labels):
            pairs = embeddings.reshape(len(labels), 2, -1)
            return float(roc_auc_score(labels, -paired_distance(pairs[:, 0], pairs[:, 1], metric)))

        return pairs_roc_auc


def pair_labels(y: np.ndarray, known: np.ndarray | None = None):
    """The two pair labels (sorted) and whether each pair is alike (the larger label)."""
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise ValueError(
            f"Pair labels must be 1 (alike) and 0 or -1 (not alike), or booleans; got {y.dtype} "
            f"labels such as {y[0]!r}."
        )
    y = check_array(y, ensure_2d=False, dtype=None, input_name="y")
    classes = np.unique(y)
    if known is not None:
        unknown = classes[~np.isin(classes, known)]
        if len(unknown):
            raise ValueError(f"y has pair labels {unknown.tolist()} not seen at fit ({known}).")
        return known, y == known[1]
    if not set(classes.tolist()) <= {-1, 0, 1}:
        raise ValueError(
            f"Pair labels must be 1 (alike) and 0 or -1 (not alike), or booleans; got "
            f"{classes.tolist()}."
        )
    if len(classes) != 2:
        raise ValueError(
            f"y holds one kind of pair label only ({classes.tolist()}); training needs both "
            "alike and not-alike pairs."
        )
    return classes, y == classes[1]


@dataclass
class TripletConstraints(_Tuples):
    """Triplets (anchor, positive, negative) of rows: the anchor is nearer the positive."""

    kind = "triplets"
    words = "triplet constraints"

    def split(self, fraction, by, rng):
        return self._split_tuples(fraction, by, rng, stratify=None)

    def score_function(self, metric):
        def satisfied(embeddings, _):
            a, p, n = embeddings.reshape(-1, 3, embeddings.shape[1]).transpose(1, 0, 2)
            return float(np.mean(paired_distance(a, p, metric) < paired_distance(a, n, metric)))

        return satisfied


#: Every kind of supervision by its ``kind``.
KINDS: dict[str, type[Supervision]] = {
    kind.kind: kind for kind in (ClassLabels, ContinuousTarget, LabelledPairs, TripletConstraints)
}


def learns_from(estimator) -> type[Supervision]:
    """What the embedder ``estimator`` (fitted or not) learns from, as its kind of supervision
    (one of :data:`KINDS`' values): a :class:`~sk_dml.PairEmbedder` labelled pairs, a
    :class:`~sk_dml.TripletConstraintEmbedder` triplet constraints, any other embedder what
    the ``y`` of its ``fit`` is for its loss (:func:`labels_kind`). Its ``words`` say it in
    messages."""
    tuples = getattr(type(estimator), "_supervision", None)  # the tuple embedders' own
    return tuples if tuples is not None else labels_kind(estimator._get_loss())
