"""
A raw pandas table with categories and missing values, or a one-hot pipeline
============================================================================

Embedders take a pandas DataFrame as it is: numeric, bool, category and string columns, with
missing values. The category, string and bool columns are learned as categories, each level
with its own trained vector (entity embeddings), and the numbers are standardised, with
missing ones filled and flagged, inside the network. Nothing needs to be encoded beforehand,
and the fitted embedder keeps what it learned about the columns in ``schema_``.

The UCI nursery data (shipped with sk_dml) ranks 12,960 applications to nursery schools from
eight categorical attributes. This example makes it a genuinely mixed, imperfect table (a
numeric ``Children`` column, a bool, a pandas category, some missing cells), feeds it straight
to a :class:`~sk_dml.ContrastiveEmbedder` and a 5-NN classifier, and compares that with the
alternative route: a :class:`~sklearn.compose.ColumnTransformer` that imputes, one-hot encodes
and scales before the embedder, as before any scikit-learn model.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
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
# so it is left out. ``Children`` ("1", "2", "3", "more") becomes a number, ``Finance`` (two
# levels) a bool and ``Health`` a pandas category; then about 5% of the cells of three columns
# are blanked out, as NaN, None and a missing category.
X, y = load_nursery()
keep = y != "recommend"
X, y = X[keep].reset_index(drop=True), y[keep].reset_index(drop=True)
X = X.assign(
    Children=X["Children"].replace("more", "4").astype(float),
    Finance=X["Finance"] == "convenient",
    Health=X["Health"].astype("category"),
).rename(columns={"Finance": "Finance_convenient"})
rng = np.random.default_rng(0)
for column in ("Children", "Housing", "Health"):
    X.loc[rng.random(len(X)) < 0.05, column] = None
X, _, y, _ = train_test_split(X, y, train_size=3000 if QUICK else 5000, stratify=y, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
print(X.dtypes.to_string())
print(X.isna().sum().to_string())
X_train.head()

# %%
# The raw table, straight into an embedder
# ----------------------------------------
# ``categorical_features="from_dtype"`` (the default, as in
# :class:`~sklearn.ensemble.HistGradientBoostingClassifier`) takes the string, bool and
# category columns as categorical; the float column stays numeric. The embedder goes into a
# pipeline like any transformer.
EMBEDDER = dict(
    n_components=16,
    hidden_layer_sizes=(256, 256),
    max_epochs=10 if QUICK else 40,
    random_state=0,
)
native = make_pipeline(ContrastiveEmbedder(**EMBEDDER), KNeighborsClassifier(n_neighbors=5))
native.fit(X_train, y_train)
emb = native[0]

# %%
# What the embedder learned about the columns
# -------------------------------------------
# ``emb.schema_`` (a :class:`sk_dml.tabular.TableSchema`) records, for every column, whether it
# was taken as numeric or categorical, each categorical column's levels (codes 2, 3, ...; code 0
# is "missing" and code 1 "rare or unseen") and the width of its embedding, and which numeric
# columns had missing values at fit, each of which gets a missing indicator.
schema = emb.schema_
rows = []
for j, position in enumerate(schema.numeric):
    rows.append(
        {
            "column": schema.feature_names[position],
            "dtype at fit": schema.dtypes[position],
            "taken as": "numeric",
            "levels": "",
            "inputs to the body": 1 + (j in schema.missing_indicators),
        }
    )
for j, position in enumerate(schema.categorical):
    rows.append(
        {
            "column": schema.feature_names[position],
            "dtype at fit": schema.dtypes[position],
            "taken as": "categorical",
            "levels": ", ".join(schema.levels[j]),
            "inputs to the body": schema.embedding_dims[j],
        }
    )
print(f"the network's body reads {emb.module_.inputs.out_features} inputs per row")
pd.DataFrame(rows).set_index("column")

# %%
# A level never seen at fit, and missing cells
# --------------------------------------------
# A new application lists a housing situation that the training data never had, and another
# leaves ``Housing`` blank. Neither is an error: the unseen level gets the "rare or unseen"
# embedding (the one that levels seen fewer than ``min_frequency`` times at fit share) and the
# blank the "missing" one. Any two unseen levels are the same to the model: the same
# application with "castle" or "houseboat" as its housing embeds to the same point.
new = X_test.iloc[[0, 0, 0, 1]].copy()
new["Housing"] = ["castle", "houseboat", None, "castle"]
Z = emb.transform(new)
print("castle and houseboat embed alike:", np.array_equal(Z[0], Z[1]))
pd.DataFrame({"Housing": new["Housing"].tolist(), "predicted": native.predict(new)})


# %%
# The alternative: a ColumnTransformer
# ------------------------------------
# The pipeline route encodes the table first, exactly as before any scikit-learn model: the
# numbers imputed (with a missing indicator) and scaled, everything else one-hot encoded, with
# missing cells as a level of their own. Embedders need a dense matrix, hence
# ``sparse_output=False``; ``handle_unknown="ignore"`` encodes a level first seen at prediction
# time as all zeros instead of failing.
def preprocessing():
    numbers = make_pipeline(SimpleImputer(add_indicator=True), StandardScaler())
    return ColumnTransformer(
        [
            (
                "categories",
                OneHotEncoder(sparse_output=False, handle_unknown="ignore"),
                make_column_selector(dtype_exclude="number"),
            ),
            ("numbers", numbers, make_column_selector(dtype_include="number")),
        ]
    )


print(f"{preprocessing().fit_transform(X_train).shape[1]} columns after encoding")
plain = make_pipeline(preprocessing(), KNeighborsClassifier(n_neighbors=5))
one_hot = make_pipeline(
    preprocessing(), ContrastiveEmbedder(**EMBEDDER), KNeighborsClassifier(n_neighbors=5)
)
for model in (plain, one_hot):
    model.fit(X_train, y_train)

# %%
# Side by side
# ------------
# 5-NN accuracy on the held-out rows, on the one-hot encoding itself and in the two learned
# spaces:
models = {
    "one-hot + 5-NN": plain,
    "one-hot + embedder + 5-NN": one_hot,
    "raw table + embedder + 5-NN": native,
}
accuracies = {name: model.score(X_test, y_test) for name, model in models.items()}
for name, accuracy in accuracies.items():
    print(f"{name:>28}: test accuracy {accuracy:.3f}")
verdict = (
    "beats"
    if accuracies["raw table + embedder + 5-NN"] > accuracies["one-hot + 5-NN"]
    else "does not beat"
)
print(
    f"the raw table's embedder {verdict} one-hot 5-NN "
    f"({len(X_train)} training rows, {EMBEDDER['max_epochs']} epochs)"
)

# %%
# The classes are unbalanced ("very_recom" has about 2.5% of the rows), so the accuracy hides
# how each class fares. The recall of a class is the fraction of its test rows predicted right.
classes = sorted(y.unique())
recalls = {
    name: recall_score(y_test, model.predict(X_test), labels=classes, average=None)
    for name, model in models.items()
}
counts = y_test.value_counts()

fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
width = 0.27
positions = np.arange(len(classes))
for offset, (name, values), color in zip(
    (-width, 0, width), recalls.items(), ("tab:gray", "tab:orange", "tab:blue"), strict=True
):
    bars = ax.bar(positions + offset, values, width, label=name, color=color)
    ax.bar_label(bars, fmt="%.2f", padding=2, fontsize=8)
ax.set_xticks(positions, [f"{c}\n({counts[c]} test rows)" for c in classes])
ax.set_ylim(0, 1.25)
ax.set_yticks(np.linspace(0, 1, 6))
ax.set(ylabel="recall", title="Nursery with missing cells: recall of each class on the test rows")
ax.legend(loc="upper center", ncols=3, frameon=False, fontsize=9)
plt.show()

# %%
# Which route?
# ------------
# The raw-table route has nothing to keep in step with the data: the columns are matched by
# name at ``transform`` (their order may change), and a model saved with :func:`sk_dml.save`
# keeps its schema. Each level gets a trained vector of a few numbers instead of a one-hot
# column, which matters for columns with many levels (free-text columns are read by their
# character n-grams with ``text_features``). The pipeline route remains the one to take for
# preprocessing of your own (custom binning, a different imputer, word-level text features),
# and the two can be mixed: a ColumnTransformer with ``set_output(transform="pandas")`` and
# ``remainder="passthrough"`` can hand the embedder a DataFrame that still holds categorical
# columns.
