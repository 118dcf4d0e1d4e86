"""Retrieval metrics against brute-force loops over queries, and the GridSearchCV scorers."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_dml import TripletEmbedder
from sk_dml.metrics import (
    map_at_r_scorer,
    mean_average_precision_at_r,
    precision_at_1_scorer,
    precision_at_k,
    r_precision,
)


def _ranked_neighbours(X, q, metric):
    """Indices of all other samples, nearest first (a stable sort: ties by index)."""
    d = cdist(X[q : q + 1], X, metric)[0]
    order = [i for i in np.argsort(d, kind="stable") if i != q]
    return order


def ref_metrics(X, y, k, metric="euclidean"):
    """(precision@k, R-precision, MAP@R) by plain loops, PML's definitions."""
    p_at_k, r_prec, map_r = [], [], []
    for q in range(len(y)):
        r = int(np.sum(y == y[q])) - 1
        if r == 0:
            continue  # a query whose class has no other member is left out
        ranked = _ranked_neighbours(X, q, metric)
        hits = [y[i] == y[q] for i in ranked]
        p_at_k.append(np.mean(hits[: min(k, len(ranked))]))
        r_prec.append(np.sum(hits[:r]) / r)
        ap = sum(np.mean(hits[: i + 1]) for i in range(r) if hits[i]) / r
        map_r.append(ap)
    return np.mean(p_at_k), np.mean(r_prec), np.mean(map_r)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_metrics_match_brute_force(seed, metric):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 3))
    y = rng.integers(0, 4, 40)
    y[0] = 9  # a singleton class: its query is excluded
    expected = ref_metrics(X, y, k=3, metric=metric)
    got = (
        precision_at_k(X, y, k=3, metric=metric),
        r_precision(X, y, metric=metric),
        mean_average_precision_at_r(X, y, metric=metric),
    )
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_precomputed_distances_give_the_same_scores():
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    D = cdist(X, X)
    assert precision_at_k(D, y, k=2, precomputed=True) == pytest.approx(precision_at_k(X, y, k=2))
    assert r_precision(D, y, precomputed=True) == pytest.approx(r_precision(X, y))
    assert mean_average_precision_at_r(D, y, precomputed=True) == pytest.approx(
        mean_average_precision_at_r(X, y)
    )


def test_perfect_and_hand_computed_cases():
    X = np.array([[0.0], [0.1], [5.0], [5.1], [0.25]])
    y = np.array([0, 0, 1, 1, 1])
    # Query 4 (class 1 at 0.25): neighbours 1, 0 (class 0), then 2, 3; R = 2: precision@1 0,
    # R-precision 0, AP 0. Queries 0 and 1 (R = 1) find each other first: perfect. Queries 2
    # and 3 (R = 2) find each other, then point 4 (class 1): perfect. Every score is 4/5.
    assert precision_at_k(X, y, k=1) == pytest.approx(4 / 5)
    assert r_precision(X, y) == pytest.approx(4 / 5)
    assert mean_average_precision_at_r(X, y) == pytest.approx(4 / 5)


def test_undefined_metric_raises():
    with pytest.raises(ValueError, match="No query has another sample"):
        precision_at_k(np.eye(3), [0, 1, 2])
    with pytest.raises(ValueError, match="k must be >= 1"):
        precision_at_k(np.eye(3), [0, 0, 1], k=0)
    with pytest.raises(ValueError, match="samples but"):
        r_precision(np.eye(3), [0, 0])


def test_scorers_drive_grid_search():
    X, y = load_iris(return_X_y=True)
    quick = dict(max_epochs=3, hidden_layer_sizes=(16,), n_components=4, batch_size=32)
    pipe = make_pipeline(StandardScaler(), TripletEmbedder(random_state=0, **quick))
    grid = GridSearchCV(
        pipe,
        {"tripletembedder__margin": [0.1, 0.3]},
        scoring={"p@1": precision_at_1_scorer, "map@r": map_at_r_scorer},
        refit="map@r",
        cv=3,
    ).fit(X, y)
    fitted = grid.best_estimator_
    Z = fitted.transform(X)
    assert precision_at_1_scorer(fitted, X, y) == pytest.approx(precision_at_k(Z, y, k=1))
    assert 0 < grid.cv_results_["mean_test_map@r"].max() <= 1
