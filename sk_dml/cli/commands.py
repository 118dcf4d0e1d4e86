"""The five commands, one handler each: demo, fit, transform, evaluate and plot.

A handler takes the parsed arguments, checks its input where it enters (raising
:class:`~sk_dml.cli.errors.CLIError`) and then does the work.
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
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from ..criteria import get_loss_class, loss_names
from ..embedders import make_embedder
from ..metrics import retrieval_scores
from ..persistence import save
from .columns import class_labels, feature_columns
from .errors import CLIError, names, one_line
from .figures import embedding_figure, figure_format, save_figure
from .model import Model, encode
from .tables import atomic_output, check_output, read_table, table_format, write_table

# Neighbours of the k-NN accuracies and folds of evaluate's cross-validation.
N_NEIGHBORS = 5
N_FOLDS = 5
# The k of evaluate's recall@k.
RECALL_AT = 10


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
        progress = tqdm(total=len(datasets) * len(loss_names()), desc="training", unit="model")
        for name, X_train, X_test, y_train, y_test in datasets:
            knn = KNeighborsClassifier(N_NEIGHBORS).fit(X_train, y_train)
            rows.append(
                (name, "plain 5-NN (standardised features)", "", "", knn.score(X_test, y_test))
            )
            for loss in loss_names():
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


def build_embedder(args):
    """The embedder that ``fit``'s options describe, its parameters checked.

    ``args.embedder_options`` maps each option that sets an embedder parameter to that
    parameter (its ``dest``); options left out keep the estimator's defaults.
    """
    loss_defaults = get_loss_class(args.loss)().get_params()
    params = {}
    for name, text in args.loss_params:
        if name not in loss_defaults:
            takes = ", ".join(loss_defaults) or "no parameters"
            raise CLIError(f"--loss-param {name}: --loss {args.loss} takes {takes}")
        if name in params:
            raise CLIError(f"--loss-param {name} is given twice")
        params[name] = _loss_value(name, text, loss_defaults[name])
    accepted = {*loss_defaults, *make_embedder(args.loss).get_params(deep=False)}
    for flag, name in args.embedder_options.items():
        value = getattr(args, name)
        if value is None:
            continue
        if name not in accepted:
            raise CLIError(f"{flag} does not apply to --loss {args.loss}")
        if name in params:
            raise CLIError(f"{flag} and --loss-param {name} both set {name}")
        params[name] = tuple(value) if isinstance(value, list) else value
    estimator = make_embedder(args.loss, verbose=int(args.verbose), **params)
    try:  # the checks fit would make, done now: a bad value is the user's, not training's
        estimator._validate_params()
        loss = estimator.get_params(deep=False).get("loss")  # a MetricEmbedder's loss object
        if loss is not None:
            loss._validate_params()
    except ValueError as error:  # scikit-learn's InvalidParameterError
        raise CLIError(f"invalid option value: {one_line(error)}") from error
    size, group = estimator.batch_size, estimator.samples_per_class
    if size % group or size < 2 * group:
        raise CLIError(
            f"--batch-size {size}: must be a multiple of {group} (the rows of a class that "
            f"travel together) and at least {2 * group}"
        )
    if estimator.checkpoint_dir is not None:
        _check_folder(estimator.checkpoint_dir, "--checkpoint-dir")
    return estimator


def run_fit(args) -> None:
    """Train an embedder on DATA's feature columns and save it to the model file."""
    check_output(args.output)
    estimator = build_embedder(args)
    frame = read_table(args.data)
    labels = class_labels(frame, args.target, args.data)
    largest = np.unique(labels, return_counts=True)[1].max()
    if largest < estimator.samples_per_class:
        raise CLIError(
            f"{args.data}: the largest class in {args.target!r} has {largest} row(s); training "
            f"takes {estimator.samples_per_class} rows of a class at a time, so it needs a "
            "class at least that large"
        )
    features, categorical = feature_columns(frame, args, args.data)
    if args.categorical:
        estimator.set_params(categorical_features=categorical)
    encode(estimator, features, args.data, fitting=True)  # bad columns are bad input
    tic = time.perf_counter()
    estimator.fit(features, labels)
    fit_time = time.perf_counter() - tic
    extra = {"target": args.target, "key": args.key, "excluded": list(args.exclude)}
    with atomic_output(args.output) as tmp:
        save(estimator, tmp, extra=extra)
    losses = estimator.loss_curve_  # empty when the first epoch diverged (a warning says so)
    n_numeric = features.shape[1] - len(categorical)
    listed = f": {names(categorical)}" if categorical else ""
    print(
        f"{model_name(estimator)} trained on {len(features)} rows ({n_numeric} numeric and "
        f"{len(categorical)} categorical columns{listed}) in {estimator.n_iter_} epochs, "
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


def _target_of(args, model: Model) -> str:
    """``--target``, or else the target column the model was trained on."""
    target = args.target or model.target
    if not target:
        raise CLIError(f"{model.path} does not name its target column; give --target")
    return target


def run_evaluate(args) -> None:
    """Print retrieval scores (leave-one-out in DATA, or DATA's rows against REF's) and
    cross-validated 5-NN accuracies of DATA."""
    model = Model.load(args.model)
    frame = read_table(args.data)
    target = _target_of(args, model)
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
    print()
    for name, value, note in scores:
        print(f"{name:<14} {value:<18} {note}")


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
