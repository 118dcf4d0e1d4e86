"""Safe persistence: weights as safetensors, everything else as JSON, no code executed."""

import json
import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import EMBEDDERS
from safetensors.torch import load_file, save_file
from sklearn.datasets import load_wine

import sk_dml
from sk_dml import TripletEmbedder

QUICK = dict(max_epochs=3, hidden_layer_sizes=(16, 8), n_components=4, batch_size=32)


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True, as_frame=True)
    return (X - X.mean()) / X.std(), y


@pytest.mark.parametrize("cls", EMBEDDERS)
def test_round_trip_gives_the_same_model(cls, wine, tmp_path):
    X, y = wine
    emb = cls(random_state=0, dropout=0.1, **QUICK).fit(X, y)
    sk_dml.save(emb, tmp_path / "model.skdml", extra={"note": "hello"})
    loaded = sk_dml.load(tmp_path / "model.skdml")
    assert type(loaded) is cls
    assert loaded.get_params() == emb.get_params()
    np.testing.assert_array_equal(loaded.transform(X), emb.transform(X))
    np.testing.assert_array_equal(loaded.feature_names_in_, X.columns)
    assert loaded.loss_curve_ == emb.loss_curve_ and loaded.n_iter_ == emb.n_iter_
    assert loaded.embedding_metric_ == emb.embedding_metric_
    assert sk_dml.persistence.read_metadata(tmp_path / "model.skdml")["extra"] == {"note": "hello"}
    # The loaded model keeps training (warm start) and scores like the original.
    assert loaded.score(X, y) == emb.score(X, y)
    loaded.set_params(warm_start=True).fit(X, y)
    assert loaded.n_iter_ > emb.n_iter_


def test_load_never_runs_code_from_the_file(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "model.skdml"
    evil.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ValueError, match="not an sk_dml model file"):
        sk_dml.load(evil)
    assert not marker.exists()
    # The same payload inside a torch-style checkpoint is refused the same way.
    torch.save({"weights": Payload()}, evil)
    with pytest.raises(ValueError, match="not an sk_dml model file"):
        sk_dml.load(evil)
    assert not marker.exists()


def _rewrite_metadata(path, **changes):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
    metadata.update(changes)
    save_file(load_file(str(path)), str(path), metadata=metadata)


def test_unknown_format_version_is_refused(wine, tmp_path):
    X, y = wine
    path = tmp_path / "m.skdml"
    sk_dml.save(TripletEmbedder(**QUICK).fit(X, y), path)
    _rewrite_metadata(path, format_version="99")
    with pytest.raises(ValueError, match="format version '99'.*reads version 1"):
        sk_dml.load(path)


def test_a_model_recorded_as_cuda_loads_on_the_cpu(wine, tmp_path):
    X, y = wine
    emb = TripletEmbedder(**QUICK).fit(X, y)
    path = tmp_path / "m.skdml"
    sk_dml.save(emb, path)
    fitted = sk_dml.persistence.read_metadata(path)["fitted"]
    _rewrite_metadata(path, fitted=json.dumps({**fitted, "device_": "cuda:0"}))
    loaded = sk_dml.load(path)
    assert loaded.device_ == torch.device("cuda:0")
    assert next(loaded.module_.parameters()).device.type == "cpu"
    np.testing.assert_array_equal(loaded.transform(X), emb.transform(X))


def test_save_refuses_what_it_cannot_store(wine, tmp_path):
    X, y = wine
    with pytest.raises(ValueError, match="not fitted"):
        sk_dml.save(TripletEmbedder(), tmp_path / "m")
    custom = TripletEmbedder(module=torch.nn.Linear(13, 3), **QUICK).fit(X, y)
    with pytest.raises(ValueError, match="custom `module`"):
        sk_dml.save(custom, tmp_path / "m")
    with pytest.raises(TypeError, match="sk_dml embedders"):
        sk_dml.save(pd.DataFrame(), tmp_path / "m")
    with pytest.raises(FileNotFoundError):
        sk_dml.load(tmp_path / "missing.skdml")
    assert not any(tmp_path.iterdir())  # nothing half-written was left behind
