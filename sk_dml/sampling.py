"""Class-balanced batches that still cover every sample exactly once per epoch.

Metric losses need positives in every batch, so a batch is made of groups of
``samples_per_class`` (K) rows of one class. Unlike pytorch-metric-learning's
``MPerClassSampler``, which draws K rows per class with replacement and skips others, an epoch
here is a partition of the data set:

1. each class is shuffled and cut into groups of K rows, the remainder spread over them (so a
   group holds K to 2K-1 rows, every class in a batch brings at least K rows, and no row is
   dropped or repeated);
2. a class with fewer than K rows forms one group padded by repeating its rows (warned once);
3. the groups of each class are spread evenly over the epoch (stratified random positions), so
   consecutive groups mostly come from different classes;
4. consecutive groups are packed into a batch until it holds at least ``batch_size`` rows, so
   every batch but the last holds ``batch_size`` to ``batch_size + 2K - 2`` rows; the last holds
   what remains, and joins the batch before it if it holds a single class (no negatives).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["ClassBalancedBatchSampler", "ShuffledBatchSampler"]


class ClassBalancedBatchSampler:
    """Iterate over one epoch of class-balanced batches of row indices.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
    batch_size : int
        Rows per batch: a batch holds whole groups, so it has ``batch_size`` to
        ``batch_size + 2 * samples_per_class - 2`` rows (the last of an epoch may have fewer).
    samples_per_class : int
        Rows of the same class that travel together (K).
    random_state : int, RandomState instance or None
        Each ``iter()`` is a new epoch drawn from this generator: reproducible from a seed.

    Examples
    --------
    >>> sampler = ClassBalancedBatchSampler(y, batch_size=256, samples_per_class=4, random_state=0)
    >>> for batch in sampler:            # one epoch; batch is an int64 array of row indices
    ...     loss = loss_fn(model(X[batch]), y[batch])
    """

    def __init__(self, labels, batch_size: int, samples_per_class: int, random_state=None):
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) == 0:
            raise ValueError("labels must be a non-empty 1-D array.")
        if samples_per_class < 1 or batch_size < samples_per_class:
            raise ValueError(
                f"Need 1 <= samples_per_class <= batch_size, got samples_per_class="
                f"{samples_per_class} and batch_size={batch_size}."
            )
        self.batch_size = int(batch_size)
        self.samples_per_class = int(samples_per_class)
        self._rng = check_random_state(random_state)
        _, codes = np.unique(labels, return_inverse=True)
        self._codes = codes.ravel()
        # Row indices of each class, computed once and reused every epoch.
        self._class_rows = [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]
        small = [len(rows) for rows in self._class_rows if len(rows) < self.samples_per_class]
        if small:
            warnings.warn(
                f"{len(small)} class(es) have fewer than samples_per_class="
                f"{self.samples_per_class} rows (smallest: {min(small)}); their rows are "
                "repeated inside a batch to fill a group.",
                UserWarning,
                stacklevel=2,
            )

    def _groups(self, rows: np.ndarray) -> list[np.ndarray]:
        """Cut one class's rows (shuffled) into groups of K to 2K-1 rows, or pad a tiny class."""
        rows = self._rng.permutation(rows)
        k = self.samples_per_class
        if len(rows) < k:
            return [np.concatenate([rows, self._rng.choice(rows, k - len(rows))])]
        return np.array_split(rows, len(rows) // k)

    def _epoch_batches(self) -> list[np.ndarray]:
        groups, positions = [], []
        for rows in self._class_rows:
            class_groups = self._groups(rows)
            n = len(class_groups)
            # Group j of a class lands at a random point of the j-th n-th of the epoch.
            positions.append((np.arange(n) + self._rng.random_sample(n)) / n)
            groups.extend(class_groups)
        order = np.argsort(np.concatenate(positions), kind="stable")
        batches, current, size = [], [], 0
        for g in order:
            current.append(groups[g])
            size += len(groups[g])
            if size >= self.batch_size:
                batches.append(np.concatenate(current))
                current, size = [], 0
        if current:
            tail = np.concatenate(current)
            if batches and len(np.unique(self._codes[tail])) < 2:
                batches[-1] = np.concatenate([batches[-1], tail])
            else:
                batches.append(tail)
        return batches

    def __iter__(self):
        """One epoch; how many batches it has depends on the shuffle (groups vary in size)."""
        yield from self._epoch_batches()


class ShuffledBatchSampler:
    """Iterate over one epoch of batches of a random permutation of ``range(n)``.

    For supervision that needs no class balance in a batch (labelled pairs, triplet
    constraints): each item once per epoch, ``batch_size`` items per batch but the last.
    """

    def __init__(self, n: int, batch_size: int, random_state=None):
        if n < 1 or batch_size < 1:
            raise ValueError(
                f"Need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}."
            )
        self.n, self.batch_size = int(n), int(batch_size)
        self._rng = check_random_state(random_state)

    def __iter__(self):
        order = self._rng.permutation(self.n)
        for start in range(0, self.n, self.batch_size):
            yield order[start : start + self.batch_size]
