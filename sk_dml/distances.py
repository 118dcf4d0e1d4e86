"""Pairwise distance matrices in torch (and numpy through the same function).

The textbook formulas, as in :func:`scipy.spatial.distance.cdist` (which the tests compare
against):

- ``euclidean``: ``sqrt(sum((a - b)**2))``
- ``sqeuclidean``: ``sum((a - b)**2)``
- ``manhattan`` (alias ``cityblock``): ``sum(|a - b|)``
- ``chebyshev``: ``max(|a - b|)``
- ``cosine``: ``1 - a.b / (|a| |b|)``

Every metric is autograd-safe: the gradient is finite (zero) where two rows coincide, which
is where a naive ``sqrt`` would return NaN.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.autograd.function import once_differentiable

__all__ = ["METRICS", "check_metric", "paired_distance", "pairwise_distance"]

#: Names accepted by ``metric=``/``distance=`` everywhere in sk_dml.
METRICS = ("euclidean", "sqeuclidean", "manhattan", "cityblock", "chebyshev", "cosine")


def check_metric(metric: str) -> str:
    """Return the canonical name of ``metric`` or raise a ValueError naming the valid ones."""
    if metric not in METRICS:
        raise ValueError(f"Unknown distance {metric!r}; expected one of {', '.join(METRICS)}.")
    return "manhattan" if metric == "cityblock" else metric


class _EuclideanDistance(torch.autograd.Function):
    """Exact Euclidean distances with a backward made of two matmuls.

    The forward never uses the ``||x||^2 + ||y||^2 - 2x.y`` expansion in the input's own
    precision, which loses all precision in float32 for close points far from the origin.
    Float32 on the CPU takes the expansion in float64 (one matmul; products of float32 values
    are exact in float64, so only pairs closer than ~1e-6 of their norms lose accuracy, and
    those are set to exactly 0): 2-5x faster than torch.cdist's direct kernel there, from
    batches of about 128 rows. Other inputs take that direct kernel (differences). torch's own
    backward for it runs a slow per-pair kernel; the gradient ``dD_ij/dx_i = (x_i - y_j) /
    D_ij`` summed with weights W = G / D is ``rowsum(W) x - W y``, two matmuls, and 0 where
    rows coincide (D = 0).
    """

    @staticmethod
    def forward(ctx, x, y):
        same = y is None
        other = x if same else y
        # Below ~2^18 multiply-adds the expansion's extra operations cost more than it saves.
        if x.dtype == torch.float32 and x.device.type == "cpu" and x.numel() * len(other) >= 2**18:
            dist = _expanded_in_float64(x, y)
        else:
            dist = torch.cdist(x, x if same else y, compute_mode="donot_use_mm_for_euclid_dist")
        ctx.same = same
        ctx.save_for_backward(x, dist) if same else ctx.save_for_backward(x, y, dist)
        return dist

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        if ctx.same:
            x, dist = ctx.saved_tensors
            w = torch.where(dist > 0, grad / dist, 0.0)
            w = w + w.T  # x is both sides of every pair
            return w.sum(1, keepdim=True) * x - w @ x, None
        x, y, dist = ctx.saved_tensors
        w = torch.where(dist > 0, grad / dist, 0.0)
        return w.sum(1, keepdim=True) * x - w @ y, w.sum(0).unsqueeze(1) * y - w.T @ x


def _expanded_in_float64(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """Float32 Euclidean distances through ``||x||^2 + ||y||^2 - 2x.y`` in float64.

    The float64 rounding of the three terms is at most ~d * eps64 of ``||x||^2 + ||y||^2``;
    squared distances below 8 times that bound are rounding noise (coincident rows) and
    become exactly 0, as the direct kernel gives.
    """
    x64 = x.double()
    y64 = x64 if y is None else y.double()
    sq_x = x64.square().sum(1, keepdim=True)
    sq_y = sq_x if y is None else y64.square().sum(1, keepdim=True)
    scale = sq_x + sq_y.T
    squared = torch.addmm(scale, x64, y64.T, alpha=-2.0)
    noise = 8 * x.shape[1] * torch.finfo(torch.float64).eps
    squared.masked_fill_(squared <= scale.mul_(noise), 0.0)
    return squared.float().sqrt_()


def _torch_pairwise(x: torch.Tensor, y: torch.Tensor | None, metric: str) -> torch.Tensor:
    same = y is None
    y = x if same else y
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"pairwise_distance needs 2-D inputs with the same number of columns, "
            f"got shapes {tuple(x.shape)} and {tuple(y.shape)}."
        )
    if metric in ("euclidean", "sqeuclidean"):
        dist = _EuclideanDistance.apply(x, None if same else y)
        return dist.square() if metric == "sqeuclidean" else dist
    if metric == "cosine":
        xn = torch.nn.functional.normalize(x, dim=1)
        yn = xn if same else torch.nn.functional.normalize(y, dim=1)
        dist = (1.0 - xn @ yn.T).clamp(0.0, 2.0)
        if same:  # rounding leaves ~1e-7 on the diagonal; a row is at distance 0 of itself
            dist = dist.masked_fill(torch.eye(len(x), dtype=torch.bool, device=x.device), 0.0)
        return dist
    # L1 and L-inf: torch.cdist's kernels again (no (n, m, d) tensor, zero subgradient at
    # coincident rows).
    p = 1.0 if metric == "manhattan" else float("inf")
    return torch.cdist(x.unsqueeze(0), y.unsqueeze(0), p=p).squeeze(0)


def pairwise_distance(x, y=None, metric: str = "euclidean"):
    """Distance between every row of ``x`` and every row of ``y``.

    Parameters
    ----------
    x : torch.Tensor or array-like of shape (n, d)
    y : torch.Tensor or array-like of shape (m, d), default=None
        ``None`` means ``x`` against itself (the diagonal is then exactly 0).
    metric : {"euclidean", "sqeuclidean", "manhattan", "cityblock", "chebyshev", "cosine"}

    Returns
    -------
    D : torch.Tensor or numpy.ndarray of shape (n, m)
        A tensor (connected to the autograd graph) for tensor input, a numpy array otherwise.
        Equal to ``scipy.spatial.distance.cdist(x, y, metric)`` to floating-point tolerance.
    """
    metric = check_metric(metric)
    if isinstance(x, torch.Tensor):
        if y is not None and not isinstance(y, torch.Tensor):
            y = torch.as_tensor(np.asarray(y), dtype=x.dtype, device=x.device)
        return _torch_pairwise(x, y, metric)
    x_np = np.asarray(x)
    dtype = x_np.dtype if x_np.dtype in (np.float32, np.float64) else np.float64
    xt = torch.from_numpy(np.ascontiguousarray(x_np, dtype=dtype))
    yt = None if y is None else torch.from_numpy(np.ascontiguousarray(np.asarray(y), dtype=dtype))
    with torch.no_grad():
        return _torch_pairwise(xt, yt, metric).numpy()


def paired_distance(x, y, metric: str = "euclidean"):
    """Distance between row i of ``x`` and row i of ``y`` (along the last axis).

    Works on torch tensors and on numpy arrays of any matching shape, 1-D included; the numpy
    path has no torch overhead, which is what a per-pair callable metric needs.
    """
    metric = check_metric(metric)
    lib = torch if isinstance(x, torch.Tensor) else np
    if lib is np:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if metric == "cosine":
        dot = (x * y).sum(-1)
        if lib is np:
            norms = np.sqrt((x * x).sum(-1) * (y * y).sum(-1))
        else:  # torch's norm has a zero subgradient at 0, so a zero row's gradient is finite
            norms = torch.linalg.vector_norm(x, dim=-1) * torch.linalg.vector_norm(y, dim=-1)
        return 1.0 - dot / lib.where(norms > 0, norms, 1.0)
    diff = x - y
    if metric == "sqeuclidean":
        return (diff * diff).sum(-1)
    if metric == "euclidean":  # torch's norm has a zero subgradient at 0, unlike sqrt
        return (
            np.sqrt((diff * diff).sum(-1)) if lib is np else torch.linalg.vector_norm(diff, dim=-1)
        )
    if metric == "manhattan":
        return abs(diff).sum(-1)
    return abs(diff).max(-1) if lib is np else abs(diff).amax(-1)
