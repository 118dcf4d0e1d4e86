"""pairwise_distance against scipy's cdist and a per-pair torch reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DISTANCES, ref_cdist, torch_pair_distance
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sk_dml.distances import METRICS, check_metric, pairwise_distance

ALL_NAMES = (*DISTANCES, "cityblock")


def _data(seed: int, n: int, m: int, dim: int, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    y = torch.randn(m, dim, generator=gen, dtype=torch.float64)
    return x.to(dtype), y.to(dtype)


def _tol(dtype):
    if dtype == torch.float64:
        return {"rtol": 1e-10, "atol": 1e-10}
    return {"rtol": 1e-5, "atol": 2e-5}


# ------------------------------------------------------------------------------ value vs cdist
@pytest.mark.parametrize("metric", ALL_NAMES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(7, 5, 3), (1, 4, 6), (9, 1, 1), (16, 11, 40)])
def test_matches_cdist_two_inputs(metric, dtype, shape):
    n, m, dim = shape
    x, y = _data(n * 100 + m, n, m, dim, dtype)
    got = pairwise_distance(x, y, metric=metric)
    assert isinstance(got, torch.Tensor)
    assert got.shape == (n, m)
    assert got.dtype == dtype
    expected = ref_cdist(x.double().numpy(), y.double().numpy(), metric)
    np.testing.assert_allclose(got.double().numpy(), expected, **_tol(dtype))


@pytest.mark.parametrize("metric", ALL_NAMES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_cdist_self(metric, dtype):
    x, _ = _data(3, 10, 1, 6, dtype)
    got = pairwise_distance(x, metric=metric)
    assert got.shape == (10, 10)
    np.testing.assert_allclose(
        got.double().numpy(), ref_cdist(x.double().numpy(), metric=metric), **_tol(dtype)
    )
    torch.testing.assert_close(got, got.T, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("metric", ALL_NAMES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_self_distance_diagonal_is_exactly_zero(metric, dtype):
    # The docstring promises: "None means x against itself (the diagonal is then exactly 0)".
    x, _ = _data(3, 10, 1, 6, dtype)
    diagonal = pairwise_distance(x, metric=metric).diagonal()
    assert torch.all(diagonal == 0), diagonal


@pytest.mark.parametrize("metric", DISTANCES)
def test_default_y_equals_explicit_x(metric):
    x, _ = _data(4, 8, 1, 3)
    torch.testing.assert_close(
        pairwise_distance(x, metric=metric),
        pairwise_distance(x, x, metric=metric),
        rtol=1e-9,
        atol=1e-7,
    )


def test_default_metric_is_euclidean():
    x, y = _data(5, 4, 6, 3)
    np.testing.assert_allclose(
        pairwise_distance(x, y).numpy(), ref_cdist(x, y, "euclidean"), rtol=1e-10, atol=1e-12
    )


def test_cityblock_is_manhattan():
    x, y = _data(6, 5, 5, 4)
    torch.testing.assert_close(
        pairwise_distance(x, y, metric="cityblock"), pairwise_distance(x, y, metric="manhattan")
    )
    assert check_metric("cityblock") == "manhattan"


@pytest.mark.parametrize("metric", ALL_NAMES)
def test_metrics_constant_lists_every_name(metric):
    assert metric in METRICS


def test_hand_computed_values():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    expected = {
        "euclidean": [[1.0, 2.0], [20**0.5, 13**0.5]],
        "sqeuclidean": [[1.0, 4.0], [20.0, 13.0]],
        "manhattan": [[1.0, 2.0], [6.0, 5.0]],
        "chebyshev": [[1.0, 2.0], [4.0, 3.0]],
    }
    for metric, values in expected.items():
        got = pairwise_distance(x, y, metric=metric)
        np.testing.assert_allclose(got.numpy(), values, rtol=1e-12, atol=1e-12, err_msg=metric)
    # cosine: 1 - cos(angle); (3,4) vs (1,0): cos = 0.6 ; (3,4) vs (0,2): cos = 0.8
    got = pairwise_distance(x[1:], y, metric="cosine")
    np.testing.assert_allclose(got.numpy(), [[0.4, 0.2]], rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------- numpy in/out
@pytest.mark.parametrize("metric", ALL_NAMES)
def test_numpy_input_returns_numpy(metric):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
    got = pairwise_distance(x, y, metric=metric)
    assert isinstance(got, np.ndarray)
    assert got.shape == (6, 4)
    np.testing.assert_allclose(got, ref_cdist(x, y, metric), rtol=1e-10, atol=1e-10)
    got_self = pairwise_distance(x, metric=metric)
    assert isinstance(got_self, np.ndarray)
    np.testing.assert_allclose(got_self, ref_cdist(x, metric=metric), rtol=1e-10, atol=1e-10)


def test_numpy_integer_input():
    x = np.array([[0, 0], [3, 4]])
    got = pairwise_distance(x)
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, [[0.0, 5.0], [5.0, 0.0]], atol=1e-12)


# -------------------------------------------------------------------------------- errors
def test_unknown_metric_raises_naming_it():
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="minkowski"):
        pairwise_distance(x, metric="minkowski")
    with pytest.raises(ValueError, match="hamming"):
        pairwise_distance(np.zeros((2, 2)), metric="hamming")


def test_mismatched_columns_raise():
    with pytest.raises(ValueError):
        pairwise_distance(torch.zeros(3, 2), torch.zeros(3, 4))


# ------------------------------------------------------------------- duplicates and precision
@pytest.mark.parametrize("metric", ALL_NAMES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradient_finite_with_identical_rows(metric, dtype):
    x, _ = _data(7, 6, 1, 4, dtype)
    x = x.clone()
    x[3] = x[1]
    x[5] = x[1]
    x.requires_grad_(True)
    weights = torch.rand(6, 6, generator=torch.Generator().manual_seed(0)).to(dtype)
    (pairwise_distance(x, metric=metric) * weights).sum().backward()
    assert torch.isfinite(x.grad).all()
    # Explicit second operand holding the same rows.
    x2 = x.detach().clone().requires_grad_(True)
    y2 = x.detach().clone().requires_grad_(True)
    (pairwise_distance(x2, y2, metric=metric) * weights).sum().backward()
    assert torch.isfinite(x2.grad).all()
    assert torch.isfinite(y2.grad).all()


@pytest.mark.parametrize("metric", DISTANCES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("dim", [3, 64])
def test_identical_rows_are_at_distance_zero(metric, dtype, dim):
    # cdist gives exactly 0 between identical rows, whatever their norm; a tolerance of a few
    # ulps of the row norms is "float tolerance".
    gen = torch.Generator().manual_seed(dim)
    x = (3.0 * torch.randn(10, dim, generator=gen, dtype=torch.float64)).to(dtype)
    x[5] = x[2]
    eps = torch.finfo(dtype).eps
    scale = float(x.abs().max()) ** (2 if metric == "sqeuclidean" else 1)
    tol = 64 * eps * max(scale, 1.0)
    self_dist = pairwise_distance(x, metric=metric)
    assert float(self_dist[2, 5]) <= tol
    assert float(self_dist[5, 2]) <= tol
    cross = pairwise_distance(x, x.clone(), metric=metric)
    assert float(cross.diagonal().abs().max()) <= tol


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_close_points_relative_accuracy(metric, dtype):
    # Two points 1e-3 apart, far from the origin: the relative error of the distance should be
    # of the order of the float precision times ||x|| / distance at worst, not 100 %.
    gen = torch.Generator().manual_seed(1)
    x = 10.0 + torch.randn(4, 8, generator=gen, dtype=torch.float64)
    y = x + 1e-3 * torch.randn(4, 8, generator=gen, dtype=torch.float64)
    x, y = x.to(dtype), y.to(dtype)
    expected = ref_cdist(x.double().numpy(), y.double().numpy(), metric).diagonal()
    got = pairwise_distance(x, y, metric=metric).double().numpy().diagonal()
    np.testing.assert_allclose(got, expected, rtol=1e-2)


# ------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("metric", DISTANCES)
def test_gradient_matches_per_pair_reference(metric):
    x0, y0 = _data(11, 5, 4, 3)
    weights = torch.randn(5, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x, y = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
    (pairwise_distance(x, y, metric=metric) * weights).sum().backward()

    xr, yr = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
    total = sum(
        weights[i, j] * torch_pair_distance(xr[i], yr[j], metric)
        for i in range(5)
        for j in range(4)
    )
    total.backward()
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(y.grad, yr.grad, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("metric", DISTANCES)
def test_self_gradient_matches_per_pair_reference(metric):
    x0, _ = _data(12, 6, 1, 3)
    weights = torch.randn(6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = x0.clone().requires_grad_(True)
    (pairwise_distance(x, metric=metric) * weights).sum().backward()
    xr = x0.clone().requires_grad_(True)
    total = sum(
        weights[i, j] * torch_pair_distance(xr[i], xr[j], metric)
        for i in range(6)
        for j in range(6)
        if i != j
    )
    total.backward()
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-8, atol=1e-10)


# ------------------------------------------------------------------------------- properties
_finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 6),
    m=st.integers(1, 6),
    dim=st.integers(1, 4),
    metric=st.sampled_from(["euclidean", "sqeuclidean", "manhattan", "chebyshev"]),
)
def test_property_matches_cdist(data, n, m, dim, metric):
    x = data.draw(arrays(np.float64, (n, dim), elements=_finite))
    y = data.draw(arrays(np.float64, (m, dim), elements=_finite))
    expected = ref_cdist(x, y, metric)
    got = pairwise_distance(torch.from_numpy(x), torch.from_numpy(y), metric=metric)
    scale = max(1.0, float(np.abs(x).max(initial=0.0)), float(np.abs(y).max(initial=0.0)))
    scale = scale**2 if metric == "sqeuclidean" else scale
    assert torch.isfinite(got).all()
    assert (got >= 0).all()
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-6 * scale)


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 6),
    dim=st.integers(1, 4),
)
def test_property_cosine_matches_cdist_and_is_bounded(data, n, dim):
    x = data.draw(
        arrays(np.float64, (n, dim), elements=st.floats(-100, 100).filter(lambda v: abs(v) > 1e-3))
    )
    got = pairwise_distance(torch.from_numpy(x), metric="cosine")
    np.testing.assert_allclose(got.numpy(), ref_cdist(x, metric="cosine"), rtol=1e-8, atol=1e-8)
    assert (got >= 0).all() and (got <= 2).all()


def test_cosine_of_zero_row_is_finite_with_finite_gradient():
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0], [-1.0, 0.5]], dtype=torch.float64, requires_grad=True)
    d = pairwise_distance(x, metric="cosine")
    assert torch.isfinite(d).all()
    d.sum().backward()
    assert torch.isfinite(x.grad).all()


# ----------------------------------------- the float64 expansion (float32 on the CPU, large)
def test_large_float32_batches_match_scipy_with_duplicates_and_close_points():
    """From ~2^18 multiply-adds, float32 Euclidean distances on the CPU go through the
    expansion in float64: still float32-accurate against scipy, exactly 0 between identical
    rows, and accurate for close points far from the origin (where a float32 expansion loses
    every digit)."""
    gen = torch.Generator().manual_seed(7)
    x = 5.0 + torch.randn(300, 64, generator=gen)
    x[10] = x[3]  # a duplicate
    x[20] = x[4] + 1e-3 * torch.randn(64, generator=gen)  # close, far from the origin
    y = torch.cat([x[:50], torch.randn(100, 64, generator=gen)])
    assert x.numel() * len(y) >= 2**18  # the expansion's path
    for got, expected in (
        (pairwise_distance(x), ref_cdist(x.double().numpy())),
        (pairwise_distance(x, y), ref_cdist(x.double().numpy(), y.double().numpy())),
    ):
        np.testing.assert_allclose(got.double().numpy(), expected, rtol=2e-6, atol=1e-6)
    self_dist = pairwise_distance(x)
    assert self_dist[3, 10] == 0 and self_dist[10, 3] == 0 and (self_dist.diagonal() == 0).all()
    assert (pairwise_distance(x, x.clone()).diagonal() == 0).all()
    close = float(self_dist[4, 20])
    assert close == pytest.approx(float((x[4] - x[20]).double().norm()), rel=1e-3)
    leaf = x.clone().requires_grad_(True)
    pairwise_distance(leaf).sum().backward()
    assert torch.isfinite(leaf.grad).all()
