"""explain_distance: each input column's share of a learned distance.

Oracles: completeness (the shares add up to the distance, which equals pair_distance) on every
embedder; a brute-force midpoint Riemann sum of the path integral, written here from the
definition; a linear network, whose shares are computed by hand from the input layer's
parameters; scikit-learn's exact neighbour search for explain_neighbors.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import NearestNeighbors

import sk_dml
from sk_dml._embedder import ESTIMATORS
from sk_dml.explain import explain_distance, explain_neighbors, plot_distance_explanation

TINY = dict(max_epochs=2, hidden_layer_sizes=(32, 32), n_components=8, random_state=0)
COLUMNS = ["age", "income", "color", "name"]
NAMED = [n for n in ESTIMATORS if not n.startswith("_")]


def mixed_table(n=240, seed=0) -> tuple[pd.DataFrame, np.ndarray]:
    """Numbers (one with missing values), a category, and a text column with missing cells;
    and class labels."""
    rng = np.random.default_rng(seed)
    stems = np.array(["anna smith", "bob jones", "carl brown", "dora white", "eve black"])
    y = rng.integers(0, 4, n)
    colors = np.array(["red", "green", "blue", "grey"])[(y + rng.integers(0, 2, n)) % 4]
    table = pd.DataFrame(
        {
            "age": np.where(rng.random(n) < 0.15, np.nan, rng.normal(40, 10, n) + 5 * y),
            "income": rng.normal(0, 1, n) + y,
            "color": pd.Categorical(colors),
            "name": pd.array(
                [None if rng.random() < 0.1 else f"{stems[(i + y[i]) % 5]} {rng.integers(50)}"
                 for i in range(n)],
                dtype="string",
            ),
        }
    )  # fmt: skip
    return table, y


@pytest.fixture(scope="module")
def table():
    return mixed_table()


def fitted(name, table, y):
    """The embedder ``name`` of ESTIMATORS fitted on the mixed table, as its supervision
    asks: class labels, a continuous target, labelled pairs or triplets of rows."""
    cls = ESTIMATORS[name]
    params = dict(TINY, text_features=["name"])
    if name == "PairEmbedder":
        rng = np.random.default_rng(1)
        pairs = rng.choice(len(table), size=(200, 2))
        pairs = pairs[pairs[:, 0] != pairs[:, 1]]
        return cls(preprocessor=table, **params).fit(pairs, y[pairs[:, 0]] == y[pairs[:, 1]])
    if name == "TripletConstraintEmbedder":
        rng = np.random.default_rng(1)
        triplets = np.array([rng.choice(len(table), 3, replace=False) for _ in range(200)])
        return cls(preprocessor=table, **params).fit(triplets)
    if name == "LogRatioEmbedder":
        return cls(**params).fit(table, table["income"].to_numpy() + 0.1 * y)
    return cls(**params).fit(table, y)


@pytest.mark.parametrize("name", NAMED)
def test_shares_add_up_to_the_distance_on_every_embedder(table, name):
    X, y = table
    emb = fitted(name, X, y)
    a, b = X.iloc[:25], X.iloc[25:50]
    explained = emb.explain_distance(a, b)
    assert list(explained.columns) == [*COLUMNS, "distance", "completeness_error", "n_steps"]
    assert len(explained) == 25
    # The distance is the embedder's own (pair_distance computes it in float32).
    expected = emb.pair_distance((a.reset_index(drop=True), b.reset_index(drop=True)))
    np.testing.assert_allclose(explained["distance"], expected, rtol=1e-4, atol=1e-6)
    total = explained[COLUMNS].sum(axis=1)
    gap = np.abs(total - explained["distance"])
    assert np.all(gap <= 1e-3 * explained["distance"] + 1e-12)
    np.testing.assert_allclose(gap, explained["completeness_error"], rtol=1e-6, atol=1e-12)


def test_index_pairs_of_a_tuple_embedder_explain_their_rows(table):
    X, y = table
    emb = fitted("PairEmbedder", X, y)
    pairs = np.array([[0, 5], [7, 3], [10, 11]])
    by_index = emb.explain_distance(pairs)
    by_rows = emb.explain_distance(X.iloc[pairs[:, 0]], X.iloc[pairs[:, 1]])
    pd.testing.assert_frame_equal(by_index, by_rows)
    np.testing.assert_allclose(by_index["distance"], emb.pair_distance(pairs), rtol=1e-4)


def riemann_shares(emb, a, b, n_steps=20_000) -> np.ndarray:
    """Integrated gradients by the midpoint rule, from the definition: the input layer's
    outputs of a and b, the straight path between them, the gradient of d(f(h), f(h_b)) by
    autograd; each dimension's term summed into its column by the layer's layout."""
    net = emb.module_.double()
    schema = emb.schema_
    with torch.no_grad():
        h_a = net.inputs(torch.as_tensor(emb.schema_.encode_table(a), dtype=torch.float64))
        h_b = net.inputs(torch.as_tensor(emb.schema_.encode_table(b), dtype=torch.float64))
    # The layer's output: numbers, then the missing indicators, categories and texts.
    owner = list(schema.numeric) + [schema.numeric[j] for j in schema.missing_indicators]
    for p, w in zip(schema.categorical, schema.embedding_dims, strict=True):
        owner += [p] * w
    for p, w in zip(schema.text, schema.text_embedding_dims, strict=True):
        owner += [p] * w
    shares = np.zeros((len(a), schema.n_features))
    t = (np.arange(n_steps) + 0.5) / n_steps
    for i in range(len(a)):
        path = h_b[i] + torch.as_tensor(t)[:, None] * (h_a[i] - h_b[i])
        path.requires_grad_(True)
        z, z0 = net.body(path), net.body(h_b[i : i + 1]).detach()
        if emb.embedding_metric_ == "euclidean":
            d = torch.sqrt(((z - z0) ** 2).sum(1))
        else:
            d = 1 - torch.nn.functional.cosine_similarity(z, z0)
        (grad,) = torch.autograd.grad(d.sum(), path)
        per_dim = ((h_a[i] - h_b[i]) * grad.mean(0)).numpy()
        np.add.at(shares[i], owner, per_dim)
    net.float()
    return shares


@pytest.mark.parametrize("name", ["TripletEmbedder", "NPairEmbedder", "PairEmbedder"])
def test_shares_agree_with_a_brute_force_riemann_sum(table, name):
    X, y = table
    emb = fitted(name, X, y)
    a, b = X.iloc[:6], X.iloc[100:106]
    explained = emb.explain_distance(a, b, rtol=1e-6)
    expected = riemann_shares(emb, a, b)
    scale = explained["distance"].to_numpy()[:, None]
    assert np.all(np.abs(explained[COLUMNS].to_numpy() - expected) <= 2e-3 * scale + 1e-9)


def test_a_linear_network_gets_the_shares_computed_by_hand(table):
    X, y = table
    X = X[["age", "income", "color"]]
    emb = sk_dml.TripletEmbedder(
        module=lambda width: torch.nn.Linear(width, 3, bias=False), max_epochs=2, random_state=0
    ).fit(X, y)
    W = emb.module_.body.weight.detach().double().numpy()
    inputs = emb.module_.inputs

    def features(rows) -> np.ndarray:
        """The input layer's output, by hand: standardised numbers (population std, a
        missing one 0), the age's missing indicator standardised, the color's vector."""
        age, income = X["age"].to_numpy(), X["income"].to_numpy()
        rate = np.isnan(age).mean()
        out = []
        for _, row in rows.iterrows():
            missing = np.isnan(row["age"])
            z_age = 0.0 if missing else (row["age"] - np.nanmean(age)) / np.nanstd(age)
            z_income = (row["income"] - income.mean()) / income.std()
            flag = (float(missing) - rate) / np.sqrt(rate * (1 - rate))
            code = 2 + sorted(X["color"].cat.categories).index(row["color"])
            vector = inputs.embeddings[0].weight[code].detach().double().numpy()
            out.append(np.concatenate([[z_age, z_income, flag], vector]))
        return np.array(out)

    a, b = X.iloc[:30], X.iloc[30:60]
    delta = features(a) - features(b)
    columns = {"age": [0, 2], "income": [1], "color": list(range(3, delta.shape[1]))}
    explained = emb.explain_distance(a, b)
    assert (explained["n_steps"] == 32).all()  # constant integrand: the 4 first panels suffice
    whole = delta @ W.T
    distance = np.linalg.norm(whole, axis=1)
    np.testing.assert_allclose(explained["distance"], distance, rtol=1e-5)
    for name, dims in columns.items():
        by_hand = np.einsum("pk,pk->p", delta[:, dims] @ W[:, dims].T, whole) / distance
        # The layer keeps its statistics in float32: agreement to about 1e-7.
        np.testing.assert_allclose(explained[name], by_hand, rtol=1e-5, atol=1e-6)


def test_equal_rows_have_zero_shares(table):
    X, y = table
    emb = fitted("TripletEmbedder", X, y)
    explained = emb.explain_distance(X.iloc[:3], X.iloc[:3])
    assert (explained[COLUMNS].to_numpy() == 0).all() and (explained["distance"] == 0).all()


def test_numeric_arrays_name_their_columns_by_position():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(80, 3)), rng.integers(0, 2, 80)
    emb = sk_dml.TripletEmbedder(**TINY).fit(X, y)
    explained = explain_distance(emb, X[:4], X[4:8])
    assert list(explained.columns[:3]) == ["x0", "x1", "x2"]
    pairs = np.stack([X[:4], X[4:8]], axis=1)
    pd.testing.assert_frame_equal(emb.explain_distance(pairs), explained)


def test_bad_input_gets_the_transforms_errors(table):
    X, y = table
    emb = fitted("TripletEmbedder", X, y)
    with pytest.raises(NotFittedError):
        sk_dml.TripletEmbedder().explain_distance(X.iloc[:2], X.iloc[2:4])
    with pytest.raises(ValueError, match="as many rows"):
        emb.explain_distance(X.iloc[:2], X.iloc[2:5])
    with pytest.raises(ValueError, match="income"):
        emb.explain_distance(X.iloc[:2].drop(columns="income"), X.iloc[2:4])
    with pytest.raises(ValueError, match="rtol"):
        emb.explain_distance(X.iloc[:2], X.iloc[2:4], rtol=0)
    numbers = sk_dml.TripletEmbedder(**TINY).fit(np.ones((20, 3)) * np.arange(20)[:, None], y[:20])
    with pytest.raises(ValueError, match="3 features"):
        numbers.explain_distance(np.zeros((2, 4)), np.zeros((2, 4)))


def test_explain_neighbors_explains_the_exact_nearest_rows(table):
    X, y = table
    emb = fitted("TripletEmbedder", X, y)
    query, reference = X.iloc[:4], X.iloc[50:]
    explained = explain_neighbors(emb, query, reference, n_neighbors=3)
    search = NearestNeighbors(n_neighbors=3).fit(emb.transform(reference))
    distance, index = search.kneighbors(emb.transform(query))
    assert explained.index.names == ["query", "rank"]
    np.testing.assert_array_equal(explained["neighbor"].to_numpy().reshape(4, 3), index)
    np.testing.assert_allclose(explained["distance"].to_numpy().reshape(4, 3), distance, rtol=1e-4)
    gap = np.abs(explained[COLUMNS].sum(axis=1) - explained["distance"])
    assert np.all(gap <= 1e-3 * explained["distance"])
    given = explain_neighbors(emb, query, reference, indices=index[:, :2])
    pd.testing.assert_frame_equal(given, explained[explained.index.get_level_values(1) < 2])
    with pytest.raises(ValueError, match="indices"):
        explain_neighbors(emb, query, reference, indices=index[:2])


def test_the_plot_shows_the_largest_shares(table):
    import matplotlib

    matplotlib.use("Agg")
    X, y = table
    emb = fitted("TripletEmbedder", X, y)
    explained = emb.explain_distance(X.iloc[:2], X.iloc[2:4])
    ax = plot_distance_explanation(explained, 1, top=2)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    shares = explained.loc[1, COLUMNS].astype(float)
    largest = shares.abs().sort_values(ascending=False).index[:2]
    assert labels == [*largest, "2 other columns"]
    widths = [p.get_width() for p in ax.patches]
    np.testing.assert_allclose(sum(widths), explained.loc[1, "distance"], rtol=1e-3)
    assert f"{explained.loc[1, 'distance']:.4g}" in ax.get_title()


def run_cli(*args) -> tuple[int, str, str]:
    """``sk_dml.cli.main(ARGS)`` in-process: (exit status, stdout, stderr)."""
    import contextlib
    import io

    from sk_dml import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def test_the_command_prints_and_writes_the_shares(table, tmp_path):
    X, y = table
    emb = fitted("TripletEmbedder", X, y)
    model = tmp_path / "model.skdml"
    sk_dml.save(emb, model)
    X.iloc[:5].to_csv(tmp_path / "left.csv", index=False)
    X.iloc[5:10].to_csv(tmp_path / "right.csv", index=False)
    out = tmp_path / "shares.csv"
    code, stdout, stderr = run_cli(
        "explain", model, tmp_path / "left.csv", tmp_path / "right.csv", "-o", out
    )
    assert code == 0, stderr
    written = pd.read_csv(out)
    left, right = pd.read_csv(tmp_path / "left.csv"), pd.read_csv(tmp_path / "right.csv")
    expected = emb.explain_distance(left, right)
    pd.testing.assert_frame_equal(written, expected, check_dtype=False, rtol=1e-9)
    assert "completeness_error" in stdout and "age" in stdout

    keyed = X.assign(id=[f"r{i}" for i in range(len(X))])
    keyed.to_csv(tmp_path / "data.csv", index=False)
    code, _, stderr = run_cli(
        "explain", model, "r0,r7", "r3,r4", "--data", tmp_path / "data.csv", "--key", "id",
        "-o", out,
    )  # fmt: skip
    assert code == 0, stderr
    written = pd.read_csv(out)
    assert list(written[["left", "right"]].itertuples(index=False, name=None)) == [
        ("r0", "r3"),
        ("r7", "r4"),
    ]
    data = pd.read_csv(tmp_path / "data.csv")[COLUMNS]
    expected = emb.explain_distance(data.iloc[[0, 7]], data.iloc[[3, 4]])
    np.testing.assert_allclose(written[COLUMNS], expected[COLUMNS], rtol=1e-9)

    code, _, stderr = run_cli("explain", model, "0,1", "2", "--data", tmp_path / "data.csv")
    assert code == 2 and "LEFT names 2 row(s) and RIGHT 1" in stderr
    code, _, stderr = run_cli("explain", model, tmp_path / "left.csv", tmp_path / "data.csv")
    assert code == 2 and "as many" in stderr
    code, _, stderr = run_cli("explain", model, "0", "999", "--data", tmp_path / "data.csv")
    assert code == 2 and "999" in stderr
