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

The embedders (:mod:`sk_dml.embedders`) check the user's input and build one of these; the
trainer (:mod:`sk_dml._training`) never sees which kind it is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors

from .distances import paired_distance
from .metrics import mean_average_precision_at_r, precision_at_k

__all__ = [
    "ClassLabels",
    "ContinuousTarget",
    "LabelledPairs",
    "Supervision",
    "TripletConstraints",
    "neighbors_r2",
]


@dataclass
class Supervision:
    """Base of the kinds of supervision; ``kind`` names it in :attr:`Loss.supervisions`."""

    kind: ClassVar[str]
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
    labels: np.ndarray = None
    held_out_classes: bool = False

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
    samples_per_class: int = 4

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

    @property
    def items(self) -> np.ndarray:
        return self.tuples

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
    in_batch: bool = False

    @property
    def loss_kind(self) -> str:
        return "classes" if self.in_batch else "pairs"

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


@dataclass
class TripletConstraints(_Tuples):
    """Triplets (anchor, positive, negative) of rows: the anchor is nearer the positive."""

    kind = "triplets"

    def split(self, fraction, by, rng):
        return self._split_tuples(fraction, by, rng, stratify=None)

    def score_function(self, metric):
        def satisfied(embeddings, _):
            a, p, n = embeddings.reshape(-1, 3, embeddings.shape[1]).transpose(1, 0, 2)
            return float(np.mean(paired_distance(a, p, metric) < paired_distance(a, n, metric)))

        return satisfied
