"""
Which pairs to label first? Active labelling for entity resolution
==================================================================

Entity resolution starts with a table of records and no labelled pairs. Labelling random
pairs of records is wasteful: nearly all are plainly different people.
:class:`~sk_dml.active.PairLabeller` proposes the pairs worth a label: before any label, near
and mid-distance pairs by TF-IDF of the text and standardised numbers (records' nearest
neighbours, and pairs spread over all the candidates); then, after each round of answers, the
pairs of the neighbour graph whose learned distance is nearest the threshold the
:class:`~sk_dml.PairEmbedder` calibrated (its least certain decisions), one pair per record
per round.

Here a simulated labeller answers from the known entities, and the recall@1 of held-out
records (is a corrupted copy's nearest clean record its original?) is followed as labels come
in, for the proposed pairs and for pairs drawn at random from the same candidates.
``sk-dml label TABLE --key id -o pairs.csv`` runs the same loop in a terminal, with a person
answering.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from sk_dml import PairEmbedder
from sk_dml.active import PairLabeller

# SK_DML_QUICK=1 (the test suite, the documentation build) shrinks the data and the loop.
QUICK = os.environ.get("SK_DML_QUICK", "0") not in ("", "0")

# %%
# Records and their corrupted copies
# ----------------------------------
# Clean records (a name, a street, a city, a birth year), and for each a copy with typos and
# missing fields. Relatives share a surname, street and city: the hard non-matches.
rng = np.random.default_rng(1)
syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "da", "fe", "gu", "bo"]
n_clean = 400 if QUICK else 2000


def word(n):
    return "".join(rng.choice(syllables, n))


head = np.minimum(np.arange(n_clean), (np.arange(n_clean) * rng.random(n_clean)).astype(int))
surname = np.array([word(3) for _ in range(n_clean)])[head]
street = np.array([f"{word(2)} street {n}" for n in rng.integers(1, 200, n_clean)])[head]
clean = pd.DataFrame(
    {
        "name": [f"{word(2)} {s}" for s in surname],
        "street": street,
        "city": np.array([word(2) for _ in range(40)])[rng.integers(0, 40, n_clean)][head],
        "birth_year": rng.integers(1940, 2005, n_clean).astype(float),
    }
)


def corrupt(text):
    k = int(rng.integers(len(text) - 1))
    return text[:k] + text[k + 1] + text[k] + text[k + 2 :] if rng.random() < 0.7 else text


copies = clean.apply(lambda c: c.map(corrupt) if c.dtype == object else c)
copies.loc[rng.random(n_clean) < 0.3, "birth_year"] = np.nan
copies.loc[rng.random(n_clean) < 0.3, "street"] = None
table = pd.concat([clean, copies], ignore_index=True).astype({"name": "string", "street": "string"})
entity = np.tile(np.arange(n_clean), 2)

# %%
# Half of the people are labelled from (their records and copies are the labelling pool); the
# copies of the other half are the queries of recall@1 among all clean records.
labelled_people = rng.permutation(n_clean)[: n_clean // 2]
pool_rows = np.flatnonzero(np.isin(entity, labelled_people))
queries = np.flatnonzero((np.arange(len(table)) >= n_clean) & ~np.isin(entity, labelled_people))


def recall_at_1(Z, metric):
    search = NearestNeighbors(n_neighbors=1, metric=metric).fit(Z[:n_clean])
    nearest = search.kneighbors(Z[queries], return_distance=False)[:, 0]
    return float(np.mean(nearest == entity[queries]))


# %%
# The loop
# --------
# Both strategies run the same loop, refitting the embedder warm after each round; they differ
# only in which candidates are labelled.
rounds = [10, 30, 60] if QUICK else [10, 30, 60, 100, 200, 300]
pool, pool_entity = table.iloc[pool_rows].reset_index(drop=True), entity[pool_rows]
setting = dict(n_components=64 if QUICK else 256, normalize=True)
start = PairLabeller(PairEmbedder(**setting), table, random_state=0).embedding()
curves = {}
for strategy in ("active", "random"):
    emb = PairEmbedder(max_epochs=3 if QUICK else 20, random_state=0, **setting)
    labeller = PairLabeller(emb, pool, random_state=0)
    draw = np.random.default_rng(0)
    curve = [(0, recall_at_1(*start))]
    for target in rounds:
        n = target - len(labeller.labels_)
        if strategy == "active":
            pairs = labeller.suggest(n)[["left", "right"]].to_numpy()
        else:
            candidates = labeller.candidates()[["i", "j"]].to_numpy()
            pairs = candidates[draw.choice(len(candidates), n, replace=False)]
        labeller.teach(pairs, pool_entity[pairs[:, 0]] == pool_entity[pairs[:, 1]])
        fitted = labeller.fitted
        Z = emb.transform(table) if fitted else start[0]
        curve.append((target, recall_at_1(Z, emb.embedding_metric_ if fitted else start[1])))
        print(f"{strategy}: {target} pairs ({int(labeller.labels_.sum())} matches), "
              f"recall@1 {curve[-1][1]:.3f}")  # fmt: skip
    curves[strategy] = np.array(curve)

# %%
# Recall@1 against the number of labelled pairs. At 0 labels it is the TF-IDF start; the
# benchmark ``benchmarks/active_labelling.py`` runs the same comparison on larger tables.
fig, ax = plt.subplots(figsize=(6, 3.5))
for strategy, curve in curves.items():
    ax.plot(curve[:, 0], curve[:, 1], marker="o", label=strategy)
ax.set_xlabel("labelled pairs")
ax.set_ylabel("recall@1 of held-out copies")
ax.legend()
fig.tight_layout()
plt.show()
