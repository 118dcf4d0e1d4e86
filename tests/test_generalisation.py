"""What serves classes never seen in training: the residual network's start, and early stopping
on held-out classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from sk_dml import PairEmbedder, ProxyAnchorEmbedder, TripletConstraintEmbedder, TripletEmbedder
from sk_dml.metrics import mean_average_precision_at_r
from sk_dml.nets import ResidualEmbedding
from sk_dml.supervision import ClassLabels, LabelledPairs, TripletConstraints

QUICK = dict(max_epochs=4, hidden_layer_sizes=(32,), batch_size=32)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return ((X - X.mean(0)) / (X.std(0) + 1e-9)).astype(np.float32), y


def embed(net, X):
    with torch.no_grad():
        return net(torch.tensor(X)).double().numpy()


@pytest.mark.parametrize("n_components", [64, 80])
def test_untrained_residual_network_keeps_the_inputs_distances(digits, n_components):
    X = digits[0][:300]
    net = ResidualEmbedding(64, n_components, (16,), normalize=False).init_from_data(X)
    np.testing.assert_allclose(cdist(embed(net, X), embed(net, X)), cdist(X, X), atol=1e-3)


def test_untrained_residual_network_is_the_pca_projection_when_narrower(digits):
    X = digits[0][:300]
    net = ResidualEmbedding(64, 8, (16,), normalize=False).init_from_data(X)
    Z = PCA(8).fit_transform(X.astype(np.float64))
    np.testing.assert_allclose(cdist(embed(net, X), embed(net, X)), cdist(Z, Z), atol=1e-3)


def test_untrained_normalised_residual_network_ranks_like_the_inputs_cosine(digits):
    X = digits[0][:200]
    net = ResidualEmbedding(64, 64, (16,), normalize=True).init_from_data(X)
    Z = embed(net, X)
    # Unit rows: squared Euclidean distance is 2 - 2 cos, and the PCA rotation keeps cosines
    # of the centred rows (the linear path has no bias, so it rotates X - mean + mean).
    np.testing.assert_allclose(cdist(Z, Z, "sqeuclidean") / 2, cdist(X, X, "cosine"), atol=1e-4)


def record_class_split(monkeypatch):
    """Record each validation split as (training rows, their labels, held-out rows, their
    labels); the rows as the network reads them (a numeric table: its numbers, float32)."""
    held = []
    split = ClassLabels.split

    def recording(self, fraction, by, rng):
        part, X_val, y_val = split(self, fraction, by, rng)
        held.append((part.rows, part.labels[part.targets], X_val, self.labels[y_val]))
        return part, X_val, y_val

    monkeypatch.setattr(ClassLabels, "split", recording)
    return held


def test_held_out_classes_are_whole_classes_scored_by_map_at_r(digits, monkeypatch):
    X, y = digits
    held = record_class_split(monkeypatch)
    emb = ProxyAnchorEmbedder(
        random_state=0, early_stopping=True, validation_split="classes", validation_fraction=0.3,
        **QUICK,
    ).fit(X, y)  # fmt: skip
    _, y_train, X_val, y_val = held[0]
    assert len(np.unique(y_val)) == 3  # 30% of 10 classes
    assert not set(y_val) & set(y_train)  # no class on both sides
    assert len(X_val) == np.isin(y, np.unique(y_val)).sum()  # all of their rows
    # The proxies are those of the training classes only.
    assert len(emb._trainer.objective.criterion.proxies) == 7
    # The kept network scores best_score_ (MAP@R) on the held-out rows.
    kept = mean_average_precision_at_r(emb.transform(X_val), y_val, metric=emb.embedding_metric_)
    assert kept == pytest.approx(emb.best_score_, abs=1e-6)
    assert emb.best_score_ >= max(emb.validation_scores_)


def test_untrained_network_is_kept_when_no_epoch_beats_it(digits, monkeypatch):
    X, y = digits
    held = record_class_split(monkeypatch)
    # A huge learning rate wrecks the embedding; the start (the inputs' geometry) must win.
    emb = TripletEmbedder(
        residual=True, learning_rate=10.0, random_state=0, early_stopping=True,
        validation_split="classes", **QUICK,
    ).fit(X, y)  # fmt: skip
    X_train, _, X_val, y_val = held[0]
    scaler = StandardScaler().fit(X)  # the input layer standardises with the whole table
    start = ResidualEmbedding(64, 64, (32,)).init_from_data(scaler.transform(X_train))
    at_start = embed(start, scaler.transform(X_val))
    expected = mean_average_precision_at_r(at_start, y_val)
    assert emb.best_score_ == pytest.approx(expected, abs=1e-5)
    assert max(emb.validation_scores_) < emb.best_score_
    np.testing.assert_allclose(emb.transform(X_val), at_start, atol=1e-5)


def test_too_few_classes_to_hold_out_is_a_clear_error(digits):
    X, y = digits
    rows = y < 3
    emb = ProxyAnchorEmbedder(early_stopping=True, validation_split="classes", **QUICK)
    with pytest.raises(ValueError, match="validation_split='classes' holds out 2 classes"):
        emb.fit(X[rows], y[rows])


# -- the default selection: held-out data, the untrained start a candidate -----------------
def _held_out_kind(monkeypatch, X, y, **params):
    """Which part the default fit held out ("classes", "rows") and its held-out labels."""
    seen = []
    split = ClassLabels.split

    def recording(self, fraction, by, rng):
        part, X_val, y_val = split(self, fraction, by, rng)
        seen.append((by, self.labels[y_val]))
        return part, X_val, y_val

    monkeypatch.setattr(ClassLabels, "split", recording)
    emb = TripletEmbedder(random_state=0, **QUICK, **params).fit(X, y)
    return emb, seen


def test_default_holds_out_rows_scored_by_precision_at_1(digits, monkeypatch):
    X, y = digits
    emb, seen = _held_out_kind(monkeypatch, X, y)
    ((by, held),) = seen
    assert by == "rows" and set(held) == set(range(10))  # stratified: every class is there
    assert len(held) == round(0.1 * len(y))
    assert emb.validation_scores_ is not None and len(emb.validation_scores_) == emb.n_iter_


@pytest.mark.parametrize("split", ["rows", "classes"])
def test_the_untrained_start_is_kept_whatever_is_held_out(digits, split):
    """A learning rate that wrecks training: the fit must end at its start, on the held-out
    data and, here, everywhere (the start is the PCA rotation of the standardised input)."""
    X, y = digits
    emb = TripletEmbedder(
        residual=True, learning_rate=10.0, random_state=0, validation_split=split, **QUICK
    ).fit(X, y)  # fmt: skip
    assert max(emb.validation_scores_) < emb.best_score_
    scaler = StandardScaler().fit(X)
    Z = emb.transform(X).astype(np.float64)
    # normalised, so squared distances / 2 are the cosine distances of the standardised input
    np.testing.assert_allclose(
        cdist(Z[:100], Z[:100], "sqeuclidean") / 2,
        cdist(scaler.transform(X[:100]), scaler.transform(X[:100]), "cosine"),
        atol=1e-4,
    )


def test_too_little_data_to_hold_out_trains_on_all_of_it(digits):
    X, y = digits
    rows = np.concatenate([np.flatnonzero(y == c)[:4] for c in (0, 1)])  # 8 rows, 2 classes
    emb = TripletEmbedder(random_state=0, **{**QUICK, "batch_size": 8}).fit(X[rows], y[rows])
    assert emb.n_iter_ == QUICK["max_epochs"]
    assert emb.validation_scores_ is None and emb.best_score_ is None
    # With early_stopping=True the same data is a clear error, as before.
    with pytest.raises(ValueError, match="early_stopping=True cannot hold out rows of this"):
        TripletEmbedder(early_stopping=True, **{**QUICK, "batch_size": 8}).fit(X[rows], y[rows])


@pytest.mark.parametrize("kind", [LabelledPairs, TripletConstraints])
def test_a_tuple_embedders_default_fit_ends_no_lower_than_the_tables_own_distance(
    digits, kind, monkeypatch
):
    """The tuple embedders' defaults: the untrained network is the Euclidean distance of the
    standardised rows (residual start, not normalised) and a candidate of the held-out
    selection, so the fit ends no lower on the held-out tuples than that distance scores
    them (here with a learning rate that wrecks training)."""
    X, y = digits
    held = []
    split = kind.split

    def recording(self, fraction, by, rng):
        part, rows, targets = split(self, fraction, by, rng)
        held.append((rows, targets))
        return part, rows, targets

    monkeypatch.setattr(kind, "split", recording)
    rows = np.random.default_rng(0).integers(0, len(y), size=(20000, 3))
    rows = rows[(rows[:, 0] != rows[:, 1]) & (rows[:, 0] != rows[:, 2])]
    params = dict(preprocessor=X, learning_rate=10.0, random_state=0, **QUICK)
    if kind is LabelledPairs:
        emb = PairEmbedder(**params).fit(rows[:3000, :2], y[rows[:3000, 0]] == y[rows[:3000, 1]])
    else:
        kept = (y[rows[:, 0]] == y[rows[:, 1]]) & (y[rows[:, 0]] != y[rows[:, 2]])
        emb = TripletConstraintEmbedder(**params).fit(rows[kept])
    ((val_rows, targets),) = held
    scaler = StandardScaler().fit(X)
    size = 2 if kind is LabelledPairs else 3
    raw = scaler.transform(val_rows).reshape(len(targets), size, -1)
    learned = emb.transform(val_rows).reshape(len(targets), size, -1)

    def held_out_score(tuples):  # the oracle: scikit-learn's ROC AUC, numpy's norms
        near = np.linalg.norm(tuples[:, 0] - tuples[:, 1], axis=1)
        if kind is LabelledPairs:
            return roc_auc_score(targets, -near)
        return np.mean(near < np.linalg.norm(tuples[:, 0] - tuples[:, 2], axis=1))

    assert held_out_score(learned) == pytest.approx(emb.best_score_, abs=1e-6)
    assert emb.best_score_ >= held_out_score(raw) - 1e-9
    assert emb.best_score_ >= max(emb.validation_scores_)
    if kind is LabelledPairs:  # no epoch beat it: the fit is the start, the table's distance
        assert max(emb.validation_scores_) < emb.best_score_
        Z = emb.transform(X[:100]).astype(np.float64)
        D = cdist(scaler.transform(X[:100]), scaler.transform(X[:100]))
        np.testing.assert_allclose(cdist(Z, Z), D, atol=1e-3)
