"""
Quickstart: a learned embedding in a scikit-learn pipeline
==========================================================

An sk_dml embedder is a scikit-learn transformer. It learns a mapping of the rows of a table
into an embedding space where rows of the same class lie close together and rows of different
classes lie far apart. Followed by :class:`~sklearn.neighbors.KNeighborsClassifier` it makes a
classifier; on its own it is a supervised dimensionality reduction.

This example trains a :class:`~sk_dml.TripletEmbedder` on scikit-learn's handwritten digits,
compares the k-nearest-neighbour accuracy in the learned space with plain kNN on the
standardised pixels, and draws both spaces in two dimensions.
"""

import os
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_dml import TripletEmbedder

# SK_DML_QUICK=1 (the test suite, the documentation build) shrinks the training to a few epochs.
QUICK = os.environ.get("SK_DML_QUICK", "0") not in ("", "0")

# %%
# The data
# --------
# 1,797 images of 8 x 8 pixels, ten classes. A stratified split keeps 30% of the rows for testing.
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
print(f"{len(X_train)} training rows, {len(X_test)} test rows, {X.shape[1]} features")

# %%
# Plain kNN, the baseline
# -----------------------
baseline = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=5))
baseline.fit(X_train, y_train)
baseline_accuracy = baseline.score(X_test, y_test)
print(f"plain 5-NN accuracy: {baseline_accuracy:.3f}")

# %%
# kNN in a learned space
# ----------------------
# The embedder sits between the scaler and the classifier like any transformer. The triplet
# loss trains Euclidean distances between embeddings (``embedding_metric_`` after ``fit``),
# which is also the default metric of :class:`~sklearn.neighbors.KNeighborsClassifier`.
# ``random_state`` makes the fit reproducible.
embedder = TripletEmbedder(
    n_components=32,
    hidden_layer_sizes=(64,) if QUICK else (512, 512),
    max_epochs=3 if QUICK else 40,
    random_state=0,
)
model = make_pipeline(StandardScaler(), embedder, KNeighborsClassifier(n_neighbors=5))
start = time.perf_counter()
model.fit(X_train, y_train)
fit_seconds = time.perf_counter() - start
learned_accuracy = model.score(X_test, y_test)
print(
    f"embedder + 5-NN accuracy: {learned_accuracy:.3f} "
    f"({embedder.n_iter_} epochs in {fit_seconds:.1f} s; metric: {embedder.embedding_metric_})"
)


# %%
# The two spaces in two dimensions
# --------------------------------
# The slice ``model[:-1]`` is the scaler and the embedder: its ``transform`` gives the
# 32-dimensional embedding. A PCA fitted on the training rows projects the test rows onto its two
# main axes; the left panel does the same with the raw pixels. Each class's label sits at its
# median.
def project(train, test):
    return PCA(n_components=2).fit(train).transform(test)


raw_2d = project(X_train, X_test)
learned_2d = project(model[:-1].transform(X_train), model[:-1].transform(X_test))

fig, axes = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
panels = [
    (raw_2d, f"pixels (plain 5-NN accuracy {baseline_accuracy:.3f})"),
    (learned_2d, f"TripletEmbedder (5-NN accuracy {learned_accuracy:.3f})"),
]
colors = plt.get_cmap("tab10")
for ax, (points, title) in zip(axes, panels, strict=True):
    for digit in range(10):
        mine = points[y_test == digit]
        ax.scatter(mine[:, 0], mine[:, 1], s=12, alpha=0.6, color=colors(digit))
        cx, cy = np.median(mine, axis=0)
        ax.text(
            cx, cy, str(digit), fontsize=14, weight="bold", ha="center", va="center",
            color="white", bbox=dict(boxstyle="circle,pad=0.2", fc=colors(digit), ec="none"),
        )  # fmt: skip
    ax.set(title=title, xlabel="first principal component", ylabel="second principal component")
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("Digits test set, projected onto two principal components")
plt.show()
