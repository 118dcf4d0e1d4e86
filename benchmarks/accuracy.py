"""5-NN accuracy and fit time of sk_dml's embedders against plain kNN, NCA and a PML loop.

Every method sees the same stratified 70/30 split (one per seed) and the same standardised
features (nursery is one-hot encoded first). The PML loop trains the same MLP as sk_dml's
defaults with the same optimizer, schedule, batch size and epoch budget, so the comparison is
about the losses, mining and sampling, not the network.

    python benchmarks/accuracy.py                      # everything, 3 seeds (long)
    python benchmarks/accuracy.py --datasets letter --methods plain sk_dml --seeds 0

Writes benchmarks/results/accuracy.csv (one row per run), accuracy.md and accuracy.png.
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
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier, NeighborhoodComponentsAnalysis
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import sk_dml
from sk_dml import TripletEmbedder
from sk_dml.criteria import loss_names
from sk_dml.datasets import load_letter, load_nursery, load_segment
from sk_dml.embedders import make_embedder

RESULTS = Path(__file__).parent / "results"
# Every loss, with its defaults (its named embedder, or MetricEmbedder with the loss object).
EMBEDDERS = {
    **{f"sk_dml {name}": functools.partial(make_embedder, name) for name in loss_names("classes")},
    # The setting for classes never seen in training, to show what it costs the seen ones.
    "sk_dml new-classes-setting": functools.partial(
        make_embedder, "normalized_softmax", validation_split="classes"
    ),
    # What the residual start at a low learning rate costs the triplet loss on seen classes.
    "sk_dml triplet-residual-start": functools.partial(
        make_embedder, "triplet", residual=True, learning_rate=3e-4
    ),
}
NCA_MAX_ROWS = 5000


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "nursery":
        X, y = load_nursery()
        return OneHotEncoder(sparse_output=False).fit_transform(X), y.to_numpy()
    loaders = {
        "letter": load_letter,
        "segment": load_segment,
        "digits": lambda: load_digits(return_X_y=True, as_frame=True),
        "wine": lambda: load_wine(return_X_y=True, as_frame=True),
        "breast_cancer": lambda: load_breast_cancer(return_X_y=True, as_frame=True),
    }
    X, y = loaders[name]()
    return X.to_numpy(dtype=float), y.to_numpy()


def knn_accuracy(Z_train, y_train, Z_test, y_test, metric="euclidean") -> float:
    knn = KNeighborsClassifier(n_neighbors=5, metric=metric).fit(Z_train, y_train)
    return knn.score(Z_test, y_test)


def run_plain(X_train, y_train, X_test, y_test, seed):
    return knn_accuracy(X_train, y_train, X_test, y_test), 0.0, ""


def run_nca(X_train, y_train, X_test, y_test, seed):
    note = ""
    if len(X_train) > NCA_MAX_ROWS:  # NCA is O(n^2) per iteration: fit on a subsample
        stratify = y_train if np.unique(y_train, return_counts=True)[1].min() >= 2 else None
        X_fit, _, y_fit, _ = train_test_split(
            X_train, y_train, train_size=NCA_MAX_ROWS, stratify=stratify, random_state=seed
        )
        note = f"NCA fitted on {NCA_MAX_ROWS} of {len(X_train)} training rows"
    else:
        X_fit, y_fit = X_train, y_train
    start = time.perf_counter()
    nca = NeighborhoodComponentsAnalysis(random_state=seed).fit(X_fit, y_fit)
    elapsed = time.perf_counter() - start
    acc = knn_accuracy(nca.transform(X_train), y_train, nca.transform(X_test), y_test)
    return acc, elapsed, note


def train_pml_triplet(X_train, y_train, seed) -> tuple[torch.nn.Module, float]:
    """pytorch-metric-learning's triplet recipe (semihard miner, its m-per-class sampler) with
    sk_dml's default network, optimizer, schedule, batch size and epochs; returns the trained
    network (in eval mode) and the training time in seconds."""
    from pytorch_metric_learning import losses, miners, samplers

    defaults = TripletEmbedder()
    codes = np.unique(y_train, return_inverse=True)[1]
    torch.manual_seed(seed)
    net = sk_dml.nets.make_mlp(X_train.shape[1], defaults.n_components, defaults.hidden_layer_sizes)
    optimizer = torch.optim.AdamW(net.parameters(), lr=defaults.learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, defaults.max_epochs)
    loss_fn = losses.TripletMarginLoss(margin=defaults.margin)
    miner = miners.TripletMarginMiner(margin=defaults.margin, type_of_triplets="semihard")
    # PML's sampler needs m * n_classes >= batch_size, m dividing batch_size, and
    # batch_size <= the data's size.
    batch_size = min(defaults.batch_size, len(codes))
    m = max(defaults.samples_per_class, -(-batch_size // (codes.max() + 1)))
    batch_size = int(batch_size - batch_size % m)
    sampler = samplers.MPerClassSampler(
        codes, m=m, batch_size=batch_size, length_before_new_iter=len(codes)
    )
    X_t = torch.tensor(X_train, dtype=torch.float32)
    y_t = torch.tensor(codes)
    start = time.perf_counter()
    for _ in range(defaults.max_epochs):
        order = torch.tensor(list(iter(sampler)))
        for batch in order.split(batch_size):
            emb = net(X_t[batch])
            loss = loss_fn(emb, y_t[batch], miner(emb, y_t[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
    elapsed = time.perf_counter() - start
    return net.eval(), elapsed


def run_pml(X_train, y_train, X_test, y_test, seed):
    net, elapsed = train_pml_triplet(X_train, y_train, seed)
    with torch.no_grad():
        Z_train = net(torch.tensor(X_train, dtype=torch.float32)).numpy()
        Z_test = net(torch.tensor(X_test, dtype=torch.float32)).numpy()
    return knn_accuracy(Z_train, y_train, Z_test, y_test), elapsed, "semihard miner"


def make_sk_dml_runner(cls):
    def run(X_train, y_train, X_test, y_test, seed):
        emb = cls(random_state=seed, device="cpu")
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # tiny classes are padded: expected
            emb.fit(X_train, y_train)
        elapsed = time.perf_counter() - start
        acc = knn_accuracy(
            emb.transform(X_train), y_train, emb.transform(X_test), y_test, emb.embedding_metric_
        )
        return acc, elapsed, f"{emb.n_iter_} epochs"

    return run


METHODS = {
    "plain 5-NN": run_plain,
    "NCA": run_nca,
    "PML triplet": run_pml,
    **{name: make_sk_dml_runner(cls) for name, cls in EMBEDDERS.items()},
}
METHOD_GROUPS = {"plain": ["plain 5-NN"], "nca": ["NCA"], "pml": ["PML triplet"],
                 "sk_dml": list(EMBEDDERS),
                 **{name.split()[1]: [name] for name in EMBEDDERS}}  # fmt: skip
DATASETS = ["letter", "nursery", "segment", "digits", "wine", "breast_cancer"]


def summarise(runs: pd.DataFrame) -> str:
    table = runs.groupby(["dataset", "method"], sort=False).agg(
        accuracy=("accuracy", "mean"), spread=("accuracy", "std"), fit_s=("fit_s", "mean"),
        seeds=("seed", "nunique"),
    ).reset_index()  # fmt: skip
    lines = ["| data set | method | 5-NN accuracy (mean ± std) | fit time (s) | seeds |",
             "|---|---|---|---|---|"]  # fmt: skip
    for row in table.itertuples():
        spread = 0.0 if np.isnan(row.spread) else row.spread
        lines.append(
            f"| {row.dataset} | {row.method} | {row.accuracy:.4f} ± {spread:.4f} | "
            f"{row.fit_s:.1f} | {row.seeds} |"
        )
    checks = []
    for dataset, group in table.groupby("dataset", sort=False):
        by = dict(zip(group.method, group.accuracy, strict=True))
        ours = {m: a for m, a in by.items() if m.startswith("sk_dml")}
        if not ours:
            continue
        best = max(ours.values())
        if "plain 5-NN" in by:
            worst = min(ours, key=ours.get)
            ok = ours[worst] >= by["plain 5-NN"]
            checks.append(
                f"- {dataset}: every embedder >= plain 5-NN: {'met' if ok else 'MISSED'}"
                f" (worst {worst} {ours[worst]:.4f} vs {by['plain 5-NN']:.4f})"
            )
        for rival in ("NCA", "PML triplet"):
            if rival in by:
                ok = best >= by[rival]
                checks.append(
                    f"- {dataset}: best embedder >= {rival}: "
                    f"{'met' if ok else 'MISSED'} ({best:.4f} vs {by[rival]:.4f})"
                )
        if dataset == "letter":
            best_name = max(ours, key=ours.get)
            fit = group.set_index("method").loc[best_name, "fit_s"]
            ok = best >= 0.975 and fit < 60
            checks.append(
                f"- letter: best embedder >= 0.975 in under 60 s: "
                f"{'met' if ok else 'MISSED'} ({best_name}: {best:.4f}, {fit:.1f} s)"
            )
    return "\n".join(lines + ["", "Targets:", *checks])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    parser.add_argument("--methods", nargs="+", default=["plain", "nca", "pml", "sk_dml"],
                        choices=list(METHOD_GROUPS))  # fmt: skip
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", default="accuracy", help="file stem under benchmarks/results")
    parser.add_argument("--append", action="store_true",
                        help="keep an earlier run's rows of other data sets, methods")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    earlier = RESULTS / f"{args.out}.csv"
    rerun = {method for group in args.methods for method in METHOD_GROUPS[group]}
    if args.append and earlier.exists():
        rows = [r for r in pd.read_csv(earlier).to_dict("records")
                if r["dataset"] not in args.datasets or r["method"] not in rerun]  # fmt: skip
    for dataset in args.datasets:
        X, y = load(dataset)
        for seed in args.seeds:
            X_train, X_test, y_train, y_test = train_test_split(
                X, y, test_size=0.3, stratify=y, random_state=seed
            )
            scaler = StandardScaler().fit(X_train)
            X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
            for group in args.methods:
                for method in METHOD_GROUPS[group]:
                    acc, fit_s, note = METHODS[method](X_train, y_train, X_test, y_test, seed)
                    rows.append(dict(dataset=dataset, seed=seed, method=method, accuracy=acc,
                                     fit_s=fit_s, note=note, n_train=len(X_train)))  # fmt: skip
                    print(f"{dataset:14s} seed={seed} {method:20s} acc={acc:.4f} "
                          f"fit={fit_s:6.1f}s {note}", flush=True)  # fmt: skip
        runs = write(pd.DataFrame(rows), args.out)  # after each data set: a long run keeps them
    print(summarise(runs))


def write(runs: pd.DataFrame, stem: str) -> pd.DataFrame:
    """Write the runs, sorted, as CSV and markdown; returns them sorted."""
    order = {"dataset": DATASETS.index, "method": list(METHODS).index}
    runs = runs.sort_values(
        ["dataset", "method", "seed"], key=lambda c: c.map(order.get(c.name, int))
    )
    RESULTS.mkdir(exist_ok=True)
    runs.to_csv(RESULTS / f"{stem}.csv", index=False)
    header = (
        f"# 5-NN accuracy: sk_dml vs plain kNN, NCA and a PML triplet loop\n\n"
        f"Generated by `python benchmarks/accuracy.py {' '.join(sys.argv[1:])}` on {date.today()}"
        f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; "
        f"torch {torch.__version__}, scikit-learn {sklearn.__version__}). 70/30 stratified "
        f"splits, one per seed; features standardised on the training part; NCA on at most "
        f"{NCA_MAX_ROWS} training rows. Fit times come from a shared 2-core machine: compare "
        "them within a run, not across runs."
        + (
            " `--append` kept the rows of other data sets and methods from earlier runs of this"
            " script."
            if "--append" in sys.argv
            else ""
        )  # fmt: skip
        + "\n\n"
    )
    (RESULTS / f"{stem}.md").write_text(header + summarise(runs) + "\n")
    plot(runs, RESULTS / f"{stem}.png")
    return runs


def plot(runs: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = runs.groupby(["dataset", "method"], sort=False)["accuracy"].agg(["mean", "std"])
    datasets = list(dict.fromkeys(runs.dataset))
    methods = list(dict.fromkeys(runs.method))
    fig, ax = plt.subplots(figsize=(max(8, 1.8 * len(datasets)), 5))
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        means = [table["mean"].get((d, method), np.nan) for d in datasets]
        stds = [table["std"].get((d, method), 0) for d in datasets]
        ax.bar(np.arange(len(datasets)) + i * width, means, width, yerr=stds, label=method)
    ax.set_xticks(np.arange(len(datasets)) + 0.4 - width / 2, datasets)
    ax.set_ylabel("5-NN test accuracy")
    low = np.nanmin(table["mean"].to_numpy())
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    ax.legend(fontsize=8, ncol=len(methods), loc="upper center", bbox_to_anchor=(0.5, -0.08),
              frameon=False)  # fmt: skip
    ax.set_title("5-NN accuracy in each learned space (mean over seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
