"""The private scikit-learn names sk_dml relies on, in one place.

scikit-learn does not promise these across versions, so sk_dml pins the range it is tested
with (``scikit-learn>=1.6,<1.10`` in pyproject.toml) and imports them only from here: a
version that moves one breaks this module, and ``tests/test_packaging.py`` says which name.
"""

from __future__ import annotations

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

__all__ = ["Interval", "StrOptions", "_fit_context"]
