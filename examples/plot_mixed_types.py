"""
A mixed-type pandas table: ColumnTransformer, embedder, kNN
===========================================================

Embedders take numeric matrices. A table with text categories goes through a
:class:`~sklearn.compose.ColumnTransformer` first, exactly as it would before any scikit-learn
model: one-hot encode the categorical columns, scale the numeric ones, and hand the result to
the embedder.

The UCI nursery data (shipped with sk_dml) ranks 12,960 applications to nursery schools from
eight categorical attributes. Its ``Children`` column counts children ("1", "2", "3", "more"),
so this example turns it into a number to get a genuinely mixed table, then compares 5-NN on the
one-hot encoding with 5-NN in a space learned by a :class:`~sk_dml.ContrastiveEmbedder`.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.metrics import recall_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sk_dml import ContrastiveEmbedder
from sk_dml.datasets import load_nursery

# SK_DML_QUICK=1 (the test suite, the documentation build) shrinks the data and the training.
QUICK = os.environ.get("SK_DML_QUICK", "0") not in ("", "0")

# %%
# The table
# ---------
# One class, "recommend", has only two rows in the whole data set: too few to learn or to score,
# so it is left out.
X, y = load_nursery()
keep = y != "recommend"
X, y = X[keep], y[keep]
X = X.assign(Children=X["Children"].replace("more", "4").astype(int))
X, _, y, _ = train_test_split(X, y, train_size=1000 if QUICK else 5000, stratify=y, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
print(X.dtypes.to_string())
print(y.value_counts().to_string())
X_train.head()


# %%
# The preprocessing
# -----------------
# Columns are chosen by dtype, so the same transformer fits any such table. Embedders need a
# dense matrix, hence ``sparse_output=False``; ``handle_unknown="ignore"`` encodes a category
# first seen at prediction time as all zeros instead of failing.
def preprocessing():
    return ColumnTransformer(
        [
            (
                "categories",
                OneHotEncoder(sparse_output=False, handle_unknown="ignore"),
                make_column_selector(dtype_exclude="number"),
            ),
            ("numbers", StandardScaler(), make_column_selector(dtype_include="number")),
        ]
    )


print(f"{preprocessing().fit_transform(X_train).shape[1]} columns after encoding")

# %%
# Two classifiers
# ---------------
# The same kNN on the encoded table, with and without a learned embedding in between.
plain = make_pipeline(preprocessing(), KNeighborsClassifier(n_neighbors=5))
learned = make_pipeline(
    preprocessing(),
    ContrastiveEmbedder(
        n_components=16,
        hidden_layer_sizes=(64,) if QUICK else (256, 256),
        max_epochs=3 if QUICK else 40,
        random_state=0,
    ),
    KNeighborsClassifier(n_neighbors=5),
)
for name, model in (("one-hot + 5-NN", plain), ("one-hot + embedder + 5-NN", learned)):
    model.fit(X_train, y_train)
    print(f"{name:>26}: test accuracy {model.score(X_test, y_test):.3f}")

# %%
# The first two steps of the learned pipeline map each row of the table to 16 numbers, and name
# them after the embedder:
head = X_test.head()
pd.DataFrame(
    learned[:-1].transform(head), index=head.index, columns=learned[:-1].get_feature_names_out()
).iloc[:, :6].round(3)

# %%
# Recall per class
# ----------------
# The classes are unbalanced ("very_recom" has about 2.5% of the rows), so the accuracy hides
# how each class fares. The recall of a class is the fraction of its test rows predicted right.
classes = sorted(y.unique())
recalls = {
    name: recall_score(y_test, model.predict(X_test), labels=classes, average=None)
    for name, model in (("one-hot + 5-NN", plain), ("one-hot + embedder + 5-NN", learned))
}
counts = y_test.value_counts()

fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
width = 0.38
positions = np.arange(len(classes))
for offset, (name, values), color in zip(
    (-width / 2, width / 2), recalls.items(), ("tab:gray", "tab:blue"), strict=True
):
    bars = ax.bar(positions + offset, values, width, label=name, color=color)
    ax.bar_label(bars, fmt="%.2f", padding=2, fontsize=9)
ax.set_xticks(positions, [f"{c}\n({counts[c]} test rows)" for c in classes])
ax.set_ylim(0, 1.25)
ax.set_yticks(np.linspace(0, 1, 6))
ax.set(ylabel="recall", title="Nursery: recall of each class on the test rows")
ax.legend(loc="upper center", ncols=2, frameon=False)
plt.show()

# %%
# Where the learned pipeline still errs, test rows counted by true and predicted class:
pd.crosstab(y_test, learned.predict(X_test), rownames=["true"], colnames=["predicted"])
