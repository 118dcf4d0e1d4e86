"""Real tabular data sets shipped with the package (UCI, via KEEL; CC BY 4.0).

Each loader returns ``(X, y)``: a pandas DataFrame of features and a Series of class labels.
See ``sk_dml/data/README.md`` for provenance.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load_letter", "load_nursery", "load_segment"]


def _load(name: str) -> tuple[pd.DataFrame, pd.Series]:
    with resources.files("sk_dml").joinpath("data", f"{name}.csv.gz").open("rb") as f:
        frame = pd.read_csv(f, compression="gzip")
    return frame.drop(columns="target"), frame["target"]


def load_letter() -> tuple[pd.DataFrame, pd.Series]:
    """UCI Letter Recognition: 20,000 rows, 16 integer features, 26 letters."""
    return _load("letter")


def load_nursery() -> tuple[pd.DataFrame, pd.Series]:
    """UCI Nursery: 12,960 rows, 8 categorical features, 5 classes (one has 2 rows)."""
    return _load("nursery")


def load_segment() -> tuple[pd.DataFrame, pd.Series]:
    """UCI Image Segmentation: 2,310 rows, 19 numeric features, 7 classes."""
    return _load("segment")
