"""Models of sk_dml 0.1.0, which read raw numbers with no input layer and kept no schema:
what they need to load, unpickle and embed as they did."""

from __future__ import annotations

import torch

from .nets import TableEmbedding, TableInput
from .tabular import TableSchema


def is_version_0_1(fitted: dict) -> bool:
    """Whether a model file's or a pickle's fitted attributes are those of sk_dml 0.1.0."""
    return "schema_" not in fitted


def numeric_schema(fitted: dict) -> TableSchema:
    """The schema of a model of sk_dml 0.1.0: every column numeric, read as it is."""
    n = fitted["n_features_in_"]
    names = fitted.get("feature_names_in_")
    return TableSchema(
        n_features=n,
        feature_names=None if names is None else [str(c) for c in names],
        dtypes=["float64"] * n,
        numeric=list(range(n)),
        categorical=[],
        levels=[],
        embedding_dims=[],
        missing_indicators=[],
    )


def with_identity_inputs(body: torch.nn.Module, n_features: int) -> TableEmbedding:
    """``body`` behind an input layer that passes numbers through (mean 0, scale 1)."""
    return TableEmbedding(TableInput(n_features), body)


def upgrade_pickled_state(state: dict) -> dict:
    """The ``__dict__`` of an estimator pickled by sk_dml 0.1.0, given a schema and an input
    layer that passes numbers through (``state`` of a later version is returned as it is)."""
    if "module_" in state and is_version_0_1(state):
        state["schema_"] = numeric_schema(state)
        state["module_"] = with_identity_inputs(state["module_"], state["n_features_in_"])
    return state
