"""scikit-learn estimators: one generic embedder over a loss object, and the named ones.

:class:`MetricEmbedder` does everything a loss does not decide: parameter and data validation,
the network, the device, training (with the :class:`~sk_dml._training.Trainer`),
``transform``, ``score`` and the learned metric. Its ``loss=`` is a loss object
(:mod:`sk_dml.criteria`). A named embedder (:class:`TripletEmbedder`, ...) is a short
definition over it, ``class TripletEmbedder(MetricEmbedder, loss=TripletLoss)``: it takes its
loss's parameters as its own (``TripletEmbedder(margin=0.3)``, a grid over
``tripletembedder__margin``) and inherits everything else.
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
import threading
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from . import _dask
from ._checkpoint import Checkpoint, fingerprint, restore_rng, rng_state_to_tensors, weights_digest
from ._distributed import current_group, on_main
from ._learned_metric import LearnedMetric
from ._objectives import InBatchPairCriterion, Objective, TupleObjective
from ._sklearn_compat import Interval, StrOptions, _fit_context
from ._training import (
    Checkpointing,
    CollapseGuard,
    EarlyStopping,
    History,
    ProgressBar,
    RunSettings,
    Trainer,
    embed,
)
from .criteria import (
    ArcFaceLoss,
    ContrastiveLoss,
    CosFaceLoss,
    LiftedStructLoss,
    LogRatioLoss,
    Loss,
    NormalizedSoftmaxLoss,
    NPairLoss,
    ProxyAnchorLoss,
    TripletLoss,
    get_loss_class,
    loss_names,
)
from .distances import paired_distance, pairwise_distance
from .metrics import precision_at_k
from .nets import ACTIVATIONS, TableEmbedding, TableInput, build_module, set_sparse_gradients
from .supervision import ClassLabels, ContinuousTarget, Supervision, neighbors_r2
from .tabular import TableSchema, learn_schema

__all__ = [
    "ArcFaceEmbedder",
    "ContrastiveEmbedder",
    "CosFaceEmbedder",
    "LiftedStructEmbedder",
    "LogRatioEmbedder",
    "MetricEmbedder",
    "NPairEmbedder",
    "NormalizedSoftmaxEmbedder",
    "ProxyAnchorEmbedder",
    "TripletEmbedder",
    "make_embedder",
]

_COMMON_PARAMS_DOC = """
    n_components : int, default=64
        Dimension of the embedding (ignored when ``module`` is given).
    hidden_layer_sizes : tuple of int, default=(512, 512)
        Widths of the MLP's hidden layers.
    activation : {"relu", "gelu", "tanh", "leaky_relu", "elu", "silu"}, default="relu"
    dropout : float in [0, 1), default=0.0
        Dropout after each hidden layer.
    residual : bool or "auto"
        Embed with ``linear(x) + mlp(x)`` (:class:`sk_dml.nets.ResidualEmbedding`), started as
        the PCA rotation of the training rows, instead of a plain MLP: the untrained network is
        the classical representation (the standardised input, rotated), training starts from
        the input's own distances and keeps what distinguishes classes it never saw. "auto"
        takes the loss's choice (``loss.embedder_defaults``): True for the proxy-anchor,
        multi-similarity, normalised softmax, CosFace, ArcFace and log-ratio losses, False for
        the pair and triplet losses, which end more accurate on the classes seen in training
        from a plain MLP (see the user guide, "Evaluating an embedding, and classes never seen
        in training").
    normalize : bool or "auto"
        L2-normalise the output, so embeddings lie on the unit sphere. "auto" takes the
        loss's choice: True for the margin losses (triplet, contrastive), whose margins then
        have a fixed scale, and for the similarity and softmax losses (proxy-anchor,
        multi-similarity, normalised softmax, CosFace, ArcFace); False for N-pair and lifted
        structure, whose log-sum-exp needs unbounded distances, and for log-ratio, whose
        distance ratios do.
    module : torch.nn.Module or callable, default=None
        Your own network instead of the MLP: a module (deep-copied at each fresh fit) or a
        callable ``n_inputs -> nn.Module``. It comes after the input layer, so it must map
        (batch, n_inputs) float32 to (batch, dim), where ``n_inputs`` counts the standardised
        numeric columns, their missing indicators and the categorical and text columns' embedding
        widths (``n_features`` for a numeric table without missing values).
    categorical_features : "from_dtype", None, or array-like of str, int or bool, \
default="from_dtype"
        The columns learned as categories (entity embeddings) rather than numbers, as in
        :class:`~sklearn.ensemble.HistGradientBoostingClassifier`: "from_dtype" takes a
        DataFrame's category, string/object and bool columns (a numeric array has none); or
        column names, indices, or a boolean mask; None: none. Categorical columns of a numeric
        array hold numbers, read as labels (``1`` and ``1.0`` are one level).
    text_features : None or array-like of str or int, default=None
        The columns read as text, by character n-grams, rather than as categories: for free
        text where most values are unique and copies have typos (names, streets, phone
        numbers). Each cell, lower-cased (a number as its text), is cut into character 2- to
        4-grams within words, each hashed into one of 65536 buckets (scikit-learn's
        ``HashingVectorizer(analyzer="char_wb")``), and embedded as the mean of its n-grams'
        vectors (fastText's subword vectors), ``category_embedding_dim`` wide ("auto": 32).
        Those vectors start random, so strings sharing n-grams start near each other. Column
        names or indices; a column listed here is never categorical, and may not be listed
        in ``categorical_features``.
    min_frequency : int, default=5
        Levels of a categorical column seen fewer times than this at fit share one embedding
        with levels first seen after fit ("rare or unseen"): too few rows to learn their own.
    category_embedding_dim : "auto", int or dict, default="auto"
        Width of each categorical column's embedding. "auto":
        ``min(32, round(1.6 * (n_levels + 2) ** 0.56))`` (fastai's rule of thumb, capped);
        an int for every column; or a dict from column name (or index) to width, "auto" for
        the columns it does not list.
    batch_size : int, default=256
        Rows per training batch.
    samples_per_class : int, default=4
        Rows of each class that travel together in a batch (K of the P x K batches); every row
        is still seen once per epoch. ``batch_size`` must be a multiple of it. With a
        continuous target, groups of K rows with neighbouring targets travel together.
    max_epochs : int, default=60
        Upper bound on the passes over the training data.
    learning_rate : float or "auto"
        AdamW learning rate (the starting one, with the cosine schedule). "auto" takes the
        loss's choice: 3e-4 with the residual start (low enough to refine it rather than
        replace it), 3e-3 for the pair and triplet losses. A loss's own parameters (proxies,
        class weights) may train at a multiple of it (``loss.parameter_settings``).
    learning_rate_schedule : {"cosine", "constant"}, default="cosine"
        "cosine" anneals the learning rate to 0 over the ``max_epochs`` of a ``fit`` (each
        warm-started fit anneals anew); training still stops early on a plateau, and reaching
        ``max_epochs`` is expected, so no ConvergenceWarning. "constant" keeps it fixed and
        warns when ``max_epochs`` ends training before a plateau, as MLPClassifier does.
        ``partial_fit`` always uses the constant rate.
    weight_decay : float, default=0.0
        AdamW weight decay.
    early_stopping : bool or "auto", default="auto"
        Hold out part of the training data (``validation_split``), score it before training
        and after each epoch, stop when the score stops improving and keep the best weights:
        the untrained network is a candidate too, so the fitted model is never worse on the
        held-out data than its own start. "auto": do so unless the data are too small to hold
        anything out (then train on all of it, as with False). False: train on all the data
        and stop when the training loss stops improving.
    validation_split : {"rows", "classes"}, default="rows"
        What ``early_stopping`` holds out. "rows": ``validation_fraction`` of the rows
        (stratified), scored by leave-one-out precision@1, which selects for the classes seen
        in training. "classes": ``validation_fraction`` of the classes (at least 2) with all
        their rows, scored by leave-one-out MAP@R among them: this selects for classes never
        seen in training (Musgrave et al. 2020); it helped on digits but not on letter
        (``benchmarks/results/unseen_classes.md``). It is not the default because it costs
        the classes seen in training: the held-out
        classes are never trained on and training stops as soon as transfer stops improving
        (on letter, NormalizedSoftmaxEmbedder's 5-NN accuracy is 0.959 instead of 0.971;
        ``benchmarks/results/accuracy.md``). Other kinds of supervision hold out their rows or
        tuples.
    validation_fraction : float in (0, 1), default=0.1
    n_iter_no_change : int, default=10
        Epochs without an improvement larger than ``tol`` before stopping.
    tol : float, default=1e-4
    warm_start : bool, default=False
        Continue from the fitted network (and optimizer) instead of starting afresh.
    random_state : int, RandomState instance or None, default=None
        Seeds the network's initialisation, dropout and batch sampling: a fit is exactly
        reproducible on CPU, also while other fits run in other threads (dropout draws from
        the fit's own generator). In a custom ``module``, use :class:`sk_dml.nets.Dropout` for
        that: ``torch.nn.Dropout`` draws from torch's process-wide generator, which the fit
        seeds, so it is reproducible only while one fit runs at a time.
    verbose : int, default=0
        Show a progress bar with the loss (and validation score) per epoch.
    device : str or torch.device, default="auto"
        "auto" trains on CUDA when available, else on the CPU; or "cpu", "cuda", "cuda:1", ...
        Under ``torchrun`` (torch.distributed), "auto" and "cuda" mean each rank's own GPU.
    checkpoint_dir : str or path-like, default=None
        Save the whole training state to this folder after every epoch of ``fit``, atomically,
        and resume from it: a fit that was killed and is run again (same estimator, same data)
        continues from its last completed epoch and, with a fixed ``random_state``, ends with
        the same weights as an uninterrupted fit. The file is named by a fingerprint of the
        parameters and data, so fits never pick up each other's, and it is deleted when the fit
        ends normally. ``partial_fit`` does not checkpoint.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network, in eval mode.
    device_ : torch.device
        Where it was trained.
    embedding_metric_ : str
        The distance between embeddings that the loss optimised; use it as
        ``KNeighborsClassifier(metric=embedding_metric_)`` after ``transform``.
    n_iter_ : int
        Epochs run (over all calls, with ``warm_start``/``partial_fit``).
    loss_curve_ : list of float
        Mean training loss per epoch.
    validation_scores_ : list of float or None
        Validation score per epoch when part of the data was held out (None otherwise):
        precision@1 of held-out rows, or MAP@R of held-out classes; for a continuous target,
        leave-one-out 5-NN regression R^2; for pairs, their ROC AUC; for triplets, the
        fraction whose constraint holds.
    best_loss_ : float
        Lowest epoch loss.
    best_score_ : float or None
        Best validation score, the untrained network's included (None without held-out
        data).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has string column names; ``transform`` then matches columns by name.
    schema_ : sk_dml.tabular.TableSchema
        The columns seen at fit: which are numeric and which categorical, their dtypes, each
        categorical column's levels and embedding width, the text columns and their n-gram
        settings, and which numeric columns had missing values (those get a missing
        indicator). Numeric columns are standardised with the
        training rows' mean and standard deviation inside the network (``module_.inputs``).
"""

_COMMON_CONSTRAINTS = {
    "n_components": [Interval(Integral, 1, None, closed="left")],
    "hidden_layer_sizes": [list, tuple],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "residual": ["boolean", StrOptions({"auto"})],
    "normalize": ["boolean", StrOptions({"auto"})],
    "module": [None, torch.nn.Module, callable],
    "categorical_features": [None, StrOptions({"from_dtype"}), "array-like"],
    "text_features": [None, "array-like"],
    "min_frequency": [Interval(Integral, 1, None, closed="left")],
    "category_embedding_dim": [
        StrOptions({"auto"}),
        Interval(Integral, 1, None, closed="left"),
        dict,
    ],
    "batch_size": [Interval(Integral, 2, None, closed="left")],
    "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "learning_rate": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
    "learning_rate_schedule": [StrOptions({"cosine", "constant"})],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "early_stopping": ["boolean", StrOptions({"auto"})],
    "validation_split": [StrOptions({"rows", "classes"})],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "warm_start": ["boolean"],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "device": [str, torch.device],
    "checkpoint_dir": [None, str, os.PathLike],
}
_INPUT_ATTRIBUTES = ("n_features_in_", "feature_names_in_")
# How scikit-learn's validate_data reads a numeric array (missing values are allowed).
_NUMERIC_INPUT = {"dtype": [np.float32, np.float64], "ensure_all_finite": "allow-nan"}
# Held while a fit seeds torch's process-wide generator and draws its initial weights from it.
_TORCH_RNG_LOCK = threading.Lock()


def resolve_device(device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; refuse a device this machine lacks."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device={device!r} is not a valid torch device: {error}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this machine; "
                "use device='auto' or 'cpu'."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)."
            )
    elif resolved.type != "cpu" and resolved.type != "mps":
        raise ValueError(f"device={device!r}: only 'cpu', 'cuda[:i]' and 'mps' are supported.")
    return resolved


# Every embedder class by name, for model files (``sk_dml.save``/``load``).
ESTIMATORS: dict[str, type] = {}


class MetricEmbedder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    __doc__ = (
        """Embedding trained with any loss object, with hard-sample mining where the loss has it.

    ``MetricEmbedder(loss=ProxyAnchorLoss(margin=0.1))`` trains a network so that its
    loss is small; the loss's parameters are tuned like any nested parameter
    (``GridSearchCV(..., {"metricembedder__loss__margin": [0.1, 0.2]})``).

    Parameters
    ----------
    loss : loss object, default=None
        What training minimises: an instance of a :class:`sk_dml.criteria.Loss` subclass
        (:class:`~sk_dml.criteria.TripletLoss`, :class:`~sk_dml.criteria.ProxyAnchorLoss`, ...).
        None means ``TripletLoss()``.
"""
        + _COMMON_PARAMS_DOC
    )

    _parameter_constraints: dict = {"loss": [None, Loss], **_COMMON_CONSTRAINTS}
    #: A named embedder's loss class, whose parameters are the embedder's own; None here.
    _loss_class: type[Loss] | None = None

    def __init__(
        self, loss=None, *,
        n_components=64, hidden_layer_sizes=(512, 512), activation="relu", dropout=0.0,
        residual="auto", normalize="auto", module=None, categorical_features="from_dtype",
        text_features=None, min_frequency=5, category_embedding_dim="auto", batch_size=256,
        samples_per_class=4, max_epochs=60, learning_rate="auto",
        learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping="auto", validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=1e-4,
        warm_start=False, random_state=None, verbose=0, device="auto", checkpoint_dir=None,
    ):  # fmt: skip
        self.loss = loss
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

    def __init_subclass__(cls, loss: type[Loss] | None = None, **kwargs):
        """``class XEmbedder(MetricEmbedder, loss=XLoss)`` defines a named embedder: XLoss's
        parameters become its own, its "auto" defaults become XLoss's choices, and its
        docstring gets both parameter lists."""
        super().__init_subclass__(**kwargs)
        ESTIMATORS[cls.__name__] = cls
        if loss is None:
            return
        cls._loss_class = loss
        shared = dict(MetricEmbedder._parameter_constraints)
        del shared["loss"]
        cls._parameter_constraints = {**loss._parameter_constraints, **shared}
        cls.__init__ = _named_init(loss)
        if cls.__doc__:
            section = _parameters_section(loss.__doc__)
            cls.__doc__ = cls.__doc__.rstrip() + "\n" + section + _COMMON_PARAMS_DOC

    # -- the loss and what it decides ---------------------------------------------------------
    def _get_loss(self) -> Loss:
        """The loss object this embedder trains with."""
        if self._loss_class is not None:
            names = self._loss_class._get_param_names()
            return self._loss_class(**{name: getattr(self, name) for name in names})
        return TripletLoss() if self.loss is None else self.loss

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

    def _check_training_data(self, X, y, continuing: bool) -> tuple[Supervision, TableSchema]:
        """What this fit learns from (:mod:`sk_dml.supervision`), and the schema of the table:
        the encoded ``X`` with the classes of ``y``, or with ``y`` as a continuous target when
        the loss learns from one."""
        loss = self._get_loss()
        if "target" in loss.supervisions:
            if self.samples_per_class > self.batch_size:
                raise ValueError(
                    f"samples_per_class={self.samples_per_class} rows of neighbouring targets "
                    f"travel together, so batch_size={self.batch_size} must be at least as large."
                )
            rows, schema, y = self._check_table(X, y, continuing, y_numeric=True)
            target = _standardised_target(y, type(self).__name__)
            return ContinuousTarget(rows, target, self.samples_per_class), schema
        rows, schema, y = self._check_table(X, y, continuing)
        _check_class_labels(y, type(self).__name__)
        classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in y; got 1 class."
            )
        if counts.max() < 2:
            raise ValueError(
                "Every class in y has a single sample, so no positive pair exists; metric "
                "learning needs at least one class with 2 or more samples."
            )
        if self.batch_size % self.samples_per_class or self.batch_size < 2 * self.samples_per_class:
            raise ValueError(
                f"batch_size={self.batch_size} must be a multiple of samples_per_class="
                f"{self.samples_per_class} and hold at least two classes' groups (>= "
                f"{2 * self.samples_per_class}), so that batches contain negatives."
            )
        if self.samples_per_class > counts.max():
            raise ValueError(
                f"samples_per_class={self.samples_per_class} is larger than every class "
                f"(the largest has {counts.max()} samples)."
            )
        return ClassLabels(rows, codes.ravel(), labels=classes), schema

    def _check_table(self, X, y, continuing: bool, *, y_numeric: bool = False):
        """The encoded table ``X``, its schema (learned unless ``continuing``), and ``y`` as a
        1-D array of as many entries (finite numbers when ``y_numeric``)."""
        if y_numeric:
            y = _numeric_target(column_or_1d(y, warn=True))
        if _is_dataframe(X):
            if not continuing:  # a later call's columns are matched by name, in _encode
                validate_data(self, X, reset=True, skip_check_array=True)
            y = column_or_1d(y, warn=True)
            check_consistent_length(X, y)
        else:
            X, y = validate_data(
                self, X, y, reset=not continuing, y_numeric=y_numeric, **_NUMERIC_INPUT
            )
        rows, schema = self._encode(X, reset=not continuing, validated=True)
        return rows, schema, y

    def _encode(self, X, *, reset: bool, validated: bool = False):
        """``X`` as the float32 matrix the network reads (:mod:`sk_dml.tabular`) and the schema
        that encoded it: learned from ``X`` when ``reset``, else the fitted one. An array is
        checked by scikit-learn's ``validate_data`` unless it was ``validated`` already."""
        if _is_dataframe(X):
            columns = self._frame_columns(X, reset=reset)
            names = [str(c) for c in X.columns] if _string_names(X) else None
        else:
            if not validated:
                X = validate_data(self, X, reset=reset, **_NUMERIC_INPUT)
            columns, names = list(X.T), None
        if not reset:
            return self.schema_.encode(columns), self.schema_
        schema = learn_schema(
            columns,
            names,
            categorical_features=self.categorical_features,
            min_frequency=self.min_frequency,
            embedding_dim=self.category_embedding_dim,
            text_features=self.text_features,
        )
        return schema.encode(columns), schema

    def _frame_columns(self, X, *, reset: bool) -> list:
        """The columns of the DataFrame ``X`` in the order of fit: matched by name when the
        model was fitted with string column names, else by position."""
        duplicated = X.columns[X.columns.duplicated()]
        if len(duplicated):
            shown = "\n".join(f"- {name!r}" for name in dict.fromkeys(duplicated))
            raise ValueError(f"Expected unique column names, got duplicates:\n{shown}")
        if X.shape[0] == 0:
            raise ValueError(
                f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required."
            )
        fitted_names = None if reset else getattr(self, "feature_names_in_", None)
        if fitted_names is None or not _string_names(X):
            if not reset:  # positional: scikit-learn's width and feature-name checks
                validate_data(self, X, reset=False, skip_check_array=True)
            return [X.iloc[:, j] for j in range(X.shape[1])]
        given = [str(c) for c in X.columns]
        unseen = [c for c in given if c not in set(fitted_names)]
        absent = [c for c in fitted_names if c not in set(given)]
        if unseen or absent:
            message = "The feature names should match those that were passed during fit.\n"
            if unseen:
                message += "Feature names unseen at fit time:\n" + _bullets(unseen)
            if absent:
                message += "Feature names seen at fit time, yet now missing:\n" + _bullets(absent)
            raise ValueError(message)
        position = {name: j for j, name in enumerate(given)}
        return [X.iloc[:, position[name]] for name in fitted_names]

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

    def _train(self, X, y, *, epochs: int, continuing: bool, stop_early: bool):
        # scikit-learn's validate_data records the input's width and column names as it checks
        # them; a fit that fails puts back those of the fitted model.
        recorded = {k: v for k, v in vars(self).items() if k in _INPUT_ATTRIBUTES}
        try:
            return self._train_validated(X, y, epochs, continuing, stop_early)
        except BaseException:
            for name in _INPUT_ATTRIBUTES:
                vars(self).pop(name, None)
            vars(self).update(recorded)
            raise

    def _train_validated(self, X, y, epochs, continuing, stop_early):
        task, schema = self._check_training_data(X, y, continuing)
        loss = self._get_loss()
        loss._validate_params()  # a loss object's parameters, named in scikit-learn's words
        if task.loss_kind not in loss.supervisions:
            what = _KIND_WORDS[task.kind]
            if task.loss_kind != task.kind:
                what += f" read as {_KIND_WORDS[task.loss_kind]} (negatives='in_batch')"
            raise ValueError(
                f"The {loss.name} loss does not learn from {what}; losses that do: "
                f"{', '.join(loss_names(task.loss_kind))}."
            )
        group = current_group()  # a torch.distributed group of 2+ processes, or None
        device = resolve_device(self.device)
        if group is not None:
            device = group.device(device)
        rng = check_random_state(self.random_state)
        if group is not None:  # all ranks draw rank 0's batches
            rng = group.share_rng(rng)
        checkpoint, resume, start = None, None, None
        if self.checkpoint_dir is not None and stop_early:
            if continuing:  # the weights this run starts from, or an unfinished run's
                start = getattr(self, "_unfinished_run_start", None)
                start = start or weights_digest(self.module_.state_dict())
            checkpoint = Checkpoint(
                self.checkpoint_dir,
                fingerprint(self, *task.arrays(), start=start),
                writer=group is None or group.is_main,
            )
            resume = on_main(group, functools.partial(_open_checkpoint, checkpoint))
            if resume is not None:  # replay the interrupted fit's draws from its first one
                rng = restore_rng(np.random.RandomState(), resume["start_rng"])
            start_rng = rng_state_to_tensors(rng)
        seed = int(rng.randint(np.iinfo(np.int32).max)) + (group.rank if group else 0)
        generator = torch.Generator(device=device).manual_seed(seed)  # own dropout per rank
        fork_devices = [device] if device.type == "cuda" else []
        # Torch's process-wide generator is seeded for this fit (under a lock while the network
        # and the loss's parameters are drawn from it) and given back as it was at the end.
        with torch.random.fork_rng(devices=fork_devices):
            with _TORCH_RNG_LOCK:  # seeding the shared generator: one fit at a time
                torch.manual_seed(seed)
                if continuing:  # on copies: a fit that fails leaves the fitted model as it was
                    module, trainer = copy.deepcopy((self.module_, getattr(self, "_trainer", None)))
                    module.to(device)
                    if trainer is not None:
                        trainer.objective.to(device)  # the loss's parameters too
                else:
                    module = self._new_module(schema)
                    set_sparse_gradients(module, group is None)  # NCCL takes no sparse ones
                    module.to(device)
                validation, table = None, task.rows
                if self.early_stopping and stop_early:
                    task, validation = self._hold_out(task, rng, device)
                if not continuing:
                    # The input layer's statistics come from the whole table, as a scaler's
                    # before a model that holds out part of its input; the PCA start from the
                    # training part alone.
                    module.inputs.fit_statistics(table)
                    module.init_from_data(_pca_sample(task.rows))
                    trainer = self._new_trainer(module, loss, task, rng, device)
                elif trainer is None or (trainer.loss_name, trainer.supervision) != (
                    loss.name,
                    f"{task.kind}:{task.loss_kind}",
                ):
                    # Unpickled or loaded (no optimizer or loss parameters kept), or another
                    # loss: the network and the history go on, the rest starts anew.
                    trainer = self._new_trainer(module, loss, task, rng, device)
                    trainer.history = self._fitted_history()
                else:  # the same loss, perhaps with new parameters; its own ones are kept
                    trainer.objective.criterion.function = loss.bound_function(task.loss_kind)
            # Training runs outside the lock: sk_dml's dropout draws from the fit's own
            # generator; a custom module's torch.nn.Dropout from the seeded shared one.
            targets = task.targets_for(trainer.objective.criterion)
            metric = self._embedding_metric()
            learning_rate = self._resolved("learning_rate")
            rows = torch.tensor(task.rows, dtype=torch.float32, device=device)
            items = rows if task.items is task.rows else torch.as_tensor(task.items, device=device)
            if isinstance(trainer.objective, TupleObjective):
                trainer.objective.rows = rows
            schedule = self.learning_rate_schedule if stop_early else "constant"
            hooks = [
                EarlyStopping(
                    self.tol,
                    self.n_iter_no_change,
                    validation=validation,
                    score_fn=task.score_function(metric),
                    patience=stop_early,
                    warn=stop_early and schedule == "constant",
                ),
                CollapseGuard(rows, learning_rate),
                ProgressBar(epochs, self.verbose),
            ]
            if checkpoint is not None:  # last: it saves what the others recorded
                hooks.append(Checkpointing(checkpoint, start_rng))
            trainer.run(
                items,
                torch.as_tensor(targets, device=device),
                RunSettings(
                    batch_size=self.batch_size,
                    samples_per_class=self.samples_per_class,
                    learning_rate=learning_rate,
                    max_epochs=epochs,
                    schedule=schedule,
                ),
                hooks,
                group=group,
                generator=generator,
                groups=task.groups(),
                resume=None if resume is None else resume["trainer"],
            )
            if isinstance(trainer.objective, TupleObjective):
                trainer.objective.rows = None  # the table is not part of the model
        # Only now, with training done, does the estimator change: a failed fit leaves a
        # previously fitted model intact.
        self.module_ = module
        self.schema_ = schema
        self._trainer = trainer
        self.device_ = device
        self.embedding_metric_ = metric
        history = trainer.history
        self.n_iter_ = trainer.n_iter
        self.loss_curve_ = list(history.loss_curve)
        self.validation_scores_ = list(history.validation_scores) if validation else None
        self.best_loss_ = history.best_loss
        self.best_score_ = history.best_score if validation else None
        self._n_features_out = embed(module, task.rows[:1]).shape[1]
        # A checkpoint left by an interrupted warm start resumes at the next warm start, even
        # though module_ now holds that run's best weights rather than its start.
        unfinished = checkpoint is not None and checkpoint.path.exists()
        self._unfinished_run_start = start if unfinished and continuing else None
        return self

    def _hold_out(self, task: Supervision, rng, device):
        """The training part of ``task`` and the held-out (rows tensor, targets) that select
        the model: whole classes or rows as ``validation_split`` says. With
        ``early_stopping="auto"``, data too small to hold anything out train whole, with no
        validation (None)."""
        by = self.validation_split
        try:
            task, X_val, y_val = task.split(self.validation_fraction, by, rng)
        except ValueError as error:
            if self.early_stopping == "auto":
                return task, None
            if "early_stopping" in str(error):  # our own message says what to do
                raise
            raise ValueError(
                f"early_stopping=True cannot hold out {by} of this data ({error}); set "
                "early_stopping='auto' to train on all of it when it is too small."
            ) from None
        return task, (torch.tensor(X_val, dtype=torch.float32, device=device), y_val)

    def _new_trainer(self, module, loss: Loss, task: Supervision, rng, device) -> Trainer:
        """A trainer with a new loss module (new parameters, if the loss has any) and a new
        optimizer around ``module``, for the supervision ``task``."""
        width = embed(module, np.zeros((1, module.inputs.in_features), np.float32)).shape[1]
        criterion = loss.build(task.classes, width, task.loss_kind).to(device)
        if task.kind in _TUPLE_KINDS and task.loss_kind == "classes":
            criterion = InBatchPairCriterion(criterion.function)
        objective = TupleObjective if task.kind in _TUPLE_KINDS else Objective
        return Trainer(
            objective(module, criterion),
            loss_name=loss.name,
            supervision=f"{task.kind}:{task.loss_kind}",
            learning_rate=self._resolved("learning_rate"),
            weight_decay=self.weight_decay,
            rng=rng,
        )

    def _fitted_history(self) -> History:
        """The history of a model that was unpickled or loaded, so n_iter_ keeps counting."""
        scores = self.validation_scores_
        return History(
            loss_curve=list(self.loss_curve_),
            validation_scores=list(scores or []),
            best_loss=self.best_loss_,
            best_score=self.best_score_ if self.best_score_ is not None else -np.inf,
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
        if "schema_" in fitted:
            return self._new_module(TableSchema.from_dict(fitted["schema_"]))
        return self._new_body(fitted["n_features_in_"])  # sk_dml 0.1.0: no input layer

    def _set_fitted_state(self, fitted: dict, module: torch.nn.Module) -> None:
        """Become the model that :meth:`_get_fitted_state` described (``module``, built by
        :meth:`_module_for`, holds its tensors); further training starts a new optimizer and
        new loss parameters."""
        fitted = dict(fitted)
        schema = fitted.pop("schema_", None)
        if schema is None:  # a model of sk_dml 0.1.0 read raw numbers
            schema = _numeric_schema(fitted)
            module = _with_identity_inputs(module, schema.n_features)
        else:
            schema = TableSchema.from_dict(schema)
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
        if "target" in self._get_loss().supervisions:
            y = _numeric_target(column_or_1d(y))
            return neighbors_r2(self.transform(X), y, metric=self.embedding_metric_)
        return precision_at_k(self.transform(X), np.asarray(y), k=1, metric=self.embedding_metric_)

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
        if isinstance(pairs, tuple | list) and len(pairs) == 2 and all(map(_is_dataframe, pairs)):
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

    # -- scikit-learn plumbing ----------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def __setstate__(self, state):
        """Unpickle, giving a model pickled by sk_dml 0.1.0 (no input layer) its schema."""
        if "module_" in state and "schema_" not in state:
            state["schema_"] = _numeric_schema(state)
            state["module_"] = _with_identity_inputs(state["module_"], state["n_features_in_"])
        super().__setstate__(state)

    def __getstate__(self):
        """Pickle with the network on the CPU, so a CUDA-trained model loads anywhere."""
        state = super().__getstate__()
        if "module_" in state:
            state["module_"] = _to_cpu_copy(state["module_"])
            state["_trainer"] = None  # the optimizer is not kept; warm start makes anew
        return state


ESTIMATORS[MetricEmbedder.__name__] = MetricEmbedder  # its subclasses register themselves


def make_embedder(loss: str, **params) -> MetricEmbedder:
    """The embedder of the loss named ``loss`` (one of :func:`sk_dml.criteria.loss_names`):
    its named embedder when there is one (``"triplet"`` -> :class:`TripletEmbedder`), else
    ``MetricEmbedder(loss=...)``. ``params`` mixes the loss's and the embedder's parameters."""
    loss_class = get_loss_class(loss)
    for cls in ESTIMATORS.values():
        if cls._loss_class is loss_class:
            return cls(**params)
    own = {name: params.pop(name) for name in loss_class._get_param_names() if name in params}
    return MetricEmbedder(loss=loss_class(**own), **params)


def _named_init(loss: type[Loss]):
    """The ``__init__`` of a named embedder: ``loss``'s parameters, then MetricEmbedder's
    except ``loss``, with its "auto" defaults replaced by the loss's choices. Its signature is
    explicit, so ``get_params``, ``clone`` and ``repr`` see every parameter."""
    own = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in inspect.signature(loss.__init__).parameters.values()
        if p.name != "self"
    ]
    shared = [
        p.replace(default=loss.embedder_defaults.get(p.name, p.default))
        for p in inspect.signature(MetricEmbedder.__init__).parameters.values()
        if p.name not in ("self", "loss")
    ]
    params = own + shared

    def __init__(self, **kwargs):
        for param in params:
            setattr(self, param.name, kwargs.pop(param.name, param.default))
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}.__init__() got an unexpected keyword argument "
                f"{next(iter(kwargs))!r}"
            )

    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    __init__.__signature__ = inspect.Signature([self_param, *params])
    return __init__


def _parameters_section(docstring: str) -> str:
    """The entries of a numpydoc "Parameters" section (an empty string when there is none)."""
    heading = "Parameters\n    ----------\n"
    return docstring.split(heading, 1)[1].rstrip() + "\n" if heading in docstring else ""


_TUPLE_KINDS = ("pairs", "triplets")
_KIND_WORDS = {
    "classes": "class labels",
    "target": "a continuous target",
    "pairs": "labelled pairs",
    "triplets": "triplet constraints",
}


def _check_class_labels(y, estimator: str) -> None:
    """scikit-learn's check that ``y`` holds class labels, pointing a continuous target to
    the losses that learn from one."""
    try:
        check_classification_targets(y)
    except ValueError as error:
        if type_of_target(y) != "continuous":
            raise
        raise ValueError(
            f"{error} {estimator} learns from class labels; for a continuous target use a loss "
            f"that learns from one ({', '.join(loss_names('target'))}): "
            "LogRatioEmbedder, or MetricEmbedder(loss=LogRatioLoss())."
        ) from None


def _numeric_target(y) -> np.ndarray:
    """``y`` as finite float64 numbers, with scikit-learn's errors for anything else."""
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"A continuous target must be numeric; y holds {type_of_target(y)!r} labels "
                f"such as {y[0]!r}."
            ) from None
    return check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")


def _standardised_target(y: np.ndarray, estimator: str) -> np.ndarray:
    """A continuous target on a unit scale (float32); a constant one is a ValueError."""
    y = np.asarray(y, dtype=np.float64)
    if len(y) < 3:
        raise ValueError(
            f"{estimator} compares each row with two others, so it needs at least 3 samples; "
            f"got {len(y)} sample(s)."
        )
    scale = y.std()
    if not scale > 0:
        raise ValueError(
            f"y is constant (every target is {y[0]:g}); {estimator} learns which rows have "
            "close targets, so it needs a target that varies."
        )
    return ((y - y.mean()) / scale).astype(np.float32)


def _is_dataframe(X) -> bool:
    return isinstance(X, pd.DataFrame)


def _string_names(X) -> bool:
    return all(isinstance(c, str) for c in X.columns)


def _bullets(names: list[str], shown: int = 5) -> str:
    """scikit-learn's list of feature names in its mismatch message."""
    lines = [f"- {name}" for name in names[:shown]]
    if len(names) > shown:
        lines.append("- ...")
    return "\n".join(lines) + "\n"


def _numeric_schema(fitted: dict) -> TableSchema:
    """The schema of a model of sk_dml 0.1.0: every column numeric, read as it is."""
    n = fitted["n_features_in_"]
    names = fitted.get("feature_names_in_")
    return TableSchema(
        n_features=n,
        feature_names=None if names is None else [str(c) for c in names],
        dtypes=["float64"] * n,
        numeric=list(range(n)),
        categorical=[],
        levels=[],
        embedding_dims=[],
        missing_indicators=[],
    )


def _with_identity_inputs(body: torch.nn.Module, n_features: int) -> TableEmbedding:
    """``body`` behind an input layer that passes numbers through (mean 0, scale 1)."""
    return TableEmbedding(TableInput(n_features), body)


def _open_checkpoint(checkpoint: Checkpoint) -> dict | None:
    """Check that the folder takes files, then read this run's checkpoint if there is one."""
    checkpoint.prepare()
    return checkpoint.load(map_location="cpu")


def _pca_sample(X: np.ndarray, max_rows: int = 20_000) -> np.ndarray:
    """Evenly spaced rows of ``X`` (all of them up to ``max_rows``), to initialise from."""
    return X[:: max(1, len(X) // max_rows)]


def _to_cpu_copy(module: torch.nn.Module) -> torch.nn.Module:
    param = next(module.parameters(), None)
    if param is None or param.device.type == "cpu":
        return module
    return copy.deepcopy(module).cpu()


# ------------------------------------------------------------------------------ named embedders
class TripletEmbedder(MetricEmbedder, loss=TripletLoss):
    """Embedding trained with the triplet margin loss and hard-sample mining.

    For anchor a, positive p (same label) and negative n, the loss is
    ``relu(D_ap - D_an + margin)``: each anchor must be nearer its positives than its negatives
    by ``margin``. See :func:`sk_dml.losses.triplet_loss`.

    Parameters
    ----------
    """


class ContrastiveEmbedder(MetricEmbedder, loss=ContrastiveLoss):
    """Embedding trained with the contrastive loss (Hadsell et al. 2006).

    Same-label pairs are pulled together (``D^2``), different-label pairs pushed apart until
    they are ``margin`` away (``relu(margin - D)^2``). See
    :func:`sk_dml.losses.contrastive_loss`.

    Parameters
    ----------
    """


class NPairEmbedder(MetricEmbedder, loss=NPairLoss):
    """Embedding trained with the multi-class N-pair loss (Sohn 2016).

    Each anchor is compared with one positive and the negatives of every other class at once,
    by dot product: ``log(1 + sum_n exp(s_an - s_ap))``. See :func:`sk_dml.losses.npair_loss`.
    With ``normalize=True`` the dot product ranks like Euclidean distance on the unit sphere,
    so ``embedding_metric_`` is "euclidean"; without it (the default here), "cosine".

    Parameters
    ----------
    """


class LiftedStructEmbedder(MetricEmbedder, loss=LiftedStructLoss):
    """Embedding trained with the lifted structured loss (Oh Song et al. 2016).

    Every positive pair of a batch is contrasted with the hardest negatives of both its
    members: ``variant="hard"`` takes the nearer hardest negative (the paper's eq. 3),
    ``variant="smooth"`` the paper's log-sum-exp bound over all negatives (eq. 4). See
    :func:`sk_dml.losses.lifted_struct_loss`.

    Parameters
    ----------
    """


class ProxyAnchorEmbedder(MetricEmbedder, loss=ProxyAnchorLoss):
    """Embedding trained with the Proxy-Anchor loss (Kim et al., CVPR 2020).

    Each class gets a learnable proxy; every row is pulled towards its class's proxy and pushed
    from the others, weighted by how hard it is (``alpha``), so each batch informs every class
    at a cost of O(batch x classes). See :func:`sk_dml.losses.proxy_anchor_loss`. With the
    residual network it starts from and its low learning rate, it is one of the embedders to
    use when classes never seen in training will be queried (with
    ``validation_split="classes"``), beside :class:`NormalizedSoftmaxEmbedder`: see the user
    guide, "Evaluating an embedding, and classes never seen in training".

    The proxies belong to the training state: ``warm_start`` and ``partial_fit`` keep them and
    accept only the classes of the first fit (another class is a ValueError); a model that was
    saved, pickled or loaded keeps its network but starts new proxies when trained further.
    ``embedding_metric_`` is "euclidean" on the unit sphere (``normalize=True``, which ranks
    like the cosine the loss uses), else "cosine".

    Parameters
    ----------
    """


class NormalizedSoftmaxEmbedder(MetricEmbedder, loss=NormalizedSoftmaxLoss):
    """Embedding trained as a softmax classifier over cosines (Zhai & Wu, "Classification is
    a Strong Baseline for Deep Metric Learning", BMVC 2019).

    Each training class gets a learnable weight vector; a row's logits are its cosines to
    them over ``temperature``. See :func:`sk_dml.losses.normalized_softmax_loss`. The class
    weights belong to the training state, as a proxy loss's proxies do: ``warm_start`` and
    ``partial_fit`` keep them and accept only the classes of the first fit (another class is a
    ValueError); a saved, pickled or loaded model starts new ones when trained further.
    ``embedding_metric_`` is "euclidean" on the unit sphere (``normalize=True``), else
    "cosine".

    Parameters
    ----------
    """


class CosFaceEmbedder(MetricEmbedder, loss=CosFaceLoss):
    """Embedding trained with CosFace, the large margin cosine loss (Wang et al., CVPR 2018).

    The normalised softmax (:class:`NormalizedSoftmaxEmbedder`) with an additive margin on the
    cosine of each row's own class. See :func:`sk_dml.losses.cosface_loss`. Its class weights
    follow the labels as :class:`NormalizedSoftmaxEmbedder`'s do.

    Parameters
    ----------
    """


class ArcFaceEmbedder(MetricEmbedder, loss=ArcFaceLoss):
    """Embedding trained with ArcFace, the additive angular margin loss (Deng et al., CVPR
    2019).

    The normalised softmax (:class:`NormalizedSoftmaxEmbedder`) with an angular margin added
    to the angle between each row and its own class's weight. See
    :func:`sk_dml.losses.arcface_loss`. Its class weights follow the labels as
    :class:`NormalizedSoftmaxEmbedder`'s do.

    Parameters
    ----------
    """


class LogRatioEmbedder(MetricEmbedder, loss=LogRatioLoss):
    """Embedding trained on a continuous target with the log-ratio loss (Kim, Kim, Cho & Kwak,
    CVPR 2019, "Deep Metric Learning Beyond Binary Supervision").

    ``fit(X, y)`` takes numbers in ``y`` (price, risk, duration; integers too): rows with close
    targets end up close, and the ratios of embedding distances follow those of target
    distances (:func:`sk_dml.losses.log_ratio_loss`). Use it before a neighbour regressor,
    ``make_pipeline(LogRatioEmbedder(), KNeighborsRegressor())``; its :meth:`score` is the R^2
    of leave-one-out 5-nearest-neighbour regression in the embedding.

    Parameters
    ----------
    """
