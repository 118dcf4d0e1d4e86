"""
Neighbours at scale: an approximate index on the learned embedding
===================================================================

A k-nearest-neighbours classifier on a learned embedding compares each query with every
training row. :class:`~sk_dml.ApproximateKNeighborsTransformer` replaces that scan with a faiss
inverted-file (IVF) index: the embedded rows are clustered into cells, and a query scans only
the ``n_probe`` cells nearest to it. Its output is the sparse neighbour graph that scikit-learn's
:class:`~sklearn.neighbors.KNeighborsTransformer` returns, so
``KNeighborsClassifier(metric="precomputed")`` takes it as is.

This example trains an embedder on a sample of a large synthetic table, embeds the whole table,
and shows the trade-off ``n_probe`` controls: recall of the true 10 nearest neighbours against
query time, next to the exact search. ``benchmarks/ann.py`` measures the same on a million rows.
"""

import os
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_classification
from sklearn.frozen import FrozenEstimator
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline

from sk_dml import ApproximateKNeighborsTransformer, NPairEmbedder

# SK_DML_QUICK=1 (the test suite, the documentation build) shrinks the data and the training.
QUICK = os.environ.get("SK_DML_QUICK", "0") not in ("", "0")
n_rows = 20_000 if QUICK else 200_000

# %%
# Train on a sample, embed everything
# -----------------------------------
# Metric learning needs far fewer rows than the table has: fit on a sample, then embed all rows
# (``transform`` streams them through the network in batches).
X, y = make_classification(
    n_samples=n_rows + 1_000, n_features=32, n_informative=24, n_classes=20,
    n_clusters_per_class=2, class_sep=2.0, random_state=0,
)  # fmt: skip
X = X.astype(np.float32)
X_rows, y_rows, X_queries, y_queries = X[:n_rows], y[:n_rows], X[n_rows:], y[n_rows:]
embedder = NPairEmbedder(
    hidden_layer_sizes=(256, 256),
    max_epochs=10 if QUICK else 20,
    random_state=0,
).fit(X_rows[:5_000], y_rows[:5_000])
Z_rows, Z_queries = embedder.transform(X_rows), embedder.transform(X_queries)
metric = embedder.embedding_metric_
print(f"{n_rows:,} rows embedded in {Z_rows.shape[1]} dimensions; metric: {metric}")

# %%
# Exact search, the reference
# ---------------------------
# ``backend="exact"`` is scikit-learn's brute force, which scans every row: it gives the
# true neighbours that the approximate search is measured against.
k = 10


def neighbours(transformer):
    """The k nearest rows of each query, and the seconds the search took."""
    transformer.fit(Z_rows)
    start = time.perf_counter()
    graph = transformer.transform(Z_queries)
    seconds = time.perf_counter() - start
    return graph.indices.reshape(len(Z_queries), -1)[:, :k], seconds


exact = ApproximateKNeighborsTransformer(
    n_neighbors=k, mode="connectivity", metric=metric, backend="exact"
)
truth, exact_seconds = neighbours(exact)

# %%
# The IVF index: recall against speed
# -----------------------------------
# One index, searched with more and more cells per query. recall@10 is the share of the true
# 10 nearest rows that the search finds.
index = ApproximateKNeighborsTransformer(
    n_neighbors=k, mode="connectivity", metric=metric, backend="faiss", random_state=0
)
probes, recalls, seconds = [1, 2, 4, 8, 16, 32], [], []
for n_probe in probes:
    found, spent = neighbours(index.set_params(n_probe=n_probe))
    hits = [len(np.intersect1d(a, b)) for a, b in zip(found, truth, strict=True)]
    recalls.append(np.mean(hits) / k)
    seconds.append(spent)
    print(f"n_probe={n_probe:3d}  recall@10={recalls[-1]:.3f}  {spent * 1e3:7.1f} ms")
print(f"exact search: {exact_seconds * 1e3:.1f} ms for {len(Z_queries):,} queries")

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(seconds, recalls, "o-", label=f"faiss IVF ({index.n_lists_} cells)")
for n_probe, x, r in zip(probes, seconds, recalls, strict=True):
    ax.annotate(f"n_probe={n_probe}", (x, r), textcoords="offset points", xytext=(5, -12))
ax.axvline(exact_seconds, color="grey", linestyle="--", label="exact search")
ax.set_xscale("log")
ax.set_xlabel(f"seconds for {len(Z_queries):,} queries")
ax.set_ylabel("recall@10")
ax.set_title(f"Neighbours among {n_rows:,} embedded rows")
ax.legend(loc="lower right")
fig.tight_layout()

# %%
# In a pipeline
# -------------
# The trained embedder is frozen (the pipeline would otherwise refit it); the pipeline's fit
# only embeds and indexes the rows.
pipe = make_pipeline(
    FrozenEstimator(embedder),
    ApproximateKNeighborsTransformer(
        n_neighbors=5, metric=metric, backend="faiss", n_probe=8, random_state=0
    ),
    KNeighborsClassifier(n_neighbors=5, metric="precomputed"),
).fit(X_rows, y_rows)
# Two baselines: exact 5-NN in the same embedding (what the index approximates), and exact
# 5-NN on the raw features. On this synthetic table the raw features stay ahead of an embedding
# trained on 5,000 of the rows: the example is about searching many rows fast, and a learned
# space pays off on tables whose raw distances mislead (see the other examples).
exact = KNeighborsClassifier(n_neighbors=5, metric=metric).fit(Z_rows, y_rows)
plain = KNeighborsClassifier(n_neighbors=5).fit(X_rows, y_rows).score(X_queries, y_queries)
print(
    f"5-NN accuracy through the index: {pipe.score(X_queries, y_queries):.3f}, exact 5-NN in "
    f"the embedding: {exact.score(Z_queries, y_queries):.3f}, exact 5-NN on the raw features: "
    f"{plain:.3f}"
)
