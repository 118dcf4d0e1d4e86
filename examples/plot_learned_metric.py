"""
The learned metric in KNeighborsClassifier: two routes, one answer
==================================================================

A fitted embedder defines a distance between raw feature rows: the distance between their
embeddings. scikit-learn can use it in two ways.

1. As a callable metric on raw features,
   ``KNeighborsClassifier(metric=embedder.get_metric())``. This is the metric-learn style: the
   classifier works on the original table. scikit-learn then calls the metric from Python once
   per pair of rows it compares.
2. As the first step of a pipeline,
   ``make_pipeline(embedder, KNeighborsClassifier(metric=embedder.embedding_metric_))``: every
   row is embedded once, and the neighbour search runs on the embeddings with scikit-learn's
   compiled metric.

Both find the same neighbours, so both predict the same classes. This example checks that, and
times the two.
"""

import os
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_dml import TripletEmbedder
from sk_dml.datasets import load_segment

# SK_DML_QUICK=1 (the test suite, the documentation build) shrinks the data and the training.
QUICK = os.environ.get("SK_DML_QUICK", "0") not in ("", "0")

# %%
# An embedder trained on raw features
# -----------------------------------
# UCI Image Segmentation's 19 numeric features as they come (the embedder standardises them
# inside its network), so that "raw features" are what both routes see.
X, y = load_segment()
X, y = X.to_numpy(), y.to_numpy()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
if QUICK:  # the callable route makes one Python call per pair of rows: fewer rows
    X_train, y_train, X_test, y_test = X_train[:800], y_train[:800], X_test[:200], y_test[:200]

embedder = TripletEmbedder(max_epochs=10, random_state=0).fit(X_train, y_train)
print(f"embedding metric: {embedder.embedding_metric_}")

# %%
# Route 1: the callable metric on raw features
# --------------------------------------------
# :meth:`~sk_dml.TripletEmbedder.get_metric` returns a picklable
# :class:`~sk_dml.LearnedMetric`, ``d(u, v)`` on two raw rows. It caches each row's embedding,
# so a call costs one small numpy operation, but there is one Python call per pair of rows.


def timed(fit_and_predict):
    start = time.perf_counter()
    predictions = fit_and_predict()
    return predictions, time.perf_counter() - start


by_callable = KNeighborsClassifier(n_neighbors=5, metric=embedder.get_metric())
pred_callable, seconds_callable = timed(lambda: by_callable.fit(X_train, y_train).predict(X_test))

# %%
# Route 2: the pipeline
# ---------------------
# Fitting a pipeline fits each of its steps, which would train the embedder again (right when the
# pipeline is the model being cross-validated, wasted here). Wrapping the fitted embedder in
# :class:`~sklearn.frozen.FrozenEstimator` keeps it as it is, so the timing below is only what
# the kNN needs: embed the training rows, index them, embed and search the test rows.
by_pipeline = make_pipeline(
    FrozenEstimator(embedder),
    KNeighborsClassifier(n_neighbors=5, metric=embedder.embedding_metric_),
)
pred_pipeline, seconds_pipeline = timed(lambda: by_pipeline.fit(X_train, y_train).predict(X_test))

# %%
# For scale: plain kNN on the standardised features, with no learned metric at all.
plain = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=5))
pred_plain, seconds_plain = timed(lambda: plain.fit(X_train, y_train).predict(X_test))

same = np.mean(pred_callable == pred_pipeline)
print(f"the two routes predict the same class for {same:.1%} of the {len(X_test)} test rows")
for name, seconds, predictions in (
    ("callable metric", seconds_callable, pred_callable),
    ("pipeline", seconds_pipeline, pred_pipeline),
    ("plain kNN", seconds_plain, pred_plain),
):
    accuracy = np.mean(predictions == y_test)
    print(f"{name:>16}: {seconds:7.3f} s, accuracy {accuracy:.3f}")
print(f"the pipeline is {seconds_callable / seconds_pipeline:.0f}x faster than the callable")

# %%
# The timings
# -----------
# Fit plus predict, on a logarithmic scale.
labels = [
    "KNeighborsClassifier(\n  metric=emb.get_metric())\non raw features",
    "make_pipeline(\n  FrozenEstimator(emb),\n  KNeighborsClassifier(\n"
    "    metric=emb.embedding_metric_))",
    "KNeighborsClassifier()\non raw features\n(no learned metric)",
]
seconds = [seconds_callable, seconds_pipeline, seconds_plain]
fig, ax = plt.subplots(figsize=(10, 4.5), layout="constrained")
bars = ax.barh(labels, seconds, color=["tab:red", "tab:blue", "tab:gray"])
ax.bar_label(bars, labels=[f"{s:.3g} s" for s in seconds], padding=4)
ax.set_xscale("log")
ax.set_xlim(min(seconds) / 3, max(seconds) * 5)
ax.invert_yaxis()
for label in ax.get_yticklabels():
    label.set_fontfamily("monospace")
    label.set_horizontalalignment("left")
ax.tick_params(axis="y", pad=210)
ax.set(
    xlabel="fit + predict time (s, log scale)",
    title=f"5-NN on segment, {len(X_train)} training and {len(X_test)} test rows\n"
    f"the two learned routes predict the same class for {same:.0%} of the test rows",
)
plt.show()
