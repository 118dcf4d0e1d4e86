"""sk_dml: deep metric learning for tabular data, the scikit-learn way."""

from . import criteria, datasets, distances, losses, metrics, miners, nets, sampling, supervision
from ._learned_metric import LearnedMetric
from .embedders import (
    ArcFaceEmbedder,
    ContrastiveEmbedder,
    CosFaceEmbedder,
    LiftedStructEmbedder,
    LogRatioEmbedder,
    MetricEmbedder,
    NormalizedSoftmaxEmbedder,
    NPairEmbedder,
    ProxyAnchorEmbedder,
    TripletEmbedder,
)
from .neighbors import ApproximateKNeighborsTransformer
from .persistence import load, save
from .tuple_embedders import PairEmbedder, TripletConstraintEmbedder

__version__ = "0.1.0"

__all__ = [
    "ApproximateKNeighborsTransformer",
    "ArcFaceEmbedder",
    "ContrastiveEmbedder",
    "CosFaceEmbedder",
    "LearnedMetric",
    "LiftedStructEmbedder",
    "LogRatioEmbedder",
    "MetricEmbedder",
    "NPairEmbedder",
    "NormalizedSoftmaxEmbedder",
    "PairEmbedder",
    "ProxyAnchorEmbedder",
    "TripletConstraintEmbedder",
    "TripletEmbedder",
    "criteria",
    "datasets",
    "distances",
    "losses",
    "metrics",
    "miners",
    "nets",
    "sampling",
    "supervision",
    "load",
    "save",
    "__version__",
]
