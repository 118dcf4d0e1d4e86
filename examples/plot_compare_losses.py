"""
The four losses compared on letter recognition
==============================================

sk_dml has one estimator per loss, all with the same network, training loop and parameters:

- :class:`~sk_dml.TripletEmbedder`: anchor, positive and negative; the negative must be farther
  than the positive by a margin (with hard-sample mining);
- :class:`~sk_dml.ContrastiveEmbedder`: pairs; positives pulled together, negatives pushed
  beyond a margin;
- :class:`~sk_dml.NPairEmbedder`: each anchor against its positive and the negatives of every
  other class at once, a softmax over dot products;
- :class:`~sk_dml.LiftedStructEmbedder`: each positive pair against the hardest negatives of
  both its members (a smooth log-sum-exp bound by default).

This example fits the four on a few thousand rows of the UCI letter recognition data (16
integer features, 26 letters) and compares their 5-NN test accuracy and fit time. One split
and one seed make a rough comparison, not a benchmark: the repository's ``benchmarks/`` folder
has the careful one.
"""

import os
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from sk_dml import ContrastiveEmbedder, LiftedStructEmbedder, NPairEmbedder, TripletEmbedder
from sk_dml.datasets import load_letter

# SK_DML_QUICK=1 (the test suite, the documentation build) shrinks the data and the training.
QUICK = os.environ.get("SK_DML_QUICK", "0") not in ("", "0")

# %%
# The data
# --------
# A stratified sample of the 20,000 rows, split 3:1 into training and test rows and standardised
# on the training rows.
X, y = load_letter()
n_rows = 4000
X, _, y, _ = train_test_split(X, y, train_size=n_rows, stratify=y, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
print(f"{len(X_train)} training rows, {len(X_test)} test rows, {y.nunique()} classes")

# %%
# Fitting the four embedders
# --------------------------
# Every embedder gets the same network (the default 512 x 512 MLP, a 64-dimensional output) and
# the same number of epochs; each keeps its own defaults for its loss (margins, whether the
# output is L2-normalised). The kNN that scores an embedding uses the distance its loss
# trained, ``embedding_metric_``.
common = dict(max_epochs=10 if QUICK else 30, random_state=0)
embedders = {
    "triplet": TripletEmbedder(**common),
    "contrastive": ContrastiveEmbedder(**common),
    "N-pair": NPairEmbedder(**common),
    "lifted structure": LiftedStructEmbedder(**common),
}
# The first fit in a process pays for torch's one-off start-up; a tiny fit first keeps that out
# of the timings.
TripletEmbedder(max_epochs=1, hidden_layer_sizes=(8,)).fit(X_train[:64], np.arange(64) % 2)

accuracy, fit_seconds = {}, {}
for name, embedder in embedders.items():
    start = time.perf_counter()
    embedder.fit(X_train, y_train)
    fit_seconds[name] = time.perf_counter() - start
    knn = KNeighborsClassifier(n_neighbors=5, metric=embedder.embedding_metric_)
    knn.fit(embedder.transform(X_train), y_train)
    accuracy[name] = knn.score(embedder.transform(X_test), y_test)
    print(
        f"{name:>16}: accuracy {accuracy[name]:.3f}, fit {fit_seconds[name]:.2g} s "
        f"({embedder.n_iter_} epochs, metric {embedder.embedding_metric_})"
    )

plain = KNeighborsClassifier(n_neighbors=5).fit(X_train, y_train).score(X_test, y_test)
print(f"{'plain 5-NN':>16}: accuracy {plain:.3f}")
winners = [name for name in embedders if accuracy[name] > plain]
print(
    f"{len(winners)} of {len(embedders)} embedders beat plain 5-NN after "
    f"{common['max_epochs']} epochs on {len(X_train)} rows"
)

# %%
# Accuracy and fit time
# ---------------------
names = list(embedders)
colors = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")

scores = [accuracy[n] for n in names] + [plain]
bars = left.barh([*names, "plain 5-NN\n(no embedding)"], scores, color=[*colors, "tab:gray"])
left.bar_label(bars, fmt="%.3f", padding=3)
left.set_xlim(max(0.0, min(scores) - 0.1), 1.0)
left.set(xlabel="5-NN test accuracy", title="Accuracy (higher is better)")
left.invert_yaxis()

seconds = [fit_seconds[n] for n in names]
bars = right.barh(names, seconds, color=colors)
right.bar_label(bars, labels=[f"{t:.2g} s" for t in seconds], padding=3)
right.set_xlim(0, 1.2 * max(fit_seconds.values()))
right.set(xlabel="fit time (s)", title=f"Fit time, {common['max_epochs']} epochs at most")
right.invert_yaxis()

fig.suptitle(f"Letter recognition: {len(X_train)} training rows, 26 classes")
plt.show()
