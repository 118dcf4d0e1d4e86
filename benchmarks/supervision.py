"""Supervision other than class labels: pairs, entity resolution and a continuous target.

Three sections (``--sections``), each a function. Every sk_dml model is scored in the space of
its ``transform`` with its ``embedding_metric_`` (the one exception is named below):

- pairs: UCI Letter (20,000 rows, 16 numeric features, 26 classes), stratified 80/20 split per
  seed. The *full* class-balanced pair budget is the number of same-class pairs among the
  training rows (about 4.9 million) and as many different-class pairs. A budget of 1% or 10%
  (``--budgets``) samples that fraction of the positive pairs uniformly without replacement
  (a class drawn with probability proportional to its number of pairs, then two distinct rows
  of it; a pair drawn twice is dropped and drawn again) and as many different-class pairs
  (two rows drawn uniformly, kept when their classes differ; duplicates dropped likewise).
  ``PairEmbedder(preprocessor=X_train)`` learns from those pairs only; ``TripletEmbedder`` and
  ``ProxyAnchorEmbedder`` (defaults) from the training labels; the reference is the raw
  features standardised on the training rows. ``PairEmbedder`` runs
  ``min(30, max(1, round(--pairs-seen / n_pairs)))`` epochs (--pairs-seen 3,000,000 by default:
  30 epochs of the 1% budget, 98,386 pairs, and 3 of the 10% one, 983,868 pairs; about the
  same number of gradient steps, ten times as many distinct pairs).
  Metrics on the test rows: 5-NN accuracy (``KNeighborsClassifier`` fit on the embedded
  training rows, ``metric=embedding_metric_``) and the ROC AUC of the negative distance on
  20,000 class-balanced random test pairs (10,000 same-class, 10,000 different-class, drawn as
  above).
- er: synthetic entity resolution. ``--er-records`` clean person records (5,000 by default),
  drawn from numpy's generator with data seed 0: first and last name, city (names made of
  random syllables, Zipf-like frequencies, so many records share a name or a city), street
  with house number, birth year, income, phone number (digit string) and a 10-level category.
  30% of the entities are relatives of an earlier one: same last name, city, street and phone,
  their own first name, birth year, income and category (the hardest non-matches). Half of
  the records get corrupted copies (one or two, evenly): typos (1, 2 or 3 edits with
  probabilities 0.5, 0.3, 0.2, each inserting, deleting, substituting or transposing a
  character; per field probability 0.15 to 0.3), swapped first and last names (0.1), an
  initial for the first name (0.05), abbreviated street types (0.2), upper-case names (0.05),
  missing fields (0.05 to 0.25 per field), birth year +-1 (0.2) and income x (1 + N(0, 0.05))
  (see TYPO and MISSING). The table (clean records, then copies) has nullable ``Int64``
  birth years, float incomes and text columns of pandas' string dtype.
  Entities are split 50/50 per seed. Training pairs, among the training entities' rows: every
  (copy, its original) and (copy, copy of the same entity) as matches; three times as many
  non-matches, two thirds of them two random rows of different entities and one third "hard":
  rows of different entities whose clean records share a last name. ``PairEmbedder`` gets the
  whole table as ``preprocessor``, twice: with its defaults, where each string column is
  read as sk_dml decides from its data (``schema_.describe()``: text by character n-grams
  when more than 5% of its cells hold a level seen fewer than ``min_frequency`` times, the
  share reported in the results, else categorical; here first name, last name, city, street
  and phone are text and the category categorical); and with the setting the user guide gives
  for entity resolution (``ER_SETTING``): the defaults' residual start at 3e-4, 256 components,
  normalised, trained on every pair. Neither sees a pair of the test entities. Metric:
  recall@1 of each test copy's original among all the clean records (the training entities'
  originals are distractors too); and the ROC AUC on test pairs drawn like the training pairs
  among the test entities (``PairEmbedder.decision_function``: the exception; the baselines'
  negative distances).
  Baselines: (a) raw features (``ColumnTransformer``: text one-hot, "missing" as its own
  level; numbers with missing indicators, median-filled and standardised), Euclidean; (b)
  TF-IDF of character 2-4-grams (``analyzer="char_wb"``) of all fields joined into one
  lower-case string, cosine. Both fitted on the whole table, without pairs.
- regression: scikit-learn's ``load_diabetes`` (442 rows, 10 features) and
  ``make_friedman1(n_samples=2000, n_features=25, noise=1.0)`` (5 informative features, 20
  irrelevant; data seed 0). 5-fold CV (``KFold(shuffle=True, random_state=--cv-seed)``), R^2
  on each test fold (the CSV's ``seed`` is the CV seed, ``fold`` the fold): k-NN on
  standardised features, ``StandardScaler`` + ``LogRatioEmbedder`` (defaults, and with
  ``early_stopping=True``) + k-NN
  (``metric=embedding_metric_``; what ``make_pipeline`` of the three does) and
  ``HistGradientBoostingRegressor`` (defaults) as the reference. Every k-NN row is reported
  twice: k = 10, and k tuned over {5, 10, 20} by 3-fold ``GridSearchCV`` on the training fold
  (for the embedder: on the embedded training fold, the embedder fitted once per outer fold).

    python benchmarks/supervision.py                          # everything (about 40 min, estimated)
    python benchmarks/supervision.py --sections er --seeds 0
    python benchmarks/supervision.py --baselines-only         # data and baselines only
    python benchmarks/supervision.py --quick                  # smoke run, under 2 minutes

--quick: seed 0, 3 epochs per model, 4,000 letter rows, 1,000 records, 500 friedman rows.
--baselines-only trains no sk_dml model (for the data and the baselines alone).

Writes benchmarks/results/supervision.csv (one row per section, data set, method, seed or
fold, and metric) and supervision.md (``supervision_quick`` with --quick).
"""

from __future__ import annotations

import argparse
import functools
import platform
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import sklearn
import torch
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, make_friedman1
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

import sk_dml
from sk_dml.datasets import load_letter

RESULTS = Path(__file__).parent / "results"
SECTIONS = ["pairs", "er", "regression"]
# The sk_dml estimators the benchmark trains (--baselines-only needs none of them).
API = ["PairEmbedder", "TripletEmbedder", "ProxyAnchorEmbedder", "LogRatioEmbedder"]
DATA_SEED = 0
QUICK_EPOCHS = 3

# pairs
BUDGETS = [0.01, 0.1]
PAIR_EPOCHS = 30
PAIRS_SEEN = 3_000_000
TEST_PAIRS = 20_000
QUICK_LETTER_ROWS = 4_000

# er
ER_RECORDS = 5_000
QUICK_ER_RECORDS = 1_000
ER_EPOCHS = 60
NEGATIVES_PER_MATCH = 3
HARD_SHARE = 1 / 3
TEXT = ["first_name", "last_name", "city", "street", "phone", "category"]
NUMERIC = ["birth_year", "income"]
STREET_TYPES = {"Street": "St", "Road": "Rd", "Avenue": "Ave", "Lane": "Ln", "Way": "Wy"}
# Per copy: the probability that a field is corrupted (typo) or missing.
TYPO = {"first_name": 0.3, "last_name": 0.3, "city": 0.15, "street": 0.3, "phone": 0.3}
MISSING = {
    "first_name": 0.1,
    "last_name": 0.05,
    "city": 0.15,
    "street": 0.15,
    "phone": 0.25,
    "category": 0.1,
    "birth_year": 0.15,
    "income": 0.2,
}
# Share of the entities that live with another one: same last name, city, street and phone.
HOUSEHOLD_SHARE = 0.3
# The user guide's setting for entity resolution: the setting for entities never seen in
# training, with a wider embedding (the text columns are chosen from the data).
ER_SETTING = {"n_components": 256, "normalize": True, "early_stopping": False}

# regression
CV_FOLDS = 5
K_FIXED = 10
K_GRID = [5, 10, 20]
REGRESSION_EPOCHS = 60
FRIEDMAN_ROWS = 2_000
QUICK_FRIEDMAN_ROWS = 500


# -- shared helpers --------------------------------------------------------------------------
def sk_dml_api(name: str):
    """An sk_dml estimator class by name (checked at start unless --baselines-only)."""
    return getattr(sk_dml, name)


def missing_api() -> list[str]:
    return [name for name in API if not hasattr(sk_dml, name)]


def fit_quietly(model, *args) -> float:
    """Fit ``model`` and return the seconds it took."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. ConvergenceWarning with few epochs
        model.fit(*args)
    return time.perf_counter() - start


def pair_scores(Z, pairs: np.ndarray, metric: str) -> np.ndarray:
    """Negative distance between the two rows of each pair (higher = more alike); ``Z`` may be
    sparse."""
    a, b = Z[pairs[:, 0]], Z[pairs[:, 1]]
    if sp.issparse(Z):
        if metric == "cosine":
            dot = np.asarray(a.multiply(b).sum(axis=1)).ravel()
            norms = np.sqrt(
                np.asarray(a.multiply(a).sum(axis=1)).ravel()
                * np.asarray(b.multiply(b).sum(axis=1)).ravel()
            )
            return dot / np.maximum(norms, 1e-12) - 1.0
        diff = a - b
        return -np.sqrt(np.asarray(diff.multiply(diff).sum(axis=1)).ravel())
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        return (a * b).sum(axis=1) / np.maximum(norms, 1e-12) - 1.0
    if metric != "euclidean":
        raise ValueError(f"unsupported metric {metric!r}")
    return -np.linalg.norm(a - b, axis=1)


def pair_auc(Z, pairs, match, metric) -> float:
    return float(roc_auc_score(match, pair_scores(Z, pairs, metric)))


def knn_accuracy(Z_train, y_train, Z_test, y_test, metric) -> float:
    knn = KNeighborsClassifier(n_neighbors=5, metric=metric).fit(Z_train, y_train)
    return float(knn.score(Z_test, y_test))


def result_rows(section, dataset, method, seed, scores: dict, **extra) -> list[dict]:
    """Long format: one row per metric."""
    return [
        {
            "section": section,
            "dataset": dataset,
            "method": method,
            "seed": seed,
            "metric": metric,
            "value": value,
            **extra,
        }
        for metric, value in scores.items()
    ]


def show(rows: list[dict]) -> None:
    if not rows:
        return
    first = rows[0]
    scores = ", ".join(f"{r['metric']} {r['value']:.4f}" for r in rows)
    fit = f", fit {first['fit_s']:.1f} s" if pd.notna(first.get("fit_s", np.nan)) else ""
    where = f"fold {first['fold']}" if "fold" in first else f"seed {first['seed']}"
    print(
        f"{first['section']} {first['dataset']} {where} {first['method']}: {scores}{fit}",
        flush=True,
    )


def dedupe_pairs(i, j, n_rows, seen: np.ndarray) -> np.ndarray:
    """Unordered pair keys ``min * n_rows + max``: ``seen`` then the new ones, first
    occurrences only, in order."""
    keys = np.concatenate([seen, np.minimum(i, j) * n_rows + np.maximum(i, j)])
    _, first = np.unique(keys, return_index=True)
    return keys[np.sort(first)]


def decode_pairs(keys: np.ndarray, n_rows: int, rng) -> np.ndarray:
    pairs = np.stack([keys // n_rows, keys % n_rows], axis=1)
    flip = rng.random(len(pairs)) < 0.5  # no row order within a pair
    pairs[flip] = pairs[flip][:, ::-1]
    return pairs


# -- section 1: pairs on letter --------------------------------------------------------------
def n_positive_pairs(y: np.ndarray) -> int:
    counts = np.unique(y, return_counts=True)[1].astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def positive_pairs(y: np.ndarray, n: int, rng) -> np.ndarray:
    """``n`` distinct same-class pairs, uniformly among all of them."""
    _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    weights = counts * (counts - 1) / 2.0
    if n >= weights.sum():  # the full budget: every pair, enumerated
        members = [order[s : s + c] for s, c in zip(starts, counts, strict=True)]
        pairs = [m[np.stack(np.triu_indices(len(m), 1), axis=1)] for m in members]
        return rng.permutation(np.concatenate(pairs))[:n]
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < n:
        m = int(1.1 * (n - len(keys))) + 100
        c = rng.choice(len(counts), size=m, p=weights / weights.sum())
        a = (rng.random(m) * counts[c]).astype(np.int64)
        b = (rng.random(m) * (counts[c] - 1)).astype(np.int64)
        b += b >= a  # two distinct members
        keys = dedupe_pairs(order[starts[c] + a], order[starts[c] + b], len(y), keys)
    return decode_pairs(keys[:n], len(y), rng)


def negative_pairs(y: np.ndarray, n: int, rng) -> np.ndarray:
    """``n`` distinct different-class pairs, uniformly among all of them."""
    keys = np.empty(0, dtype=np.int64)
    while len(keys) < n:
        m = int(1.2 * (n - len(keys))) + 100
        i, j = rng.integers(0, len(y), m), rng.integers(0, len(y), m)
        keep = y[i] != y[j]
        keys = dedupe_pairs(i[keep], j[keep], len(y), keys)
    return decode_pairs(keys[:n], len(y), rng)


def balanced_pairs(y, n_positive, rng) -> tuple[np.ndarray, np.ndarray]:
    """``n_positive`` same-class and as many different-class pairs, shuffled, and 1/0."""
    pairs = np.concatenate([positive_pairs(y, n_positive, rng), negative_pairs(y, n_positive, rng)])
    match = np.repeat([1, 0], n_positive)
    order = rng.permutation(len(pairs))
    return pairs[order], match[order]


def section_pairs(args) -> list[dict]:
    X, y = load_letter()
    X, y = X.to_numpy(dtype=np.float64), y.to_numpy()
    if args.quick:
        keep, _ = train_test_split(
            np.arange(len(y)), train_size=QUICK_LETTER_ROWS, stratify=y, random_state=DATA_SEED
        )
        X, y = X[keep], y[keep]
    rows = []
    for seed in args.seeds:
        train, test = train_test_split(
            np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed
        )
        X_train, X_test, y_train, y_test = X[train], X[test], y[train], y[test]
        rng = np.random.default_rng(seed)
        test_pairs, test_match = balanced_pairs(y_test, TEST_PAIRS // 2, rng)
        full = n_positive_pairs(y_train)
        split = {
            "seed": seed,
            "y_train": y_train,
            "y_test": y_test,
            "test_pairs": test_pairs,
            "test_match": test_match,
            "full_pairs": 2 * full,
        }
        scaler = StandardScaler().fit(X_train)
        rows += score_pairs(
            split,
            scaler.transform(X_train),
            scaler.transform(X_test),
            "euclidean",
            "raw features (standardised)",
            "none",
            fit_s=0.0,
        )
        if args.baselines_only:
            for budget in args.budgets:  # the sampling alone, timed
                start = time.perf_counter()
                pairs, _ = balanced_pairs(y_train, round(budget * full), rng)
                elapsed = time.perf_counter() - start
                print(
                    f"pairs letter seed {seed}: {budget:.0%} budget = {len(pairs)} pairs "
                    f"(of {2 * full}), sampled in {elapsed:.1f} s"
                )
            continue
        for name in ["TripletEmbedder", "ProxyAnchorEmbedder"]:
            emb = sk_dml_api(name)(random_state=seed, device=args.device)
            if args.quick:
                emb.set_params(max_epochs=QUICK_EPOCHS)
            fit_s = fit_quietly(emb, X_train, y_train)
            rows += score_pairs(
                split,
                emb.transform(X_train),
                emb.transform(X_test),
                emb.embedding_metric_,
                f"{name} (labels)",
                "labels",
                fit_s=fit_s,
                epochs=emb.n_iter_,
            )
        for budget in args.budgets:
            pairs, match = balanced_pairs(y_train, round(budget * full), rng)
            epochs = min(PAIR_EPOCHS, max(1, round(args.pairs_seen / len(pairs))))
            emb = sk_dml_api("PairEmbedder")(
                preprocessor=X_train,
                max_epochs=QUICK_EPOCHS if args.quick else epochs,
                random_state=seed,
                device=args.device,
            )
            fit_s = fit_quietly(emb, pairs, match)
            sample = rng.permutation(len(pairs))[:TEST_PAIRS]
            train_auc = float(emb.score(pairs[sample], match[sample]))
            note = f"training-pair AUC {train_auc:.4f}, max_epochs {emb.max_epochs}"
            rows += score_pairs(
                split,
                emb.transform(X_train),
                emb.transform(X_test),
                emb.embedding_metric_,
                f"PairEmbedder ({budget:.0%} pairs)",
                f"{budget:.0%} of the pairs",
                n_pairs=len(pairs),
                fit_s=fit_s,
                epochs=emb.n_iter_,
                note=note,
            )
    return rows


def score_pairs(split: dict, Z_train, Z_test, metric, method, supervision, **extra):
    """Result rows of one method on one letter split: 5-NN accuracy and test-pair ROC AUC."""
    scores = {
        "knn5_accuracy": knn_accuracy(Z_train, split["y_train"], Z_test, split["y_test"], metric),
        "pair_auc": pair_auc(Z_test, split["test_pairs"], split["test_match"], metric),
    }
    new = result_rows(
        "pairs",
        "letter",
        method,
        split["seed"],
        scores,
        supervision=supervision,
        full_pairs=split["full_pairs"],
        **extra,
    )
    show(new)
    return new


# -- section 2: entity resolution ------------------------------------------------------------
ONSETS = [
    "b",
    "br",
    "c",
    "ch",
    "d",
    "f",
    "g",
    "gr",
    "h",
    "j",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "st",
    "t",
    "th",
    "v",
    "w",
    "z",
]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
CODAS = ["", "", "", "n", "r", "s", "l", "m", "nd", "rt"]


def vocabulary(rng, n: int, syllables=(2, 3)) -> np.ndarray:
    """``n`` distinct capitalised words of random syllables."""
    words: dict[str, None] = {}
    while len(words) < n:
        k = rng.integers(syllables[0], syllables[1] + 1)
        parts = [
            ONSETS[rng.integers(len(ONSETS))]
            + VOWELS[rng.integers(len(VOWELS))]
            + CODAS[rng.integers(len(CODAS))]
            for _ in range(k)
        ]
        words["".join(parts).capitalize()] = None
    return np.array(list(words), dtype=object)


def zipf_draw(rng, words: np.ndarray, size: int, exponent: float) -> np.ndarray:
    p = 1.0 / np.arange(1, len(words) + 1) ** exponent
    return words[rng.choice(len(words), size=size, p=p / p.sum())]


def typo(text: str, rng, alphabet: str) -> str:
    """One edit: insert, delete, substitute or transpose a character."""
    i = int(rng.integers(len(text)))
    c = alphabet[rng.integers(len(alphabet))]
    op = rng.integers(4) if len(text) > 1 else rng.choice([0, 2])
    if op == 0:
        return text[:i] + c + text[i:]
    if op == 1:
        return text[:i] + text[i + 1 :]
    if op == 2:
        return text[:i] + c + text[i + 1 :]
    i = min(i, len(text) - 2)
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def typos(text: str, rng, alphabet="abcdefghijklmnopqrstuvwxyz") -> str:
    for _ in range(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2])):
        text = typo(text, rng, alphabet)
    return text


def corrupt(record: dict, rng) -> dict:
    """A corrupted copy of a clean record (as the module docstring lists)."""
    r = dict(record)
    if rng.random() < 0.1:
        r["first_name"], r["last_name"] = r["last_name"], r["first_name"]
    for field, p in TYPO.items():
        if rng.random() < p:
            r[field] = typos(
                r[field], rng, "0123456789" if field == "phone" else "abcdefghijklmnopqrstuvwxyz"
            )
    if rng.random() < 0.05:
        r["first_name"] = r["first_name"][0] + "."
    for field in ("first_name", "last_name"):
        if rng.random() < 0.05:
            r[field] = r[field].upper()
    if rng.random() < 0.2:
        for full, short in STREET_TYPES.items():
            r["street"] = r["street"].replace(f" {full} ", f" {short} ")
    if rng.random() < 0.2:
        r["birth_year"] += int(rng.choice([-1, 1]))
    r["income"] = round(r["income"] * (1 + rng.normal(0, 0.05)), 2)
    for field, p in MISSING.items():
        if rng.random() < p:
            r[field] = None
    return r


def er_table(n_records: int, seed: int = DATA_SEED) -> tuple[pd.DataFrame, np.ndarray]:
    """The table (``n_records`` clean records, then the copies) and each row's entity; the
    clean record of entity ``e`` is row ``e``."""
    rng = np.random.default_rng(seed)
    first = vocabulary(rng, 300, (2, 2))
    last = vocabulary(rng, 2_000, (2, 3))
    cities = vocabulary(rng, 80, (2, 3))
    streets = vocabulary(rng, 400, (2, 3))
    categories = np.array([f"{w.lower()}" for w in vocabulary(rng, 10, (1, 2))], dtype=object)
    n = n_records
    types = np.array(list(STREET_TYPES), dtype=object)[rng.integers(len(STREET_TYPES), size=n)]
    phones: dict[str, None] = {}
    while len(phones) < n:
        phones["0" + "".join(map(str, rng.integers(0, 10, 9)))] = None
    clean = pd.DataFrame(
        {
            "first_name": zipf_draw(rng, first, n, 1.0),
            "last_name": zipf_draw(rng, last, n, 0.8),
            "city": zipf_draw(rng, cities, n, 1.1),
            "street": [
                f"{s} {t} {h}"
                for s, t, h in zip(
                    streets[rng.integers(len(streets), size=n)],
                    types,
                    rng.integers(1, 300, n),
                    strict=True,
                )
            ],
            "birth_year": rng.integers(1940, 2005, n),
            "income": np.round(rng.lognormal(np.log(40_000), 0.5, n), 2),
            "phone": list(phones),
            "category": zipf_draw(rng, categories, n, 0.5),
        }
    )
    # Relatives: distinct entities sharing an earlier entity's household fields.
    relatives = np.flatnonzero(rng.random(n) < HOUSEHOLD_SHARE)
    relatives = relatives[relatives > 0]
    heads = (rng.random(len(relatives)) * relatives).astype(np.int64)  # an earlier entity
    household = ["last_name", "city", "street", "phone"]
    for r, h in zip(relatives, heads, strict=True):  # in order: a head may be a relative
        clean.loc[r, household] = clean.loc[h, household]
    records = clean.to_dict("records")
    copies, entity = [], list(range(n))
    for e in np.flatnonzero(rng.random(n) < 0.5):
        for _ in range(1 if rng.random() < 0.5 else 2):
            copies.append(corrupt(records[e], rng))
            entity.append(e)
    table = pd.concat([clean, pd.DataFrame(copies, columns=clean.columns)], ignore_index=True)
    for column in TEXT:
        table[column] = table[column].astype("string")
    table["birth_year"] = table["birth_year"].astype("Int64")
    table["income"] = table["income"].astype("float64")
    return table, np.asarray(entity)


def er_pairs(entity: np.ndarray, chosen: np.ndarray, key: np.ndarray, rng):
    """Matches among the rows of the entities ``chosen`` (every copy with its original and
    with the other copy of its entity), and NEGATIVES_PER_MATCH times as many non-matches:
    HARD_SHARE of them rows of different entities with the same ``key`` (the clean last name),
    the rest random rows of different entities. Returns (pairs, 1/0)."""
    rows = np.flatnonzero(np.isin(entity, chosen))
    copies = rows[rows >= len(key)]
    matches = [(c, entity[c]) for c in copies]
    by_entity = pd.Series(copies).groupby(entity[copies]).agg(list)
    matches += [(g[0], g[1]) for g in by_entity if len(g) == 2]
    n_neg = NEGATIVES_PER_MATCH * len(matches)
    n_hard = round(HARD_SHARE * n_neg)
    row_key = key[entity[rows]]
    groups = {
        k: rows[idx]
        for k, idx in pd.Series(row_key).groupby(row_key).indices.items()
        if len(np.unique(entity[rows[idx]])) > 1
    }
    candidates = np.concatenate(list(groups.values()))
    hard = []
    while len(hard) < n_hard:
        i = candidates[rng.integers(len(candidates))]
        group = groups[key[entity[i]]]
        j = group[rng.integers(len(group))]
        if entity[i] != entity[j]:
            hard.append((i, j))
    keys = np.empty(0, dtype=np.int64)
    n_rows = len(entity)
    while len(keys) < n_neg - n_hard:
        i, j = rows[rng.integers(len(rows), size=n_neg)], rows[rng.integers(len(rows), size=n_neg)]
        keep = entity[i] != entity[j]
        keys = dedupe_pairs(i[keep], j[keep], n_rows, keys)
    random = decode_pairs(keys[: n_neg - n_hard], n_rows, rng)
    pairs = np.concatenate([np.array(matches), np.array(hard), random]).astype(np.int64)
    match = np.concatenate([np.ones(len(matches), int), np.zeros(n_neg, int)])
    order = rng.permutation(len(pairs))
    return pairs[order], match[order]


def as_text(table: pd.DataFrame) -> pd.Series:
    """Every field of a row joined into one string (missing fields empty)."""
    parts = [table[c].astype("string").fillna("") for c in TEXT if c != "category"]
    parts += [
        table["birth_year"].astype("string").fillna(""),
        table["income"].round(0).astype("Int64").astype("string").fillna(""),
        table["category"].fillna(""),
    ]
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + " " + part
    return joined.str.lower()


def raw_features(table: pd.DataFrame):
    """One-hot text ("missing" a level of its own), numbers median-filled with missing
    indicators and standardised (sparse)."""
    as_object = table[TEXT].astype(object).where(table[TEXT].notna(), "missing")
    numbers = table[NUMERIC].astype("float64")
    encoder = ColumnTransformer(
        [
            ("text", OneHotEncoder(handle_unknown="ignore"), TEXT),
            (
                "numbers",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                ),
                NUMERIC,
            ),
        ],
        sparse_threshold=1.0,
    )
    return sp.csr_matrix(encoder.fit_transform(pd.concat([as_object, numbers], axis=1)))


def recall_at_1(Z, queries: np.ndarray, entity: np.ndarray, n_clean: int, metric: str) -> float:
    """Share of the query rows whose nearest clean record (rows < n_clean) is their original."""
    nn = NearestNeighbors(n_neighbors=1, metric=metric, algorithm="brute").fit(Z[:n_clean])
    nearest = nn.kneighbors(Z[queries], return_distance=False)[:, 0]
    return float(np.mean(nearest == entity[queries]))


def rare_shares(table: pd.DataFrame, min_frequency: int) -> dict:
    """Per text column: the share of its non-missing cells whose level appears fewer than
    ``min_frequency`` times in the table (what sk_dml encodes as "rare")."""
    shares = {}
    for column in TEXT:
        values = table[column].dropna()
        counts = values.map(values.value_counts())
        shares[column] = float((counts < min_frequency).mean())
    return shares


def section_er(args) -> tuple[list[dict], dict]:
    n_records = QUICK_ER_RECORDS if args.quick else args.er_records
    table, entity = er_table(n_records)
    n_clean = n_records
    key = table["last_name"].to_numpy(dtype=object)[:n_clean]
    text = as_text(table)
    tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)).fit_transform(text)
    raw = raw_features(table)
    from sk_dml import TripletEmbedder  # its defaults: the min_frequency of every estimator

    min_frequency = TripletEmbedder().min_frequency
    info = {
        "rows": len(table),
        "clean": n_clean,
        "copies": len(table) - n_clean,
        "rare": rare_shares(table, min_frequency),
        "min_frequency": min_frequency,
        "raw_width": raw.shape[1],
        "tfidf_width": tfidf.shape[1],
    }
    rows = []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        train_entities = rng.permutation(n_clean)[: n_clean // 2]
        test_entities = np.setdiff1d(np.arange(n_clean), train_entities)
        pairs, match = er_pairs(entity, train_entities, key, rng)
        test_pairs, test_match = er_pairs(entity, test_entities, key, rng)
        queries = np.flatnonzero(
            (np.arange(len(table)) >= n_clean) & np.isin(entity, test_entities)
        )
        info.update(
            train_pairs=len(pairs),
            train_matches=int(match.sum()),
            test_pairs=len(test_pairs),
            test_queries=len(queries),
        )
        split = {
            "seed": seed,
            "queries": queries,
            "entity": entity,
            "n_clean": n_clean,
            "test_pairs": test_pairs,
            "test_match": test_match,
            "n_pairs": len(pairs),
        }
        rows += score_er(
            split,
            raw,
            "euclidean",
            "raw features (one-hot + standardised)",
            fit_s=0.0,
            note=f"{raw.shape[1]} columns",
        )
        rows += score_er(
            split,
            tfidf,
            "cosine",
            "TF-IDF char 2-4-grams",
            fit_s=0.0,
            note=f"{tfidf.shape[1]} n-grams",
        )
        if args.baselines_only:
            continue
        for name, params in [
            ("PairEmbedder (defaults)", {}),
            ("PairEmbedder (ER setting: 256-D, normalised, every pair)", ER_SETTING),
        ]:
            emb = sk_dml_api("PairEmbedder")(
                preprocessor=table,
                max_epochs=QUICK_EPOCHS if args.quick else ER_EPOCHS,
                random_state=seed,
                device=args.device,
                **params,
            )
            fit_s = fit_quietly(emb, pairs, match)
            auc = float(roc_auc_score(test_match, emb.decision_function(test_pairs)))
            rows += score_er(
                split,
                emb.transform(table),
                emb.embedding_metric_,
                name,
                auc=auc,
                fit_s=fit_s,
                epochs=emb.n_iter_,
            )
    return rows, info


def score_er(split: dict, Z, metric, method, auc=None, **extra) -> list[dict]:
    """Result rows of one method on one entity split: recall@1 and test-pair ROC AUC (``auc``
    when given, else from the negative distance in ``Z``)."""
    if auc is None:
        auc = pair_auc(Z, split["test_pairs"], split["test_match"], metric)
    recall = recall_at_1(Z, split["queries"], split["entity"], split["n_clean"], metric)
    new = result_rows(
        "er",
        "synthetic people",
        method,
        split["seed"],
        {"recall_at_1": recall, "pair_auc": auc},
        n_pairs=split["n_pairs"],
        **extra,
    )
    show(new)
    return new


# -- section 3: regression -------------------------------------------------------------------
def regression_data(quick: bool) -> dict:
    rows = QUICK_FRIEDMAN_ROWS if quick else FRIEDMAN_ROWS
    return {
        "diabetes": load_diabetes(return_X_y=True),
        "friedman1": make_friedman1(
            n_samples=rows, n_features=25, noise=1.0, random_state=DATA_SEED
        ),
    }


def knn_r2(Z_train, y_train, Z_test, y_test, metric, seed) -> tuple[float, float, int]:
    """R^2 of k-NN with k = K_FIXED, and with k tuned on the training rows (and that k)."""
    fixed = KNeighborsRegressor(n_neighbors=K_FIXED, metric=metric).fit(Z_train, y_train)
    search = GridSearchCV(
        KNeighborsRegressor(metric=metric),
        {"n_neighbors": K_GRID},
        cv=KFold(3, shuffle=True, random_state=seed),
    ).fit(Z_train, y_train)
    return (
        float(r2_score(y_test, fixed.predict(Z_test))),
        float(r2_score(y_test, search.predict(Z_test))),
        int(search.best_params_["n_neighbors"]),
    )


def section_regression(args) -> list[dict]:
    rows = []
    folds = KFold(CV_FOLDS, shuffle=True, random_state=args.cv_seed)
    for dataset, (X, y) in regression_data(args.quick).items():
        for fold, (train, test) in enumerate(folds.split(X)):
            X_train, X_test, y_train, y_test = X[train], X[test], y[train], y[test]
            add = functools.partial(regression_rows, rows, dataset, args.cv_seed, fold)
            scaler = StandardScaler().fit(X_train)
            S_train, S_test = scaler.transform(X_train), scaler.transform(X_test)
            fixed, tuned, k = knn_r2(S_train, y_train, S_test, y_test, "euclidean", fold)
            add(f"k-NN, standardised (k={K_FIXED})", fixed, fit_s=0.0)
            add("k-NN, standardised (k tuned)", tuned, fit_s=0.0, note=f"k={k}")
            hgb = HistGradientBoostingRegressor(random_state=fold)
            fit_s = fit_quietly(hgb, X_train, y_train)
            add(
                "HistGradientBoostingRegressor",
                float(r2_score(y_test, hgb.predict(X_test))),
                fit_s=fit_s,
            )
            if args.baselines_only:
                continue
            for name, params in (
                ("LogRatioEmbedder", {}),
                ("LogRatioEmbedder, early stopping", {"early_stopping": True}),
            ):
                reg = sk_dml_api("LogRatioEmbedder")(
                    max_epochs=QUICK_EPOCHS if args.quick else REGRESSION_EPOCHS,
                    random_state=fold,
                    device=args.device,
                    **params,
                )
                fit_s = fit_quietly(reg, S_train, y_train)
                Z_train, Z_test = reg.transform(S_train), reg.transform(S_test)
                metric = reg.embedding_metric_
                fixed, tuned, k = knn_r2(Z_train, y_train, Z_test, y_test, metric, fold)
                add(f"{name} + k-NN (k={K_FIXED})", fixed, fit_s=fit_s, epochs=reg.n_iter_)
                add(
                    f"{name} + k-NN (k tuned)",
                    tuned,
                    fit_s=fit_s,
                    epochs=reg.n_iter_,
                    note=f"k={k}",
                )
    return rows


def regression_rows(rows: list, dataset, cv_seed, fold, method, r2, **extra) -> None:
    """Append (and print) the result row of one method on one fold."""
    new = result_rows("regression", dataset, method, cv_seed, {"r2": r2}, fold=fold, **extra)
    show(new)
    rows.extend(new)


# -- report ----------------------------------------------------------------------------------
def _wide(runs: pd.DataFrame, section: str) -> pd.DataFrame:
    """Mean and std over seeds (folds) of each metric, one row per data set and method."""
    group = runs[runs.section == section]
    if group.empty:
        return group
    keys = ["dataset", "method"]
    stats = group.groupby(keys + ["metric"], sort=False)["value"].agg(["mean", "std", "count"])
    table = stats.unstack("metric")
    table.columns = [f"{metric}_{stat}" for stat, metric in table.columns]
    extra = group.groupby(keys, sort=False).agg(
        fit_s=("fit_s", "mean"),
        epochs=("epochs", "mean"),
        n_pairs=("n_pairs", "mean"),
        seeds=("seed", "nunique"),
    )
    order = group[keys].drop_duplicates()
    return order.merge(table.join(extra).reset_index(), on=keys)


def _cell(row, metric: str, digits: int = 4) -> str:
    mean = getattr(row, f"{metric}_mean", np.nan)
    if pd.isna(mean):
        return ""
    return f"{mean:.{digits}f} ± {np.nan_to_num(getattr(row, f'{metric}_std')):.{digits}f}"


def _number(value, fmt: str) -> str:
    return "" if pd.isna(value) else format(value, fmt)


def summarise(runs: pd.DataFrame, er_info: dict | None) -> str:
    for column in ("fit_s", "epochs", "n_pairs", "supervision", "full_pairs"):
        if column not in runs:
            runs = runs.assign(**{column: np.nan})
    sections = []
    pairs = _wide(runs, "pairs")
    if not pairs.empty:
        full = runs.loc[runs.section == "pairs", "full_pairs"].dropna()
        lines = [
            "## Pairs instead of labels (letter)",
            "",
            "Stratified 80/20 split per seed; PairEmbedder learns from class-balanced pairs of "
            "training rows (a fraction of the full budget"
            + (f", {full.mean():,.0f} pairs on average" if len(full) else "")
            + "), the label embedders from the training labels. 5-NN accuracy of the test rows "
            f"among the embedded training rows; ROC AUC of the negative distance on {TEST_PAIRS:,}"
            " class-balanced test pairs.",
            "",
            "| method | supervision | training pairs | epochs | fit (s) | 5-NN accuracy | "
            "pair ROC AUC | seeds |",
            "|---|---|---|---|---|---|---|---|",
        ]
        sup = runs[runs.section == "pairs"].groupby("method", sort=False)["supervision"].first()
        for row in pairs.itertuples():
            lines.append(
                f"| {row.method} | {sup.get(row.method, '')} | {_number(row.n_pairs, ',.0f')} | "
                f"{_number(row.epochs, '.0f')} | {_number(row.fit_s, '.1f')} | "
                f"{_cell(row, 'knn5_accuracy')} | {_cell(row, 'pair_auc')} | {row.seeds} |"
            )
        sections.append("\n".join(lines))
    er = _wide(runs, "er")
    if not er.empty:
        lines = ["## Entity resolution (synthetic people)", ""]
        if er_info:
            rare = ", ".join(f"{c} {s:.0%}" for c, s in er_info["rare"].items())
            lines += [
                f"{er_info['clean']:,} clean records and {er_info['copies']:,} corrupted copies "
                f"({er_info['rows']:,} rows); entities split 50/50 per seed; "
                f"{er_info['train_pairs']:,} training pairs ({er_info['train_matches']:,} "
                f"matches; non-matches: 2/3 random, 1/3 sharing a last name), "
                f"{er_info['test_pairs']:,} test pairs likewise. Recall@1: is the nearest of "
                f"all {er_info['clean']:,} clean records to each of the "
                f"{er_info['test_queries']:,} test copies its original? Non-missing text cells "
                f"whose level appears fewer than {er_info['min_frequency']} times (sk_dml's "
                f"'rare' code, min_frequency={er_info['min_frequency']}): {rare}.",
                "",
            ]
        lines += [
            "| method | recall@1 | test-pair ROC AUC | fit (s) | epochs | seeds |",
            "|---|---|---|---|---|---|",
        ]
        for row in er.itertuples():
            lines.append(
                f"| {row.method} | {_cell(row, 'recall_at_1')} | {_cell(row, 'pair_auc')} | "
                f"{_number(row.fit_s, '.1f')} | {_number(row.epochs, '.0f')} | {row.seeds} |"
            )
        sections.append("\n".join(lines))
    regression = _wide(runs, "regression")
    if not regression.empty:
        lines = [
            "## Continuous target (regression)",
            "",
            f"{CV_FOLDS}-fold CV (shuffled); R² on each test fold, mean ± std over the folds. "
            f"k tuned: 3-fold GridSearchCV over k in {K_GRID} on the training fold.",
            "",
            "| data set | method | R² | fit (s) | epochs |",
            "|---|---|---|---|---|",
        ]
        for row in regression.itertuples():
            lines.append(
                f"| {row.dataset} | {row.method} | {_cell(row, 'r2')} | "
                f"{_number(row.fit_s, '.2f')} | {_number(row.epochs, '.0f')} |"
            )
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, of {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0, 1, 2],
        help="splits and model seeds of the pairs and er sections",
    )
    parser.add_argument("--cv-seed", type=int, default=0, help="KFold seed, regression")
    parser.add_argument(
        "--budgets",
        nargs="+",
        type=float,
        default=BUDGETS,
        help="fractions of the full pair budget (pairs section)",
    )
    parser.add_argument(
        "--pairs-seen",
        type=int,
        default=PAIRS_SEEN,
        help=f"PairEmbedder epochs: min({PAIR_EPOCHS}, round(this / pairs))",
    )
    parser.add_argument(
        "--er-records", type=int, default=ER_RECORDS, help="clean records of the er table"
    )
    parser.add_argument(
        "--baselines-only", action="store_true", help="data and baselines only: no sk_dml model"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: seed 0, {QUICK_EPOCHS} epochs, {QUICK_LETTER_ROWS:,} "
        f"letter rows, {QUICK_ER_RECORDS:,} records, {QUICK_FRIEDMAN_ROWS} "
        "friedman rows",
    )
    parser.add_argument(
        "--out",
        help="file stem under benchmarks/results (default: "
        "supervision, supervision_quick with --quick)",
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep an earlier run's rows of the sections not run now",
    )
    args = parser.parse_args(argv)
    if not all(0 < b <= 1 for b in args.budgets):
        parser.error("--budgets are fractions in (0, 1]")
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    if unknown := sorted(set(chosen) - set(SECTIONS)):
        parser.error(f"unknown sections {unknown}; choose from {SECTIONS}")
    if not args.baselines_only and (absent := missing_api()):
        sys.exit(
            f"this sk_dml ({sk_dml.__file__}) has no {', '.join(absent)}; "
            "run with --baselines-only for the data and the baselines alone."
        )
    if args.quick:
        args.seeds = args.seeds[:1]
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)  # OpenMP and BLAS (HistGradientBoosting, k-NN) likewise
    stem = args.out or "supervision" + ("_quick" if args.quick else "")
    rows, er_info = [], None
    if args.append and (RESULTS / f"{stem}.csv").exists():
        earlier = pd.read_csv(RESULTS / f"{stem}.csv")
        rows = earlier[~earlier.section.isin(chosen)].to_dict("records")
    for section in SECTIONS:
        if section not in chosen:
            continue
        start = time.perf_counter()
        if section == "pairs":
            rows += section_pairs(args)
        elif section == "er":
            new, er_info = section_er(args)
            rows += new
        else:
            rows += section_regression(args)
        print(f"section {section}: {time.perf_counter() - start:.0f} s", flush=True)
    runs = pd.DataFrame(rows)
    runs["section"] = pd.Categorical(runs.section, SECTIONS)
    runs = runs.sort_values(["section"], kind="stable")
    RESULTS.mkdir(exist_ok=True)
    runs.to_csv(RESULTS / f"{stem}.csv", index=False)
    command = "python benchmarks/supervision.py " + " ".join(argv)
    header = (
        "# Supervision other than class labels\n\n"
        f"`{command.strip()}` on {date.today()}: {platform.processor() or platform.machine()}, "
        f"{args.threads} torch threads, torch {torch.__version__}, scikit-learn "
        f"{sklearn.__version__}, pandas {pd.__version__}, sk_dml {sk_dml.__version__}. The "
        "protocol of each section is in the docstring of benchmarks/supervision.py. Timings "
        "come from a shared 2-core machine: compare them within this file."
        + (" `--quick`: a smoke run, not a measurement." if args.quick else "")
        + (" `--baselines-only`: no sk_dml model was trained." if args.baselines_only else "")
        + (
            " `--append` kept the rows of other sections from an earlier run."
            if args.append
            else ""
        )
        + "\n\n"
    )
    summary = summarise(runs, er_info)
    (RESULTS / f"{stem}.md").write_text(header + summary + "\n")
    print(summary)


if __name__ == "__main__":
    main()
