"""Embedders that learn from tuples of rows: labelled pairs, and triplet constraints.

Entity resolution and deduplication come with pairs of records marked match / non-match;
analysts and click logs give relative judgements, "a is more like p than like n". These
embedders take such tuples the way metric-learn's pair and triplet learners do: ``X`` is an
integer array of row indices, one tuple per row, into a ``preprocessor`` table (a numeric
array or a DataFrame with categorical, text and missing values), or, without a
preprocessor, a 3-D array holding the rows themselves. Keeping the table in a constructor
parameter and the tuples in ``X`` is what lets scikit-learn's tools work unchanged:
``GridSearchCV`` and ``cross_val_score`` split the tuples, ``clone`` copies the table, and
stratified splits and the ``"roc_auc"`` scorer see a binary classifier of pairs.
(scikit-learn's metadata routing could pass the table to ``fit`` instead, but it would be
split like the tuples, so the indices would no longer point at the right rows.)

Once fitted, they are embedders like the others: ``transform`` embeds table rows, and
``get_metric``, ``pairwise_distances`` and a Pipeline work as with class labels.
"""

from __future__ import annotations

import inspect
from typing import ClassVar

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ._sklearn_compat import StrOptions, _fit_context
from .criteria import ContrastiveLoss, Loss, TripletLoss
from .distances import paired_distance
from .embedders import _COMMON_PARAMS_DOC, MetricEmbedder, _is_dataframe
from .supervision import LabelledPairs, TripletConstraints

__all__ = ["PairEmbedder", "TripletConstraintEmbedder"]

_TUPLES_DOC = """
    preprocessor : array-like, DataFrame or None, default=None
        The table the tuples' indices point into (metric-learn's convention): ``X`` then
        holds integer row indices, shape ``(n_tuples, {size})``. None: ``X`` holds the rows
        themselves, a numeric array of shape ``(n_tuples, {size}, n_features)``. It is not
        saved by ``sk_dml.save`` (a loaded model has ``preprocessor=None``: give it rows, or
        ``set_params(preprocessor=table)``).
    loss : loss object, default=None
        What training minimises (``{default}`` when None): a loss that learns from {what}
        (see :attr:`sk_dml.criteria.Loss.supervisions`).
"""

_TUPLES_NOTE = """
    ``batch_size`` counts tuples; ``samples_per_class`` is not used. Early stopping holds out
    ``validation_fraction`` of the tuples and scores them.
"""


def _tuples_init(**own):
    """``__init__(self, preprocessor=None, loss=None, *, <own>, <MetricEmbedder's parameters>)``
    with an explicit signature, so get_params, clone and repr see every parameter."""
    inherited = inspect.signature(MetricEmbedder.__init__).parameters.values()
    loss, *shared = [p for p in inherited if p.name != "self"]
    positional, keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("preprocessor", positional, default=None),
        loss,
        *(inspect.Parameter(name, keyword, default=value) for name, value in own.items()),
        *shared,
    ]

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        for param in params:
            setattr(self, param.name, bound.arguments.get(param.name, param.default))

    signature = inspect.Signature([inspect.Parameter("self", positional), *params])
    __init__.__signature__ = signature
    return __init__


class _TupleEmbedder(MetricEmbedder):
    """What pair and triplet embedders share: reading tuples, and embedding them."""

    _tuple_size: ClassVar[int]
    _tuple_name: ClassVar[str]  # "pairs", "triplets": the kind of supervision too
    _default_loss: ClassVar[type[Loss]]
    _parameter_constraints: dict = {
        "preprocessor": [None, "array-like"],
        **MetricEmbedder._parameter_constraints,
    }
    __init__ = _tuples_init()

    def _get_loss(self) -> Loss:
        return self._default_loss() if self.loss is None else self.loss

    def _check_tuples(self, X, *, fitting: bool):
        """The tuples as int64 row indices (n, t) and the table they index."""
        t, name = self._tuple_size, self._tuple_name
        if self.preprocessor is None:
            tuples = check_array(X, allow_nd=True, ensure_all_finite="allow-nan", input_name="X")
            if tuples.ndim != 3 or tuples.shape[1] != t:
                raise ValueError(
                    f"Without a preprocessor, {name} are rows: an array of shape (n_{name}, {t}, "
                    f"n_features); got shape {tuples.shape}. To give row indices, set "
                    f"preprocessor to the table they index."
                )
            n, _, d = tuples.shape
            return np.arange(n * t).reshape(n, t), tuples.reshape(n * t, d)
        table = self.preprocessor
        index = check_array(X, dtype=None, input_name="X")
        if not np.issubdtype(index.dtype, np.integer) or index.shape[1] != t:
            raise ValueError(
                f"With a preprocessor, {name} are integer row indices of shape (n_{name}, {t}); "
                f"got an array of dtype {index.dtype} and shape {index.shape}."
            )
        n_rows = len(table)
        outside = (index < 0) | (index >= n_rows)
        if outside.any():
            raise ValueError(
                f"{np.count_nonzero(outside.any(axis=1))} of the {name} index rows outside the "
                f"preprocessor, which has {n_rows} rows (indices 0 to {n_rows - 1}); e.g. "
                f"{index[outside][0]}."
            )
        if fitting:
            self._check_distinct_members(index)
        return index.astype(np.int64), table

    def _check_distinct_members(self, index: np.ndarray) -> None:
        """A tuple that names one row twice says nothing (a pair of a row with itself)."""
        repeated = np.zeros(len(index), dtype=bool)
        for i in range(index.shape[1]):
            for j in range(i + 1, index.shape[1]):
                repeated |= index[:, i] == index[:, j]
        if repeated.any():
            first = int(np.flatnonzero(repeated)[0])
            raise ValueError(
                f"{np.count_nonzero(repeated)} of the {self._tuple_name} name the same row twice "
                f"(e.g. {self._tuple_name} {first}: {index[first].tolist()}); each member of a "
                "tuple must be a different row."
            )

    def _encoded_table(self, table, continuing: bool):
        """The table encoded for the network, and its schema (learned unless continuing)."""
        if _is_dataframe(table) and not continuing:
            validate_data(self, table, reset=True, skip_check_array=True)
        return self._encode(table, reset=not continuing)

    def _tuple_embeddings(self, X) -> np.ndarray:
        """Embeddings of the tuples' rows, shape (n, t, dim)."""
        check_is_fitted(self)
        index, table = self._check_tuples(X, fitting=False)
        used, position = np.unique(index, return_inverse=True)
        rows = table.iloc[used] if _is_dataframe(table) else np.asarray(table)[used]
        Z = self.transform(rows)
        return Z[position.reshape(index.shape)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = self.preprocessor is None
        return tags


class PairEmbedder(_TupleEmbedder):
    __doc__ = (
        """Embedding trained from pairs of rows labelled alike / not alike.

    ``PairEmbedder(preprocessor=table).fit(pairs, y)``: ``pairs`` holds row indices of
    ``table``, ``y`` is 1 for a pair of alike rows (a match) and 0 or -1 for a pair of rows that
    are not (booleans work too); no class labels are needed. The network is trained with the
    contrastive loss (Hadsell, Chopra & LeCun 2006) by default: alike rows are pulled
    together, the others pushed ``margin`` apart. Which pairs count is ``negatives``'s choice.

    It is also a binary classifier of pairs: :meth:`decision_function` is the negative learned
    distance, :meth:`predict` compares it with ``threshold_`` (set at fit for the best accuracy
    on the training pairs; :meth:`calibrate_threshold` sets it on validation pairs, for the
    best accuracy or a target precision), and :meth:`score` is the ROC AUC, so ``"roc_auc"``,
    ``GridSearchCV`` and scikit-learn's ``TunedThresholdClassifierCV`` apply.

    Parameters
    ----------
"""
        + _TUPLES_DOC.format(size=2, what="labelled pairs", default="ContrastiveLoss()")
        + """    negatives : {"in_batch", "labelled"}, default="in_batch"
        "in_batch": alike is an equivalence (as in entity resolution): the connected
        components of the alike pairs are the entities, and the loss, any class loss but a
        proxy one, scores each batch's rows labelled by entity, so every two rows of
        different entities in a batch count as not alike (in-batch negatives, Gillick et al.
        2019). "labelled": the contrastive loss of the labelled pairs only
        (:func:`sk_dml.losses.contrastive_pair_loss`), for a similarity that is not
        transitive or unlabelled pairs that must not count.
"""
        + _COMMON_PARAMS_DOC
        + """
    classes_ : ndarray of shape (2,)
        The pair labels: ``classes_[1]`` marks alike pairs.
    threshold_ : float
        Pairs whose :meth:`decision_function` is at least this are predicted alike.
"""
        + _TUPLES_NOTE
        + """
    Examples
    --------
    >>> emb = PairEmbedder(preprocessor=records).fit(pairs, is_match)
    >>> emb.calibrate_threshold(val_pairs, val_is_match, strategy="precision", min_precision=0.95)
    >>> emb.predict(new_pairs)           # 1 for a match, 0 otherwise
    >>> emb.transform(records)           # embeddings of the records, for a neighbour search
"""
    )

    _tuple_size = 2
    _tuple_name = "pairs"
    _default_loss = ContrastiveLoss
    _parameter_constraints: dict = {
        "negatives": [StrOptions({"in_batch", "labelled"})],
        **_TupleEmbedder._parameter_constraints,
    }
    __init__ = _tuples_init(negatives="in_batch")
    _FITTED_ATTRIBUTES = (*MetricEmbedder._FITTED_ATTRIBUTES, "threshold_")

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train on the pairs ``X`` labelled ``y``, then set ``threshold_`` for the best
        accuracy on them. Returns the fitted estimator."""
        super().fit(X, y)
        self.classes_ = _pair_labels(column_or_1d(y))[0]
        return self.calibrate_threshold(X, y)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y):
        """One epoch over the pairs ``X`` labelled ``y`` (with the labels of the first call),
        then ``threshold_`` for the best accuracy on them. Returns the estimator."""
        super().partial_fit(X, y)
        self.classes_ = _pair_labels(column_or_1d(y))[0]
        return self.calibrate_threshold(X, y)

    def _check_training_data(self, X, y, continuing: bool):
        index, table = self._check_tuples(X, fitting=True)
        y = column_or_1d(y, warn=True)
        check_consistent_length(index, y)
        classes, alike = _pair_labels(y)
        fitted = getattr(self, "classes_", classes)
        if continuing and not np.array_equal(classes, fitted):
            raise ValueError(f"y has the pair labels {classes}, not those of fit ({fitted}).")
        rows, schema = self._encoded_table(table, continuing)
        in_batch = self.negatives == "in_batch"
        return LabelledPairs(rows, alike.astype(np.int64), tuples=index, in_batch=in_batch), schema

    def decision_function(self, X) -> np.ndarray:
        """The negative learned distance of each pair: higher means more alike."""
        Z = self._tuple_embeddings(X)
        return -paired_distance(Z[:, 0], Z[:, 1], self.embedding_metric_)

    def predict(self, X) -> np.ndarray:
        """``classes_[1]`` (alike) for the pairs whose decision is at least ``threshold_``,
        else ``classes_[0]``."""
        alike = self.decision_function(X) >= self.threshold_
        return self.classes_[alike.astype(int)]

    def score(self, X, y) -> float:
        """ROC AUC of :meth:`decision_function` on the pairs ``X`` labelled ``y``."""
        _, alike = _pair_labels(column_or_1d(y), known=self.classes_)
        return float(roc_auc_score(alike, self.decision_function(X)))

    def calibrate_threshold(self, X, y, *, strategy="accuracy", min_precision=None):
        """Set ``threshold_`` from the pairs ``X`` labelled ``y`` (validation pairs, ideally).

        Parameters
        ----------
        strategy : {"accuracy", "precision"}, default="accuracy"
            "accuracy": the threshold with the most correct predictions. "precision": the
            lowest threshold (the most alike pairs found) whose precision on these pairs is at
            least ``min_precision``.
        min_precision : float in (0, 1], required with strategy="precision"

        Returns the estimator.
        """
        if strategy not in ("accuracy", "precision"):
            raise ValueError(f"strategy must be 'accuracy' or 'precision', got {strategy!r}.")
        _, alike = _pair_labels(column_or_1d(y), known=getattr(self, "classes_", None))
        scores = self.decision_function(X)
        if strategy == "accuracy":
            fpr, tpr, thresholds = roc_curve(alike, scores)
            n_alike = np.count_nonzero(alike)
            correct = tpr * n_alike + (1 - fpr) * (len(alike) - n_alike)
            self.threshold_ = float(thresholds[np.argmax(correct)])
            return self
        if min_precision is None or not 0 < min_precision <= 1:
            raise ValueError(
                f"strategy='precision' needs min_precision in (0, 1], got {min_precision!r}."
            )
        precision, _, thresholds = precision_recall_curve(alike, scores)
        reached = np.flatnonzero(precision[:-1] >= min_precision)
        if len(reached) == 0:
            raise ValueError(
                f"No threshold reaches precision {min_precision} on these pairs (the highest "
                f"is {precision[:-1].max():.4f}); lower min_precision."
            )
        self.threshold_ = float(thresholds[reached[0]])  # the most recall at that precision
        return self

    def _get_fitted_state(self):
        fitted, tensors = super()._get_fitted_state()
        fitted["classes_"] = self.classes_.tolist()
        return fitted, tensors

    def _set_fitted_state(self, fitted, module):
        fitted = dict(fitted)
        self.classes_ = np.asarray(fitted.pop("classes_"))
        super()._set_fitted_state(fitted, module)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.target_tags.required = True
        return tags


class TripletConstraintEmbedder(_TupleEmbedder):
    __doc__ = (
        """Embedding trained from relative comparisons: "anchor a is more like p than n".

    ``TripletConstraintEmbedder(preprocessor=table).fit(triplets)``: each row of
    ``triplets`` holds the row indices ``(a, p, n)`` of ``table``. The network is trained
    with the triplet margin loss on the given triplets, ``relu(D_ap - D_an + margin)``
    (:func:`sk_dml.losses.triplet_constraint_loss`); no labels are needed.

    :meth:`decision_function` is ``D_an - D_ap`` (positive when the constraint holds),
    :meth:`predict` gives 1 where it holds and -1 where not, and :meth:`score` is the fraction
    of triplets whose constraint holds, as in metric-learn's triplet learners.

    Parameters
    ----------
"""
        + _TUPLES_DOC.format(size=3, what="triplet constraints", default="TripletLoss()")
        + _COMMON_PARAMS_DOC
        + _TUPLES_NOTE
    )

    _tuple_size = 3
    _tuple_name = "triplets"
    _default_loss = TripletLoss

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train on the triplets ``X`` (``y`` is ignored). Returns the fitted estimator."""
        return super().fit(X, y)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One epoch over the triplets ``X`` (``y`` is ignored). Returns the estimator."""
        return super().partial_fit(X, y)

    def _check_training_data(self, X, y, continuing: bool):
        index, table = self._check_tuples(X, fitting=True)
        rows, schema = self._encoded_table(table, continuing)
        return TripletConstraints(rows, np.zeros(len(index), np.int64), tuples=index), schema

    def decision_function(self, X) -> np.ndarray:
        """``D(a, n) - D(a, p)`` of each triplet: positive when a is nearer p than n."""
        Z = self._tuple_embeddings(X)
        metric = self.embedding_metric_
        return paired_distance(Z[:, 0], Z[:, 2], metric) - paired_distance(Z[:, 0], Z[:, 1], metric)

    def predict(self, X) -> np.ndarray:
        """1 where the triplet's constraint holds (``D_ap < D_an``), else -1."""
        return np.where(self.decision_function(X) > 0, 1, -1)

    def score(self, X, y=None) -> float:
        """The fraction of the triplets ``X`` whose constraint holds."""
        return float(np.mean(self.predict(X) == 1))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags


def _pair_labels(y: np.ndarray, known: np.ndarray | None = None):
    """The two pair labels (sorted) and whether each pair is alike (the larger label)."""
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise ValueError(
            f"Pair labels must be 1 (alike) and 0 or -1 (not alike), or booleans; got {y.dtype} "
            f"labels such as {y[0]!r}."
        )
    y = check_array(y, ensure_2d=False, dtype=None, input_name="y")
    classes = np.unique(y)
    if known is not None:
        unknown = classes[~np.isin(classes, known)]
        if len(unknown):
            raise ValueError(f"y has pair labels {unknown.tolist()} not seen at fit ({known}).")
        return known, y == known[1]
    if not set(classes.tolist()) <= {-1, 0, 1}:
        raise ValueError(
            f"Pair labels must be 1 (alike) and 0 or -1 (not alike), or booleans; got "
            f"{classes.tolist()}."
        )
    if len(classes) != 2:
        raise ValueError(
            f"y holds one kind of pair label only ({classes.tolist()}); training needs both "
            "alike and not-alike pairs."
        )
    return classes, y == classes[1]
