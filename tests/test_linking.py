"""Linker: matches against an exact brute-force search, probabilities against an independent
Platt fit, and the errors of bad ids."""

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist
from sklearn.linear_model import LogisticRegression

from sk_dml import PairEmbedder
from sk_dml.datasets import make_linkage_tables
from sk_dml.linking import MATCH_COLUMNS, RECORD_COLUMN, Linker

FEATURES = ["first_name", "last_name", "date_of_birth", "street", "city", "postcode"]


def small_embedder(**params):
    settings = dict(
        n_components=16, hidden_layer_sizes=(32,), max_epochs=2, normalize=True, random_state=0
    )
    return PairEmbedder(**{**settings, **params})


@pytest.fixture(scope="module")
def tables():
    return make_linkage_tables(300, random_state=1)


@pytest.fixture(scope="module")
def linker(tables):
    left, right, links = tables
    return Linker(small_embedder(), key="id", random_state=0).fit(left, right, links[:120])


def features(rows):
    """The rows as the linker's embedder reads them: the fields, and the record's text."""
    rows = rows[FEATURES]
    joined = [" ".join(str(v) for v in row if not pd.isna(v)) for row in rows.itertuples(False)]
    return rows.assign(
        **{RECORD_COLUMN: pd.Series(joined, index=rows.index, dtype="string").replace("", pd.NA)}
    )


def brute_force(Z_query, Z_right, metric, k, exclude_self=False):
    """Each query's k nearest right rows (positions, distances) by scipy's cdist."""
    D = cdist(Z_query.astype(np.float64), Z_right.astype(np.float64), metric=metric)
    if exclude_self:
        np.fill_diagonal(D, np.inf)
    order = np.argsort(D, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(D, order, axis=1)


def test_match_finds_the_exact_nearest_right_records(tables, linker):
    left, right, _ = tables
    matches = linker.match(left, right, k=4)
    assert tuple(matches.columns) == MATCH_COLUMNS
    emb = linker.embedder_
    Z_left, Z_right = emb.transform(features(left)), emb.transform(features(right))
    order, D = brute_force(Z_left, Z_right, emb.embedding_metric_, 4)
    assert len(matches) == 4 * len(left)
    np.testing.assert_array_equal(matches["left_id"], np.repeat(left["id"], 4))
    np.testing.assert_array_equal(matches["right_id"], right["id"].to_numpy()[order].ravel())
    np.testing.assert_allclose(matches["distance"], D.ravel(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(matches["rank"], np.tile([1, 2, 3, 4], len(left)))


def test_match_recovers_most_links_of_records_it_never_trained_on(tables, linker):
    left, right, links = tables
    top = linker.match(left, right, k=1).set_index("left_id")["right_id"]
    test = links[120:]
    recall = np.mean(top[test["left_id"]].to_numpy() == test["right_id"].to_numpy())
    assert recall > 0.8


def test_probabilities_are_the_platt_fit_of_the_held_out_links_candidates(tables, linker):
    left, right, links = tables
    emb = linker.embedder_
    held = linker.calibration_links_
    assert len(held) == round(0.2 * 120)
    Z_left = emb.transform(features(left.set_index("id").loc[held["left_id"]]))
    Z_right = emb.transform(features(right))
    order, D = brute_force(Z_left, Z_right, emb.embedding_metric_, linker.n_neighbors)
    truth = dict(zip(links["left_id"], links["right_id"], strict=True))
    label = right["id"].to_numpy()[order] == np.array([truth[i] for i in held["left_id"]])[:, None]
    oracle = LogisticRegression(C=1e4).fit(D.reshape(-1, 1), label.ravel())
    matches = linker.match(left, right, k=3)
    expected = oracle.predict_proba(matches[["distance"]].to_numpy())[:, 1]
    np.testing.assert_allclose(matches["probability"], expected, rtol=1e-4, atol=1e-6)
    assert np.all(np.diff(oracle.predict_proba(np.linspace(0, 2, 50)[:, None])[:, 1]) <= 0)


def test_threshold_keeps_the_candidates_at_or_above_it(tables, linker):
    left, right, _ = tables
    every = linker.match(left, right, k=3)
    kept = linker.match(left, right, k=3, threshold=0.5)
    expected = every[every["probability"] >= 0.5].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, expected)
    assert 0 < len(kept) < len(every)


def test_probabilities_are_calibrated_on_records_never_trained_on():
    left, right, links = make_linkage_tables(1_500, random_state=3)
    linker = Linker(small_embedder(max_epochs=5), key="id", random_state=0)
    linker.fit(left, right, links[:400])
    test_ids = set(links["left_id"][400:]) | set(left["id"]) - set(links["left_id"])
    matches = linker.match(left[left["id"].isin(test_ids)], right, k=3)
    truth = dict(zip(links["left_id"], links["right_id"], strict=True))
    is_match = matches["right_id"].to_numpy() == matches["left_id"].map(truth).to_numpy()
    p = matches["probability"].to_numpy()
    for low, high in [(0, 0.1), (0.1, 0.9), (0.9, 1.0001)]:  # observed rate within the bin
        inside = (p >= low) & (p < high)
        if inside.sum() >= 30:
            assert abs(is_match[inside].mean() - p[inside].mean()) < 0.1, (low, high)
    assert abs(is_match.mean() - p.mean()) < 0.03


def test_index_labels_are_the_ids_without_a_key(tables):
    left, right, links = tables
    left_ix, right_ix = left.set_index("id"), right.set_index("id")
    linker = Linker(small_embedder(), random_state=0).fit(left_ix, right_ix, links[:60])
    matches = linker.match(left_ix, right_ix, k=2)
    assert set(matches["left_id"]) == set(left["id"])
    assert set(matches["right_id"]) <= set(right["id"])


def test_deduplication_lists_each_pair_once_against_a_brute_force_search(tables):
    left, right, links = tables
    # One table holding both: the links become duplicates within it. Records identical in
    # every field are dropped: their equal distances would make the ranks a matter of ties.
    table = pd.concat([left, right], ignore_index=True).drop_duplicates(subset=FEATURES)
    table = table.reset_index(drop=True)
    links = links[links["left_id"].isin(table["id"]) & links["right_id"].isin(table["id"])]
    linker = Linker(small_embedder(), key="id", random_state=0).fit(table, None, links[:80])
    matches = linker.match(table, k=3)
    emb = linker.embedder_
    Z = emb.transform(features(table))
    order, D = brute_force(Z, Z, emb.embedding_metric_, 3, exclude_self=True)
    ids = table["id"].to_numpy()
    expected: dict[tuple, int] = {}
    for i in range(len(table)):
        for rank, j in enumerate(order[i], start=1):
            pair = (min(i, j), max(i, j))
            expected[pair] = min(expected.get(pair, rank), rank)
    found = {
        (a, b): r
        for a, b, r in zip(matches["left_id"], matches["right_id"], matches["rank"], strict=True)
    }
    assert found == {(ids[a], ids[b]): r for (a, b), r in expected.items()}
    assert (matches["left_id"] != matches["right_id"]).all()


def test_faiss_search_scanning_every_cell_equals_the_exact_one(tables, linker):
    pytest.importorskip("faiss")
    left, right, _ = tables
    exact = linker.match(left, right, k=3)
    approximate = linker.set_params(backend="faiss", n_probe=10_000).match(left, right, k=3)
    linker.set_params(backend="auto", n_probe=32)
    np.testing.assert_array_equal(approximate["right_id"], exact["right_id"])
    np.testing.assert_allclose(approximate["distance"], exact["distance"], atol=1e-5)


# -- bad input ---------------------------------------------------------------------------------
def test_links_naming_absent_ids_are_named(tables):
    left, right, links = tables
    bad = pd.concat([links[:20], pd.DataFrame({"left_id": ["L_nobody"], "right_id": ["R00001"]})])
    with pytest.raises(ValueError, match=r"not ids of the left table, e\.g\. \['L_nobody'\]"):
        Linker(small_embedder(), key="id").fit(left, right, bad)
    bad = links[:20].assign(right_id=lambda f: f["right_id"].where(f.index > 0, "R_ghost"))
    with pytest.raises(ValueError, match=r"right table, e\.g\. \['R_ghost'\]"):
        Linker(small_embedder(), key="id").fit(left, right, bad)


def test_duplicate_ids_and_missing_keys_are_named(tables):
    left, right, links = tables
    twice = pd.concat([left, left.iloc[[5]]], ignore_index=True)
    with pytest.raises(
        ValueError, match=rf"key column 'id' of left repeats ids \(e\.g\. \['{left['id'][5]}'\]"
    ):
        Linker(small_embedder(), key="id").fit(twice, right, links[:20])
    gap = right.assign(id=right["id"].where(right.index != 7, None))
    with pytest.raises(
        ValueError, match=r"key column 'id' of right has 1 missing values \(rows \[7\]"
    ):
        Linker(small_embedder(), key="id").fit(left, gap, links[:20])
    with pytest.raises(ValueError, match=r"key column 'record' is not in left"):
        Linker(small_embedder(), key="record").fit(left, right, links[:20])


def test_tables_with_other_columns_and_too_few_links_are_refused(tables):
    left, right, links = tables
    with pytest.raises(ValueError, match=r"only in left: \['city'\], only in right: \[\]"):
        Linker(small_embedder(), key="id").fit(left, right.drop(columns="city"), links[:20])
    with pytest.raises(ValueError, match="at least 4 distinct links"):
        Linker(small_embedder(), key="id").fit(left, right, links[:3])
    with pytest.raises(ValueError, match=r"shape \(n_links, 2\)"):
        Linker(small_embedder(), key="id").fit(left, right, links["left_id"].to_numpy())
    with pytest.raises(TypeError, match="left must be a pandas DataFrame"):
        Linker(small_embedder(), key="id").fit(left.to_numpy(), right, links[:20])


def test_match_arguments_are_checked(tables, linker):
    left, right, _ = tables
    with pytest.raises(ValueError, match="k must be a positive integer"):
        linker.match(left, right, k=0)
    with pytest.raises(ValueError, match=r"threshold must be a probability in \[0, 1\]"):
        linker.match(left, right, threshold=1.5)
    with pytest.raises(ValueError, match=r"lacks the columns \['city'\]"):
        linker.match(left.drop(columns="city"), right)


def test_a_saved_linker_matches_as_the_fitted_one(tables, linker, tmp_path):
    import sk_dml

    left, right, _ = tables
    sk_dml.save(linker, tmp_path / "linker.skdml")
    loaded = sk_dml.load(tmp_path / "linker.skdml")
    assert isinstance(loaded, Linker)
    assert loaded.get_params()["key"] == "id" and loaded.n_links_ == linker.n_links_
    pd.testing.assert_frame_equal(loaded.match(left, right, k=3), linker.match(left, right, k=3))


def test_transform_gives_the_embeddings_match_compares(tables, linker):
    left, right, _ = tables
    Z = linker.transform(right)
    np.testing.assert_array_equal(Z, linker.embedder_.transform(features(right)))
    matches = linker.match(left.iloc[:5], right, k=1)
    D = cdist(linker.transform(left.iloc[:5]), Z, metric=linker.embedder_.embedding_metric_)
    np.testing.assert_allclose(matches["distance"], D.min(axis=1), rtol=1e-5, atol=1e-6)


def test_the_kept_network_retrieves_the_held_out_links_best(tables, linker):
    left, right, links = tables
    scores = linker.validation_scores_
    assert len(scores) == linker.n_epochs_ + 1  # the untrained network, then each epoch
    assert scores[linker.best_epoch_] == max(scores)
    # Brute force: the mean reciprocal rank of each held-out partner among the 10 nearest.
    held = linker.calibration_links_
    emb = linker.embedder_
    Z_left = emb.transform(features(left.set_index("id").loc[held["left_id"]]))
    order, _ = brute_force(Z_left, emb.transform(features(right)), emb.embedding_metric_, 10)
    found = right["id"].to_numpy()[order] == held["right_id"].to_numpy()[:, None]
    reciprocal = np.where(found.any(axis=1), 1 / (found.argmax(axis=1) + 1), 0)
    assert reciprocal.mean() == pytest.approx(max(scores), abs=1e-12)


def test_a_network_worse_than_its_start_is_not_kept(tables):
    left, right, links = tables
    # A learning rate that wrecks the network in one epoch: the start is kept.
    wrecking = small_embedder(learning_rate=5.0, max_epochs=3, normalize=False)
    linker = Linker(wrecking, key="id", random_state=0).fit(left, right, links[:120])
    assert linker.best_epoch_ == 0
    assert linker.validation_scores_[0] > max(linker.validation_scores_[1:])
