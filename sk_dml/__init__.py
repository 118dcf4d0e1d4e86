"""sk_dml: deep metric learning for tabular data, the scikit-learn way.

The public names are imported on first use (PEP 562), so that ``import sk_dml`` and
``sk-dml --help`` do not wait for torch.
"""

import importlib
import importlib.util

__version__ = "0.1.0"

# Public name -> the module that defines it; the submodules are their own entry.
_WHERE = {
    "ApproximateKNeighborsTransformer": ".neighbors",
    "ArcFaceEmbedder": ".embedders",
    "ContrastiveEmbedder": ".embedders",
    "CosFaceEmbedder": ".embedders",
    "LearnedMetric": "._learned_metric",
    "Linker": ".linking",
    "LiftedStructEmbedder": ".embedders",
    "LogRatioEmbedder": ".embedders",
    "MetricEmbedder": ".embedders",
    "NPairEmbedder": ".embedders",
    "NormalizedSoftmaxEmbedder": ".embedders",
    "PairEmbedder": ".tuple_embedders",
    "PairLabeller": ".active",
    "ProxyAnchorEmbedder": ".embedders",
    "TripletConstraintEmbedder": ".tuple_embedders",
    "TripletEmbedder": ".embedders",
    "load": ".persistence",
    "save": ".persistence",
}
_SUBMODULES = (
    "active",
    "criteria",
    "datasets",
    "distances",
    "explain",
    "linking",
    "losses",
    "metrics",
    "miners",
    "nets",
    "sampling",
    "supervision",
)

__all__ = [*_WHERE, *_SUBMODULES, "__version__"]


def __getattr__(name):
    """A public name or a submodule (``sk_dml.embedders``), imported on first use."""
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    if not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
