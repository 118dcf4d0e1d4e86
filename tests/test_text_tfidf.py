"""The TF-IDF start of text columns, what a string column becomes, and bad text input.

Oracles: scikit-learn's ``TfidfVectorizer`` and ``TfidfTransformer`` (inverse document
frequencies and cosine similarities computed from the cells directly), the model file written
by the code before schema versions (``tests/data/schema1_text.*``), and hand-made tables whose
right reading is known.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer, TfidfVectorizer

import sk_dml
from sk_dml import PairEmbedder, TripletEmbedder
from sk_dml.nets import TableInput
from sk_dml.tabular import (
    SCHEMA_VERSION,
    TEXT_N_BUCKETS,
    TEXT_NGRAM_RANGE,
    TableSchema,
    learn_schema,
)

DATA = Path(__file__).parent / "data"
QUICK = dict(max_epochs=2, hidden_layer_sizes=(16,), n_components=8, batch_size=32)
LETTERS = list("abcdefghijklmnopqrstuvwxyz")


def _learn(frame: pd.DataFrame, text=None, categorical="from_dtype", min_frequency=5, dim="auto"):
    columns = [frame[c] for c in frame.columns]
    return learn_schema(
        columns,
        [str(c) for c in frame.columns],
        categorical_features=categorical,
        min_frequency=min_frequency,
        embedding_dim=dim,
        text_features=text,
    )


def _names(n: int, seed: int = 0) -> list[str]:
    """``n`` two-word names, a third of them a one-letter typo of an earlier one."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if i >= 3 and i % 3 == 0:
            chars = list(out[rng.integers(i)])
            chars[rng.integers(len(chars))] = rng.choice(LETTERS)
            out.append("".join(chars))
        else:
            out.append(" ".join("".join(rng.choice(LETTERS, rng.integers(4, 9))) for _ in "ab"))
    return out


def _vectorizer_args() -> dict:
    return dict(analyzer="char_wb", ngram_range=TEXT_NGRAM_RANGE, lowercase=True)


# -- the inverse document frequencies ------------------------------------------------------------
def test_idf_is_scikit_learns_of_the_hashed_counts():
    cells = pd.Series(_names(300) + [None, "", "Anna"], dtype=object)
    schema = _learn(pd.DataFrame({"t": cells}), text=["t"])
    assert schema.version == SCHEMA_VERSION == 2
    present = [str(c) for c in cells if c is not None]
    assert schema.text_n_documents == [len(present)]  # a missing cell is no document
    hashed = HashingVectorizer(
        n_features=TEXT_N_BUCKETS, alternate_sign=False, norm=None, **_vectorizer_args()
    ).transform(present)
    oracle = TfidfTransformer(smooth_idf=True).fit(hashed)
    seen = np.flatnonzero(np.asarray((hashed > 0).sum(0)).ravel())
    assert schema.text_buckets == [seen.tolist()]
    idf = schema.text_idf(0)
    np.testing.assert_allclose(idf[seen], oracle.idf_[seen], rtol=1e-12)
    unseen = np.setdiff1d(np.arange(TEXT_N_BUCKETS), seen)
    assert (idf[unseen] == 0).all()  # an n-gram never seen at fit carries no weight


def test_the_exact_tfidf_is_the_vectorizers_where_no_bucket_collides():
    cells = _names(16, seed=0)  # 428 n-grams in 428 buckets (checked below)
    schema = _learn(pd.DataFrame({"t": cells}), text=["t"])
    vectorizer = TfidfVectorizer(**_vectorizer_args()).fit(cells)
    buckets = HashingVectorizer(  # each n-gram's bucket: the n-gram is the only token
        n_features=TEXT_N_BUCKETS, alternate_sign=False, norm=None, analyzer=lambda g: [g]
    ).transform(list(vectorizer.vocabulary_))
    assert buckets.nnz == len(vectorizer.vocabulary_)  # one bucket per n-gram...
    assert len(set(buckets.indices)) == buckets.nnz  # ...and no two n-grams share one
    ours = schema.text_tfidf(pd.Series(cells), 0)
    theirs = vectorizer.transform(cells)
    np.testing.assert_allclose((ours @ ours.T).toarray(), (theirs @ theirs.T).toarray(), atol=1e-12)


@pytest.mark.parametrize("width", [64, 1024])
def test_the_untrained_text_embedding_ranks_as_tfidf_cosine(width):
    """Dot products of the untrained input layer's text vectors approximate the TF-IDF cosine
    similarities (a Gaussian random projection: error about 1 / sqrt(width)), and a typo's
    nearest other cell is the one TF-IDF cosine gives."""
    cells = _names(240, seed=2)
    frame = pd.DataFrame({"t": cells})
    schema = _learn(frame, text=["t"], dim=width)
    torch.manual_seed(0)
    layer = TableInput.for_schema(schema)
    with torch.no_grad():
        Z = layer(torch.as_tensor(schema.encode([frame.t]))).numpy()
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1, rtol=1e-5)
    ours = Z @ Z.T
    tfidf = TfidfVectorizer(**_vectorizer_args()).fit_transform(cells)
    theirs = (tfidf @ tfidf.T).toarray()
    off = ~np.eye(len(cells), dtype=bool)
    error = np.abs(ours - theirs)[off]
    assert error.mean() < 1 / np.sqrt(width), error.mean()
    typos = np.arange(3, len(cells), 3)
    np.fill_diagonal(ours, -np.inf)
    np.fill_diagonal(theirs, -np.inf)
    agree = (ours.argmax(1) == theirs.argmax(1))[typos].mean()
    assert agree > (0.95 if width >= 1024 else 0.85), agree


def test_missing_and_unseen_cells_embed_to_zeros_not_nan():
    frame = pd.DataFrame({"t": ["alpha beta", "gamma", "alpha"]})
    schema = _learn(frame, text=["t"])
    layer = TableInput.for_schema(schema)
    later = pd.Series(["alpha", None, "qqq", ""], dtype=object)  # "qqq": n-grams unseen at fit
    with torch.no_grad():
        Z = layer(torch.as_tensor(schema.encode([later]))).numpy()
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), [1, 0, 0, 0], atol=1e-6)


def test_the_schema_round_trips_through_json_and_a_model_file(tmp_path):
    frame = pd.DataFrame({"name": _names(60), "x": np.arange(60.0)})
    y = np.arange(60) % 6
    model = TripletEmbedder(text_features=["name"], random_state=0, **QUICK).fit(frame, y)
    data = json.loads(json.dumps(model.schema_.to_dict()))
    assert TableSchema.from_dict(data) == model.schema_
    sk_dml.save(model, tmp_path / "m.safetensors")
    loaded = sk_dml.load(tmp_path / "m.safetensors")
    assert loaded.schema_ == model.schema_ and loaded.schema_.version == 2
    np.testing.assert_array_equal(loaded.transform(frame), model.transform(frame))


def test_a_schema_1_model_file_loads_and_embeds_as_when_it_was_written():
    """Written by the code before TF-IDF (text as the mean of random n-gram vectors, raw 0/1
    missing indicators): its schema keeps version 1, and it embeds as it did."""
    expected = np.load(DATA / "schema1_text.npz")
    model = sk_dml.load(DATA / "schema1_text.safetensors")
    assert model.schema_.version == 1 and model.schema_.text == [3]
    assert not model.module_.inputs.tfidf and not model.module_.inputs.standardize_indicators
    name = pd.Series(expected["name"], dtype=object).mask(expected["name_missing"])
    frame = pd.DataFrame(
        {
            "x": expected["x"],
            "z": expected["z"],
            "kind": pd.Categorical(expected["kind"]),
            "name": name,
        }
    )
    np.testing.assert_array_equal(model.transform(frame), expected["embedding"])


def test_a_schema_of_a_later_version_is_refused_naming_the_versions():
    schema = _learn(pd.DataFrame({"t": _names(30)}), text=["t"])
    data = schema.to_dict() | {"version": 3}
    with pytest.raises(ValueError, match="version 3.*versions 1 to 2"):
        TableSchema.from_dict(data)
    with pytest.raises(ValueError, match="fields"):
        TableSchema.from_dict(schema.to_dict() | {"something_new": 1})
    damaged = schema.to_dict()
    damaged["text_document_counts"] = [[0] * len(damaged["text_buckets"][0])]
    with pytest.raises(ValueError, match="inconsistent"):
        TableSchema.from_dict(damaged)


# -- what a string column becomes --------------------------------------------------------------
def test_string_columns_are_read_from_their_data():
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "state": rng.choice(["nsw", "vic", "qld", "wa"], n),  # short codes, few levels
            "name": _names(n),  # free text with typos
            "postcode": [f"{p:04d}" for p in rng.integers(2000, 3000, n)],  # an ID-like code
            "ssn": pd.Series([f"{s:07d}" for s in rng.integers(0, 10**7, n)], dtype="string"),
            "grade": pd.Categorical(rng.choice(["a", "b"], n)),  # a category dtype: as given
            "flag": rng.random(n) < 0.5,
            "x": rng.normal(size=n),
        }
    )
    schema = _learn(frame)
    kinds = {row["column"]: row["kind"] for row in schema.describe()}
    assert kinds == {
        "state": "categorical",
        "name": "text",
        "postcode": "text",
        "ssn": "text",
        "grade": "categorical",
        "flag": "categorical",
        "x": "numeric",
    }
    reasons = {row["column"]: row["reason"] for row in schema.describe()}
    assert reasons["state"].startswith("string column, 4 levels, 0% of its cells rare")
    assert "100% of its cells rare" in reasons["ssn"]
    assert reasons["grade"] == "category dtype" and reasons["x"] == "numeric dtype"
    sizes = {row["column"]: row["size"] for row in schema.describe()}
    assert sizes["state"] == 4 and sizes["x"] is None and sizes["name"] > 100
    # The oracle of the rule: the share of cells whose level is seen fewer than 5 times.
    for column in ("state", "name", "postcode", "ssn"):
        counts = frame[column].map(frame[column].value_counts())
        assert (kinds[column] == "text") == ((counts < 5).mean() > 0.05), column


def test_the_options_override_the_data():
    frame = pd.DataFrame({"code": ["a", "b"] * 50, "name": _names(100)})
    schema = _learn(frame, text=["code"], categorical=["name"])
    assert [schema.kind(p) for p in range(2)] == ["text", "categorical"]
    assert [row["reason"] for row in schema.describe()] == [
        "text_features",
        "categorical_features",
    ]
    # min_frequency sets what "rare" is: with 1, only levels seen once are.
    frame = pd.DataFrame({"pair": [f"v{i // 2}" for i in range(100)]})  # each level twice
    assert _learn(frame, min_frequency=5).text == [0]
    assert _learn(frame, min_frequency=1).categorical == [0]


def test_an_embedder_reads_an_id_column_as_text_and_finds_its_typo():
    ids = [f"{i:07d}" for i in np.random.default_rng(0).integers(0, 10**7, 200)]
    typo = ids[0][:3] + ("1" if ids[0][3] != "1" else "2") + ids[0][4:]
    frame = pd.DataFrame({"id": ids})
    pairs = np.array([[i, (i + 1) % 200] for i in range(0, 200, 2)])
    model = PairEmbedder(preprocessor=frame, random_state=0, **QUICK)
    model.fit(pairs, np.zeros(len(pairs)) + (np.arange(len(pairs)) % 2))
    assert model.schema_.text == [0]
    Z = model.transform(pd.DataFrame({"id": [typo, *ids]}))
    assert np.isfinite(Z).all()


# -- bad input -----------------------------------------------------------------------------------
def test_an_all_empty_text_column_is_refused_by_name():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "t": ["", "  ", None]})
    with pytest.raises(ValueError, match="'t' has no text at all"):
        _learn(frame, text=["t"])
    with pytest.raises(ValueError, match="'t' has no value at all"):
        _learn(frame.assign(t=[None] * 3), text=["t"])


def test_a_numeric_text_column_must_hold_whole_numbers():
    frame = pd.DataFrame({"zip": [2000, 2010, np.nan, 3000.0], "w": [0.5, 1.25, 2.0, 3.0]})
    schema = _learn(frame, text=["zip"])  # IDs as numbers: read as their digits
    assert schema.text == [0]
    with pytest.raises(ValueError, match="'w' is listed in text_features.*0.5"):
        _learn(frame, text=["w"])


def test_indicators_are_standardised_as_a_scaler_after_an_imputer_would():
    from sklearn.impute import MissingIndicator
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = np.where(rng.random(200) < 0.3, np.nan, rng.normal(size=200))
    frame = pd.DataFrame({"x": x, "y": rng.normal(size=200)})
    schema = _learn(frame)
    layer = TableInput.for_schema(schema)
    encoded = schema.encode([frame.x, frame.y])
    layer.fit_statistics(encoded)
    with torch.no_grad():
        out = layer(torch.as_tensor(encoded)).numpy()
    flags = MissingIndicator().fit_transform(frame[["x"]]).astype(float)
    np.testing.assert_allclose(out[:, 2], StandardScaler().fit_transform(flags)[:, 0], atol=1e-5)
    old = TableInput.for_schema(dataclasses.replace(schema, version=1))
    old.fit_statistics(encoded)
    with torch.no_grad():
        np.testing.assert_array_equal(old(torch.as_tensor(encoded)).numpy()[:, 2], flags[:, 0])


def test_a_schema_too_large_for_a_model_file_is_refused_naming_the_column(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    import sk_dml.persistence as persistence

    frame = pd.DataFrame({"name": _names(60), "code": ["a", "b", "c"] * 20})
    model = TripletEmbedder(text_features=["name"], random_state=0, **QUICK)
    model.fit(frame, np.arange(60) % 6)

    def too_large(*args, **kwargs):  # what safetensors says of a header over 100 MB
        raise SafetensorError("HeaderTooLarge")

    monkeypatch.setattr(persistence, "save_file", too_large)
    with pytest.raises(ValueError, match="largest part is the text column 'name'"):
        sk_dml.save(model, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()
