"""What a metric-learn user may count on: the API contract of metric-learn's pair and triplet
learners (MMC, ITML, SDML, SCML) and of their ``get_metric``, stated in this project's words.

The learned metric is a snapshot that checks its rows; a pair embedder's threshold is set,
calibrated by metric-learn's strategies or at fit; ``pair_distance`` and ``pair_score`` take
index pairs; a preprocessor may be a table or a callable, and formed tuples are accepted
beside it. Where sk_dml differs on purpose (the threshold is on the decision function, labels
are those of fit, identical formed rows are merged), the test says so. Oracles: brute-force
loops over every candidate threshold with scikit-learn's metrics, scipy distances on the
embeddings, and the same model reached by another route.
"""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.distance import (
    cdist,
    cityblock,
    cosine,
    euclidean,
    pdist,
    sqeuclidean,
    squareform,
)
from sklearn.base import clone
from sklearn.cluster import DBSCAN
from sklearn.datasets import make_blobs
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score, fbeta_score, precision_score
from sklearn.model_selection import cross_validate
from test_supervision import _triplets_of

from sk_dml import ContrastiveEmbedder, PairEmbedder, TripletConstraintEmbedder, TripletEmbedder

TINY = {
    "hidden_layer_sizes": (16,),
    "n_components": 4,
    "max_epochs": 2,
    "batch_size": 64,
    "random_state": 0,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def table():
    """240 distinct rows of 10 features in 4 overlapping classes."""
    return make_blobs(n_samples=240, n_features=10, centers=4, cluster_std=4.0, random_state=0)


def _pairs(y, n, seed=0):
    """Every row once, in order, in the first pairs (so the rows first appear in table order),
    then random pairs of distinct rows; labelled 1 when the two share a class."""
    rng = np.random.default_rng(seed)
    random = rng.integers(0, len(y), (2 * n, 2))
    random = random[random[:, 0] != random[:, 1]][:n]
    pairs = np.r_[np.arange(len(y) - len(y) % 2).reshape(-1, 2), random]
    return pairs, (y[pairs[:, 0]] == y[pairs[:, 1]]).astype(int)


@pytest.fixture(scope="module")
def pair_model(table):
    X, y = table
    pairs, alike = _pairs(y, 300)
    return PairEmbedder(preprocessor=X, **TINY).fit(pairs, alike), pairs, alike


@pytest.fixture(scope="module")
def triplet_model(table):
    X, y = table
    triplets = _triplets_of(y, 200)
    return TripletConstraintEmbedder(preprocessor=X, **TINY).fit(triplets), triplets


@pytest.fixture(scope="module")
def class_model(table):
    X, y = table
    return ContrastiveEmbedder(**TINY).fit(X, y)


def _validation_pairs(y, seed=3):
    """Pairs with ties: some pairs twice, so some decisions are equal."""
    pairs, alike = _pairs(y, 150, seed=seed)
    pairs, alike = pairs[len(y) // 2 :], alike[len(y) // 2 :]
    return np.r_[pairs, pairs[:20]], np.r_[alike, alike[:20]]


# ------------------------------------------------------------------------ the learned metric
@pytest.mark.parametrize("which", ["pair_model", "class_model"])
def test_the_metric_refuses_rows_that_transform_would_refuse(which, table, request):
    """Every embedder: a vector of the wrong length is refused in transform's words (it used to
    be cut short or raise IndexError), and only 1-D vectors are rows."""
    X, _ = table
    model = request.getfixturevalue(which)
    emb = model[0] if isinstance(model, tuple) else model
    metric = emb.get_metric()
    name = type(emb).__name__
    for u in (np.r_[X[0], 5.2], X[0, :-1]):
        with pytest.raises(ValueError) as by_transform:
            emb.transform(u[None])
        expected = str(by_transform.value).replace("X has", "u has")
        assert expected.startswith(f"u has {len(u)} features, but {name} is expecting 10")
        with pytest.raises(ValueError) as by_metric:
            metric(u, X[1])
        assert str(by_metric.value) == expected
    with pytest.raises(ValueError, match="v has 11 features, but .* expecting 10 features"):
        metric(X[0], np.r_[X[1], 7.2])
    for u, v in ((X[0:4], X[1:5]), (X[0][None], X[1][None]), (3.0, 4.0)):
        with pytest.raises(ValueError, match="u must be a 1-D vector, one row of the table"):
            metric(u, v)
    with pytest.raises(ValueError, match="Complex data not supported"):
        metric(X[0] + 1j, X[1])
    with pytest.raises(ValueError, match="infinity"):
        metric(np.r_[np.inf, X[0, 1:]], X[1])
    with pytest.raises(ValueError, match="could not convert string to float"):
        metric(np.array(["a"] * 10), X[1])
    # Lists and integer rows are rows; equal values are equal rows.
    Z = emb.transform(X[:3])
    assert metric(X[0].tolist(), X[1].tolist()) == pytest.approx(euclidean(Z[0], Z[1]), rel=1e-5)
    whole = np.round(X[2]).astype(int)
    assert metric(whole, X[1]) == metric(whole.astype(float), X[1])


def test_the_metric_answers_with_the_model_it_was_created_from(table):
    """A refit, a warm start or an in-place change of the network leaves the callable as it
    was: rows seen before and rows seen after are embedded by the same, original model."""
    X, y = table
    pairs, alike = _pairs(y, 200)
    unused = np.random.default_rng(0).normal(size=(4000, X.shape[1]))
    records = np.vstack([X, unused])  # a large table the pairs point into
    emb = PairEmbedder(preprocessor=records, **TINY).fit(pairs, alike)
    before = emb.transform(X[:4])
    metric = emb.get_metric()
    first = metric(X[0], X[1])  # rows 0 and 1 cached
    emb.set_params(random_state=1, early_stopping=False).fit(pairs, 1 - alike)  # it trains
    assert not np.allclose(emb.transform(X[:4]), before)  # the estimator did change
    with torch.no_grad():
        for param in emb.module_.parameters():
            param.add_(1.0)
    emb.set_params(warm_start=True).fit(pairs, alike)
    assert metric(X[0], X[1]) == first
    for i, j in ((0, 2), (2, 3), (3, 1)):  # rows 2 and 3 are new to the cache
        assert metric(X[i], X[j]) == pytest.approx(euclidean(before[i], before[j]), rel=1e-5)
    # Pickled, it is the same snapshot, without the estimator's table or training state.
    restored = pickle.loads(pickle.dumps(metric))
    assert [restored(X[i], X[j]) for i, j in ((0, 1), (2, 3))] == [first, metric(X[2], X[3])]
    assert len(pickle.dumps(emb)) > records.nbytes > 20 * len(pickle.dumps(metric))
    np.testing.assert_allclose(restored.pairwise(X[:4]), cdist(before, before), atol=1e-6)
    # A metric pickled by an earlier sk_dml (the whole estimator, no squared) still loads.
    earlier = type(metric).__new__(type(metric))
    earlier.__setstate__({"embedder": restored.embedder, "metric": "euclidean"})
    assert earlier(X[0], X[1]) == first and not earlier.squared


def test_squared_gives_the_squared_euclidean_distance(pair_model, table):
    X, _ = table
    emb = pair_model[0]
    assert emb.embedding_metric_ == "euclidean"
    metric, squared = emb.get_metric(), emb.get_metric(squared=True)
    Z = emb.transform(X[:6])
    for i, j in ((0, 1), (2, 5), (4, 3)):
        assert metric(X[i], X[j], squared=True) == pytest.approx(metric(X[i], X[j]) ** 2)
        assert squared(X[i], X[j]) == pytest.approx(sqeuclidean(Z[i], Z[j]), rel=1e-5)
        assert squared(X[i], X[j], squared=False) == pytest.approx(euclidean(Z[i], Z[j]), 1e-5)
    np.testing.assert_allclose(squared.pairwise(X[:6]), cdist(Z, Z, "sqeuclidean"), atol=1e-5)
    assert repr(squared) == "LearnedMetric(PairEmbedder, metric='euclidean', squared=True)"
    with pytest.raises(ValueError, match="squared must be True or False, got 'yes'"):
        emb.get_metric(squared="yes")


@pytest.mark.parametrize(
    ("distance", "oracle"),
    [("cosine", cosine), ("sqeuclidean", sqeuclidean), ("cityblock", cityblock)],
)
def test_squared_is_refused_where_the_embedding_metric_is_not_euclidean(distance, oracle, table):
    X, y = table
    emb = TripletEmbedder(distance=distance, **{**TINY, "max_epochs": 1}).fit(X, y)
    metric = emb.get_metric()  # a "cityblock" model used to fail here (KeyError)
    Z = emb.transform(X[:2])
    assert metric(X[0], X[1]) == pytest.approx(oracle(Z[0], Z[1]), rel=1e-4, abs=1e-6)
    match = f"embedding metric is '{metric.metric}'"
    with pytest.raises(ValueError, match=match):
        emb.get_metric(squared=True)
    with pytest.raises(ValueError, match=match):
        metric(X[0], X[1], squared=True)


def test_the_metric_is_a_pseudo_metric_scikit_learn_can_cluster_with(class_model, table):
    X, _ = table
    metric = class_model.get_metric()
    Z = class_model.transform(X)
    rng = np.random.default_rng(0)
    for a, b, c in rng.normal(size=(10, 3, X.shape[1])):
        assert metric(a, b) >= 0 and metric(a, b) == metric(b, a) and metric(a, a) == 0
        assert metric(a, c) <= metric(a, b) + metric(b, c) + 1e-12
    eps = np.median(pdist(Z[:80])) / 4
    by_callable = DBSCAN(eps=eps, min_samples=3, metric=metric).fit(X[:80]).labels_
    by_embedding = DBSCAN(eps=eps, min_samples=3).fit(Z[:80]).labels_
    np.testing.assert_array_equal(by_callable, by_embedding)
    assert len(set(by_embedding)) > 1


# -------------------------------------------------------------------- the threshold of pairs
def test_set_threshold_is_a_cut_on_the_decision_function(pair_model, table):
    emb, pairs, _ = pair_model
    emb = copy.deepcopy(emb)
    scores = emb.decision_function(pairs)
    cut = float(np.median(scores))
    assert emb.set_threshold(cut) is emb and emb.threshold_ == cut
    predicted = emb.predict(pairs)
    np.testing.assert_array_equal(predicted, (scores >= cut).astype(int))
    assert scores[predicted == 0].max() < scores[predicted == 1].min()  # monotonic
    # metric-learn's threshold d on the distance is -d here.
    d = float(np.quantile(emb.pair_distance(pairs), 0.3))
    emb.set_threshold(-d)
    np.testing.assert_array_equal(emb.predict(pairs), emb.pair_distance(pairs) <= d)
    with pytest.warns(UserWarning, match=r"use set_threshold\(-d\)"):
        emb.set_threshold(0.5)
    assert not emb.predict(pairs).any()


@pytest.mark.parametrize(
    "value", ["ABC", None, [1, 2, 3], {"key": None}, (1, 2), set(), np.ones((1, 1)), 1 + 2j, np.nan]
)
def test_set_threshold_takes_a_real_number_only(pair_model, value):
    emb = copy.deepcopy(pair_model[0])
    with pytest.raises(ValueError, match="threshold must be a real number, got"):
        emb.set_threshold(value)
    assert emb.threshold_ == pair_model[0].threshold_


def _rates(y, predicted):
    """(true positive rate, true negative rate), 0 for a rate of no pair: by counting."""
    tp = np.sum(predicted & (y == 1))
    tn = np.sum(~predicted & (y == 0))
    positives, negatives = np.sum(y == 1), np.sum(y == 0)
    return (tp / positives if positives else 0.0), (tn / negatives if negatives else 0.0)


def _brute_force(scores, y, strategy, min_rate=None, beta=1.0, min_precision=None):
    """Each candidate threshold (infinity, then every distinct score) with the sort key that
    ranks it under ``strategy``: the best threshold has the largest key."""
    keys = {}
    for t in np.r_[np.inf, np.unique(scores)]:
        predicted = scores >= t
        tpr, tnr = _rates(y, predicted)
        if strategy == "accuracy":
            keys[t] = (accuracy_score(y, predicted), t)  # the highest threshold among equals
        elif strategy == "f_beta":
            value = (
                precision_score(y, predicted, zero_division=0)
                if beta == 0
                else fbeta_score(y, predicted, beta=abs(beta), zero_division=0)
            )
            keys[t] = (value, -t)  # the lowest threshold among equals
        elif strategy == "max_tpr":
            keys[t] = (tpr if tnr >= min_rate else -1, tnr)
        elif strategy == "max_tnr":
            keys[t] = (tnr if tpr >= min_rate else -1, tpr)
        else:
            reached = precision_score(y, predicted, zero_division=0) >= min_precision
            keys[t] = (float(reached), -t)  # the lowest threshold that reaches it
    return keys


STRATEGIES = (
    [{"strategy": "accuracy"}]
    + [{"strategy": "f_beta", "beta": b} for b in (0, 0.1, 0.5, 1, 5, -1)]
    + [
        {"strategy": s, "min_rate": r}
        for s in ("max_tpr", "max_tnr")
        for r in (0, 0.1, 0.5, 0.8, 1)
    ]
    + [{"strategy": "precision", "min_precision": 0.6}]
)


@pytest.mark.parametrize("params", STRATEGIES, ids=lambda p: "-".join(map(str, p.values())))
def test_calibrate_threshold_finds_the_brute_force_best(pair_model, table, params):
    _, y = table
    emb = copy.deepcopy(pair_model[0])
    val, val_alike = _validation_pairs(y)
    scores = emb.decision_function(val)
    assert len(np.unique(scores)) < len(scores)  # ties
    keys = _brute_force(scores, val_alike, **params)
    assert len({key[0] for key in keys.values()}) > 1  # the strategy tells thresholds apart
    emb.calibrate_threshold(val, val_alike, **params)
    assert emb.threshold_ == max(keys, key=keys.get)
    np.testing.assert_array_equal(emb.predict(val), (scores >= emb.threshold_).astype(int))


def test_calibration_accepts_or_rejects_every_pair_when_that_is_best(pair_model, table):
    """Labels against the scores (metric-learn's extreme cases): the calibrated threshold then
    predicts every pair alike, or none."""
    _, y = table
    emb = copy.deepcopy(pair_model[0])
    val, _ = _validation_pairs(y)
    scores = emb.decision_function(val)
    _, first = np.unique(scores, return_index=True)
    pairs = val[first[:7]]  # 7 pairs of distinct scores, in increasing order
    assert np.all(np.diff(emb.decision_function(pairs)) > 0)
    cases = [
        ([1, 1, 1, 0, 0, 0, 0], {"strategy": "accuracy"}, 0),
        ([1, 1, 1, 0, 0, 0, 0], {"strategy": "max_tpr", "min_rate": 0}, 1),
        ([1, 1, 1, 0, 0, 0, 0], {"strategy": "max_tnr", "min_rate": 0}, 0),
        ([1, 1, 1, 1, 0, 0, 0], {"strategy": "accuracy"}, 1),
        ([1, 1, 1, 1, 0, 0, 0], {"strategy": "max_tpr", "min_rate": 0}, 1),
        ([1, 1, 1, 1, 0, 0, 0], {"strategy": "max_tnr", "min_rate": 0}, 0),
        ([1, 0, 1, 0, 1, 0, 1], {"strategy": "f_beta", "beta": 1}, 1),
    ]
    for labels, params, everything in cases:
        emb.calibrate_threshold(pairs, np.array(labels), **params)
        np.testing.assert_array_equal(emb.predict(pairs), [everything] * 7)
    with pytest.raises(ValueError, match="needs pairs of both kinds"):
        emb.calibrate_threshold(pairs, np.ones(7, int))


BAD_CALIBRATION = (
    [({"strategy": "weird"}, "strategy must be one of 'accuracy', 'f_beta', 'max_tpr'")]
    + [({"strategy": None}, "strategy must be one of")]
    + [
        ({"strategy": s, "min_rate": r}, f"strategy='{s}' needs min_rate in \\[0, 1\\]")
        for s in ("max_tpr", "max_tnr")
        for r in (None, "weird", -0.2, 1.2, 3 + 2j, np.nan)
    ]
    + [
        ({"strategy": "f_beta", "beta": b}, "strategy='f_beta' needs beta, a real number")
        for b in (None, "weird", 3 + 2j, np.inf)
    ]
    + [
        ({"strategy": "precision", "min_precision": m}, "needs min_precision in \\(0, 1\\]")
        for m in (None, 0, 1.5)
    ]
)


@pytest.mark.parametrize(("params", "match"), BAD_CALIBRATION)
def test_bad_calibration_parameters_are_named_and_checked_before_training(
    pair_model, table, params, match
):
    X, y = table
    emb, pairs, alike = pair_model
    emb = copy.deepcopy(emb)
    with pytest.raises(ValueError, match=match):
        emb.calibrate_threshold(pairs, alike, **params)
    assert emb.threshold_ == pair_model[0].threshold_
    fresh = PairEmbedder(preprocessor=X, **TINY)
    with pytest.raises(ValueError, match=match):
        fresh.fit(pairs, alike, calibration_params=params)
    assert not hasattr(fresh, "module_")  # refused before any training


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ("accuracy", "calibration_params must be a dict .* got str"),
        ({"strateg": "accuracy"}, "calibration_params takes strategy, .* got 'strateg'"),
    ],
)
def test_calibration_params_must_be_a_dict_of_calibrate_thresholds_arguments(
    pair_model, table, params, match
):
    X, _ = table
    _, pairs, alike = pair_model
    fresh = PairEmbedder(preprocessor=X, **TINY)
    with pytest.raises(ValueError, match=match):
        fresh.fit(pairs, alike, calibration_params=params)
    assert not hasattr(fresh, "module_")


@pytest.mark.parametrize(
    "params",
    [
        None,
        {},
        {"strategy": "accuracy"},
        {"strategy": "f_beta", "beta": 0.5},
        {"strategy": "max_tpr", "min_rate": 0.8},
        {"strategy": "max_tnr", "min_rate": 0.2},
        {"strategy": "precision", "min_precision": 0.6},
    ],
)
def test_fit_calibrates_on_the_training_pairs(pair_model, params):
    emb, pairs, alike = pair_model
    fitted = clone(emb).fit(pairs, 2 * alike - 1, calibration_params=params)  # -1 / 1 labels
    scores = fitted.decision_function(pairs)
    np.testing.assert_array_equal(scores, emb.decision_function(pairs))  # the same network
    strategy = params or {"strategy": "accuracy"}
    keys = _brute_force(scores, alike, **strategy)
    assert fitted.threshold_ == max(keys, key=keys.get)
    assert set(fitted.predict(pairs)) == {-1, 1}  # the labels of fit
    fitted.partial_fit(pairs, 2 * alike - 1, calibration_params=params)
    keys = _brute_force(fitted.decision_function(pairs), alike, **strategy)
    assert fitted.threshold_ == max(keys, key=keys.get)


def test_a_calibration_that_fails_at_fit_leaves_no_threshold(table):
    """Two copies of one record labelled not alike: their distance is 0, the highest
    decision there is, so no threshold reaches precision 1 on these pairs."""
    X, y = table
    pairs, alike = _pairs(y, 200)
    records = np.vstack([X, X[:1]])  # record 240 copies record 0
    pairs, alike = np.r_[pairs, [[0, len(X)]]], np.r_[alike, 0]
    emb = PairEmbedder(preprocessor=records, **TINY)
    precise = {"strategy": "precision", "min_precision": 1.0}
    with pytest.raises(ValueError, match="No threshold reaches precision 1.0"):
        emb.fit(pairs, alike, calibration_params=precise)
    assert hasattr(emb, "module_") and "threshold_" not in vars(emb)
    with pytest.raises(NotFittedError, match="has no threshold_: call 'fit', or set one"):
        emb.predict(pairs)
    emb.set_threshold(-0.5)
    assert set(emb.predict(pairs)) <= {0, 1}


def test_scikit_learn_scorers_of_a_binary_classifier_work_on_pairs(pair_model):
    emb, pairs, alike = pair_model
    scoring = ["accuracy", "f1", "roc_auc", "average_precision", "precision", "recall"]
    calibration = {"calibration_params": {"strategy": "f_beta", "beta": 2}}  # reaches each fit
    scores = cross_validate(clone(emb), pairs, alike, cv=2, scoring=scoring, params=calibration)
    for name in scoring:
        assert np.isfinite(scores[f"test_{name}"]).all() and np.all(scores[f"test_{name}"] >= 0)


# ------------------------------------------------------- pair_distance, pair_score, the inputs
@pytest.mark.parametrize("which", ["pair_model", "triplet_model"])
def test_pair_distance_and_pair_score_take_index_pairs(which, table, request):
    X, _ = table
    emb = request.getfixturevalue(which)[0]
    Z = emb.transform(X[:15])
    index = np.array([(i, j) for i in range(15) for j in range(15)])
    distances = emb.pair_distance(index)
    np.testing.assert_allclose(
        distances.reshape(15, 15), squareform(pdist(Z)), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_array_equal(emb.pair_score(index), -distances)
    np.testing.assert_allclose(emb.pair_distance(X[index]), distances, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="integer row indices of shape \\(n_pairs, 2\\)"):
        emb.pair_distance(X[index[1]])  # one pair of rows, 2-D: neither indices nor tuples
    unset = copy.deepcopy(emb).set_params(preprocessor=None)  # as a loaded model is
    np.testing.assert_allclose(unset.pair_distance(X[index]), distances, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="Without a preprocessor, pairs are rows"):
        unset.pair_distance(index)


def test_rows_are_accepted_beside_a_preprocessor(pair_model, triplet_model, table):
    """Formed tuples (n, t, n_features) and index tuples give the same answers."""
    X, y = table
    emb, pairs, alike = pair_model
    emb = copy.deepcopy(emb)
    formed = X[pairs]
    for method in ("decision_function", "pair_distance"):
        np.testing.assert_allclose(
            getattr(emb, method)(formed), getattr(emb, method)(pairs), rtol=1e-5, atol=1e-6
        )
    clear = np.abs(emb.decision_function(pairs) - emb.threshold_) > 1e-5  # not on the cut
    np.testing.assert_array_equal(emb.predict(formed)[clear], emb.predict(pairs)[clear])
    assert emb.score(formed, alike) == pytest.approx(emb.score(pairs, alike))
    threshold = emb.calibrate_threshold(pairs, alike, strategy="f_beta").threshold_
    assert emb.calibrate_threshold(formed, alike, strategy="f_beta").threshold_ == pytest.approx(
        threshold, abs=1e-6
    )
    triplet_emb, triplets = triplet_model
    np.testing.assert_allclose(
        triplet_emb.decision_function(X[triplets]),
        triplet_emb.decision_function(triplets),
        rtol=1e-5,
        atol=1e-6,
    )
    assert triplet_emb.score(X[triplets]) == triplet_emb.score(triplets)
    with pytest.raises(ValueError, match=r"Pairs given as rows must be an array of shape"):
        emb.decision_function(X[_triplets_of(y, 5)])


def test_fitting_on_rows_is_fitting_on_indices_into_their_distinct_rows(table):
    """Identical rows of formed pairs are one row, as one index is: the pairs' rows, met in the
    table's order, give the model of the table's indices (the same entities for in-batch
    negatives, the same column statistics)."""
    X, y = table
    pairs, alike = _pairs(y, 200)
    by_index = PairEmbedder(preprocessor=X, **TINY).fit(pairs, alike)
    by_rows = PairEmbedder(**TINY).fit(X[pairs], alike)
    np.testing.assert_allclose(
        by_rows.decision_function(X[pairs]), by_index.decision_function(pairs), atol=1e-6
    )
    assert by_rows.threshold_ == pytest.approx(by_index.threshold_, abs=1e-6)
    # A pair of two records that hold the same values is a pair like any other.
    PairEmbedder(**{**TINY, "max_epochs": 1}).fit(X[np.r_[pairs, [[0, 0]]]], np.r_[alike, 1])


class _RecordStore:
    """A callable preprocessor that reads records by name, as a file loader would."""

    def __init__(self, X):
        self.records = {f"rec{i:03d}": row for i, row in enumerate(X)}

    def __call__(self, names):
        return np.array([self.records[name] for name in names])


def test_a_callable_preprocessor_maps_indicators_to_rows(table):
    """A function of indices or an object reading records by name: the model of the table
    itself, when the tuples name every row (the distinct indicators, sorted, are the table)."""
    X, y = table
    pairs, alike = _pairs(y, 200)
    names = np.array([f"rec{i:03d}" for i in range(len(X))])
    expected = PairEmbedder(preprocessor=X, **TINY).fit(pairs, alike).decision_function(pairs)
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    routes = [
        (lambda index: X[index], pairs),
        (_RecordStore(X), names[pairs]),
        (lambda index: frame.iloc[index], pairs),
    ]
    for preprocessor, indicators in routes:
        emb = PairEmbedder(preprocessor=preprocessor, **TINY).fit(indicators, alike)
        np.testing.assert_allclose(emb.decision_function(indicators), expected, atol=1e-6)
        np.testing.assert_allclose(emb.pair_distance(indicators), -expected, atol=1e-6)
    assert clone(emb).get_params()["preprocessor"] is emb.preprocessor
    metric = pickle.loads(pickle.dumps(emb.get_metric()))  # the lambda stays behind
    assert metric(X[0], X[1]) == pytest.approx(-emb.decision_function([[0, 1]])[0], abs=1e-6)
    triplets = _triplets_of(y, 100)  # not every row: both read the rows they name, in order
    by_index = TripletConstraintEmbedder(preprocessor=lambda index: X[index], **TINY)
    by_name = TripletConstraintEmbedder(preprocessor=_RecordStore(X), **TINY)
    np.testing.assert_allclose(
        by_name.fit(names[triplets]).decision_function(names[triplets]),
        by_index.fit(triplets).decision_function(triplets),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="indicators of shape \\(n_pairs, 2\\)"):
        PairEmbedder(preprocessor=_RecordStore(X), **TINY).fit(names[:6].reshape(2, 3), [0, 1])


@pytest.mark.parametrize(
    "returned",
    [lambda index: np.zeros((len(index) + 1, 3)), lambda index: np.zeros((len(index), 2, 2))],
)
def test_a_callable_preprocessor_must_return_one_row_per_indicator(returned, table):
    _, y = table
    pairs, alike = _pairs(y, 20)
    with pytest.raises(ValueError, match="The preprocessor must map an array of .* indicators"):
        PairEmbedder(preprocessor=returned, **TINY).fit(pairs, alike)


def test_index_pairs_may_be_any_array_like(pair_model):
    emb, pairs, alike = pair_model
    expected = emb.decision_function(pairs)
    variants = [pairs.tolist(), tuple(map(tuple, pairs.tolist())), pd.DataFrame(pairs)]
    for variant in variants:
        np.testing.assert_array_equal(emb.decision_function(variant), expected)
        np.testing.assert_array_equal(emb.predict(variant), emb.predict(pairs))
        assert emb.score(variant, list(alike)) == emb.score(pairs, alike)
    refit = clone(emb).fit(variants[1], tuple(alike))
    np.testing.assert_array_equal(refit.decision_function(pairs), expected)


def test_unfitted_pair_and_triplet_embedders_say_so(table):
    X, y = table
    pairs, alike = _pairs(y, 10)
    triplets = _triplets_of(y, 5)
    shared = [
        lambda e: e.get_metric(),
        lambda e: e.pair_score(pairs),
        lambda e: e.pair_distance(pairs),
        lambda e: e.transform(X),
    ]
    own = {
        PairEmbedder: [
            lambda e: e.decision_function(pairs),
            lambda e: e.predict(pairs),
            lambda e: e.calibrate_threshold(pairs, alike),
            lambda e: e.set_threshold(-0.5),
        ],
        TripletConstraintEmbedder: [
            lambda e: e.decision_function(triplets),
            lambda e: e.predict(triplets),
            lambda e: e.score(triplets),
        ],
    }
    for cls, calls in own.items():
        for call in shared + calls:
            with pytest.raises(NotFittedError):
                call(cls(preprocessor=X))


def test_triplet_predictions_are_one_or_minus_one_even_for_ties(triplet_model, table):
    X, _ = table
    emb, triplets = triplet_model
    Z = emb.transform(X)
    D = cdist(Z, Z)
    held = np.array([D[a, p] < D[a, n] for a, p, n in triplets])
    np.testing.assert_array_equal(emb.predict(triplets), np.where(held, 1, -1))
    ties = np.array([[0, 2, 2], [1, 1, 1], [3, 4, 4]])  # D(a, p) == D(a, n): not held
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(emb.predict(ties), [-1, -1, -1])
    assert emb.score(ties) == 0.0
