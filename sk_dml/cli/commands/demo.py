"""``sk-dml demo``: a first look at metric learning on two shipped tables, and with ``--full``
the comparison of every loss of class labels.

The first look (the default, under 20 s on a 2-core CPU) trains one embedder for 10 epochs
on each of UCI Image Segmentation (19 numeric columns) and a sample of 3,000 rows of UCI
Nursery (8 text columns), given to the embedder as they are, with a progress bar per epoch;
it prints each test accuracy of 5-NN in the learned space next to plain 5-NN on the input
features (standardised numbers, one-hot text), and draws each test set's input features next
to its embedding. ``--full`` trains an embedder with every loss of class labels on
scikit-learn's digits and the shipped letter data (half an hour or more on a 2-core CPU), and
draws the digits test set's embeddings.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from tqdm import tqdm

from ...criteria import loss_names
from ...embedders import make_embedder
from ...supervision import ClassLabels
from ..errors import CLIError, one_line
from ..figures import draw_panels, embedding_figure, save_figure
from ..tables import check_output
from .common import N_NEIGHBORS, model_name

# The first look's embedder, its epochs (its validation score levels off before), and the rows
# of nursery it reads (a stratified sample); --quick's epochs and rows.
FIRST_LOOK_LOSS = "triplet"
FIRST_LOOK_EPOCHS, NURSERY_ROWS = 10, 3000
QUICK_EPOCHS, QUICK_NURSERY_ROWS = 5, 1500


@dataclass
class Split:
    """A shipped table split 70/30 (stratified, seed 0), and the baseline's encoding of it."""

    name: str
    X_train: object
    X_test: object
    y_train: np.ndarray
    y_test: np.ndarray
    baseline: str  # what plain 5-NN reads, as the table says it
    encoder: object  # fitted on the training rows

    @classmethod
    def of(cls, name: str, X, y, baseline: str, encoder) -> Split:
        X_train, X_test, y_train, y_test = train_test_split(
            X, np.asarray(y), test_size=0.3, stratify=y, random_state=0
        )
        return cls(name, X_train, X_test, y_train, y_test, baseline, encoder.fit(X_train))

    def describe(self) -> str:
        return (
            f"{self.name}: {len(self.X_train)} train / {len(self.X_test)} test rows, "
            f"{self.X_train.shape[1]} features, {len(np.unique(self.y_train))} classes"
        )


def _first_look_data(quick: bool) -> list[Split]:
    """Segment (numbers; the baseline standardises them) and a stratified sample of nursery
    (text categories; the baseline one-hot encodes them; its class of 2 rows left out): the
    embedder reads both tables as they are."""
    from ...datasets import load_nursery, load_segment

    X_segment, y_segment = load_segment()
    X_nursery, y_nursery = load_nursery()
    kept = (y_nursery != "recommend").to_numpy()
    X_nursery, y_nursery = X_nursery[kept], y_nursery[kept]
    X_nursery, _, y_nursery, _ = train_test_split(
        X_nursery,
        y_nursery,
        train_size=QUICK_NURSERY_ROWS if quick else NURSERY_ROWS,
        stratify=y_nursery,
        random_state=0,
    )
    return [
        Split.of("segment", X_segment, y_segment, "standardised numbers", StandardScaler()),
        Split.of("nursery", X_nursery, y_nursery, "one-hot text", OneHotEncoder()),
    ]


def _demo_data(quick: bool) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``--full``'s data sets as ``(name, X_train, X_test, y_train, y_test)``: scikit-learn's
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


def _figure_path(args) -> Path:
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CLIError(f"--out {args.out}: cannot create the folder ({one_line(error)})") from error
    return check_output(Path(args.out) / "demo_embedding.png")


def _print_table(rows, caption: str) -> None:
    """The ``(data set, model, epochs, fit time, 5-NN accuracy)`` rows under ``caption``."""
    print(f"\n{caption}:\n")
    header = ("data set", "model", "epochs", "fit time (s)", "5-NN accuracy")
    print(f"{header[0]:<9} {header[1]:<35} {header[2]:>6} {header[3]:>12} {header[4]:>13}")
    for data, model, epochs, fit_time, accuracy in rows:
        print(f"{data:<9} {model:<35} {epochs:>6} {fit_time:>12} {accuracy:>13.4f}")


def _fit_and_score(estimator, X_train, X_test, y_train, y_test):
    """Fit ``estimator``; its test embeddings, fit time (s) and 5-NN test accuracy."""
    tic = time.perf_counter()
    estimator.fit(X_train, y_train)
    fit_time = time.perf_counter() - tic
    Z_train, Z_test = estimator.transform(X_train), estimator.transform(X_test)
    knn = KNeighborsClassifier(N_NEIGHBORS, metric=estimator.embedding_metric_)
    return Z_test, fit_time, knn.fit(Z_train, y_train).score(Z_test, y_test)


def run_demo(args) -> None:
    """The first look, or with ``--full`` every loss of class labels on digits and letter."""
    started = time.perf_counter()
    figure_path = _figure_path(args)
    if args.full:
        _full_comparison(args, figure_path)
    else:
        with _one_thread():
            _first_look(args, figure_path)
    print(f"\nfigure: {figure_path}")
    print(f"total time: {time.perf_counter() - started:.0f} s")


@contextlib.contextmanager
def _one_thread():
    """torch on one thread inside the block. The first look's small networks train as well on
    one, and far faster on a busy machine: on a shared 2-core CPU, the same numbers took 32 s
    with one thread and 155 s with two."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _first_look(args, figure_path: Path) -> None:
    """One embedder per shipped table, each against plain 5-NN on the input features."""
    from matplotlib.figure import Figure

    splits = _first_look_data(args.quick)
    for split in splits:
        print(split.describe())
    epochs = QUICK_EPOCHS if args.quick else FIRST_LOOK_EPOCHS
    params = {"random_state": 0, "verbose": 1, "max_epochs": epochs}
    rows, figure_rows = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the table's epochs column says it
        for split in splits:
            X_train = split.encoder.transform(split.X_train)
            X_test = split.encoder.transform(split.X_test)
            knn = KNeighborsClassifier(N_NEIGHBORS).fit(X_train, split.y_train)
            plain = knn.score(X_test, split.y_test)
            rows.append((split.name, f"plain 5-NN ({split.baseline})", "", "", plain))
            estimator = make_embedder(FIRST_LOOK_LOSS, **params)
            model = model_name(estimator)
            print(f"training {model} on {split.name} (the table as it is):", flush=True)
            Z_test, fit_time, accuracy = _fit_and_score(
                estimator, split.X_train, split.X_test, split.y_train, split.y_test
            )
            rows.append((split.name, model, estimator.n_iter_, f"{fit_time:.1f}", accuracy))
            dense = X_test.toarray() if hasattr(X_test, "toarray") else X_test
            panels = [
                (f"input features ({split.baseline}): plain 5-NN {plain:.3f}", dense, "euclidean"),
                (f"{model}: 5-NN {accuracy:.3f}", Z_test, estimator.embedding_metric_),
            ]
            figure_rows.append((split, panels))
    quick = " (--quick)" * args.quick
    caption = f"5-NN accuracy on the stratified 30% test split ({epochs} epochs){quick}"
    _print_table(rows, caption)
    print("\nThe full comparison of every loss on digits and letter: sk-dml demo --full")
    fig = Figure(figsize=(11, 4.6 * len(figure_rows)), layout="constrained")
    for subfigure, (split, panels) in zip(
        fig.subfigures(len(figure_rows), 1), figure_rows, strict=True
    ):
        title = f"{split.name} test set ({len(split.y_test)} rows), 2-D PCA{quick}"
        draw_panels(subfigure, panels, split.y_test, "class", title, n_cols=2)
    save_figure(fig, figure_path)


def _full_comparison(args, figure_path: Path) -> None:
    """Every loss of class labels on digits and letter, against plain 5-NN."""
    datasets = _demo_data(args.quick)
    for name, X_train, X_test, y_train, _ in datasets:
        print(
            f"{name}: {len(X_train)} train / {len(X_test)} test rows, {X_train.shape[1]} "
            f"features, {len(np.unique(y_train))} classes"
        )
    params = {"random_state": 0, **({"max_epochs": QUICK_EPOCHS} if args.quick else {})}
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
            if name == "digits":
                plain = f"input features: plain 5-NN {rows[-1][-1]:.3f}"
                panels.append((plain, X_test, "euclidean"))
            for loss in losses:
                estimator = make_embedder(loss, **params)
                model = model_name(estimator)
                progress.set_postfix_str(f"{name}: {model}")
                Z_test, fit_time, accuracy = _fit_and_score(
                    estimator, X_train, X_test, y_train, y_test
                )
                rows.append((name, model, estimator.n_iter_, f"{fit_time:.1f}", accuracy))
                if name == "digits":
                    metric = estimator.embedding_metric_
                    panels.append((f"{model} ({metric}): 5-NN {accuracy:.3f}", Z_test, metric))
                progress.update()
        progress.close()
    _print_table(rows, f"5-NN accuracy on the stratified 30% test split{' (--quick)' * args.quick}")
    digits_test = datasets[0][4]
    title = f"digits test set ({len(digits_test)} rows): 2-D PCA of each learned embedding"
    title += f" (--quick: {QUICK_EPOCHS} epochs)" * args.quick
    save_figure(embedding_figure(panels, digits_test, "digit", title, n_cols=2), figure_path)
