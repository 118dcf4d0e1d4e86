"""Dask input to transform, pairwise_distances and score, computed on a 2-process LocalCluster.

The oracle is always the in-memory method on the same data: the lazy result, once computed on
the cluster, must equal it. Shapes and chunks are checked before anything is computed.
"""

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError

from sk_dml import TripletEmbedder

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
dask = pytest.importorskip("dask")
cloudpickle = pytest.importorskip("cloudpickle")

QUICK = dict(max_epochs=3, hidden_layer_sizes=(64,), n_components=8, batch_size=64)
N_OUT = QUICK["n_components"]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        yield client


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def emb(digits):
    X, y = digits
    return TripletEmbedder(**QUICK, random_state=0, device="cpu").fit(X, y)


@pytest.fixture(scope="module")
def frame(digits):
    X, _ = digits
    return pd.DataFrame(X, columns=[f"px{i}" for i in range(X.shape[1])])


@pytest.fixture(scope="module")
def emb_named(digits, frame):
    """Fitted on string column names, with the cosine distance (an exact-zero diagonal case)."""
    _, y = digits
    return TripletEmbedder(**QUICK, distance="cosine", random_state=0, device="cpu").fit(frame, y)


def computed(client, collection):
    return client.compute(collection).result()


# ------------------------------------------------------------------------------ lazy metadata
@pytest.mark.parametrize(
    "chunks",
    [(500, 64), ((100, 700, 997), (64,)), ((600, 600, 597), (10, 30, 24))],
    ids=["regular", "ragged", "column-chunks"],
)
def test_lazy_shape_chunks_dtype_before_compute(digits, emb, chunks):
    X, _ = digits
    dX = da.from_array(X, chunks=chunks)
    Z = emb.transform(dX)
    assert isinstance(Z, da.Array)
    assert Z.shape == (len(X), N_OUT)
    assert Z.chunks == (dX.chunks[0], (N_OUT,))
    assert Z.dtype == np.float32
    assert len(emb.get_feature_names_out()) == Z.shape[1]


# ---------------------------------------------------------------- equal to the in-memory result
@pytest.mark.parametrize(
    "chunks",
    [(500, 64), ((100, 700, 997), (64,)), ((600, 600, 597), (10, 30, 24)), (-1, -1)],
    ids=["regular", "ragged", "column-chunks", "one-chunk"],
)
def test_transform_array_equals_in_memory(client, digits, emb, chunks):
    X, _ = digits
    Z = computed(client, emb.transform(da.from_array(X, chunks=chunks)))
    expected = emb.transform(X)
    assert Z.dtype == np.float32 and Z.shape == expected.shape
    np.testing.assert_allclose(Z, expected, rtol=1e-5, atol=1e-6)


def test_transform_integer_and_float32_input(client, digits, emb):
    X_int = load_digits().data.astype(np.int64)  # raw 0..16 pixel counts
    for X in (X_int, (X_int / 16.0).astype(np.float32)):
        Z = computed(client, emb.transform(da.from_array(X, chunks=(400, 64))))
        np.testing.assert_allclose(Z, emb.transform(X), rtol=1e-5, atol=1e-6)


def test_default_scheduler_is_the_client(client, digits, emb):
    X, _ = digits
    assert dask.base.get_scheduler() == client.get
    Z = emb.transform(da.from_array(X, chunks=300)).compute()
    np.testing.assert_allclose(Z, emb.transform(X), rtol=1e-5, atol=1e-6)


def test_transform_dataframe_equals_in_memory(client, frame, emb_named):
    ddf = dd.from_pandas(frame, npartitions=4)
    Z = emb_named.transform(ddf)
    assert isinstance(Z, da.Array) and Z.dtype == np.float32
    assert Z.shape[1] == N_OUT and np.isnan(Z.shape[0])  # partition lengths are unknown
    assert len(Z.chunks[0]) == 4 and Z.chunks[1] == (N_OUT,)
    np.testing.assert_allclose(
        computed(client, Z), emb_named.transform(frame), rtol=1e-5, atol=1e-6
    )


def test_transform_dataframe_with_empty_partitions(client, frame, emb_named):
    ddf = dd.from_pandas(frame, npartitions=4)
    kept = ddf[ddf.index.to_series() < 300]  # the last two partitions are left empty
    Z = computed(client, emb_named.transform(kept))
    np.testing.assert_allclose(Z, emb_named.transform(frame.iloc[:300]), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------- tables: mixed columns, missing values
@pytest.fixture(scope="module")
def table():
    """Numbers (with NaN), integers, strings (with None), bools and a category, 400 rows."""
    rng = np.random.default_rng(0)
    n = 400
    label = np.arange(n) % 4
    table = pd.DataFrame(
        {
            "size": rng.normal(label, 1.0),
            "count": rng.integers(0, 6, n),
            "colour": np.array(["red", "green", "blue", "grey"], dtype=object)[
                (label + (rng.random(n) < 0.2)) % 4
            ],
            "flag": (label % 2 == 0) ^ (rng.random(n) < 0.1),
            "shape": pd.Categorical(rng.choice(["round", "square", "flat"], n)),
        }
    )
    table.loc[::9, "size"] = np.nan
    table.loc[::13, "colour"] = None
    return table, label


@pytest.fixture(scope="module")
def emb_table(table):
    X, y = table
    return TripletEmbedder(**QUICK, random_state=0, device="cpu").fit(X, y)


def test_transform_table_equals_in_memory(client, table, emb_table):
    X, _ = table
    ddf = dd.from_pandas(X, npartitions=4)
    Z = emb_table.transform(ddf)
    assert isinstance(Z, da.Array) and Z.dtype == np.float32
    assert Z.shape[1] == N_OUT and np.isnan(Z.shape[0]) and len(Z.chunks[0]) == 4
    Z = computed(client, Z)
    assert Z.dtype == np.float32
    assert np.array_equal(Z, emb_table.transform(ddf.compute()))
    # Dask stores the text column as strings rather than objects: the same levels.
    assert np.array_equal(Z, emb_table.transform(X))


def test_transform_table_columns_matched_by_name(client, table, emb_table):
    X, _ = table
    reordered = dd.from_pandas(X[list(reversed(X.columns))], npartitions=3)
    # Equal to float32 rounding: the workers' BLAS runs 1 thread, this process's 2, and the
    # residual network's sums may then round differently in the last bit.
    np.testing.assert_allclose(
        computed(client, emb_table.transform(reordered)),
        emb_table.transform(X),
        rtol=1e-6,
        atol=1e-7,
    )


@pytest.mark.parametrize("how", ["known", "unknown", "categorize"])
def test_transform_table_categories_known_or_not(client, table, emb_table, how):
    """Levels are read from each partition's values: unknown categories need no categorize()."""
    X, _ = table
    ddf = dd.from_pandas(X, npartitions=4)
    if how == "unknown":
        ddf = ddf.assign(
            shape=ddf["shape"].cat.as_unknown(), colour=ddf["colour"].astype("category")
        )
        assert not ddf["shape"].cat.known and not ddf["colour"].cat.known
    elif how == "categorize":
        ddf = ddf.categorize(columns=["colour"])
        assert ddf["colour"].cat.known
    Z = computed(client, emb_table.transform(ddf))
    assert np.array_equal(Z, emb_table.transform(ddf.compute()))
    assert np.array_equal(Z, emb_table.transform(X))


def test_transform_table_unseen_levels_and_missing_partitions(client, table, emb_table):
    """An unseen level gets the "rare or unseen" embedding and a partition whose categorical
    column is all missing the "missing" one, partition by partition as in memory."""
    X, _ = table
    new = X.iloc[:200].copy()
    new.loc[new.index[:50], "colour"] = None  # the whole first partition
    new.loc[new.index[50:60], "colour"] = "violet"  # never seen at fit
    new["shape"] = new["shape"].cat.add_categories(["hexagonal"])
    new.loc[new.index[60:70], "shape"] = "hexagonal"
    new.loc[new.index[70:80], "count"] = np.nan
    ddf = dd.from_pandas(new, npartitions=4)
    Z = computed(client, emb_table.transform(ddf))
    assert np.array_equal(Z, emb_table.transform(new))
    # Any unseen level is "rare or unseen": another one in its place changes nothing.
    other = new.copy()
    other.loc[other.index[50:60], "colour"] = "indigo"
    assert np.array_equal(Z, emb_table.transform(other))


def test_table_metadata_errors_raise_before_compute(table, emb_table):
    """A missing or extra column raises at graph construction, with the in-memory message."""
    X, _ = table
    ddf = dd.from_pandas(X, npartitions=2)
    for bad, bad_in_memory in (
        (ddf.drop(columns="colour"), X.drop(columns="colour")),
        (ddf.assign(extra=1.0), X.assign(extra=1.0)),
    ):
        with pytest.raises(ValueError) as in_memory:
            emb_table.transform(bad_in_memory)
        with pytest.raises(ValueError) as lazy:
            emb_table.transform(bad)
        assert str(lazy.value) == str(in_memory.value)
        assert "The feature names should match those that were passed during fit" in str(lazy.value)
    with pytest.raises(ValueError, match="Column 'size' was numeric at fit"):
        emb_table.transform(ddf.assign(size=ddf["colour"]))


def test_table_infinity_raises_at_compute(client, table, emb_table):
    X, _ = table
    bad = X.copy()
    bad.loc[300, "size"] = np.inf
    Z = emb_table.transform(dd.from_pandas(bad, npartitions=2))
    with pytest.raises(ValueError, match="Input X contains infinity in column 'size'"):
        computed(client, Z)


def test_table_pairwise_distances_and_score(client, table, emb_table):
    X, y = table
    ddf = dd.from_pandas(X.assign(label=y), npartitions=3)
    A, B = ddf.drop(columns="label"), dd.from_pandas(X.iloc[:150], npartitions=2)
    D = emb_table.pairwise_distances(A, B)
    assert isinstance(D, da.Array)
    np.testing.assert_allclose(
        computed(client, D), emb_table.pairwise_distances(X, X.iloc[:150]), rtol=1e-5, atol=1e-5
    )
    D = computed(client, emb_table.pairwise_distances(dd.from_pandas(X.iloc[:120], npartitions=2)))
    np.testing.assert_allclose(D, emb_table.pairwise_distances(X.iloc[:120]), rtol=1e-5, atol=1e-5)
    assert emb_table.score(A, ddf["label"]) == pytest.approx(emb_table.score(X, y), abs=1e-12)


def test_array_is_encoded_with_the_schema(client, table):
    """A dask array for a model with a categorical column of numbers: each block is encoded
    (levels to codes) as in memory, never fed raw to the embedding tables."""
    X, y = table
    numbers = X[["size", "count"]].fillna(0.0)
    emb = TripletEmbedder(**QUICK, categorical_features=[1], random_state=0, device="cpu").fit(
        numbers.to_numpy(), y
    )
    A = numbers.to_numpy()
    Z = computed(client, emb.transform(da.from_array(A, chunks=(150, 2))))
    assert np.array_equal(Z, emb.transform(A))


# --------------------------------------------------------------------------- pairwise distances
def test_pairwise_distances_x_y_equals_in_memory(client, digits, emb):
    X, _ = digits
    A, B = X[:700], X[700:1300]
    D = emb.pairwise_distances(da.from_array(A, chunks=250), da.from_array(B, chunks=(200, 64)))
    assert D.shape == (700, 600) and D.chunks == ((250, 250, 200), (200, 200, 200))
    assert D.dtype == np.float32
    np.testing.assert_allclose(
        computed(client, D), emb.pairwise_distances(A, B), rtol=1e-5, atol=1e-5
    )
    # One side in memory: the other is still lazy.
    mixed = emb.pairwise_distances(A, da.from_array(B, chunks=300))
    assert isinstance(mixed, da.Array) and mixed.shape == (700, 600)
    np.testing.assert_allclose(
        computed(client, mixed), emb.pairwise_distances(A, B), rtol=1e-5, atol=1e-5
    )


def test_pairwise_distances_with_itself(client, frame, emb_named):
    """Y=None on a DataFrame with the cosine distance: the diagonal is exactly 0, as in memory."""
    data = frame.iloc[:600]
    D = emb_named.pairwise_distances(dd.from_pandas(data, npartitions=3))
    assert D.ndim == 2 and len(D.chunks[0]) == len(D.chunks[1]) == 3
    D = computed(client, D)
    expected = emb_named.pairwise_distances(data)
    np.testing.assert_allclose(D, expected, rtol=1e-5, atol=1e-5)
    assert np.all(np.diag(D) == 0.0)


# ---------------------------------------------------------------------------------------- score
def test_score_equals_in_memory(client, digits, emb):
    X, y = digits
    expected = emb.score(X, y)
    assert emb.score(da.from_array(X, chunks=400), y) == pytest.approx(expected, abs=1e-12)
    assert emb.score(da.from_array(X, chunks=400), da.from_array(y, chunks=500)) == pytest.approx(
        expected, abs=1e-12
    )


def test_score_dataframe_and_series(client, digits, frame, emb_named):
    _, y = digits
    ddf = dd.from_pandas(frame.assign(label=y), npartitions=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. dask's warning about mixing kinds of graphs
        got = emb_named.score(ddf.drop(columns="label"), ddf["label"])
    assert got == pytest.approx(emb_named.score(frame, y), abs=1e-12)


# --------------------------------------------------------------------------------------- errors
def test_wrong_width_raises_before_compute(digits, emb):
    X, _ = digits
    with pytest.raises(
        ValueError, match="X has 5 features, but TripletEmbedder is expecting 64 features"
    ):
        emb.transform(da.from_array(X[:, :5], chunks=100))


def test_missing_values_embed_as_in_memory_and_infinity_raises_at_compute(client, digits, emb):
    X, _ = digits
    X = X.copy()
    X[1500, 3] = np.nan  # in the last chunk only
    Z = emb.transform(da.from_array(X, chunks=500))
    np.testing.assert_array_equal(computed(client, Z), emb.transform(X))
    X[1500, 3] = np.inf
    Z = emb.transform(da.from_array(X, chunks=500))  # lazy: no error yet
    assert Z.shape == (len(X), N_OUT)
    with pytest.raises(ValueError, match="Input X contains infinity"):
        computed(client, Z)


def test_infinity_in_dataframe_raises_at_compute(client, frame, emb_named):
    bad = frame.copy()
    bad.iloc[10, 0] = np.inf
    Z = emb_named.transform(dd.from_pandas(bad, npartitions=2))
    with pytest.raises(ValueError, match="Input X contains infinity"):
        computed(client, Z)


def test_unfitted_raises(digits):
    X, _ = digits
    with pytest.raises(NotFittedError, match="This TripletEmbedder instance is not fitted"):
        TripletEmbedder().transform(da.from_array(X, chunks=500))


def test_wrong_column_names_raise(frame, emb_named):
    renamed = frame.rename(columns={"px3": "other"})
    with pytest.raises(ValueError, match="The feature names should match those that were passed"):
        emb_named.transform(dd.from_pandas(renamed, npartitions=2))


def test_not_two_dimensional_raises(digits, emb, frame):
    X, _ = digits
    with pytest.raises(ValueError, match="Expected 2D array, got 1D dask array"):
        emb.transform(da.from_array(X[:, 0], chunks=500))
    with pytest.raises(ValueError, match="got a dask Series"):
        emb.transform(dd.from_pandas(frame["px0"], npartitions=2))
    with pytest.raises(TypeError, match="dask arrays and dask DataFrames, got dask.delayed"):
        emb.transform(dask.delayed(X))


# ------------------------------------------------------------------ the estimator is shipped once
def test_estimator_is_one_graph_key_not_in_every_task(emb, emb_named):
    """Every block task must refer to the estimator by key, never carry a copy: each task's
    pickle stays far smaller than the estimator's, and exactly one graph entry holds it."""
    est_bytes = len(pickle.dumps(emb))
    assert len(pickle.dumps(emb_named)) >= est_bytes
    # Data generated by tiny tasks, so that only the estimator is big in the graph.
    dX = da.random.default_rng(0).random((2000, 64), chunks=(100, 64))
    ddf = dd.from_dask_array(dX, columns=list(emb_named.feature_names_in_))
    for lazy in (
        emb.transform(dX),
        emb.pairwise_distances(dX, dX[:500]),
        emb_named.transform(ddf),
    ):
        graph = dict(lazy.__dask_graph__())
        sizes = {key: len(cloudpickle.dumps(task)) for key, task in graph.items()}
        big = [key for key, size in sizes.items() if size >= est_bytes]
        assert len(big) == 1, big
        assert max(size for key, size in sizes.items() if key not in big) < est_bytes / 4
        assert len(graph) > 20  # many tasks share that one key


# ------------------------------------------------------------------------- dask stays optional
@pytest.mark.slow
def test_import_does_not_import_dask():
    code = (
        "import sys, numpy as np; import sk_dml; from sk_dml import _dask; "
        "assert not _dask.is_dask_collection(np.zeros(3)); "
        "assert 'dask' not in sys.modules, 'dask imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_experimental_array_query_planning():
    """dask's opt-in array query planning cannot take a Delayed argument (dask 2026.8): the
    array path still gives the in-memory result there."""
    code = """
import numpy as np, dask.array as da
from sk_dml import TripletEmbedder
assert da.array_expr_enabled()
X = np.random.default_rng(0).normal(size=(300, 4))
emb = TripletEmbedder(max_epochs=1, hidden_layer_sizes=(16,), n_components=8, batch_size=32,
                      random_state=0, device="cpu").fit(X, np.arange(300) % 4)
A = da.from_array(X, chunks=(70, 3))
Z = emb.transform(A)
assert Z.shape == (300, 8) and Z.chunks == ((70, 70, 70, 70, 20), (8,)), Z.chunks
np.testing.assert_allclose(Z.compute(scheduler="sync"), emb.transform(X), rtol=1e-5, atol=1e-6)
D = emb.pairwise_distances(A).compute(scheduler="sync")
np.testing.assert_allclose(D, emb.pairwise_distances(X), rtol=1e-5, atol=1e-5)
"""
    env = {**os.environ, "DASK_ARRAY__QUERY_PLANNING": "True"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
