"""ClassBalancedBatchSampler: coverage, balance, batch sizes, reproducibility, validation."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sk_dml.sampling import ClassBalancedBatchSampler


def _make(labels, batch_size, k, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return ClassBalancedBatchSampler(labels, batch_size, k, random_state=seed)


def _epoch(sampler) -> list[np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # iterating never warns
        return list(sampler)


def _check_epoch(labels, batch_size, k, batches) -> None:
    """Every guarantee of one epoch that holds for any input."""
    labels = np.asarray(labels)
    n = len(labels)
    class_sizes = Counter(labels.tolist())
    assert batches, "an epoch has at least one batch"
    for batch in batches:
        assert isinstance(batch, np.ndarray) and batch.ndim == 1
        assert np.issubdtype(batch.dtype, np.integer)
        assert len(batch) > 0
        assert batch.min() >= 0 and batch.max() < n
        # Rows repeat inside a batch only for a class with fewer than K rows.
        for index, count in Counter(batch.tolist()).items():
            if count > 1:
                assert class_sizes[labels[index]] < k, (index, count)
        # Every class present brings at least K rows (counting repeats of a tiny class).
        for cls, count in Counter(labels[batch].tolist()).items():
            assert count >= k, (cls, count)
    seen = np.concatenate(batches)
    assert set(seen.tolist()) == set(range(n)), "every sample at least once per epoch"
    if min(class_sizes.values()) >= k:
        np.testing.assert_array_equal(np.sort(seen), np.arange(n))  # exactly once


# --------------------------------------------------------------------------- fixed examples
CONFIGS = {
    "balanced": (np.repeat(np.arange(8), 10), 32, 4),
    "uneven": (np.repeat(np.arange(5), [3, 7, 12, 25, 4]), 16, 3),
    "k_one": (np.arange(50) % 7, 10, 1),
    "one_class": (np.zeros(30, dtype=int), 8, 4),
    "batch_is_one_group": (np.repeat(np.arange(6), 6), 4, 4),
    "larger_than_data": (np.repeat(np.arange(3), 4), 100, 2),
    "string_labels": (np.array(list("aabbbccccdddddee") * 3), 12, 2),
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_epoch_guarantees(config, seed):
    labels, batch_size, k = config
    sampler = ClassBalancedBatchSampler(labels, batch_size, k, random_state=seed)
    for _ in range(2):  # two successive epochs
        _check_epoch(labels, batch_size, k, _epoch(sampler))


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_batches_reach_batch_size(config, seed):
    labels, batch_size, k = config
    batches = _epoch(ClassBalancedBatchSampler(labels, batch_size, k, random_state=seed))
    sizes = [len(b) for b in batches]
    if len(labels) >= batch_size:
        assert all(size >= batch_size for size in sizes[:-1]), sizes
    if len(sizes) > 1 and len(np.unique(labels)) > 1 and batch_size >= 2 * k:
        # a tail of a single class (no negatives) is merged, not kept
        assert len(np.unique(labels[batches[-1]])) >= 2, sizes


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_batches_within_documented_bound(config, seed):
    # The class docstring: "a batch holds whole groups, so it may exceed [batch_size] by less
    # than samples_per_class". Checked on every batch but the last (see the next test).
    labels, batch_size, k = config
    sizes = [len(b) for b in _epoch(_make(labels, batch_size, k, seed))]
    bound = batch_size + 2 * k - 2
    assert all(batch_size <= size <= bound for size in sizes[:-1]), (batch_size, k, sizes)


def test_documented_overshoot_is_reached_and_not_exceeded():
    # 4 classes of 5 rows, K=3: each class is one group of 5 = 2K-1 rows, so a batch of
    # batch_size=6 takes two groups, 10 rows: exactly the documented bound 6 + 2*3 - 2.
    labels = np.repeat(np.arange(4), 5)
    for seed in range(5):
        batches = _epoch(ClassBalancedBatchSampler(labels, 6, 3, random_state=seed))
        assert [len(b) for b in batches] == [10, 10]


def test_last_batch_is_kept_unless_it_holds_a_single_class():
    # 2 classes of 19 rows, K=2, batch_size=16: two batches of 16-18 rows and a tail of a few
    # rows, which stays a batch of its own when it holds both classes (it has negatives) and
    # joins the batch before it otherwise.
    labels = np.repeat([0, 1], 19)
    for seed in range(10):
        batches = _epoch(ClassBalancedBatchSampler(labels, 16, 2, random_state=seed))
        assert all(16 <= len(b) <= 16 + 2 * 2 - 2 for b in batches[:-2]), seed
        assert len(np.unique(labels[batches[-1]])) == 2, seed
        assert sum(map(len, batches)) == len(labels)


# ------------------------------------------------------------------------ small classes
def test_small_class_warns_once_at_construction():
    labels = np.array([0] * 6 + [1] * 2 + [2] * 5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler = ClassBalancedBatchSampler(labels, 8, 3, random_state=0)
    user = [w for w in caught if issubclass(w.category, UserWarning)]
    assert len(user) == 1
    batches = _epoch(sampler)  # and none while iterating
    _check_epoch(labels, 8, 3, batches)
    _epoch(sampler)
    # The two rows of class 1 travel together, padded to K rows by repetition.
    for batch in batches:
        rows = batch[labels[batch] == 1]
        if len(rows):
            assert len(rows) == 3 and set(rows.tolist()) == {6, 7}


def test_no_warning_when_every_class_is_large_enough():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ClassBalancedBatchSampler(np.repeat(np.arange(3), 4), 8, 4, random_state=0)


def test_singleton_classes_are_padded():
    labels = np.arange(6)  # every class a singleton
    sampler = _make(labels, 4, 2)
    batches = _epoch(sampler)
    _check_epoch(labels, 4, 2, batches)
    for batch in batches:
        assert all(count == 2 for count in Counter(batch.tolist()).values())


# ---------------------------------------------------------------------------- randomness
def test_same_seed_same_epochs_and_epochs_differ():
    labels = np.repeat(np.arange(6), 10)
    first = ClassBalancedBatchSampler(labels, 16, 4, random_state=42)
    second = ClassBalancedBatchSampler(labels, 16, 4, random_state=42)
    epochs_first = [_epoch(first) for _ in range(3)]
    epochs_second = [_epoch(second) for _ in range(3)]
    for a, b in zip(epochs_first, epochs_second, strict=True):
        assert len(a) == len(b)
        for batch_a, batch_b in zip(a, b, strict=True):
            np.testing.assert_array_equal(batch_a, batch_b)
    flat = [np.concatenate(epoch).tolist() for epoch in epochs_first]
    assert flat[0] != flat[1] and flat[1] != flat[2]


def test_different_seeds_differ_and_random_state_instance_accepted():
    labels = np.repeat(np.arange(6), 10)
    a = np.concatenate(_epoch(ClassBalancedBatchSampler(labels, 16, 4, random_state=0)))
    b = np.concatenate(_epoch(ClassBalancedBatchSampler(labels, 16, 4, random_state=1)))
    assert a.tolist() != b.tolist()
    rs = np.random.RandomState(0)
    c = np.concatenate(_epoch(ClassBalancedBatchSampler(labels, 16, 4, random_state=rs)))
    assert sorted(c.tolist()) == list(range(60))
    d = np.concatenate(_epoch(ClassBalancedBatchSampler(labels, 16, 4, random_state=None)))
    assert sorted(d.tolist()) == list(range(60))


def test_order_within_class_is_shuffled():
    # Over a few epochs, a class's rows do not always come in the same order.
    labels = np.zeros(40, dtype=int)
    sampler = ClassBalancedBatchSampler(labels, 8, 4, random_state=3)
    orders = {tuple(np.concatenate(_epoch(sampler)).tolist()) for _ in range(4)}
    assert len(orders) > 1
    assert all(order != tuple(range(40)) for order in orders)


# -------------------------------------------------------------------------- invalid input
@pytest.mark.parametrize(
    "labels,batch_size,k",
    [
        ([0, 0, 1, 1], 4, 0),  # K < 1
        ([0, 0, 1, 1], 4, -2),
        ([0, 0, 1, 1], 2, 3),  # batch_size < K
        ([0, 0, 1, 1], 0, 1),
        ([], 4, 2),  # no labels
        ([[0, 1], [1, 0]], 4, 2),  # not 1-D
    ],
)
def test_invalid_arguments_raise(labels, batch_size, k):
    with pytest.raises(ValueError):
        ClassBalancedBatchSampler(labels, batch_size, k, random_state=0)


# ------------------------------------------------------------------------------ properties
@settings(max_examples=30, deadline=None)
@given(
    labels=st.lists(st.integers(0, 5), min_size=1, max_size=60),
    k=st.integers(1, 4),
    extra=st.integers(0, 20),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_epoch_guarantees(labels, k, extra, seed):
    labels = np.array(labels)
    batch_size = k + extra
    has_small = min(Counter(labels.tolist()).values()) < k
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler = ClassBalancedBatchSampler(labels, batch_size, k, random_state=seed)
    assert sum(issubclass(w.category, UserWarning) for w in caught) == int(has_small)
    for _ in range(2):
        batches = _epoch(sampler)
        _check_epoch(labels, batch_size, k, batches)
        sizes = [len(b) for b in batches]
        assert all(size >= batch_size for size in sizes[:-1]), sizes
        # The last of several batches is a full one, or a tail that holds negatives (2+
        # classes): a single-class tail joins the batch before it.
        if len(sizes) > 1:
            last_classes = len(np.unique(labels[batches[-1]]))
            assert sizes[-1] >= batch_size or last_classes >= 2, sizes
