"""
Why are two records close? Explaining a learned distance
========================================================

A learned distance is only trusted when it can say why two rows are near. ``explain_distance``
splits the distance of a pair of rows into one share per input column: a number (with its
missing indicator), a category's embedding, a text column's character n-grams. The shares add
up to the distance (integrated gradients along the straight path between the two rows' inputs
to the network; :mod:`sk_dml.explain`), and the gap, the *completeness error*, is reported
with them.

This example trains a :class:`~sk_dml.PairEmbedder` on labelled pairs of person records, then
explains a true match, a near miss, and a query's nearest neighbours.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from sk_dml import PairEmbedder
from sk_dml.explain import explain_neighbors, plot_distance_explanation

# SK_DML_QUICK=1 (the test suite, the documentation build) shrinks the data and the training.
QUICK = os.environ.get("SK_DML_QUICK", "0") not in ("", "0")

# %%
# Person records with typos
# -------------------------
# Each person has a record and a copy with a typo in the name, sometimes a missing birth year,
# and a city that is sometimes left empty. Half of the people share a surname with another.
rng = np.random.default_rng(0)
syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "da", "fe"]
n_people = 300 if QUICK else 1500


def word(n):
    return "".join(rng.choice(syllables, n))


surnames = [word(3) for _ in range(n_people // 2)]
people = pd.DataFrame(
    {
        "name": [f"{word(2)} {surnames[i // 2]}" for i in range(n_people)],
        "city": rng.choice(["north", "south", "east", "west", "centre"], n_people),
        "birth_year": rng.integers(1940, 2005, n_people).astype(float),
        "income": np.round(rng.lognormal(10.5, 0.5, n_people)),
    }
)


def typo(text):
    k = int(rng.integers(len(text) - 1))
    return text[:k] + text[k + 1] + text[k] + text[k + 2 :]


copies = people.assign(name=people["name"].map(typo))
copies.loc[rng.random(n_people) < 0.3, "birth_year"] = np.nan
copies.loc[rng.random(n_people) < 0.2, "city"] = None
table = pd.concat([people, copies], ignore_index=True)
table["name"] = table["name"].astype("string")
table["city"] = table["city"].astype("category")
entity = np.tile(np.arange(n_people), 2)

# %%
# Labelled pairs: each record with its copy (a match), and random non-matches.
matches = np.column_stack([np.arange(n_people), np.arange(n_people) + n_people])
others = rng.integers(0, len(table), size=(3 * n_people, 2))
others = others[entity[others[:, 0]] != entity[others[:, 1]]]
pairs = np.concatenate([matches, others])
is_match = entity[pairs[:, 0]] == entity[pairs[:, 1]]

emb = PairEmbedder(
    preprocessor=table, text_features=["name"], max_epochs=3 if QUICK else 30, random_state=0
).fit(pairs, is_match)
print(emb.schema_.describe())

# %%
# A match and a non-match, explained
# ----------------------------------
# Row 0 and its copy, and row 0 with the person of the same surname: each column's share of
# the distance. The shares of the pair add up to the distance; ``completeness_error`` says
# by how little they miss it.
explained = emb.explain_distance(np.array([[0, n_people], [0, 1]]))
print(explained.round(4).to_string())

fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for row, ax in enumerate(axes):
    plot_distance_explanation(explained, row, ax=ax)
axes[0].set_title(f"record and its copy: {axes[0].get_title()}")
axes[1].set_title(f"same surname, other person: {axes[1].get_title()}")
fig.tight_layout()

# %%
# A query's nearest records
# -------------------------
# ``explain_neighbors`` finds each query's nearest rows of a reference table in the learned
# space and explains each pair: why the retrieval ranked them so.
neighbours = explain_neighbors(emb, table.iloc[[5]], table, n_neighbors=4)
print(neighbours.round(4).to_string())
relative = neighbours["completeness_error"] / neighbours["distance"].where(
    neighbours["distance"] > 0
)
print(f"largest completeness error relative to the distance: {relative.max():.1e}")
plt.show()
