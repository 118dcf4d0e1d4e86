"""scikit-learn estimators: one small class per loss over one shared base.

The base does everything a loss does not decide: parameter and data validation, the network,
the device, the fit loop (``sk_dml._training``), ``transform``, ``score`` and the learned
metric. A subclass names its loss's parameters and returns the loss as a callable.
"""

from __future__ import annotations

import copy
import functools
import os
import threading
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _dask, losses
from ._criteria import ProxyAnchorCriterion
from ._distributed import current_group, on_main
from ._training import Objective, TrainingSettings, embed, fresh_state, run_epochs
from .checkpoint import (
    Checkpoint,
    fingerprint,
    restore_rng,
    rng_state_to_tensors,
    weights_digest,
)
from .distances import METRICS, paired_distance, pairwise_distance
from .metric import LearnedMetric
from .metrics import mean_average_precision_at_r, precision_at_k
from .miners import TRIPLET_MINING
from .nets import ACTIVATIONS, ResidualEmbedding, build_module

__all__ = [
    "ContrastiveEmbedder",
    "LiftedStructEmbedder",
    "NPairEmbedder",
    "ProxyAnchorEmbedder",
    "TripletEmbedder",
]

_COMMON_PARAMS_DOC = """
    n_components : int, default=64
        Dimension of the embedding (ignored when ``module`` is given).
    hidden_layer_sizes : tuple of int, default=(512, 512)
        Widths of the MLP's hidden layers.
    activation : {"relu", "gelu", "tanh", "leaky_relu", "elu", "silu"}, default="relu"
    dropout : float in [0, 1), default=0.0
        Dropout after each hidden layer.
    residual : bool
        Embed with ``linear(x) + mlp(x)`` (:class:`sk_dml.nets.ResidualEmbedding`), started as
        the PCA rotation of the training rows, instead of a plain MLP: training starts from
        the input's own distances and keeps what distinguishes classes it never saw. The
        default is True for the proxy loss and False for the others (see the user guide,
        "Evaluating an embedding, and classes never seen in training").
    normalize : bool
        L2-normalise the output, so embeddings lie on the unit sphere. The default is True for
        the margin losses (triplet, contrastive), whose margins then have a fixed scale, and
        False for N-pair and lifted structure, whose log-sum-exp needs unbounded distances.
    module : torch.nn.Module or callable, default=None
        Your own network instead of the MLP: a module (deep-copied at each fresh fit) or a
        callable ``n_features -> nn.Module``. It must map (batch, n_features) float32 to
        (batch, dim).
    batch_size : int, default=256
        Rows per training batch.
    samples_per_class : int, default=4
        Rows of each class that travel together in a batch (K of the P x K batches); every row
        is still seen once per epoch. ``batch_size`` must be a multiple of it.
    max_epochs : int, default=60
        Upper bound on the passes over the training data.
    learning_rate : float, default=3e-3
        AdamW learning rate (the starting one, with the cosine schedule).
    learning_rate_schedule : {"cosine", "constant"}, default="cosine"
        "cosine" anneals the learning rate to 0 over the ``max_epochs`` of a ``fit`` (each
        warm-started fit anneals anew); training still stops early on a plateau, and reaching
        ``max_epochs`` is expected, so no ConvergenceWarning. "constant" keeps it fixed and
        warns when ``max_epochs`` ends training before a plateau, as MLPClassifier does.
        ``partial_fit`` always uses the constant rate.
    weight_decay : float, default=0.0
        AdamW weight decay.
    early_stopping : bool, default=False
        Hold out part of the training data (``validation_split``), score it after each epoch,
        stop when the score stops improving and keep the best weights. Otherwise stop when the
        training loss stops improving.
    validation_split : {"rows", "classes"}, default="rows"
        What ``early_stopping`` holds out. "rows": ``validation_fraction`` of the rows
        (stratified), scored by leave-one-out precision@1, which selects for the classes seen
        in training. "classes": ``validation_fraction`` of the classes (at least 2) with all
        their rows, scored by leave-one-out MAP@R among them, and the network before training
        is a candidate too: this selects for classes never seen in training (Musgrave et al.
        2020), the setting to use when new classes will come.
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
        Validation score per epoch (``early_stopping=True`` only): precision@1, or MAP@R with
        ``validation_split="classes"``.
    best_loss_ : float
        Lowest epoch loss.
    best_score_ : float or None
        Best validation score (``early_stopping=True`` only); with
        ``validation_split="classes"`` the untrained network's score counts too.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X has string column names.
"""

_COMMON_CONSTRAINTS = {
    "n_components": [Interval(Integral, 1, None, closed="left")],
    "hidden_layer_sizes": [list, tuple],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "residual": ["boolean"],
    "normalize": ["boolean"],
    "module": [None, torch.nn.Module, callable],
    "batch_size": [Interval(Integral, 2, None, closed="left")],
    "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "learning_rate_schedule": [StrOptions({"cosine", "constant"})],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "early_stopping": ["boolean"],
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
_COMMON_PARAMS = tuple(_COMMON_CONSTRAINTS)
# Held while a fit seeds torch's process-wide generator and draws its initial weights from it.
_TORCH_RNG_LOCK = threading.Lock()
_MARGIN = [Interval(Real, 0, None, closed="left")]
_DISTANCE = [StrOptions(set(METRICS))]


def _common(params: dict) -> dict:
    """The shared parameters out of a subclass ``__init__``'s ``locals()``."""
    return {name: params[name] for name in _COMMON_PARAMS}


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


class BaseEmbedder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Shared machinery of the embedders; subclasses define ``_loss_function``."""

    _parameter_constraints: dict = dict(_COMMON_CONSTRAINTS)

    def __init__(
        self,
        *,
        n_components,
        hidden_layer_sizes,
        activation,
        dropout,
        residual,
        normalize,
        module,
        batch_size,
        samples_per_class,
        max_epochs,
        learning_rate,
        learning_rate_schedule,
        weight_decay,
        early_stopping,
        validation_split,
        validation_fraction,
        n_iter_no_change,
        tol,
        warm_start,
        random_state,
        verbose,
        device,
        checkpoint_dir,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.residual = residual
        self.normalize = normalize
        self.module = module
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

    # -- what a subclass decides ------------------------------------------------------------
    def _loss_function(self):
        """``(embeddings, labels) -> scalar loss`` (a picklable callable)."""
        raise NotImplementedError

    def _new_criterion(self, classes: np.ndarray, width: int):
        """The loss a fresh fit trains with, given the training classes (sorted) and the
        embedding width; a loss with learnable parameters returns a torch module."""
        return self._loss_function()

    def _embedding_metric(self) -> str:
        """The distance between embeddings that the loss optimises."""
        return self.distance

    # -- fitting ------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the embedding on features ``X`` (n_samples, n_features) and labels ``y``.

        Labels may be of any type (ints, strings, pandas categoricals); only which rows share a
        label matters. Returns the fitted estimator.
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

    def _check_training_data(self, X, y, continuing: bool):
        """Validated ``X``, the sorted classes of ``y`` and each row's index into them."""
        X, y = validate_data(self, X, y, reset=not continuing, dtype=[np.float32, np.float64])
        check_classification_targets(y)
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
        return X, classes, codes.ravel()

    def _split_validation(self, X, codes, rng):
        """The early-stopping hold-out: rows (stratified) or whole classes."""
        if self.validation_split == "classes":
            return self._split_classes(X, codes, rng)
        counts = np.bincount(codes)
        stratify = codes if counts.min() >= 2 else None
        X_train, X_val, y_train, y_val = train_test_split(
            X, codes, test_size=self.validation_fraction, stratify=stratify, random_state=rng
        )
        if np.bincount(y_val).max() < 2:
            raise ValueError(
                f"validation_fraction={self.validation_fraction} leaves no class with 2 samples "
                "in the validation set; raise it or set early_stopping=False."
            )
        return X_train, y_train, X_val, y_val

    def _split_classes(self, X, codes, rng):
        """Hold out ``validation_fraction`` of the classes of 2+ rows (at least 2 of them)."""
        counts = np.bincount(codes)
        candidates = np.flatnonzero(counts >= 2)
        n_held = max(2, int(round(self.validation_fraction * len(counts))))
        if len(candidates) < n_held + 2:
            raise ValueError(
                f"validation_split='classes' holds out {n_held} classes of 2 or more samples and "
                f"trains on at least 2 others, but y has {len(candidates)} such classes; use "
                "validation_split='rows' or set early_stopping=False."
            )
        held = np.isin(codes, rng.choice(candidates, n_held, replace=False))
        return X[~held], codes[~held], X[held], codes[held]

    def _new_module(self, n_features: int) -> torch.nn.Module:
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
            normalize=self.normalize,
            residual=self.residual,
        )

    def _train(self, X, y, *, epochs: int, continuing: bool, stop_early: bool):
        X, classes, codes = self._check_training_data(X, y, continuing)
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
                fingerprint(self, X, codes, start),
                writer=group is None or group.is_main,
            )
            resume = on_main(group, functools.partial(_open_checkpoint, checkpoint))
            if resume is not None:  # replay the interrupted fit's draws from its first one
                rng = restore_rng(np.random.RandomState(), resume["start_rng"])
            checkpoint.start_rng = rng_state_to_tensors(rng)
        seed = int(rng.randint(np.iinfo(np.int32).max)) + (group.rank if group else 0)
        generator = torch.Generator(device=device).manual_seed(seed)  # own dropout per rank
        fork_devices = [device] if device.type == "cuda" else []
        # Torch's process-wide generator is seeded for this fit (under a lock while the network
        # and the loss's parameters are drawn from it) and given back as it was at the end.
        with torch.random.fork_rng(devices=fork_devices):
            with _TORCH_RNG_LOCK:  # seeding the shared generator: one fit at a time
                torch.manual_seed(seed)
                if continuing:  # on copies: a fit that fails leaves the fitted model as it was
                    module, state = copy.deepcopy((self.module_, self._training_state))
                    module.to(device)
                    if state is not None:
                        state.objective.to(device)  # the loss's parameters too
                else:
                    module = self._new_module(X.shape[1]).to(device)
                validation = None
                if self.early_stopping and stop_early:
                    X, codes, X_val, y_val = self._split_validation(X, codes, rng)
                    validation = (torch.tensor(X_val, dtype=torch.float32, device=device), y_val)
                    seen = np.unique(codes)  # the classes left for training
                    classes, codes = classes[seen], np.searchsorted(seen, codes)
                if not continuing:
                    if isinstance(module, ResidualEmbedding):
                        module.init_from_data(_pca_sample(X))
                    state = self._fresh_state(module, classes, rng, device)
                elif state is None:  # unpickled or loaded: no optimizer or loss parameters kept
                    state = self._resumed_state(module, classes, rng, device)
            # Training runs outside the lock: sk_dml's dropout draws from the fit's own
            # generator; a custom module's torch.nn.Dropout from the seeded shared one.
            criterion = state.objective.criterion
            if isinstance(criterion, ProxyAnchorCriterion):  # this call's labels -> its proxies
                codes = criterion.proxy_index(classes)[codes]
            metric = self._embedding_metric()
            by_classes = self.validation_split == "classes"
            score = mean_average_precision_at_r if by_classes else precision_at_k
            run_epochs(
                state.objective,
                torch.tensor(X, dtype=torch.float32, device=device),
                torch.as_tensor(codes, device=device),
                state,
                TrainingSettings(
                    batch_size=self.batch_size,
                    samples_per_class=self.samples_per_class,
                    tol=self.tol,
                    n_iter_no_change=self.n_iter_no_change,
                    learning_rate=self.learning_rate,
                    schedule=self.learning_rate_schedule if stop_early else "constant",
                    verbose=self.verbose,
                ),
                max_epochs=epochs,
                validation=validation,
                score_fn=functools.partial(score, metric=metric),
                stop_early=stop_early,
                score_start=by_classes,
                group=group,
                checkpoint=checkpoint,
                resume=resume,
                generator=generator,
            )
        # Only now, with training done, does the estimator change: a failed fit leaves a
        # previously fitted model intact.
        self.module_ = module
        self._training_state = state
        self.device_ = device
        self.embedding_metric_ = metric
        self.n_iter_ = state.n_iter
        self.loss_curve_ = list(state.loss_curve)
        self.validation_scores_ = list(state.validation_scores) if validation else None
        self.best_loss_ = state.best_loss
        self.best_score_ = state.best_score if validation else None
        self._n_features_out = embed(module, X[:1]).shape[1]
        # A checkpoint left by an interrupted warm start resumes at the next warm start, even
        # though module_ now holds that run's best weights rather than its start.
        unfinished = checkpoint is not None and checkpoint.path.exists()
        self._unfinished_run_start = start if unfinished and continuing else None
        return self

    def _fresh_state(self, module, classes, rng, device):
        """A new loss (with new parameters, if it has any) and optimizer around ``module``."""
        width = embed(module, np.zeros((1, self.n_features_in_), np.float32)).shape[1]
        criterion = self._new_criterion(classes, width)
        if isinstance(criterion, torch.nn.Module):
            criterion = criterion.to(device)
        objective = Objective(module, criterion)
        return fresh_state(objective, self.learning_rate, self.weight_decay, rng)

    def _resumed_state(self, module, classes, rng, device):
        """A training state for a model that was unpickled or loaded: a new optimizer (and new
        loss parameters), but the history so far, so n_iter_ and loss_curve_ keep counting."""
        state = self._fresh_state(module, classes, rng, device)
        state.loss_curve = list(self.loss_curve_)
        state.validation_scores = list(self.validation_scores_ or [])
        state.best_loss = self.best_loss_
        state.best_score = self.best_score_ if self.best_score_ is not None else -np.inf
        return state

    # -- using the embedding ------------------------------------------------------------------
    def _embed(self, X) -> np.ndarray:
        """Embeddings of already validated rows (no checks: the hot path of the metric)."""
        return embed(self.module_, X)

    def transform(self, X):
        """Embed ``X``: returns an array of shape (n_samples, dim), float32.

        A dask array or DataFrame gives a lazy float32 dask array, computed block-wise.
        """
        if _dask.is_dask_collection(X):
            return _dask.transform(self, X)
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float32, np.float64])
        return self._embed(X)

    def score(self, X, y) -> float:
        """Leave-one-out precision@1 of ``(X, y)`` in the learned space (higher is better).

        This is what ``GridSearchCV`` maximises on a bare embedder. Dask input is embedded
        block-wise; the neighbour search then runs in memory, in this process.
        """
        if _dask.is_dask_collection(X) or _dask.is_dask_collection(y):
            return _dask.score(self, X, y)
        return precision_at_k(self.transform(X), np.asarray(y), k=1, metric=self.embedding_metric_)

    def get_metric(self) -> LearnedMetric:
        """The learned distance on raw feature rows, as a picklable ``d(u, v) -> float``.

        ``KNeighborsClassifier(metric=emb.get_metric())`` works on raw features; the faster
        route to the same predictions is
        ``make_pipeline(emb, KNeighborsClassifier(metric=emb.embedding_metric_))``.
        """
        check_is_fitted(self)
        return LearnedMetric(self)

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
        """Learned distance of each pair in ``pairs`` of shape (n_pairs, 2, n_features)."""
        check_is_fitted(self)
        pairs = np.asarray(pairs)
        if pairs.ndim != 3 or pairs.shape[1] != 2:
            raise ValueError(f"pairs must have shape (n_pairs, 2, n_features), got {pairs.shape}.")
        left, right = self.transform(pairs[:, 0]), self.transform(pairs[:, 1])
        return paired_distance(left, right, self.embedding_metric_)

    # -- scikit-learn plumbing ----------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def __getstate__(self):
        """Pickle with the network on the CPU, so a CUDA-trained model loads anywhere."""
        state = super().__getstate__()
        if "module_" in state:
            state["module_"] = _to_cpu_copy(state["module_"])
            state["_training_state"] = None  # the optimizer is not kept; warm start makes anew
        return state


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


# -------------------------------------------------------------------------------------------
class TripletEmbedder(BaseEmbedder):
    __doc__ = (
        """Embedding trained with the triplet margin loss and hard-sample mining.

    For anchor a, positive p (same label) and negative n, the loss is
    ``relu(D_ap - D_an + margin)``: each anchor must be nearer its positives than its negatives
    by ``margin``. See :func:`sk_dml.losses.triplet_loss`.

    Parameters
    ----------
    margin : float, default=0.2
    mining : {"all", "semihard", "hard", "batch_hard"}, default="all"
        Which triplets of a batch count (:mod:`sk_dml.miners`).
    distance : str, default="euclidean"
        Distance between embeddings (:data:`sk_dml.distances.METRICS`).
"""
        + _COMMON_PARAMS_DOC
    )

    _parameter_constraints = {
        **BaseEmbedder._parameter_constraints,
        "margin": _MARGIN,
        "mining": [StrOptions(set(TRIPLET_MINING))],
        "distance": _DISTANCE,
    }

    def __init__(
        self, *, margin=0.2, mining="all", distance="euclidean",
        n_components=64, hidden_layer_sizes=(512, 512), activation="relu", dropout=0.0,
        residual=False, normalize=True, module=None, batch_size=256, samples_per_class=4,
        max_epochs=60, learning_rate=3e-3, learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping=False, validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=1e-4,
        warm_start=False, random_state=None, verbose=0, device="auto", checkpoint_dir=None,
    ):  # fmt: skip
        self.margin = margin
        self.mining = mining
        self.distance = distance
        super().__init__(**_common(locals()))

    def _loss_function(self):
        return functools.partial(
            losses.triplet_loss, margin=self.margin, distance=self.distance, mining=self.mining
        )


class ContrastiveEmbedder(BaseEmbedder):
    __doc__ = (
        """Embedding trained with the contrastive loss (Hadsell et al. 2006).

    Same-label pairs are pulled together (``D^2``), different-label pairs pushed apart until
    they are ``margin`` away (``relu(margin - D)^2``). See
    :func:`sk_dml.losses.contrastive_loss`.

    Parameters
    ----------
    margin : float, default=1.0
    distance : str, default="euclidean"
"""
        + _COMMON_PARAMS_DOC
    )

    _parameter_constraints = {
        **BaseEmbedder._parameter_constraints,
        "margin": _MARGIN,
        "distance": _DISTANCE,
    }

    def __init__(
        self, *, margin=1.0, distance="euclidean",
        n_components=64, hidden_layer_sizes=(512, 512), activation="relu", dropout=0.0,
        residual=False, normalize=True, module=None, batch_size=256, samples_per_class=4,
        max_epochs=60, learning_rate=3e-3, learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping=False, validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=1e-4,
        warm_start=False, random_state=None, verbose=0, device="auto", checkpoint_dir=None,
    ):  # fmt: skip
        self.margin = margin
        self.distance = distance
        super().__init__(**_common(locals()))

    def _loss_function(self):
        return functools.partial(
            losses.contrastive_loss, margin=self.margin, distance=self.distance
        )


class NPairEmbedder(BaseEmbedder):
    __doc__ = (
        """Embedding trained with the multi-class N-pair loss (Sohn 2016).

    Each anchor is compared with one positive and the negatives of every other class at once,
    by dot product: ``log(1 + sum_n exp(s_an - s_ap))``. See :func:`sk_dml.losses.npair_loss`.
    With ``normalize=True`` the dot product ranks like Euclidean distance on the unit sphere,
    so ``embedding_metric_`` is "euclidean"; without it, "cosine".

    Parameters
    ----------
    l2_reg : float, default=0.002
        Weight of the mean squared embedding norm, which keeps the unnormalised embeddings
        (``normalize=False`` by default here) from growing without bound.
"""
        + _COMMON_PARAMS_DOC
    )

    _parameter_constraints = {
        **BaseEmbedder._parameter_constraints,
        "l2_reg": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self, *, l2_reg=0.002,
        n_components=64, hidden_layer_sizes=(512, 512), activation="relu", dropout=0.0,
        residual=False, normalize=False, module=None, batch_size=256, samples_per_class=4,
        max_epochs=60, learning_rate=3e-3, learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping=False, validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=1e-4,
        warm_start=False, random_state=None, verbose=0, device="auto", checkpoint_dir=None,
    ):  # fmt: skip
        self.l2_reg = l2_reg
        super().__init__(**_common(locals()))

    def _loss_function(self):
        return functools.partial(losses.npair_loss, l2_reg=self.l2_reg)

    def _embedding_metric(self) -> str:
        return "euclidean" if self.normalize and self.module is None else "cosine"


class LiftedStructEmbedder(BaseEmbedder):
    __doc__ = (
        """Embedding trained with the lifted structured loss (Oh Song et al. 2016).

    Every positive pair of a batch is contrasted with the hardest negatives of both its
    members: ``variant="hard"`` takes the nearer hardest negative (the paper's eq. 3),
    ``variant="smooth"`` the paper's log-sum-exp bound over all negatives (eq. 4). See
    :func:`sk_dml.losses.lifted_struct_loss`.

    Parameters
    ----------
    margin : float, default=1.0
    variant : {"smooth", "hard"}, default="smooth"
    distance : str, default="euclidean"
"""
        + _COMMON_PARAMS_DOC
    )

    _parameter_constraints = {
        **BaseEmbedder._parameter_constraints,
        "margin": _MARGIN,
        "variant": [StrOptions({"smooth", "hard"})],
        "distance": _DISTANCE,
    }

    def __init__(
        self, *, margin=1.0, variant="smooth", distance="euclidean",
        n_components=64, hidden_layer_sizes=(512, 512), activation="relu", dropout=0.0,
        residual=False, normalize=False, module=None, batch_size=256, samples_per_class=4,
        max_epochs=60, learning_rate=3e-3, learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping=False, validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=1e-4,
        warm_start=False, random_state=None, verbose=0, device="auto", checkpoint_dir=None,
    ):  # fmt: skip
        self.margin = margin
        self.variant = variant
        self.distance = distance
        super().__init__(**_common(locals()))

    def _loss_function(self):
        return functools.partial(
            losses.lifted_struct_loss,
            margin=self.margin,
            distance=self.distance,
            variant=self.variant,
        )


class ProxyAnchorEmbedder(BaseEmbedder):
    __doc__ = (
        """Embedding trained with the Proxy-Anchor loss (Kim et al., CVPR 2020).

    Each class gets a learnable proxy; every row is pulled towards its class's proxy and pushed
    from the others, weighted by how hard it is (``alpha``), so each batch informs every class
    at a cost of O(batch x classes). See :func:`sk_dml.losses.proxy_anchor_loss`. With the
    residual network it starts from and its low learning rate, it is the embedder to use when
    classes never seen in training will be queried (with ``early_stopping=True,
    validation_split="classes"``): see the user guide, "Evaluating an embedding, and classes
    never seen in training".

    The proxies belong to the training state: ``warm_start`` and ``partial_fit`` keep them and
    accept only the classes of the first fit (another class is a ValueError); a model that was
    saved, pickled or loaded keeps its network but starts new proxies when trained further.
    ``embedding_metric_`` is "euclidean" on the unit sphere (``normalize=True``, which ranks
    like the cosine the loss uses), else "cosine".

    Parameters
    ----------
    margin : float, default=0.1
        The loss's delta: a row is pulled until its cosine to its proxy is well above
        ``margin``, and pushed until its cosine to every other proxy is well below
        ``-margin``.
    alpha : float, default=32.0
        Scale of the similarities inside the log-sum-exp (how sharply hard rows dominate).
"""
        + _COMMON_PARAMS_DOC
    )

    _parameter_constraints = {
        **BaseEmbedder._parameter_constraints,
        "margin": _MARGIN,
        "alpha": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self, *, margin=0.1, alpha=32.0,
        n_components=64, hidden_layer_sizes=(512, 512), activation="relu", dropout=0.0,
        residual=True, normalize=True, module=None, batch_size=256, samples_per_class=4,
        max_epochs=60, learning_rate=3e-4, learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping=False, validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=1e-4,
        warm_start=False, random_state=None, verbose=0, device="auto", checkpoint_dir=None,
    ):  # fmt: skip
        self.margin = margin
        self.alpha = alpha
        super().__init__(**_common(locals()))

    def _new_criterion(self, classes, width):
        return ProxyAnchorCriterion(classes, width, margin=self.margin, alpha=self.alpha)

    def _embedding_metric(self) -> str:
        return "euclidean" if self.normalize and self.module is None else "cosine"
