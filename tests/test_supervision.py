"""Learning from supervision other than class labels: labelled pairs, triplet constraints and a
continuous target. Oracles: brute-force loops over pairs and triplets, scipy distances,
scikit-learn's metrics and neighbour regressor."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.base import clone
from sklearn.datasets import load_digits, make_friedman1
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import accuracy_score, make_scorer, precision_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, TunedThresholdClassifierCV, cross_val_score
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sk_dml
from sk_dml import (
    LogRatioEmbedder,
    MetricEmbedder,
    PairEmbedder,
    TripletConstraintEmbedder,
    TripletEmbedder,
)
from sk_dml._objectives import InBatchPairCriterion
from sk_dml.criteria import (
    ContrastiveLoss,
    LogRatioLoss,
    MultiSimilarityLoss,
    ProxyAnchorLoss,
)
from sk_dml.losses import (
    contrastive_loss,
    contrastive_pair_loss,
    log_ratio_loss,
    triplet_constraint_loss,
    triplet_loss,
)
from sk_dml.supervision import LabelledPairs, neighbors_r2

SMALL = {
    "hidden_layer_sizes": (32,),
    "n_components": 8,
    "max_epochs": 4,
    "batch_size": 64,
    "random_state": 0,
    "device": "cpu",
}
# What training does, measured on a plain MLP trained on every tuple at 3e-3 (the tuple
# embedders' defaults start from the table's own distance and select on held-out tuples:
# tests/test_generalisation.py checks that start).
TRAINED = {"residual": False, "normalize": True, "learning_rate": 3e-3, "early_stopping": False}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600], y[:600]


def _pairs_of(y, n, seed=0):
    """``n`` random pairs of distinct rows, labelled 1 when they share a class."""
    rng = np.random.default_rng(seed)
    pairs = rng.integers(0, len(y), (2 * n, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]][:n]
    return pairs, (y[pairs[:, 0]] == y[pairs[:, 1]]).astype(int)


def _balanced_pairs_of(y, n, seed=0):
    """``n`` pairs of each kind: same class, and different classes."""
    rng = np.random.default_rng(seed)
    alike, unlike = [], []
    while len(alike) < n or len(unlike) < n:
        i, j = rng.integers(0, len(y), 2)
        if i == j:
            continue
        (alike if y[i] == y[j] else unlike).append((i, j))
    pairs = np.array(alike[:n] + unlike[:n])
    return pairs, np.r_[np.ones(n, int), np.zeros(n, int)]


def _triplets_of(y, n, seed=0):
    """``n`` triplets (a, p, n): p of a's class, n of another."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        a, p, q = rng.integers(0, len(y), 3)
        if a != p and y[a] == y[p] and y[a] != y[q]:
            out.append((a, p, q))
    return np.array(out)


# ----------------------------------------------------------------------------- pure losses
def test_log_ratio_loss_matches_the_triplet_loop():
    rng = np.random.default_rng(0)
    Z = torch.tensor(rng.normal(size=(7, 3)), dtype=torch.float64)
    for targets in (rng.normal(size=7), rng.normal(size=(7, 2)), np.r_[0, 0, 1, 1, 2, 2, 2.0]):
        t = targets.reshape(7, -1)
        eps = 1e-3
        terms = []
        for a in range(7):
            for i, j in itertools.combinations([r for r in range(7) if r != a], 2):
                d_ai, d_aj = ((Z[a] - Z[i]) ** 2).sum(), ((Z[a] - Z[j]) ** 2).sum()
                t_ai, t_aj = np.linalg.norm(t[a] - t[i]), np.linalg.norm(t[a] - t[j])
                ratio = torch.log((d_ai + eps) / (d_aj + eps)) - np.log((t_ai + eps) / (t_aj + eps))
                terms.append(ratio**2)
        expected = torch.stack(terms).mean()
        assert float(log_ratio_loss(Z, targets, epsilon=eps)) == pytest.approx(float(expected))


def test_log_ratio_loss_gradient_is_finite_for_coinciding_rows_and_tiny_batches():
    Z = torch.zeros(5, 2, requires_grad=True)
    log_ratio_loss(Z, np.arange(5.0)).backward()
    assert torch.isfinite(Z.grad).all()
    small = torch.ones(2, 2, requires_grad=True)
    loss = log_ratio_loss(small, [0.0, 1.0])
    loss.backward()  # connected to the graph, zero
    assert float(loss.detach()) == 0.0
    with pytest.raises(ValueError, match="epsilon"):
        log_ratio_loss(Z, np.arange(5.0), epsilon=0)
    with pytest.raises(ValueError, match="one row per embedding"):
        log_ratio_loss(Z, np.arange(4.0))


def test_contrastive_pair_loss_is_the_contrastive_loss_on_every_pair_of_a_batch():
    rng = np.random.default_rng(1)
    Z = torch.tensor(rng.normal(size=(6, 4)))
    labels = np.array([0, 0, 1, 1, 2, 0])
    i, j = np.triu_indices(6, k=1)
    on_pairs = contrastive_pair_loss(Z[i], Z[j], labels[i] == labels[j], margin=2.0)
    assert float(on_pairs) == pytest.approx(float(contrastive_loss(Z, labels, margin=2.0)))
    d = cdist(Z[i].numpy(), Z[j].numpy()).diagonal()
    loop = np.mean(
        [
            dk**2 if s else max(0, 2.0 - dk) ** 2
            for dk, s in zip(d, labels[i] == labels[j], strict=True)
        ]
    )
    assert float(on_pairs) == pytest.approx(loop)


def test_triplet_constraint_loss_matches_the_loop_and_the_triplet_loss():
    rng = np.random.default_rng(2)
    Z = torch.tensor(rng.normal(size=(9, 3)))
    a, p, n = (torch.tensor(rng.integers(0, 9, 12)) for _ in range(3))
    value = triplet_constraint_loss(Z[a], Z[p], Z[n], margin=0.5, distance="manhattan")
    D = cdist(Z.numpy(), Z.numpy(), "cityblock")
    loop = np.mean([max(0, D[x, y] - D[x, z] + 0.5) for x, y, z in zip(a, p, n, strict=True)])
    assert float(value) == pytest.approx(loop)
    same = triplet_loss(Z, np.zeros(9), margin=0.5, distance="manhattan", triplets=(a, p, n))
    assert float(value) == pytest.approx(float(same))


# ---------------------------------------------------------------------------------- pairs
def test_pair_embedder_learns_pairs_and_its_decision_is_the_negative_distance(digits):
    X, y = digits
    pairs, alike = _balanced_pairs_of(y, 600)
    emb = PairEmbedder(preprocessor=X, **TRAINED, **{**SMALL, "max_epochs": 15}).fit(pairs, alike)
    test, test_alike = _balanced_pairs_of(y, 300, seed=1)
    Z = emb.transform(X)
    expected = -np.array([cdist(Z[[i]], Z[[j]])[0, 0] for i, j in test])
    np.testing.assert_allclose(emb.decision_function(test), expected, rtol=1e-5, atol=1e-6)
    raw = roc_auc_score(test_alike, -np.linalg.norm(X[test[:, 0]] - X[test[:, 1]], axis=1))
    assert emb.score(test, test_alike) == pytest.approx(roc_auc_score(test_alike, expected))
    assert emb.score(test, test_alike) > max(raw, 0.9)
    assert list(emb.classes_) == [0, 1]
    predicted = emb.predict(test)
    np.testing.assert_array_equal(predicted, (expected >= emb.threshold_).astype(int))


def test_threshold_calibration_matches_brute_force_search(digits):
    X, y = digits
    pairs, alike = _pairs_of(y, 800)
    emb = PairEmbedder(preprocessor=X, **SMALL).fit(pairs, alike)
    val, val_alike = _pairs_of(y, 500, seed=3)
    scores = emb.decision_function(val)
    candidates = np.r_[np.unique(scores), np.inf]
    accuracy = [np.mean((scores >= t) == val_alike) for t in candidates]
    emb.calibrate_threshold(val, val_alike)
    assert np.mean(emb.predict(val) == val_alike) == pytest.approx(max(accuracy))
    # The lowest threshold whose precision is at least 0.8: the most alike pairs found.
    reach = [
        t
        for t in candidates[:-1]
        if precision_score(val_alike, scores >= t, zero_division=0) >= 0.8
    ]
    emb.calibrate_threshold(val, val_alike, strategy="precision", min_precision=0.8)
    assert emb.threshold_ == pytest.approx(min(reach))
    top_unlike = val_alike.copy()
    top_unlike[np.argmax(scores)] = 0  # every threshold now counts a false match
    with pytest.raises(ValueError, match="No threshold reaches precision 1.0"):
        emb.calibrate_threshold(val, top_unlike, strategy="precision", min_precision=1.0)
    with pytest.raises(ValueError, match="min_precision"):
        emb.calibrate_threshold(val, val_alike, strategy="precision")
    with pytest.raises(ValueError, match="strategy"):
        emb.calibrate_threshold(val, val_alike, strategy="f1")


def test_pair_labels_may_be_minus_one_and_one_or_booleans(digits):
    X, y = digits
    pairs, alike = _pairs_of(y, 300)
    for labels in (2 * alike - 1, alike.astype(bool)):
        emb = PairEmbedder(preprocessor=X, **{**SMALL, "max_epochs": 1}).fit(pairs, labels)
        assert set(emb.predict(pairs)) <= set(labels)
        assert emb.classes_[1] == labels.max()


def test_pair_embedder_works_with_scikit_learn_tools(digits):
    X, y = digits
    pairs, alike = _pairs_of(y, 400)
    emb = PairEmbedder(preprocessor=X, **{**SMALL, "max_epochs": 2})
    assert clone(emb).get_params()["preprocessor"] is not None
    auc = cross_val_score(emb, pairs, alike, cv=2, scoring="roc_auc")
    assert auc.shape == (2,) and np.all((auc > 0.5) & (auc <= 1))
    search = GridSearchCV(
        emb, {"loss": [ContrastiveLoss(margin=0.5), ContrastiveLoss(margin=1.0)]}, cv=2
    )
    search.fit(pairs, alike)
    assert search.best_score_ > 0.5
    grid = GridSearchCV(
        PairEmbedder(preprocessor=X, loss=ContrastiveLoss(), **{**SMALL, "max_epochs": 1}),
        {"loss__margin": [0.5, 1.0]},
        cv=2,
    ).fit(pairs, alike)
    assert grid.best_params_["loss__margin"] in (0.5, 1.0)
    fitted = emb.fit(pairs, alike)
    tuned = TunedThresholdClassifierCV(
        FrozenEstimator(fitted), scoring=make_scorer(accuracy_score), cv=2
    ).fit(pairs, alike)
    assert set(tuned.predict(pairs)) <= {0, 1}


def test_pair_embedder_reads_tables_and_rows(digits):
    X, y = digits
    pairs, alike = _pairs_of(y, 300)
    frame = pd.DataFrame(X[:, :10], columns=[f"f{j}" for j in range(10)])
    frame["kind"] = pd.Categorical(np.where(y % 2 == 0, "even", "odd"))
    frame.loc[::7, "f3"] = np.nan
    emb = PairEmbedder(preprocessor=frame, **{**SMALL, "max_epochs": 2}).fit(pairs, alike)
    assert list(emb.feature_names_in_) == list(frame.columns)
    assert emb.transform(frame[frame.columns[::-1]]).shape == (len(frame), 8)
    assert np.isfinite(emb.decision_function(pairs)).all()
    rows = np.stack([X[pairs[:, 0]], X[pairs[:, 1]]], axis=1)  # no preprocessor: the rows
    by_rows = PairEmbedder(**{**SMALL, "max_epochs": 2}).fit(rows, alike)
    assert by_rows.n_features_in_ == X.shape[1]
    assert by_rows.decision_function(rows).shape == (len(rows),)


def test_pair_embedder_early_stopping_scores_held_out_pairs(digits):
    X, y = digits
    pairs, alike = _pairs_of(y, 500)
    emb = PairEmbedder(preprocessor=X, early_stopping=True, **{**SMALL, "max_epochs": 3})
    emb.fit(pairs, alike)
    assert len(emb.validation_scores_) == emb.n_iter_
    assert all(0 <= s <= 1 for s in emb.validation_scores_)
    emb.partial_fit(pairs, alike)
    assert emb.n_iter_ == 4


@pytest.mark.parametrize(
    ("pairs", "labels", "match"),
    [
        ([[0, 1], [2, 600]], [1, 0], "index rows outside the preprocessor, which has 600 rows"),
        ([[0, 1], [-1, 3]], [1, 0], "outside the preprocessor"),
        ([[0, 1], [4, 4]], [1, 0], r"name the same row twice \(e.g. pairs 1: \[4, 4\]\)"),
        ([[0, 1], [2, 3]], [1, 1], "one kind of pair label only"),
        ([[0, 1], [2, 3]], ["yes", "no"], "Pair labels must be 1"),
        ([[0, 1], [2, 3]], [2, 1], "Pair labels must be 1"),
        ([[0, 1], [2, 3]], [1, 0, 1], "inconsistent numbers of samples"),
        ([[0.0, 1.0], [2.0, 3.0]], [1, 0], "integer row indices"),
        ([[0, 1, 2], [2, 3, 4]], [1, 0], r"shape \(n_pairs, 2\)"),
        ([[0, 1], [2, 3]], [1, np.nan], "Input y contains NaN"),
    ],
)
def test_pair_embedder_refuses_bad_pairs(digits, pairs, labels, match):
    X, _ = digits
    with pytest.raises(ValueError, match=match):
        PairEmbedder(preprocessor=X, **SMALL).fit(np.array(pairs), np.array(labels))


def test_pair_embedder_without_preprocessor_needs_rows():
    with pytest.raises(ValueError, match="Without a preprocessor, pairs are rows"):
        PairEmbedder(**SMALL).fit(np.array([[0, 1], [2, 3]]), [1, 0])


def test_duplicate_pairs_are_fine(digits):
    X, y = digits
    pairs, alike = _pairs_of(y, 100)
    emb = PairEmbedder(preprocessor=X, **{**SMALL, "max_epochs": 1})
    emb.fit(np.r_[pairs, pairs], np.r_[alike, alike])
    assert emb.n_iter_ == 1


def test_pair_embedder_round_trips_through_save_and_pickle(digits, tmp_path):
    X, y = digits
    pairs, alike = _pairs_of(y, 300)
    emb = PairEmbedder(preprocessor=X, **{**SMALL, "max_epochs": 2}).fit(pairs, 2 * alike - 1)
    sk_dml.save(emb, tmp_path / "pairs.skdml")
    loaded = sk_dml.load(tmp_path / "pairs.skdml")
    assert loaded.preprocessor is None
    loaded.set_params(preprocessor=X)
    np.testing.assert_allclose(loaded.decision_function(pairs), emb.decision_function(pairs))
    np.testing.assert_array_equal(loaded.predict(pairs), emb.predict(pairs))
    assert list(loaded.classes_) == [-1, 1] and loaded.threshold_ == emb.threshold_
    unpickled = pickle.loads(pickle.dumps(emb))
    np.testing.assert_array_equal(unpickled.predict(pairs), emb.predict(pairs))


def test_losses_that_cannot_learn_from_pairs_say_so(digits):
    X, y = digits
    pairs, alike = _pairs_of(y, 100)
    with pytest.raises(ValueError, match="proxy_anchor loss learns one proxy per class"):
        PairEmbedder(preprocessor=X, loss=ProxyAnchorLoss(), **SMALL).fit(pairs, alike)
    with pytest.raises(ValueError, match="log_ratio loss does not learn from labelled pairs read"):
        PairEmbedder(preprocessor=X, loss=LogRatioLoss(), **SMALL).fit(pairs, alike)
    only_labelled = PairEmbedder(preprocessor=X, loss=MultiSimilarityLoss(), negatives="labelled")
    with pytest.raises(
        ValueError, match="multi_similarity loss does not learn from labelled pairs;"
    ):
        only_labelled.set_params(**SMALL).fit(pairs, alike)


# ------------------------------------------------------------------------------- triplets
def test_triplet_constraint_embedder_learns_and_scores_like_the_loop(digits):
    X, y = digits
    triplets = _triplets_of(y, 800)
    emb = TripletConstraintEmbedder(preprocessor=X, **TRAINED, **{**SMALL, "max_epochs": 10})
    emb.fit(triplets)
    test = _triplets_of(y, 400, seed=5)
    Z = emb.transform(X)
    D = cdist(Z, Z)
    held = np.array([D[a, p] < D[a, n] for a, p, n in test])
    assert emb.score(test) == pytest.approx(held.mean())
    np.testing.assert_array_equal(emb.predict(test), np.where(held, 1, -1))
    raw = cdist(X, X)
    raw_held = np.mean([raw[a, p] < raw[a, n] for a, p, n in test])
    assert emb.score(test) > raw_held
    search = GridSearchCV(emb, {"loss": [None]}, cv=2).fit(triplets)
    assert 0 <= search.best_score_ <= 1


def test_triplet_constraints_must_name_three_rows(digits):
    X, _ = digits
    with pytest.raises(ValueError, match="name the same row twice"):
        TripletConstraintEmbedder(preprocessor=X, **SMALL).fit(np.array([[0, 1, 2], [3, 3, 4]]))
    with pytest.raises(ValueError, match="contrastive loss does not learn from triplet"):
        TripletConstraintEmbedder(preprocessor=X, loss=ContrastiveLoss(), **SMALL).fit(
            np.array([[0, 1, 2], [3, 5, 4]])
        )


# ------------------------------------------------------------------------ continuous target
@pytest.fixture(scope="module")
def friedman():
    return make_friedman1(n_samples=600, n_features=25, noise=1.0, random_state=0)


def test_log_ratio_embedding_beats_raw_neighbours_on_a_noisy_target(friedman):
    X, y = friedman
    train, test = slice(0, 450), slice(450, None)
    raw = make_pipeline(StandardScaler(), KNeighborsRegressor(10)).fit(X[train], y[train])
    emb = make_pipeline(
        LogRatioEmbedder(random_state=0, device="cpu"), KNeighborsRegressor(10)
    ).fit(X[train], y[train])  # the defaults
    assert emb.score(X[test], y[test]) > raw.score(X[test], y[test]) + 0.05


def test_score_is_leave_one_out_neighbour_regression(friedman):
    X, y = friedman
    emb = LogRatioEmbedder(**SMALL).fit(X, y)
    Z = emb.transform(X)
    D = cdist(Z, Z)
    np.fill_diagonal(D, np.inf)
    predicted = np.array([y[np.argsort(row, kind="stable")[:5]].mean() for row in D])
    r2 = 1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2)
    assert emb.score(X, y) == pytest.approx(r2, rel=1e-6)
    assert neighbors_r2(Z, y) == pytest.approx(r2, rel=1e-6)


def test_integer_targets_are_numbers_for_the_log_ratio_loss(friedman):
    X, y = friedman
    emb = MetricEmbedder(loss=LogRatioLoss(), **SMALL).fit(X, np.round(y).astype(int))
    assert emb.transform(X).shape == (len(X), 8)
    grid = GridSearchCV(
        make_pipeline(LogRatioEmbedder(**{**SMALL, "max_epochs": 1}), KNeighborsRegressor()),
        {"logratioembedder__epsilon": [1e-3, 1e-2]},
        cv=2,
    ).fit(X, y)
    assert np.isfinite(grid.best_score_)
    stopped = LogRatioEmbedder(early_stopping=True, **SMALL).fit(X, y)
    assert len(stopped.validation_scores_) == stopped.n_iter_


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (np.r_[np.nan, np.arange(599.0)], "Input y contains NaN"),
        (np.full(600, 3.0), r"y is constant \(every target is 3\)"),
        (np.array(["a", "b"] * 300), "A continuous target must be numeric"),
    ],
)
def test_log_ratio_refuses_bad_targets(friedman, y, match):
    X, _ = friedman
    with pytest.raises(ValueError, match=match):
        LogRatioEmbedder(**SMALL).fit(X, y)
    frame = pd.DataFrame(X)
    with pytest.raises(ValueError, match=match):
        LogRatioEmbedder(**SMALL).fit(frame, y)


def test_a_continuous_target_for_a_class_loss_points_to_the_log_ratio_loss(friedman):
    X, y = friedman
    with pytest.raises(ValueError, match="Unknown label type: continuous.*LogRatioEmbedder"):
        TripletEmbedder(**SMALL).fit(X, y)
    with pytest.raises(ValueError, match="validation_split='classes'"):
        LogRatioEmbedder(early_stopping=True, validation_split="classes", **SMALL).fit(X, y)


def test_in_batch_negatives_label_rows_by_the_components_of_the_alike_pairs():
    rows = np.zeros((6, 2), np.float32)
    pairs = np.array([[0, 1], [1, 2], [3, 4], [2, 5]])
    task = LabelledPairs(rows, np.array([1, 1, 0, 0]), tuples=pairs, in_batch=True)
    targets = task.targets_for(None)
    np.testing.assert_array_equal(targets[:, 0], [1, 1, 0, 0])
    entity = {
        r: e
        for pair, ends in zip(pairs, targets[:, 1:], strict=True)
        for r, e in zip(pair, ends, strict=True)
    }
    assert entity[0] == entity[1] == entity[2]  # 0-1 and 1-2 alike: one entity
    assert len({entity[0], entity[3], entity[4], entity[5]}) == 4
    # The loss is the class loss on the batch's rows labelled by entity.
    Z = torch.tensor(np.random.default_rng(0).normal(size=(4, 2, 3)))
    criterion = ContrastiveLoss(margin=0.7).build(None, 3, "classes")
    value = InBatchPairCriterion(criterion.function)(Z, torch.as_tensor(targets))
    flat = torch.cat([Z[:, 0], Z[:, 1]])
    labels = np.r_[targets[:, 1], targets[:, 2]]
    assert float(value) == pytest.approx(float(contrastive_loss(flat, labels, margin=0.7)))
    assert LabelledPairs(rows, np.array([1, 1, 0, 0]), tuples=pairs).loss_kind == "pairs"


def test_labelled_negatives_train_on_the_pairs_only(digits):
    X, y = digits
    pairs, alike = _balanced_pairs_of(y, 300)
    emb = PairEmbedder(
        preprocessor=X, negatives="labelled", **TRAINED, **{**SMALL, "max_epochs": 8}
    )
    assert emb.fit(pairs, alike).score(pairs, alike) > 0.9
    with pytest.raises(ValueError, match="'negatives' parameter of PairEmbedder must be"):
        PairEmbedder(preprocessor=X, negatives="all", **SMALL).fit(pairs, alike)


def test_pairs_of_rows_with_every_cell_missing_embed_as_missing_rows():
    """A row with no value at all is embedded as the input layer's "missing" in every column
    (finite); two such rows are at distance 0, and a pair with one gets a finite decision."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    X[:20] = np.nan
    table = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "t": ["abc", "abd", None, "xyz"] * 50})
    table.loc[:19, "t"] = None
    pairs = rng.integers(0, 200, size=(600, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs[:50, 0] = np.arange(50) % 20
    alike = rng.integers(0, 2, len(pairs))
    for rows in (X, table):
        emb = PairEmbedder(preprocessor=rows, **SMALL).fit(pairs, alike)
        Z = emb.transform(rows)
        assert np.isfinite(Z).all() and np.isfinite(emb.decision_function(pairs)).all()
        np.testing.assert_allclose(Z[1:20], np.repeat(Z[:1], 19, axis=0), atol=1e-6)


@pytest.mark.parametrize("missing", [None, np.nan, pd.NA])
def test_a_missing_class_label_is_named_as_such(missing):
    # Strings with one missing label: NumPy cannot sort them, so the check must come first.
    X = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 7})
    y = pd.Series(["p", "q"] * 20, dtype="string" if missing is pd.NA else object)
    y[5] = missing
    message = r"Input y contains NaN: 1 missing class label\(s\), the first in row 5"
    for table in (X, X.to_numpy()):
        with pytest.raises(ValueError, match=message):
            TripletEmbedder(max_epochs=1).fit(table, y)
