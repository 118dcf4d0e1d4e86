"""Saving and loading fitted embedders, and scikit-learn pipelines of them, without executing
code from the file.

A model file is one safetensors file: the network's weights as tensors, and everything else
(the estimator's class and parameters, a loss object as its class's name and parameters, the
fitted attributes the estimator reports, a format version and any extra data the caller adds)
as JSON in the file's metadata. Loading parses JSON and copies tensors;
nothing in the file can run. ``pickle``/``joblib`` keep working as scikit-learn's convention,
but only for files you trust: unpickling can run arbitrary code.

A scikit-learn estimator that holds embedders (a ``Pipeline``, ``GridSearchCV``'s
``best_estimator_``) is stored as data too, in the second format of the same kind of file: each
scikit-learn estimator as its class's name (in ``sklearn``'s own modules only) and its state
(``__getstate__``: parameters and fitted attributes), numeric arrays as tensors, other arrays,
numbers, strings, lists and dicts as JSON, each embedder as in its own file. What is none of
these (a function, a callable metric, a class outside scikit-learn) is refused at ``save``.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from . import tuple_embedders  # noqa: F401  (registers the tuple embedders in ESTIMATORS)
from .criteria import Loss, get_loss_class
from .embedders import ESTIMATORS
from .linking import MODEL_FILE_KEY, Linker, linker_from_state, linker_state

__all__ = ["FORMAT_VERSION", "load", "read_metadata", "save"]

FORMAT_NAME = "sk_dml.embedder"
# Version 1 is still the format: a loss object (MetricEmbedder's ``loss``) is a parameter like
# any other, stored as {"loss": NAME, "params": {...}}, and every file of sk_dml 0.1.0 reads.
FORMAT_VERSION = 1
# Files of a scikit-learn estimator holding embedders (a Pipeline), and their version.
ESTIMATOR_FORMAT = "sk_dml.estimator"
ESTIMATOR_FORMAT_VERSION = 1
# The NumPy dtypes stored as tensors; arrays of other dtypes (strings, objects) go in the JSON.
_TENSOR_DTYPES = {np.dtype(t) for t in ("bool", "uint8", "int8", "int16", "int32", "int64")}
_TENSOR_DTYPES |= {np.dtype(t) for t in ("float16", "float32", "float64")}


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


def _is_embedder(estimator) -> bool:
    return ESTIMATORS.get(type(estimator).__name__) is type(estimator)


def _embedder_state(estimator) -> tuple[dict, dict]:
    """A fitted embedder's JSON entries (class, parameters, fitted attributes) and tensors."""
    name = type(estimator).__name__
    if not hasattr(estimator, "module_"):
        raise ValueError(f"This {name} instance is not fitted yet; fit it before saving.")
    fitted, tensors = estimator._get_fitted_state()
    return {"estimator": name, "params": _json_params(estimator), "fitted": fitted}, tensors


def save(estimator, path, *, extra: dict | None = None) -> None:
    """Write a fitted embedder, a fitted :class:`~sk_dml.linking.Linker`, or a fitted
    scikit-learn estimator that holds embedders (a ``Pipeline``, ``GridSearchCV``'s
    ``best_estimator_``), to ``path`` (a safetensors file; any extension).

    Parameters
    ----------
    estimator : a fitted sk_dml embedder with the built-in MLP, a fitted Linker (its
        embedder's file, holding what ``match`` needs besides; ``calibration_links_`` and the
        embedder's ``preprocessor`` are not kept), or a fitted estimator of scikit-learn (a
        ``Pipeline``) whose parts are scikit-learn estimators and embedders
    path : str or Path
    extra : dict, optional
        JSON-serialisable data stored alongside (the CLI keeps its target and key columns
        there); read it back with :func:`~sk_dml.persistence.read_metadata`.

    The file is written to a temporary name and renamed, so an interrupted save never leaves
    a truncated model behind. What is not data (a function, a callable metric, a class from
    outside scikit-learn) is refused with its place in the estimator; pickle/joblib store it,
    for files you trust.
    """
    if isinstance(estimator, Linker):  # its embedder's file, with what match needs
        state = {**(extra or {}), MODEL_FILE_KEY: linker_state(estimator)}
        return save(estimator.embedder_, path, extra=state)
    if not _is_embedder(estimator):
        _save_estimator(estimator, path, extra)
        return
    entries, tensors = _embedder_state(estimator)
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "estimator": entries["estimator"],
        "params": json.dumps(entries["params"]),
        "fitted": json.dumps(entries["fitted"]),
        "extra": json.dumps(extra if extra is not None else {}),
    }
    try:
        _write(path, tensors, metadata)
    except SafetensorError as error:  # the header (JSON) holds at most 100 MB
        raise ValueError(
            f"sk_dml.save cannot store this model ({error}): its table schema is too large "
            f"for a model file's header (at most 100 MB of JSON; the largest part is "
            f"{_largest_vocabulary(estimator.schema_)}); use pickle/joblib, or give that "
            "column a larger min_frequency or fewer levels."
        ) from None


def _write(path, tensors: dict, metadata: dict) -> None:
    """Write the safetensors file under a temporary name, then rename it onto ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
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


def _raw_metadata(path) -> dict:
    """The metadata of the safetensors file at ``path``, refused when it is none."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {str(path)!r}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{str(path)!r} is not an sk_dml model file ({error}).") from None


def read_metadata(path) -> dict:
    """The parsed JSON metadata of a model file: format, estimator, params, fitted, extra.

    Raises ValueError when ``path`` is not an sk_dml model file of a version this sk_dml reads
    (a file of a scikit-learn estimator holding embedders included: :func:`load` reads it).
    """
    raw = _raw_metadata(path)
    if raw.get("format") == ESTIMATOR_FORMAT:
        raise ValueError(
            f"{str(path)!r} holds a scikit-learn estimator with embedders "
            f"({raw.get('estimator')}), not an embedder; sk_dml.load reads it."
        )
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
    """Read an embedder, a Linker, or an estimator holding embedders (a ``Pipeline``),
    written by :func:`save`; networks are placed on the CPU.

    Only JSON and tensors are read: no code from the file is executed, so a model file from an
    untrusted source cannot run commands (an estimator's class is looked up by name in
    scikit-learn's modules only). A model trained on CUDA loads on a CPU-only machine.
    The metadata is checked against the tensors' shapes in the file's header before anything
    is built, and the network is made of the file's own tensors, so loading costs about the
    file's size, whatever the metadata asks for.
    """
    if _raw_metadata(path).get("format") == ESTIMATOR_FORMAT:
        return _load_estimator(path)
    meta = read_metadata(path)
    estimator = _embedder_from(meta, _stored_shapes(path), lambda: load_file(str(path)), path)
    extra = meta["extra"]
    if isinstance(extra, dict) and MODEL_FILE_KEY in extra:
        return linker_from_state(estimator, extra[MODEL_FILE_KEY])
    return estimator


def _embedder_from(meta: dict, stored: dict, read_tensors, path):
    """The embedder of a file's entries (``estimator``, ``params``, ``fitted``), its network
    made of the tensors ``read_tensors()`` gives once ``stored`` (their shapes) is checked."""
    if meta.get("estimator") not in ESTIMATORS:
        raise ValueError(f"{str(path)!r} names an unknown estimator {meta.get('estimator')!r}.")
    estimator = _estimator_from_params(meta["estimator"], meta["params"], path)
    fitted = meta["fitted"]
    module = _skeleton(estimator, fitted, len(stored), path)
    expected = module.state_dict()
    _check_shapes({k: tuple(v.shape) for k, v in expected.items()}, stored, path)
    tensors = read_tensors()
    for name, tensor in tensors.items():
        if tensor.dtype != expected[name].dtype:
            raise ValueError(
                f"{str(path)!r}: {name} is {tensor.dtype}, the model's weights are "
                f"{expected[name].dtype}."
            )
    module.load_state_dict(tensors, assign=True)  # the file's tensors become the weights
    estimator._set_fitted_state(fitted, module)
    return estimator


# ------------------------------------------- scikit-learn estimators that hold embedders
def _save_estimator(estimator, path, extra: dict | None) -> None:
    """Write a fitted scikit-learn estimator holding embedders in the estimator format."""
    name = type(estimator).__name__
    if not (isinstance(estimator, BaseEstimator) and _is_sklearn(type(estimator))):
        raise TypeError(
            f"sk_dml.save stores sk_dml embedders and scikit-learn estimators that hold them "
            f"(a Pipeline), got {name}."
        )
    check_is_fitted(estimator)
    tensors: dict = {}
    tree = _encode(estimator, tensors, name)
    metadata = {
        "format": ESTIMATOR_FORMAT,
        "format_version": str(ESTIMATOR_FORMAT_VERSION),
        "estimator": name,
        "tree": json.dumps(tree),
        "extra": json.dumps(extra if extra is not None else {}),
    }
    _write(path, tensors, metadata)


def _load_estimator(path):
    raw = _raw_metadata(path)
    if raw.get("format_version") != str(ESTIMATOR_FORMAT_VERSION):
        raise ValueError(
            f"{str(path)!r} has estimator format version {raw.get('format_version')!r}; this "
            f"sk_dml reads version {ESTIMATOR_FORMAT_VERSION}."
        )
    try:
        tree = json.loads(raw["tree"])
    except (KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"{str(path)!r} has a damaged sk_dml header ({error}).") from None
    shapes = _stored_shapes(path)
    tensors = load_file(str(path), device="cpu")
    try:
        return _decode(tree, _Stored(path, shapes, tensors))
    except (KeyError, TypeError, AttributeError, IndexError) as error:
        raise ValueError(f"{str(path)!r} describes no valid estimator ({error!r}).") from None


class _Stored:
    """A file's tensors and their shapes, as the decoder reads them."""

    def __init__(self, path, shapes: dict, tensors: dict):
        self.path, self.shapes, self.tensors = path, shapes, tensors

    def array(self, key: str) -> np.ndarray:
        return self.tensors[key].numpy().copy()

    def embedder(self, entries: dict):
        prefix = entries["prefix"]
        shapes = {k[len(prefix) :]: v for k, v in self.shapes.items() if k.startswith(prefix)}
        tensors = {k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)}
        return _embedder_from(entries, shapes, lambda: tensors, self.path)


def _is_sklearn(cls: type) -> bool:
    module = cls.__module__
    return module == "sklearn" or module.startswith("sklearn.")


def _sklearn_class(name: str) -> type:
    """The class ``module:Name`` of one of scikit-learn's own modules; nothing else."""
    module, _, qualname = name.partition(":")
    if not (module == "sklearn" or module.startswith("sklearn.")) or "." in qualname:
        raise TypeError(f"{name!r} is not a class of scikit-learn")
    cls = getattr(importlib.import_module(module), qualname)
    if not isinstance(cls, type):
        raise TypeError(f"{name!r} is not a class")
    return cls


def _encode(value, tensors: dict, where: str):
    """``value`` as JSON, its numeric arrays put in ``tensors``; ``where`` names it in errors."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, dict) and all(type(k) is str for k in value):
        return {"dict": {k: _encode(v, tensors, f"{where}.{k}") for k, v in value.items()}}
    if isinstance(value, np.generic) and not isinstance(value, np.object_):
        return {"scalar": value.dtype.str, "value": value.item()}
    if isinstance(value, np.dtype):
        return {"dtype": value.str}
    if isinstance(value, type) and issubclass(value, np.generic):
        return {"numpy_type": np.dtype(value).str}
    if type(value) is np.ndarray:
        if value.dtype.fields is not None and all(len(d) == 2 for d in value.dtype.descr):
            key = f"a{len(tensors)}"  # a structured array (a tree's nodes): its bytes
            tensors[key] = torch.from_numpy(np.ascontiguousarray(value).view(np.uint8).ravel())
            return {"array": key, "fields": value.dtype.descr, "shape": value.shape}
        if value.dtype in _TENSOR_DTYPES:
            key = f"a{len(tensors)}"
            tensors[key] = torch.from_numpy(np.ascontiguousarray(value))
            return {"array": key}
        items = [_encode(v, tensors, f"{where}[...]") for v in value.ravel().tolist()]
        return {"array": None, "dtype": value.dtype.str, "shape": value.shape, "items": items}
    if _is_embedder(value):
        entries, weights = _embedder_state(value)
        prefix = f"e{len(tensors)}."
        tensors.update({prefix + k: v for k, v in weights.items()})
        return {"embedder": {**entries, "prefix": prefix}}
    cls = type(value)
    name = f"{cls.__module__}:{cls.__qualname__}"
    if isinstance(value, BaseEstimator) and _is_sklearn(cls):
        return {"estimator": name, "state": _encode(value.__getstate__(), tensors, where)}
    reduced = value.__reduce__() if _is_sklearn(cls) else None
    if isinstance(reduced, tuple) and len(reduced) == 3 and reduced[1] == (cls,):
        if getattr(reduced[0], "__name__", "") == "newObj":  # scikit-learn's Cython objects
            return {"object": name, "state": _encode(reduced[2], tensors, where)}
    raise TypeError(
        f"sk_dml.save cannot store {where}: a {cls.__name__} is neither data nor a "
        "scikit-learn estimator or embedder; use pickle/joblib for files you trust."
    )


def _decode(value, stored: _Stored):
    """What :func:`_encode` wrote, rebuilt."""
    if not isinstance(value, (list, dict)):
        return value
    if isinstance(value, list):
        return [_decode(v, stored) for v in value]
    (tag, content), *_ = value.items()
    if tag == "tuple":
        return tuple(_decode(v, stored) for v in content)
    if tag == "dict":
        return {k: _decode(v, stored) for k, v in content.items()}
    if tag == "scalar":
        return np.dtype(content).type(value["value"])
    if tag == "dtype":
        return np.dtype(content)
    if tag == "numpy_type":
        return np.dtype(content).type
    if tag == "array":
        if "fields" in value:
            fields = np.dtype([tuple(field) for field in value["fields"]])
            return stored.array(content).view(fields).reshape(value["shape"])
        if content is not None:
            return stored.array(content)
        items = [_decode(v, stored) for v in value["items"]]
        array = np.empty(len(items), dtype=np.dtype(value["dtype"]))
        array[:] = items
        return array.reshape(value["shape"])
    if tag == "embedder":
        return stored.embedder(content)
    cls = _sklearn_class(content)
    state = _decode(value["state"], stored)
    if tag == "estimator" and issubclass(cls, BaseEstimator):
        estimator = cls.__new__(cls)
        estimator.__setstate__(state)
        return estimator
    if tag == "object":
        new_object = importlib.import_module(cls.__module__).newObj
        instance = new_object(cls)
        instance.__setstate__(state)
        return instance
    raise TypeError(f"unknown entry {tag!r}")
