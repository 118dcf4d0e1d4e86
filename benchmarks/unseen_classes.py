"""Retrieval on classes never seen in training (Musgrave, Belongie & Lim, ECCV 2020).

Protocol: train on half of the classes, then every row of the other half queries all other rows
of that half (leave-one-out): MAP@R, R-precision and precision@1 in each method's space.
Features are standardised on the training rows. Seed 0 trains on the first half of the classes
sorted by label; seeds 1 and 2 on a random half. Baselines: the raw features (Euclidean and
cosine), scikit-learn's NCA, and scikit-learn's softmax MLPClassifier with sk_dml's hidden
layers and budget (its last hidden layer: the baseline many metric-learning losses fail to
beat); a pytorch-metric-learning triplet loop with sk_dml's network is shown as a peer. Every
named sk_dml embedder runs with its defaults; the ablation rows change one thing each.

Data sets: letter and digits are the ones the defaults were chosen on; vowel, libras, texture
and pendigits (UCI via KEEL, ``benchmarks/data/README.md``) only confirm them.

    python benchmarks/unseen_classes.py                        # everything (about 60 min)
    python benchmarks/unseen_classes.py --datasets digits --seeds 0 --quick

Writes benchmarks/results/unseen_classes.csv (one row per run), unseen_classes.md and
unseen_classes.png (``_quick`` names with --quick; ``--out`` names another stem).
"""

from __future__ import annotations

import argparse
import functools
import platform
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import torch
from accuracy import train_pml_triplet  # the same PML loop as the closed-set benchmark
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neighbors import NeighborhoodComponentsAnalysis
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

import sk_dml
from sk_dml import NormalizedSoftmaxEmbedder, ProxyAnchorEmbedder, TripletEmbedder
from sk_dml.criteria import loss_names
from sk_dml.datasets import load_letter
from sk_dml.embedders import make_embedder
from sk_dml.metrics import retrieval_scores

RESULTS = Path(__file__).parent / "results"
DATA = Path(__file__).parent / "data"
TUNING = ["letter", "digits"]  # the data sets the defaults were chosen on
CONFIRMING = ["vowel", "libras", "texture", "pendigits"]  # never used to choose a default
NCA_MAX_ROWS = 5000

# name -> (embedder factory, parameters): every loss with its defaults, then variants.
EMBEDDERS = {
    **{
        f"sk_dml {name}": (functools.partial(make_embedder, name), {})
        for name in loss_names("classes")
    },
    "for new classes: normalized_softmax, held-out classes": (
        NormalizedSoftmaxEmbedder,
        {"validation_split": "classes"},
    ),
    "for new classes: proxy_anchor, held-out classes": (
        ProxyAnchorEmbedder,
        {"validation_split": "classes"},
    ),
    "ablation: normalized_softmax, no selection": (
        NormalizedSoftmaxEmbedder,
        {"early_stopping": False},
    ),
    "ablation: normalized_softmax, plain MLP": (NormalizedSoftmaxEmbedder, {"residual": False}),
    "ablation: normalized_softmax, temperature=0.1": (
        NormalizedSoftmaxEmbedder,
        {"temperature": 0.1},
    ),
    "ablation: triplet, no selection": (TripletEmbedder, {"early_stopping": False}),
    "ablation: triplet, held-out classes": (TripletEmbedder, {"validation_split": "classes"}),
    "ablation: triplet, residual start at 3e-4": (
        TripletEmbedder,
        {"residual": True, "learning_rate": 3e-4},
    ),
}
BASELINES = ["raw features", "raw features (cosine)", "NCA", "softmax MLP"]
PEERS = ["PML triplet"]


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "letter":
        X, y = load_letter()
    elif name == "digits":
        X, y = load_digits(return_X_y=True, as_frame=True)
    else:
        frame = pd.read_csv(DATA / f"{name}.csv.gz")
        X, y = frame.drop(columns="target"), frame["target"]
    return X.to_numpy(dtype=float), y.to_numpy()


def class_split(y: np.ndarray, seed: int) -> np.ndarray:
    """Boolean mask of the training rows: half of the classes (sorted order for seed 0)."""
    classes = np.unique(y)
    if seed:
        classes = np.random.RandomState(seed).permutation(classes)
    return np.isin(y, classes[: len(classes) // 2])


def retrieval(Z: np.ndarray, y: np.ndarray, metric: str) -> dict:
    """Leave-one-out MAP@R, R-precision and precision@1 among the rows, from one search."""
    scores = retrieval_scores(Z, y, metric=metric, recall_at=1)
    return {
        "map_at_r": scores["map@r"],
        "r_precision": scores["r_precision"],
        "precision_at_1": scores["precision@1"],
    }


def run_raw(metric):
    def run(X_train, y_train, X_test, seed):
        return X_test, metric, 0.0, ""

    return run


def run_nca(X_train, y_train, X_test, seed):
    rows = np.random.RandomState(seed).permutation(len(X_train))[:NCA_MAX_ROWS]
    start = time.perf_counter()
    nca = NeighborhoodComponentsAnalysis(random_state=seed).fit(X_train[rows], y_train[rows])
    note = f"fitted on {len(rows)} of {len(X_train)} rows" if len(rows) < len(X_train) else ""
    return nca.transform(X_test), "euclidean", time.perf_counter() - start, note


def run_softmax(X_train, y_train, X_test, seed):
    """scikit-learn's MLPClassifier with sk_dml's hidden layers, batch size and epoch budget;
    the embedding is its last hidden layer."""
    defaults = TripletEmbedder()
    clf = MLPClassifier(
        hidden_layer_sizes=defaults.hidden_layer_sizes,
        batch_size=defaults.batch_size,
        max_iter=defaults.max_epochs,
        random_state=seed,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is the budget
        clf.fit(X_train, y_train)
    elapsed = time.perf_counter() - start
    Z = X_test
    for weights, bias in zip(clf.coefs_[:-1], clf.intercepts_[:-1], strict=True):
        Z = np.maximum(Z @ weights + bias, 0.0)  # the hidden layers' ReLU
    return Z, "euclidean", elapsed, f"penultimate layer ({Z.shape[1]} wide)"


def run_pml(X_train, y_train, X_test, seed):
    net, elapsed = train_pml_triplet(X_train, y_train, seed)
    with torch.no_grad():
        Z = net(torch.tensor(X_test, dtype=torch.float32)).numpy()
    return Z, "euclidean", elapsed, "semihard miner"


def make_sk_dml_runner(cls, params, quick):
    def run(X_train, y_train, X_test, seed):
        emb = cls(random_state=seed, device="cpu", **params)
        if quick:
            emb.set_params(max_epochs=5)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            emb.fit(X_train, y_train)
        elapsed = time.perf_counter() - start
        note = f"{emb.n_iter_} epochs"
        scores = emb.validation_scores_
        if scores is not None and not (scores and max(scores) >= emb.best_score_):
            note += ", the untrained start kept"
        return emb.transform(X_test), emb.embedding_metric_, elapsed, note

    return run


def methods(quick: bool) -> dict:
    return {
        "raw features": run_raw("euclidean"),
        "raw features (cosine)": run_raw("cosine"),
        "NCA": run_nca,
        "softmax MLP": run_softmax,
        "PML triplet": run_pml,
        **{name: make_sk_dml_runner(cls, p, quick) for name, (cls, p) in EMBEDDERS.items()},
    }


def summarise(runs: pd.DataFrame) -> str:
    table = runs.groupby(["dataset", "method"], sort=False).agg(
        map_at_r=("map_at_r", "mean"), map_sd=("map_at_r", "std"),
        r_precision=("r_precision", "mean"), precision_at_1=("precision_at_1", "mean"),
        p1_sd=("precision_at_1", "std"), fit_s=("fit_s", "mean"), seeds=("seed", "nunique"),
    ).reset_index()  # fmt: skip
    lines = [
        "| data set | method | MAP@R | R-precision | P@1 | fit (s) | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        lines.append(
            f"| {row.dataset} | {row.method} | {row.map_at_r:.3f} ± {np.nan_to_num(row.map_sd):.3f}"
            f" | {row.r_precision:.3f} | {row.precision_at_1:.3f} ± "
            f"{np.nan_to_num(row.p1_sd):.3f} | {row.fit_s:.1f} | {row.seeds} |"
        )
    checks = []
    for dataset, group in table.groupby("dataset", sort=False):
        by = group.set_index("method")
        baselines = by.loc[by.index.intersection(BASELINES)]
        ours = by.loc[[m for m in by.index if m.startswith("sk_dml")]]  # defaults only
        if baselines.empty or ours.empty:
            continue
        role = "tuning" if dataset in TUNING else "confirming"
        for score, label in (("map_at_r", "MAP@R"), ("precision_at_1", "P@1")):
            best_base, best_ours = baselines[score].idxmax(), ours[score].idxmax()
            ok = ours[score].max() >= baselines[score].max()
            checks.append(
                f"- {dataset} ({role}) {label}: best sk_dml default ({best_ours}, "
                f"{ours[score].max():.3f}) >= best baseline ({best_base}, "
                f"{baselines[score].max():.3f}): {'met' if ok else 'MISSED'}"
            )
        if "raw features" in by.index:
            floor = by.loc["raw features", "precision_at_1"] - 0.01
            worst = ours["precision_at_1"].idxmin()
            ok = ours["precision_at_1"].min() >= floor
            checks.append(
                f"- {dataset} ({role}) every sk_dml default P@1 >= raw P@1 - 0.01 "
                f"({floor:.3f}): {'met' if ok else 'MISSED'} (worst {worst}, "
                f"{ours['precision_at_1'].min():.3f})"
            )
    return "\n".join(lines + ["", "Targets (means over seeds):", *checks])


def plot(runs: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in runs.method.unique() if not m.startswith("ablation")]
    datasets = list(runs.dataset.unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 0.42 * len(shown) + 1.5))
    axes = np.atleast_1d(axes)
    for ax, dataset in zip(axes, datasets, strict=True):
        means = runs[runs.dataset == dataset].groupby("method").map_at_r.agg(["mean", "std"])
        means = means.reindex(shown)
        colours = ["#888888" if m in BASELINES + PEERS else "#1f77b4" for m in shown]
        ax.barh(range(len(shown)), means["mean"], xerr=means["std"].fillna(0), color=colours)
        ax.set_yticks(range(len(shown)), shown if ax is axes[0] else [""] * len(shown))
        ax.invert_yaxis()
        ax.set_xlabel("MAP@R on classes never seen in training")
        ax.set_title(dataset)
    fig.suptitle("Retrieval among unseen classes (grey: baselines; mean ± std over class splits)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=TUNING + CONFIRMING)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", help="names of methods (default: all)")
    parser.add_argument("--quick", action="store_true", help="5 epochs per embedder (a smoke run)")
    parser.add_argument("--out", help="file stem under benchmarks/results (default: the name)")
    parser.add_argument("--append", action="store_true",
                        help="keep an earlier run's rows of other data sets, methods")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    available = methods(args.quick)
    chosen = args.methods or list(available)
    stem = args.out or "unseen_classes" + ("_quick" if args.quick else "")
    rows = []
    if args.append and (RESULTS / f"{stem}.csv").exists():
        rows = [r for r in pd.read_csv(RESULTS / f"{stem}.csv").to_dict("records")
                if r["dataset"] not in args.datasets or r["method"] not in chosen]  # fmt: skip
    for dataset in args.datasets:
        X, y = load(dataset)
        for seed in args.seeds:
            train = class_split(y, seed)
            scaler = StandardScaler().fit(X[train])
            X_train, X_test = scaler.transform(X[train]), scaler.transform(X[~train])
            for name in chosen:
                if name.startswith("ablation") and dataset not in TUNING:
                    continue  # ablations inform the choice of defaults: tuning data only
                Z, metric, fit_s, note = available[name](X_train, y[train], X_test, seed)
                scores = retrieval(Z, y[~train], metric)
                rows.append({"dataset": dataset, "seed": seed, "method": name, **scores,
                             "fit_s": fit_s, "note": note})  # fmt: skip
                shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
                print(f"{dataset} seed {seed} {name}: {shown}, {fit_s:.1f} s", flush=True)
    runs = pd.DataFrame(rows)
    # Data sets in the order they first appear, methods in the order of `methods`.
    position = {
        "dataset": {name: i for i, name in enumerate(dict.fromkeys(runs.dataset))},
        "method": {name: i for i, name in enumerate(available)},
    }
    runs = runs.sort_values(
        ["dataset", "method", "seed"],
        key=lambda col: col.map(position[col.name]) if col.name in position else col,
        kind="stable",
    )
    RESULTS.mkdir(exist_ok=True)
    runs.to_csv(RESULTS / f"{stem}.csv", index=False)
    command = "python benchmarks/unseen_classes.py " + " ".join(argv or sys.argv[1:])
    header = (
        f"# Retrieval on classes never seen in training\n\n"
        f"`{command.strip()}` on {date.today()}: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, scikit-learn "
        f"{sklearn.__version__}, sk_dml {sk_dml.__version__}. Train on half of the classes, "
        "leave-one-out retrieval among the rows of the other half; features standardised on "
        "the training rows; seed 0 = first half of the sorted labels, seeds 1-2 = random "
        "halves. Fit times are from a shared 2-core machine: compare them within this file. "
        f"Defaults chosen on {', '.join(TUNING)}; {', '.join(CONFIRMING)} only confirm them "
        "(ablations run on the former only)."
        + (
            " `--append` kept the rows of earlier runs (one data set per run)."
            if args.append
            else ""
        )
        + "\n\n"
    )
    (RESULTS / f"{stem}.md").write_text(header + summarise(runs) + "\n")
    plot(runs, RESULTS / f"{stem}.png")
    print(summarise(runs))


if __name__ == "__main__":
    main()
