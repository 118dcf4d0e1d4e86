"""Retrieval metrics against brute-force loops over queries, and the GridSearchCV scorers."""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans
from sklearn.datasets import load_iris, make_blobs
from sklearn.metrics import adjusted_mutual_info_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_dml import TripletEmbedder, metrics
from sk_dml.metrics import (
    RetrievalScorer,
    clustering_scores,
    map_at_r_scorer,
    mean_average_precision_at_r,
    precision_at_1_scorer,
    precision_at_k,
    r_precision,
    recall_at_k,
    retrieval_scores,
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


# ------------------------------------------------- query set against a reference set
def brute_force(D, yq, yr=None, ks=(1,)):
    """Every score by a plain loop over the queries of the (n_query, n_reference) distances D;
    ``yr=None``: leave-one-out (D square, the query is not its own neighbour). Ranks by a
    stable sort: equal distances by increasing reference index."""
    loo = yr is None
    yr = yq if loo else yr
    scores = {f"{name}@{k}": [] for k in ks for name in ("precision", "recall")}
    scores |= {"r_precision": [], "map@r": []}
    for q in range(len(yq)):
        order = [i for i in np.argsort(D[q], kind="stable") if not (loo and i == q)]
        hits = [yr[i] == yq[q] for i in order]
        r = int(np.sum(hits))
        if r == 0:
            continue  # a lone query is left out
        for k in ks:
            scores[f"precision@{k}"].append(np.mean(hits[:k]))  # min(k, n) neighbours
            scores[f"recall@{k}"].append(float(any(hits[:k])))
        scores["r_precision"].append(np.sum(hits[:r]) / r)
        scores["map@r"].append(sum(np.mean(hits[: i + 1]) for i in range(r) if hits[i]) / r)
    return {name: np.mean(values) for name, values in scores.items()}


def computed(X, y, ks, **kwargs):
    """The scores of sk_dml.metrics by the single functions, keyed as brute_force's."""
    scores = {"r_precision": r_precision(X, y, **kwargs)}
    scores["map@r"] = mean_average_precision_at_r(X, y, **kwargs)
    for k in ks:
        scores[f"precision@{k}"] = precision_at_k(X, y, k=k, **kwargs)
        scores[f"recall@{k}"] = recall_at_k(X, y, k=k, **kwargs)
    return scores


def assert_scores_equal(got, expected, rtol=1e-9):
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name] == pytest.approx(expected[name], rel=rtol), name


def grid_points(rng, n, metric):
    """Points with many exactly equal distances (in float32 and float64 alike): integer grid
    points (euclidean, cityblock), or axis-aligned integer vectors (cosine: distances 0, 1, 2)."""
    if metric == "cosine":
        X = np.zeros((n, 3))
        X[np.arange(n), rng.integers(0, 3, n)] = rng.choice([-3, -2, -1, 1, 2, 3], n)
        return X
    return rng.integers(0, 3, size=(n, 2)).astype(float)


KS = (1, 3, 10, 50)  # 50: more than there are references


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_query_against_reference_matches_brute_force(seed, metric):
    rng = np.random.default_rng(seed)
    Q, R = rng.normal(size=(25, 3)), rng.normal(size=(30, 3))
    yq, yr = rng.integers(0, 4, 25), rng.integers(0, 4, 30)
    yq[:3] = 7  # a query class absent from the reference set: left out
    yr[0] = 5  # a reference class without queries
    expected = brute_force(cdist(Q, R, metric), yq, yr, KS)
    got = computed(Q, yq, KS, reference=R, reference_labels=yr, metric=metric)
    assert_scores_equal(got, expected, rtol=1e-6)


@pytest.mark.parametrize("metric", ["euclidean", "cityblock", "cosine"])
@pytest.mark.parametrize("mode", ["leave-one-out", "reference"])
def test_exact_ties_are_broken_by_reference_index(metric, mode):
    rng = np.random.default_rng(11)
    Q, yq = grid_points(rng, 60, metric), rng.integers(0, 3, 60)
    yq[0] = 9  # a singleton class
    if mode == "reference":
        R, yr = grid_points(rng, 45, metric), rng.integers(0, 3, 45)
        D = cdist(Q, R, metric)
        kwargs = dict(reference=R, reference_labels=yr)
    else:
        yr, D, kwargs = None, cdist(Q, Q, metric), {}
    # The data has ties at the k-th distance (else this test checks nothing).
    kth = np.sort(D, axis=1)[:, 3]
    assert ((D == kth[:, None]).sum(1) > 1).mean() > 0.5
    expected = brute_force(D, yq, yr, KS)
    assert_scores_equal(computed(Q, yq, KS, metric=metric, **kwargs), expected)
    if mode == "reference":  # ties broken the other way give other scores on this data
        assert brute_force(D[:, ::-1], yq, yr[::-1], KS) != pytest.approx(expected)


def test_string_labels_and_precomputed_distances():
    rng = np.random.default_rng(3)
    Q, R = rng.normal(size=(20, 2)), rng.normal(size=(26, 2))
    yq = rng.choice(["cat", "dog", "emu", "yak"], 20)
    yr = list(rng.choice(["cat", "dog", "emu", "ant"], 26))  # no yak: yak queries are lone
    expected = brute_force(cdist(Q, R), yq, np.array(yr), KS)
    assert_scores_equal(computed(Q, yq, KS, reference=R, reference_labels=yr), expected, 1e-6)
    precomputed = computed(cdist(Q, R), yq, KS, reference_labels=yr, precomputed=True)
    assert_scores_equal(precomputed, expected)
    # Leave-one-out on precomputed distances, string labels with a singleton.
    yq[5] = "gnu"
    D = cdist(Q, Q, "cosine")
    expected = brute_force(D, yq, None, KS)
    assert_scores_equal(computed(D, yq, KS, precomputed=True), expected)
    assert_scores_equal(computed(Q, yq, KS, metric="cosine"), expected, 1e-6)


def test_labels_match_by_value_not_by_type():
    Q, R = np.array([[0.0], [1.0]]), np.array([[0.1], [0.9], [5.0]])
    with pytest.raises(ValueError, match="No query has a reference sample"):
        precision_at_k(Q, [1, 2], reference=R, reference_labels=["1", "2", "1"])
    assert precision_at_k(Q, [1, 2], reference=R, reference_labels=[1.0, 2.0, 2.0]) == 1.0
    # The nearest of query 1 is reference 1 (label 2); its 2 nearest hold reference 0 (1).
    assert recall_at_k(Q, [1, 1], reference=R, reference_labels=[1, 2, 2]) == 0.5
    assert recall_at_k(Q, [1, 1], k=2, reference=R, reference_labels=[1, 2, 2]) == 1.0


def test_nan_distances_count_as_infinite():
    D = np.array([[np.nan, 1.0, 2.0], [0.5, np.nan, np.inf]])
    # Query 0: references 1, 2, then 0 (NaN). Query 1: references 0, then 1 (NaN) and 2 (inf)
    # at the same infinite distance, by index.
    assert precision_at_k(D, [0, 1], reference_labels=[0, 1, 0], precomputed=True) == 0.0
    assert precision_at_k(D, [0, 1], k=2, reference_labels=[0, 1, 0], precomputed=True) == 0.5
    ranked = brute_force(np.where(np.isnan(D), np.inf, D), [0, 1], np.array([0, 1, 0]), (1, 2))
    got = computed(D, [0, 1], (1, 2), reference_labels=[0, 1, 0], precomputed=True)
    assert_scores_equal(got, ranked)


@pytest.mark.parametrize("seed", range(6))
def test_precomputed_distances_with_few_values_and_infinities(seed):
    """Distances drawn from {0, 1, 2, inf, nan}: ties everywhere, also at an infinite k-th
    distance, where the query itself must still never be retrieved."""
    rng = np.random.default_rng(seed)
    n, m = 14, 11
    values = np.array([0.0, 1.0, 2.0, np.inf, np.nan])
    ks = (1, 2, 5, 9, 13, 20)
    D = values[rng.choice(5, size=(n, m), p=[0.2, 0.2, 0.2, 0.2, 0.2])]
    yq, yr = rng.integers(0, 3, n), rng.integers(0, 3, m)
    expected = brute_force(np.where(np.isnan(D), np.inf, D), yq, yr, ks)
    assert_scores_equal(computed(D, yq, ks, reference_labels=yr, precomputed=True), expected)
    square = values[rng.choice(5, size=(n, n), p=[0.1, 0.1, 0.1, 0.4, 0.3])]
    np.fill_diagonal(square, np.where(rng.random(n) < 0.5, np.inf, 0.0))
    expected = brute_force(np.where(np.isnan(square), np.inf, square), yq, None, ks)
    assert_scores_equal(computed(square, yq, ks, precomputed=True), expected)


@pytest.mark.parametrize("mode", ["leave-one-out", "reference"])
def test_chunked_search_gives_identical_scores(monkeypatch, mode):
    rng = np.random.default_rng(4)
    Q, yq = grid_points(rng, 50, "euclidean"), rng.integers(0, 4, 50)
    kwargs = {}
    if mode == "reference":
        kwargs = dict(reference=grid_points(rng, 37, "euclidean"), reference_labels=yq[:37])
    whole = retrieval_scores(Q, yq, recall_at=(1, 4, 60), **kwargs)
    for elements in (1, 3 * 50 + 7, 10 * 50):  # blocks of 1, 3 and 10 queries
        monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", elements)
        assert retrieval_scores(Q, yq, recall_at=(1, 4, 60), **kwargs) == whole
        assert precision_at_k(Q, yq, k=4, **kwargs) == pytest.approx(
            brute_force(cdist(Q, kwargs.get("reference", Q)), yq, kwargs.get("reference_labels"),
                        (4,))["precision@4"]
        )  # fmt: skip


@pytest.mark.parametrize("mode", ["leave-one-out", "reference"])
def test_retrieval_scores_equal_the_single_functions(mode):
    rng = np.random.default_rng(6)
    X, y = rng.normal(size=(40, 5)), rng.choice(["a", "b", "c"], 40)
    kwargs = dict(metric="cosine")
    if mode == "reference":
        kwargs |= dict(
            reference=rng.normal(size=(33, 5)), reference_labels=rng.choice(["a", "b"], 33)
        )
    scores = retrieval_scores(X, y, recall_at=(10, 1, 10, 2), **kwargs)
    assert list(scores) == ["precision@1", "r_precision", "map@r", "recall@10", "recall@1",
                            "recall@2"]  # fmt: skip
    assert scores["precision@1"] == precision_at_k(X, y, k=1, **kwargs)
    assert scores["r_precision"] == r_precision(X, y, **kwargs)
    assert scores["map@r"] == mean_average_precision_at_r(X, y, **kwargs)
    for k in (1, 2, 10):
        assert scores[f"recall@{k}"] == recall_at_k(X, y, k=k, **kwargs)
    assert scores["recall@1"] == scores["precision@1"]
    assert list(retrieval_scores(X, y, recall_at=5, **kwargs)) == [*list(scores)[:3], "recall@5"]


def test_tensor_inputs():
    rng = np.random.default_rng(8)
    Q, R = rng.normal(size=(12, 3)), rng.normal(size=(15, 3))
    yq, yr = rng.integers(0, 2, 12), rng.integers(0, 2, 15)
    expected = retrieval_scores(Q, yq, reference=R, reference_labels=yr)
    got = retrieval_scores(torch.tensor(Q, dtype=torch.float32, requires_grad=True), yq,
                           reference=R, reference_labels=torch.tensor(yr).numpy())  # fmt: skip
    assert got == pytest.approx(expected)
    D = torch.cdist(torch.tensor(Q), torch.tensor(R))
    assert retrieval_scores(D, yq, reference_labels=yr, precomputed=True) == pytest.approx(
        expected, rel=1e-6
    )


def test_invalid_reference_arguments_raise():
    X, y, R, yr = np.zeros((4, 3)), [0, 0, 1, 1], np.ones((5, 3)), [0, 1, 0, 1, 1]
    cases = [
        (dict(reference=R), "reference_labels is required"),
        (dict(reference_labels=yr), "reference_labels was given without reference"),
        (dict(reference=np.ones((5, 2)), reference_labels=yr), "reference has 2 features but X"),
        (dict(reference=R, reference_labels=yr[:4]), "reference has 5 rows but reference_labels"),
        (dict(reference=R[0], reference_labels=yr[:1]), "reference must be 2-D"),
        (dict(reference=R, reference_labels=yr, precomputed=True), "reference must be None"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            retrieval_scores(X, y, **kwargs)
    with pytest.raises(ValueError, match="have 5 columns but reference_labels has 4"):
        r_precision(np.ones((4, 5)), y, reference_labels=yr[:4], precomputed=True)
    with pytest.raises(ValueError, match="must be square"):
        r_precision(np.ones((4, 5)), y, precomputed=True)
    with pytest.raises(ValueError, match="4 samples but 3 labels"):
        recall_at_k(X, y[:3], reference=R, reference_labels=yr)
    with pytest.raises(ValueError, match="recall_at must be >= 1"):
        retrieval_scores(X, y, recall_at=(1, 0))
    with pytest.raises(ValueError, match="k must be >= 1"):
        recall_at_k(X, y, k=2.5)


def test_recall_scorer():
    X, y = load_iris(return_X_y=True)
    fitted = TripletEmbedder(max_epochs=2, hidden_layer_sizes=(8,), n_components=3,
                             batch_size=32, random_state=0).fit(X, y)  # fmt: skip
    scorer = RetrievalScorer(recall_at_k, k=10)
    assert repr(scorer) == "RetrievalScorer(recall_at_k, k=10)"
    assert scorer(fitted, X, y) == recall_at_k(
        fitted.transform(X), y, k=10, metric=fitted.embedding_metric_
    )


# ------------------------------------------------------------------------- clustering
def nmi_by_entropies(labels, clusters):
    """NMI with arithmetic-mean normalisation, from the contingency table."""
    _, a = np.unique(labels, return_inverse=True)
    _, b = np.unique(clusters, return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    p = table / table.sum()
    pa, pb = p.sum(1), p.sum(0)
    nz = p > 0
    mi = np.sum(p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz]))
    entropy = lambda q: -np.sum(q[q > 0] * np.log(q[q > 0]))  # noqa: E731
    return mi / ((entropy(pa) + entropy(pb)) / 2)


def test_clustering_scores_of_separated_blobs_are_one():
    X, y = make_blobs(200, n_features=5, centers=4, cluster_std=0.1, random_state=0)
    names = np.array(["w", "x", "y", "z"])[y]
    scores = clustering_scores(X, names)
    assert scores == pytest.approx({"nmi": 1.0, "ami": 1.0})
    # Cosine: the blobs of directions, at random distances from the origin.
    scale = np.random.default_rng(0).uniform(0.5, 20, (200, 1))
    direction = X - X.mean(0)
    assert clustering_scores(direction * scale, names, metric="cosine") == pytest.approx(
        {"nmi": 1.0, "ami": 1.0}
    )


def test_clustering_scores_against_an_entropy_formula():
    X, y = make_blobs(150, n_features=3, centers=3, cluster_std=3.0, random_state=1)
    X = X.astype(np.float32)
    labels = np.array(["p", "q", "r"])[y]
    clusters = KMeans(n_clusters=3, random_state=0).fit_predict(X)
    scores = clustering_scores(X, labels)
    assert 0.2 < scores["nmi"] < 0.99  # overlapping blobs: an imperfect clustering
    assert scores["nmi"] == pytest.approx(nmi_by_entropies(labels, clusters), rel=1e-9)
    assert scores["ami"] == pytest.approx(adjusted_mutual_info_score(labels, clusters))
    clusters5 = KMeans(n_clusters=5, random_state=2).fit_predict(X)
    scores5 = clustering_scores(X, labels, n_clusters=5, random_state=2)
    assert scores5["nmi"] == pytest.approx(nmi_by_entropies(labels, clusters5), rel=1e-9)
    # Cosine clusters the unit rows.
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    cosine = clustering_scores(X, labels, metric="cosine")
    assert cosine["nmi"] == pytest.approx(
        nmi_by_entropies(labels, KMeans(n_clusters=3, random_state=0).fit_predict(unit))
    )


def test_mutual_information_helper_against_the_entropy_formula():
    rng = np.random.default_rng(2)
    for _ in range(5):
        labels, clusters = rng.integers(0, 4, 80), rng.integers(0, 6, 80)
        got = metrics._mutual_information(labels, clusters)
        assert got["nmi"] == pytest.approx(nmi_by_entropies(labels, clusters), rel=1e-9)


def test_clustering_scores_validate():
    with pytest.raises(ValueError, match="3 samples but 2 labels"):
        clustering_scores(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match="Unknown distance"):
        clustering_scores(np.zeros((3, 2)), [0, 1, 1], metric="nope")
