"""What several commands share: the k of their k-NN scores, how they name a model, and how they
find the target and key columns a model file names."""

from __future__ import annotations

import pandas as pd

from ...supervision import ClassLabels, ContinuousTarget
from ..errors import CLIError, names
from ..model import Model

# Neighbours of the k-NN accuracies and R^2 of demo and evaluate.
N_NEIGHBORS = 5


def model_name(estimator) -> str:
    """A named embedder's class name, else MetricEmbedder(LossClass)."""
    name = type(estimator).__name__
    loss = estimator.get_params().get("loss")
    return name if loss is None else f"{name}({type(loss).__name__})"


def target_of(args, model: Model, instead: str = "") -> str:
    """``--target``, or else the target column the model was trained on. ``instead`` says
    what else the command takes when the model learned from no target column."""
    target = args.target or model.target
    if target:
        return target
    kind = model.supervision
    if kind not in (ClassLabels, ContinuousTarget):  # labelled pairs, triplet constraints
        source = f" ({model.pairs})" if model.pairs else ""
        raise CLIError(
            f"{model.path}: the model learned from {kind.words}{source}, not a target column; "
            f"give {instead}--target COL to use a class column of DATA"
        )
    raise CLIError(f"{model.path} does not name its target column; give --target")


def key_of(args, model: Model, frame: pd.DataFrame, purpose: str, instead: str) -> str | None:
    """The key column of DATA (``frame``) that names its rows: ``--key``, else the model's key;
    none with ``--no-key`` or when neither names one. A key that is not a column of DATA is
    bad input; the message says what the key is for (``purpose``) and what ``--no-key`` does
    (``instead``)."""
    key = None if args.no_key else (args.key or model.key)
    if key is not None and key not in frame.columns:
        whose = "--key" if args.key else "the model's key column"
        raise CLIError(
            f"{args.data}: no column {key!r} ({whose}){purpose}; the columns are "
            f"{names(list(frame.columns))}"
            + ("" if args.key else f"; --key COL names another, --no-key {instead}")
        )
    return key


def print_scores(scores) -> None:
    """The ``(name, value, note)`` rows of a command's scores, after a blank line."""
    print()
    for name, value, note in scores:
        print(f"{name:<14} {value:<18} {note}")
