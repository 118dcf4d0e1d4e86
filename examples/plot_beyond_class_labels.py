"""
Learning from pairs and from a continuous target
================================================

Class labels are one way to say which rows are alike. This example shows two others:

- **labelled pairs**, as entity resolution produces them: :class:`~sk_dml.PairEmbedder` learns
  an embedding from pairs of rows marked alike / not alike, and then decides about new pairs
  at a threshold calibrated for a target precision;
- **a continuous target**: :class:`~sk_dml.LogRatioEmbedder` (the log-ratio loss of Kim et
  al., CVPR 2019) learns an embedding in which rows with close targets are close, so that a
  :class:`~sklearn.neighbors.KNeighborsRegressor` after it ignores the features that do not
  matter.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_friedman1
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import RocCurveDisplay, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_dml import LogRatioEmbedder, PairEmbedder
from sk_dml.datasets import load_segment

# SK_DML_QUICK=1 (the test suite, the documentation build) shrinks the data and the training.
QUICK = os.environ.get("SK_DML_QUICK", "0") not in ("", "0")
rng = np.random.default_rng(0)

# %%
# Pairs instead of labels
# -----------------------
# UCI Image Segmentation's labels only serve to mark pairs here: 4,000 random pairs of 1,500 of
# its 2,310 image regions, alike when they show the same kind of surface (about one in seven),
# are all the training sees. Validation and test pairs come from the other regions. The
# baseline is the Euclidean distance between standardised features.
X, y = load_segment()
X, y = X.to_numpy(), y.to_numpy()
shuffled = rng.permutation(len(X))
train_rows, other_rows = shuffled[:1500], shuffled[1500:]


def random_pairs(rows, n):
    pairs = rng.choice(rows, size=(2 * n, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]][:n]
    return pairs, (y[pairs[:, 0]] == y[pairs[:, 1]]).astype(int)


pairs, alike = random_pairs(train_rows, 4000)
val_pairs, val_alike = random_pairs(other_rows, 1000)
test_pairs, test_alike = random_pairs(other_rows, 2000)
emb = PairEmbedder(preprocessor=X, max_epochs=15 if QUICK else 60, random_state=0)
emb.fit(pairs, alike)
X_std = StandardScaler().fit_transform(X)
raw_distance = np.linalg.norm(X_std[test_pairs[:, 0]] - X_std[test_pairs[:, 1]], axis=1)
print(
    f"ROC AUC on test pairs: learned {emb.score(test_pairs, test_alike):.3f}, "
    f"Euclidean on standardised features {roc_auc_score(test_alike, -raw_distance):.3f} "
    f"({emb.n_iter_} epochs)"
)

# %%
# The decision function is the negative learned distance. A threshold calibrated on the
# validation pairs for accuracy decides about new pairs; saying "not alike" to every pair is
# the baseline an accuracy must beat, as most pairs are not alike:
emb.calibrate_threshold(val_pairs, val_alike, strategy="accuracy")
predicted = emb.predict(test_pairs)
precision, recall = precision_score(test_alike, predicted), recall_score(test_alike, predicted)
print(
    f"at threshold {emb.threshold_:.3f}: test accuracy {np.mean(predicted == test_alike):.3f} "
    f"(every pair 'not alike': {1 - test_alike.mean():.3f}), precision {precision:.3f}, "
    f"recall {recall:.3f}"
)

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
RocCurveDisplay.from_predictions(test_alike, -raw_distance, name="standardised features", ax=left)
RocCurveDisplay.from_predictions(
    test_alike, emb.decision_function(test_pairs), name="PairEmbedder", ax=left
)
left.set_title("Pairs of unseen image regions: alike or not")

# %%
# A continuous target
# -------------------
# :func:`~sklearn.datasets.make_friedman1` has 5 informative features; 20 irrelevant ones are
# added. Neighbours on the raw features drown in the noise; the log-ratio embedding learns
# which directions predict the target. Gradient boosting is the reference point, and it stays
# ahead: for plain prediction of a target it is the better tool; the embedding's win is over
# neighbours on the raw features, for when the neighbours themselves are wanted.
X_reg, target = make_friedman1(
    n_samples=600 if QUICK else 2000, n_features=25, noise=1.0, random_state=0
)
models = {
    "kNN, raw features": make_pipeline(StandardScaler(), KNeighborsRegressor(10)),
    "kNN, LogRatioEmbedder": make_pipeline(
        LogRatioEmbedder(max_epochs=15 if QUICK else 60, random_state=0), KNeighborsRegressor(10)
    ),
    "gradient boosting": HistGradientBoostingRegressor(random_state=0),
}
scores = {name: cross_val_score(model, X_reg, target, cv=3) for name, model in models.items()}
for name, r2 in scores.items():
    print(f"{name:>24}: R^2 {r2.mean():.3f} +- {r2.std():.3f}")

right.barh(list(scores), [r2.mean() for r2 in scores.values()],
           xerr=[r2.std() for r2 in scores.values()], color=["0.6", "C1", "C0"])  # fmt: skip
right.set_xlabel("R^2 (3-fold cross-validation)")
right.set_title("friedman1 with 20 irrelevant features")
fig.tight_layout()
