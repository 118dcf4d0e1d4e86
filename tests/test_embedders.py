"""The estimators as users touch them: scikit-learn conventions, pipelines, the learned metric."""

import io
import pickle
import warnings
from contextlib import redirect_stderr

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import CLASS_EMBEDDERS, CLASS_LOSSES, EMBEDDERS
from scipy.spatial.distance import cdist
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import sk_dml
from sk_dml import (
    ContrastiveEmbedder,
    LiftedStructEmbedder,
    NPairEmbedder,
    TripletEmbedder,
)

# Small and quick: these tests check behaviour, not accuracy (benchmarks/ measures that).
QUICK = dict(max_epochs=5, hidden_layer_sizes=(32,), n_components=8, batch_size=32)


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def digits_split():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


@parametrize_with_checks(
    [
        cls(
            max_epochs=3,
            batch_size=16,
            hidden_layer_sizes=(16,),
            n_components=4,
            samples_per_class=2,
        )
        for cls in (*EMBEDDERS, sk_dml.MetricEmbedder)
    ]  # fmt: skip
)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.slow
@pytest.mark.parametrize("cls", CLASS_EMBEDDERS, ids=CLASS_LOSSES)
def test_learns_a_better_space_than_raw_features(cls, digits_split):
    X_train, X_test, y_train, y_test = digits_split
    # Trained on every row: with the default selection on 10% held-out rows the triplet and
    # contrastive losses end below the raw features here (1-NN 0.970 and 0.967 vs 0.983), a
    # known cost of that default that benchmarks/results/accuracy.md shows on digits too.
    emb = cls(random_state=0, max_epochs=30, early_stopping=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        emb.fit(X_train, y_train)
    knn = KNeighborsClassifier(1, metric=emb.embedding_metric_)
    learned = knn.fit(emb.transform(X_train), y_train).score(emb.transform(X_test), y_test)
    raw = KNeighborsClassifier(1).fit(X_train, y_train).score(X_test, y_test)
    assert learned >= raw - 0.01, (learned, raw)
    assert emb.loss_curve_[-1] < emb.loss_curve_[0]


def test_pipeline_and_grid_search_over_margin(wine):
    X, y = wine
    pipe = make_pipeline(
        StandardScaler(), TripletEmbedder(random_state=0, **QUICK), KNeighborsClassifier()
    )
    grid = GridSearchCV(pipe, {"tripletembedder__margin": [0.1, 0.5]}, cv=3).fit(X, y)
    assert set(grid.cv_results_["param_tripletembedder__margin"]) == {0.1, 0.5}
    assert 0 <= grid.best_score_ <= 1
    assert grid.predict(X).shape == y.shape


def test_grid_search_on_a_bare_embedder_uses_its_score(wine):
    X, y = wine
    grid = GridSearchCV(TripletEmbedder(random_state=0, **QUICK), {"margin": [0.1, 0.2]}, cv=3)
    grid.fit(X, y)
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.best_estimator_.margin in (0.1, 0.2)


def test_score_is_leave_one_out_precision_at_1(wine):
    X, y = wine
    emb = LiftedStructEmbedder(random_state=0, **QUICK).fit(X, y)
    Z = emb.transform(X)
    # Oracle: scikit-learn's neighbour search; the first neighbour of a point is itself.
    nearest = NearestNeighbors(n_neighbors=2).fit(Z).kneighbors(Z, return_distance=False)[:, 1]
    assert emb.score(X, y) == pytest.approx(np.mean(y[nearest] == y))


@pytest.mark.parametrize(
    "distance", ["euclidean", "sqeuclidean", "cosine", "manhattan", "chebyshev"]
)
def test_learned_metric_matches_the_pipeline_route(distance, digits_split):
    X_train, X_test, y_train, y_test = digits_split
    X_train, y_train, X_test = X_train[:300], y_train[:300], X_test[:60]
    emb = TripletEmbedder(distance=distance, random_state=0, **QUICK).fit(X_train, y_train)
    assert emb.embedding_metric_ == distance
    metric = emb.get_metric()
    by_callable = KNeighborsClassifier(metric=metric).fit(X_train, y_train)
    fast = make_pipeline(emb, KNeighborsClassifier(metric=emb.embedding_metric_))
    fast.fit(X_train, y_train)
    np.testing.assert_array_equal(by_callable.predict(X_test), fast.predict(X_test))
    # The callable and the vectorised matrix agree, and both agree with scipy on the embedding.
    D = emb.pairwise_distances(X_test[:5], X_train[:7])
    by_pair = [[metric(u, v) for v in X_train[:7]] for u in X_test[:5]]
    np.testing.assert_allclose(D, by_pair, rtol=1e-4, atol=1e-5)
    scipy_name = {"manhattan": "cityblock"}.get(distance, distance)
    expected = cdist(emb.transform(X_test[:5]), emb.transform(X_train[:7]), scipy_name)
    np.testing.assert_allclose(D, expected, rtol=1e-4, atol=1e-5)
    # A classifier holding the metric pickles and predicts the same after loading.
    restored = pickle.loads(pickle.dumps(by_callable))
    np.testing.assert_array_equal(restored.predict(X_test), by_callable.predict(X_test))


def test_pair_distance_uses_metric_learn_shapes(wine):
    X, y = wine
    emb = ContrastiveEmbedder(random_state=0, **QUICK).fit(X, y)
    pairs = np.stack([X[:10], X[10:20]], axis=1)  # (10, 2, n_features)
    np.testing.assert_allclose(
        emb.pair_distance(pairs),
        np.diag(cdist(emb.transform(X[:10]), emb.transform(X[10:20]))),
        rtol=1e-4,
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="n_pairs, 2, n_features"):
        emb.pair_distance(X[:10])


def test_any_label_type_and_dataframes(wine):
    X, y = wine
    names = np.array(["barolo", "grignolino", "barbera"])[y]
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    for labels in (names, pd.Series(names, dtype="category"), list(names)):
        emb = NPairEmbedder(random_state=0, **QUICK).fit(frame, labels)
        assert emb.transform(frame).shape == (len(X), 8)
    np.testing.assert_array_equal(emb.feature_names_in_, frame.columns)
    out = emb.set_output(transform="pandas").transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == [f"npairembedder{i}" for i in range(8)]
    # Lists of lists and float32 input work too.
    emb = NPairEmbedder(random_state=0, **QUICK).fit(X.astype(np.float32).tolist(), y)
    assert emb.transform(X.astype(np.float32)).dtype == np.float32


def test_unfitted_use_raises_not_fitted(wine):
    X, _ = wine
    emb = TripletEmbedder()
    calls = (
        lambda: emb.transform(X),
        lambda: emb.pairwise_distances(X),
        lambda: emb.get_metric(),
        lambda: emb.score(X, np.zeros(len(X))),
        lambda: emb.pair_distance(np.stack([X, X], axis=1)),
    )
    for call in calls:
        with pytest.raises(NotFittedError):
            call()


def test_random_state_makes_a_fit_reproducible(wine):
    X, y = wine
    first = TripletEmbedder(random_state=3, dropout=0.2, **QUICK).fit(X, y).transform(X)
    second = TripletEmbedder(random_state=3, dropout=0.2, **QUICK).fit(X, y).transform(X)
    other = TripletEmbedder(random_state=4, dropout=0.2, **QUICK).fit(X, y).transform(X)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)


def test_clone_pickle_and_joblib_round_trip(wine, tmp_path):
    X, y = wine
    emb = LiftedStructEmbedder(random_state=0, margin=0.7, **QUICK).fit(X, y)
    assert clone(emb).get_params() == emb.get_params()
    assert not hasattr(clone(emb), "module_")
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(emb)).transform(X), emb.transform(X))
    joblib.dump(emb, tmp_path / "emb.joblib")
    np.testing.assert_array_equal(
        joblib.load(tmp_path / "emb.joblib").transform(X), emb.transform(X)
    )


def test_convergence_warning_and_stopping(wine):
    X, y = wine
    constant = dict(QUICK, max_epochs=2, learning_rate_schedule="constant")
    with pytest.warns(ConvergenceWarning, match="max_epochs=2"):
        TripletEmbedder(random_state=0, **constant).fit(X, y)
    # With the cosine schedule, running all max_epochs is the plan: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        emb = TripletEmbedder(random_state=0, **{**QUICK, "max_epochs": 2}).fit(X, y)
    assert emb.n_iter_ == 2
    # Without held-out data, a huge tol stops without a warning: the first epoch is the only
    # improvement of the training loss, then n_iter_no_change epochs without one.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        emb = TripletEmbedder(
            random_state=0, tol=1e9, n_iter_no_change=2, early_stopping=False, **constant
        )
        emb.set_params(max_epochs=5).fit(X, y)
    assert emb.n_iter_ == 1 + 2


def test_early_stopping_keeps_the_best_validation_score(wine):
    X, y = wine
    emb = ContrastiveEmbedder(random_state=0, early_stopping=True, validation_fraction=0.3, **QUICK)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        emb.fit(X, y)
    assert len(emb.validation_scores_) == emb.n_iter_ == len(emb.loss_curve_)
    assert emb.best_score_ == max(emb.validation_scores_)
    assert 0 <= emb.best_score_ <= 1


@pytest.mark.parametrize(
    "verbose, watched, seconds, shown",
    [
        (0, True, 0.0, False),  # never
        (1, False, 1e9, True),  # always
        ("auto", False, 0.0, False),  # a long fit that nobody watches (a file, a test)
        ("auto", True, 1e9, False),  # watched, but quick
        ("auto", True, 0.0, True),  # watched and long: the bar, with the validation score
    ],
)
def test_verbose_shows_progress_when_asked_or_long_and_watched(
    wine, monkeypatch, verbose, watched, seconds, shown
):
    import sk_dml._training

    X, y = wine
    assert TripletEmbedder().verbose == "auto"  # the default
    monkeypatch.setattr(sk_dml._training, "_interactive", lambda: watched)
    monkeypatch.setattr(sk_dml._training, "AUTO_PROGRESS_SECONDS", seconds)
    err = io.StringIO()
    with redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        emb = TripletEmbedder(random_state=0, verbose=verbose, early_stopping=True, **QUICK)
        emb.fit(X, y)
    assert ("loss=" in err.getvalue()) is shown
    if shown:  # the last epoch's validation score, as validation_scores_ holds it
        assert f"val={emb.validation_scores_[-1]:.4f}" in err.getvalue()


def test_partial_fit_runs_one_epoch_and_accepts_new_labels(wine):
    X, y = wine
    emb = TripletEmbedder(random_state=0, **QUICK)
    emb.partial_fit(X[y < 2], y[y < 2])
    emb.partial_fit(X, np.where(y == 2, "new", "old"))
    assert emb.n_iter_ == 2 and len(emb.loss_curve_) == 2
    with pytest.raises(ValueError, match="features"):
        emb.partial_fit(X[:, :5], y)


def test_warm_start_continues_training(wine):
    X, y = wine
    # A plain MLP trained on every row: each fit's epochs change the weights.
    emb = TripletEmbedder(
        random_state=0, warm_start=True, residual=False, early_stopping=False, **QUICK
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        emb.fit(X, y)
        first = emb.n_iter_
        weights = emb.module_.body[0].weight.detach().clone()
        emb.fit(X, y)
    assert emb.n_iter_ > first
    assert not torch.equal(weights, emb.module_.body[0].weight)


def test_users_own_module(wine):
    X, y = wine
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 6))
    emb = ContrastiveEmbedder(module=net, random_state=0, **QUICK).fit(X, y)
    assert emb.transform(X).shape == (len(X), 6)
    assert emb.module_ is not net  # the parameter itself is never trained in place
    emb = ContrastiveEmbedder(module=lambda d: torch.nn.Linear(d, 3), **QUICK).fit(X, y)
    assert emb.get_feature_names_out().tolist() == [f"contrastiveembedder{i}" for i in range(3)]


def test_device_choice():
    X, y = load_iris(return_X_y=True)
    emb = TripletEmbedder(device="cpu", **QUICK).fit(X, y)
    assert emb.device_ == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert TripletEmbedder(**QUICK).fit(X, y).device_.type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            TripletEmbedder(device="cuda", **QUICK).fit(X, y)
    with pytest.raises(ValueError, match="not a valid torch device"):
        TripletEmbedder(device="gpu7", **QUICK).fit(X, y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_trained_model_pickles_to_cpu(wine):
    X, y = wine
    emb = TripletEmbedder(device="cuda", random_state=0, **QUICK).fit(X, y)
    restored = pickle.loads(pickle.dumps(emb))
    assert next(restored.module_.parameters()).device.type == "cpu"
    np.testing.assert_allclose(restored.transform(X), emb.transform(X), atol=1e-5)


def test_cosine_schedule_anneals_the_learning_rate(wine):
    X, y = wine
    emb = TripletEmbedder(random_state=0, learning_rate=0.01, **QUICK).fit(X, y)
    # After the last of max_epochs epochs, cosine annealing has brought the rate to 0.
    assert emb._trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    constant = TripletEmbedder(learning_rate=0.01, learning_rate_schedule="constant", **QUICK)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        constant.fit(X, y)
    assert constant._trainer.optimizer.param_groups[0]["lr"] == 0.01


def test_categorical_column_all_missing_at_transform():
    """Rows whose categorical column is missing in every row (a single row, say) get the
    "missing" embedding; the column's codes are all 0."""
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    X = pd.DataFrame({"x": rng.normal(y, 1.0), "c": np.array(["a", "b", "c"], dtype=object)[y]})
    emb = TripletEmbedder(random_state=0, **QUICK).fit(X, y)
    blank = X.assign(c=None)
    Z = emb.transform(blank)
    assert Z.shape == (120, 8) and np.isfinite(Z).all()
    np.testing.assert_array_equal(emb.schema_.encode([blank["x"], blank["c"]])[:, 1], 0.0)
    np.testing.assert_allclose(emb.transform(blank.iloc[:1]), Z[:1], rtol=1e-5, atol=1e-6)


def test_an_array_for_a_model_fitted_on_string_columns_says_to_pass_a_dataframe():
    frame = pd.DataFrame({"a": np.arange(40.0), "id": [f"C{i:05d}" for i in range(40)]})
    y = np.r_[np.zeros(20), np.ones(20)]
    model = TripletEmbedder(max_epochs=1, batch_size=16, random_state=0).fit(frame, y)
    refused = r"float: 'C00000': .* columns \['id'\] hold strings.*pass a DataFrame"
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        with pytest.raises(ValueError, match=refused):
            model.transform(frame.to_numpy())
    # Numbers only: an array is as good as the DataFrame, and any other error is unchanged.
    numeric = TripletEmbedder(max_epochs=1, batch_size=16, random_state=0).fit(frame[["a"]], y)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        np.testing.assert_array_equal(
            numeric.transform(frame[["a"]].to_numpy()), numeric.transform(frame[["a"]])
        )
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        with pytest.raises(ValueError, match=r"^could not convert string to float: 'C00000'$"):
            numeric.transform(frame[["id"]].to_numpy())
