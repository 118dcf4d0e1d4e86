"""The four losses against brute-force float64 loops over pairs and triplets."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from conftest import (
    DISTANCES,
    EDGE_LABELS,
    MINING,
    assert_close,
    loop_dist_matrix,
    random_batch,
    ref_contrastive,
    ref_dist_matrix,
    ref_lifted,
    ref_npair,
    ref_triplet,
    ref_triplet_over,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from sk_dml import criteria
from sk_dml.losses import contrastive_loss, lifted_struct_loss, npair_loss, triplet_loss

# (loss name, fixed keyword arguments); the margin is chosen per batch, see _margin.
CASES = [
    ("contrastive", {}),
    *[("triplet", {"mining": m}) for m in MINING],
    ("lifted", {"variant": "hard"}),
    ("lifted", {"variant": "smooth"}),
]
NPAIR_CASES = [("npair", {"l2_reg": 0.0}), ("npair", {"l2_reg": 0.25})]
ALL_CASES = CASES + NPAIR_CASES


def _case_id(case) -> str:
    name, kw = case
    return "-".join([name, *map(str, kw.values())])


def impl_loss(name, emb, y, distance="euclidean", margin=None, **kw):
    if name == "npair":
        return npair_loss(emb, y, **kw)
    fn = {"contrastive": contrastive_loss, "triplet": triplet_loss, "lifted": lifted_struct_loss}[
        name
    ]
    if margin is not None:
        kw["margin"] = margin
    return fn(emb, y, distance=distance, **kw)


def ref_loss(name, emb, y, distance="euclidean", margin=None, D=None, **kw):
    """Reference value; ``D`` defaults to cdist's matrix (no gradient)."""
    y = [int(v) for v in y]
    if name == "npair":
        return ref_npair(emb, y, kw.get("l2_reg", 0.0))
    if D is None:
        D = ref_dist_matrix(emb, distance)
    default = {"contrastive": 1.0, "triplet": 0.2, "lifted": 1.0}[name]
    margin = default if margin is None else margin
    if name == "contrastive":
        return ref_contrastive(D, y, margin)
    if name == "triplet":
        return ref_triplet(D, y, margin, kw.get("mining", "all"))
    return ref_lifted(D, y, margin, kw.get("variant", "smooth"))


def _margin(emb, distance) -> float:
    """A margin of the order of the batch's distances, so that the rules are not degenerate."""
    d = ref_dist_matrix(emb, distance).numpy()
    return float(np.median(d[~np.eye(len(d), dtype=bool)]))


def _grad(loss, emb):
    (grad,) = torch.autograd.grad(loss, emb)
    return grad


# ---------------------------------------------------------------------- values, random batches
@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("seed", [0, 1])
def test_value_matches_brute_force(case, distance, seed):
    name, kw = case
    emb, y = random_batch(seed, n=12, dim=4, n_classes=3)
    margin = _margin(emb, distance)
    got = impl_loss(name, emb, y, distance, margin, **kw)
    expected = ref_loss(name, emb, y, distance, margin, **kw)
    assert got.ndim == 0
    assert float(expected) > 0, "degenerate test batch"
    assert_close(got, expected)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_default_margin(case, distance):
    name, kw = case
    emb, y = random_batch(3, n=10, dim=3, n_classes=2)
    emb = emb * 0.4  # euclidean distances around the default margins
    assert_close(impl_loss(name, emb, y, distance, **kw), ref_loss(name, emb, y, distance, **kw))


@pytest.mark.parametrize("case", NPAIR_CASES, ids=_case_id)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_npair_value_matches_brute_force(case, seed):
    _, kw = case
    emb, y = random_batch(seed, n=12, dim=4, n_classes=4)
    got = npair_loss(emb, y, **kw)
    assert got.ndim == 0
    assert_close(got, ref_npair(emb, y, **kw))


@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_float32_close_to_float64_reference(case, distance):
    name, kw = case
    emb, y = random_batch(4, n=12, dim=4, n_classes=3)
    margin = _margin(emb, distance)
    got = impl_loss(name, emb.float(), y, distance, margin, **kw)
    assert got.ndim == 0 and torch.isfinite(got)
    assert_close(got, ref_loss(name, emb, y, distance, margin, **kw), rtol=1e-4, atol=1e-5)


def test_labels_as_numpy_or_tensor():
    emb, y = random_batch(6, n=9)
    for case in ALL_CASES:
        name, kw = case
        from_list = impl_loss(name, emb, y, **kw)
        assert_close(impl_loss(name, emb, np.array(y), **kw), from_list)
        assert_close(impl_loss(name, emb, torch.tensor(y), **kw), from_list)


# --------------------------------------------------------------------- hand-computed examples
def test_contrastive_hand_example():
    # 1-D points 0 (A), 0.5 (A), 0.8 (B): pairs (A,A) d=.5 -> .25 ; (A,B) d=.8 -> relu(1-.8)^2
    # = .04 ; (A,B) d=.3 -> .49 ; mean over 3 pairs.
    emb = torch.tensor([[0.0], [0.5], [0.8]], dtype=torch.float64)
    got = contrastive_loss(emb, [0, 0, 1], margin=1.0)
    assert_close(got, (0.25 + 0.04 + 0.49) / 3)


def test_triplet_hand_example():
    # 1-D points 0 (A), 1 (A), 1.5 (B), 3 (B), margin 0.6; see test_miners' hand example.
    emb = torch.tensor([[0.0], [1.0], [1.5], [3.0]], dtype=torch.float64)
    y = [0, 0, 1, 1]
    # all: l = .1 (0,1,2), 1.1 (1,0,2), .6 (2,3,0), 1.6 (2,3,1), .1 (3,2,1)
    assert_close(triplet_loss(emb, y, margin=0.6, mining="all"), (0.1 + 1.1 + 0.6 + 1.6 + 0.1) / 5)
    assert_close(triplet_loss(emb, y, margin=0.6, mining="hard"), (1.1 + 1.6) / 2)
    assert_close(triplet_loss(emb, y, margin=0.6, mining="semihard"), (0.1 + 0.1) / 2)
    assert_close(triplet_loss(emb, y, margin=0.6, mining="batch_hard"), (0.1 + 1.1 + 1.6 + 0.1) / 4)


def test_npair_hand_example():
    # f = (1,0) A, (1,0) A, (0,1) B: s_ap = 1, s_an = 0 for both A anchors; B has no positive.
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert_close(npair_loss(emb, [0, 0, 1]), math.log(1 + math.exp(-1)))
    assert_close(npair_loss(emb, [0, 0, 1], l2_reg=0.5), math.log(1 + math.exp(-1)) + 0.5)


def test_lifted_hand_example():
    # 1-D points 0 (A), 1 (A), 1.5 (B): one positive pair (0, 1), D = 1.
    # hard: nearest negative of either is 0.5 -> J = 1 + m - 0.5
    # smooth: J = 1 + log(exp(m - 1.5) + exp(m - 0.5))
    emb = torch.tensor([[0.0], [1.0], [1.5]], dtype=torch.float64)
    y = [0, 0, 1]
    m = 1.0
    assert_close(lifted_struct_loss(emb, y, margin=m, variant="hard"), (1 + m - 0.5) ** 2 / 2)
    smooth = 1 + math.log(math.exp(m - 1.5) + math.exp(m - 0.5))
    assert_close(lifted_struct_loss(emb, y, margin=m, variant="smooth"), smooth**2 / 2)


# ------------------------------------------------------------------------------ edge cases


@pytest.mark.parametrize("case", ALL_CASES, ids=_case_id)
@pytest.mark.parametrize("labels", EDGE_LABELS.values(), ids=EDGE_LABELS.keys())
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_edge_labels_match_brute_force(case, labels, distance):
    name, kw = case
    gen = torch.Generator().manual_seed(len(labels))
    emb = torch.randn(len(labels), 3, generator=gen, dtype=torch.float64, requires_grad=True)
    got = impl_loss(name, emb, labels, distance, 0.5 if name != "npair" else None, **kw)
    expected = ref_loss(
        name, emb.detach(), labels, distance, 0.5 if name != "npair" else None, **kw
    )
    assert got.ndim == 0
    assert_close(got, expected)
    assert got.requires_grad
    assert torch.isfinite(_grad(got, emb)).all()


# Batches where a loss has nothing active: contrastive has a pair as soon as there are two
# rows, and npair's l2 penalty is active on every batch.
INACTIVE = [
    pytest.param(case, key, id=f"{_case_id(case)}-{key}")
    for case in ALL_CASES
    for key in ("one_class", "all_singletons", "one_row")
    if (case[0] != "contrastive" or key == "one_row") and not case[1].get("l2_reg")
]


@pytest.mark.parametrize("case,labels", INACTIVE)
def test_nothing_active_gives_connected_zero(case, labels):
    name, kw = case
    labels = EDGE_LABELS[labels]
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(len(labels), 3, generator=gen, dtype=torch.float64, requires_grad=True)
    loss = impl_loss(name, emb, labels, **kw)
    assert loss.ndim == 0
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert emb.grad is not None
    assert torch.all(emb.grad == 0)


def test_npair_penalty_alone_when_no_pair():
    # No positive pair: the pair term is an empty mean (0) and the penalty remains.
    emb = torch.tensor([[1.0, 2.0], [3.0, 0.0]], dtype=torch.float64, requires_grad=True)
    loss = npair_loss(emb, [0, 1], l2_reg=0.1)
    assert_close(loss, 0.1 * (5.0 + 9.0) / 2)
    loss.backward()
    torch.testing.assert_close(emb.grad, 0.1 * emb.detach())


def _duplicated_batch(dim=3):
    gen = torch.Generator().manual_seed(9)
    emb = torch.randn(9, dim, generator=gen, dtype=torch.float64)
    emb[1] = emb[0]  # duplicate inside a class
    emb[5] = emb[0]  # duplicate across classes: an anchor's negative at distance 0
    emb[7] = emb[6]
    return emb, [0, 0, 1, 1, 2, 1, 2, 2, 0]


@pytest.mark.parametrize("case", ALL_CASES, ids=_case_id)
@pytest.mark.parametrize("distance", DISTANCES)
def test_duplicated_rows(case, distance):
    name, kw = case
    emb, y = _duplicated_batch()
    emb.requires_grad_(True)
    margin = None if name == "npair" else 0.5
    loss = impl_loss(name, emb, y, distance, margin, **kw)
    assert_close(
        loss, ref_loss(name, emb.detach(), y, distance, margin, **kw), rtol=1e-7, atol=1e-8
    )
    grad = _grad(loss, emb)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("case", ALL_CASES, ids=_case_id)
@pytest.mark.parametrize("distance", DISTANCES)
def test_duplicated_rows_float32_gradient_finite(case, distance):
    name, kw = case
    emb, y = _duplicated_batch(dim=16)
    emb = emb.float().requires_grad_(True)
    loss = impl_loss(name, emb, y, distance, None, **kw)
    assert torch.isfinite(loss)
    assert torch.isfinite(_grad(loss, emb)).all()


# ---------------------------------------------------------------- gradients vs loop autograd
GRAD_CASES = [
    ("contrastive", {}, "euclidean"),
    ("contrastive", {}, "cosine"),
    *[("triplet", {"mining": m}, "euclidean") for m in MINING],
    ("triplet", {"mining": "all"}, "manhattan"),
    ("triplet", {"mining": "semihard"}, "cosine"),
    ("lifted", {"variant": "hard"}, "euclidean"),
    ("lifted", {"variant": "smooth"}, "euclidean"),
    ("lifted", {"variant": "smooth"}, "sqeuclidean"),
    ("lifted", {"variant": "hard"}, "chebyshev"),
    ("npair", {"l2_reg": 0.0}, None),
    ("npair", {"l2_reg": 0.3}, None),
]


@pytest.mark.parametrize(
    "name,kw,distance",
    GRAD_CASES,
    ids=[f"{c[0]}-{'-'.join(map(str, c[1].values()))}-{c[2]}" for c in GRAD_CASES],
)
def test_gradient_matches_loop_autograd(name, kw, distance):
    emb0, y = random_batch(21, n=9, dim=3, n_classes=3)
    margin = None if name == "npair" else _margin(emb0, distance or "euclidean")

    emb = emb0.clone().requires_grad_(True)
    grad = _grad(impl_loss(name, emb, y, distance, margin, **kw), emb)

    emb_ref = emb0.clone().requires_grad_(True)
    D = None if name == "npair" else loop_dist_matrix(emb_ref, distance)
    expected_loss = ref_loss(name, emb_ref, y, distance, margin, D=D, **kw)
    assert expected_loss.item() > 0, "degenerate test batch"
    expected_grad = _grad(expected_loss, emb_ref)
    assert expected_grad.abs().max() > 0
    torch.testing.assert_close(grad, expected_grad, rtol=1e-7, atol=1e-9)


def test_triplet_gradient_with_given_triplets():
    emb0, y = random_batch(22, n=8, dim=3, n_classes=2)
    triplets = ([0, 1, 1, 4, 0], [3, 2, 2, 6, 3], [5, 7, 7, 2, 1])
    margin = 1.5
    emb = emb0.clone().requires_grad_(True)
    loss = triplet_loss(
        emb,
        y,
        margin=margin,
        distance="euclidean",
        triplets=tuple(torch.tensor(t) for t in triplets),
    )
    emb_ref = emb0.clone().requires_grad_(True)
    expected = ref_triplet_over(
        loop_dist_matrix(emb_ref, "euclidean"), list(zip(*triplets, strict=True)), margin
    )
    assert_close(loss, expected)
    torch.testing.assert_close(_grad(loss, emb), _grad(expected, emb_ref), rtol=1e-7, atol=1e-9)


# -------------------------------------------------------------------- triplets=, explicit list
@pytest.mark.parametrize("distance", DISTANCES)
def test_triplet_loss_over_given_triplets(distance):
    emb, y = random_batch(23, n=10, dim=3, n_classes=3)
    rng = np.random.default_rng(0)
    # Any index triples, repeated ones counted twice; mining= must be ignored.
    a, p, n = (rng.integers(0, 10, 15) for _ in range(3))
    a, p, n = np.append(a, a[0]), np.append(p, p[0]), np.append(n, n[0])
    margin = _margin(emb, distance)
    expected = ref_triplet_over(
        ref_dist_matrix(emb, distance), list(zip(a, p, n, strict=True)), margin
    )
    for mining in MINING:
        got = triplet_loss(
            emb,
            y,
            margin=margin,
            distance=distance,
            mining=mining,
            triplets=(torch.tensor(a), torch.tensor(p), torch.tensor(n)),
        )
        assert_close(got, expected)


def test_triplet_loss_over_no_triplets_is_connected_zero():
    emb, y = random_batch(24, n=6)
    emb.requires_grad_(True)
    empty = torch.zeros(0, dtype=torch.long)
    loss = triplet_loss(emb, y, triplets=(empty, empty, empty))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.all(emb.grad == 0)


# ------------------------------------------------------------------------------- stability
@pytest.mark.parametrize("l2_reg", [0.0, 0.01])
def test_npair_stable_for_large_values(l2_reg):
    emb0, y = random_batch(25, n=10, dim=4, n_classes=3)
    emb = (emb0 * 100).requires_grad_(True)
    loss = npair_loss(emb, y, l2_reg=l2_reg)
    assert torch.isfinite(loss)
    assert_close(loss, ref_npair(emb.detach(), y, l2_reg))
    assert torch.isfinite(_grad(loss, emb)).all()
    emb32 = (emb0 * 100).float().requires_grad_(True)
    loss32 = npair_loss(emb32, y, l2_reg=l2_reg)
    assert torch.isfinite(loss32)
    assert torch.isfinite(_grad(loss32, emb32)).all()
    assert_close(loss32, ref_npair(emb0 * 100, y, l2_reg), rtol=1e-3, atol=1e-2)


@pytest.mark.parametrize("variant", ["smooth", "hard"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lifted_stable_for_large_distances(variant, dtype):
    emb0, y = random_batch(26, n=10, dim=4, n_classes=3)
    emb = (emb0 * 1000).to(dtype).requires_grad_(True)
    loss = lifted_struct_loss(emb, y, variant=variant)
    assert torch.isfinite(loss)
    assert torch.isfinite(_grad(loss, emb)).all()
    assert_close(
        loss, ref_lifted(ref_dist_matrix(emb0 * 1000, "euclidean"), y, 1.0, variant), rtol=1e-4
    )


# --------------------------------------------------------------------------- invalid input
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_unknown_distance_raises(case):
    name, kw = case
    emb, y = random_batch(0, n=6)
    with pytest.raises(ValueError, match="mahalanobis"):
        impl_loss(name, emb, y, "mahalanobis", **kw)


@pytest.mark.parametrize("case", ALL_CASES, ids=_case_id)
def test_bad_shapes_raise(case):
    name, kw = case
    emb, y = random_batch(0, n=6)
    with pytest.raises(ValueError):
        impl_loss(name, emb, y[:-1], **kw)
    with pytest.raises(ValueError):
        impl_loss(name, emb[:, 0], y, **kw)


def test_invalid_options_raise():
    emb, y = random_batch(0, n=6)
    with pytest.raises(ValueError, match="semi"):
        triplet_loss(emb, y, mining="semi")
    with pytest.raises(ValueError, match="soft"):
        lifted_struct_loss(emb, y, variant="soft")
    for fn in (contrastive_loss, triplet_loss, lifted_struct_loss):
        with pytest.raises(ValueError):
            fn(emb, y, margin=-0.1)
    with pytest.raises(ValueError):
        npair_loss(emb, y, l2_reg=-1.0)


# ------------------------------------------------------------------------------ properties
_small_ints = st.integers(-3, 3).map(float)
_FIXED_MARGIN = {"contrastive": 1.0, "triplet": 0.5, "lifted": 1.0, "npair": None}


@st.composite
def batches(draw, max_rows=9, elements=_small_ints, min_rows=1):
    n = draw(st.integers(min_rows, max_rows))
    dim = draw(st.integers(1, 3))
    # Rows drawn from a small pool, so duplicated rows are common.
    pool = draw(st.lists(st.lists(elements, min_size=dim, max_size=dim), min_size=1, max_size=n))
    rows = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
    labels = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    return torch.tensor(rows, dtype=torch.float64), labels


@settings(max_examples=30, deadline=None)
@given(
    batch=batches(min_rows=2),
    case=st.sampled_from(ALL_CASES),
    distance=st.sampled_from(["euclidean", "sqeuclidean", "manhattan", "chebyshev"]),
    data=st.data(),
)
def test_property_permutation_invariance(batch, case, distance, data):
    emb, y = batch
    name, kw = case
    perm = data.draw(st.permutations(range(len(y))))
    margin = _FIXED_MARGIN[name]
    loss = impl_loss(name, emb, y, distance, margin, **kw)
    permuted = impl_loss(name, emb[list(perm)], [y[i] for i in perm], distance, margin, **kw)
    assert_close(permuted, loss, rtol=1e-9, atol=1e-12)
    assert_close(loss, ref_loss(name, emb, y, distance, margin, **kw), rtol=1e-9, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(2, 4), min_size=2, max_size=4),
    jitter=st.floats(0.0, 0.2),
    seed=st.integers(0, 2**16),
    distance=st.sampled_from(["euclidean", "sqeuclidean", "manhattan", "chebyshev", "cosine"]),
    margin=st.sampled_from([0.1, 0.2, 0.5]),
)
def test_property_zero_loss_when_classes_separated(sizes, jitter, seed, distance, margin):
    # Class c sits near 10 * e_c: within a class distances are small (at most ~2 * jitter per
    # coordinate), across classes they exceed every margin tried, for every distance.
    n_classes = len(sizes)
    gen = torch.Generator().manual_seed(seed)
    y = [c for c, size in enumerate(sizes) for _ in range(size)]
    emb = 10.0 * torch.eye(n_classes, dtype=torch.float64)[y]
    emb = emb + jitter * (2 * torch.rand(emb.shape, generator=gen, dtype=torch.float64) - 1)
    emb.requires_grad_(True)
    dist = ref_dist_matrix(emb, distance).numpy()
    same = np.equal.outer(y, y)
    assert dist[~same].min() > dist[same].max() + margin  # the premise
    losses = [triplet_loss(emb, y, margin=margin, distance=distance, mining=m) for m in MINING]
    losses.append(lifted_struct_loss(emb, y, margin=margin, distance=distance, variant="hard"))
    if distance != "cosine":  # the smooth bound needs a gap of a few log(|N|) more
        losses.append(lifted_struct_loss(emb, y, margin=margin, distance=distance))
    for loss in losses:
        assert loss.item() == 0.0
        assert torch.all(_grad(loss, emb) == 0)
    # contrastive: only the pulling term of the positives remains.
    n = len(y)
    pos = [(i, j) for i in range(n) for j in range(i + 1, n) if y[i] == y[j]]
    expected = sum(dist[i, j] ** 2 for i, j in pos) / (n * (n - 1) / 2)
    assert_close(contrastive_loss(emb, y, margin=margin, distance=distance), expected)
    # npair: s_ap ~ 100 >> s_an ~ 0, so every term is ~ exp(-100).
    assert 0.0 <= npair_loss(emb, y).item() < 1e-30


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    distance=st.sampled_from(DISTANCES),
    case=st.sampled_from(ALL_CASES),
)
def test_property_zero_contrastive_and_others_for_collapsed_classes(sizes, distance, case):
    # Every class collapsed onto one point (duplicated rows), classes far apart.
    n_classes = len(sizes)
    y = [c for c, size in enumerate(sizes) for _ in range(size)]
    emb = (10.0 * torch.eye(n_classes, dtype=torch.float64)[y]).requires_grad_(True)
    name, kw = case
    loss = impl_loss(name, emb, y, distance, None if name == "npair" else 0.5, **kw)
    grad = _grad(loss, emb)
    assert torch.isfinite(grad).all()
    margin = None if name == "npair" else 0.5
    assert_close(loss, ref_loss(name, emb.detach(), y, distance, margin, **kw), atol=1e-12)
    # Everything but npair (a softmax, never exactly 0) and the smooth lifted bound under
    # cosine (log of 2|N| terms exp(0.5 - 1) > 0) vanishes.
    if name != "npair" and not (distance == "cosine" and kw.get("variant") == "smooth"):
        assert loss.item() == pytest.approx(0.0, abs=1e-12)


_wide_floats = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=30, deadline=None)
@given(
    batch=batches(elements=_wide_floats | st.just(0.0)),
    case=st.sampled_from(ALL_CASES),
    distance=st.sampled_from(DISTANCES),
    dtype=st.sampled_from([torch.float64, torch.float32]),
    scale=st.sampled_from([1.0, 1e-3, 10.0]),
)
def test_property_never_nan(batch, case, distance, dtype, scale):
    emb, y = batch
    name, kw = case
    emb = (emb * scale).to(dtype).requires_grad_(True)
    loss = impl_loss(name, emb, y, distance, **kw)
    assert loss.ndim == 0
    assert torch.isfinite(loss), loss.item()
    assert loss.requires_grad
    assert torch.isfinite(_grad(loss, emb)).all()


# ------------------------------------------------ the three exact forms of the triplet windows
@pytest.mark.parametrize("mining", ["all", "semihard", "hard"])
@pytest.mark.parametrize("n_classes", [2, 5, 12])
@pytest.mark.parametrize("tied", [False, True], ids=["random", "ties"])
def test_triplet_window_forms_match_brute_force_and_gradient(mining, n_classes, tied):
    """triplet_loss picks its per-anchor, sorted or ranked form by the batch; each form must
    give the brute-force value and gradient on any batch, whichever it would be picked for.
    With ``tied``, coordinates on a grid and a margin of one grid step put many negatives
    exactly on a window's bounds."""
    from sk_dml import _triplet_windows, losses

    emb0, y = random_batch(40 + n_classes, n=24, dim=4, n_classes=n_classes)
    margin = _margin(emb0, "euclidean")
    if tied:
        emb0, margin = (emb0 * 2).round() / 2, 0.5
    emb_ref = emb0.clone().requires_grad_(True)
    expected = ref_triplet(loop_dist_matrix(emb_ref, "euclidean"), y, margin, mining)
    expected_grad = _grad(expected, emb_ref)
    labels = torch.tensor(y)
    pos_index, pos_valid = _triplet_windows.positives_table(labels)
    negative = labels.unsqueeze(0) != labels.unsqueeze(1)
    for form in (
        _triplet_windows._window_counts_per_anchor,
        _triplet_windows._window_counts_ranked,
        _triplet_windows._window_counts_sorted,
    ):
        emb = emb0.clone().requires_grad_(True)
        dist = losses.pairwise_distance(emb, metric="euclidean")
        count_ap, count_an = form(dist.detach(), pos_index, pos_valid, negative, margin, mining)
        weights = count_an.neg().scatter_add(1, pos_index, count_ap)
        n_active = count_ap.sum()
        total = (weights * dist).sum() + margin * n_active
        got = total / n_active if n_active else total
        assert_close(got, expected)
        if expected.item() > 0:
            torch.testing.assert_close(_grad(got, emb), expected_grad, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("mining", ["all", "semihard", "hard"])
@pytest.mark.parametrize("n_classes", [3, 12])
def test_triplet_window_forms_count_as_a_loop_in_float32(mining, n_classes):
    """In float32 on the CPU the sorted form sorts with NumPy (64-bit keys): on distances
    with many exact ties, and with negative zeros, every form counts what a loop over the
    triplets counts with the mining rule's own float32 comparisons."""
    from sk_dml import _triplet_windows, losses

    emb, y = random_batch(7 + n_classes, n=40, dim=3, n_classes=n_classes)
    emb = ((emb * 2).round() / 2).to(torch.float32)  # a grid: many equal distances
    dist = losses.pairwise_distance(emb, metric="euclidean")
    dist[dist == 0] = -0.0
    labels = torch.tensor(y)
    index, valid = _triplet_windows.positives_table(labels)
    negative = labels.unsqueeze(0) != labels.unsqueeze(1)
    d, margin = dist.numpy(), np.float32(0.5)
    count_ap, count_an = np.zeros(index.shape, np.float32), np.zeros(d.shape, np.float32)
    for a in range(len(y)):
        for j in np.flatnonzero(valid[a].numpy()):
            d_ap = d[a, index[a, j]]
            low = d_ap if mining == "semihard" else -np.inf
            high = d_ap if mining == "hard" else d_ap + margin  # float32, as the rule's
            for n in range(len(y)):
                if y[n] != y[a] and low < d[a, n] < high:
                    count_ap[a, j] += 1
                    count_an[a, n] += 1
    for form in (
        _triplet_windows._window_counts_per_anchor,
        _triplet_windows._window_counts_ranked,
        _triplet_windows._window_counts_sorted,
    ):
        got_ap, got_an = form(dist, index, valid, negative, 0.5, mining)
        np.testing.assert_array_equal(got_ap.numpy(), count_ap)
        np.testing.assert_array_equal(got_an.numpy(), count_an)


def test_sorted_negatives_sorts_each_row_as_torch_does():
    """NumPy's key sort gives torch's sorted values (non-negatives as inf, -0.0 as 0) and an
    order that points at them."""
    from sk_dml._triplet_windows import _sorted_negatives

    gen = torch.Generator().manual_seed(0)
    dist = (torch.randint(0, 4, (30, 30), generator=gen) / 4).float()
    dist[dist == 0] = -0.0
    dist[0, :5] = float("inf")
    negative = torch.rand(30, 30, generator=gen) > 0.3
    ranked, order = _sorted_negatives(dist, negative)
    expected = torch.where(negative, dist, float("inf")).sort(dim=1).values
    torch.testing.assert_close(ranked, expected, rtol=0, atol=0)
    assert (order.sort(dim=1).values == torch.arange(30)).all()  # a permutation per row
    torch.testing.assert_close(
        torch.where(negative, dist, float("inf")).gather(1, order), expected, rtol=0, atol=0
    )


@pytest.mark.parametrize("seed", range(6))
def test_positives_table_lists_each_anchors_other_rows_of_its_label(seed):
    """Brute force: for every anchor, the real slots hold exactly the other rows with its
    label, once each; padding slots are marked as such."""
    from sk_dml._triplet_windows import positives_table

    rng = np.random.default_rng(seed)
    y = rng.integers(0, [1, 2, 5, 30, 3, 8][seed], size=[1, 7, 20, 31, 2, 40][seed])
    index, valid = positives_table(torch.tensor(y))
    expected_width = max(np.bincount(y)) - 1
    assert index.shape == valid.shape == (len(y), expected_width)
    for a in range(len(y)):
        got = sorted(index[a][valid[a]].tolist())
        assert got == [p for p in range(len(y)) if p != a and y[p] == y[a]]


# ------------------------------------------------------- one source of truth per loss
#: A function default that differs from its loss object's on purpose, (loss name, parameter)
#: -> (the function's, the object's): npair_loss() is the paper's loss without the norm
#: penalty (pytorch-metric-learning's NPairsLoss()), while NPairLoss's embedders do not
#: normalise and need it. Pinned here, so neither side drifts either.
DELIBERATE_DIFFERENCES = {("npair", "l2_reg"): (0.0, 0.002)}


def _keyword_defaults(function) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
    }


@pytest.mark.parametrize("name", criteria.loss_names())
def test_every_loss_function_takes_its_objects_parameters_with_its_defaults(name):
    """The loss object is the truth: each of its functions (the batch loss and the tuple
    losses) takes its hyper-parameters as keywords with the same defaults."""
    cls = criteria.get_loss_class(name)
    params = cls().get_params()
    assert params, name
    for function in (cls.function, *cls.tuple_functions.values()):
        defaults = _keyword_defaults(function)
        # The batch loss receives every parameter (Loss.bound_function), a tuple loss those
        # it takes.
        expected = params.keys() if function is cls.function else params.keys() & defaults
        assert set(expected) <= set(defaults), (name, function.__name__)
        for param in expected:
            pair = (defaults[param], params[param])
            if (name, param) in DELIBERATE_DIFFERENCES:
                assert pair == DELIBERATE_DIFFERENCES[name, param]
            else:
                assert defaults[param] == params[param], (name, function.__name__, param)
                assert type(defaults[param]) is type(params[param]), (name, param)


def test_the_deliberate_differences_name_real_parameters():
    for name, param in DELIBERATE_DIFFERENCES:
        assert param in criteria.get_loss_class(name)().get_params()


# ---------------------------------------------------------------------- no host sync (GPU)
@pytest.mark.parametrize(
    "name,kw",
    [
        ("contrastive", {}),
        ("npair", {}),
        ("npair", {"l2_reg": 0.01}),
        ("lifted", {"variant": "smooth"}),
        ("lifted", {"variant": "hard"}),
        ("triplet", {"mining": "batch_hard"}),
    ],
)
def test_losses_never_read_a_value_back_from_the_device(name, kw):
    """Meta tensors have no values: a ``.item()``, ``bool(tensor)`` or a shape that depends
    on values raises, so these losses would not stall a GPU step. (The triplet windows read
    one number, the most positives an anchor has, to size their table.)"""
    from sk_dml.losses import contrastive_loss, lifted_struct_loss, npair_loss, triplet_loss

    function = {
        "contrastive": contrastive_loss,
        "npair": npair_loss,
        "lifted": lifted_struct_loss,
        "triplet": triplet_loss,
    }[name]
    emb = torch.empty(8, 3, device="meta", requires_grad=True)
    y = torch.zeros(8, dtype=torch.long, device="meta")
    loss = function(emb, y, **kw)
    assert loss.shape == () and loss.device.type == "meta"
