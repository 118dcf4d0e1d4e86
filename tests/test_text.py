"""Text columns (``text_features``): cells read as hashed character n-grams
(sk_dml.tabular) and embedded as their TF-IDF vector's random projection, normalised, or, in
models of schema version 1, as the mean of their n-grams' vectors (sk_dml.nets.TableInput).
The TF-IDF start itself is tested in test_text_tfidf.py.

The oracles are independent of the implementation: scikit-learn's HashingVectorizer called
directly on each cell, numpy means of the bucket vectors, and a statistical check that typos
start near their original.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import pickle
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.feature_extraction.text import HashingVectorizer

import sk_dml
from sk_dml import PairEmbedder, TripletEmbedder
from sk_dml._optimizers import LazyAdam, sparse_parameters
from sk_dml.nets import TableInput, set_sparse_gradients
from sk_dml.tabular import (
    MAX_NGRAMS,
    TEXT_N_BUCKETS,
    TEXT_NGRAM_RANGE,
    TableSchema,
    learn_schema,
)

QUICK = dict(max_epochs=2, hidden_layer_sizes=(16,), n_components=8, batch_size=32)
LETTERS = list("abcdefghijklmnopqrstuvwxyz")


def _word(rng, low=5, high=12) -> str:
    return "".join(rng.choice(LETTERS, rng.integers(low, high)))


def _learn(frame: pd.DataFrame, text, categorical="from_dtype"):
    columns = [frame[c] for c in frame.columns]
    schema = learn_schema(
        columns,
        [str(c) for c in frame.columns],
        categorical_features=categorical,
        min_frequency=1,
        embedding_dim="auto",
        text_features=text,
    )
    return schema, schema.encode(columns)


def _hashed(cell: str) -> Counter:
    """The multiset of bucket ids + 1 of ``cell``'s n-grams, by scikit-learn directly."""
    vectorizer = HashingVectorizer(
        analyzer="char_wb",
        ngram_range=TEXT_NGRAM_RANGE,
        n_features=TEXT_N_BUCKETS,
        alternate_sign=False,
        norm=None,
    )
    row = vectorizer.transform([cell])
    return Counter({int(i) + 1: int(round(c)) for i, c in zip(row.indices, row.data, strict=True)})


def _frame(n=40, seed=0) -> tuple[pd.DataFrame, np.ndarray]:
    """A table of 10 entities, 4 rows each: a name with typos, a number, a category."""
    rng = np.random.default_rng(seed)
    names, y = [], []
    for entity in range(n // 4):
        name = f"{_word(rng)} {_word(rng)}"
        for _ in range(4):
            typo = list(name)
            typo[rng.integers(len(typo))] = rng.choice(LETTERS)
            names.append("".join(typo).title())
            y.append(entity)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "name": names,
            "kind": pd.Categorical(rng.choice(["a", "b"], n)),
        }
    )
    return frame, np.asarray(y)


def test_encoded_ids_are_the_hashing_vectorizers_ngrams():
    rng = np.random.default_rng(1)
    cells = [f"{_word(rng)} {_word(rng, 2, 6)}".upper() for _ in range(20)]
    values = pd.Series([*cells, None, "", 12.0, 7], dtype=object)
    frame = pd.DataFrame({"t": values, "x": np.arange(len(values), dtype=float)})
    schema, encoded = _learn(frame, ["t"])
    assert schema.text == [0] and schema.numeric == [1] and schema.categorical == []
    assert schema.text_ngram_range == list(TEXT_NGRAM_RANGE)
    width = schema.max_ngrams[0]
    expected = [_hashed(c.lower()) for c in cells]
    assert width == min(MAX_NGRAMS, max(sum(c.values()) for c in expected))
    ids = encoded[:, 1 : 1 + width]
    assert schema.n_encoded == encoded.shape[1] == 1 + width
    assert np.array_equal(encoded[:, 0], frame.x.to_numpy(np.float32))
    for row, oracle in zip(ids[: len(cells)], expected, strict=True):
        assert Counter(int(i) for i in row if i > 0) == oracle
        assert (row[np.count_nonzero(row) :] == 0).all()  # padding after the ids
    assert (ids[len(cells)] == 0).all() and (ids[len(cells) + 1] == 0).all()  # None, ""
    assert Counter(int(i) for i in ids[-2] if i > 0) == _hashed("12")  # 12.0 read as "12"
    assert Counter(int(i) for i in ids[-1] if i > 0) == _hashed("7")
    assert ids.max() < 2**24


def test_a_long_cell_keeps_its_smallest_ids_and_widths_are_capped():
    long = " ".join(f"word{i}" for i in range(40))
    frame = pd.DataFrame({"t": [long, "ab"]})
    schema, encoded = _learn(frame, ["t"])
    assert schema.max_ngrams == [MAX_NGRAMS]
    every = sorted(_hashed(long).elements())
    assert len(every) > MAX_NGRAMS
    assert encoded[0].tolist() == every[:MAX_NGRAMS]  # a deterministic bottom-k sample


def test_text_columns_are_not_categorical_and_names_are_checked():
    frame, _ = _frame()
    frame["city"] = pd.Series(["x", "y"] * 20, dtype="string")
    schema, _ = _learn(frame, ["name", "city"])
    assert schema.text == [1, 3] and schema.categorical == [2]  # "from_dtype" skips text
    with pytest.raises(ValueError, match="text_features names 'nope'"):
        _learn(frame, ["name", "nope"])
    with pytest.raises(ValueError, match="'city'.*both categorical_features and text_features"):
        _learn(frame, ["city"], categorical=["city"])
    embedder = TripletEmbedder(text_features=["nope"], **QUICK)
    with pytest.raises(ValueError, match="'nope'"):
        embedder.fit(frame, np.repeat(np.arange(10), 4))
    embedder = TripletEmbedder(text_features=["name"], categorical_features=["name"], **QUICK)
    with pytest.raises(ValueError, match="'name'"):
        embedder.fit(frame, np.repeat(np.arange(10), 4))


def test_every_embedder_has_the_parameter():
    for embedder in (TripletEmbedder(), PairEmbedder(), sk_dml.MetricEmbedder()):
        assert embedder.get_params()["text_features"] is None


def test_a_version_1_input_layer_averages_the_bucket_vectors():
    frame, _ = _frame()
    frame.loc[3, "name"] = None
    frame.loc[5, "x"] = np.nan
    schema, encoded = _learn(frame, ["name"])
    schema = dataclasses.replace(schema, version=1)  # a model fitted before TF-IDF
    torch.manual_seed(0)
    layer = TableInput.for_schema(schema)
    assert schema.text_embedding_dims == [32]  # "auto"
    with torch.no_grad():
        out = layer(torch.as_tensor(encoded)).numpy()
    bag = layer.text_embeddings[0].weight.detach().numpy()
    start = len(schema.numeric) + len(schema.categorical)
    expected = []
    for row in encoded[:, start:].astype(np.int64):
        used = row[row > 0]
        expected.append(bag[used].mean(0) if len(used) else np.zeros(bag.shape[1], np.float32))
    n_before = layer.out_features - 32
    np.testing.assert_allclose(out[:, n_before:], np.array(expected), rtol=1e-5, atol=1e-6)
    assert (out[3, n_before:] == 0).all()  # missing text: zeros
    # Order: numbers, missing indicators, category embeddings, then text.
    assert n_before == 1 + 1 + schema.embedding_dims[0]
    assert out[5, 1] == 1.0 and out[4, 1] == 0.0
    # Untrained bucket vectors are torch's N(0, 1) draws (row 0, padding, is zero).
    assert abs(bag[1:].std() - 1) < 0.01 and (bag[0] == 0).all()


def test_before_training_a_typo_is_nearer_than_another_string():
    rng = np.random.default_rng(0)
    n = 300
    words = [f"{_word(rng, 6, 12)} {_word(rng, 6, 12)}" for _ in range(2 * n)]
    originals, others = words[:n], words[n:]
    typos = []
    for word in originals:
        chars = list(word)
        position = rng.integers(len(chars))
        chars[position] = rng.choice([c for c in LETTERS if c != chars[position]])
        typos.append("".join(chars))
    frame = pd.DataFrame({"t": originals + typos + others})
    schema, encoded = _learn(frame, ["t"])
    torch.manual_seed(0)
    embedder = TripletEmbedder(text_features=["t"], max_epochs=1, learning_rate=1e-12,
                               samples_per_class=3, batch_size=96, random_state=0,
                               hidden_layer_sizes=(64,))  # fmt: skip
    Z = embedder.fit(frame, np.arange(3 * n) % n).transform(frame)
    a, b, c = Z[:n], Z[n : 2 * n], Z[2 * n :]
    near = np.linalg.norm(a - b, axis=1) < np.linalg.norm(a - c, axis=1)
    assert near.mean() > 0.95, near.mean()
    # The input layer alone too: the n-gram average itself.
    with torch.no_grad():
        X = embedder.module_.inputs(torch.as_tensor(encoded)).numpy()
    a, b, c = X[:n], X[n : 2 * n], X[2 * n :]
    assert (np.linalg.norm(a - b, axis=1) < np.linalg.norm(a - c, axis=1)).mean() > 0.95


def test_missing_text_embeds_to_finite_rows():
    frame, y = _frame()
    frame.loc[::3, "name"] = None
    embedder = TripletEmbedder(text_features=["name"], random_state=0, **QUICK).fit(frame, y)
    Z = embedder.transform(frame)
    assert Z.shape == (len(frame), 8) and np.isfinite(Z).all()
    empty = frame.assign(name=[None] * len(frame))
    assert np.isfinite(embedder.transform(empty)).all()


def test_save_load_and_pickle_give_identical_embeddings(tmp_path):
    frame, y = _frame()
    embedder = TripletEmbedder(text_features=["name"], random_state=0, **QUICK).fit(frame, y)
    Z = embedder.transform(frame)
    sk_dml.save(embedder, tmp_path / "m.skdml")
    loaded = sk_dml.load(tmp_path / "m.skdml")
    assert loaded.schema_ == embedder.schema_
    assert np.array_equal(loaded.transform(frame), Z)
    unpickled = pickle.loads(pickle.dumps(embedder))
    assert np.array_equal(unpickled.transform(frame), Z)
    # Columns in another order are matched by name.
    assert np.array_equal(loaded.transform(frame[["name", "kind", "x"]]), Z)


def test_a_schema_from_before_text_columns_reads_as_one_without_them():
    frame, _ = _frame()
    schema, encoded = _learn(frame.drop(columns="name"), None)
    old = {
        k: v
        for k, v in schema.to_dict().items()
        if "text" not in k and k not in ("max_ngrams", "version", "reasons")
    }
    as_then = dataclasses.replace(schema, version=1, reasons=[])
    assert TableSchema.from_dict(old) == as_then  # a model file of an earlier version
    pickled = pickle.loads(pickle.dumps(schema))
    state = {k: v for k, v in pickled.__dict__.items() if k in old}
    revived = TableSchema.__new__(TableSchema)
    revived.__setstate__(state)  # a pickle of an earlier version
    assert revived == as_then and revived.text == [] and revived.n_encoded == encoded.shape[1]


def test_one_lazy_adam_step_moves_only_the_used_buckets():
    frame = pd.DataFrame({"t": ["alpha", "beta", None, "gamma delta"]})
    schema, encoded = _learn(frame, ["t"])
    layer = TableInput(0, (), (), (), schema.max_ngrams, [8], schema.text_n_buckets)
    (weight,) = sparse_parameters(layer)
    assert weight is layer.text_embeddings[0].weight
    before = weight.detach().clone()
    optimizer = LazyAdam([weight], lr=0.1)
    layer(torch.as_tensor(encoded[:2])).pow(2).sum().backward()  # rows "alpha", "beta"
    assert weight.grad.is_sparse
    optimizer.step()
    moved = set(torch.nonzero((weight.detach() != before).any(1)).ravel().tolist())
    used = set(encoded[:2].astype(np.int64).ravel().tolist()) - {0}
    assert moved == used
    set_sparse_gradients(layer, False)  # dense for torch.distributed
    assert not layer.text_embeddings[0].sparse and sparse_parameters(layer) == []


def _lazy_adam_run(make_optimizer, table, batches, *, switch_at=None):
    """Train a copy of ``table`` (an embedding table or bag) on ``batches`` of ids with a
    loss that weighs its rows unevenly; after ``switch_at`` steps, continue with a fresh
    optimizer of the other kind loaded from the first one's state_dict."""
    table = copy.deepcopy(table)
    optimizer = make_optimizer([table.weight])
    for step, ids in enumerate(batches):
        if step == switch_at:
            other = torch.optim.SparseAdam if isinstance(optimizer, LazyAdam) else LazyAdam
            state = optimizer.state_dict()
            optimizer = other([table.weight], lr=0.05)
            optimizer.load_state_dict(state)
        optimizer.zero_grad(set_to_none=True)
        out = table(ids)
        (out * torch.linspace(-1, 2, out.shape[-1])).sin().sum().backward()
        optimizer.step()
    return table.weight.detach()


@pytest.mark.parametrize("kind", ["embedding", "bag"])
def test_lazy_adam_is_torchs_sparse_adam(kind):
    """LazyAdam against torch.optim.SparseAdam (the oracle): the same weights after steps
    whose batches repeat rows, skip rows and use padding, and the same after switching from
    one optimizer to the other through state_dict (a checkpoint of either loads in both)."""
    torch.manual_seed(0)
    if kind == "bag":
        table = torch.nn.EmbeddingBag(50, 6, mode="sum", padding_idx=0, sparse=True)
    else:
        table = torch.nn.Embedding(50, 6, sparse=True)
    generator = torch.Generator().manual_seed(1)
    # Zipf-like ids: many repeats within a batch; rows 40+ never used.
    batches = [(torch.rand(16, 7, generator=generator) ** 3 * 40).long() for _ in range(12)]
    sparse_adam = functools.partial(torch.optim.SparseAdam, lr=0.05)
    lazy_adam = functools.partial(LazyAdam, lr=0.05)
    expected = _lazy_adam_run(sparse_adam, table, batches)
    assert not torch.equal(expected, table.weight)  # it trained
    torch.testing.assert_close(_lazy_adam_run(lazy_adam, table, batches), expected)
    for first in (sparse_adam, lazy_adam):
        torch.testing.assert_close(_lazy_adam_run(first, table, batches, switch_at=6), expected)
    torch.testing.assert_close(_lazy_adam_run(lazy_adam, table, batches)[40:], table.weight[40:])


def test_pair_and_triplet_embedders_learn_from_a_text_column():
    frame, y = _frame()
    triplet = TripletEmbedder(text_features=["name"], random_state=0, **QUICK).fit(frame, y)
    assert triplet.schema_.text == [1]
    assert np.isfinite(triplet.loss_curve_).all()
    i, j = np.triu_indices(len(frame), 1)
    alike = y[i] == y[j]
    pairs = np.column_stack([i, j])
    pairs = np.concatenate([pairs[alike], pairs[~alike][::20]])
    labels = np.concatenate([np.ones(alike.sum()), np.zeros(len(pairs) - alike.sum())])
    pair = PairEmbedder(preprocessor=frame, text_features=["name"], random_state=0, **QUICK)
    pair.fit(pairs, labels)
    assert pair.schema_.text == [1]
    Z = pair.transform(frame)
    assert Z.shape == (len(frame), 8) and np.isfinite(Z).all()
    assert np.isfinite(pair.decision_function(pairs[:5])).all()
