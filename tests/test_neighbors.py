"""ApproximateKNeighborsTransformer against independent oracles.

The oracles: scikit-learn's KNeighborsTransformer (the graph this one must reproduce), brute
force with scipy's cdist in float64 (recall and distance values), and a Pipeline through
KNeighborsClassifier on the embedding (predictions).
"""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.base import clone
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier, KNeighborsTransformer
from sklearn.pipeline import make_pipeline
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

import sk_dml.neighbors
from sk_dml import ApproximateKNeighborsTransformer, TripletEmbedder

METRICS = ("euclidean", "sqeuclidean", "cosine")
MODES = ("distance", "connectivity")


def neighbour_rows(graph):
    """(indices, data) of a graph with the same number of entries in every row, as 2-D."""
    graph = graph.tocsr()
    width = np.diff(graph.indptr)
    assert (width == width[0]).all()
    return graph.indices.reshape(-1, width[0]), graph.data.reshape(-1, width[0])


def brute_force(X_fit, Q, k, metric):
    """k nearest rows of X_fit for each row of Q, from float64 cdist (indices, distances)."""
    D = cdist(np.asarray(Q, np.float64), np.asarray(X_fit, np.float64), metric)
    idx = np.argsort(D, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(D, idx, axis=1)


def recall(found, truth):
    return np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])


@pytest.fixture(scope="module")
def random_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(600, 12)), rng.normal(size=(150, 12))


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(n_samples=20_500, n_features=16, centers=50, random_state=0)
    return X[:20_000].astype(np.float32), X[20_000:].astype(np.float32)


# ------------------------------------------------------------------------------ scikit-learn
@parametrize_with_checks(
    [
        ApproximateKNeighborsTransformer(backend="exact"),
        ApproximateKNeighborsTransformer(backend="faiss"),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------------------------ exact backend
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("metric", METRICS)
def test_exact_backend_is_kneighbors_transformer(metric, mode, random_data):
    X, Q = random_data
    ours = ApproximateKNeighborsTransformer(n_neighbors=7, mode=mode, metric=metric)
    ref = KNeighborsTransformer(n_neighbors=7, mode=mode, metric=metric)
    for got, want in [
        (ours.fit(X).transform(Q), ref.fit(X).transform(Q)),
        (ours.fit_transform(X), ref.fit_transform(X)),  # each row finds itself at 0
    ]:
        assert ours.backend_ == "exact"  # auto, below auto_min_samples
        assert type(got) is type(want) and got.format == "csr"
        assert got.shape == want.shape and got.nnz == want.nnz
        np.testing.assert_array_equal(got.indptr, want.indptr)
        got_idx, got_val = neighbour_rows(got)
        want_idx, want_val = neighbour_rows(want)
        np.testing.assert_array_equal(np.sort(got_idx, 1), np.sort(want_idx, 1))
        np.testing.assert_allclose(got_val, want_val, rtol=1e-5, atol=1e-5)
        assert got.dtype == want.dtype == np.float64
        assert (np.diff(got_val, axis=1) >= 0).all()  # sorted by distance
    if mode == "distance":  # the self-distances are stored, explicit zeros included
        diagonal = got_idx[:, 0] == np.arange(len(X))
        assert diagonal.all() and (got_val[:, 0] <= 1e-6).all()


@pytest.mark.parametrize("metric", METRICS)
def test_exact_backend_blocks_over_queries_and_fitted_rows(metric, monkeypatch):
    """Tiny blocks (many query batches x many fitted blocks, merged as it goes) give the
    float64 brute-force answer, also for close points far from the origin, where the matmul
    expansion of the distance loses most of its float32 digits."""
    rng = np.random.default_rng(1)
    X = 100.0 + rng.normal(scale=0.5, size=(300, 5))
    Q = 100.0 + rng.normal(scale=0.5, size=(40, 5))
    for name, value in [("_TILE_QUERIES", 3), ("_TILE_ROWS", 5), ("_BLOCK_ELEMENTS", 64)]:
        monkeypatch.setattr(sk_dml.neighbors, name, value)
    est = ApproximateKNeighborsTransformer(n_neighbors=6, metric=metric, batch_size=7)
    idx, dist = neighbour_rows(est.fit(X).transform(Q))
    want_idx, want_dist = brute_force(X, Q, 7, metric)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-4, atol=1e-6)


def test_cosine_treats_a_zero_row_as_orthogonal_to_everything():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    graph = ApproximateKNeighborsTransformer(n_neighbors=3, metric="cosine").fit(X)
    _, dist = neighbour_rows(graph.transform([[0.0, 0.0]]))
    np.testing.assert_allclose(dist, [[1.0, 1.0, 1.0, 1.0]])


# ------------------------------------------------------------------------------ faiss backend
@pytest.mark.parametrize("n_probe", [8, 32])  # 32: the default
@pytest.mark.parametrize("metric", METRICS)
def test_faiss_recall_against_brute_force(metric, n_probe, blobs):
    X, Q = blobs
    est = ApproximateKNeighborsTransformer(
        n_neighbors=10, mode="connectivity", metric=metric, backend="faiss", n_probe=n_probe,
        random_state=0,
    )  # fmt: skip
    idx, _ = neighbour_rows(est.fit(X).transform(Q))
    assert est.backend_ == "faiss" and est.n_lists_ == min(round(4 * np.sqrt(len(X))), len(X) // 39)
    assert est.n_probe < est.n_lists_  # a real approximation: most cells are not scanned
    truth, _ = brute_force(X, Q, 10, metric)
    assert recall(idx, truth) >= 0.9


@pytest.mark.parametrize("metric", METRICS)
def test_faiss_distances_are_exact_for_the_neighbours_found(metric, blobs):
    X, Q = blobs
    est = ApproximateKNeighborsTransformer(
        n_neighbors=10, metric=metric, backend="faiss", n_probe=2, random_state=0
    )
    idx, dist = neighbour_rows(est.fit(X).transform(Q))
    want = np.array([cdist(q[None], X[i], metric)[0] for q, i in zip(Q, idx, strict=True)])
    np.testing.assert_allclose(dist, want, rtol=1e-4, atol=1e-4)
    assert (np.diff(dist, axis=1) >= 0).all()


def test_faiss_scanning_every_cell_is_exact_and_short_cells_are_completed(random_data):
    """With n_probe=1 the probed cell holds fewer rows than asked for: the transformer must
    still return n_neighbors + 1 per row (by scanning everything), which is then exact."""
    X, Q = random_data
    est = ApproximateKNeighborsTransformer(
        n_neighbors=len(X) - 1, backend="faiss", n_probe=1, random_state=0
    )
    got = est.fit(X).transform(Q)
    assert est.n_lists_ == len(X) // 39  # capped: 39 training rows per cell
    want = KNeighborsTransformer(n_neighbors=len(X) - 1).fit(X).transform(Q)
    got_idx, got_val = neighbour_rows(got)
    np.testing.assert_array_equal(np.sort(got_idx, 1), np.sort(neighbour_rows(want)[0], 1))
    # Scanning every cell: the same graph as the exact search.
    est.set_params(n_neighbors=5, n_probe=est.n_lists_)
    want = KNeighborsTransformer(n_neighbors=5).fit(X).transform(Q)
    got_idx, got_val = neighbour_rows(est.transform(Q))
    want_idx, want_val = neighbour_rows(want)
    np.testing.assert_array_equal(got_idx, want_idx)
    np.testing.assert_allclose(got_val, want_val, rtol=1e-5, atol=1e-5)


def test_faiss_fit_is_reproducible_with_random_state(blobs):
    X, Q = blobs
    graphs = [
        ApproximateKNeighborsTransformer(backend="faiss", n_probe=2, random_state=3)
        .fit(X[:5000])
        .transform(Q)
        for _ in range(2)
    ]
    assert (graphs[0] != graphs[1]).nnz == 0


def test_auto_backend_uses_faiss_only_for_large_fitted_sets(random_data):
    X, _ = random_data
    small = ApproximateKNeighborsTransformer(auto_min_samples=len(X) + 1).fit(X)
    large = ApproximateKNeighborsTransformer(auto_min_samples=len(X), random_state=0).fit(X)
    assert (small.backend_, small.index_, small.n_lists_) == ("exact", None, None)
    assert large.backend_ == "faiss" and large.index_.ntotal == len(X)


# ------------------------------------------------------------------------------ pipelines
@pytest.fixture(scope="module")
def digits_pipelines():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, _ = train_test_split(
        X / 16.0, y, test_size=0.3, random_state=0, stratify=y
    )
    emb = TripletEmbedder(
        max_epochs=5, hidden_layer_sizes=(32,), n_components=8, batch_size=32,
        random_state=0, device="cpu",
    )  # fmt: skip

    def predict(*steps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipe = make_pipeline(clone(emb), *steps).fit(X_train, y_train)
        return pipe, pipe.predict(X_test)

    ref, ref_pred = predict(KNeighborsClassifier(n_neighbors=5, metric="euclidean"))
    assert ref[0].embedding_metric_ == "euclidean"
    return predict, ref_pred


def test_exact_pipeline_predicts_like_knn_on_the_embedding(digits_pipelines):
    predict, ref_pred = digits_pipelines
    pipe, pred = predict(
        ApproximateKNeighborsTransformer(n_neighbors=5, backend="exact"),
        KNeighborsClassifier(n_neighbors=5, metric="precomputed"),
    )
    np.testing.assert_array_equal(pred, ref_pred)


def test_faiss_pipeline_mostly_predicts_like_knn_on_the_embedding(digits_pipelines):
    predict, ref_pred = digits_pipelines
    pipe, pred = predict(
        ApproximateKNeighborsTransformer(n_neighbors=5, backend="faiss", n_probe=4, random_state=0),
        KNeighborsClassifier(n_neighbors=5, metric="precomputed"),
    )
    assert pipe[1].n_probe < pipe[1].n_lists_
    assert np.mean(pred == ref_pred) >= 0.95


# ------------------------------------------------------------------------------ persistence
@pytest.mark.parametrize("backend", ["exact", "faiss"])
def test_pickle_round_trip_gives_the_same_graph(backend, random_data):
    X, Q = random_data
    est = ApproximateKNeighborsTransformer(backend=backend, n_probe=2, random_state=0).fit(X)
    before = est.transform(Q)
    loaded = pickle.loads(pickle.dumps(est))
    assert loaded.backend_ == backend
    assert (loaded.transform(Q) != before).nnz == 0
    np.testing.assert_array_equal(loaded.transform(Q).data, before.data)
    assert (clone(est).fit(X).transform(Q) != before).nnz == 0


def test_importing_sk_dml_does_not_import_faiss():
    code = "import sys, sk_dml; assert 'faiss' not in sys.modules, 'faiss imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------ bad input
def test_nan_and_wrong_width_are_refused(random_data):
    X, Q = random_data
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        ApproximateKNeighborsTransformer().fit(bad)
    est = ApproximateKNeighborsTransformer().fit(X)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.transform(bad)
    with pytest.raises(ValueError, match="X has 11 features, but .* is expecting 12 features"):
        est.transform(Q[:, :11])


@pytest.mark.parametrize("backend", ["exact", "faiss"])
@pytest.mark.parametrize(("mode", "asked"), [("distance", 11), ("connectivity", 10)])
def test_too_many_neighbours_is_refused_in_scikit_learns_words(backend, mode, asked):
    X = np.random.default_rng(0).normal(size=(10, 3))
    est = ApproximateKNeighborsTransformer(n_neighbors=10, mode=mode, backend=backend).fit(X)
    if mode == "connectivity":  # 10 of 10 fitted rows is allowed, as in scikit-learn
        assert est.transform(X[:4]).nnz == 40
        est.set_params(n_neighbors=11)
        asked = 11
    message = (
        rf"Expected n_neighbors <= n_samples_fit, but n_neighbors = {asked}, "
        rf"n_samples_fit = 10, n_samples = 4"
    )
    with pytest.raises(ValueError, match=message):
        est.transform(X[:4])
    with pytest.raises(ValueError, match=message):
        KNeighborsTransformer(n_neighbors=asked - (mode == "distance"), mode=mode).fit(X).transform(
            X[:4]
        )


def test_faiss_backend_without_faiss_says_how_to_install_it(random_data, monkeypatch):
    X, Q = random_data
    fitted = ApproximateKNeighborsTransformer(backend="faiss", random_state=0).fit(X)
    state = pickle.dumps(fitted)
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install sk_dml\[faiss\]"):
        ApproximateKNeighborsTransformer(backend="faiss").fit(X)
    with pytest.raises(ImportError, match=r"pip install sk_dml\[faiss\]"):
        pickle.loads(state)
    # "auto" falls back to the exact search, which needs nothing.
    est = ApproximateKNeighborsTransformer(auto_min_samples=1).fit(X)
    assert est.backend_ == "exact" and est.transform(Q).shape == (len(Q), len(X))


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"metric": "manhattan"}, "metric"),
        ({"backend": "annoy"}, "backend"),
        ({"mode": "weights"}, "mode"),
        ({"n_neighbors": 0}, "n_neighbors"),
        ({"n_probe": 0}, "n_probe"),
        ({"n_lists": 0}, "n_lists"),
    ],
)
def test_bad_parameters_are_named(params, name, random_data):
    X, _ = random_data
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter"):
        ApproximateKNeighborsTransformer(**params).fit(X)


def test_feature_names_out_follow_kneighbors_transformer(random_data):
    X, _ = random_data
    names = ApproximateKNeighborsTransformer().fit(X).get_feature_names_out()
    ref = KNeighborsTransformer().fit(X).get_feature_names_out()
    assert len(names) == len(ref) == len(X)
    np.testing.assert_array_equal(
        names, [n.replace("kneighbors", "approximatekneighbors") for n in ref]
    )
