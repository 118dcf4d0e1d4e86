"""sk_dml: deep metric learning for tabular data, the scikit-learn way."""

from . import criteria, datasets, distances, losses, metrics, miners, nets, sampling
from ._learned_metric import LearnedMetric
from .embedders import (
    ContrastiveEmbedder,
    LiftedStructEmbedder,
    MetricEmbedder,
    NPairEmbedder,
    ProxyAnchorEmbedder,
    TripletEmbedder,
)
from .neighbors import ApproximateKNeighborsTransformer
from .persistence import load, save

__version__ = "0.1.0"

__all__ = [
    "ApproximateKNeighborsTransformer",
    "ContrastiveEmbedder",
    "LearnedMetric",
    "LiftedStructEmbedder",
    "MetricEmbedder",
    "NPairEmbedder",
    "ProxyAnchorEmbedder",
    "TripletEmbedder",
    "criteria",
    "datasets",
    "distances",
    "losses",
    "metrics",
    "miners",
    "nets",
    "sampling",
    "load",
    "save",
    "__version__",
]
