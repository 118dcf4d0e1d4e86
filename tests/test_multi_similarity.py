"""The Multi-Similarity miner and loss against float64 loops, and against pytorch-metric-learning.

The references below are written from Wang et al. (CVPR 2019), eqs. 7, 8 and 10, with python
loops over anchors and pairs (no masks, no sorting): cosine similarities pair by pair, mining by
comparison with the hardest pair of the other kind, and the loss as a sum of per-anchor terms.
"""

from __future__ import annotations

import math

import conftest
import numpy as np
import pytest
import torch
from conftest import assert_close, log_sum_exp, negatives_of, positives_of, random_batch, value
from hypothesis import given, settings
from hypothesis import strategies as st

from sk_dml.losses import multi_similarity_loss
from sk_dml.miners import multi_similarity_pairs, pair_masks


# ------------------------------------------------------------------------------- references
def ref_ms_pairs(S, y: list[int], epsilon: float | None) -> tuple[set, set]:
    """The kept (anchor, positive) and (anchor, negative) pairs; S[i][j] are python floats.

    A negative (i, n) is kept when S_in > min_{p in P_i} S_ip - epsilon, a positive (i, p) when
    S_ip < max_{n in N_i} S_in + epsilon; epsilon None keeps every pair.
    """
    pos, neg = set(), set()
    for i in range(len(y)):
        positives, negatives = positives_of(y, i), negatives_of(y, i)
        for p in positives:
            if epsilon is None or (
                negatives and S[i][p] < max(S[i][n] for n in negatives) + epsilon
            ):
                pos.add((i, p))
        for n in negatives:
            if epsilon is None or (
                positives and S[i][n] > min(S[i][p] for p in positives) - epsilon
            ):
                neg.add((i, n))
    return pos, neg


def ref_cosine(emb: torch.Tensor) -> list[list[torch.Tensor]]:
    """Cosine similarities pair by pair, as differentiable torch scalars."""
    n = len(emb)
    norms = [torch.sqrt((emb[i] * emb[i]).sum()) for i in range(n)]
    return [[(emb[i] * emb[j]).sum() / (norms[i] * norms[j]) for j in range(n)] for i in range(n)]


def ref_ms_loss(emb, y, alpha=2.0, beta=50.0, base=0.5, epsilon=0.1) -> torch.Tensor:
    """Eq. 10 with the pairs of eqs. 7-8, averaged over all B anchors (float64 loops)."""
    y = [int(v) for v in y]
    n = len(y)
    zero = emb.sum() * 0.0
    S = ref_cosine(emb)
    pos, neg = ref_ms_pairs([[value(s) for s in row] for row in S], y, epsilon)
    total = zero
    for i in range(n):
        kept_pos = [p for p in range(n) if (i, p) in pos]
        kept_neg = [k for k in range(n) if (i, k) in neg]
        if kept_pos:
            total = total + log1p_sum_exp([-alpha * (S[i][p] - base) for p in kept_pos]) / alpha
        if kept_neg:
            total = total + log1p_sum_exp([beta * (S[i][k] - base) for k in kept_neg]) / beta
    return total / max(n, 1)


def log1p_sum_exp(terms: list[torch.Tensor]) -> torch.Tensor:
    """log(1 + sum(exp(t))): log1p when no term overflows (accurate for tiny sums), else shifted."""
    if max(value(t) for t in terms) <= 0:
        return torch.log1p(sum(torch.exp(t) for t in terms))
    return log_sum_exp([terms[0] * 0.0, *terms])  # = top + log(sum exp(t - top)), top > 0


def _pair_set(mask: torch.Tensor) -> set[tuple[int, int]]:
    rows, cols = mask.nonzero(as_tuple=True)
    return set(zip(rows.tolist(), cols.tolist(), strict=True))


def _grad(loss, emb):
    (grad,) = torch.autograd.grad(loss, emb)
    return grad


def assert_grad_close(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-9) -> None:
    """Elementwise, with the absolute slack scaled by the largest component (cancellations)."""
    scale = float(expected.abs().max())
    torch.testing.assert_close(got, expected, rtol=rtol, atol=rtol * scale)


def _cosine64(emb: torch.Tensor) -> torch.Tensor:
    """Float64 cosine matrix from the loop reference, as a tensor without gradient."""
    return torch.tensor([[value(s) for s in row] for row in ref_cosine(emb.detach().double())])


# ----------------------------------------------------------------------------------- miner
@pytest.mark.parametrize("epsilon", [0.0, 0.05, 0.1, 0.3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_miner_matches_loop_on_random_batches(seed, epsilon):
    emb, y = random_batch(seed, n=14, dim=4, n_classes=3)
    y[5] = 77  # a singleton class: its anchor keeps nothing, and it is a negative of all others
    sim = _cosine64(emb)
    positive, negative = multi_similarity_pairs(sim, torch.tensor(y), epsilon=epsilon)
    assert positive.dtype == negative.dtype == torch.bool
    assert positive.shape == negative.shape == (14, 14)
    exp_pos, exp_neg = ref_ms_pairs(sim.tolist(), y, epsilon)
    _, all_neg = ref_ms_pairs(sim.tolist(), y, None)
    assert 0 < len(exp_neg) < len(all_neg), "degenerate test batch: mining drops nothing"
    assert _pair_set(positive) == exp_pos
    assert _pair_set(negative) == exp_neg


# Similarities on a grid of multiples of 1/4, and epsilons of 0, 1/8, 1/4 or 1/2: every sum and
# difference is exact in floating point, so the strict inequalities meet many exact ties.
GRID = [k / 4 for k in range(-4, 5)]


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 8),
    epsilon=st.sampled_from([0.0, 0.125, 0.25, 0.5]),
)
def test_property_miner_on_grid_similarities_with_ties(data, n, epsilon):
    values = data.draw(st.lists(st.sampled_from(GRID), min_size=n * n, max_size=n * n))
    sim = torch.tensor(values, dtype=torch.float64).reshape(n, n)
    y = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    positive, negative = multi_similarity_pairs(sim, torch.tensor(y), epsilon=epsilon)
    exp_pos, exp_neg = ref_ms_pairs(sim.tolist(), y, epsilon)
    assert _pair_set(positive) == exp_pos
    assert _pair_set(negative) == exp_neg


def test_miner_hand_example_strict_inequalities():
    # Anchor 0 (class A): positive 1 at S=0.5, positive 2 at S=0.75; negatives 3 at S=0.25,
    # 4 at S=0.5 (a tie with the hardest positive). With epsilon = 0.25:
    # negatives kept: S_0n > 0.5 - 0.25 = 0.25 -> 4 only (3 sits exactly on the bound);
    # positives kept: S_0p < 0.5 + 0.25 = 0.75 -> 1 only (2 sits exactly on the bound).
    sim = torch.zeros(5, 5, dtype=torch.float64)
    sim[0, 1:] = torch.tensor([0.5, 0.75, 0.25, 0.5], dtype=torch.float64)
    positive, negative = multi_similarity_pairs(sim, torch.tensor([0, 0, 0, 1, 1]), epsilon=0.25)
    assert _pair_set(positive[:1]) == {(0, 1)}
    assert _pair_set(negative[:1]) == {(0, 4)}
    # epsilon = 0: negative 4 and positive 1 tie with the bounds (0.5 vs 0.5): nothing is kept.
    positive, negative = multi_similarity_pairs(sim, torch.tensor([0, 0, 0, 1, 1]), epsilon=0.0)
    assert _pair_set(positive[:1]) == set()
    assert _pair_set(negative[:1]) == set()


MINER_EDGE_LABELS = {
    "one_class": [3] * 6,
    "all_singletons": list(range(6)),
    "one_row": [0],
    "pair_of_classes": [0, 1],
    "two_classes_of_two": [0, 0, 1, 1],
}


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 10.0])
@pytest.mark.parametrize("labels", MINER_EDGE_LABELS.values(), ids=MINER_EDGE_LABELS.keys())
def test_miner_edge_labels(labels, epsilon):
    gen = torch.Generator().manual_seed(len(labels))
    sim = torch.rand(len(labels), len(labels), generator=gen, dtype=torch.float64) * 2 - 1
    positive, negative = multi_similarity_pairs(sim, labels, epsilon=epsilon)
    exp_pos, exp_neg = ref_ms_pairs(sim.tolist(), labels, epsilon)
    assert _pair_set(positive) == exp_pos
    assert _pair_set(negative) == exp_neg
    if len(set(labels)) in (1, len(labels)):  # no negatives, or no positives: nothing at all
        assert not positive.any() and not negative.any()


def test_miner_duplicated_rows():
    emb, y = random_batch(3, n=6, dim=3, n_classes=2)
    emb = torch.cat([emb, emb])  # each row twice: similarities of exactly-equal vectors
    y = y + [(v + 1) % 2 for v in y]  # ...once in its class and once in the other
    sim = _cosine64(emb)
    for epsilon in (0.0, 0.1):
        positive, negative = multi_similarity_pairs(sim, y, epsilon=epsilon)
        exp_pos, exp_neg = ref_ms_pairs(sim.tolist(), y, epsilon)
        assert _pair_set(positive) == exp_pos
        assert _pair_set(negative) == exp_neg


def test_miner_keeps_a_subset_of_the_pairs_and_ignores_the_diagonal():
    emb, y = random_batch(4, n=10)
    sim = _cosine64(emb)
    sim.fill_diagonal_(-5.0)  # the diagonal is no pair, whatever its value
    positive, negative = multi_similarity_pairs(sim, y, epsilon=1e9)
    all_pos, all_neg = pair_masks(torch.tensor(y))
    assert torch.equal(positive, all_pos) and torch.equal(negative, all_neg)
    positive, negative = multi_similarity_pairs(sim, y, epsilon=0.0)
    assert not (positive & ~all_pos).any() and not (negative & ~all_neg).any()
    assert not positive.diagonal().any() and not negative.diagonal().any()


def test_miner_is_the_same_as_pml_miner():
    miners = pytest.importorskip("pytorch_metric_learning.miners")
    for seed in range(4):
        gen = torch.Generator().manual_seed(seed)
        emb = torch.randn(24, 6, generator=gen)
        y = torch.randint(0, 4, (24,), generator=gen)
        if seed == 3:  # exact 0/1 similarities: ties at every epsilon below
            emb = torch.eye(6)[torch.randint(0, 3, (24,), generator=gen)]
        unit = torch.nn.functional.normalize(emb, dim=1)
        for epsilon in (0.0, 0.1, 0.5, 1.0):
            a1, p, a2, n = miners.MultiSimilarityMiner(epsilon=epsilon)(emb, y)
            positive, negative = multi_similarity_pairs(unit @ unit.T, y, epsilon=epsilon)
            assert _pair_set(positive) == set(zip(a1.tolist(), p.tolist(), strict=True))
            assert _pair_set(negative) == set(zip(a2.tolist(), n.tolist(), strict=True))


# ------------------------------------------------------------------------------------ loss
PARAMS = [
    dict(alpha=2.0, beta=50.0, base=0.5, epsilon=0.1),  # the paper's and PML's defaults
    dict(alpha=2.0, beta=50.0, base=0.5, epsilon=None),
    dict(alpha=1.0, beta=10.0, base=0.0, epsilon=0.0),
    dict(alpha=0.5, beta=4.0, base=-0.3, epsilon=0.3),
    dict(alpha=10.0, beta=40.0, base=0.8, epsilon=None),
    dict(alpha=3.0, beta=3.0, base=0.2, epsilon=1.0),
]


def _pid(params) -> str:
    return "-".join(f"{k}={v}" for k, v in params.items())


@pytest.mark.parametrize("params", PARAMS, ids=_pid)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_value_matches_loop_reference(params, seed):
    emb, y = random_batch(seed, n=13, dim=4, n_classes=3)
    got = multi_similarity_loss(emb, y, **params)
    expected = ref_ms_loss(emb, y, **params)
    assert got.ndim == 0 and got.dtype == torch.float64
    assert value(expected) > 0, "degenerate test batch"
    assert_close(got, expected)


def test_defaults_are_the_papers():
    emb, y = random_batch(5, n=12, dim=3)
    assert_close(multi_similarity_loss(emb, y), ref_ms_loss(emb, y, 2.0, 50.0, 0.5, 0.1))


@pytest.mark.parametrize("params", PARAMS[:4], ids=_pid)
def test_float32_close_to_float64_reference(params):
    emb, y = random_batch(6, n=16, dim=5, n_classes=4)
    got = multi_similarity_loss(emb.float(), y, **params)
    assert got.dtype == torch.float32
    assert_close(got, ref_ms_loss(emb, y, **params), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("params", PARAMS, ids=_pid)
def test_gradient_matches_autograd_of_the_loop(params):
    emb, y = random_batch(7, n=11, dim=3, n_classes=3)
    emb = emb.requires_grad_(True)
    got = _grad(multi_similarity_loss(emb, y, **params), emb)
    expected = _grad(ref_ms_loss(emb, y, **params), emb)
    assert got.abs().sum() > 0
    assert_grad_close(got, expected)


def test_epsilon_changes_the_pairs_that_count():
    emb, y = random_batch(8, n=14, dim=4)
    values = [value(multi_similarity_loss(emb, y, epsilon=e)) for e in (0.0, 0.1, None)]
    expected = [value(ref_ms_loss(emb, y, epsilon=e)) for e in (0.0, 0.1, None)]
    assert len(set(values)) == 3  # mining matters on this batch
    for got, exp in zip(values, expected, strict=True):
        assert_close(got, exp)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(2, 9),
    n_classes=st.integers(1, 4),
    alpha=st.sampled_from([0.5, 2.0, 8.0]),
    beta=st.sampled_from([1.0, 50.0]),
    base=st.sampled_from([-0.5, 0.0, 0.5]),
    epsilon=st.sampled_from([None, 0.0, 0.1, 0.5]),
)
def test_property_value_and_gradient(seed, n, n_classes, alpha, beta, base, epsilon):
    rng = np.random.default_rng(seed)
    emb = torch.tensor(rng.normal(size=(n, 3)), requires_grad=True)
    y = rng.integers(0, n_classes, n).tolist()
    params = dict(alpha=alpha, beta=beta, base=base, epsilon=epsilon)
    got = multi_similarity_loss(emb, y, **params)
    expected = ref_ms_loss(emb, y, **params)
    assert_close(got, expected)
    assert_grad_close(_grad(got, emb), _grad(expected, emb))


# ----------------------------------------------------------------------------- edge cases
EDGE_LABELS = {**conftest.EDGE_LABELS, "no_rows": []}


@pytest.mark.parametrize("epsilon", [0.1, None])
@pytest.mark.parametrize("labels", EDGE_LABELS.values(), ids=EDGE_LABELS.keys())
def test_edge_labels_match_loop_and_stay_connected(labels, epsilon):
    gen = torch.Generator().manual_seed(len(labels))
    emb = torch.randn(len(labels), 3, generator=gen, dtype=torch.float64, requires_grad=True)
    got = multi_similarity_loss(emb, labels, epsilon=epsilon)
    expected = ref_ms_loss(emb.detach(), labels, epsilon=epsilon)
    assert got.ndim == 0 and got.requires_grad
    assert_close(got, expected)
    sim = [[value(v) for v in row] for row in ref_cosine(emb.detach())]
    nothing_active = ref_ms_pairs(sim, labels, epsilon) == (set(), set())
    if nothing_active:
        assert value(got) == 0.0
    got.backward()  # connected to the graph, also when nothing is active
    assert emb.grad is not None and torch.isfinite(emb.grad).all()
    if nothing_active:
        assert not emb.grad.any()


def test_one_class_and_singletons_mine_nothing():
    # No negatives (one class) or no positives (all singletons): with mining, no anchor keeps a
    # pair; without it, only one side of the loss is active.
    emb = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for labels in ([2] * 6, list(range(6))):
        assert value(multi_similarity_loss(emb, labels, epsilon=0.1)) == 0.0
        assert_close(
            multi_similarity_loss(emb, labels, epsilon=None), ref_ms_loss(emb, labels, epsilon=None)
        )
        assert value(multi_similarity_loss(emb, labels, epsilon=None)) > 0


def test_separated_classes_mine_nothing_but_keep_the_graph():
    # Class 0 near +e1 and class 1 near -e1: every positive is far above every negative + epsilon.
    gen = torch.Generator().manual_seed(1)
    sign = torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
    emb = torch.randn(6, 3, generator=gen, dtype=torch.float64) * 0.01
    emb[:, 0] += sign
    emb.requires_grad_(True)
    y = [0, 0, 0, 1, 1, 1]
    loss = multi_similarity_loss(emb, y, epsilon=0.1)
    assert value(ref_ms_loss(emb.detach(), y, epsilon=0.1)) == 0.0
    assert value(loss) == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))
    assert value(multi_similarity_loss(emb, y, epsilon=None)) > 0  # unmined, the pairs count


@pytest.mark.parametrize("epsilon", [0.0, 0.1, None])
def test_duplicated_rows_match_loop_and_stay_finite(epsilon):
    emb, y = random_batch(9, n=6, dim=3, n_classes=2)
    emb = torch.cat([emb, emb, emb[:2]]).requires_grad_(True)  # rows twice, across classes too
    y = y + [(v + 1) % 2 for v in y] + y[:2]
    loss = multi_similarity_loss(emb, y, epsilon=epsilon)
    expected = ref_ms_loss(emb, y, epsilon=epsilon)
    assert_close(loss, expected, rtol=1e-7)
    grad = _grad(loss, emb)
    assert torch.isfinite(grad).all()
    assert_grad_close(grad, _grad(expected, emb), rtol=1e-7)


def test_large_scales_stay_finite_in_float32():
    # beta (S - base) up to 1e4: exp() overflows float32, softplus(logsumexp) does not.
    emb, y = random_batch(10, n=12, dim=3)
    emb32 = emb.float().requires_grad_(True)
    loss = multi_similarity_loss(emb32, y, alpha=1e3, beta=1e4, base=-0.5, epsilon=None)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb32.grad).all()
    assert_close(loss, ref_ms_loss(emb, y, 1e3, 1e4, -0.5, None), rtol=1e-4)


def test_labels_as_numpy_or_tensor():
    emb, y = random_batch(11, n=9)
    from_list = multi_similarity_loss(emb, y)
    assert_close(multi_similarity_loss(emb, np.array(y)), from_list)
    assert_close(multi_similarity_loss(emb, torch.tensor(y)), from_list)


def test_no_host_sync():
    # Meta tensors have no values: any .item(), bool(tensor) or data-dependent shape raises.
    with pytest.raises(RuntimeError):
        bool(torch.ones(1, device="meta").any())
    emb = torch.empty(8, 3, device="meta", requires_grad=True)
    y = torch.zeros(8, dtype=torch.long, device="meta")
    positive, negative = multi_similarity_pairs(torch.empty(8, 8, device="meta"), y)
    assert positive.shape == negative.shape == (8, 8) and positive.dtype == torch.bool
    for epsilon in (0.1, None):
        loss = multi_similarity_loss(emb, y, epsilon=epsilon)
        assert loss.shape == () and loss.device.type == "meta"


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"alpha": 0.0}, r"alpha must be > 0, got 0\.0"),
        ({"alpha": -1.0}, r"alpha must be > 0, got -1\.0"),
        ({"alpha": math.nan}, "alpha must be > 0, got nan"),
        ({"alpha": math.inf}, "alpha must be finite, got inf"),
        ({"beta": -2}, "beta must be > 0, got -2"),
        ({"beta": math.nan}, "beta must be > 0, got nan"),
        ({"beta": math.inf}, "beta must be finite, got inf"),
        ({"base": math.inf}, "base must be a finite real number, got inf"),
        ({"base": math.nan}, "base must be a finite real number, got nan"),
        ({"epsilon": -0.1}, r"epsilon must be >= 0 or None, got -0\.1"),
        ({"epsilon": math.nan}, "epsilon must be >= 0 or None, got nan"),
    ],
)
def test_bad_parameters_are_named(kwargs, message):
    emb, y = random_batch(12, n=6)
    with pytest.raises(ValueError, match=message):
        multi_similarity_loss(emb, y, **kwargs)


def test_bad_batches_and_miner_arguments():
    emb, y = random_batch(13, n=6)
    with pytest.raises(ValueError, match="labels must be 1-D"):
        multi_similarity_loss(emb, y[:5])
    with pytest.raises(ValueError, match="embeddings must be a 2-D"):
        multi_similarity_loss(emb[0], y[:1])
    sim = _cosine64(emb)
    with pytest.raises(ValueError, match=r"epsilon must be >= 0, got -1\.0"):
        multi_similarity_pairs(sim, y, epsilon=-1.0)
    with pytest.raises(ValueError, match="sim must be a square"):
        multi_similarity_pairs(sim[:5], y)
    with pytest.raises(ValueError, match="one entry per row of sim"):
        multi_similarity_pairs(sim, y[:5])


# ---------------------------------------------------------------- pytorch-metric-learning
def _pml_batches():
    for seed in range(4):
        gen = torch.Generator().manual_seed(seed)
        emb = torch.randn(32, 8, generator=gen)
        y = torch.randint(0, 4 + seed, (32,), generator=gen)
        if seed == 3:  # duplicated rows and exact 0/1 similarities (ties in the mining)
            emb = torch.eye(8)[torch.randint(0, 3, (32,), generator=gen)]
        yield emb, y


@pytest.mark.parametrize("params", [p for p in PARAMS if p["epsilon"] is not None], ids=_pid)
def test_mined_value_equals_pml(params):
    pml = pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning.losses import MultiSimilarityLoss
    from pytorch_metric_learning.miners import MultiSimilarityMiner

    assert pml.__version__
    theirs = MultiSimilarityLoss(alpha=params["alpha"], beta=params["beta"], base=params["base"])
    miner = MultiSimilarityMiner(epsilon=params["epsilon"])
    for emb, y in _pml_batches():
        pairs = miner(emb, y)
        # PML returns 0 when at most one pair of each kind is mined; these batches mine more.
        assert len(pairs[0]) > 1 or len(pairs[2]) > 1
        expected = theirs(emb, y, pairs)
        got = multi_similarity_loss(emb, y, **params)
        assert_close(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("params", [p for p in PARAMS if p["epsilon"] is None], ids=_pid)
def test_unmined_value_equals_pml_without_miner(params):
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    theirs = losses.MultiSimilarityLoss(
        alpha=params["alpha"], beta=params["beta"], base=params["base"]
    )
    for emb, y in _pml_batches():
        assert_close(multi_similarity_loss(emb, y, **params), theirs(emb, y), rtol=1e-5, atol=1e-7)
