"""Loss objects: what an embedder minimises, as a small scikit-learn-style object.

A loss object holds a loss's hyper-parameters with scikit-learn's ``get_params``/``set_params``
semantics, so ``clone`` and ``GridSearchCV`` reach them (``metricembedder__loss__margin``), as
they reach a Gaussian process's ``kernel__length_scale``. It also says how an embedding
trained with it is meant to be used (its distance, whether to L2-normalise, a learning rate
that suits it), and at fit time it builds the torch module the trainer minimises
(:meth:`Loss.build`), which owns any learnable parameters the loss has (one proxy per class).
The math lives in the pure functions of :mod:`sk_dml.losses`, usable in any torch loop.

A loss object is the one source of truth of its hyper-parameters: their defaults, their
validation (``_parameter_constraints``) and their documentation. Its function takes them as
keywords with the same defaults (``tests/test_losses.py`` checks every loss), and its
docstring refers here for what they mean.

Adding a loss is one subclass here (plus its function in :mod:`sk_dml.losses`): the embedders,
``sk_dml.save``/``load``, checkpoints, torchrun and the command line (``--loss NAME``) find it
by its ``name``. The modules it builds for the trainer are internal (``sk_dml._objectives``).
"""

from __future__ import annotations

import functools
import inspect
from numbers import Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from . import losses
from ._objectives import Criterion, ProxyCriterion
from ._sklearn_compat import Interval, StrOptions
from .distances import METRICS
from .miners import TRIPLET_MINING

__all__ = [
    "ArcFaceLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "LiftedStructLoss",
    "LogRatioLoss",
    "Loss",
    "MultiSimilarityLoss",
    "NPairLoss",
    "NormalizedSoftmaxLoss",
    "ProxyAnchorLoss",
    "TripletLoss",
    "get_loss_class",
    "loss_names",
]

_NON_NEGATIVE = [Interval(Real, 0, None, closed="left")]
_POSITIVE = [Interval(Real, 0, None, closed="neither")]
#: The start that keeps classes never seen in training: the residual network (the PCA rotation
#: of the standardised input, the classical representation) refined at a low learning rate.
_RESIDUAL_START = {"normalize": True, "residual": True, "learning_rate": 3e-4}
_DISTANCE = [StrOptions(set(METRICS))]

# name -> class, filled as the subclasses are defined.
_REGISTRY: dict[str, type[Loss]] = {}


class Loss(BaseEstimator):
    """Base of the loss objects; a subclass is one loss.

    A subclass sets ``name`` (its ``--loss`` name on the command line and its key in model
    files), ``_parameter_constraints`` for its ``__init__`` parameters (scikit-learn's
    declarative validation), and ``function`` (the pure loss in :mod:`sk_dml.losses`); it may
    override ``embedder_defaults``, :meth:`embedding_metric` and :meth:`build`.
    """

    name: ClassVar[str]
    function: ClassVar = None
    #: What the loss learns from (:mod:`sk_dml.supervision`): "classes" (class labels,
    #: through ``function``), "target" (a continuous target, through ``function``), and the
    #: tuple kinds "pairs" and "triplets", through ``tuple_functions``.
    supervisions: ClassVar[tuple[str, ...]] = ("classes",)
    #: The pure loss of each tuple kind this loss learns from, e.g. ``{"pairs": f}``.
    tuple_functions: ClassVar[dict] = {}
    #: What the embedder's ``"auto"`` parameters become with this loss: for the pair and
    #: triplet losses a plain MLP at 3e-3, which on letter ends more accurate on the classes
    #: seen in training than the residual start at 3e-4 (triplet: 0.969 vs 0.959)
    #: (``benchmarks/results/accuracy.md``); the proxy, similarity and softmax losses take
    #: ``_RESIDUAL_START``.
    embedder_defaults: ClassVar[dict] = {
        "normalize": True,
        "residual": False,
        "learning_rate": 3e-3,
    }
    #: Optimizer settings for the loss's own parameters (proxies, class weights): a multiple
    #: of the network's learning rate ("lr_multiplier") and, if set, their own
    #: "weight_decay".
    parameter_settings: ClassVar[dict] = {}
    _parameter_constraints: ClassVar[dict] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            _REGISTRY[cls.name] = cls

    def embedding_metric(self, normalized: bool) -> str:
        """The distance between embeddings that this loss optimises, given whether the
        network L2-normalises its output: its ``distance`` parameter if it has one, else
        Euclidean."""
        return getattr(self, "distance", "euclidean")

    def bound_function(self, supervision: str = "classes"):
        """The pure loss of this kind of ``supervision`` with this object's parameters bound:
        ``f(embeddings, codes)`` (and the proxies, for a proxy loss), or the tuple loss."""
        if supervision in self.tuple_functions:
            function = self.tuple_functions[supervision]
            accepted = inspect.signature(function).parameters
            params = {k: v for k, v in self.get_params().items() if k in accepted}
            return functools.partial(function, **params)
        return functools.partial(type(self).function, **self.get_params())

    def build(self, classes: np.ndarray | None, dim: int, supervision: str = "classes"):
        """The module a fresh fit minimises on rows, for the training ``classes`` (sorted;
        None for a continuous target), an embedding of width ``dim`` and the kind of
        ``supervision`` ("classes" or "target"); raises a ValueError naming a parameter out
        of range. (Tuple losses are wrapped by :mod:`sk_dml.supervision`.)"""
        self._validate_params()
        return Criterion(self.bound_function(supervision))


def get_loss_class(name: str) -> type[Loss]:
    """The loss class registered under ``name`` (as :func:`loss_names` lists them)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        names = ", ".join(loss_names())
        raise ValueError(f"Unknown loss {name!r}; expected one of {names}.") from None


def loss_names(supervision: str | None = None) -> list[str]:
    """The names of the available losses, in the order they were defined; with
    ``supervision`` ("classes", "target", "pairs", "triplets"), those that learn from it."""
    return [
        name
        for name, cls in _REGISTRY.items()
        if supervision is None or supervision in cls.supervisions
    ]


def _cosine_unless_normalized(normalized: bool) -> str:
    """On the unit sphere Euclidean distance ranks like cosine (and is cheaper to search)."""
    return "euclidean" if normalized else "cosine"


class TripletLoss(Loss):
    """Triplet margin loss, over every triplet of a batch or with hard-sample mining:
    :func:`sk_dml.losses.triplet_loss`.

    Parameters
    ----------
    margin : float, default=0.2
    mining : {"all", "semihard", "hard", "batch_hard"}, default="all"
        Which triplets of a batch count (:mod:`sk_dml.miners`).
    distance : str, default="euclidean"
        Distance between embeddings (:data:`sk_dml.distances.METRICS`).
    """

    name = "triplet"
    function = staticmethod(losses.triplet_loss)
    supervisions = ("classes", "triplets")
    tuple_functions = {"triplets": losses.triplet_constraint_loss}
    _parameter_constraints = {
        "margin": _NON_NEGATIVE,
        "mining": [StrOptions(set(TRIPLET_MINING))],
        "distance": _DISTANCE,
    }

    def __init__(self, margin=0.2, mining="all", distance="euclidean"):
        self.margin = margin
        self.mining = mining
        self.distance = distance


class ContrastiveLoss(Loss):
    """Contrastive loss (Hadsell et al. 2006): :func:`sk_dml.losses.contrastive_loss`.

    Parameters
    ----------
    margin : float, default=1.0
    distance : str, default="euclidean"
    """

    name = "contrastive"
    function = staticmethod(losses.contrastive_loss)
    supervisions = ("classes", "pairs")
    tuple_functions = {"pairs": losses.contrastive_pair_loss}
    _parameter_constraints = {"margin": _NON_NEGATIVE, "distance": _DISTANCE}

    def __init__(self, margin=1.0, distance="euclidean"):
        self.margin = margin
        self.distance = distance


class NPairLoss(Loss):
    """Multi-class N-pair loss (Sohn 2016): :func:`sk_dml.losses.npair_loss`.

    Its log-sum-exp of dot products needs unbounded embeddings, so its embedders do not
    normalise by default; ``l2_reg`` keeps the norms from growing without bound.

    Parameters
    ----------
    l2_reg : float, default=0.002
        Weight of the mean squared embedding norm.
    """

    name = "npair"
    function = staticmethod(losses.npair_loss)
    embedder_defaults = {**Loss.embedder_defaults, "normalize": False}
    _parameter_constraints = {"l2_reg": _NON_NEGATIVE}

    def __init__(self, l2_reg=0.002):
        self.l2_reg = l2_reg

    def embedding_metric(self, normalized: bool) -> str:
        return _cosine_unless_normalized(normalized)


class LiftedStructLoss(Loss):
    """Lifted structured loss (Oh Song et al. 2016): :func:`sk_dml.losses.lifted_struct_loss`.

    Parameters
    ----------
    margin : float, default=1.0
    variant : {"smooth", "hard"}, default="smooth"
        The paper's eq. 4 (a log-sum-exp over all negatives) or eq. 3 (the hardest one).
    distance : str, default="euclidean"
    """

    name = "lifted"
    function = staticmethod(losses.lifted_struct_loss)
    embedder_defaults = {**Loss.embedder_defaults, "normalize": False}
    _parameter_constraints = {
        "margin": _NON_NEGATIVE,
        "variant": [StrOptions({"smooth", "hard"})],
        "distance": _DISTANCE,
    }

    def __init__(self, margin=1.0, variant="smooth", distance="euclidean"):
        self.margin = margin
        self.variant = variant
        self.distance = distance


class _ClassVectorLoss(Loss):
    """A loss with one learnable vector per training class (built as a ``ProxyCriterion``),
    compared with the rows by cosine."""

    #: What the loss calls its vectors, in messages.
    vector_name: ClassVar[str] = "proxy"

    def embedding_metric(self, normalized: bool) -> str:
        return _cosine_unless_normalized(normalized)

    def build(self, classes: np.ndarray | None, dim: int, supervision: str = "classes"):
        self._validate_params()
        if classes is None:
            raise ValueError(
                f"The {self.name} loss learns one {self.vector_name} per class, so it needs "
                "class labels."
            )
        return ProxyCriterion(self.bound_function(), classes, dim, self.parameter_settings)


class ProxyAnchorLoss(_ClassVectorLoss):
    """Proxy-Anchor loss (Kim et al., CVPR 2020): :func:`sk_dml.losses.proxy_anchor_loss`.

    One learnable proxy per training class, created at fit time from the number of classes
    and the embedding width; a batch informs every class at a cost of O(batch x classes).
    Its embedders start from the residual network (the PCA of the input) and train with a
    low learning rate: the setting that transfers best to classes never seen in training.

    Parameters
    ----------
    margin : float, default=0.1
        The loss's delta: rows are pulled until their cosine to their proxy is well above
        ``margin`` and pushed until their cosine to every other proxy is well below
        ``-margin``.
    alpha : float, default=32.0
        Scale of the similarities inside the log-sum-exp (how sharply hard rows dominate).
    """

    name = "proxy_anchor"
    function = staticmethod(losses.proxy_anchor_loss)
    _parameter_constraints = {"margin": _NON_NEGATIVE, "alpha": _POSITIVE}
    embedder_defaults = _RESIDUAL_START

    def __init__(self, margin=0.1, alpha=32.0):
        self.margin = margin
        self.alpha = alpha


class MultiSimilarityLoss(Loss):
    """Multi-Similarity loss with its pair miner (Wang et al., CVPR 2019):
    :func:`sk_dml.losses.multi_similarity_loss`.

    Each pair of a batch is weighted by its own cosine similarity, by the other pairs of its
    anchor and by the mining (:func:`sk_dml.miners.multi_similarity_pairs`), so easy pairs
    count little. Like the proxy loss, its embedders start from the residual network and
    train with a low learning rate.

    Parameters
    ----------
    alpha : float, default=2.0
        Scale of the positive pairs (> 0).
    beta : float, default=50.0
        Scale of the negative pairs (> 0).
    base : float, default=0.5
        The similarity that separates pulled positives from pushed negatives.
    epsilon : float or None, default=0.1
        Margin of the pair mining; None counts every pair.
    """

    name = "multi_similarity"
    function = staticmethod(losses.multi_similarity_loss)
    _parameter_constraints = {
        "alpha": _POSITIVE,
        "beta": _POSITIVE,
        "base": [Interval(Real, None, None, closed="neither")],
        "epsilon": [None, Interval(Real, 0, None, closed="left")],
    }
    embedder_defaults = _RESIDUAL_START

    def __init__(self, alpha=2.0, beta=50.0, base=0.5, epsilon=0.1):
        self.alpha = alpha
        self.beta = beta
        self.base = base
        self.epsilon = epsilon

    def embedding_metric(self, normalized: bool) -> str:
        return _cosine_unless_normalized(normalized)


class NormalizedSoftmaxLoss(_ClassVectorLoss):
    """Normalised softmax loss (Zhai & Wu, BMVC 2019):
    :func:`sk_dml.losses.normalized_softmax_loss`.

    A softmax classifier over cosines to one learnable weight per training class. Trained
    this way, an embedding transfers to classes never seen in training at least as well as
    the pair losses do ("A Metric Learning Reality Check", Musgrave et al. 2020). The class
    weights train at 100 times the network's learning rate, without weight decay, as in
    the literature.

    Parameters
    ----------
    temperature : float, default=0.05
        Divides the cosines before the softmax (> 0); lower is sharper. 0.05 as in Zhai & Wu;
        on letter it also transferred better to classes never seen in training than 0.1
        (``benchmarks/results/unseen_classes.md``).
    """

    name = "normalized_softmax"
    vector_name = "class weight"
    function = staticmethod(losses.normalized_softmax_loss)
    parameter_settings = {"lr_multiplier": 100.0, "weight_decay": 0.0}
    _parameter_constraints = {"temperature": _POSITIVE}
    embedder_defaults = _RESIDUAL_START

    def __init__(self, temperature=0.05):
        self.temperature = temperature


class CosFaceLoss(NormalizedSoftmaxLoss):
    """CosFace, the large margin cosine loss (Wang et al., CVPR 2018):
    :func:`sk_dml.losses.cosface_loss`.

    The normalised softmax with ``margin`` subtracted from the cosine of each row's own
    class, so rows must beat the other classes by that much.

    Parameters
    ----------
    margin : float, default=0.35
        Subtracted from the own class's cosine, in [0, 2].
    scale : float, default=64.0
        Multiplies the logits (> 0): an inverse temperature.
    """

    name = "cosface"
    function = staticmethod(losses.cosface_loss)
    _parameter_constraints = {
        "margin": [Interval(Real, 0, 2, closed="both")],
        "scale": _POSITIVE,
    }

    def __init__(self, margin=0.35, scale=64.0):
        self.margin = margin
        self.scale = scale


class ArcFaceLoss(NormalizedSoftmaxLoss):
    """ArcFace, the additive angular margin loss (Deng et al., CVPR 2019):
    :func:`sk_dml.losses.arcface_loss`.

    The normalised softmax with ``margin`` (radians) added to the angle between each row and
    its own class's weight. pytorch-metric-learning's ``ArcFaceLoss`` takes the margin in
    degrees (its 28.6 is this 0.5).

    Parameters
    ----------
    margin : float, default=0.5
        Angle added to the own class's angle, in radians, in [0, pi/2].
    scale : float, default=64.0
        Multiplies the logits (> 0): an inverse temperature.
    """

    name = "arcface"
    function = staticmethod(losses.arcface_loss)
    _parameter_constraints = {
        "margin": [Interval(Real, 0, np.pi / 2, closed="both")],
        "scale": _POSITIVE,
    }

    def __init__(self, margin=0.5, scale=64.0):
        self.margin = margin
        self.scale = scale


class LogRatioLoss(Loss):
    """Log-ratio loss (Kim, Kim, Cho & Kwak, CVPR 2019): learns from a continuous target.

    Rows with close targets end up close: for an anchor and any two other rows of a batch,
    the ratio of their squared embedding distances follows the ratio of their target
    distances (:func:`sk_dml.losses.log_ratio_loss`). Batches hold groups of rows with
    neighbouring targets (:mod:`sk_dml.supervision`), which plays the part of the paper's dense
    triplet mining. The target is standardised first; its embedders start from the residual
    network (the PCA of the input) and train with a low learning rate, as for the
    proxy-anchor loss, and do not normalise, since the ratios need the whole range of
    distances.

    Parameters
    ----------
    epsilon : float, default=1e-3
        Added to both distances so that equal targets and coinciding embeddings stay finite.
    """

    name = "log_ratio"
    function = staticmethod(losses.log_ratio_loss)
    supervisions = ("target",)
    embedder_defaults = {**_RESIDUAL_START, "normalize": False}
    _parameter_constraints = {"epsilon": _POSITIVE}

    def __init__(self, epsilon=1e-3):
        self.epsilon = epsilon
