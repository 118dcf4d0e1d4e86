"""What every embedder is: the scikit-learn estimator around a loss.

:class:`BaseEmbedder` holds the parameters every embedder shares, ``fit``/``partial_fit``
(checking the table and asking :mod:`sk_dml.supervision` to check ``y``, then
:func:`sk_dml._fitting.train`), ``transform``, ``score``, the learned metric, and the
persistence protocol of :mod:`sk_dml.persistence`. A subclass says which loss it trains with
(:meth:`BaseEmbedder._get_loss`): :class:`~sk_dml.embedders.MetricEmbedder` any loss object,
a named embedder (:class:`~sk_dml.embedders.TripletEmbedder`, ...) its own.
"""

from __future__ import annotations

import copy
from numbers import Integral

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from . import _compat, _dask
from ._embedder_parameters import SHARED_CONSTRAINTS
from ._fitting import train
from ._inference import embed
from ._learned_metric import LearnedMetric
from ._sklearn_compat import _fit_context
from .criteria import Loss
from .distances import paired_distance, pairwise_distance
from .explain import explain_distance as _explain_distance
from .nets import TableEmbedding, TableInput, build_module
from .supervision import Supervision, check_no_missing_labels, labels_kind, numeric_target
from .tabular import (
    TableSchema,
    frame_columns,
    has_string_names,
    is_dataframe,
    learn_schema,
    schema_options,
)

_INPUT_ATTRIBUTES = ("n_features_in_", "feature_names_in_")
# How scikit-learn's validate_data reads a numeric array (missing values are allowed).
_NUMERIC_INPUT = {"dtype": [np.float32, np.float64], "ensure_all_finite": "allow-nan"}

# Every embedder class by name, for model files (``sk_dml.save``/``load``).
ESTIMATORS: dict[str, type] = {}


class BaseEmbedder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base of the embedders; see :class:`~sk_dml.embedders.MetricEmbedder` for its
    parameters. Not meant to be used directly."""

    _parameter_constraints: dict = dict(SHARED_CONSTRAINTS)
    #: A named embedder's loss class, whose parameters are the embedder's own.
    _loss_class: type[Loss] | None = None

    # fmt: off
    def __init__(
        self, *,
        n_components=64, hidden_layer_sizes=(512, 512), activation="relu", dropout=0.0,
        residual="auto", normalize="auto", module=None, categorical_features="from_dtype",
        text_features=None, min_frequency=5, category_embedding_dim="auto", batch_size=256,
        samples_per_class=4, max_epochs=60, learning_rate="auto",
        learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping="auto", validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=1e-4,
        warm_start=False, random_state=None, verbose="auto", device="auto", checkpoint_dir=None,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.residual = residual
        self.normalize = normalize
        self.module = module
        self.categorical_features = categorical_features
        self.text_features = text_features
        self.min_frequency = min_frequency
        self.category_embedding_dim = category_embedding_dim
        self.batch_size = batch_size
        self.samples_per_class = samples_per_class
        self.max_epochs = max_epochs
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_split = validation_split
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.checkpoint_dir = checkpoint_dir
    # fmt: on

    def __init_subclass__(cls, loss: type[Loss] | None = None, **kwargs):
        """Register the class for model files; ``class XEmbedder(BaseEmbedder, loss=XLoss)``
        makes a named embedder, whose parameters are XLoss's and the shared ones."""
        super().__init_subclass__(**kwargs)
        ESTIMATORS[cls.__name__] = cls
        if loss is not None:
            cls._loss_class = loss
            cls._parameter_constraints = {**loss._parameter_constraints, **SHARED_CONSTRAINTS}

    # -- the loss and what it decides ---------------------------------------------------------
    def _get_loss(self) -> Loss:
        """The loss object this embedder trains with: a named embedder's own, with its
        parameters."""
        names = self._loss_class._get_param_names()
        return self._loss_class(**{name: getattr(self, name) for name in names})

    def _resolved(self, name: str):
        """Parameter ``name``, with "auto" replaced by the loss's choice."""
        value = getattr(self, name)
        if isinstance(value, str) and value == "auto":
            return self._get_loss().embedder_defaults[name]
        return value

    def _embedding_metric(self) -> str:
        """The distance between embeddings that the loss optimises."""
        normalized = bool(self._resolved("normalize")) and self.module is None
        return self._get_loss().embedding_metric(normalized)

    # -- fitting ------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the embedding on the table ``X`` (n_samples, n_features) and labels ``y``.

        ``X`` is a numeric array or a pandas DataFrame with numeric, bool, category and text
        columns; missing values (NaN, None, pd.NA) may be anywhere. Labels may be of any type
        (ints, strings, pandas categoricals); only which rows share a label matters. With a
        loss that learns from a continuous target (:class:`~sk_dml.criteria.LogRatioLoss`),
        ``y`` holds numbers, and rows with close targets end up close. Returns the fitted
        estimator.
        """
        continuing = self.warm_start and hasattr(self, "module_")
        return self._train(X, y, epochs=self.max_epochs, continuing=continuing, stop_early=True)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y):
        """One epoch over ``(X, y)``, starting from the current network when fitted.

        The labels of successive calls need not match: a call's batches only compare rows of
        that call (a proxy loss is the exception: its later calls may only use classes of the
        first). Returns the estimator.
        """
        return self._train(X, y, epochs=1, continuing=hasattr(self, "module_"), stop_early=False)

    def _train(self, X, y, *, epochs: int, continuing: bool, stop_early: bool):
        # scikit-learn's validate_data records the input's width and column names as it checks
        # them; a fit that fails puts back those of the fitted model.
        recorded = {k: v for k, v in vars(self).items() if k in _INPUT_ATTRIBUTES}
        try:
            task, schema = self._check_training_data(X, y, continuing)
            loss = self._get_loss()
            loss._validate_params()  # a loss object's parameters, named in scikit-learn's words
            task.check_loss(loss)
            fitted = train(
                self, task, schema, loss, epochs=epochs, continuing=continuing,
                stop_early=stop_early,
            )  # fmt: skip
        except BaseException:
            for name in _INPUT_ATTRIBUTES:
                vars(self).pop(name, None)
            vars(self).update(recorded)
            raise
        # Only now, with training done, does the estimator change: a failed fit leaves a
        # previously fitted model intact.
        self.module_ = fitted.module
        self.schema_ = schema
        self._trainer = fitted.trainer
        self.device_ = fitted.device
        self.embedding_metric_ = self._embedding_metric()
        history = fitted.trainer.history
        self.n_iter_ = fitted.trainer.n_iter
        self.loss_curve_ = list(history.loss_curve)
        self.validation_scores_ = list(history.validation_scores) if fitted.validated else None
        self.best_loss_ = history.best_loss
        self.best_score_ = history.best_score if fitted.validated else None
        self._n_features_out = fitted.n_features_out
        self._unfinished_run_start = fitted.unfinished_run_start
        return self

    def _check_training_data(self, X, y, continuing: bool) -> tuple[Supervision, TableSchema]:
        """What this fit learns from (:mod:`sk_dml.supervision`), and the schema of the table:
        the encoded ``X`` with ``y`` as class labels, or as a continuous target when the loss
        learns from one."""
        kind = labels_kind(self._get_loss())
        if kind.numeric_y:
            y = numeric_target(column_or_1d(y, warn=True))
        elif y is not None:
            check_no_missing_labels(y)
        if is_dataframe(X):
            if not continuing:  # a later call's columns are matched by name, in _encode
                validate_data(self, X, reset=True, skip_check_array=True)
            y = column_or_1d(y, warn=True)
            check_consistent_length(X, y)
        else:
            X, y = validate_data(
                self, X, y, reset=not continuing, y_numeric=kind.numeric_y, **_NUMERIC_INPUT
            )
        rows, schema = self._encode(X, reset=not continuing, validated=True)
        return kind.from_y(rows, y, self), schema

    def _encode(self, X, *, reset: bool, validated: bool = False):
        """``X`` as the float32 matrix the network reads (:mod:`sk_dml.tabular`) and the schema
        that encoded it: learned from ``X`` when ``reset``, else the fitted one. An array is
        checked by scikit-learn's ``validate_data`` unless it was ``validated`` already."""
        if is_dataframe(X):
            fitted_names = None if reset else getattr(self, "feature_names_in_", None)
            by_name = fitted_names is not None and has_string_names(X)
            columns = frame_columns(X, fitted_names if by_name else None)
            if not (reset or by_name):  # positional: scikit-learn's width and name checks
                validate_data(self, X, reset=False, skip_check_array=True)
            names = [str(c) for c in X.columns] if has_string_names(X) else None
        else:
            if not validated:
                try:
                    X = validate_data(self, X, reset=reset, **_NUMERIC_INPUT)
                except ValueError as error:
                    raise (error if reset else self._array_error(error)) from None
            columns, names = list(X.T), None
        if not reset:
            return self.schema_.encode(columns), self.schema_
        schema = learn_schema(columns, names, **schema_options(self.get_params(deep=False)))
        return schema.encode(columns), schema

    def _array_error(self, error: ValueError) -> ValueError:
        """``error`` of an array refused at transform, saying what to pass instead when the
        model was fitted on a DataFrame with string columns: an array holds numbers only."""
        schema = self.schema_
        if schema.feature_names is None:  # fitted on an array: numbers only
            return error
        strings = [
            name
            for name, dtype in zip(schema.feature_names, schema.dtypes, strict=True)
            if not pd.api.types.is_numeric_dtype(pd.api.types.pandas_dtype(dtype))
        ]
        if not strings:
            return error
        return ValueError(
            f"{error}: {type(self).__name__} was fitted on a pandas DataFrame whose columns "
            f"{strings[:5]}{' ...' if len(strings) > 5 else ''} hold strings, and reads a NumPy "
            "array as numbers only; pass a DataFrame with the fitted columns "
            "(feature_names_in_) instead."
        )

    def _new_module(self, schema: TableSchema) -> TableEmbedding:
        """The network for tables of ``schema``: its input layer, then the body."""
        inputs = TableInput.for_schema(schema)
        return TableEmbedding(inputs, self._new_body(inputs.out_features))

    def _new_body(self, n_features: int) -> torch.nn.Module:
        """The MLP (or residual network, or the user's module) after the input layer."""
        hidden = tuple(self.hidden_layer_sizes)
        if not all(isinstance(h, Integral) and h >= 1 for h in hidden):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}."
            )
        return build_module(
            self.module,
            n_features,
            n_components=self.n_components,
            hidden_layer_sizes=hidden,
            activation=self.activation,
            dropout=self.dropout,
            normalize=self._resolved("normalize"),
            residual=self._resolved("residual"),
        )

    # -- the fitted state, as data (sk_dml.save / load) ----------------------------------------
    #: Fitted attributes besides the network, all JSON-serialisable.
    _FITTED_ATTRIBUTES = (
        "n_features_in_",
        "embedding_metric_",
        "n_iter_",
        "loss_curve_",
        "validation_scores_",
        "best_loss_",
        "best_score_",
    )

    def _get_fitted_state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """The fitted model as JSON-serialisable attributes and the network's tensors (on
        the CPU). The optimizer and the loss's parameters are training state: not kept."""
        fitted = {attr: getattr(self, attr) for attr in self._FITTED_ATTRIBUTES}
        if hasattr(self, "feature_names_in_"):
            fitted["feature_names_in_"] = [str(c) for c in self.feature_names_in_]
        fitted["device_"] = str(self.device_)
        fitted["schema_"] = self.schema_.to_dict()
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.module_.state_dict().items()}
        return fitted, tensors

    def _module_for(self, fitted: dict) -> torch.nn.Module:
        """The network (new weights) of the model that ``fitted`` describes."""
        if _compat.is_version_0_1(fitted):  # no input layer
            return self._new_body(fitted["n_features_in_"])
        return self._new_module(TableSchema.from_dict(fitted["schema_"]))

    def _set_fitted_state(self, fitted: dict, module: torch.nn.Module) -> None:
        """Become the model that :meth:`_get_fitted_state` described (``module``, built by
        :meth:`_module_for`, holds its tensors); further training starts a new optimizer and
        new loss parameters."""
        fitted = dict(fitted)
        if _compat.is_version_0_1(fitted):
            schema = _compat.numeric_schema(fitted)
            module = _compat.with_identity_inputs(module, schema.n_features)
        else:
            schema = TableSchema.from_dict(fitted.pop("schema_"))
        module.eval()
        self.module_ = module
        self.schema_ = schema
        self._trainer = None
        names = fitted.pop("feature_names_in_", None)
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self.device_ = torch.device(fitted.pop("device_"))
        for attr in self._FITTED_ATTRIBUTES:
            setattr(self, attr, fitted[attr])
        probe = np.zeros((1, schema.n_encoded), np.float32)
        self._n_features_out = embed(module, probe).shape[1]

    # -- using the embedding ------------------------------------------------------------------
    def transform(self, X):
        """Embed ``X``: returns an array of shape (n_samples, dim), float32.

        ``X`` is a table like the one of ``fit``; a DataFrame's columns are matched by name
        (their order may differ). A categorical level not seen at fit gets the "rare or
        unseen" embedding, a missing value the "missing" one. A dask array or DataFrame gives a
        lazy float32 dask array, computed block-wise.
        """
        if _dask.is_dask_collection(X):
            return _dask.transform(self, X)
        check_is_fitted(self)
        X, _ = self._encode(X, reset=False)
        return embed(self.module_, X)

    def score(self, X, y) -> float:
        """Leave-one-out precision@1 of ``(X, y)`` in the learned space (higher is better);
        for a continuous target, the R^2 of leave-one-out 5-nearest-neighbour regression.

        This is what ``GridSearchCV`` maximises on a bare embedder. Dask input is embedded
        block-wise; the neighbour search then runs in memory, in this process.
        """
        if _dask.is_dask_collection(X) or _dask.is_dask_collection(y):
            return _dask.score(self, X, y)
        kind = labels_kind(self._get_loss())
        return kind.score(self.transform(X), y, self.embedding_metric_)

    def get_metric(self, squared=False) -> LearnedMetric:
        """The learned distance on raw feature rows, as a picklable ``d(u, v) -> float``.

        ``KNeighborsClassifier(metric=emb.get_metric())`` works on raw features; the faster
        route to the same predictions is
        ``make_pipeline(emb, KNeighborsClassifier(metric=emb.embedding_metric_))``. It is a
        snapshot: a later refit of this estimator does not change it. ``squared=True`` gives
        the squared Euclidean distance (a Euclidean ``embedding_metric_`` only).
        """
        check_is_fitted(self)
        return LearnedMetric(self, squared=squared)

    def pairwise_distances(self, X, Y=None) -> np.ndarray:
        """Learned distances between the rows of X and of Y (or X itself), vectorised.

        Dask input (X or Y) gives a lazy (n, m) dask array, computed block pair by block pair.
        """
        if _dask.is_dask_collection(X) or _dask.is_dask_collection(Y):
            return _dask.pairwise_distances(self, X, Y)
        Z = self.transform(X)
        return pairwise_distance(
            Z, None if Y is None else self.transform(Y), self.embedding_metric_
        )

    def pair_distance(self, pairs) -> np.ndarray:
        """Learned distance of each pair in ``pairs``: an array of shape (n_pairs, 2,
        n_features), or two DataFrames ``(left, right)`` whose rows are paired in order."""
        check_is_fitted(self)
        if isinstance(pairs, tuple | list) and len(pairs) == 2 and all(map(is_dataframe, pairs)):
            left, right = pairs
            if len(left) != len(right):
                raise ValueError(
                    f"The two tables of pairs must have as many rows; got {len(left)} and "
                    f"{len(right)}."
                )
            return paired_distance(
                self.transform(left), self.transform(right), self.embedding_metric_
            )
        pairs = np.asarray(pairs)
        if pairs.ndim != 3 or pairs.shape[1] != 2:
            raise ValueError(f"pairs must have shape (n_pairs, 2, n_features), got {pairs.shape}.")
        left, right = self.transform(pairs[:, 0]), self.transform(pairs[:, 1])
        return paired_distance(left, right, self.embedding_metric_)

    def explain_distance(self, a, b=None, **options):
        """Each input column's share of the learned distance of each pair ``(a[i], b[i])``
        (with ``b`` None: the pairs ``a``, as :meth:`pair_distance` takes them), by integrated
        gradients whose shares add up to the distance: :func:`sk_dml.explain.explain_distance`,
        which says how and takes the ``options``. Returns a DataFrame, one row per pair."""
        return _explain_distance(self, a, b, **options)

    # -- scikit-learn plumbing ----------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def __setstate__(self, state):
        """Unpickle, giving a model pickled by sk_dml 0.1.0 (no input layer) its schema."""
        super().__setstate__(_compat.upgrade_pickled_state(state))

    def __getstate__(self):
        """Pickle with the network on the CPU, so a CUDA-trained model loads anywhere."""
        state = super().__getstate__()
        if "module_" in state:
            state["module_"] = _to_cpu_copy(state["module_"])
            state["_trainer"] = None  # the optimizer is not kept; warm start makes anew
        return state


def shared_arguments(arguments: dict) -> dict:
    """The parameters every embedder shares, from a subclass's ``__init__`` arguments
    (``locals()``), for :meth:`BaseEmbedder.__init__`."""
    return {name: arguments[name] for name in SHARED_CONSTRAINTS}


def _to_cpu_copy(module: torch.nn.Module) -> torch.nn.Module:
    param = next(module.parameters(), None)
    if param is None or param.device.type == "cpu":
        return module
    return copy.deepcopy(module).cpu()
