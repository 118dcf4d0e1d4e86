"""The scikit-learn embedders that learn from class labels or a continuous target.

:class:`MetricEmbedder` trains with any loss object (``loss=``); a named embedder
(:class:`TripletEmbedder`, ...) trains with its own loss, whose parameters are its own
(``TripletEmbedder(margin=0.3)``, a grid over ``tripletembedder__margin``). Everything else
they share comes from :class:`sk_dml._embedder.BaseEmbedder`. The embedders of pairs and
triplets of rows are in :mod:`sk_dml.tuple_embedders`.
"""

from __future__ import annotations

from ._embedder import ESTIMATORS, BaseEmbedder, shared_arguments
from ._embedder_parameters import (
    LOSS_CHOSEN_PARAMETERS_DOC,
    SHARED_CONSTRAINTS,
    SHARED_PARAMETERS_DOC,
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
)

__all__ = [
    "ArcFaceEmbedder",
    "ContrastiveEmbedder",
    "CosFaceEmbedder",
    "ESTIMATORS",
    "LiftedStructEmbedder",
    "LogRatioEmbedder",
    "MetricEmbedder",
    "NPairEmbedder",
    "NormalizedSoftmaxEmbedder",
    "ProxyAnchorEmbedder",
    "TripletEmbedder",
    "check_params",
    "make_embedder",
]


class MetricEmbedder(BaseEmbedder):
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
        None means ``TripletLoss()``."""
        + LOSS_CHOSEN_PARAMETERS_DOC
        + SHARED_PARAMETERS_DOC
    )

    _parameter_constraints: dict = {"loss": [None, Loss], **SHARED_CONSTRAINTS}

    # fmt: off
    def __init__(
        self, loss=None, *,
        n_components=64, hidden_layer_sizes=(512, 512), activation="relu", dropout=0.0,
        residual="auto", normalize="auto", module=None, categorical_features="from_dtype",
        text_features=None, min_frequency=5, category_embedding_dim="auto", batch_size=256,
        samples_per_class=4, max_epochs=60, learning_rate="auto",
        learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping="auto", validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=1e-4,
        warm_start=False, random_state=None, verbose="auto", device="auto", checkpoint_dir=None,
    ):
        super().__init__(**shared_arguments(locals()))
        self.loss = loss
    # fmt: on

    def _get_loss(self) -> Loss:
        return TripletLoss() if self.loss is None else self.loss


def make_embedder(loss: str, **params) -> BaseEmbedder:
    """The embedder of the loss named ``loss`` (one of :func:`sk_dml.criteria.loss_names`):
    its named embedder when there is one (``"triplet"`` -> :class:`TripletEmbedder`), else
    ``MetricEmbedder(loss=...)``. ``params`` mixes the loss's and the embedder's parameters."""
    loss_class = get_loss_class(loss)
    for cls in ESTIMATORS.values():
        if cls._loss_class is loss_class:
            return cls(**params)
    own = {name: params.pop(name) for name in loss_class._get_param_names() if name in params}
    return MetricEmbedder(loss=loss_class(**own), **params)


# ------------------------------------------------------------------------------ named embedders
class TripletEmbedder(BaseEmbedder, loss=TripletLoss):
    __doc__ = (
        """Embedding trained with the triplet margin loss (every valid triplet of a batch by
    default; ``mining`` picks semi-hard or hard ones instead).

    For anchor a, positive p (same label) and negative n, the loss is
    ``relu(D_ap - D_an + margin)``: each anchor must be nearer its positives than its negatives
    by ``margin``. See :func:`sk_dml.losses.triplet_loss`.

    Parameters
    ----------
    margin : float, default=0.2
    mining : {"all", "semihard", "hard", "batch_hard"}, default="all"
        Which triplets of a batch count (:mod:`sk_dml.miners`): all valid ones, or only
        hard-sample mining's.
    distance : str, default="euclidean"
        Distance between embeddings (:data:`sk_dml.distances.METRICS`).
    residual : bool, default=False
        Start from the PCA rotation of the input, ``linear(x) + mlp(x)``
        (:class:`sk_dml.nets.ResidualEmbedding`), instead of a plain MLP.
    normalize : bool, default=True
        L2-normalise the output, so embeddings lie on the unit sphere.
    learning_rate : float, default=0.003
        AdamW's starting learning rate."""
        + SHARED_PARAMETERS_DOC
    )

    # fmt: off
    def __init__(
        self, *, margin=0.2, mining="all", distance="euclidean", n_components=64,
        hidden_layer_sizes=(512, 512), activation="relu", dropout=0.0, residual=False,
        normalize=True, module=None, categorical_features="from_dtype", text_features=None,
        min_frequency=5, category_embedding_dim="auto", batch_size=256, samples_per_class=4,
        max_epochs=60, learning_rate=0.003, learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping="auto", validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=0.0001, warm_start=False, random_state=None, verbose="auto",
        device="auto", checkpoint_dir=None,
    ):
        super().__init__(**shared_arguments(locals()))
        self.margin = margin
        self.mining = mining
        self.distance = distance
    # fmt: on


class ContrastiveEmbedder(BaseEmbedder, loss=ContrastiveLoss):
    __doc__ = (
        """Embedding trained with the contrastive loss (Hadsell et al. 2006).

    Same-label pairs are pulled together (``D^2``), different-label pairs pushed apart until
    they are ``margin`` away (``relu(margin - D)^2``). See
    :func:`sk_dml.losses.contrastive_loss`.

    Parameters
    ----------
    margin : float, default=1.0
    distance : str, default="euclidean"
    residual : bool, default=False
        Start from the PCA rotation of the input, ``linear(x) + mlp(x)``
        (:class:`sk_dml.nets.ResidualEmbedding`), instead of a plain MLP.
    normalize : bool, default=True
        L2-normalise the output, so embeddings lie on the unit sphere.
    learning_rate : float, default=0.003
        AdamW's starting learning rate."""
        + SHARED_PARAMETERS_DOC
    )

    # fmt: off
    def __init__(
        self, *, margin=1.0, distance="euclidean", n_components=64, hidden_layer_sizes=(512, 512),
        activation="relu", dropout=0.0, residual=False, normalize=True, module=None,
        categorical_features="from_dtype", text_features=None, min_frequency=5,
        category_embedding_dim="auto", batch_size=256, samples_per_class=4, max_epochs=60,
        learning_rate=0.003, learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping="auto", validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=0.0001, warm_start=False, random_state=None, verbose="auto",
        device="auto", checkpoint_dir=None,
    ):
        super().__init__(**shared_arguments(locals()))
        self.margin = margin
        self.distance = distance
    # fmt: on


class NPairEmbedder(BaseEmbedder, loss=NPairLoss):
    __doc__ = (
        """Embedding trained with the multi-class N-pair loss (Sohn 2016).

    Each anchor is compared with one positive and the negatives of every other class at once,
    by dot product: ``log(1 + sum_n exp(s_an - s_ap))``. See :func:`sk_dml.losses.npair_loss`.
    With ``normalize=True`` the dot product ranks like Euclidean distance on the unit sphere,
    so ``embedding_metric_`` is "euclidean"; without it (the default here), "cosine".

    Parameters
    ----------
    l2_reg : float, default=0.002
        Weight of the mean squared embedding norm.
    residual : bool, default=False
        Start from the PCA rotation of the input, ``linear(x) + mlp(x)``
        (:class:`sk_dml.nets.ResidualEmbedding`), instead of a plain MLP.
    normalize : bool, default=False
        L2-normalise the output, so embeddings lie on the unit sphere.
    learning_rate : float, default=0.003
        AdamW's starting learning rate."""
        + SHARED_PARAMETERS_DOC
    )

    # fmt: off
    def __init__(
        self, *, l2_reg=0.002, n_components=64, hidden_layer_sizes=(512, 512), activation="relu",
        dropout=0.0, residual=False, normalize=False, module=None,
        categorical_features="from_dtype", text_features=None, min_frequency=5,
        category_embedding_dim="auto", batch_size=256, samples_per_class=4, max_epochs=60,
        learning_rate=0.003, learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping="auto", validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=0.0001, warm_start=False, random_state=None, verbose="auto",
        device="auto", checkpoint_dir=None,
    ):
        super().__init__(**shared_arguments(locals()))
        self.l2_reg = l2_reg
    # fmt: on


class LiftedStructEmbedder(BaseEmbedder, loss=LiftedStructLoss):
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
        The paper's eq. 4 (a log-sum-exp over all negatives) or eq. 3 (the hardest one).
    distance : str, default="euclidean"
    residual : bool, default=False
        Start from the PCA rotation of the input, ``linear(x) + mlp(x)``
        (:class:`sk_dml.nets.ResidualEmbedding`), instead of a plain MLP.
    normalize : bool, default=False
        L2-normalise the output, so embeddings lie on the unit sphere.
    learning_rate : float, default=0.003
        AdamW's starting learning rate."""
        + SHARED_PARAMETERS_DOC
    )

    # fmt: off
    def __init__(
        self, *, margin=1.0, variant="smooth", distance="euclidean", n_components=64,
        hidden_layer_sizes=(512, 512), activation="relu", dropout=0.0, residual=False,
        normalize=False, module=None, categorical_features="from_dtype", text_features=None,
        min_frequency=5, category_embedding_dim="auto", batch_size=256, samples_per_class=4,
        max_epochs=60, learning_rate=0.003, learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping="auto", validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=0.0001, warm_start=False, random_state=None, verbose="auto",
        device="auto", checkpoint_dir=None,
    ):
        super().__init__(**shared_arguments(locals()))
        self.margin = margin
        self.variant = variant
        self.distance = distance
    # fmt: on


class ProxyAnchorEmbedder(BaseEmbedder, loss=ProxyAnchorLoss):
    __doc__ = (
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
    margin : float, default=0.1
        The loss's delta: rows are pulled until their cosine to their proxy is well above
        ``margin`` and pushed until their cosine to every other proxy is well below
        ``-margin``.
    alpha : float, default=32.0
        Scale of the similarities inside the log-sum-exp (how sharply hard rows dominate).
    residual : bool, default=True
        Start from the PCA rotation of the input, ``linear(x) + mlp(x)``
        (:class:`sk_dml.nets.ResidualEmbedding`), instead of a plain MLP.
    normalize : bool, default=True
        L2-normalise the output, so embeddings lie on the unit sphere.
    learning_rate : float, default=0.0003
        AdamW's starting learning rate."""
        + SHARED_PARAMETERS_DOC
    )

    # fmt: off
    def __init__(
        self, *, margin=0.1, alpha=32.0, n_components=64, hidden_layer_sizes=(512, 512),
        activation="relu", dropout=0.0, residual=True, normalize=True, module=None,
        categorical_features="from_dtype", text_features=None, min_frequency=5,
        category_embedding_dim="auto", batch_size=256, samples_per_class=4, max_epochs=60,
        learning_rate=0.0003, learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping="auto", validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=0.0001, warm_start=False, random_state=None, verbose="auto",
        device="auto", checkpoint_dir=None,
    ):
        super().__init__(**shared_arguments(locals()))
        self.margin = margin
        self.alpha = alpha
    # fmt: on


class NormalizedSoftmaxEmbedder(BaseEmbedder, loss=NormalizedSoftmaxLoss):
    __doc__ = (
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
    temperature : float, default=0.05
        Divides the cosines before the softmax (> 0); lower is sharper. 0.05 as in Zhai & Wu;
        on letter it also transferred better to classes never seen in training than 0.1
        (``benchmarks/results/unseen_classes.md``).
    residual : bool, default=True
        Start from the PCA rotation of the input, ``linear(x) + mlp(x)``
        (:class:`sk_dml.nets.ResidualEmbedding`), instead of a plain MLP.
    normalize : bool, default=True
        L2-normalise the output, so embeddings lie on the unit sphere.
    learning_rate : float, default=0.0003
        AdamW's starting learning rate."""
        + SHARED_PARAMETERS_DOC
    )

    # fmt: off
    def __init__(
        self, *, temperature=0.05, n_components=64, hidden_layer_sizes=(512, 512),
        activation="relu", dropout=0.0, residual=True, normalize=True, module=None,
        categorical_features="from_dtype", text_features=None, min_frequency=5,
        category_embedding_dim="auto", batch_size=256, samples_per_class=4, max_epochs=60,
        learning_rate=0.0003, learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping="auto", validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=0.0001, warm_start=False, random_state=None, verbose="auto",
        device="auto", checkpoint_dir=None,
    ):
        super().__init__(**shared_arguments(locals()))
        self.temperature = temperature
    # fmt: on


class CosFaceEmbedder(BaseEmbedder, loss=CosFaceLoss):
    __doc__ = (
        """Embedding trained with CosFace, the large margin cosine loss (Wang et al., CVPR 2018).

    The normalised softmax (:class:`NormalizedSoftmaxEmbedder`) with an additive margin on the
    cosine of each row's own class. See :func:`sk_dml.losses.cosface_loss`. Its class weights
    follow the labels as :class:`NormalizedSoftmaxEmbedder`'s do.

    Parameters
    ----------
    margin : float, default=0.35
        Subtracted from the own class's cosine, in [0, 2].
    scale : float, default=64.0
        Multiplies the logits (> 0): an inverse temperature.
    residual : bool, default=True
        Start from the PCA rotation of the input, ``linear(x) + mlp(x)``
        (:class:`sk_dml.nets.ResidualEmbedding`), instead of a plain MLP.
    normalize : bool, default=True
        L2-normalise the output, so embeddings lie on the unit sphere.
    learning_rate : float, default=0.0003
        AdamW's starting learning rate."""
        + SHARED_PARAMETERS_DOC
    )

    # fmt: off
    def __init__(
        self, *, margin=0.35, scale=64.0, n_components=64, hidden_layer_sizes=(512, 512),
        activation="relu", dropout=0.0, residual=True, normalize=True, module=None,
        categorical_features="from_dtype", text_features=None, min_frequency=5,
        category_embedding_dim="auto", batch_size=256, samples_per_class=4, max_epochs=60,
        learning_rate=0.0003, learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping="auto", validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=0.0001, warm_start=False, random_state=None, verbose="auto",
        device="auto", checkpoint_dir=None,
    ):
        super().__init__(**shared_arguments(locals()))
        self.margin = margin
        self.scale = scale
    # fmt: on


class ArcFaceEmbedder(BaseEmbedder, loss=ArcFaceLoss):
    __doc__ = (
        """Embedding trained with ArcFace, the additive angular margin loss (Deng et al., CVPR
    2019).

    The normalised softmax (:class:`NormalizedSoftmaxEmbedder`) with an angular margin added
    to the angle between each row and its own class's weight. See
    :func:`sk_dml.losses.arcface_loss`. Its class weights follow the labels as
    :class:`NormalizedSoftmaxEmbedder`'s do.

    Parameters
    ----------
    margin : float, default=0.5
        Angle added to the own class's angle, in radians, in [0, pi/2].
    scale : float, default=64.0
        Multiplies the logits (> 0): an inverse temperature.
    residual : bool, default=True
        Start from the PCA rotation of the input, ``linear(x) + mlp(x)``
        (:class:`sk_dml.nets.ResidualEmbedding`), instead of a plain MLP.
    normalize : bool, default=True
        L2-normalise the output, so embeddings lie on the unit sphere.
    learning_rate : float, default=0.0003
        AdamW's starting learning rate."""
        + SHARED_PARAMETERS_DOC
    )

    # fmt: off
    def __init__(
        self, *, margin=0.5, scale=64.0, n_components=64, hidden_layer_sizes=(512, 512),
        activation="relu", dropout=0.0, residual=True, normalize=True, module=None,
        categorical_features="from_dtype", text_features=None, min_frequency=5,
        category_embedding_dim="auto", batch_size=256, samples_per_class=4, max_epochs=60,
        learning_rate=0.0003, learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping="auto", validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=0.0001, warm_start=False, random_state=None, verbose="auto",
        device="auto", checkpoint_dir=None,
    ):
        super().__init__(**shared_arguments(locals()))
        self.margin = margin
        self.scale = scale
    # fmt: on


class LogRatioEmbedder(BaseEmbedder, loss=LogRatioLoss):
    __doc__ = (
        """Embedding trained on a continuous target with the log-ratio loss (Kim, Kim, Cho & Kwak,
    CVPR 2019, "Deep Metric Learning Beyond Binary Supervision").

    ``fit(X, y)`` takes numbers in ``y`` (price, risk, duration; integers too): rows with close
    targets end up close, and the ratios of embedding distances follow those of target
    distances (:func:`sk_dml.losses.log_ratio_loss`). Use it before a neighbour regressor,
    ``make_pipeline(LogRatioEmbedder(), KNeighborsRegressor())``; its :meth:`score` is the R^2
    of leave-one-out 5-nearest-neighbour regression in the embedding.

    Parameters
    ----------
    epsilon : float, default=1e-3
        Added to both distances so that equal targets and coinciding embeddings stay finite.
    residual : bool, default=True
        Start from the PCA rotation of the input, ``linear(x) + mlp(x)``
        (:class:`sk_dml.nets.ResidualEmbedding`), instead of a plain MLP.
    normalize : bool, default=False
        L2-normalise the output, so embeddings lie on the unit sphere.
    learning_rate : float, default=0.0003
        AdamW's starting learning rate."""
        + SHARED_PARAMETERS_DOC
    )

    # fmt: off
    def __init__(
        self, *, epsilon=0.001, n_components=64, hidden_layer_sizes=(512, 512), activation="relu",
        dropout=0.0, residual=True, normalize=False, module=None,
        categorical_features="from_dtype", text_features=None, min_frequency=5,
        category_embedding_dim="auto", batch_size=256, samples_per_class=4, max_epochs=60,
        learning_rate=0.0003, learning_rate_schedule="cosine", weight_decay=0.0,
        early_stopping="auto", validation_split="rows", validation_fraction=0.1,
        n_iter_no_change=10, tol=0.0001, warm_start=False, random_state=None, verbose="auto",
        device="auto", checkpoint_dir=None,
    ):
        super().__init__(**shared_arguments(locals()))
        self.epsilon = epsilon
    # fmt: on


def check_params(estimator) -> None:
    """Raise scikit-learn's ``InvalidParameterError`` (a ValueError) for a parameter of the
    embedder ``estimator`` that its ``fit`` would refuse before looking at any data: the
    embedder's own, and those of the loss it trains with (a :class:`MetricEmbedder`'s loss
    object included). For a caller that wants bad settings refused before reading a table."""
    estimator._validate_params()
    estimator._get_loss()._validate_params()
