"""Why two rows are close: each input column's share of their learned distance.

:func:`explain_distance` (every embedder's ``explain_distance`` method) splits the distance
``d(f(a), f(b))`` of each pair of rows into one share per input column by integrated gradients
(Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017), taken in the
network's continuous input: the output of its input layer (:class:`sk_dml.nets.TableInput`),
where a number is standardised (0 when missing, with its missing indicator next to it), a
category is its embedding vector and a text cell the vector of its n-grams. On the straight path
``h(t) = h(b) + t (h(a) - h(b))`` from ``b``'s to ``a``'s input,
``F(t) = d(body(h(t)), body(h(b)))`` runs from ``F(0) = 0`` to ``F(1) = d``, so

    d = sum_i (h_i(a) - h_i(b)) * integral_0^1 dF/dh_i(h(t)) dt,

and each input dimension's term goes to its column (a number's missing indicator with it, a
category's or a text column's whole vector with it): the shares add up to the distance
(completeness). Shares may be negative (a column that pulls the pair together). The integral
is computed in float64 by adaptive composite Gauss-Legendre quadrature (8 nodes per panel),
whose nodes are all interior: the Euclidean distance has no gradient at ``t = 0``, where ``F``
is 0, and is never evaluated there. On each panel ``[t0, t1]`` the quadrature's own
completeness error, ``|sum of the panel's shares - (F(t1) - F(t0))|``, is computed exactly from
two forward passes; the errors of the panels bound the completeness error of the pair (the
``F(t1) - F(t0)`` add up to ``d``), and panels whose error exceeds ``rtol * d * (t1 - t0)``
are halved until that bound is at most ``rtol * d`` (default ``1e-4``) or the pair has used
``max_steps`` gradient evaluations. A ReLU network's gradient jumps where a unit switches on
or off along the path, which is why a fixed rule converges slowly (about as 1/steps) and the
panels around those points are halved instead. The completeness error ``|sum of shares - d|``
is returned with the shares. Where the body is linear (and the metric Euclidean) the integrand
is constant and the shares are exact: ``<W_c (h_c(a) - h_c(b)), W (h(a) - h(b))> / d`` for
column ``c``.

:func:`explain_neighbors` does the same for a query and each of its k nearest rows of a
reference table, and :func:`plot_distance_explanation` draws one pair's shares.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_is_fitted

from .tabular import is_dataframe

__all__ = ["explain_distance", "explain_neighbors", "plot_distance_explanation"]

#: Gauss-Legendre nodes per panel, and the panels a path starts with.
_NODES_PER_PANEL = 8
_START_PANELS = 4
#: Rows through the body per forward/backward pass.
_CHUNK_ROWS = 8192


def column_names(estimator) -> list[str]:
    """The input columns' names: ``feature_names_in_``, else ``x0, x1, ...``."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    return [f"x{i}" for i in range(estimator.n_features_in_)]


def input_columns(schema) -> np.ndarray:
    """For each output dimension of the input layer built for ``schema``, the position of the
    input column it comes from: the numbers, their missing indicators, the categories'
    embeddings, then the text columns' (the order of :meth:`sk_dml.nets.TableInput.forward`)."""
    parts = [np.asarray(schema.numeric, dtype=np.int64)]
    parts.append(np.asarray([schema.numeric[j] for j in schema.missing_indicators], np.int64))
    for position, width in zip(schema.categorical, schema.embedding_dims, strict=True):
        parts.append(np.full(width, position, np.int64))
    for position, width in zip(schema.text, schema.text_embedding_dims, strict=True):
        parts.append(np.full(width, position, np.int64))
    return np.concatenate(parts)


def _pair_rows(estimator, a, b):
    """The two tables of rows whose pairs are explained: ``a`` and ``b``, or, with ``b``
    None, the pairs ``a`` as :meth:`pair_distance` takes them."""
    if b is not None:
        if len(a) != len(b):
            raise ValueError(f"a and b must have as many rows; got {len(a)} and {len(b)}.")
        return a, b
    if hasattr(estimator, "_check_tuples"):  # a tuple embedder: indices into its preprocessor
        index, table = estimator._check_tuples(a, fitting=False, size=2)
        take = (
            (lambda i: table.iloc[i]) if is_dataframe(table) else (lambda i: np.asarray(table)[i])
        )
        return take(index[:, 0]), take(index[:, 1])
    pairs = np.asarray(a)
    if pairs.ndim != 3 or pairs.shape[1] != 2:
        raise ValueError(
            f"pairs must have shape (n_pairs, 2, n_features), got {pairs.shape}; or give the "
            "rows a and b."
        )
    return pairs[:, 0], pairs[:, 1]


def _take(table, rows):
    """The rows at the positions ``rows`` of a DataFrame or array."""
    return table.iloc[rows] if is_dataframe(table) else np.asarray(table)[rows]


def _distance(z: torch.Tensor, z0: torch.Tensor, metric: str) -> torch.Tensor:
    """Row-wise distance, differentiable wherever it is defined (0 gradient where z = z0)."""
    if metric == "euclidean":
        squared = ((z - z0) ** 2).sum(1)
        positive = squared > 0
        return torch.where(positive, squared.clamp_min(1e-300).sqrt(), 0.0)
    if metric == "cosine":
        norms = z.norm(dim=1) * z0.norm(dim=1)
        cosine = (z * z0).sum(1) / norms.clamp_min(1e-300)
        return torch.where(norms > 0, 1 - cosine, 1.0)
    raise ValueError(f"explain_distance supports the euclidean and cosine metrics, not {metric!r}.")


def _along_path(body, h_a, h_b, z_b, pair, t, metric, gradient: bool):
    """``F`` at ``h(t)`` for each (pair, t), and with ``gradient`` its gradient in ``h``."""
    rows = h_b[pair] + torch.as_tensor(t, dtype=h_a.dtype)[:, None] * (h_a[pair] - h_b[pair])
    values, gradients = [], []
    for start in range(0, len(rows), _CHUNK_ROWS):
        path = rows[start : start + _CHUNK_ROWS].requires_grad_(gradient)
        with torch.set_grad_enabled(gradient):
            value = _distance(body(path), z_b[pair[start : start + _CHUNK_ROWS]], metric)
            if gradient:
                gradients.append(torch.autograd.grad(value.sum(), path)[0])
        values.append(value.detach())
    return torch.cat(values), (torch.cat(gradients) if gradient else None)


def _panel_shares(body, h_a, h_b, z_b, pair, lo, hi, metric):
    """Each panel's per-dimension shares by 8-point Gauss-Legendre, and its local
    completeness error ``|sum of its shares - (F(hi) - F(lo))|``."""
    x, w = np.polynomial.legendre.leggauss(_NODES_PER_PANEL)
    half = (hi - lo) / 2
    t = (lo[:, None] + (x + 1) * half[:, None]).ravel()
    _, gradients = _along_path(body, h_a, h_b, z_b, np.repeat(pair, len(x)), t, metric, True)
    weights = torch.as_tensor(w[None, :] * half[:, None]).reshape(-1, 1)
    summed = (gradients * weights).reshape(len(pair), len(x), -1).sum(1)
    shares = (h_a[pair] - h_b[pair]) * summed
    ends, _ = _along_path(body, h_a, h_b, z_b, np.tile(pair, 2), np.concatenate([lo, hi]),
                          metric, False)  # fmt: skip
    rise = ends[len(pair) :] - ends[: len(pair)]
    return shares, (shares.sum(1) - rise).abs()


def _integrated_gradients(body, h_a, h_b, metric, rtol, max_steps):
    """Per-dimension shares (n_pairs, width), the distances, their completeness errors and
    the gradient evaluations each pair took (adaptive panels: module docstring)."""
    with torch.no_grad():
        z_b = body(h_b)
        distance = _distance(body(h_a), z_b, metric)
    d = distance.numpy()
    n_pairs = len(d)
    pair = np.repeat(np.flatnonzero(d > 0), _START_PANELS)
    if not len(pair):  # every pair at distance 0: nothing to share
        return torch.zeros_like(h_a), distance, torch.zeros_like(distance), np.zeros(n_pairs, int)
    lo = np.tile(np.arange(_START_PANELS) / _START_PANELS, len(pair) // _START_PANELS)
    hi = lo + 1 / _START_PANELS
    shares, local = _panel_shares(body, h_a, h_b, z_b, pair, lo, hi, metric)
    steps = np.bincount(pair, minlength=n_pairs) * _NODES_PER_PANEL
    while len(pair):
        bound = np.bincount(pair, local.numpy(), minlength=n_pairs)
        open_ = (bound > rtol * d) & (steps < max_steps)
        split = open_[pair] & (local.numpy() > rtol * d[pair] * (hi - lo)) & (hi - lo > 2**-40)
        if not split.any():
            break
        middle = (lo[split] + hi[split]) / 2
        new_pair = np.repeat(pair[split], 2)
        new_lo = np.column_stack([lo[split], middle]).ravel()
        new_hi = np.column_stack([middle, hi[split]]).ravel()
        new_shares, new_local = _panel_shares(body, h_a, h_b, z_b, new_pair, new_lo, new_hi,
                                              metric)  # fmt: skip
        steps += np.bincount(new_pair, minlength=n_pairs) * _NODES_PER_PANEL
        keep = ~split
        pair = np.concatenate([pair[keep], new_pair])
        lo, hi = np.concatenate([lo[keep], new_lo]), np.concatenate([hi[keep], new_hi])
        shares = torch.cat([shares[torch.as_tensor(keep)], new_shares])
        local = torch.cat([local[torch.as_tensor(keep)], new_local])
    total = torch.zeros_like(h_a).index_add_(0, torch.as_tensor(pair, dtype=torch.long), shares)
    error = (total.sum(1) - distance).abs()
    return total, distance, error, steps


def explain_distance(estimator, a, b=None, *, rtol=1e-4, max_steps=20_000) -> pd.DataFrame:
    """Each input column's share of the learned distance of each pair (module docstring).

    Parameters
    ----------
    estimator : a fitted embedder
    a, b : tables of rows (arrays or DataFrames, as ``transform`` takes), of equal length
        Pair ``i`` is ``(a[i], b[i])``. With ``b`` None, ``a`` holds the pairs as
        ``pair_distance`` takes them: a tuple embedder's pairs of row indices into its
        preprocessor, or rows of shape (n_pairs, 2, n_features).
    rtol : float, default=1e-4
        Panels are halved until the bound on the completeness error is at most ``rtol``
        times the distance.
    max_steps : int, default=20000
        Gradient evaluations per pair after which no panel is halved any more (the error
        reached is reported).

    Returns
    -------
    DataFrame
        One row per pair; one column per input column (named as ``feature_names_in_``, else
        ``x0, x1, ...``) holding its share; then ``distance`` (float64, the embedder's
        ``embedding_metric_``; equal to ``pair_distance``'s float32 value up to its rounding),
        ``completeness_error`` (``|sum of shares - distance|``) and ``n_steps`` (the
        integrand's evaluations per pair).
    """
    check_is_fitted(estimator)
    if not (isinstance(rtol, float | int) and rtol > 0):
        raise ValueError(f"rtol must be a positive number, got {rtol!r}.")
    if not (isinstance(max_steps, int) and max_steps >= 1):
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}.")
    left, right = _pair_rows(estimator, a, b)
    x_a, _ = estimator._encode(left, reset=False)
    x_b, _ = estimator._encode(right, reset=False)
    network = copy.deepcopy(estimator.module_).cpu().double().eval()
    with torch.no_grad():
        h_a = network.inputs(torch.as_tensor(x_a, dtype=torch.float64))
        h_b = network.inputs(torch.as_tensor(x_b, dtype=torch.float64))
    shares, distance, error, steps = _integrated_gradients(
        network.body, h_a, h_b, estimator.embedding_metric_, rtol, max_steps
    )
    names = column_names(estimator)
    owner = input_columns(estimator.schema_)
    by_column = np.zeros((len(h_a), len(names)))
    np.add.at(by_column.T, owner, shares.numpy().T)
    frame = pd.DataFrame(by_column, columns=names)
    extra = {
        "distance": distance.numpy(),
        "completeness_error": error.numpy(),
        "n_steps": steps,
    }
    for name, values in extra.items():
        frame[_free_name(name, names)] = values
    frame.attrs.update(columns=names, distance=_free_name("distance", names))
    return frame


def _free_name(name: str, taken: list[str]) -> str:
    """``name``, or ``name`` with underscores added until it is not an input column's name."""
    while name in taken:
        name += "_"
    return name


def explain_neighbors(
    estimator, query, reference, n_neighbors=5, *, indices=None, **options
) -> pd.DataFrame:
    """:func:`explain_distance` of each query row and each of its ``n_neighbors`` nearest
    rows of ``reference`` in the learned space (exact search with ``embedding_metric_``), or
    of the neighbours ``indices`` gives (shape (n_queries, k): positions in ``reference``,
    e.g. from ``kneighbors`` or :class:`~sk_dml.neighbors.ApproximateKNeighborsTransformer`).

    Returns the explanations indexed by (query, rank), rank 0 the nearest, with a
    ``neighbor`` column first: the neighbour's position in ``reference``. ``options`` go to
    :func:`explain_distance`.
    """
    check_is_fitted(estimator)
    n_query = len(query)
    if indices is None:
        search = NearestNeighbors(
            n_neighbors=n_neighbors, metric=estimator.embedding_metric_, algorithm="brute"
        )
        search.fit(estimator.transform(reference))
        indices = search.kneighbors(estimator.transform(query), return_distance=False)
    indices = np.asarray(indices)
    if indices.ndim != 2 or len(indices) != n_query or indices.dtype.kind not in "iu":
        raise ValueError(
            f"indices must be integers of shape (n_queries, k) = ({n_query}, k); got "
            f"{indices.dtype} of shape {indices.shape}."
        )
    k = indices.shape[1]
    rows = np.repeat(np.arange(n_query), k)
    frame = explain_distance(
        estimator, _take(query, rows), _take(reference, indices.ravel()), **options
    )
    frame.insert(0, _free_name("neighbor", list(frame.columns)), indices.ravel())
    frame.index = pd.MultiIndex.from_arrays([rows, np.tile(np.arange(k), n_query)],
                                            names=["query", "rank"])  # fmt: skip
    return frame


def plot_distance_explanation(explanation, row=0, *, top=10, ax=None):
    """Horizontal bar chart of one pair's largest shares (by absolute value) in
    ``explanation`` (:func:`explain_distance`'s DataFrame; ``row`` is a label of its index),
    the other columns summed into one bar; the title gives the distance. Returns the
    matplotlib Axes."""
    import matplotlib.pyplot as plt

    pair = explanation.loc[row]
    shares = pair[explanation.attrs.get("columns", explanation.columns[:-3])].astype(float)
    order = shares.abs().sort_values(ascending=False).index
    shown = shares[order[:top]]
    if len(order) > top:
        shown[f"{len(order) - top} other columns"] = shares[order[top:]].sum()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.4 * len(shown) + 1.2))
    colors = ["tab:red" if v > 0 else "tab:blue" for v in shown.to_numpy()]
    ax.barh(range(len(shown)), shown.to_numpy(), color=colors)
    ax.set_yticks(range(len(shown)), [str(i) for i in shown.index])
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    distance = pair[explanation.attrs.get("distance", "distance")]
    ax.set_xlabel("share of the distance")
    ax.set_title(f"distance {float(distance):.4g}")
    return ax
