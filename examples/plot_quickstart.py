"""
Quickstart: a learned embedding in a scikit-learn pipeline
==========================================================

An sk_dml embedder is a scikit-learn transformer. It learns a mapping of the rows of a table
into an embedding space where rows of the same class lie close together and rows of different
classes lie far apart. Followed by :class:`~sklearn.neighbors.KNeighborsClassifier` it makes a
classifier; on its own it is a supervised dimensionality reduction.

This example trains a :class:`~sk_dml.TripletEmbedder` on UCI Image Segmentation (shipped with
sk_dml: 2,310 image regions, 19 numeric features, seven classes), compares the
k-nearest-neighbour accuracy in the learned space with plain kNN on the standardised features,
and draws both spaces in two dimensions. It runs as written in the documentation build (ten
epochs, a few seconds): the page shows the real result.
"""

import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_dml import TripletEmbedder
from sk_dml.datasets import load_segment

# %%
# The data
# --------
# A stratified split keeps 30% of the rows for testing.
X, y = load_segment()
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
# The embedder sits in front of the classifier like any transformer; it standardises the
# numbers itself. The triplet loss trains Euclidean distances between embeddings
# (``embedding_metric_`` after ``fit``), which is also the default metric of
# :class:`~sklearn.neighbors.KNeighborsClassifier`. ``random_state`` makes the fit
# reproducible; ten epochs are enough here (the held-out score levels off after a few).
embedder = TripletEmbedder(max_epochs=10, random_state=0)
model = make_pipeline(embedder, KNeighborsClassifier(n_neighbors=5))
start = time.perf_counter()
model.fit(X_train, y_train)
fit_seconds = time.perf_counter() - start
learned_accuracy = model.score(X_test, y_test)
print(
    f"embedder + 5-NN accuracy: {learned_accuracy:.3f}, plain 5-NN: {baseline_accuracy:.3f} "
    f"({embedder.n_iter_} epochs in {fit_seconds:.1f} s; metric: {embedder.embedding_metric_})"
)


# %%
# The two spaces in two dimensions
# --------------------------------
# The slice ``model[:-1]`` is the embedder: its ``transform`` gives the 64-dimensional
# embedding. A PCA fitted on the training rows projects the test rows onto its two main axes;
# the left panel does the same with the standardised features. Each class's label sits at its
# median.
def project(train, test):
    return PCA(n_components=2).fit(train).transform(test)


scaler = baseline[0]
raw_2d = project(scaler.transform(X_train), scaler.transform(X_test))
learned_2d = project(model[:-1].transform(X_train), model[:-1].transform(X_test))

fig, axes = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
panels = [
    (raw_2d, f"standardised features (plain 5-NN accuracy {baseline_accuracy:.3f})"),
    (learned_2d, f"TripletEmbedder (5-NN accuracy {learned_accuracy:.3f})"),
]
colors = plt.get_cmap("tab10")
for ax, (points, title) in zip(axes, panels, strict=True):
    for i, label in enumerate(np.unique(y_test)):
        mine = points[np.asarray(y_test) == label]
        ax.scatter(mine[:, 0], mine[:, 1], s=12, alpha=0.6, color=colors(i))
        cx, cy = np.median(mine, axis=0)
        ax.text(
            cx, cy, str(label), fontsize=14, weight="bold", ha="center", va="center",
            color="white", bbox=dict(boxstyle="circle,pad=0.2", fc=colors(i), ec="none"),
        )  # fmt: skip
    ax.set(title=title, xlabel="first principal component", ylabel="second principal component")
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("Segment test set, projected onto two principal components")
plt.show()
