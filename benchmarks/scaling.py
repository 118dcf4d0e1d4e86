"""How fit time grows with the number of rows, against scikit-learn's NCA, and transform speed.

1. Fit: synthetic ``make_classification`` tables (32 features, 20 classes) of 10k to 1M rows,
   a fixed number of epochs, default TripletEmbedder; the log-log slope of time against rows
   (1 = linear). NCA alongside, for as long as one fit stays under its time limit.
2. Transform: 1M rows through the fitted default MLP, against a floor of the same matmuls in
   plain torch on pre-made tensors, and the peak memory of transforming 10M rows in a fresh
   process (streamed in batches: the peak should stay near the input plus the output).

    python benchmarks/scaling.py [--sizes 10000 30000 ...] [--epochs 2] [--nca-limit 300]

Writes benchmarks/results/scaling.md, scaling.csv and scaling.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import make_classification
from sklearn.neighbors import NeighborhoodComponentsAnalysis

from sk_dml import TripletEmbedder

RESULTS = Path(__file__).parent / "results"


def table(n: int, seed: int = 0):
    return make_classification(
        n_samples=n, n_features=32, n_informative=16, n_classes=20, n_clusters_per_class=1,
        random_state=seed,
    )  # fmt: skip


def fit_time(estimator, X, y) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X, y)
    return time.perf_counter() - start


def transform_floor(emb, X) -> float:
    """The same matmuls and activations as the MLP, on a ready float32 tensor, one batch."""
    layers = [(m.weight.detach(), m.bias.detach()) for m in emb.module_ if hasattr(m, "weight")]
    X_t = torch.from_numpy(X.astype(np.float32))
    start = time.perf_counter()
    with torch.no_grad():
        for chunk in X_t.split(65536):
            h = chunk
            for i, (w, b) in enumerate(layers):
                h = torch.addmm(b, h, w.T)
                if i < len(layers) - 1:
                    h = torch.relu(h)
    return time.perf_counter() - start


_PEAK_CHILD = """
import json, resource, sys, numpy as np, torch
from sk_dml import TripletEmbedder
torch.set_num_threads(2)
n = int(sys.argv[1])
emb = TripletEmbedder(max_epochs=1, random_state=0).fit(
    np.random.default_rng(0).normal(size=(2000, 32)), np.arange(2000) % 20)
X = np.random.default_rng(1).standard_normal(size=(n, 32), dtype=np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
Z = emb.transform(X)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(before_mb=before / 1024, after_mb=after / 1024,
                      input_mb=X.nbytes / 2**20, output_mb=Z.nbytes / 2**20)))
"""


def transform_peak(n: int) -> dict:
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", _PEAK_CHILD, str(n)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int,
                        default=[10_000, 30_000, 100_000, 300_000, 1_000_000])  # fmt: skip
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--nca-sizes", nargs="+", type=int, default=[2_500, 5_000, 10_000],
                        help="NCA also runs at these smaller sizes, to show its slope")  # fmt: skip
    parser.add_argument("--nca-limit", type=float, default=300.0, help="seconds")
    parser.add_argument("--transform-rows", type=int, default=1_000_000)
    parser.add_argument("--peak-rows", type=int, default=10_000_000)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    rows, nca_alive = [], True
    sizes = sorted(set(args.sizes) | set(args.nca_sizes))
    for i, n in enumerate(sizes):
        X, y = table(n)
        if n in args.sizes:
            emb = TripletEmbedder(max_epochs=args.epochs, n_iter_no_change=args.epochs + 1,
                                  random_state=0, device="cpu")  # fmt: skip
            t = fit_time(emb, X, y)
            rows.append(dict(method="sk_dml TripletEmbedder", n=n, fit_s=t))
            print(f"sk_dml n={n:>9,} fit {t:8.1f} s", flush=True)
        if nca_alive:
            t = fit_time(NeighborhoodComponentsAnalysis(max_iter=50, random_state=0), X, y)
            rows.append(dict(method="NCA (max_iter=50)", n=n, fit_s=t))
            print(f"NCA    n={n:>9,} fit {t:8.1f} s", flush=True)
            # NCA is quadratic in n: run the next size only if it should end in time.
            nca_alive = t * (sizes[min(i + 1, len(sizes) - 1)] / n) ** 2 < args.nca_limit
    runs = pd.DataFrame(rows)
    slopes = {}
    for method, group in runs.groupby("method"):
        if len(group) >= 2:
            slopes[method] = np.polyfit(np.log(group.n), np.log(group.fit_s), 1)[0]

    X, y = table(20_000)
    emb = TripletEmbedder(max_epochs=1, random_state=0, device="cpu").fit(X, y)
    X_big = np.random.default_rng(2).normal(size=(args.transform_rows, 32))
    start = time.perf_counter()
    emb.transform(X_big)
    t_transform = time.perf_counter() - start
    t_floor = transform_floor(emb, X_big)
    peak = transform_peak(args.peak_rows)

    RESULTS.mkdir(exist_ok=True)
    runs.to_csv(RESULTS / "scaling.csv", index=False)
    lines = [
        "# Scaling with the number of rows, and transform throughput",
        "",
        f"Generated by `python benchmarks/scaling.py {' '.join(sys.argv[1:])}` on {date.today()} "
        f"(torch {torch.__version__}, 2 threads). make_classification: 32 features, 20 classes. "
        f"sk_dml: default TripletEmbedder, {args.epochs} epochs. NCA: max_iter=50, run while a "
        f"fit is predicted to stay under {args.nca_limit:.0f} s.",
        "",
        "| rows | " + " | ".join(runs.method.unique()) + " |",
        "|---|" + "---|" * runs.method.nunique(),
    ]
    wide = runs.pivot(index="n", columns="method", values="fit_s")
    for n, row in wide.iterrows():
        cells = [
            f"{row[m]:.1f} s" if not np.isnan(row[m]) else "not run" for m in runs.method.unique()
        ]
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    lines += ["", "Log-log slope of fit time against rows (1 = linear, 2 = quadratic):", ""]
    lines += [f"- {m}: {s:.2f}" for m, s in slopes.items()]
    ours = slopes.get("sk_dml TripletEmbedder", np.nan)
    lines += [
        "",
        f"Target: sk_dml slope <= 1.1: {'met' if ours <= 1.1 else 'MISSED'} ({ours:.2f}).",
        "",
        "## Transform",
        "",
        f"- {args.transform_rows:,} rows: `transform` {t_transform:.2f} s, plain-torch matmul "
        f"floor {t_floor:.2f} s: {t_floor / t_transform:.2f}x of the floor's speed (target >= 0.7x:"
        f" {'met' if t_floor / t_transform >= 0.7 else 'MISSED'}). transform includes "
        "scikit-learn's input validation (finiteness check, float32 conversion).",
        f"- {args.peak_rows:,} rows in a fresh process: input {peak['input_mb']:.0f} MB, output "
        f"{peak['output_mb']:.0f} MB; peak RSS {peak['before_mb']:.0f} MB before transform, "
        f"{peak['after_mb']:.0f} MB after: transform added "
        f"{peak['after_mb'] - peak['before_mb']:.0f} MB, "
        f"{(peak['after_mb'] - peak['before_mb']) / peak['output_mb']:.2f}x the output's size "
        "(batches of 65,536 rows: no intermediate grows with the number of rows).",
    ]
    (RESULTS / "scaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(runs, slopes, RESULTS / "scaling.png")


def plot(runs, slopes, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for method, group in runs.groupby("method"):
        ax.loglog(
            group.n, group.fit_s, "o-", label=f"{method} (slope {slopes.get(method, np.nan):.2f})"
        )
    ax.set_xlabel("training rows")
    ax.set_ylabel("fit time (s)")
    ax.set_title("Fit time against rows (log-log)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
