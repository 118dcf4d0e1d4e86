"""Miners against brute-force enumeration of pairs and triplets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import (
    DISTANCES,
    MINING,
    WINDOW_MINING,
    assert_close,
    negatives_of,
    positives_of,
    random_batch,
    ref_dist_matrix,
    ref_triplet,
    ref_triplet_over,
    ref_triplets,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from sk_dml.distances import pairwise_distance
from sk_dml.losses import triplet_loss
from sk_dml.miners import (
    TRIPLET_MINING,
    check_mining,
    hardest_pairs,
    mine_triplets,
    pair_masks,
    triplet_window,
)


def _as_set(triplets) -> set[tuple[int, int, int]]:
    a, p, n = (torch.as_tensor(t).tolist() for t in triplets)
    assert len(a) == len(p) == len(n)
    found = set(zip(a, p, n, strict=True))
    assert len(found) == len(a), "a triplet is listed twice"
    return found


# ------------------------------------------------------------------------------- pair_masks
@pytest.mark.parametrize(
    "labels", [[0, 1, 0, 2, 1, 0], [3, 3, 3], [0, 1, 2, 3], [7], [5, -1, 5, -1, 9]]
)
def test_pair_masks_brute_force(labels):
    positive, negative = pair_masks(torch.tensor(labels))
    n = len(labels)
    assert positive.dtype == torch.bool and negative.dtype == torch.bool
    assert positive.shape == negative.shape == (n, n)
    for i in range(n):
        for j in range(n):
            assert bool(positive[i, j]) == (i != j and labels[i] == labels[j]), (i, j)
            assert bool(negative[i, j]) == (labels[i] != labels[j]), (i, j)


def test_pair_masks_accepts_numpy():
    positive, negative = pair_masks(np.array([1, 1, 2]))
    assert positive.tolist() == [[False, True, False], [True, False, False], [False] * 3]
    assert negative.tolist() == [[False, False, True], [False, False, True], [True, True, False]]


# -------------------------------------------------------------------------- triplet_window
@pytest.mark.parametrize("mining", WINDOW_MINING)
def test_triplet_window_matches_rule(mining):
    # The window (low, high) must select exactly the negatives the rule keeps.
    margin = 0.3
    d_ap = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=torch.float64)
    low, high = triplet_window(d_ap, margin, mining)
    assert low.shape == high.shape == d_ap.shape
    for k, ap in enumerate(d_ap.tolist()):
        for an in np.linspace(-0.5, 3.0, 36):
            inside = float(low[k]) < an < float(high[k])
            rule = {
                "all": ap - an + margin > 0,
                "semihard": ap < an < ap + margin,
                "hard": an < ap,
            }[mining]
            assert inside == rule, (mining, ap, an)


def test_triplet_window_rejects_batch_hard_and_unknown():
    with pytest.raises(ValueError):
        triplet_window(torch.zeros(2), 0.1, "batch_hard")
    with pytest.raises(ValueError):
        triplet_window(torch.zeros(2), 0.1, "easy")


def test_check_mining():
    for mining in MINING:
        assert check_mining(mining) == mining
    assert set(TRIPLET_MINING) == set(MINING)
    with pytest.raises(ValueError, match="semi_hard"):
        check_mining("semi_hard")


# ---------------------------------------------------------------------------- hardest_pairs
@pytest.mark.parametrize("metric", DISTANCES)
@pytest.mark.parametrize("seed", [0, 1])
def test_hardest_pairs_brute_force(metric, seed):
    emb, y = random_batch(seed, n=11, n_classes=4)
    y[0] = 99  # a class with one sample: no positive, so not valid
    dist = ref_dist_matrix(emb, metric)
    d_pos, d_neg, pos_idx, neg_idx, valid = hardest_pairs(dist, torch.tensor(y))
    for a in range(len(y)):
        pos, neg = positives_of(y, a), negatives_of(y, a)
        assert bool(valid[a]) == bool(pos and neg)
        if not valid[a]:
            continue
        far = max(float(dist[a, p]) for p in pos)
        near = min(float(dist[a, n]) for n in neg)
        assert float(d_pos[a]) == pytest.approx(far)
        assert float(d_neg[a]) == pytest.approx(near)
        assert int(pos_idx[a]) in pos and float(dist[a, pos_idx[a]]) == pytest.approx(far)
        assert int(neg_idx[a]) in neg and float(dist[a, neg_idx[a]]) == pytest.approx(near)


def test_hardest_pairs_single_class_and_singletons():
    dist = torch.rand(4, 4, dtype=torch.float64)
    *_, valid = hardest_pairs(dist, torch.tensor([1, 1, 1, 1]))
    assert not valid.any()
    *_, valid = hardest_pairs(dist, torch.tensor([0, 1, 2, 3]))
    assert not valid.any()


# ---------------------------------------------------------------------------- mine_triplets
@pytest.mark.parametrize("metric", DISTANCES)
@pytest.mark.parametrize("mining", WINDOW_MINING)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mine_triplets_window_modes_brute_force(metric, mining, seed):
    emb, y = random_batch(seed, n=13, n_classes=3)
    dist = ref_dist_matrix(emb, metric)
    # A margin comparable to the spread of the distances, so every rule selects some triplets
    # and leaves out others.
    margin = float(dist.std())
    got = _as_set(mine_triplets(dist, torch.tensor(y), mining=mining, margin=margin))
    expected = set(ref_triplets(dist, y, mining, margin))
    assert expected, "degenerate test batch"
    assert got == expected


@pytest.mark.parametrize("metric", DISTANCES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mine_triplets_batch_hard_brute_force(metric, seed):
    emb, y = random_batch(seed, n=13, n_classes=4)
    y[3] = 42  # a class with one sample
    dist = ref_dist_matrix(emb, metric)
    anchors, positives, negatives = mine_triplets(
        dist, torch.tensor(y), mining="batch_hard", margin=0.1
    )
    expected = ref_triplets(dist, y, "batch_hard", 0.1)
    assert sorted(anchors.tolist()) == [a for a, _, _ in expected]
    for a, p, n in zip(anchors.tolist(), positives.tolist(), negatives.tolist(), strict=True):
        assert y[p] == y[a] and p != a and y[n] != y[a]
        assert float(dist[a, p]) == max(float(dist[a, j]) for j in positives_of(y, a))
        assert float(dist[a, n]) == min(float(dist[a, j]) for j in negatives_of(y, a))


@pytest.mark.parametrize("mining", MINING)
def test_mine_triplets_returns_long_tensors(mining):
    emb, y = random_batch(5, n=8)
    a, p, n = mine_triplets(
        ref_dist_matrix(emb, "euclidean"), torch.tensor(y), mining=mining, margin=0.5
    )
    for t in (a, p, n):
        assert isinstance(t, torch.Tensor) and t.dtype == torch.int64 and t.ndim == 1


@pytest.mark.parametrize("mining", MINING)
@pytest.mark.parametrize("labels", [[0, 0, 0, 0], [0, 1, 2, 3], [5]])
def test_mine_triplets_nothing_to_mine(mining, labels):
    dist = torch.rand(len(labels), len(labels), dtype=torch.float64)
    dist = dist + dist.T
    a, p, n = mine_triplets(dist, torch.tensor(labels), mining=mining, margin=10.0)
    assert len(a) == len(p) == len(n) == 0


def test_mine_triplets_hand_example():
    # Points on a line: 0 (class A), 1 (A), 1.5 (B), 3 (B).
    pts = torch.tensor([[0.0], [1.0], [1.5], [3.0]], dtype=torch.float64)
    dist = pairwise_distance(pts, metric="euclidean")
    y = torch.tensor([0, 0, 1, 1])
    # anchor 0: d_ap=1 ; negatives at 1.5, 3   anchor 1: d_ap=1 ; negatives at .5, 2
    # anchor 2: d_ap=1.5 ; negatives at 1.5, .5  anchor 3: d_ap=1.5 ; negatives at 3, 2
    hard = _as_set(mine_triplets(dist, y, mining="hard", margin=0.6))
    assert hard == {(1, 0, 2), (2, 3, 1)}
    semihard = _as_set(mine_triplets(dist, y, mining="semihard", margin=0.6))
    assert semihard == {(0, 1, 2), (3, 2, 1)}  # (2, 3, 0) has d_an == d_ap: not strictly inside
    everything = _as_set(mine_triplets(dist, y, mining="all", margin=0.6))
    assert everything == {(0, 1, 2), (1, 0, 2), (2, 3, 0), (2, 3, 1), (3, 2, 1)}
    batch_hard = _as_set(mine_triplets(dist, y, mining="batch_hard", margin=0.6))
    assert batch_hard == {(0, 1, 2), (1, 0, 2), (2, 3, 1), (3, 2, 1)}


def test_mine_triplets_unknown_mining():
    with pytest.raises(ValueError, match="hardest"):
        mine_triplets(torch.zeros(3, 3), torch.tensor([0, 0, 1]), mining="hardest", margin=0.1)


# ------------------------------------------------- mined triplets reproduce the mining losses
@pytest.mark.parametrize("metric", DISTANCES)
@pytest.mark.parametrize("mining", MINING)
def test_mined_triplets_reproduce_triplet_loss(metric, mining):
    emb, y = random_batch(7, n=12, n_classes=3)
    margin = 0.3 if metric != "sqeuclidean" else 1.0
    dist = pairwise_distance(emb, metric=metric)
    triplets = mine_triplets(dist, torch.tensor(y), mining=mining, margin=margin)
    from_triplets = triplet_loss(emb, y, margin=margin, distance=metric, triplets=triplets)
    direct = triplet_loss(emb, y, margin=margin, distance=metric, mining=mining)
    assert_close(from_triplets, direct, rtol=1e-9, atol=1e-12)
    assert_close(direct, ref_triplet(ref_dist_matrix(emb, metric), y, margin, mining))


@pytest.mark.parametrize(
    "mine_with,train_with",
    [("cosine", "euclidean"), ("euclidean", "manhattan"), ("chebyshev", "cosine")],
)
@pytest.mark.parametrize("mining", MINING)
def test_mine_with_one_distance_train_with_another(mine_with, train_with, mining):
    emb, y = random_batch(8, n=12, n_classes=3)
    emb = emb.clone().requires_grad_(True)
    margin = 0.2
    triplets = mine_triplets(
        pairwise_distance(emb, metric=mine_with), y, mining=mining, margin=margin
    )
    expected_triplets = ref_triplets(ref_dist_matrix(emb, mine_with), y, mining, margin)
    if mining != "batch_hard":  # batch_hard's indices are compared in the brute-force test
        assert _as_set(triplets) == set(expected_triplets)
    assert len(triplets[0]) > 0
    loss = triplet_loss(emb, y, margin=margin, distance=train_with, triplets=triplets)
    expected = ref_triplet_over(ref_dist_matrix(emb, train_with), _as_set(triplets), margin)
    assert_close(loss, expected)
    loss.backward()
    assert torch.isfinite(emb.grad).all()


# -------------------------------------------------------------------------------- properties
@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    n=st.integers(2, 9),
    mining=st.sampled_from(MINING),
    margin=st.sampled_from([0.0, 0.1, 0.5, 2.0]),
)
def test_property_mine_triplets_on_integer_distances(data, n, mining, margin):
    # Integer-valued symmetric distances: many exact ties, so the strict inequalities matter.
    values = data.draw(st.lists(st.integers(0, 4), min_size=n * n, max_size=n * n))
    dist = torch.tensor(values, dtype=torch.float64).reshape(n, n)
    dist = (dist + dist.T).fill_diagonal_(0.0)
    y = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    a, p, neg = mine_triplets(dist, torch.tensor(y), mining=mining, margin=margin)
    if mining == "batch_hard":
        expected = ref_triplets(dist, y, mining, margin)
        assert sorted(a.tolist()) == [t[0] for t in expected]
        for ai, pi, ni in zip(a.tolist(), p.tolist(), neg.tolist(), strict=True):
            assert dist[ai, pi] == max(dist[ai, j] for j in positives_of(y, ai))
            assert dist[ai, ni] == min(dist[ai, j] for j in negatives_of(y, ai))
    else:
        assert _as_set((a, p, neg)) == set(ref_triplets(dist, y, mining, margin))
