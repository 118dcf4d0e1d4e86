"""The five commands, one handler each: demo, fit, transform, evaluate and plot.

A handler takes the parsed arguments, checks its input where it enters (raising
:class:`~sk_dml.cli.errors.CLIError`) and then does the work.

``fit`` learns from what its options name (:func:`fit_supervision`): class labels or a
continuous target in the ``--target`` column, as the loss learns from one or the other, or the
labelled pairs of a ``--pairs`` file (a :class:`~sk_dml.PairEmbedder`). ``evaluate`` scores a
model by what it learned from: retrieval and k-NN accuracy of class labels, k-NN regression
R^2 of a continuous target, or the ROC AUC of labelled pairs (``--pairs``, for any model).
"""

from __future__ import annotations

import os
import time
import warnings
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from ..criteria import TripletLoss, get_loss_class, loss_names
from ..distances import paired_distance
from ..embedders import make_embedder
from ..metrics import retrieval_scores
from ..persistence import save
from ..supervision import neighbors_r2
from ..tuple_embedders import PairEmbedder
from .columns import class_labels, feature_columns, target_column
from .errors import CLIError, names, one_line
from .figures import embedding_figure, figure_format, save_figure
from .model import SUPERVISION_WORDS, Model, check_pairs, check_target, encode, pair_labels
from .pairs import read_pairs
from .tables import atomic_output, check_output, read_table, table_format, write_table

# Neighbours of the k-NN accuracies and folds of evaluate's cross-validation.
N_NEIGHBORS = 5
N_FOLDS = 5
# The k of evaluate's recall@k.
RECALL_AT = 10
# fit's loss without --loss: MetricEmbedder's default for class labels and a target column; the
# first loss that learns from pairs with --pairs.
DEFAULT_LOSS = TripletLoss.name
DEFAULT_PAIRS_LOSS = loss_names("pairs")[0]


def model_name(estimator) -> str:
    """A named embedder's class name, else MetricEmbedder(LossClass)."""
    name = type(estimator).__name__
    loss = estimator.get_params().get("loss")
    return name if loss is None else f"{name}({type(loss).__name__})"


# ---------------------------------------------------------------------------------- demo
def _demo_data(quick: bool) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The demo's data sets as ``(name, X_train, X_test, y_train, y_test)``: scikit-learn's
    digits and the shipped letter data, split 70/30 (stratified, seed 0) and standardised with
    the training rows' statistics."""
    from sklearn.datasets import load_digits

    from ..datasets import load_letter

    digits = load_digits()
    X_letter, y_letter = load_letter()
    if quick:
        X_letter, y_letter = X_letter.iloc[:3000], y_letter.iloc[:3000]
    splits = []
    for name, X, y in [
        ("digits", digits.data, digits.target),
        ("letter", X_letter.to_numpy(np.float64), y_letter.to_numpy()),
    ]:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.3, stratify=y, random_state=0
        )
        scaler = StandardScaler().fit(X_train)
        splits.append((name, scaler.transform(X_train), scaler.transform(X_test), y_train, y_test))
    return splits


def run_demo(args) -> None:
    """Train every embedder on digits and letter; print 5-NN accuracies; draw digits."""
    started = time.perf_counter()
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CLIError(f"--out {args.out}: cannot create the folder ({one_line(error)})") from error
    figure_path = check_output(Path(args.out) / "demo_embedding.png")
    datasets = _demo_data(args.quick)
    for name, X_train, X_test, y_train, _ in datasets:
        print(
            f"{name}: {len(X_train)} train / {len(X_test)} test rows, {X_train.shape[1]} "
            f"features, {len(np.unique(y_train))} classes"
        )
    params = {"random_state": 0, **({"max_epochs": 5} if args.quick else {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the table's epochs column says it
        # A throw-away fit first, so that torch's one-time start-up is not charged to the
        # first embedder's fit time.
        _, X_warm, _, y_warm, _ = datasets[0]
        warm_up = make_embedder("triplet", max_epochs=1, batch_size=16, random_state=0)
        warm_up.fit(X_warm[:200], y_warm[:200])
        rows, panels = [], []
        losses = loss_names("classes")  # the demo's data sets have class labels
        progress = tqdm(total=len(datasets) * len(losses), desc="training", unit="model")
        for name, X_train, X_test, y_train, y_test in datasets:
            knn = KNeighborsClassifier(N_NEIGHBORS).fit(X_train, y_train)
            rows.append(
                (name, "plain 5-NN (standardised features)", "", "", knn.score(X_test, y_test))
            )
            for loss in losses:
                estimator = make_embedder(loss, **params)
                model = model_name(estimator)
                progress.set_postfix_str(f"{name}: {model}")
                tic = time.perf_counter()
                estimator.fit(X_train, y_train)
                fit_time = time.perf_counter() - tic
                Z_train, Z_test = estimator.transform(X_train), estimator.transform(X_test)
                knn = KNeighborsClassifier(N_NEIGHBORS, metric=estimator.embedding_metric_)
                accuracy = knn.fit(Z_train, y_train).score(Z_test, y_test)
                rows.append((name, model, estimator.n_iter_, f"{fit_time:.1f}", accuracy))
                if name == "digits":
                    metric = estimator.embedding_metric_
                    panel = f"{model} ({metric}): 5-NN accuracy {accuracy:.3f}"
                    panels.append((panel, Z_test, metric))
                progress.update()
        progress.close()
    print(f"\n5-NN accuracy on the stratified 30% test split{' (--quick)' * args.quick}:\n")
    header = ("data set", "model", "epochs", "fit time (s)", "5-NN accuracy")
    print(f"{header[0]:<9} {header[1]:<35} {header[2]:>6} {header[3]:>12} {header[4]:>13}")
    for data, model, epochs, fit_time, accuracy in rows:
        print(f"{data:<9} {model:<35} {epochs:>6} {fit_time:>12} {accuracy:>13.4f}")
    digits_test = datasets[0][4]
    title = f"digits test set ({len(digits_test)} rows): 2-D PCA of each learned embedding"
    title += " (--quick: 5 epochs)" * args.quick
    save_figure(embedding_figure(panels, digits_test, "digit", title, n_cols=2), figure_path)
    print(f"\nfigure: {figure_path}")
    print(f"total time: {time.perf_counter() - started:.0f} s")


# ----------------------------------------------------------------------------------- fit
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


def fit_supervision(args) -> str:
    """What ``fit`` learns from: "pairs" with ``--pairs``, else "classes" or "target" (the
    ``--target`` column's class labels or continuous values), as the loss learns from. Sets
    ``args.loss`` to the default loss of that kind when ``--loss`` is not given; a loss that
    does not learn from it is bad input."""
    if args.pairs is not None:
        args.loss = args.loss or DEFAULT_PAIRS_LOSS
        if "pairs" not in get_loss_class(args.loss).supervisions:
            raise CLIError(
                f"--loss {args.loss} does not learn from labelled pairs (--pairs); losses that "
                f"do: {', '.join(loss_names('pairs'))}"
            )
        return "pairs"
    args.loss = args.loss or DEFAULT_LOSS
    kinds = get_loss_class(args.loss).supervisions
    for kind in ("classes", "target"):
        if kind in kinds:
            return kind
    learns = " or ".join(SUPERVISION_WORDS[kind] for kind in kinds)
    takers = [*loss_names("classes"), *loss_names("target")]
    raise CLIError(
        f"--loss {args.loss} learns from {learns}, not from a --target column; losses that do: "
        f"{', '.join(takers)}"
    )


def build_embedder(args, supervision: str = "classes"):
    """The embedder that ``fit``'s options describe, its parameters checked: the loss's
    embedder (``make_embedder``) for a target column, a :class:`~sk_dml.PairEmbedder` over the
    loss for labelled pairs (``supervision="pairs"``; its table is set later).

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
    if supervision == "pairs":  # the table and the loss object are no options
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
    params["verbose"] = int(args.verbose)
    if supervision == "pairs":
        own = {name: params.pop(name) for name in loss_defaults if name in params}
        estimator = PairEmbedder(loss=loss_class(**own), **params)
    else:
        estimator = make_embedder(args.loss, **params)
    try:  # the checks fit would make, done now: a bad value is the user's, not training's
        estimator._validate_params()
        loss = estimator.get_params(deep=False).get("loss")  # a MetricEmbedder's loss object
        if loss is not None:
            loss._validate_params()
    except ValueError as error:  # scikit-learn's InvalidParameterError
        raise CLIError(f"invalid option value: {one_line(error)}") from error
    size, group = estimator.batch_size, estimator.samples_per_class
    if supervision == "classes" and (size % group or size < 2 * group):
        raise CLIError(
            f"--batch-size {size}: must be a multiple of {group} (the rows of a class that "
            f"travel together) and at least {2 * group}"
        )
    if supervision == "target" and size < group:  # the sampler's condition, checked in training
        raise CLIError(
            f"--batch-size {size}: must be at least {group} (the rows of neighbouring target "
            "values that travel together)"
        )
    if estimator.checkpoint_dir is not None:
        _check_folder(estimator.checkpoint_dir, "--checkpoint-dir")
    return estimator


def run_fit(args) -> None:
    """Train an embedder on DATA's feature columns and save it to the model file: on the
    target column's class labels or continuous values, or on the labelled pairs of a pairs
    file."""
    check_output(args.output)
    supervision = fit_supervision(args)
    estimator = build_embedder(args, supervision)
    frame = read_table(args.data)
    if supervision == "classes":
        targets = ", ".join(loss_names("target"))
        hint = f"; a loss that learns from a continuous target takes it: --loss {targets}"
        y = class_labels(frame, args.target, args.data, hint=hint)
        largest = np.unique(y, return_counts=True)[1].max()
        if largest < estimator.samples_per_class:
            raise CLIError(
                f"{args.data}: the largest class in {args.target!r} has {largest} row(s); "
                f"training takes {estimator.samples_per_class} rows of a class at a time, so it "
                "needs a class at least that large"
            )
    elif supervision == "target":
        values = target_column(frame, args.target, args.data).to_numpy()
        y = check_target(estimator, values, f"{args.data}: the target column {args.target!r}")
    features, categorical, text = feature_columns(frame, args, args.data)
    if args.categorical or text:
        estimator.set_params(categorical_features=categorical)
    if text:
        estimator.set_params(text_features=text)
    X = features
    if supervision == "pairs":
        X, y = read_pairs(args.pairs, frame, args.key, args.data)
        estimator.set_params(preprocessor=features)
        alike = check_pairs(estimator, X, y, args.pairs)
    encode(estimator, features, args.data, fitting=True)  # bad columns are bad input
    tic = time.perf_counter()
    estimator.fit(X, y)
    fit_time = time.perf_counter() - tic
    learned_from = {"pairs": args.pairs} if supervision == "pairs" else {"target": args.target}
    extra = {**learned_from, "key": args.key, "excluded": list(args.exclude)}
    with atomic_output(args.output) as tmp:
        save(estimator, tmp, extra=extra)  # a PairEmbedder's table is not saved
    losses = estimator.loss_curve_  # empty when the first epoch diverged (a warning says so)
    n_numeric = features.shape[1] - len(categorical) - len(text)
    listed = f": {names(categorical)}" if categorical else ""
    texts = f", {len(text)} text columns: {names(text)}" if text else ""
    rows = f"{len(features)} rows"
    if supervision == "pairs":
        rows = f"{len(X)} pairs ({int(alike.sum())} alike) of {rows}"
    print(
        f"{model_name(estimator)} trained on {rows} ({n_numeric} numeric and "
        f"{len(categorical)} categorical columns{listed}{texts}) in {estimator.n_iter_} epochs, "
        f"{fit_time:.1f} s" + (f"; final loss {losses[-1]:.4g}" if losses else "")
    )
    print(f"saved {args.output}")


# ---------------------------------------------------------------------- transform, evaluate
def _key_column(args, model: Model, frame: pd.DataFrame, width: int) -> pd.DataFrame:
    """The key column that transform writes first: ``--key``, else the model's key; none with
    ``--no-key`` or when neither names one."""
    key = None if args.no_key else (args.key or model.key)
    if key is None:
        return pd.DataFrame(index=range(len(frame)))
    if key not in frame.columns:
        whose = "--key" if args.key else "the model's key column"
        raise CLIError(
            f"{args.data}: no column {key!r} ({whose}); the columns are "
            f"{names(list(frame.columns))}"
            + ("" if args.key else "; --key COL names another, --no-key writes none")
        )
    if key in {f"emb{i}" for i in range(width)}:
        raise CLIError(f"--key {key!r}: the embedding's columns have that name")
    return frame[[key]].reset_index(drop=True)


def run_transform(args) -> None:
    """Write the embeddings of DATA's rows, columns emb0..emb{d-1}, after the key column."""
    table_format(args.output)
    check_output(args.output)
    model = Model.load(args.model)
    frame = read_table(args.data)
    key = _key_column(args, model, frame, len(model.estimator.get_feature_names_out()))
    Z = model.embed(frame, args.data)
    embeddings = pd.DataFrame(Z, columns=[f"emb{i}" for i in range(Z.shape[1])])
    write_table(pd.concat([key, embeddings], axis=1), args.output)
    keyed = f", after the key column {key.columns[0]!r}," if key.shape[1] else ""
    print(f"wrote {Z.shape[0]} embeddings of dimension {Z.shape[1]}{keyed} to {args.output}")


def _target_of(args, model: Model, instead: str = "") -> str:
    """``--target``, or else the target column the model was trained on. ``instead`` says
    what else the command takes when the model learned from no target column."""
    target = args.target or model.target
    if target:
        return target
    kind = model.supervision
    if kind in ("pairs", "triplets"):
        source = f" ({model.pairs})" if model.pairs else ""
        raise CLIError(
            f"{model.path}: the model learned from {SUPERVISION_WORDS[kind]}{source}, not a "
            f"target column; give {instead}--target COL to use a class column of DATA"
        )
    raise CLIError(f"{model.path} does not name its target column; give --target")


def run_evaluate(args) -> None:
    """Score DATA in the learned space, by what the model learned from: for class labels,
    retrieval scores (leave-one-out in DATA, or DATA's rows against REF's) and cross-validated
    5-NN accuracies; for a continuous target, 5-NN regression R^2; with ``--pairs``, the ROC
    AUC of labelled pairs of DATA's rows."""
    model = Model.load(args.model)
    if args.pairs is not None:
        _evaluate_pairs(args, model)
        return
    if args.key is not None or args.no_key:
        flag = "--key" if args.key is not None else "--no-key"
        raise CLIError(f"{flag} says how a pairs file names rows; it needs --pairs")
    if model.supervision == "target":
        _evaluate_target(args, model)
        return
    frame = read_table(args.data)
    target = _target_of(args, model, instead="--pairs FILE to score it on labelled pairs, or ")
    labels = class_labels(frame, target, args.data)
    if len(labels) < 2 * N_FOLDS or np.unique(labels, return_counts=True)[1].max() < N_FOLDS:
        raise CLIError(
            f"{args.data}: {N_FOLDS}-fold cross-validation needs at least {2 * N_FOLDS} rows and "
            f"a class of {N_FOLDS} or more"
        )
    Z = model.embed(frame, args.data)
    X = model.baseline(frame, args.data)
    metric = model.estimator.embedding_metric_
    if args.reference is None:
        retrieval = retrieval_scores(Z, labels, metric=metric, recall_at=RECALL_AT)
        notes = [
            "each row queries all other rows (leave-one-out)",
            "same queries; R = the number of other rows of the query's class",
            "same queries and R",
            f"share of queries with a row of their class among their {RECALL_AT} nearest",
        ]
    else:
        ref_frame = read_table(args.reference)
        ref_labels = class_labels(ref_frame, target, args.reference)
        Z_ref = model.embed(ref_frame, args.reference)
        known = set(ref_labels.tolist())
        lone = sum(label not in known for label in labels.tolist())
        if lone == len(labels):
            raise CLIError(
                f"{args.reference}: none of the classes of {args.data} in {target!r} occurs in "
                "it; there is nothing to retrieve"
            )
        retrieval = retrieval_scores(
            Z,
            labels,
            reference=Z_ref,
            reference_labels=ref_labels,
            metric=metric,
            recall_at=RECALL_AT,
        )
        notes = [
            "queries: DATA, references: REF",
            "same queries; R = the number of REF rows of the query's class",
            "same queries and R",
            f"share of queries with a REF row of their class among their {RECALL_AT} nearest",
        ]
    folds = StratifiedKFold(N_FOLDS, shuffle=True, random_state=0)
    learned = cross_val_score(
        KNeighborsClassifier(N_NEIGHBORS, metric=metric), Z, labels, cv=folds, error_score="raise"
    )
    plain = cross_val_score(
        KNeighborsClassifier(N_NEIGHBORS), X, labels, cv=folds, error_score="raise"
    )
    titles = ["precision@1", "R-precision", "MAP@R", f"recall@{RECALL_AT}"]
    keys = ["precision@1", "r_precision", "map@r", f"recall@{RECALL_AT}"]
    scores = [
        (name, f"{retrieval[key]:.4f}", note)
        for name, key, note in zip(titles, keys, notes, strict=True)
    ]
    scores += [
        (f"{N_NEIGHBORS}-NN accuracy", f"{learned.mean():.4f} +/- {learned.std():.4f}",
         f"{N_FOLDS}-fold stratified cross-validation (shuffled, seed 0) of DATA, on the "
         "embeddings"),
        (f"{N_NEIGHBORS}-NN accuracy", f"{plain.mean():.4f} +/- {plain.std():.4f}",
         "same folds, on the input features: numbers standardised, categories one-hot "
         "(baseline)"),
    ]  # fmt: skip
    print(f"model  {model.describe()}")
    print(f"data   {args.data}: {len(labels)} rows, {len(np.unique(labels))} classes in {target!r}")
    if args.reference is not None:
        absent = f"; {lone} DATA row(s) of a class absent from REF left out" if lone else ""
        print(
            f"ref    {args.reference}: {len(ref_labels)} rows, {len(np.unique(ref_labels))} "
            f"classes{absent}"
        )
    _print_scores(scores)


def _print_scores(scores) -> None:
    print()
    for name, value, note in scores:
        print(f"{name:<14} {value:<18} {note}")


def _evaluate_target(args, model: Model) -> None:
    """A model of a continuous target: the R^2 of 5-NN regression of the target column,
    leave-one-out in DATA (the estimator's ``score``) or DATA's rows from REF's, in the learned
    space and on the input features."""
    frame = read_table(args.data)
    target = _target_of(args, model)
    values = target_column(frame, target, args.data).to_numpy()
    y = check_target(model.estimator, values, f"{args.data}: the target column {target!r}")
    if args.reference is None and len(y) <= N_NEIGHBORS:
        raise CLIError(
            f"{args.data}: leave-one-out {N_NEIGHBORS}-NN regression needs more than "
            f"{N_NEIGHBORS} rows; it has {len(y)}"
        )
    Z = model.embed(frame, args.data)
    X = model.baseline(frame, args.data)
    metric = model.estimator.embedding_metric_
    if args.reference is None:
        learned = neighbors_r2(Z, y, n_neighbors=N_NEIGHBORS, metric=metric)
        plain = neighbors_r2(X, y, n_neighbors=N_NEIGHBORS)
        note = f"leave-one-out {N_NEIGHBORS}-NN regression of {target!r} in DATA"
    else:
        ref_frame = read_table(args.reference)
        ref_values = target_column(ref_frame, target, args.reference).to_numpy()
        y_ref = check_target(
            model.estimator, ref_values, f"{args.reference}: the target column {target!r}"
        )
        Z_ref = model.embed(ref_frame, args.reference)
        X_ref = model.baseline(ref_frame, args.reference)
        k = min(N_NEIGHBORS, len(y_ref))
        learned = KNeighborsRegressor(k, metric=metric).fit(Z_ref, y_ref).score(Z, y)
        plain = KNeighborsRegressor(k).fit(X_ref, y_ref).score(X, y)
        note = f"{k}-NN regression of {target!r}: DATA's rows from REF's"
    print(f"model  {model.describe()}")
    print(
        f"data   {args.data}: {len(y)} rows, continuous target {target!r} (mean {y.mean():.4g}, "
        f"standard deviation {y.std():.4g})"
    )
    if args.reference is not None:
        print(f"ref    {args.reference}: {len(y_ref)} rows")
    _print_scores(
        [
            (f"{N_NEIGHBORS}-NN R^2", f"{learned:.4f}", f"{note}, on the embeddings"),
            (
                f"{N_NEIGHBORS}-NN R^2",
                f"{plain:.4f}",
                "same, on the input features: numbers standardised, categories one-hot (baseline)",
            ),
        ]
    )


def _evaluate_pairs(args, model: Model) -> None:
    """ROC AUC of the labelled pairs of ``--pairs`` (rows of DATA): the embedding distance
    against the label, and the input features' as a baseline; a PairEmbedder's accuracy at its
    threshold too."""
    if args.target is not None or args.reference is not None:
        given = "--target" if args.target is not None else "--reference"
        raise CLIError(f"{given}: not with --pairs, whose labels are the pairs' own")
    frame = read_table(args.data)
    key = None if args.no_key else (args.key or model.key)
    if key is not None and key not in frame.columns:
        whose = "--key" if args.key else "the model's key column"
        raise CLIError(
            f"{args.data}: no column {key!r} ({whose}) to find the rows of {args.pairs} by; the "
            f"columns are {names(list(frame.columns))}"
            + ("" if args.key else "; --key COL names another, --no-key takes row numbers")
        )
    pairs, labels = read_pairs(args.pairs, frame, key, args.data)
    alike = pair_labels(labels, args.pairs)
    Z = model.embed(frame, args.data)
    metric = model.estimator.embedding_metric_
    distance = paired_distance(Z[pairs[:, 0]], Z[pairs[:, 1]], metric)
    X = model.baseline(frame, args.data)
    diff = X[pairs[:, 0]] - X[pairs[:, 1]]
    plain = np.sqrt(np.asarray(diff.multiply(diff).sum(axis=1)).ravel())
    scores = [
        ("ROC AUC", f"{roc_auc_score(alike, -distance):.4f}",
         f"alike pairs against the others, by the embedding distance ({metric})"),
        ("ROC AUC", f"{roc_auc_score(alike, -plain):.4f}",
         "same pairs, by the euclidean distance of the input features: numbers standardised, "
         "categories one-hot (baseline)"),
    ]  # fmt: skip
    threshold = getattr(model.estimator, "threshold_", None)
    if threshold is not None:  # a PairEmbedder's: alike when -distance >= threshold
        accuracy = np.mean((-distance >= threshold) == alike)
        rule = (
            "every pair not alike (the most accurate rule on the training pairs)"
            if threshold == np.inf
            else f"alike when their embedding distance is at most {-threshold:.4g}"
        )
        scores.append(
            ("accuracy", f"{accuracy:.4f}",
             f"of the model's threshold (threshold_, set at fit), which predicts {rule}")
        )  # fmt: skip
    named = f"by {key!r}" if key is not None else "by row number"
    print(f"model  {model.describe()}")
    print(f"data   {args.data}: {len(frame)} rows")
    print(
        f"pairs  {args.pairs}: {len(pairs)} pairs ({int(alike.sum())} alike) of its rows, "
        f"named {named}"
    )
    _print_scores(scores)


# ---------------------------------------------------------------------------------- plot
def run_plot(args) -> None:
    """Draw the 2-D PCA projection of DATA's embedding coloured by class."""
    figure_format(args.output)
    check_output(args.output)
    model = Model.load(args.model)
    frame = read_table(args.data)
    target = _target_of(args, model)
    labels = class_labels(frame, target, args.data)
    Z = model.embed(frame, args.data)
    metric = model.estimator.embedding_metric_
    title = (
        f"{type(model.estimator).__name__} embedding of {Path(args.data).name}\n"
        f"{len(Z)} rows, {Z.shape[1]}-D, {metric} metric: 2-D PCA"
    )
    save_figure(embedding_figure([("", Z, metric)], labels, target, title), args.output)
    print(f"wrote {args.output}")
