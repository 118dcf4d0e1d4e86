"""Safe persistence: weights as safetensors, everything else as JSON, no code executed."""

import io
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import EMBEDDERS, LOSSES
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from sklearn.datasets import load_wine

import sk_dml
from sk_dml import ProxyAnchorEmbedder, TripletEmbedder

QUICK = dict(max_epochs=3, hidden_layer_sizes=(16, 8), n_components=4, batch_size=32)


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True, as_frame=True)
    return (X - X.mean()) / X.std(), y


@pytest.mark.parametrize("cls", EMBEDDERS, ids=LOSSES)
def test_round_trip_gives_the_same_model(cls, wine, tmp_path):
    X, y = wine
    emb = cls(random_state=0, dropout=0.1, **QUICK).fit(X, y)
    sk_dml.save(emb, tmp_path / "model.skdml", extra={"note": "hello"})
    loaded = sk_dml.load(tmp_path / "model.skdml")
    assert type(loaded) is type(emb)
    params, expected = loaded.get_params(), emb.get_params()  # deep: a loss's own ones too
    if "loss" in expected:  # a loss object: the same class (its parameters are compared below)
        assert type(params.pop("loss")) is type(expected.pop("loss"))
    assert params == expected
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


# ----------------------------------------------------------------- crafted and damaged files
def _edit(path, *, params=None, fitted=None, tensors=None):
    """Rewrite a model file with some parameters, fitted attributes or tensors changed (a
    dict of new values, or a function of the old ones)."""
    meta = sk_dml.persistence.read_metadata(path)
    with safe_open(str(path), framework="pt") as f:
        raw = dict(f.metadata())
    raw["params"] = json.dumps({**meta["params"], **(params or {})})
    fitted = fitted if callable(fitted) else (lambda f, given=fitted or {}: {**f, **given})
    raw["fitted"] = json.dumps(fitted(meta["fitted"]))
    weights = load_file(str(path))
    save_file(tensors(weights) if tensors else weights, str(path), metadata=raw)


def _huge_category(schema: dict) -> dict:
    """The schema with its first column made categorical with a million levels."""
    numeric = [p for p in schema["numeric"] if p != 0]
    levels = [[str(i) for i in range(10**6)]]
    return {**schema, "numeric": numeric, "categorical": [0], "levels": levels,
            "embedding_dims": [32]}  # fmt: skip


def _without(name):
    return lambda weights: {k: v for k, v in weights.items() if k != name}


CRAFTED = [
    (
        "huge hidden layer",
        dict(params={"hidden_layer_sizes": [20_000_000]}),
        "body.0.weight has shape",
    ),
    ("a million layers", dict(params={"hidden_layer_sizes": [4] * 1_000_000}), "1000000 layers"),
    ("negative width", dict(params={"hidden_layer_sizes": [-3, 8]}), "no valid network"),
    ("huge n_components", dict(params={"n_components": 10**12}), "has shape"),
    (
        "a schema with a huge categorical column",
        dict(fitted=lambda f: {**f, "schema_": _huge_category(f["schema_"])}),
        "missing inputs.embeddings.0.weight",
    ),
    (
        "an inconsistent schema",
        dict(fitted=lambda f: {**f, "schema_": {**f["schema_"], "numeric": [0]}}),
        "no valid network",
    ),
    ("n_features_in_ not a number", dict(fitted={"n_features_in_": "13"}), "no valid network"),
    ("missing tensor", dict(tensors=_without("body.2.bias")), "missing body.2.bias"),
    (
        "extra tensor",
        dict(tensors=lambda w: {**w, "9.weight": torch.zeros(2, 2)}),
        "unexpected 9.weight",
    ),
    (
        "float64 tensors",
        dict(tensors=lambda w: {k: v.double() for k, v in w.items()}),
        "is torch.float64",
    ),
]


@pytest.mark.parametrize("case,edit,message", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_inconsistent_files_are_refused_before_anything_is_built(
    wine, tmp_path, case, edit, message
):
    X, y = wine
    path = tmp_path / "m.skdml"
    # A plain MLP: the tensor names above are its layers' (the residual network's are
    # checked by the next test).
    sk_dml.save(TripletEmbedder(random_state=0, residual=False, **QUICK).fit(X, y), path)
    _edit(path, **edit)
    with pytest.raises(ValueError, match=message):
        sk_dml.load(path)


def test_residual_network_files_are_checked_too(wine, tmp_path):
    X, y = wine
    path = tmp_path / "m.skdml"
    sk_dml.save(ProxyAnchorEmbedder(random_state=0, **QUICK).fit(X, y), path)
    with safe_open(str(path), framework="pt") as f:
        assert {"body.linear.weight", "body.mlp.0.weight"} <= set(f.keys())
    _edit(path, tensors=_without("body.linear.weight"))
    with pytest.raises(ValueError, match="missing body.linear.weight"):
        sk_dml.load(path)
    sk_dml.save(ProxyAnchorEmbedder(random_state=0, **QUICK).fit(X, y), path)
    _edit(path, params={"hidden_layer_sizes": [20_000_000, 8]})
    with pytest.raises(ValueError, match="body.mlp.0.weight has shape"):
        sk_dml.load(path)


_PEAK_OF_LOAD = """
import resource, sys
import sk_dml
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    sk_dml.load(sys.argv[1])
    outcome = "loaded"
except ValueError as error:
    outcome = f"ValueError: {error}"
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(after - before)  # KiB on Linux
print(outcome)
"""


def _peak_growth_of_load(path) -> tuple[int, str]:
    """Bytes by which loading ``path`` in a fresh process raised its peak memory; the outcome."""
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_OF_LOAD, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    growth, outcome = result.stdout.strip().split("\n", 1)
    return int(growth) * 1024, outcome


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_loading_costs_about_the_files_size(wine, tmp_path):
    X, y = wine
    # A file whose metadata asks for a 20-million-wide layer (about 1 GB of weights) is refused
    # without the loading process growing.
    small = tmp_path / "small.skdml"
    sk_dml.save(TripletEmbedder(random_state=0, **QUICK).fit(X, y), small)
    _edit(small, params={"hidden_layer_sizes": [20_000_000]})
    growth, outcome = _peak_growth_of_load(small)
    assert outcome.startswith("ValueError") and "do not fit" in outcome
    assert growth < 64 * 2**20, f"the refused file cost {growth / 2**20:.0f} MiB"
    # A genuine model of about 64 MiB loads for about its own size.
    big = tmp_path / "big.skdml"
    params = {**QUICK, "hidden_layer_sizes": (4096, 4096), "max_epochs": 1}
    sk_dml.save(TripletEmbedder(random_state=0, **params).fit(X, y), big)
    size = big.stat().st_size
    assert size > 60 * 2**20
    growth, outcome = _peak_growth_of_load(big)
    assert outcome == "loaded"
    assert growth < 1.5 * size + 32 * 2**20, f"{growth / 2**20:.0f} MiB for {size / 2**20:.0f}"


class _RecordingUnpickler(pickle.Unpickler):
    """Unpickles and records every (module, name) the pickle looks up."""

    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data))
        self.looked_up: set[tuple[str, str]] = set()

    def find_class(self, module, name):
        self.looked_up.add((module, name))
        return super().find_class(module, name)


def _private_classes_in(model) -> list[tuple[str, str]]:
    unpickler = _RecordingUnpickler(pickle.dumps(model))
    unpickler.load()
    return sorted(
        (module, name)
        for module, name in unpickler.looked_up
        if module.startswith("sk_dml") and any(part.startswith("_") for part in module.split("."))
    )


@pytest.mark.parametrize("cls", EMBEDDERS, ids=LOSSES)
def test_a_pickled_model_names_no_class_of_a_private_module(cls, wine):
    """Pickles hold public classes only: the training wrappers (``sk_dml._objectives``) and
    the engine stay behind (the trainer is not pickled), so moving them breaks no pickle."""
    X, y = wine
    emb = cls(random_state=0, max_epochs=1, hidden_layer_sizes=(8,), n_components=2).fit(X, y)
    emb.partial_fit(X, y)  # a model whose trainer lives on
    assert emb._trainer is not None
    assert _private_classes_in(emb) == []


def test_a_pickled_tuple_model_names_no_class_of_a_private_module(wine):
    X = wine[0].to_numpy(np.float32)
    quick = dict(random_state=0, max_epochs=1, hidden_layer_sizes=(8,), n_components=2)
    pairs, alike = np.array([[0, 1], [0, 100], [50, 60], [10, 170]] * 4), np.array([1, 0] * 8)
    triplets = np.array([[0, 1, 100], [60, 70, 5], [130, 140, 20]] * 4)
    models = [
        sk_dml.PairEmbedder(preprocessor=X, **quick).fit(pairs, alike),
        sk_dml.TripletConstraintEmbedder(preprocessor=X, **quick).fit(triplets),
    ]
    for model in models:
        assert type(model._trainer.objective).__module__ == "sk_dml._objectives"
        assert _private_classes_in(model) == []


# ------------------------------------------------- pipelines and the tuple embedders' table
@pytest.fixture(scope="module")
def mixed_wine(wine):
    X, y = wine
    X = X.assign(kind=np.where(X.alcohol > 0, "strong", "light"))  # a string column
    return X, np.array(["barolo", "grignolino", "barbera"])[y]


def test_a_pipeline_round_trips_as_data(mixed_wine, tmp_path):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline

    X, y = mixed_wine
    model = make_pipeline(TripletEmbedder(random_state=0, **QUICK), KNeighborsClassifier())
    model.fit(X, y)
    sk_dml.save(model, tmp_path / "pipe.skdml", extra={"note": "hello"})
    loaded = sk_dml.load(tmp_path / "pipe.skdml")
    assert [type(step) for step in loaded] == [type(step) for step in model]
    assert loaded.get_params(deep=False).keys() == model.get_params(deep=False).keys()
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded[0].transform(X), model[0].transform(X))
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    # The file holds JSON and tensors only: a JSON header that names the classes.
    with safe_open(str(tmp_path / "pipe.skdml"), framework="pt") as f:
        header = f.metadata()
    assert header["format"] == "sk_dml.estimator" and json.loads(header["extra"])["note"]
    assert "sklearn.neighbors._classification:KNeighborsClassifier" in header["tree"]
    with pytest.raises(ValueError, match="holds a scikit-learn estimator.*sk_dml.load reads it"):
        sk_dml.persistence.read_metadata(tmp_path / "pipe.skdml")


def test_a_grid_searchs_best_estimator_round_trips(wine, tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = wine
    pipe = make_pipeline(StandardScaler(), TripletEmbedder(random_state=0, **QUICK))
    pipe.steps.append(("logisticregression", LogisticRegression()))
    grid = GridSearchCV(pipe, {"logisticregression__C": [0.1, 10.0]}, cv=2).fit(X, y)
    sk_dml.save(grid.best_estimator_, tmp_path / "best.skdml")
    loaded = sk_dml.load(tmp_path / "best.skdml")
    np.testing.assert_array_equal(loaded.predict_proba(X), grid.predict_proba(X))
    assert loaded[-1].C == grid.best_params_["logisticregression__C"]


def test_save_refuses_a_pipeline_part_that_is_code(wine, tmp_path):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = wine
    logged = make_pipeline(FunctionTransformer(np.log1p), TripletEmbedder(**QUICK)).fit(X + 5, y)
    with pytest.raises(TypeError, match=r"cannot store Pipeline.*func: a ufunc.*pickle"):
        sk_dml.save(logged, tmp_path / "m")
    emb = TripletEmbedder(**QUICK).fit(X, y)
    by_metric = KNeighborsClassifier(metric=emb.get_metric(), algorithm="brute").fit(X, y)
    with pytest.raises(TypeError, match=r"metric: a LearnedMetric is neither data"):
        sk_dml.save(make_pipeline(by_metric), tmp_path / "m")
    with pytest.raises(TypeError, match="scikit-learn estimators that hold them"):
        sk_dml.save(pd.DataFrame(), tmp_path / "m")
    assert not any(tmp_path.iterdir())


def test_an_estimator_file_names_only_scikit_learns_classes(wine, tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = wine
    sk_dml.save(make_pipeline(StandardScaler()).fit(X), tmp_path / "p.skdml")
    with safe_open(str(tmp_path / "p.skdml"), framework="pt") as f:
        metadata = dict(f.metadata())
    marker = tmp_path / "pwned"
    for name in ("os:system", "subprocess:Popen", "builtins:eval"):
        edited = metadata["tree"].replace("sklearn.preprocessing._data:StandardScaler", name)
        save_file(load_file(str(tmp_path / "p.skdml")), str(tmp_path / "e.skdml"),
                  metadata={**metadata, "tree": edited})  # fmt: skip
        with pytest.raises(ValueError, match=f"describes no valid estimator.*{name}"):
            sk_dml.load(tmp_path / "e.skdml")
    assert not marker.exists()


def test_a_loaded_pair_embedder_asks_for_its_table(tmp_path):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X[:400]
    pairs = np.random.default_rng(0).integers(0, len(X), (600, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    is_match = (y[pairs[:, 0]] == y[pairs[:, 1]]).astype(int)
    emb = sk_dml.PairEmbedder(preprocessor=X, random_state=0, **QUICK).fit(pairs, is_match)
    sk_dml.save(emb, tmp_path / "pairs.skdml")
    # A fresh process: `import sk_dml` alone registers the tuple embedders for load.
    script = f"import sk_dml; print(type(sk_dml.load({str(tmp_path / 'pairs.skdml')!r})).__name__)"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.stdout.strip() == "PairEmbedder", run.stderr
    loaded = sk_dml.load(tmp_path / "pairs.skdml")
    assert loaded.preprocessor is None
    with pytest.raises(ValueError, match=r"set_params\(preprocessor=table\).*sk_dml.load"):
        loaded.predict(pairs[:5])
    np.testing.assert_array_equal(loaded.predict(X[pairs[:5]]), emb.predict(pairs[:5]))
    loaded.set_params(preprocessor=X)
    np.testing.assert_array_equal(loaded.predict(pairs), emb.predict(pairs))
    np.testing.assert_array_equal(loaded.decision_function(pairs), emb.decision_function(pairs))
