"""Saving and loading fitted embedders without executing code from the file.

A model file is one safetensors file: the network's weights as tensors, and everything else
(the estimator's class and parameters, a loss object as its class's name and parameters, the
fitted attributes the estimator reports, a format version and any extra data the caller adds)
as JSON in the file's metadata. Loading parses JSON and copies tensors;
nothing in the file can run. ``pickle``/``joblib`` keep working as scikit-learn's convention,
but only for files you trust: unpickling can run arbitrary code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from . import tuple_embedders  # noqa: F401  (registers the tuple embedders in ESTIMATORS)
from .criteria import Loss, get_loss_class
from .embedders import ESTIMATORS

__all__ = ["FORMAT_VERSION", "load", "read_metadata", "save"]

FORMAT_NAME = "sk_dml.embedder"
# Version 1 is still the format: a loss object (MetricEmbedder's ``loss``) is a parameter like
# any other, stored as {"loss": NAME, "params": {...}}, and every file of sk_dml 0.1.0 reads.
FORMAT_VERSION = 1


def _json_params(estimator) -> dict:
    params = estimator.get_params(deep=False)
    if params["module"] is not None:
        raise ValueError(
            "sk_dml.save stores the built-in MLP only; an estimator with a custom `module` "
            "cannot be rebuilt from data. Save its module's state_dict yourself, or use "
            "pickle/joblib for files you trust."
        )
    if not (params["random_state"] is None or isinstance(params["random_state"], int)):
        params["random_state"] = None  # a RandomState instance is not data; it only seeds fit
    if "preprocessor" in params:  # a pair or triplet embedder's table: data, not a setting
        params["preprocessor"] = None
    params["device"] = str(params["device"])
    if params["checkpoint_dir"] is not None:
        params["checkpoint_dir"] = os.fspath(params["checkpoint_dir"])
    params["hidden_layer_sizes"] = [int(h) for h in params["hidden_layer_sizes"]]
    if isinstance(params.get("loss"), Loss):
        loss = params["loss"]
        params["loss"] = {"loss": loss.name, "params": loss.get_params()}
    return params


def _estimator_from_params(name: str, params: dict, path):
    """The estimator class ``name`` with the parameters read from a file."""
    params = dict(params)
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    if isinstance(params.get("loss"), dict):
        loss = params["loss"]
        try:
            params["loss"] = get_loss_class(loss["loss"])(**loss["params"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{str(path)!r} describes no valid loss ({error}).") from None
    try:
        return ESTIMATORS[name](**params)
    except TypeError as error:
        raise ValueError(f"{str(path)!r} has parameters {name} does not take ({error}).") from None


def save(estimator, path, *, extra: dict | None = None) -> None:
    """Write a fitted embedder to ``path`` (a safetensors file; any extension).

    Parameters
    ----------
    estimator : a fitted sk_dml embedder with the built-in MLP
    path : str or Path
    extra : dict, optional
        JSON-serialisable data stored alongside (the CLI keeps its target and key columns
        there); read it back with :func:`~sk_dml.persistence.read_metadata`.

    The file is written to a temporary name and renamed, so an interrupted save never leaves
    a truncated model behind.
    """
    name = type(estimator).__name__
    if ESTIMATORS.get(name) is not type(estimator):
        raise TypeError(f"sk_dml.save stores sk_dml embedders, got {name}.")
    if not hasattr(estimator, "module_"):
        raise ValueError(f"This {name} instance is not fitted yet; fit it before saving.")
    fitted, tensors = estimator._get_fitted_state()
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "estimator": name,
        "params": json.dumps(_json_params(estimator)),
        "fitted": json.dumps(fitted),
        "extra": json.dumps(extra if extra is not None else {}),
    }
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as error:  # the header (JSON) holds at most 100 MB
            raise ValueError(
                f"sk_dml.save cannot store this model ({error}): its table schema is too large "
                f"for a model file's header (at most 100 MB of JSON; the largest part is "
                f"{_largest_vocabulary(estimator.schema_)}); use pickle/joblib, or give that "
                "column a larger min_frequency or fewer levels."
            ) from None
        os.chmod(tmp, 0o644)  # safetensors writes 0600; a model file is usually shared
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _largest_vocabulary(schema) -> str:
    """The column whose levels (categorical) or n-gram document frequencies (text) take the
    most JSON in a model file's header, and how much."""
    sizes = {}
    for j, position in enumerate(schema.categorical):
        sizes[position] = len(json.dumps(schema.levels[j]))
    for j, position in enumerate(schema.text):
        if schema.text_buckets:
            tables = [schema.text_buckets[j], schema.text_document_counts[j]]
            sizes[position] = len(json.dumps(tables))
    if not sizes:
        return "not a column's vocabulary"
    position = max(sizes, key=sizes.get)
    return (
        f"the {schema.kind(position)} column {schema.column_name(position)}, "
        f"{sizes[position] / 1e6:.1f} MB"
    )


def read_metadata(path) -> dict:
    """The parsed JSON metadata of a model file: format, estimator, params, fitted, extra.

    Raises ValueError when ``path`` is not an sk_dml model file of a version this sk_dml reads.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {str(path)!r}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{str(path)!r} is not an sk_dml model file ({error}).") from None
    if raw.get("format") != FORMAT_NAME:
        raise ValueError(f"{str(path)!r} is not an sk_dml model file (no sk_dml header).")
    if raw.get("format_version") != str(FORMAT_VERSION):
        raise ValueError(
            f"{str(path)!r} has model format version {raw.get('format_version')!r}; this "
            f"sk_dml reads version {FORMAT_VERSION}. Save the model again with a matching version."
        )
    try:
        parsed = {key: json.loads(raw[key]) for key in ("params", "fitted", "extra")}
    except (KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"{str(path)!r} has a damaged sk_dml header ({error}).") from None
    if raw.get("estimator") not in ESTIMATORS:
        raise ValueError(f"{str(path)!r} names an unknown estimator {raw.get('estimator')!r}.")
    return {"format_version": FORMAT_VERSION, "estimator": raw["estimator"], **parsed}


def _stored_shapes(path) -> dict[str, tuple[int, ...]]:
    """Each tensor's name and shape, from the file's header (no tensor is read)."""
    with safe_open(str(path), framework="pt") as f:
        return {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}


def _skeleton(estimator, fitted: dict, n_tensors: int, path) -> torch.nn.Module:
    """The network the metadata describes, on torch's "meta" device (shapes, no memory).

    A hidden layer has at least one tensor, so metadata asking for more layers than the file
    has tensors is refused before anything is built.
    """
    try:
        estimator._validate_params()
        if len(estimator.hidden_layer_sizes) >= n_tensors:
            raise ValueError(
                f"hidden_layer_sizes has {len(estimator.hidden_layer_sizes)} layers but the file "
                f"holds {n_tensors} tensors"
            )
        n_features = fitted.get("n_features_in_")
        if not (isinstance(n_features, int) and n_features >= 1):
            raise ValueError(f"n_features_in_={n_features!r} is not a positive integer")
        with torch.device("meta"):
            return estimator._module_for(fitted)
    except (TypeError, ValueError, RuntimeError, KeyError) as error:
        raise ValueError(
            f"{str(path)!r}: the metadata describes no valid network ({error})."
        ) from None


def _check_shapes(expected: dict, stored: dict, path) -> None:
    """Refuse a file whose tensors are not exactly the network's (names and shapes)."""
    problems = [f"missing {name}" for name in sorted(expected.keys() - stored.keys())]
    problems += [f"unexpected {name}" for name in sorted(stored.keys() - expected.keys())]
    problems += [
        f"{name} has shape {stored[name]}, the metadata implies {expected[name]}"
        for name in sorted(expected.keys() & stored.keys())
        if stored[name] != expected[name]
    ]
    if problems:
        shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
        raise ValueError(
            f"{str(path)!r}: the weights do not fit the model its metadata describes ({shown})."
        )


def load(path):
    """Read an embedder written by :func:`save`; its network is placed on the CPU.

    Only JSON and tensors are read: no code from the file is executed, so a model file from an
    untrusted source cannot run commands. A model trained on CUDA loads on a CPU-only machine.
    The metadata is checked against the tensors' shapes in the file's header before anything
    is built, and the network is made of the file's own tensors, so loading costs about the
    file's size, whatever the metadata asks for.
    """
    meta = read_metadata(path)
    estimator = _estimator_from_params(meta["estimator"], meta["params"], path)
    fitted = meta["fitted"]
    stored = _stored_shapes(path)
    module = _skeleton(estimator, fitted, len(stored), path)
    expected = module.state_dict()
    _check_shapes({k: tuple(v.shape) for k, v in expected.items()}, stored, path)
    tensors = load_file(str(path), device="cpu")
    for name, tensor in tensors.items():
        if tensor.dtype != expected[name].dtype:
            raise ValueError(
                f"{str(path)!r}: {name} is {tensor.dtype}, the model's weights are "
                f"{expected[name].dtype}."
            )
    module.load_state_dict(tensors, assign=True)  # the file's tensors become the weights
    estimator._set_fitted_state(fitted, module)
    return estimator
