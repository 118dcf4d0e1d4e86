"""Brute-force float64 references for the math core of sk_dml.

Everything here is written from the specification with python loops over pairs and triplets,
independently of the implementation (no masks, no sorting, no prefix sums). Distances come
either from :func:`scipy.spatial.distance.cdist` (values) or from one torch scalar expression
per pair (so that autograd on the loop gives the reference gradient).

The losses take ``D`` as anything indexable as ``D[i][j]`` that yields float64 torch scalars,
and ``y`` as a list of python ints.
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import settings
from scipy.spatial.distance import cdist

import sk_dml

# CI (CI=true) replays the same hypothesis examples every run, so a red build is reproducible;
# local runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

#: Canonical names of the distances (``cityblock`` is tested separately as an alias).
DISTANCES = ("euclidean", "sqeuclidean", "manhattan", "chebyshev", "cosine")
# An embedder factory per loss (its named embedder, else MetricEmbedder(loss=...)), for the
# tests that each of them must pass: a new loss is picked up with no edit here.
LOSSES = tuple(sk_dml.criteria.loss_names())
EMBEDDERS = tuple(functools.partial(sk_dml.embedders.make_embedder, name) for name in LOSSES)
# The losses that learn from class labels, for the tests of what class labels teach.
CLASS_LOSSES = tuple(sk_dml.criteria.loss_names("classes"))
CLASS_EMBEDDERS = tuple(
    functools.partial(sk_dml.embedders.make_embedder, name) for name in CLASS_LOSSES
)
WINDOW_MINING = ("all", "semihard", "hard")
MINING = (*WINDOW_MINING, "batch_hard")

_SCIPY_NAME = {"manhattan": "cityblock"}
# Batches whose labels leave some pairs, triplets or terms empty: every loss must stay finite.
EDGE_LABELS = {
    "one_class": [4] * 7,
    "all_singletons": list(range(7)),
    "class_with_one_sample": [0, 0, 1, 1, 1, 2, 0],
    "two_rows_same_class": [3, 3],
    "two_rows_two_classes": [3, 5],
    "one_row": [1],
}


# ----------------------------------------------------------------------------------- distances
def ref_cdist(x, y=None, metric: str = "euclidean") -> np.ndarray:
    """scipy's cdist in float64 (the value oracle)."""
    x = np.asarray(x, dtype=np.float64)
    y = x if y is None else np.asarray(y, dtype=np.float64)
    return cdist(x, y, _SCIPY_NAME.get(metric, metric))


def ref_dist_matrix(emb: torch.Tensor, metric: str) -> torch.Tensor:
    """Float64 (B, B) distance matrix from cdist, as a tensor without gradient."""
    return torch.from_numpy(ref_cdist(emb.detach().double().numpy(), metric=metric))


def torch_pair_distance(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """Distance between two 1-D tensors written directly from the definition."""
    diff = a - b
    if metric == "euclidean":
        return torch.sqrt((diff * diff).sum())
    if metric == "sqeuclidean":
        return (diff * diff).sum()
    if metric in ("manhattan", "cityblock"):
        return diff.abs().sum()
    if metric == "chebyshev":
        return diff.abs().max()
    if metric == "cosine":
        return 1.0 - (a * b).sum() / (torch.sqrt((a * a).sum()) * torch.sqrt((b * b).sum()))
    raise AssertionError(metric)


def loop_dist_matrix(emb: torch.Tensor, metric: str) -> list[list[torch.Tensor]]:
    """Nested list of torch scalars D[i][j] built pair by pair (differentiable, i != j)."""
    n = len(emb)
    zero = emb.sum() * 0.0
    return [
        [zero if i == j else torch_pair_distance(emb[i], emb[j], metric) for j in range(n)]
        for i in range(n)
    ]


# -------------------------------------------------------------------------------- small helpers
def value(t) -> float:
    """Python float of a scalar (without autograd's warning for tensors that need grad)."""
    return t.item() if torch.is_tensor(t) else float(t)


def relu(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, min=0.0)


def log_sum_exp(terms: list[torch.Tensor]) -> torch.Tensor:
    """log(sum(exp(t))) of a non-empty list of scalars, shifted by the max to stay finite."""
    top = max(value(t) for t in terms)
    return top + torch.log(sum(torch.exp(t - top) for t in terms))


def mean(terms: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    if not terms:
        return like.sum() * 0.0
    return sum(terms) / len(terms)


def positives_of(y: list[int], a: int) -> list[int]:
    return [p for p in range(len(y)) if p != a and y[p] == y[a]]


def negatives_of(y: list[int], a: int) -> list[int]:
    return [n for n in range(len(y)) if y[n] != y[a]]


# ------------------------------------------------------------------------------------- mining
def ref_triplets(D, y: list[int], mining: str, margin: float) -> list[tuple[int, int, int]]:
    """The (a, p, n) a mining rule selects, by enumeration of every valid triplet.

    For ``batch_hard`` one triplet per anchor with a positive and a negative: its farthest
    positive and nearest negative (first index on ties).
    """
    out = []
    for a in range(len(y)):
        pos, neg = positives_of(y, a), negatives_of(y, a)
        if mining == "batch_hard":
            if pos and neg:
                p = max(pos, key=lambda j: value(D[a][j]))
                n = min(neg, key=lambda j: value(D[a][j]))
                out.append((a, p, n))
            continue
        for p in pos:
            for n in neg:
                d_ap, d_an = value(D[a][p]), value(D[a][n])
                if mining == "all":
                    keep = d_ap - d_an + margin > 0
                elif mining == "semihard":
                    keep = d_ap < d_an < d_ap + margin
                elif mining == "hard":
                    keep = d_an < d_ap
                else:
                    raise AssertionError(mining)
                if keep:
                    out.append((a, p, n))
    return out


# -------------------------------------------------------------------------------------- losses
def ref_contrastive(D, y: list[int], margin: float) -> torch.Tensor:
    terms = []
    n = len(y)
    for i in range(n):
        for j in range(i + 1, n):
            if y[i] == y[j]:
                terms.append(D[i][j] ** 2)
            else:
                terms.append(relu(margin - D[i][j]) ** 2)
    return mean(terms, D[0][0])


def ref_triplet_over(D, triplets, margin: float) -> torch.Tensor:
    terms = [relu(D[a][p] - D[a][n] + margin) for a, p, n in triplets]
    return mean(terms, D[0][0])


def ref_triplet(D, y: list[int], margin: float, mining: str) -> torch.Tensor:
    if mining == "batch_hard":
        terms = []
        for a in range(len(y)):
            pos, neg = positives_of(y, a), negatives_of(y, a)
            if pos and neg:
                hardest_pos = max((D[a][p] for p in pos), key=value)
                hardest_neg = min((D[a][n] for n in neg), key=value)
                terms.append(relu(hardest_pos - hardest_neg + margin))
        return mean(terms, D[0][0])
    return ref_triplet_over(D, ref_triplets(D, y, mining, margin), margin)


def ref_npair(emb: torch.Tensor, y: list[int], l2_reg: float) -> torch.Tensor:
    n = len(y)
    sim = [[(emb[i] * emb[j]).sum() for j in range(n)] for i in range(n)]
    terms = []
    for a in range(n):
        neg = negatives_of(y, a)
        if not neg:
            continue
        for p in positives_of(y, a):
            # log(1 + sum_n exp(s_an - s_ap)) = logsumexp([0, s_an - s_ap ...])
            exponents = [emb.sum() * 0.0] + [sim[a][k] - sim[a][p] for k in neg]
            terms.append(log_sum_exp(exponents))
    loss = mean(terms, emb)
    if l2_reg:
        loss = loss + l2_reg * sum((emb[i] * emb[i]).sum() for i in range(n)) / n
    return loss


def ref_lifted(D, y: list[int], margin: float, variant: str) -> torch.Tensor:
    terms = []
    n = len(y)
    for i in range(n):
        for j in range(i + 1, n):
            if y[i] != y[j]:
                continue
            neg_i, neg_j = negatives_of(y, i), negatives_of(y, j)
            if not neg_i and not neg_j:
                continue
            if variant == "hard":
                nearest = min([D[i][k] for k in neg_i] + [D[j][k] for k in neg_j], key=value)
                objective = D[i][j] + margin - nearest
            else:
                exponents = [margin - D[i][k] for k in neg_i] + [margin - D[j][k] for k in neg_j]
                objective = D[i][j] + log_sum_exp(exponents)
            terms.append(relu(objective) ** 2)
    if not terms:
        return D[0][0] * 0.0
    return sum(terms) / (2 * len(terms))


# ----------------------------------------------------------------------------------- batches
def random_batch(
    seed: int, n: int = 12, dim: int = 5, n_classes: int = 3
) -> tuple[torch.Tensor, list[int]]:
    """Float64 gaussian embeddings and labels where every class appears at least twice."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(n_classes), np.arange(n_classes)])
    labels = np.concatenate([labels, rng.integers(0, n_classes, n - len(labels))])
    rng.shuffle(labels)
    emb = torch.from_numpy(rng.normal(size=(n, dim)))
    return emb, [int(v) for v in labels]


def assert_close(got, expected, *, rtol: float = 1e-9, atol: float = 1e-10) -> None:
    got_f, exp_f = value(got), value(expected)
    assert math.isfinite(got_f), f"got non-finite {got_f}"
    assert got_f == pytest.approx(exp_f, rel=rtol, abs=atol), f"got {got_f!r}, expected {exp_f!r}"
