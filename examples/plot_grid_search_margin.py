"""
Tuning the margin with GridSearchCV
===================================

Embedders are ordinary scikit-learn estimators: their hyper-parameters are reachable through
``get_params``/``set_params``, so :class:`~sklearn.model_selection.GridSearchCV` tunes them
inside a pipeline with the usual ``<step>__<parameter>`` names.

The margin of the triplet loss says how much farther than its positives an anchor's negatives
must be before a triplet stops contributing. With ``normalize=True`` (the default for the
margin losses) embeddings lie on the unit sphere, Euclidean distances lie in [0, 2], and the
useful margins lie well below 2. This example cross-validates the margin of a
:class:`~sk_dml.TripletEmbedder` on the UCI image segmentation data shipped with sk_dml and
draws the validation curve.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_dml import TripletEmbedder
from sk_dml.datasets import load_segment

# SK_DML_QUICK=1 (the test suite, the documentation build) shrinks the search to a few seconds.
QUICK = os.environ.get("SK_DML_QUICK", "0") not in ("", "0")

# %%
# The data and the pipeline
# -------------------------
# 2,310 image regions described by 19 numeric features, seven classes of 330 rows.
X, y = load_segment()
if QUICK:
    X, y = X.sample(700, random_state=0), y.sample(700, random_state=0)
print(f"{X.shape[0]} rows, {X.shape[1]} features, {y.nunique()} classes")

pipeline = make_pipeline(
    StandardScaler(),
    TripletEmbedder(
        n_components=16,
        hidden_layer_sizes=(128,),
        max_epochs=10 if QUICK else 30,
        random_state=0,
    ),
    KNeighborsClassifier(n_neighbors=5),
)

# %%
# The search
# ----------
# Each candidate margin is scored by the 5-NN accuracy of the whole pipeline on held-out folds.
# (A bare embedder can be searched too: its ``score`` is the leave-one-out precision@1 of the
# embedded rows, and :mod:`sk_dml.metrics` has scorers for R-precision and MAP@R.)
margins = [0.05, 0.2, 0.8] if QUICK else [0.05, 0.1, 0.2, 0.4, 0.8, 1.6]
search = GridSearchCV(
    pipeline,
    param_grid={"tripletembedder__margin": margins},
    cv=StratifiedKFold(n_splits=2 if QUICK else 3, shuffle=True, random_state=0),
    return_train_score=True,
)
search.fit(X, y)
print(f"best margin: {search.best_params_['tripletembedder__margin']}")
plain = cross_val_score(
    make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=5)), X, y, cv=search.cv
)
print(
    f"best cross-validated accuracy: {search.best_score_:.3f}, plain 5-NN on the same folds: "
    f"{plain.mean():.3f}"
)

# %%
# The validation curve
# --------------------
# Mean accuracy over the folds (the band is one standard deviation) on the training folds and
# on the held-out folds. A plain 5-NN on the standardised features is the dashed reference.
results = search.cv_results_
plain_baseline = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=5))
plain = cross_val_score(plain_baseline, X, y, cv=search.cv).mean()

fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
for split, color in (("train", "tab:blue"), ("test", "tab:orange")):
    mean, std = results[f"mean_{split}_score"], results[f"std_{split}_score"]
    label = "training folds" if split == "train" else "held-out folds"
    ax.plot(margins, mean, "o-", color=color, label=label)
    ax.fill_between(margins, mean - std, mean + std, color=color, alpha=0.2)
ax.axhline(plain, color="gray", linestyle="--", label="plain 5-NN, held-out folds")
best = search.best_params_["tripletembedder__margin"]
ax.axvline(best, color="tab:green", linestyle=":", label=f"best margin ({best})")
ax.set_xscale("log")
ax.set_xticks(margins, [f"{m:g}" for m in margins])
ax.minorticks_off()
ax.set(
    xlabel="margin of the triplet loss",
    ylabel="5-NN accuracy",
    title="Validation curve of the margin (segment data)",
)
low = min(np.min(results["mean_test_score"] - results["std_test_score"]), plain)
high = max(np.max(results["mean_train_score"] + results["std_train_score"]), plain)
ax.set_ylim(max(0.0, low - 0.02), min(1.005, high + 0.02))
ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
plt.show()
