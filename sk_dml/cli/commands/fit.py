"""``sk-dml fit``: an embedder trained on a table and saved to a model file.

It learns from what its options name (:func:`fit_supervision`): class labels or a continuous
target in the ``--target`` column, as the loss learns from one or the other, or the labelled
pairs of a ``--pairs`` file (a :class:`~sk_dml.PairEmbedder`). Every option, the table, the
target and the pairs are checked as the embedder would check them before it trains, so that a
bad one is the user's input error, not training's.
"""

from __future__ import annotations

import os
import time
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from ...criteria import TripletLoss, get_loss_class, loss_names
from ...embedders import check_params, make_embedder
from ...persistence import save
from ...supervision import KINDS, ClassLabels, ContinuousTarget, LabelledPairs
from ...tuple_embedders import PairEmbedder
from ..columns import class_labels, feature_columns, target_column
from ..errors import CLIError, names, one_line
from ..model import check_pairs, check_table, check_target, fingerprint
from ..pairs import read_pairs
from ..tables import atomic_output, check_output, read_table
from .common import model_name

# fit's loss without --loss: MetricEmbedder's default for class labels and a target column; the
# first loss that learns from pairs with --pairs.
DEFAULT_LOSS = TripletLoss.name
DEFAULT_PAIRS_LOSS = loss_names(LabelledPairs.kind)[0]


def _loss_value(name: str, text: str, default):
    """The VALUE of ``--loss-param NAME=VALUE``, read as the type of the parameter's default
    (``none`` is None)."""
    if text.lower() == "none":
        return None
    if isinstance(default, bool):
        if text.lower() not in ("true", "false"):
            raise CLIError(f"--loss-param {name}={text}: expected true or false")
        return text.lower() == "true"
    if isinstance(default, Real) or default is None:
        try:
            return int(text) if isinstance(default, Integral) else float(text)
        except ValueError:
            if default is None:
                return text
            raise CLIError(f"--loss-param {name}={text}: not a number") from None
    return text


def _check_folder(path, flag: str) -> None:
    """Refuse a folder to write in that is a file, or under a file or a read-only folder."""
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise CLIError(f"{flag} {path}: {str(existing)!r} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CLIError(f"{flag} {path}: cannot write in {str(existing)!r}")


def fit_supervision(args):
    """What ``fit`` learns from, a kind of :mod:`sk_dml.supervision`: labelled pairs with
    ``--pairs``, else the ``--target`` column's class labels or continuous values, as the loss
    learns from. Sets ``args.loss`` to the default loss of that kind when ``--loss`` is not
    given; a loss that does not learn from it is bad input."""
    if args.pairs is not None:
        args.loss = args.loss or DEFAULT_PAIRS_LOSS
        if LabelledPairs.kind not in get_loss_class(args.loss).supervisions:
            raise CLIError(
                f"--loss {args.loss} does not learn from {LabelledPairs.words} (--pairs); "
                f"losses that do: {', '.join(loss_names(LabelledPairs.kind))}"
            )
        return LabelledPairs
    args.loss = args.loss or DEFAULT_LOSS
    kinds = get_loss_class(args.loss).supervisions
    for kind in (ClassLabels, ContinuousTarget):
        if kind.kind in kinds:
            return kind
    learns = " or ".join(KINDS[kind].words for kind in kinds)
    takers = [*loss_names(ClassLabels.kind), *loss_names(ContinuousTarget.kind)]
    raise CLIError(
        f"--loss {args.loss} learns from {learns}, not from a --target column; losses that do: "
        f"{', '.join(takers)}"
    )


def build_embedder(args, supervision=ClassLabels):
    """The embedder that ``fit``'s options describe, its parameters checked: the loss's
    embedder (``make_embedder``) for a target column, a :class:`~sk_dml.PairEmbedder` over the
    loss for labelled pairs (``supervision=LabelledPairs``; its table is set later).

    ``args.embedder_options`` maps each option that sets an embedder parameter to that
    parameter (its ``dest``); options left out keep the estimator's defaults.
    """
    loss_class = get_loss_class(args.loss)
    loss_defaults = loss_class().get_params()
    params = {}
    for name, text in args.loss_params:
        if name not in loss_defaults:
            takes = ", ".join(loss_defaults) or "no parameters"
            raise CLIError(f"--loss-param {name}: --loss {args.loss} takes {takes}")
        if name in params:
            raise CLIError(f"--loss-param {name} is given twice")
        params[name] = _loss_value(name, text, loss_defaults[name])
    if supervision is LabelledPairs:  # the table and the loss object are no options
        embedder = set(PairEmbedder().get_params(deep=False)) - {"preprocessor", "loss"}
    else:
        embedder = set(make_embedder(args.loss).get_params(deep=False))
    accepted = {*loss_defaults, *embedder}
    for flag, name in args.embedder_options.items():
        value = getattr(args, name)
        if value is None:
            continue
        if name not in accepted:
            raise CLIError(f"{flag} does not apply to --loss {args.loss}")
        if name in params:
            raise CLIError(f"{flag} and --loss-param {name} both set {name}")
        params[name] = tuple(value) if isinstance(value, list) else value
    params["verbose"] = "auto" if args.verbose is None else args.verbose
    if supervision is LabelledPairs:
        own = {name: params.pop(name) for name in loss_defaults if name in params}
        estimator = PairEmbedder(loss=loss_class(**own), **params)
    else:
        estimator = make_embedder(args.loss, **params)
    try:  # the checks fit would make, done now: a bad value is the user's, not training's
        check_params(estimator)
    except ValueError as error:  # scikit-learn's InvalidParameterError
        raise CLIError(f"invalid option value: {one_line(error)}") from error
    size, group = estimator.batch_size, estimator.samples_per_class
    if supervision is ClassLabels and (size % group or size < 2 * group):
        raise CLIError(
            f"--batch-size {size}: must be a multiple of {group} (the rows of a class that "
            f"travel together) and at least {2 * group}"
        )
    if (
        supervision is ContinuousTarget and size < group
    ):  # the sampler's condition, checked in training
        raise CLIError(
            f"--batch-size {size}: must be at least {group} (the rows of neighbouring target "
            "values that travel together)"
        )
    if estimator.checkpoint_dir is not None:
        _check_folder(estimator.checkpoint_dir, "--checkpoint-dir")
    return estimator


# What the validation score of each kind of supervision is (sk_dml.supervision's
# score_function), as fit reports it.
VALIDATION_SCORES = {
    ClassLabels: "precision@1 of the held-out rows",
    ContinuousTarget: "5-NN R^2 of the held-out rows",
    LabelledPairs: "ROC AUC of the held-out pairs",
}


def training_summary(estimator, supervision) -> str:
    """What improved in training, as fit reports it: the validation score after the first
    epoch and at its best (the epoch the model keeps), else the mean training loss of the
    first and the last epoch (empty when the first epoch diverged; a warning says so)."""
    scores, losses = estimator.validation_scores_, estimator.loss_curve_
    if scores:
        what = VALIDATION_SCORES.get(supervision, "validation score")
        if estimator.get_params().get("validation_split") == "classes":
            what = "MAP@R of the held-out classes"
        return f"; {what}: {scores[0]:.4f} after epoch 1, {estimator.best_score_:.4f} kept"
    if losses:
        return f"; mean training loss {losses[0]:.4g} in epoch 1, {losses[-1]:.4g} in the last"
    return ""


# The kinds of column a table schema reads (sk_dml.tabular.TableSchema.describe).
COLUMN_KINDS = ("numeric", "categorical", "text")


def run_fit(args) -> None:
    """Train an embedder on DATA's feature columns and save it to the model file: on the
    target column's class labels or continuous values, or on the labelled pairs of a pairs
    file."""
    check_output(args.output)
    supervision = fit_supervision(args)
    estimator = build_embedder(args, supervision)
    frame = read_table(args.data)
    if supervision is ClassLabels:
        targets = ", ".join(loss_names(ContinuousTarget.kind))
        hint = f"; a loss that learns from a continuous target takes it: --loss {targets}"
        y = class_labels(frame, args.target, args.data, hint=hint)
        largest = np.unique(y, return_counts=True)[1].max()
        if largest < estimator.samples_per_class:
            raise CLIError(
                f"{args.data}: the largest class in {args.target!r} has {largest} row(s); "
                f"training takes {estimator.samples_per_class} rows of a class at a time, so it "
                "needs a class at least that large"
            )
    elif supervision is ContinuousTarget:
        values = target_column(frame, args.target, args.data).to_numpy()
        y = check_target(estimator, values, f"{args.data}: the target column {args.target!r}")
    features, categorical, text = feature_columns(frame, args, args.data)
    if args.categorical or text:
        estimator.set_params(categorical_features=categorical)
    if text:
        estimator.set_params(text_features=text)
    X = features
    if supervision is LabelledPairs:
        X, y = read_pairs(args.pairs, frame, args.key, args.data)
        estimator.set_params(preprocessor=features)
        alike = check_pairs(estimator, X, y, args.pairs)
    check_table(estimator, features, args.data)  # bad columns are bad input
    tic = time.perf_counter()
    estimator.fit(X, y)
    fit_time = time.perf_counter() - tic
    learned_from = (
        {"pairs": args.pairs} if supervision is LabelledPairs else {"target": args.target}
    )
    extra = {**learned_from, "key": args.key, "excluded": list(args.exclude)}
    extra["fingerprint"] = fingerprint(features)  # evaluate warns when DATA is this table
    with atomic_output(args.output) as tmp:
        save(estimator, tmp, extra=extra)  # a PairEmbedder's table is not saved
    columns = estimator.schema_.describe()  # what each column was read as, and why
    read_as = {kind: [c["column"] for c in columns if c["kind"] == kind] for kind in COLUMN_KINDS}
    categorical, text = read_as["categorical"], read_as["text"]
    n_numeric = len(read_as["numeric"])
    listed = f": {names(categorical)}" if categorical else ""
    texts = f", {len(text)} text columns: {names(text)}" if text else ""
    rows = f"{len(features)} rows"
    if supervision is LabelledPairs:
        rows = f"{len(X)} pairs ({int(alike.sum())} alike) of {rows}"
    print(
        f"{model_name(estimator)} trained on {rows} ({n_numeric} numeric and "
        f"{len(categorical)} categorical columns{listed}{texts}) in {estimator.n_iter_} epochs, "
        f"{fit_time:.1f} s{training_summary(estimator, supervision)}"
    )
    width = max(len(str(c["column"])) for c in columns)
    print("columns read as:")
    for c in columns:
        print(f"  {str(c['column']):<{width}}  {c['kind']:<11}  {c['reason']}")
    print(f"saved {args.output}")
