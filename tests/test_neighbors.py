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


def assert_nearest(idx, dist, X_fit, Q, metric, rtol=1e-5, atol=1e-6):
    """Each row of idx holds distinct rows of X_fit at the k smallest float64 cdist distances
    of its query, and dist holds those distances in increasing order. Ties may come in any
    order (scikit-learn promises none), so this compares distances, not positions."""
    D = cdist(np.asarray(Q, np.float64), np.asarray(X_fit, np.float64), metric)
    k = idx.shape[1]
    assert all(len(set(row)) == k for row in idx)
    np.testing.assert_allclose(dist, np.sort(D, axis=1)[:, :k], rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.take_along_axis(D, idx, axis=1), dist, rtol=rtol, atol=atol)
    assert (np.diff(dist, axis=1) >= 0).all()


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
def test_exact_backend_is_exact_for_close_points_off_the_origin(metric):
    """Close points far from the origin, where the matmul expansion of the distance loses most
    of its float32 digits, get the float64 brute-force answer; batch_size (a faiss setting)
    changes nothing."""
    rng = np.random.default_rng(1)
    X = 100.0 + rng.normal(scale=0.5, size=(300, 5))
    Q = 100.0 + rng.normal(scale=0.5, size=(40, 5))
    est = ApproximateKNeighborsTransformer(n_neighbors=6, metric=metric, batch_size=7)
    idx, dist = neighbour_rows(est.fit(X).transform(Q))
    assert_nearest(idx, dist, X, Q, metric, rtol=1e-4)


def far_clusters(scale, n_features=4, seed=0):
    """Two tight clusters far from the origin on either side of it (so centring does not help)
    and queries inside one: the float32 matmul scores of the rows of a cluster are all within
    their rounding error of each other."""
    rng = np.random.default_rng(seed)
    A = 1000.0 + rng.normal(scale=scale, size=(200, n_features))
    B = -1000.0 + rng.normal(scale=scale, size=(200, n_features))
    Q = 1000.0 + rng.normal(scale=scale, size=(30, n_features))
    return np.vstack([A, B]).astype(np.float32), Q.astype(np.float32)


@pytest.mark.parametrize("metric", METRICS)
def test_exact_backend_is_exact_far_from_the_centre(metric):
    """The rows of a far cluster cannot be told apart by float32 matmul scores (a float32
    search got the set wrong for every query: issue 9), nor by scikit-learn's float32 cosine
    distances: the exact backend searches the float32 rows in float64, where scikit-learn's
    brute force finds the true neighbours. For cosine the clusters are two narrow cones about
    opposite directions (angles of about 1e-3 radians; the float32 rounding of the unit rows,
    6e-8, shifts such distances by a few 1e-4 of their value)."""
    X, Q = far_clusters(scale=2.0 if metric == "cosine" else 1e-2)
    est = ApproximateKNeighborsTransformer(n_neighbors=5, metric=metric, backend="exact")
    idx, dist = neighbour_rows(est.fit(X).transform(Q))
    assert_nearest(idx, dist, X, Q, metric, rtol=2e-3 if metric == "cosine" else 1e-5, atol=0)
    want_idx, _ = brute_force(X, Q, 6, metric)
    assert [set(row) for row in idx] == [set(row) for row in want_idx]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("metric", METRICS)
def test_exact_backend_is_scikit_learns_brute_force_on_float64_rows(metric, mode, dtype):
    """The exact graph is KNeighborsTransformer(algorithm="brute")'s on the float64 rows, entry
    for entry (ties in scikit-learn's order), for float32 input (an embedding) too, and it
    holds the float64 brute-force neighbours of rows off the origin. The one difference:
    scikit-learn sets cosine self-distances to exactly 0 only when the query array is the
    fitted one, which float32 rows converted by fit and again by transform are not."""
    rng = np.random.default_rng(2)
    X, Q = rng.normal(size=(300, 5)) + 3.0, rng.normal(size=(40, 5)) + 3.0
    X, Q = X.astype(dtype), Q.astype(dtype)
    est = ApproximateKNeighborsTransformer(n_neighbors=6, mode=mode, metric=metric, backend="exact")
    ref = KNeighborsTransformer(n_neighbors=6, mode=mode, metric=metric, algorithm="brute")
    X64, Q64 = X.astype(np.float64), Q.astype(np.float64)
    same_rows = dtype == np.float64  # fit_transform queries the very rows it fitted
    for got, want, atol in [
        (est.fit(X).transform(Q), ref.fit(X64).transform(Q64), 0.0),
        (
            est.fit_transform(X),
            ref.fit_transform(X if same_rows else X64),
            0 if same_rows else 1e-15,
        ),
    ]:
        assert type(got) is type(want) and got.dtype == want.dtype == np.float64
        np.testing.assert_array_equal(got.indptr, want.indptr)
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_allclose(got.data, want.data, rtol=0, atol=atol)
    if mode == "distance":
        idx, dist = neighbour_rows(est.transform(Q))
        assert_nearest(idx, dist, X, Q, metric, rtol=1e-5)


@pytest.mark.parametrize("backend", ["exact", "faiss"])
def test_duplicates_give_the_true_distances_and_scikit_learns_ties(backend):
    """Rows repeated many times: the neighbours found are at the true distances whatever
    order the ties come in, so a query that is a fitted row may find a duplicate instead of
    itself; the exact backend breaks the ties as scikit-learn's brute force does."""
    rng = np.random.default_rng(3)
    distinct = rng.normal(size=(5, 4))
    X = np.vstack([np.repeat(distinct, 300, axis=0), rng.normal(size=(500, 4))])
    X = X[rng.permutation(len(X))].astype(np.float32)
    Q = X[::97]
    est = ApproximateKNeighborsTransformer(
        n_neighbors=9, backend=backend, n_probe=10_000, random_state=0
    )
    idx, dist = neighbour_rows(est.fit(X).transform(Q))
    assert_nearest(idx, dist, X, Q, "euclidean")
    assert (dist[:, 0] == 0).all()  # each query is a fitted row: a row at distance 0 first
    if backend == "exact":
        ref = KNeighborsTransformer(n_neighbors=9, algorithm="brute").fit(X.astype(np.float64))
        want_idx, want_dist = neighbour_rows(ref.transform(Q.astype(np.float64)))
        np.testing.assert_array_equal(idx, want_idx)
        np.testing.assert_array_equal(dist, want_dist)


@pytest.mark.parametrize("backend", ["exact", "faiss"])
def test_cosine_treats_a_zero_row_as_orthogonal_to_everything(backend):
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    est = ApproximateKNeighborsTransformer(n_neighbors=3, metric="cosine", backend=backend)
    _, dist = neighbour_rows(est.fit(X).transform([[0.0, 0.0]]))
    np.testing.assert_allclose(dist, [[1.0, 1.0, 1.0, 1.0]])
    # Zero fitted rows among others: at distance 1 from every query, ranked as scikit-learn
    # ranks them (the faiss index gives them a dimension of their own).
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 3))
    X[::10] = 0.0
    Q = rng.normal(size=(20, 3))
    est.set_params(n_neighbors=60, n_probe=10_000).fit(X)
    got_idx, got = neighbour_rows(est.transform(Q))
    want_idx, want = neighbour_rows(
        KNeighborsTransformer(n_neighbors=60, metric="cosine").fit(X).transform(Q)
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    zero = ~X.any(axis=1)
    np.testing.assert_allclose(got[zero[got_idx]], 1.0, atol=1e-6)
    assert zero[got_idx].sum() == zero[want_idx].sum()  # all at distance 1 from every query


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


def test_faiss_cosine_self_distances_are_exact_zeros():
    """The cosine index is an L2 index over unit rows (distance = squared L2 / 2): a fitted
    row's distance to itself comes from differences and is exactly 0, where 1 - u.v in float32
    left about a third of them nonzero (issue 12), and the ranking is the exact one."""
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(4000, 16)) + 3).astype(np.float32)
    est = ApproximateKNeighborsTransformer(
        n_neighbors=5, metric="cosine", backend="faiss", n_probe=10_000, random_state=0
    )
    idx, dist = neighbour_rows(est.fit_transform(X))
    np.testing.assert_array_equal(idx[:, 0], np.arange(len(X)))
    assert (dist[:, 0] == 0).all()
    assert_nearest(idx, dist, X, X, "cosine", rtol=1e-4, atol=1e-7)
    want_idx, _ = neighbour_rows(
        ApproximateKNeighborsTransformer(n_neighbors=5, metric="cosine", backend="exact")
        .fit(X)
        .transform(X)
    )
    assert [set(row) for row in idx] == [set(row) for row in want_idx]


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
    np.testing.assert_allclose(got_val, neighbour_rows(want)[1], rtol=1e-5, atol=1e-5)
    assert_nearest(got_idx, got_val, X, Q, "euclidean", atol=1e-5)


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


@pytest.mark.parametrize("backend", ["exact", "faiss"])
def test_metric_is_the_fitted_one_until_refit(backend, random_data):
    """transform uses the metric the search was prepared for (``effective_metric_``), not a
    metric set afterwards, which used to mix the two into a wrong graph (issue 11)."""
    X, Q = random_data
    X, Q = X + 2.0, Q + 2.0  # off the origin: Euclidean and cosine neighbours differ
    est = ApproximateKNeighborsTransformer(backend=backend, n_probe=10_000, random_state=0)
    est.fit(X)
    est.set_params(metric="cosine")
    idx, dist = neighbour_rows(est.transform(Q))
    assert_nearest(idx, dist, X, Q, "euclidean", atol=1e-5)
    assert est.effective_metric_ == "euclidean"
    est.fit(X)  # a refit takes the new metric
    assert est.effective_metric_ == "cosine"
    idx, dist = neighbour_rows(est.transform(Q))
    assert_nearest(idx, dist, X, Q, "cosine", atol=1e-6)


@pytest.mark.slow
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
