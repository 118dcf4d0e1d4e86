"""``sk-dml demo``: every loss of class labels trained on built-in data (digits, letter), their
5-NN test accuracies printed next to plain 5-NN, and the digits test set's embeddings drawn."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from ...criteria import loss_names
from ...embedders import make_embedder
from ...supervision import ClassLabels
from ..errors import CLIError, one_line
from ..figures import embedding_figure, save_figure
from ..tables import check_output
from .common import N_NEIGHBORS, model_name


def _demo_data(quick: bool) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The demo's data sets as ``(name, X_train, X_test, y_train, y_test)``: scikit-learn's
    digits and the shipped letter data, split 70/30 (stratified, seed 0) and standardised with
    the training rows' statistics."""
    from sklearn.datasets import load_digits

    from ...datasets import load_letter

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
        losses = loss_names(ClassLabels.kind)  # the demo's data sets have class labels
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
