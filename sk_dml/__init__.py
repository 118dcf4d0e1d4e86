"""sk_dml: deep metric learning for tabular data, the scikit-learn way."""

from . import distances, losses, miners, sampling

__version__ = "0.1.0"

__all__ = ["distances", "losses", "miners", "sampling", "__version__"]
