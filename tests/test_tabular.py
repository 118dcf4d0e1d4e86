"""Tables as they come: DataFrames with numeric, bool, category and text columns and missing
values, straight into every embedder (sk_dml.tabular, sk_dml.nets.TableInput)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import EMBEDDERS, LOSSES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline

import sk_dml
from sk_dml import MetricEmbedder, ProxyAnchorEmbedder, TripletEmbedder
from sk_dml._optimizers import LazyAdam
from sk_dml.tabular import MISSING_CODE, RARE_CODE, default_embedding_dim, learn_schema

QUICK = dict(max_epochs=2, hidden_layer_sizes=(16,), n_components=8, batch_size=32)


def _table(n=240, seed=0):
    """A mixed table: numbers with gaps, an integer column, text with rare levels and gaps,
    a category, a bool and a nullable integer; labels that depend on the text and numbers."""
    rng = np.random.RandomState(seed)
    city = rng.choice(["paris", "lyon", "nice", "lille"], n)
    city[:3] = ["tiny", "tiny", "once"]  # levels seen fewer than min_frequency=5 times
    price = rng.lognormal(3, 1, n)
    price[rng.rand(n) < 0.2] = np.nan
    frame = pd.DataFrame(
        {
            "price": price,
            "rooms": rng.randint(1, 6, n),
            "city": pd.Series(city, dtype=object).where(rng.rand(n) > 0.1, None),
            "grade": pd.Categorical(rng.choice(["a", "b", "c"], n)),
            "garden": rng.rand(n) > 0.5,
            "floor": pd.array(rng.randint(0, 9, n), dtype="Int64"),
        }
    )
    frame.loc[rng.rand(n) < 0.1, "floor"] = pd.NA
    y = (pd.Series(city).isin(["paris", "nice"]).to_numpy() * 2 + (frame["rooms"] > 3)).astype(int)
    return frame, y


@pytest.fixture(scope="module")
def table():
    return _table()


@pytest.fixture(scope="module")
def fitted(table):
    X, y = table
    return TripletEmbedder(random_state=0, **QUICK).fit(X, y)


def _inputs(emb, X) -> np.ndarray:
    """What the network's input layer makes of the table ``X``."""
    encoded, _ = emb._encode(X, reset=False)
    with torch.no_grad():
        return emb.module_.inputs(torch.from_numpy(encoded)).numpy()


# ------------------------------------------------------------------------------- the encoding
def test_the_schema_takes_categories_from_the_dtypes(fitted, table):
    X, _ = table
    schema = fitted.schema_
    names = list(X.columns)
    assert [names[p] for p in schema.numeric] == ["price", "rooms", "floor"]
    assert [names[p] for p in schema.categorical] == ["city", "grade", "garden"]
    city = X["city"].dropna().astype(str)
    counts = city.value_counts()
    assert schema.levels[0] == sorted(counts.index[counts >= 5])  # "tiny", "once" pooled
    assert schema.levels[1] == ["a", "b", "c"] and schema.levels[2] == ["False", "True"]
    assert schema.embedding_dims == [default_embedding_dim(len(lv) + 2) for lv in schema.levels]
    assert [schema.numeric[i] for i in schema.missing_indicators] == [0, 5]  # price, floor
    np.testing.assert_array_equal(fitted.feature_names_in_, np.array(names, dtype=object))


def test_the_input_layer_against_a_pandas_reference(fitted, table):
    """Standardised numbers (missing -> 0, the mean), standardised missing indicators, and each
    level's own embedding row; computed here with pandas from the column values."""
    X, _ = table
    got = _inputs(fitted, X)
    expected = []
    for name in ("price", "rooms", "floor"):
        values = X[name].astype("float64")
        z = (values - values.mean()) / values.std(ddof=0)
        expected.append(z.fillna(0.0).to_numpy())
    for name in ("price", "floor"):  # indicators, standardised (schema version 2)
        flags = X[name].isna().to_numpy(float)
        expected.append((flags - flags.mean()) / flags.std())
    for j, name in enumerate(("city", "grade", "garden")):
        levels = fitted.schema_.levels[j]
        text = X[name].map(lambda v: None if pd.isna(v) else str(v))
        codes = pd.Categorical(text, categories=levels).codes + 2
        codes = np.where(text.isna(), MISSING_CODE, np.where(codes < 2, RARE_CODE, codes))
        table_ = fitted.module_.inputs.embeddings[j].weight.detach().numpy()
        expected += list(table_[codes].T)
    np.testing.assert_allclose(got, np.column_stack(expected), rtol=1e-5, atol=1e-5)


def test_numbers_and_text_of_one_level_are_one_level():
    X = pd.DataFrame({"code": pd.Series([1, 1.0, "1", 2, "2", 2.0] * 10, dtype=object)})
    y = np.repeat([0, 1], 30)
    emb = TripletEmbedder(categorical_features=["code"], **QUICK).fit(X, y)
    assert emb.schema_.levels == [["1", "2"]]


def _mostly_rare_warnings(frame, categorical_features, min_frequency=5) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learn_schema(
            [frame[c] for c in frame.columns], list(frame.columns),
            categorical_features=categorical_features, min_frequency=min_frequency,
            embedding_dim="auto",
        )  # fmt: skip
    assert all(w.filename == __file__ for w in caught)  # at the caller's line
    return [str(w.message) for w in caught if "distinct values as categories" in str(w.message)]


def test_a_categorical_column_of_mostly_rare_values_is_named_in_a_warning():
    """200 rows: identifiers seen twice each (forced categorical), years with one frequent
    value and missing cells (forced categorical), integer codes of category dtype seen 4
    times each ("from_dtype"); the counts in the messages are those of the construction."""
    frame = pd.DataFrame(
        {
            "ssn": [f"id{i:03d}" for i in range(100)] * 2,
            "born": [1900.0] * 15 + [np.nan] * 15 + list(range(1901, 2071)),
        }
    )
    assert _mostly_rare_warnings(frame, ["ssn", "born"]) == [
        "Column 'ssn' keeps 0 of its 100 distinct values as categories (each appears fewer "
        "than min_frequency=5 times): 200 of its 200 non-missing rows (100%) read as 'rare'. "
        "If it identifies records, pass it in text_features=['ssn'] to compare its "
        "characters, or lower min_frequency.",
        "Column 'born' keeps 1 of its 171 distinct values as categories (the other 170 appear "
        "fewer than min_frequency=5 times each): 170 of its 185 non-missing rows (92%) read "
        "as 'rare'. If it identifies records, pass it in text_features=['born'] to compare "
        "its characters, or lower min_frequency.",
    ]
    codes = pd.DataFrame({"code": pd.Categorical(np.repeat(np.arange(50), 4))})
    (message,) = _mostly_rare_warnings(codes, "from_dtype")
    assert message.startswith(
        "Column 'code' keeps 0 of its 50 distinct values as categories (each appears fewer "
        "than min_frequency=5 times): 200 of its 200 non-missing rows (100%) read as 'rare'."
    )
    assert _mostly_rare_warnings(codes, "from_dtype", min_frequency=4) == []


def test_a_fit_warns_of_a_mostly_rare_column_at_the_users_line():
    frame = pd.DataFrame({"ssn": [f"id{i:03d}" for i in range(100)] * 2, "x": np.arange(200.0)})
    y = np.arange(200) % 4
    with pytest.warns(UserWarning, match="Column 'ssn' keeps 0 of its 100 distinct") as caught:
        TripletEmbedder(categorical_features=["ssn"], random_state=0, **QUICK).fit(frame, y)
    assert [w.filename for w in caught if "'ssn'" in str(w.message)] == [__file__]


def test_no_rare_warning_where_the_levels_name_a_tenth_of_the_rows_or_the_column_is_text():
    unique = [f"v{i}" for i in range(181)]
    tenth = pd.DataFrame({"c": ["a"] * 20 + unique[:180]})  # 20 of 200 rows named: 10%
    assert _mostly_rare_warnings(tenth, ["c"]) == []
    less = pd.DataFrame({"c": ["a"] * 19 + unique})  # 19 of 200: warned
    (message,) = _mostly_rare_warnings(less, ["c"])
    assert "keeps 1 of its 182 distinct values" in message and "181 of its 200" in message
    # A string column left to the data ("from_dtype") with that many rare cells is text.
    assert _mostly_rare_warnings(less.astype("string"), "from_dtype") == []


def test_categorical_features_follow_histgradientboosting(table):
    """Names, indices, masks and "from_dtype" pick the columns HistGradientBoosting picks
    (on a table whose categorical columns are all of category dtype, which both accept)."""
    X, y = table
    X = X[["price", "rooms", "grade"]].assign(kind=pd.Categorical(X["city"]))
    # (HistGradientBoosting refuses a category column that is not categorical.)
    for chosen_by in (
        "from_dtype",
        ["grade", "kind", "rooms"],
        [1, 2, 3],
        np.array([0, 1, 1, 1]) == 1,
    ):
        hgb = HistGradientBoostingClassifier(categorical_features=chosen_by, max_iter=2)
        hgb.fit(X, y)
        emb = TripletEmbedder(categorical_features=chosen_by, **QUICK).fit(X, y)
        chosen = np.zeros(X.shape[1], bool)
        chosen[emb.schema_.categorical] = True
        np.testing.assert_array_equal(chosen, hgb.is_categorical_, err_msg=str(chosen_by))
    numbers = X[["price", "rooms"]]
    emb = TripletEmbedder(categorical_features=None, **QUICK).fit(numbers, y)
    assert emb.schema_.categorical == [] and emb.schema_.numeric == [0, 1]


def test_a_numeric_array_and_its_dataframe_embed_alike(table):
    X, y = table
    numbers = X[["price", "rooms"]].to_numpy()
    a = TripletEmbedder(random_state=0, **QUICK).fit(numbers, y).transform(numbers)
    frame = pd.DataFrame(numbers, columns=["p", "r"])
    b = TripletEmbedder(random_state=0, **QUICK).fit(frame, y).transform(frame)
    np.testing.assert_array_equal(a, b)


def test_categorical_columns_of_a_numeric_array(table):
    X, y = table
    numbers = np.column_stack([X["rooms"], X["price"]])
    emb = TripletEmbedder(categorical_features=[0], **QUICK).fit(numbers, y)
    assert emb.schema_.categorical == [0] and emb.schema_.levels == [["1", "2", "3", "4", "5"]]
    assert np.isfinite(emb.transform(numbers)).all()


def test_the_width_rule_and_its_override(table):
    X, y = table
    assert [default_embedding_dim(n) for n in (4, 12, 1002, 10**6)] == [3, 6, 32, 32]
    emb = TripletEmbedder(category_embedding_dim={"city": 7}, **QUICK).fit(X, y)
    assert emb.schema_.embedding_dims[0] == 7
    assert emb.module_.inputs.embeddings[0].weight.shape == (len(emb.schema_.levels[0]) + 2, 7)
    emb = TripletEmbedder(category_embedding_dim=2, **QUICK).fit(X, y)
    assert emb.schema_.embedding_dims == [2, 2, 2]


# ------------------------------------------------------------------------------ transform
def test_columns_are_matched_by_name(fitted, table):
    X, _ = table
    np.testing.assert_array_equal(fitted.transform(X[X.columns[::-1]]), fitted.transform(X))


def test_later_training_calls_match_columns_by_name(table):
    X, y = table
    emb = TripletEmbedder(random_state=0, **QUICK).partial_fit(X, y)
    emb.partial_fit(X[X.columns[::-1]], y)
    assert emb.n_iter_ == 2
    with pytest.raises(ValueError, match="unseen at fit time:\n- extra"):
        emb.partial_fit(X.assign(extra=1), y)


def test_a_model_pickled_before_tables_reads_numbers_as_it_did(table):
    """sk_dml 0.1.0 pickled a bare network (no input layer, no schema): unpickled now, it
    embeds raw numbers exactly as that network does."""
    X, y = table
    numbers = X[["price", "rooms"]].fillna(0).to_numpy()
    emb = TripletEmbedder(random_state=0, **QUICK).fit(numbers, y)
    state = emb.__getstate__()
    body = state["module_"].body
    old = {k: v for k, v in state.items() if k != "schema_"} | {"module_": body}
    revived = TripletEmbedder.__new__(TripletEmbedder)
    revived.__setstate__(old)
    with torch.no_grad():
        expected = body(torch.tensor(numbers, dtype=torch.float32)).numpy()
    np.testing.assert_array_equal(revived.transform(numbers), expected)


def test_unseen_levels_take_the_rare_embedding(fitted, table):
    """A level first seen at transform embeds exactly like a level too rare to keep."""
    X, _ = table
    rare = X.iloc[[0]]  # city "tiny": seen twice at fit, below min_frequency
    unseen = rare.assign(city="never seen", grade=pd.Categorical(["z"]))
    assert np.isfinite(fitted.transform(unseen)).all()
    rare_grade = rare.assign(grade=pd.Categorical(["z"]))
    np.testing.assert_array_equal(fitted.transform(unseen), fitted.transform(rare_grade))


def test_missing_values_anywhere_give_finite_embeddings(fitted, table):
    X, _ = table
    holes = X.head(5).astype(object)
    holes.iloc[0, :] = None
    holes.iloc[1, :] = np.nan
    holes.iloc[2, 2] = pd.NA
    holes = holes.astype({"price": float, "rooms": float})
    Z = fitted.transform(holes)
    assert Z.shape == (5, 8) and np.isfinite(Z).all()


def test_set_output_pandas(table):
    X, y = table
    emb = TripletEmbedder(**QUICK).set_output(transform="pandas").fit(X, y)
    Z = emb.transform(X.iloc[10:20])
    assert list(Z.columns) == list(emb.get_feature_names_out())
    assert list(Z.index) == list(X.index[10:20])


def test_save_and_load_keep_the_schema(fitted, table, tmp_path):
    X, _ = table
    sk_dml.save(fitted, tmp_path / "m.skdml")
    loaded = sk_dml.load(tmp_path / "m.skdml")
    assert loaded.schema_ == fitted.schema_
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    np.testing.assert_array_equal(loaded.transform(X[X.columns[::-1]]), fitted.transform(X))


def test_every_method_takes_the_table(fitted, table):
    X, y = table
    Z = fitted.transform(X)
    D = fitted.pairwise_distances(X.iloc[:5], X.iloc[5:9])
    expected = np.linalg.norm(Z[:5, None] - Z[None, 5:9], axis=2)
    np.testing.assert_allclose(D, expected, atol=1e-5)
    pairs = fitted.pair_distance((X.iloc[:5], X.iloc[5:10]))
    np.testing.assert_allclose(pairs, np.linalg.norm(Z[:5] - Z[5:10], axis=1), atol=1e-5)
    metric = fitted.get_metric()
    assert metric(X.iloc[0].to_numpy(), X.iloc[5].to_numpy()) == pytest.approx(D[0, 0], abs=1e-5)
    assert 0 <= fitted.score(X, y) <= 1


def test_tables_in_pipelines_and_grid_search(table):
    X, y = table
    pipe = make_pipeline(TripletEmbedder(random_state=0, **QUICK), KNeighborsClassifier(3))
    grid = GridSearchCV(pipe, {"tripletembedder__min_frequency": [1, 5]}, cv=2).fit(X, y)
    assert 0 <= grid.score(X, y) <= 1


@pytest.mark.parametrize("cls", EMBEDDERS, ids=LOSSES)
def test_every_embedder_takes_a_table(cls, table):
    X, y = table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        emb = cls(random_state=0, **QUICK).fit(X, y)
        emb.partial_fit(X.assign(city="new"), y)
    assert np.isfinite(emb.transform(X)).all()


def test_a_users_module_receives_the_input_layers_features(table):
    X, y = table
    widths = []

    def network(n_inputs):
        widths.append(n_inputs)
        return torch.nn.Linear(n_inputs, 4)

    emb = MetricEmbedder(module=network, **QUICK).fit(X, y)
    schema = emb.schema_
    expected = len(schema.numeric) + len(schema.missing_indicators) + sum(schema.embedding_dims)
    assert widths == [expected] == [emb.module_.inputs.out_features]


def test_a_residual_network_starts_from_the_tables_features(table):
    """The residual network's linear path starts as the PCA rotation of what the input layer
    makes of the training rows, so an untrained model's distances are those of the input
    layer's features (on the unit sphere: Proxy-Anchor normalises)."""
    X, y = table
    params = {**QUICK, "max_epochs": 1, "n_components": 32}
    emb = ProxyAnchorEmbedder(learning_rate=1e-12, random_state=0, **params).fit(X, y)
    features = _inputs(emb, X.head(20)).astype(np.float64)
    assert features.shape[1] <= 32  # so the rotation keeps every direction
    on_sphere = features / np.linalg.norm(features, axis=1, keepdims=True)
    Z = emb.transform(X.head(20))
    expected = np.linalg.norm(on_sphere[:, None] - on_sphere[None], axis=2)
    np.testing.assert_allclose(np.linalg.norm(Z[:, None] - Z[None], axis=2), expected, atol=1e-4)


def test_the_embedding_tables_train_sparsely(fitted):
    tables = fitted.module_.inputs.embeddings
    assert all(t.sparse for t in tables)
    assert isinstance(fitted._trainer.sparse_optimizer, LazyAdam)
    in_sparse = {id(p) for g in fitted._trainer.sparse_optimizer.param_groups for p in g["params"]}
    assert in_sparse == {id(t.weight) for t in tables}


# ---------------------------------------------------------------------------------- bad input
BAD_TABLES = [
    ("missing column", lambda X: X.drop(columns="city"), "seen at fit time, yet now missing"),
    ("extra column", lambda X: X.assign(extra=1.0), "unseen at fit time:\n- extra"),
    (
        "numbers as strings",
        lambda X: X.assign(rooms=X["rooms"].astype(str)),
        "'rooms' was numeric at fit",
    ),
    ("inf", lambda X: X.assign(price=np.inf), "infinity in column 'price'"),
    ("beyond float32", lambda X: X.assign(price=1e300), "'price' holds 1e[+]?300, beyond"),
    ("duplicate names", lambda X: pd.concat([X, X[["city"]]], axis=1), "unique column names"),
    ("empty", lambda X: X.iloc[:0], "0 sample"),
]


@pytest.mark.parametrize("case,edit,message", BAD_TABLES, ids=[c[0] for c in BAD_TABLES])
def test_bad_tables_at_transform_name_the_problem(fitted, table, case, edit, message):
    X, _ = table
    with pytest.raises(ValueError, match=message):
        fitted.transform(edit(X))


BAD_TRAINING_TABLES = [
    ("all missing", lambda X: X.assign(city=None), "'city' has no value at all"),
    ("all NaN", lambda X: X.assign(price=np.nan), "'price' has no value at all"),
    ("inf", lambda X: X.assign(price=-np.inf), "infinity in column 'price'"),
    ("beyond float32", lambda X: X.assign(rooms=-1e39), "'rooms' holds -1e[+]?39, beyond"),
    ("duplicate names", lambda X: pd.concat([X, X[["city"]]], axis=1), "unique column names"),
    ("no columns", lambda X: X[[]], "0 feature"),
    ("dates", lambda X: X.assign(when=pd.Timestamp("2026-01-01")), "'when' has dtype datetime"),
    ("unknown name", None, "names 'nope', which is not a column"),
]


@pytest.mark.parametrize(
    "case,edit,message", BAD_TRAINING_TABLES, ids=[c[0] for c in BAD_TRAINING_TABLES]
)
def test_bad_training_tables_name_the_problem_and_change_nothing(table, case, edit, message):
    X, y = table
    emb = TripletEmbedder(random_state=0, **QUICK).fit(X, y)
    before = emb.transform(X)
    bad = edit(X) if edit else X
    if case == "unknown name":
        emb.set_params(categorical_features=["nope"])
    with pytest.raises(ValueError, match=message):
        emb.fit(bad, y)
    np.testing.assert_array_equal(emb.transform(X), before)
    assert emb.schema_.n_features == emb.n_features_in_ == X.shape[1]
    np.testing.assert_array_equal(emb.feature_names_in_, X.columns)


def test_an_empty_training_table_is_refused(table):
    X, y = table
    with pytest.raises(ValueError, match="0 sample"):
        TripletEmbedder(**QUICK).fit(X.iloc[:0], y[:0])


# ------------------------------------------------------------------------------- properties
_COLUMN_KINDS = st.sampled_from(["float", "int", "text", "category", "bool", "nullable"])


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    kinds=st.lists(_COLUMN_KINDS, min_size=1, max_size=5),
    missing=st.floats(0, 0.5),
    seed=st.integers(0, 10**6),
)
def test_random_tables_embed_to_finite_rows(kinds, missing, seed):
    rng = np.random.RandomState(seed)
    n = 40
    columns = {}
    for j, kind in enumerate(kinds):
        values = {
            "float": lambda: rng.normal(0, 10 ** rng.randint(-3, 6), n),
            "int": lambda: rng.randint(-5, 5, n),
            "text": lambda: rng.choice(["x", "y", "zz", "w"], n).astype(object),
            "category": lambda: pd.Categorical(rng.choice(["p", "q"], n)),
            "bool": lambda: pd.array(rng.rand(n) > 0.5, dtype="boolean"),
            "nullable": lambda: pd.array(rng.randint(0, 3, n), dtype="Int64"),
        }[kind]()
        column = pd.Series(values)
        holes = rng.rand(n) < missing
        holes[0] = False  # never an all-missing column
        if kind in ("float", "int"):
            column = column.astype(float)
        column[holes] = None
        columns[f"c{j}"] = column
    X = pd.DataFrame(columns)
    y = np.repeat([0, 1], n // 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        emb = TripletEmbedder(random_state=0, max_epochs=1, batch_size=8, n_components=3,
                              hidden_layer_sizes=(8,)).fit(X, y)  # fmt: skip
    Z = emb.transform(X.sample(frac=1.0, random_state=0, axis=1))
    assert Z.shape == (n, 3) and Z.dtype == np.float32 and np.isfinite(Z).all()
