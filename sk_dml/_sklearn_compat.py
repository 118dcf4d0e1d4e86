"""The private scikit-learn names sk_dml relies on, in one place.

scikit-learn does not promise these across versions, so sk_dml pins the range it is tested
with (``scikit-learn>=1.6,<1.10`` in pyproject.toml) and imports them only from here: a
version that moves one breaks this module, and ``tests/test_packaging.py`` says which name.
"""

from __future__ import annotations

from scipy import sparse
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

try:  # scikit-learn >= 1.8: the sparse container type follows set_config(sparse_interface=)
    from sklearn.utils._sparse import _align_api_if_sparse
except ImportError:  # older scikit-learn returns csr_matrix

    def _align_api_if_sparse(graph):
        return sparse.csr_matrix(graph)


__all__ = ["Interval", "StrOptions", "_align_api_if_sparse", "_fit_context"]
