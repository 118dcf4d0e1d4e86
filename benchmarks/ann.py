"""Neighbours at scale: ApproximateKNeighborsTransformer on a learned embedding of 1M rows.

1. Data: ``make_classification(1_000_000, 32 features, 20 classes, random_state=0)``; the last
   10,000 rows are held-out queries, the other 990,000 the searched (fitted) set.
2. Embedding: a default ``TripletEmbedder`` (64-d, unit norm, Euclidean) trained on a
   50,000-row sample of the fitted set for a few epochs, then ``transform`` of all rows.
3. Searches for the 10 nearest fitted rows of every query, each timed as ``fit`` (build) and
   ``transform`` (query): faiss IVF at several ``n_probe`` (one index), the exact backend
   (itself scikit-learn's brute force, on the rows as float64), and scikit-learn's
   ``NearestNeighbors(algorithm="brute")`` on the float32 embedding, which is the ground truth
   for recall@10 (``--truth-queries`` limits it to the first queries if it is too slow;
   recall is then measured on those).
4. The pipeline at full size: ``make_pipeline(ApproximateKNeighborsTransformer(faiss),
   KNeighborsClassifier(metric="precomputed"))`` fitted on all 990,000 embedded rows (the
   fit builds the whole self-neighbour graph) and scored on the queries (``--no-pipeline``
   skips it).

    python benchmarks/ann.py            # the full run (several minutes on 2 cores)
    python benchmarks/ann.py --quick    # 100k rows, 1,000 queries: writes ann_quick.*

Writes benchmarks/results/ann.md and ann.csv (``--quick``: ann_quick.md, ann_quick.csv).
"""

from __future__ import annotations

import argparse
import os
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
from sklearn.datasets import make_classification
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.pipeline import make_pipeline

from sk_dml import ApproximateKNeighborsTransformer, TripletEmbedder

RESULTS = Path(__file__).parent / "results"
K = 10


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def neighbours(graph, k: int = K) -> np.ndarray:
    """Column indices of a connectivity graph with k entries per row, as (n, k)."""
    return graph.tocsr().indices.reshape(-1, k)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits)) / truth.shape[1]


def vote_accuracy(idx: np.ndarray, y_fit: np.ndarray, y_query: np.ndarray, k: int = 5) -> float:
    """Accuracy of a majority vote of the first k neighbours (ties: smallest label, as
    KNeighborsClassifier's uniform weights)."""
    labels = y_fit[idx[:, :k]]
    counts = np.apply_along_axis(np.bincount, 1, labels, minlength=y_fit.max() + 1)
    return float(np.mean(counts.argmax(1) == y_query))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="100k rows, 1,000 queries, 2 epochs; *_quick outputs"
    )
    parser.add_argument("--rows", type=int, default=None, help="default 1,000,000 (quick 100k)")
    parser.add_argument("--queries", type=int, default=None, help="default 10,000 (quick 1k)")
    parser.add_argument("--train-rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=None, help="default 5 (quick 2)")
    parser.add_argument("--n-probe", nargs="+", type=int, default=[2, 8, 32, 128])
    parser.add_argument(
        "--truth-queries",
        type=int,
        default=None,
        help="queries searched by scikit-learn brute force (default: all)",
    )
    parser.add_argument("--no-pipeline", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    n_queries = args.queries or (1_000 if args.quick else 10_000)
    epochs = args.epochs or (2 if args.quick else 5)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    log = []  # (method, n_probe, n_lists, build_s, query_s, queries, recall, knn5)

    X, y = make_classification(
        n_samples=rows,
        n_features=32,
        n_informative=16,
        n_classes=20,
        n_clusters_per_class=1,
        random_state=0,
    )
    X = X.astype(np.float32)
    X_fit, y_fit, X_q, y_q = X[:-n_queries], y[:-n_queries], X[-n_queries:], y[-n_queries:]
    sample = np.random.default_rng(0).choice(len(X_fit), args.train_rows, replace=False)
    emb = TripletEmbedder(max_epochs=epochs, n_iter_no_change=epochs + 1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, t_train = timed(lambda: emb.fit(X_fit[sample], y_fit[sample]))
    (Z_fit, Z_q), t_embed = timed(lambda: (emb.transform(X_fit), emb.transform(X_q)))
    metric = emb.embedding_metric_
    print(
        f"embedder: {epochs} epochs on {args.train_rows:,} rows {t_train:.1f} s; "
        f"transform {rows:,} rows {t_embed:.1f} s; metric {metric}",
        flush=True,
    )

    # Ground truth: scikit-learn's brute force, on all queries or the first n_truth.
    n_truth = min(args.truth_queries or n_queries, n_queries)
    nn, t_build = timed(lambda: NearestNeighbors(algorithm="brute", metric=metric).fit(Z_fit))
    truth, t_query = timed(lambda: nn.kneighbors(Z_q[:n_truth], K, return_distance=False))
    log.append(
        (
            "scikit-learn NearestNeighbors(algorithm='brute')",
            None,
            None,
            t_build,
            t_query,
            n_truth,
            1.0,
            vote_accuracy(truth, y_fit, y_q[:n_truth]),
        )
    )
    print(f"sklearn brute: {n_truth:,} queries {t_query:.1f} s", flush=True)

    def search(name, est, n_probes=(None,)):
        _, build = timed(lambda: est.fit(Z_fit))
        for n_probe in n_probes:
            if n_probe is not None:
                est.set_params(n_probe=n_probe)
            graph, query = timed(lambda: est.transform(Z_q))
            idx = neighbours(graph)
            log.append(
                (
                    name,
                    n_probe,
                    est.n_lists_,
                    build,
                    query,
                    n_queries,
                    recall_at_k(idx[:n_truth], truth),
                    vote_accuracy(idx, y_fit, y_q),
                )
            )
            print(
                f"{name} n_probe={n_probe}: build {build:.1f} s, query {query:.1f} s, "
                f"recall@10 {log[-1][6]:.4f}",
                flush=True,
            )
            build = np.nan  # one build serves every n_probe

    common = dict(n_neighbors=K, mode="connectivity", metric=metric)
    faiss_est = ApproximateKNeighborsTransformer(**common, backend="faiss", random_state=0)
    search("sk_dml faiss IVF", faiss_est, args.n_probe)
    search(
        "sk_dml exact (scikit-learn brute force)",
        ApproximateKNeighborsTransformer(**common, backend="exact"),
    )

    pipeline_line = "not run (--no-pipeline)."
    if not args.no_pipeline:
        pipe = make_pipeline(
            ApproximateKNeighborsTransformer(
                n_neighbors=5, metric=metric, backend="faiss", random_state=0
            ),
            KNeighborsClassifier(n_neighbors=5, metric="precomputed"),
        )
        _, t_pipe_fit = timed(lambda: pipe.fit(Z_fit, y_fit))
        score, t_pipe_score = timed(lambda: pipe.score(Z_q, y_q))
        n_probe = pipe[0].n_probe  # the default
        pipeline_line = (
            f"`make_pipeline(ApproximateKNeighborsTransformer(n_neighbors=5, backend='faiss', "
            f"n_probe={n_probe}), KNeighborsClassifier(n_neighbors=5, metric='precomputed'))` "
            f"on the embedded rows: `fit` on all {len(Z_fit):,} rows (index build + the "
            f"{len(Z_fit):,}-row self-neighbour graph) {t_pipe_fit:.1f} s; `score` on the "
            f"{n_queries:,} queries {t_pipe_score:.1f} s, accuracy {score:.4f}."
        )
        print(pipeline_line, flush=True)
    load_after = os.getloadavg()

    runs = pd.DataFrame(
        log,
        columns=[
            "method",
            "n_probe",
            "n_lists",
            "build_s",
            "query_s",
            "queries",
            "recall_at_10",
            "knn5_accuracy",
        ],
    )
    runs["queries_per_s"] = runs.queries / runs.query_s
    stem = "ann_quick" if args.quick else "ann"
    RESULTS.mkdir(exist_ok=True)
    runs.to_csv(RESULTS / f"{stem}.csv", index=False)
    lines = [
        "# Neighbours at scale: approximate vs exact search on a learned embedding",
        "",
        f"Generated by `python benchmarks/ann.py {' '.join(sys.argv[1:])}` on {date.today()}.",
        "",
        f"Data: `make_classification({rows:,}, 32 features, 20 classes, random_state=0)`; the "
        f"last {n_queries:,} rows are held-out queries, the other {len(Z_fit):,} the searched "
        f"set. Embedding: default `TripletEmbedder` ({Z_fit.shape[1]}-d, metric "
        f"`{metric}`) trained for {epochs} epochs on {args.train_rows:,} rows "
        f"({t_train:.1f} s), then `transform` of all {rows:,} rows ({t_embed:.1f} s).",
        "",
        f"Each search finds the {K} nearest searched rows of each query. Build = `fit`, query "
        f"= `transform` of all queries (both wall-clock, one run each). recall@{K} = share of "
        f"the true {K} nearest found, against scikit-learn's brute force"
        + (
            f" on the first {n_truth:,} queries (brute force on all was too slow)."
            if n_truth < n_queries
            else " on every query."
        )
        + " 5-NN accuracy: majority label of the first 5 neighbours found.",
        "",
        "| method | n_probe | cells | build (s) | query (s) | queries/s | recall@10 | "
        "5-NN accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs.itertuples():
        lines.append(
            f"| {r.method} | {'' if pd.isna(r.n_probe) else int(r.n_probe)} | "
            f"{'' if pd.isna(r.n_lists) else int(r.n_lists)} | "
            f"{'(same index)' if pd.isna(r.build_s) else f'{r.build_s:.1f}'} | "
            f"{r.query_s:.2f} | {r.queries_per_s:,.0f} | {r.recall_at_10:.4f} | "
            f"{r.knn5_accuracy:.4f} |"
        )
    import faiss  # the benchmark needs it anyway (the faiss rows above)

    lines += [
        "",
        "scikit-learn's row is the reference (recall 1 by definition)"
        + (f"; it searched {n_truth:,} queries." if n_truth < n_queries else "."),
        "",
        "## The whole pipeline at this size",
        "",
        pipeline_line,
        "",
        "## Machine",
        "",
        f"{platform.platform()}, {os.cpu_count()} CPU cores, {args.threads} threads for torch "
        f"(faiss and scikit-learn use their defaults); Python {platform.python_version()}, "
        f"torch {torch.__version__}, faiss {faiss.__version__}, scikit-learn "
        f"{sklearn.__version__}. The machine was shared with other processes while this ran "
        f"(load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end), "
        "so the times are indicative; the recalls do not depend on it.",
        "",
        "## Reproduce",
        "",
        "```bash",
        "OMP_WAIT_POLICY=passive python benchmarks/ann.py           # this table",
        "OMP_WAIT_POLICY=passive python benchmarks/ann.py --quick   # 100k rows, a minute",
        "```",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
