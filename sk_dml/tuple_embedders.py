"""Embedders that learn from tuples of rows: labelled pairs, and triplet constraints.

Entity resolution and deduplication come with pairs of records marked match / non-match;
analysts and click logs give relative judgements, "a is more like p than like n". These
embedders take such tuples the way metric-learn's pair and triplet learners do: ``X`` is an
integer array of row indices, one tuple per row, into a ``preprocessor`` table (a numeric
array or a DataFrame with categorical, text and missing values), or indicators of any kind
that a callable ``preprocessor`` maps to rows; or ``X`` is a 3-D array holding the rows
themselves (with or without a preprocessor). Keeping the table in a constructor
parameter and the tuples in ``X`` is what lets scikit-learn's tools work unchanged:
``GridSearchCV`` and ``cross_val_score`` split the tuples, ``clone`` copies the table, and
stratified splits and the ``"roc_auc"`` scorer see a binary classifier of pairs.
(scikit-learn's metadata routing could pass the table to ``fit`` instead, but it would be
split like the tuples, so the indices would no longer point at the right rows.)

Once fitted, they are embedders like the others: ``transform`` embeds table rows, and
``get_metric``, ``pairwise_distances`` and a Pipeline work as with class labels;
``pair_distance`` and ``pair_score`` also take pairs of indices into the preprocessor.
"""

from __future__ import annotations

import math
import warnings
from numbers import Real
from typing import ClassVar

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.utils import metadata_routing
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ._embedder import shared_arguments
from ._embedder_parameters import SHARED_PARAMETERS_DOC
from ._sklearn_compat import StrOptions, _fit_context
from ._thresholds import best_threshold, check_calibration, check_calibration_params
from ._tuples import read_tuples
from .criteria import ContrastiveLoss, Loss, TripletLoss
from .distances import paired_distance
from .embedders import MetricEmbedder
from .supervision import LabelledPairs, TripletConstraints, pair_labels
from .tabular import is_dataframe

__all__ = ["PairEmbedder", "TripletConstraintEmbedder", "check_tuples"]

_TUPLES_DOC = """
    preprocessor : array-like, DataFrame, callable or None, default=None
        The table the tuples' indices point into (metric-learn's convention): ``X`` then
        holds integer row indices, shape ``(n_tuples, {size})``. A callable maps a 1-D array
        of indicators (integers, strings, ...) to their rows, an array of shape
        ``(n_indicators, n_features)`` or a DataFrame: ``X`` then holds indicators; it is
        called on the distinct ones, so a fit learns the columns' statistics from the rows the
        tuples name. ``X`` may also hold the rows themselves, a numeric array of shape
        ``(n_tuples, {size}, n_features)``, with or without a preprocessor (without, it must).
        Identical rows of such an ``X`` are one row for training, as one index would be. The
        preprocessor is not saved by ``sk_dml.save`` (a loaded model has
        ``preprocessor=None``: give it rows, or ``set_params(preprocessor=table)``).
    loss : loss object, default=None
        What training minimises (``{default}`` when None): a loss that learns from {what}
        (see :attr:`sk_dml.criteria.Loss.supervisions`).
"""

#: The start of the tuple embedders: the untrained network is the classical representation.
_TUPLES_START_DOC = """
    residual : bool, default=True
        Start from the PCA rotation of the encoded table, ``linear(x) + mlp(x)``
        (:class:`sk_dml.nets.ResidualEmbedding`): before training, the learned distance is
        the Euclidean distance of the table's rows as the input layer reads them (numbers
        standardised, categories one-hot-scaled, text as TF-IDF), and with ``early_stopping``
        that start is a candidate, so the fit never ends below it on the held-out tuples.
    normalize : bool, default=False
        L2-normalise the output. Off by default, so that the start is the rows' Euclidean
        distance: normalised, it would be their cosine, which ranks neighbours otherwise (on
        satimage, 5-NN accuracy 0.877 instead of 0.904; ``benchmarks/results/few_pairs.md``).
        For text columns, whose TF-IDF is compared by cosine, ``normalize=True`` with
        ``n_components=256`` is the entity-resolution setting (user guide).
    learning_rate : float or "auto", default=3e-4
        AdamW's starting learning rate, low enough to refine the start rather than replace
        it; "auto" takes the loss's choice."""

_TUPLES_NOTE = """
    ``batch_size`` counts tuples; ``samples_per_class`` is not used. Early stopping holds out
    ``validation_fraction`` of the tuples (stratified by label for pairs), scores them before
    training and after each epoch (pairs: ROC AUC; triplets: the fraction whose constraint
    holds), and keeps the best network, the untrained one included.
"""


class _TupleEmbedder(MetricEmbedder):
    """What pair and triplet embedders share: reading tuples, and embedding them."""

    _tuple_size: ClassVar[int]
    _supervision: ClassVar[type[LabelledPairs] | type[TripletConstraints]]
    _default_loss: ClassVar[type[Loss]]
    _parameter_constraints: dict = {
        "preprocessor": [None, "array-like", callable],
        **MetricEmbedder._parameter_constraints,
    }

    # The residual start without normalisation, refined at a low rate and selected on
    # held-out tuples: the untrained distance is the table's own (benchmarks/few_pairs.py).
    # fmt: off
    def __init__(
        self, preprocessor=None, loss=None, *,
        n_components=64, hidden_layer_sizes=(512, 512), activation="relu", dropout=0.0,
        residual=True, normalize=False, module=None, categorical_features="from_dtype",
        text_features=None, min_frequency=5, category_embedding_dim="auto", batch_size=256,
        samples_per_class=4, max_epochs=60, learning_rate=3e-4,
        learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping="auto", validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=1e-4,
        warm_start=False, random_state=None, verbose="auto", device="auto", checkpoint_dir=None,
    ):
        super().__init__(loss, **shared_arguments(locals()))
        self.preprocessor = preprocessor
    # fmt: on

    def _get_loss(self) -> Loss:
        return self._default_loss() if self.loss is None else self.loss

    def _check_tuples(self, X, *, fitting: bool, size: int | None = None):
        """The tuples (of ``size`` members, the embedder's own by default) as int64 indices of
        shape (n, size) into a table, and that table (:func:`sk_dml._tuples.read_tuples`)."""
        size = size or self._tuple_size
        name = self._supervision.kind if size == self._tuple_size else LabelledPairs.kind
        return read_tuples(X, self.preprocessor, size=size, name=name, fitting=fitting)

    def _encoded_table(self, table, continuing: bool):
        """The table encoded for the network, and its schema (learned unless continuing)."""
        if is_dataframe(table) and not continuing:
            validate_data(self, table, reset=True, skip_check_array=True)
        return self._encode(table, reset=not continuing)

    def _tuple_embeddings(self, X, size: int | None = None) -> np.ndarray:
        """Embeddings of the tuples' rows, shape (n, size, dim)."""
        check_is_fitted(self)
        index, table = self._check_tuples(X, fitting=False, size=size)
        used, position = np.unique(index, return_inverse=True)
        rows = table.iloc[used] if is_dataframe(table) else np.asarray(table)[used]
        Z = self.transform(rows)
        return Z[position.reshape(index.shape)]

    def pair_distance(self, pairs) -> np.ndarray:
        """Learned distance of each pair: ``pairs`` holds row indices of shape (n_pairs, 2)
        into the preprocessor (indicators for a callable one), or the rows themselves, shape
        (n_pairs, 2, n_features); or it is two DataFrames ``(left, right)`` whose rows are
        paired in order."""
        if isinstance(pairs, tuple | list) and len(pairs) == 2 and all(map(is_dataframe, pairs)):
            return super().pair_distance(pairs)
        Z = self._tuple_embeddings(pairs, size=2)
        return paired_distance(Z[:, 0], Z[:, 1], self.embedding_metric_)

    def pair_score(self, pairs) -> np.ndarray:
        """Similarity of each pair, higher for more alike: ``-pair_distance(pairs)`` (what
        metric-learn's ``pair_score`` is for a learned distance)."""
        return -self.pair_distance(pairs)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # rows; indices too with a preprocessor
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
    distance (:meth:`pair_score`), :meth:`predict` compares it with ``threshold_`` (set at fit
    for the best accuracy on the training pairs, or by ``calibration_params``;
    :meth:`calibrate_threshold` sets it on validation pairs, for the best accuracy, F-beta,
    true positive or true negative rate, or a target precision; :meth:`set_threshold` to a
    value), and :meth:`score` is the ROC AUC, so ``"roc_auc"``, ``GridSearchCV`` and
    scikit-learn's ``TunedThresholdClassifierCV`` apply. Unlike metric-learn's, the threshold
    is on the decision function, the negative distance: metric-learn's threshold ``d`` is
    ``-d`` here.

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
        transitive or unlabelled pairs that must not count; also worth trying when alike
        means "of one of a few classes", where two unlinked rows are often alike (on
        pendigits' pairs its held-out ROC AUC is 0.997 against in-batch's 0.901;
        ``benchmarks/results/few_pairs.md``).
"""
        + _TUPLES_START_DOC
        + SHARED_PARAMETERS_DOC
        + """
    classes_ : ndarray of shape (2,)
        The pair labels: ``classes_[1]`` marks alike pairs.
    threshold_ : float
        Pairs whose :meth:`decision_function` (the negative distance) is at least this are
        predicted alike.
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
    _supervision = LabelledPairs
    _default_loss = ContrastiveLoss
    _parameter_constraints: dict = {
        "negatives": [StrOptions({"in_batch", "labelled"})],
        **_TupleEmbedder._parameter_constraints,
    }

    # fmt: off
    def __init__(
        self, preprocessor=None, loss=None, *, negatives="in_batch",
        n_components=64, hidden_layer_sizes=(512, 512), activation="relu", dropout=0.0,
        residual=True, normalize=False, module=None, categorical_features="from_dtype",
        text_features=None, min_frequency=5, category_embedding_dim="auto", batch_size=256,
        samples_per_class=4, max_epochs=60, learning_rate=3e-4,
        learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping="auto", validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=1e-4,
        warm_start=False, random_state=None, verbose="auto", device="auto", checkpoint_dir=None,
    ):
        super().__init__(preprocessor, loss, **shared_arguments(locals()))
        self.negatives = negatives
    # fmt: on

    _FITTED_ATTRIBUTES = (*MetricEmbedder._FITTED_ATTRIBUTES, "threshold_")
    # calibration_params is a setting of the fit, not metadata for scikit-learn's routing (so
    # no set_fit_request method is made for it).
    __metadata_request__fit = {"calibration_params": metadata_routing.UNUSED}
    __metadata_request__partial_fit = {"calibration_params": metadata_routing.UNUSED}

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, calibration_params=None):
        """Train on the pairs ``X`` labelled ``y``, then set ``threshold_`` on them with
        :meth:`calibrate_threshold`'s ``calibration_params`` (a dict of its keyword arguments;
        None: the best accuracy), which are checked before training. Returns the fitted
        estimator."""
        calibration = check_calibration_params(calibration_params)
        super().fit(X, y)
        return self._calibrate_on_training_pairs(X, y, calibration)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, calibration_params=None):
        """One epoch over the pairs ``X`` labelled ``y`` (with the labels of the first call),
        then ``threshold_`` on them as in :meth:`fit`. Returns the estimator."""
        calibration = check_calibration_params(calibration_params)
        super().partial_fit(X, y)
        return self._calibrate_on_training_pairs(X, y, calibration)

    def _calibrate_on_training_pairs(self, X, y, calibration: dict):
        self.classes_ = pair_labels(column_or_1d(y))[0]
        try:
            return self.calibrate_threshold(X, y, **calibration)
        except ValueError:  # no threshold rather than one of the previous network
            vars(self).pop("threshold_", None)
            raise

    def _check_training_data(self, X, y, continuing: bool):
        index, table = self._check_tuples(X, fitting=True)
        y = column_or_1d(y, warn=True)
        check_consistent_length(index, y)
        classes, alike = pair_labels(y)
        fitted = getattr(self, "classes_", classes)
        if continuing and not np.array_equal(classes, fitted):
            raise ValueError(f"y has the pair labels {classes}, not those of fit ({fitted}).")
        rows, schema = self._encoded_table(table, continuing)
        in_batch = self.negatives == "in_batch"
        return LabelledPairs(rows, alike.astype(np.int64), tuples=index, in_batch=in_batch), schema

    def decision_function(self, X) -> np.ndarray:
        """The negative learned distance of each pair (:meth:`pair_score`): higher means more
        alike."""
        return self.pair_score(X)

    def predict(self, X) -> np.ndarray:
        """``classes_[1]`` (alike) for the pairs whose decision is at least ``threshold_``,
        else ``classes_[0]``."""
        check_is_fitted(self, "threshold_", msg=_NO_THRESHOLD)
        alike = self.decision_function(X) >= self.threshold_
        return self.classes_[alike.astype(int)]

    def score(self, X, y) -> float:
        """ROC AUC of :meth:`decision_function` on the pairs ``X`` labelled ``y``."""
        _, alike = pair_labels(column_or_1d(y), known=self.classes_)
        return float(roc_auc_score(alike, self.decision_function(X)))

    def set_threshold(self, threshold):
        """Set ``threshold_``: pairs whose :meth:`decision_function` (the negative distance) is
        at least ``threshold`` are predicted alike. metric-learn's threshold is on the distance:
        its ``set_threshold(d)`` is ``set_threshold(-d)`` here, and a positive threshold (no
        pair alike) warns. Returns the estimator."""
        check_is_fitted(self)
        if not isinstance(threshold, Real) or math.isnan(threshold):
            raise ValueError(
                f"threshold must be a real number, got {threshold!r} ({type(threshold).__name__})."
            )
        if threshold > 0:
            warnings.warn(
                f"threshold={threshold!r} is positive, but decision_function, the negative learned "
                "distance, never is: every pair will be predicted not alike. For the pairs "
                "within distance d (metric-learn's threshold), use set_threshold(-d).",
                UserWarning,
                stacklevel=2,
            )
        self.threshold_ = float(threshold)
        return self

    def calibrate_threshold(
        self, X, y, strategy="accuracy", min_rate=None, beta=1.0, min_precision=None
    ):
        """Set ``threshold_`` from the pairs ``X`` labelled ``y`` (validation pairs, ideally).

        The threshold is one of scikit-learn's ``roc_curve`` thresholds on
        :meth:`decision_function`: a score of these pairs (all pairs at or above it predicted
        alike), or infinity (none).

        Parameters
        ----------
        strategy : {"accuracy", "f_beta", "max_tpr", "max_tnr", "precision"}, \
default="accuracy"
            What the threshold maximises on these pairs (metric-learn's strategies, and
            "precision"). "accuracy": the most correct predictions (the highest threshold
            among equals). "f_beta": the F-beta score (the lowest threshold among equals).
            "max_tpr": the true positive rate (recall of alike pairs) among the thresholds
            whose true negative rate is at least ``min_rate`` (then the highest true negative
            rate). "max_tnr": the true negative rate among those whose true positive rate is
            at least ``min_rate`` (then the highest true positive rate). "precision": the
            lowest threshold (the most alike pairs found) whose precision is at least
            ``min_precision``. A rate or precision of no pair (0/0) counts as 0.
        min_rate : float in [0, 1], required with "max_tpr" and "max_tnr"
        beta : float, default=1.0
            The F-beta score's beta ("f_beta"); it enters squared, as in metric-learn.
        min_precision : float in (0, 1], required with "precision"

        Returns the estimator.
        """
        check_is_fitted(self)
        calibration = check_calibration(strategy, min_rate, beta, min_precision)
        _, alike = pair_labels(column_or_1d(y), known=self.classes_)
        if alike.all() or not alike.any():
            raise ValueError(
                "calibrate_threshold needs pairs of both kinds, alike and not alike; y holds "
                f"{'alike' if alike.any() else 'not-alike'} pairs only."
            )
        self.threshold_ = best_threshold(self.decision_function(X), alike, **calibration)
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
        + _TUPLES_START_DOC
        + SHARED_PARAMETERS_DOC
        + _TUPLES_NOTE
    )

    _tuple_size = 3
    _supervision = TripletConstraints
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


_NO_THRESHOLD = (
    "This %(name)s has no threshold_: call 'fit', or set one with set_threshold or "
    "calibrate_threshold."
)


def check_tuples(estimator, X) -> np.ndarray:
    """The tuples ``X`` as the ``fit`` of ``estimator`` (a :class:`PairEmbedder` or
    :class:`TripletConstraintEmbedder`, its ``preprocessor`` set) reads them: int64 row indices
    of shape (n_tuples, tuple size) into its table. Raises the ValueError that ``fit`` raises
    for them (a wrong shape or dtype, an index outside the preprocessor, a tuple that names
    one row twice), so that tuples can be checked before a fit. Labels are not checked here:
    :func:`sk_dml.supervision.pair_labels` checks those of pairs."""
    return estimator._check_tuples(X, fitting=True)[0]
