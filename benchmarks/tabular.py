"""Tables with categorical columns and missing values: native input vs preprocessing pipelines.

Every comparison trains the same embedder (``TripletEmbedder``, the default loss, with its
defaults and ``random_state=seed``) on what each variant gives it, then scores 5-NN accuracy
(``KNeighborsClassifier(5, metric=emb.embedding_metric_)``) of a held-out stratified test split
in the embedding of the training rows. "native" passes the DataFrame itself (categorical columns
become entity embeddings, numbers are standardised, missing values filled and flagged inside
the network); a pipeline is ``make_pipeline(preprocessing, TripletEmbedder(...))``. Reference
rows: 5-NN on a pipeline's preprocessed features, with no embedder.

Three parts (``--parts``):

- nursery: UCI Nursery (8 categorical text columns; the class "recommend", 2 rows, dropped),
  70/30 splits, one per seed. native vs ``OneHotEncoder`` vs skrub's ``TableVectorizer``.
- missing: a mixed table (10,000 rows; 8 numeric columns, 4 of them informative; text columns
  of 5, 20 and 200 levels) with 20% of its cells missing: a numeric cell is missing with
  probability 0.1 below its column's median and 0.3 above it (so missingness carries
  information), a text cell with probability 0.2. 70/30 splits, one per seed. native vs
  ``SimpleImputer(add_indicator=True)`` on the numbers + ``SimpleImputer("missing")`` and
  ``OneHotEncoder`` on the text.
- large: a synthetic table of ``--rows`` rows (default 1,000,000): 20 numeric columns and 3
  categorical ones of 10, 1,000 and 200,000 levels ("cat_10", "cat_1k", "id_200k"). native vs
  the numeric columns only vs ordinal codes vs one-hot (the 10- and 1,000-level columns with
  the ID dropped; all three). The embedders take dense arrays only, so one-hot is dense
  (float32). Each variant runs in its own process, under an address-space limit
  (``--memory-cap-gb``, default 8) and a wall-clock limit (``--timeout``): a variant that
  exceeds one is reported as "out of memory" / "over N s". It fits ``--epochs`` epochs
  (default 3, the default cosine schedule over them) after a 1-epoch warm-up on 2,000 rows
  (torch's one-off lazy imports); time per epoch = fit wall time / epochs (a pipeline's
  preprocessing and the native schema learning count as fit time). Peak RSS is the process's
  high-water mark at the end of the fit (``VmHWM`` in /proc/self/status: ``ru_maxrss`` would
  count the launching process's resident memory too, as a child inherits it at fork), data
  generation included. 5-NN accuracy: 20,000 held-out rows (stratified) queried against a
  100,000-row sample of the training rows. Seed 0 only by default (``--large-seeds``).

The synthetic tables (``synthetic_table``) are drawn from numpy's generator with data seed 0
(the seeds vary the split and the embedder only). A latent score is the sum of independent
parts, each scaled to a share of its variance, and the class is its quintile (5 classes of
equal size):

- numeric: a random linear combination of the first few numeric columns (6 of 20 in the large
  table, 4 of 8 in the mixed one; the others are noise columns). The numeric columns are then
  shifted and scaled by random amounts (scales from 0.1 to 100), so they need standardising;
- each categorical column: an effect per *hidden group* of its levels, the levels assigned to
  groups at random (independently of their names and codes). In the large table the 10- and
  1,000-level columns have one group per level, and the 200,000-level ID has 8 hidden groups:
  the ID matters only through a group that has to be learned from the ~5 rows of each ID;
- noise.

Variance shares, large table: numeric 0.35, cat_10 0.10, cat_1k 0.20, id_200k (its group) 0.30,
noise 0.05, so a model that ignores the ID cannot be perfect (nor can one that sees everything:
noise). Mixed table: numeric 0.45, cat_5 0.10, cat_20 0.15, cat_200 0.20, noise 0.10.

    pip install skrub       # for the TableVectorizer pipeline (a benchmark-only dependency;
                            # pip install -e ".[bench]" installs it too)
    python benchmarks/tabular.py                    # everything; the large part is long
    python benchmarks/tabular.py --parts large --rows 200000 --large-seeds 0 1 2
    python benchmarks/tabular.py --parts large --large-variants native numeric --epochs 1
    python benchmarks/tabular.py --quick            # smoke run, about a minute: 1 seed, few
                                                    # epochs, a 20,000-row "large" table

Writes benchmarks/results/tabular.csv (one row per run), tabular.md and tabular.png
(``tabular_quick`` with --quick).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

import sk_dml
from sk_dml import TripletEmbedder
from sk_dml.datasets import load_nursery

RESULTS = Path(__file__).parent / "results"
PARTS = ["nursery", "missing", "large"]
DATA_SEED = 0
N_CLASSES = 5
LARGE_CATEGORICAL = {"cat_10": (10, 10), "cat_1k": (1_000, 1_000), "id_200k": (200_000, 8)}
LARGE_SHARES = {"numeric": 0.35, "cat_10": 0.10, "cat_1k": 0.20, "id_200k": 0.30, "noise": 0.05}
MIXED_CATEGORICAL = {"cat_5": (5, 5), "cat_20": (20, 20), "cat_200": (200, 200)}
MIXED_SHARES = {"numeric": 0.45, "cat_5": 0.10, "cat_20": 0.15, "cat_200": 0.20, "noise": 0.10}
NATIVE = "native"
# What a row of the large part may hold (a variant that failed has only some).
LARGE_FIELDS = ["accuracy", "s_per_epoch", "peak_rss_mb", "inputs", "n_test", "n_reference",
                "note", "memory_cap_gb", "timeout_s"]  # fmt: skip


def skrub_table_vectorizer():
    try:
        import skrub
    except ImportError:
        sys.exit(
            "benchmarks/tabular.py needs skrub for its TableVectorizer pipeline (a benchmark-only "
            'dependency): pip install skrub, or pip install -e ".[bench]". Or leave the nursery '
            "part out: --parts missing large."
        )
    return skrub.TableVectorizer()


# -- data ------------------------------------------------------------------------------------
def synthetic_table(n_rows, *, n_numeric, n_informative, categorical, shares, seed=DATA_SEED):
    """A table and its labels as the module docstring describes. ``categorical`` maps a column
    name to (levels, hidden groups); ``shares`` gives each part's share of the latent's
    variance ("numeric", each categorical column, "noise")."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_rows, n_numeric), dtype=np.float32)
    numeric = z[:, :n_informative] @ rng.standard_normal(n_informative).astype(np.float32)
    latent = np.sqrt(shares["numeric"]) * _standardised(numeric.astype(np.float64))
    scales = 10 ** rng.uniform(-1, 2, n_numeric)
    offsets = rng.normal(0, 10, n_numeric) * scales
    columns = {f"num_{j:02d}": offsets[j] + scales[j] * z[:, j] for j in range(n_numeric)}
    del z
    for name, (levels, groups) in categorical.items():
        codes = rng.integers(0, levels, n_rows, dtype=np.int32)
        group_of_level = rng.permutation(levels) % groups  # random, balanced groups
        effect = _standardised(rng.standard_normal(groups))
        latent += np.sqrt(shares[name]) * effect[group_of_level][codes]
        names = pd.Index([f"{name}:{i}" for i in range(levels)])  # e.g. "id_200k:123456"
        columns[name] = pd.Categorical.from_codes(codes, categories=names)
    latent += np.sqrt(shares["noise"]) * rng.standard_normal(n_rows)
    edges = np.quantile(latent, np.arange(1, N_CLASSES) / N_CLASSES)
    return pd.DataFrame(columns), np.searchsorted(edges, latent)


def _standardised(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / values.std()


def large_table(n_rows):
    return synthetic_table(
        n_rows, n_numeric=20, n_informative=6, categorical=LARGE_CATEGORICAL,
        shares=LARGE_SHARES,
    )  # fmt: skip


def mixed_table(n_rows=10_000):
    """The mixed table with 20% of its cells missing (text columns: object dtype)."""
    X, y = synthetic_table(
        n_rows, n_numeric=8, n_informative=4, categorical=MIXED_CATEGORICAL, shares=MIXED_SHARES
    )
    rng = np.random.default_rng(DATA_SEED + 1)
    for name in X.columns:
        if name in MIXED_CATEGORICAL:
            column = X[name].astype(object)
            X[name] = column.mask(rng.random(n_rows) < 0.2)
        else:
            above = X[name] > X[name].median()
            X[name] = X[name].mask(rng.random(n_rows) < np.where(above, 0.3, 0.1))
    return X, y


def nursery():
    X, y = load_nursery()
    keep = (y != "recommend").to_numpy()
    return X[keep].reset_index(drop=True), y[keep].to_numpy()


# -- models ----------------------------------------------------------------------------------
def embedder(seed, args, **params):
    """The embedder of every variant: TripletEmbedder with its defaults."""
    return TripletEmbedder(random_state=seed, device=args.device, **params)


def nursery_variants(seed, args) -> dict:
    """name -> (model, is_reference); a reference is preprocessing only (5-NN on its output)."""
    params = {"max_epochs": 3} if args.quick else {}
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    return {
        NATIVE: (embedder(seed, args, **params), False),
        "OneHotEncoder pipeline": (make_pipeline(onehot, embedder(seed, args, **params)), False),
        "TableVectorizer pipeline": (
            make_pipeline(skrub_table_vectorizer(), embedder(seed, args, **params)),
            False,
        ),
        "5-NN on one-hot, standardised (reference)": (
            make_pipeline(onehot, StandardScaler()),
            True,
        ),
        "5-NN on TableVectorizer output (reference)": (skrub_table_vectorizer(), True),
    }


def imputing(numeric, text) -> ColumnTransformer:
    return ColumnTransformer([
        ("numbers", SimpleImputer(strategy="mean", add_indicator=True), numeric),
        ("text", make_pipeline(
            SimpleImputer(strategy="constant", fill_value="missing"),
            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
        ), text),
    ])  # fmt: skip


def missing_variants(seed, args, numeric, text) -> dict:
    params = {"max_epochs": 3} if args.quick else {}
    return {
        NATIVE: (embedder(seed, args, **params), False),
        "SimpleImputer + indicator pipeline": (
            make_pipeline(imputing(numeric, text), embedder(seed, args, **params)),
            False,
        ),
        "5-NN on imputed + indicators, standardised (reference)": (
            make_pipeline(imputing(numeric, text), StandardScaler()),
            True,
        ),
    }


def large_variants(seed, args, numeric) -> dict:
    """name -> (columns it reads, model). Every model is fitted for ``args.epochs`` epochs."""
    categorical = list(LARGE_CATEGORICAL)

    def emb():
        return embedder(seed, args, max_epochs=args.epochs)

    def onehot(columns):
        return ColumnTransformer(
            [("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                                      dtype=np.float32), columns),
             ("numbers", "passthrough", numeric)],
        )  # fmt: skip

    ordinal = ColumnTransformer([
        ("codes", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                 dtype=np.float32), categorical),
        ("numbers", "passthrough", numeric),
    ])  # fmt: skip
    return {
        NATIVE: (numeric + categorical, emb()),
        # An ablation: what the ID adds (its hidden group, if native learns it).
        "native, ID dropped (ablation)": (numeric + ["cat_10", "cat_1k"], emb()),
        "numeric columns only": (numeric, emb()),
        "ordinal codes pipeline": (numeric + categorical, make_pipeline(ordinal, emb())),
        "one-hot pipeline (cat_10, cat_1k; ID dropped)": (
            numeric + categorical,
            make_pipeline(onehot(["cat_10", "cat_1k"]), emb()),
        ),
        "one-hot pipeline (all three)": (
            numeric + categorical,
            make_pipeline(onehot(categorical), emb()),
        ),
    }


def warm_up(model, X, y) -> None:
    """Fit a copy of ``model`` for one epoch on 2,000 rows: the process's one-off costs (torch's
    lazy imports at the first optimizer, ~2 s) then stay out of the timed fit."""
    from sklearn.base import clone

    copy = clone(model)
    emb = copy[-1] if isinstance(copy, Pipeline) else copy
    emb.set_params(max_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        rows = np.random.default_rng(0).permutation(len(y))[:2000]
        copy.fit(X.iloc[rows], y[rows])


def knn_accuracy(Z_train, y_train, Z_test, y_test, metric="euclidean") -> float:
    knn = KNeighborsClassifier(n_neighbors=5, metric=metric).fit(Z_train, y_train)
    return float(knn.score(Z_test, y_test))


def fit_and_score(model, reference, X_train, y_train, X_test, y_test) -> dict:
    """5-NN accuracy on ``X_test`` in the model's space, fit seconds, epochs and the width of
    what the network (or, for a reference, the 5-NN) reads."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. ConvergenceWarning with few epochs
        model.fit(X_train, None if reference else y_train)
    fit_s = time.perf_counter() - start
    Z_train, Z_test = model.transform(X_train), model.transform(X_test)
    if reference:
        accuracy = knn_accuracy(Z_train, y_train, Z_test, y_test)
        return {"accuracy": accuracy, "fit_s": fit_s, "epochs": np.nan, "inputs": Z_train.shape[1]}
    emb = model[-1] if isinstance(model, Pipeline) else model
    accuracy = knn_accuracy(Z_train, y_train, Z_test, y_test, emb.embedding_metric_)
    inputs = emb.module_.inputs.out_features
    return {"accuracy": accuracy, "fit_s": fit_s, "epochs": emb.n_iter_, "inputs": inputs}


def run_in_process(part, X, y, seeds, variants) -> list[dict]:
    rows = []
    warm_up(variants(0)[NATIVE][0], X, y)
    for seed in seeds:
        train, test = train_test_split(
            np.arange(len(y)), test_size=0.3, stratify=y, random_state=seed
        )
        X_train, X_test, y_train, y_test = X.iloc[train], X.iloc[test], y[train], y[test]
        for name, (model, reference) in variants(seed).items():
            scores = fit_and_score(model, reference, X_train, y_train, X_test, y_test)
            rows.append({"part": part, "variant": name, "seed": seed, **scores,
                         "reference": reference, "status": "ok", "note": "",
                         "n_train": len(train), "n_test": len(test)})  # fmt: skip
            epochs = "" if reference else f", {scores['epochs']} epochs"
            print(f"{part} seed {seed} {name}: accuracy {scores['accuracy']:.4f}, fit "
                  f"{scores['fit_s']:.1f} s{epochs}, {scores['inputs']} inputs",
                  flush=True)  # fmt: skip
    return rows


# -- the large table, one process per variant ------------------------------------------------
def _memory_kb(field: str) -> float:
    """A field of /proc/self/status in kB (VmHWM: peak resident set size), or NaN."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def large_child(spec: dict) -> list[dict]:
    """Fit one variant on the large table (in a process of its own); returns its rows."""
    cap = int(spec["memory_cap_gb"] * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    torch.set_num_threads(spec["threads"])
    args = argparse.Namespace(**spec)
    name, seed = spec["variant"], spec["seed"]
    X, y = large_table(spec["rows"])
    numeric = [c for c in X.columns if c.startswith("num_")]
    columns, model = large_variants(seed, args, numeric)[name]
    n_test = min(20_000, len(y) // 5)
    train, test = train_test_split(
        np.arange(len(y)), test_size=n_test, stratify=y, random_state=seed
    )
    sample = np.random.default_rng(seed).permutation(train)[:100_000]
    X_train, y_train = X.iloc[train][columns], y[train]
    X_ref, X_test = X.iloc[sample][columns], X.iloc[test][columns]  # for the 5-NN score
    del X
    data_mb = _memory_kb("VmRSS") / 1024
    base = {"part": "large", "seed": seed, "rows": spec["rows"], "n_train": len(train),
            "n_test": n_test, "n_reference": len(sample), "epochs": spec["epochs"],
            "data_rss_mb": data_mb, "memory_cap_gb": spec["memory_cap_gb"],
            "timeout_s": spec["timeout_s"]}  # fmt: skip
    rows = []
    status, note, accuracy, fit_s, inputs = "ok", "", np.nan, np.nan, np.nan
    start = time.perf_counter()
    try:
        warm_up(model, X_train, y_train)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model.fit(X_train, y_train)
        fit_s = time.perf_counter() - start
        peak_mb = _memory_kb("VmHWM") / 1024  # the fit's peak, before the 5-NN scoring
        del X_train
        emb = model[-1] if isinstance(model, Pipeline) else model
        accuracy = knn_accuracy(model.transform(X_ref), y[sample], model.transform(X_test),
                                y[test], emb.embedding_metric_)  # fmt: skip
        inputs = emb.module_.inputs.out_features
        if name in ("numeric columns only", "ordinal codes pipeline"):  # cheap references
            steps = model[:-1].steps if isinstance(model, Pipeline) else []
            prep = Pipeline([*steps, ("scale", StandardScaler())]).fit(X_ref)
            Z_ref, Z_test = prep.transform(X_ref), prep.transform(X_test)
            rows.append({**base, "variant": f"5-NN on the {name.split(' pipeline')[0]}, "
                         "standardised (reference)", "reference": True, "status": "ok",
                         "accuracy": knn_accuracy(Z_ref, y[sample], Z_test, y[test]),
                         "note": "no embedder", "inputs": Z_test.shape[1]})  # fmt: skip
    except (MemoryError, RuntimeError) as error:  # RuntimeError: torch's allocator
        if isinstance(error, RuntimeError) and not re.search("memory|allocat", str(error)):
            raise
        status = "out of memory"
        note = f"{type(error).__name__} after {time.perf_counter() - start:.0f} s of fit"
        peak_mb = _memory_kb("VmHWM") / 1024
    rows.insert(0, {**base, "variant": name, "accuracy": accuracy, "fit_s": fit_s, "inputs": inputs,
                    "s_per_epoch": fit_s / spec["epochs"], "reference": False,
                    "status": status, "note": note})  # fmt: skip
    for row in rows:
        row["peak_rss_mb"] = peak_mb
    return rows


def run_large(seeds, args) -> list[dict]:
    rows = []
    numeric = [f"num_{j:02d}" for j in range(20)]
    names = list(large_variants(0, args, numeric))
    if args.large_variants:
        names = [n for n in names if any(n.startswith(p) for p in args.large_variants)]
    for seed in seeds:
        for name in names:
            spec = {"variant": name, "seed": seed, "rows": args.rows, "epochs": args.epochs,
                    "memory_cap_gb": args.memory_cap_gb, "threads": args.threads,
                    "device": args.device, "quick": args.quick,
                    "timeout_s": args.timeout}  # fmt: skip
            with tempfile.TemporaryDirectory() as folder:
                out = Path(folder) / "rows.json"
                command = [sys.executable, __file__, "--child", json.dumps(spec), str(out)]
                start = time.perf_counter()
                try:
                    done = subprocess.run(command, timeout=args.timeout, env=_child_env())
                    failure = None if done.returncode == 0 else _exit_reason(done.returncode)
                except subprocess.TimeoutExpired:
                    failure = ("over time", f"stopped after {args.timeout} s")
                if failure is None:
                    found = json.loads(out.read_text())
                else:
                    found = [{"part": "large", "seed": seed, "rows": args.rows,
                              "epochs": args.epochs, "variant": name, "reference": False,
                              "status": failure[0], "note": failure[1],
                              "memory_cap_gb": args.memory_cap_gb,
                              "timeout_s": args.timeout}]  # fmt: skip
            wall = time.perf_counter() - start
            for row in found:
                rows.append(row)
                shown = ", ".join(
                    f"{k} {row[k]:.4g}"
                    for k in ("accuracy", "s_per_epoch", "peak_rss_mb")
                    if isinstance(row.get(k), float) and not np.isnan(row[k])
                )
                print(f"large seed {seed} {row['variant']}: {row['status']} {row['note']} "
                      f"{shown} ({wall:.0f} s in all)", flush=True)  # fmt: skip
    return rows


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parent), env.get("PYTHONPATH", "")]
    ).strip(os.pathsep)
    return env


def _exit_reason(code: int) -> tuple[str, str]:
    if code < 0:
        return "crashed", f"killed by signal {-code} (e.g. the kernel's out-of-memory killer)"
    return "failed", f"exit code {code}"


# -- report ----------------------------------------------------------------------------------
def summarise(runs: pd.DataFrame) -> str:
    sections = []
    titles = {
        "nursery": "## Nursery (8 categorical columns)",
        "missing": "## Mixed table with 20% missing cells",
    }
    for part in ("nursery", "missing"):
        group = runs[runs.part == part]
        if group.empty:
            continue
        table = _means(group)
        lines = [
            titles[part],
            "",
            "| variant | 5-NN accuracy (mean ± std) | fit time (s) | epochs | inputs | seeds |",
            "|---|---|---|---|---|---|",
        ]
        for row in table.itertuples():
            epochs = "" if pd.isna(row.epochs) else f"{row.epochs:.0f}"
            lines.append(
                f"| {row.variant} | {row.accuracy:.4f} ± {row.spread:.4f} | {row.fit_s:.1f} | "
                f"{epochs} | {row.inputs:.0f} | {row.seeds} |"
            )
        lines += ["", "Epochs: mean over seeds (training stops early on a plateau of its loss). "
                  "Inputs: what the network reads (numbers, missing indicators and embedding "
                  "widths), or, for a reference, the 5-NN's features."]  # fmt: skip
        sections.append("\n".join(lines + ["", *_accuracy_checks(part, table)]))
    large = runs[runs.part == "large"]
    if not large.empty:
        sections.append(_summarise_large(large))
    return "\n\n".join(sections)


def _means(group: pd.DataFrame) -> pd.DataFrame:
    table = group.groupby("variant", sort=False).agg(
        accuracy=("accuracy", "mean"), spread=("accuracy", "std"), fit_s=("fit_s", "mean"),
        epochs=("epochs", "mean"), inputs=("inputs", "first"), seeds=("seed", "nunique"),
        reference=("reference", "first"),
    ).reset_index()  # fmt: skip
    table["spread"] = table["spread"].fillna(0.0)
    return table


def _accuracy_checks(part: str, table: pd.DataFrame) -> list[str]:
    by = table.set_index("variant")
    if NATIVE not in by.index or pd.isna(by.loc[NATIVE, "accuracy"]):
        return []
    ours = by.loc[NATIVE, "accuracy"]
    ours_too = by.index.str.startswith(NATIVE)  # native's ablations are no rivals
    rivals = by[~ours_too & ~by.reference.astype(bool) & by.accuracy.notna()]
    checks = ["Target (means over seeds):"]
    if not rivals.empty:
        best = rivals.accuracy.idxmax()
        ok = ours >= rivals.accuracy.max()
        checks.append(
            f"- {part}: native ({ours:.4f}) >= the best pipeline ({best}, "
            f"{rivals.accuracy.max():.4f}): {'met' if ok else 'MISSED'} "
            f"(difference {ours - rivals.accuracy.max():+.4f})"
        )
    references = by[by.reference.astype(bool) & by.accuracy.notna()]
    if not references.empty:
        best = references.accuracy.idxmax()
        checks.append(
            f"- for reference, native vs the best 5-NN without an embedder ({best}): "
            f"{ours:.4f} vs {references.accuracy.max():.4f}"
        )
    return checks


def _summarise_large(large: pd.DataFrame) -> str:
    empty = pd.Series(np.nan, index=large.index)
    large = large.assign(**{k: large.get(k, empty) for k in LARGE_FIELDS})
    rows, epochs = int(large.rows.iloc[0]), int(large.epochs.iloc[0])
    n_test, n_ref = large.n_test.dropna(), large.n_reference.dropna()
    table = large.groupby("variant", sort=False).agg(
        accuracy=("accuracy", "mean"), spread=("accuracy", "std"),
        s_per_epoch=("s_per_epoch", "mean"), peak_rss_mb=("peak_rss_mb", "max"),
        inputs=("inputs", "first"), seeds=("seed", "nunique"),
        reference=("reference", "first"),
        status=("status", lambda s: ", ".join(sorted(set(s)))),
        note=("note", lambda s: "; ".join(dict.fromkeys(s.dropna().astype(str)))),
    ).reset_index()  # fmt: skip
    lines = [
        f"## Synthetic table: {rows:,} rows, 20 numeric + 3 categorical columns "
        "(10, 1,000 and 200,000 levels)",
        "",
        f"{epochs} epoch(s) per fit; time per epoch = fit wall time / epochs (preprocessing "
        "included); peak RSS: the variant's own process at the end of its fit (data "
        "generation and a 1-epoch warm-up on 2,000 rows included, the 5-NN scoring not); "
        "5-NN accuracy: "
        + (
            f"{int(n_test.iloc[0]):,} held-out rows against {int(n_ref.iloc[0]):,} training rows."
            if len(n_test)
            else "none completed."
        ),
        "",
        "| variant | status | 5-NN accuracy | time per epoch (s) | peak RSS (GB) | inputs | seeds "
        "| note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in table.itertuples():
        accuracy = "" if pd.isna(row.accuracy) else f"{row.accuracy:.4f} ± {_nz(row.spread):.4f}"
        per_epoch = "" if pd.isna(row.s_per_epoch) or row.reference else f"{row.s_per_epoch:.1f}"
        peak = "" if pd.isna(row.peak_rss_mb) or row.reference else f"{row.peak_rss_mb / 1024:.2f}"
        inputs = "" if pd.isna(row.inputs) else f"{row.inputs:.0f}"
        lines.append(f"| {row.variant} | {row.status} | {accuracy} | {per_epoch} | {peak} | "
                     f"{inputs} | {row.seeds} | {row.note} |")  # fmt: skip
    by = table.set_index("variant")
    checks = ["", "Targets:"]
    if NATIVE in by.index and by.loc[NATIVE, "status"] == "ok":
        native = by.loc[NATIVE]
        peak_gb = native.peak_rss_mb / 1024
        checks.append(f"- native peak RSS < 4 GB: {'met' if peak_gb < 4 else 'MISSED'} "
                      f"({peak_gb:.2f} GB)")  # fmt: skip
        base = "numeric columns only"
        if base in by.index and by.loc[base, "status"] == "ok":
            ratio = native.s_per_epoch / by.loc[base, "s_per_epoch"]
            checks.append(
                f"- native time per epoch <= 1.5x the numeric columns only: "
                f"{'met' if ratio <= 1.5 else 'MISSED'} ({native.s_per_epoch:.1f} s vs "
                f"{by.loc[base, 's_per_epoch']:.1f} s, {ratio:.2f}x)"
            )
        table_ok = table.assign(accuracy=table.accuracy.where(table.status == "ok"))
        checks += _accuracy_checks("large", table_ok.assign(fit_s=np.nan))[1:]
    else:
        checks.append("- native did not complete: no target can be checked.")
    cap, timeout = large.memory_cap_gb.max(), large.timeout_s.max()
    failed = table[(table.status != "ok")]
    for row in failed.itertuples():
        checks.append(f"- {row.variant}: {row.status} ({row.note}; limits per process: "
                      f"{cap:g} GB of address space, {timeout:.0f} s)")  # fmt: skip
    return "\n".join(lines + checks)


def _nz(value) -> float:
    return 0.0 if pd.isna(value) else float(value)


def plot(runs: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in ("nursery", "missing") if (runs.part == p).any()]
    large = runs[runs.part == "large"]
    n = len(panels) + (3 if not large.empty else 0)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.4), squeeze=False)
    axes = list(axes[0])
    titles = {"nursery": "Nursery", "missing": "20% missing cells"}
    for ax, part in zip(axes, panels, strict=False):
        table = _means(runs[runs.part == part])
        _bars(ax, table, "accuracy", table.spread, labels=True)
        low = table.accuracy.min()
        ax.set_xlim(max(0, low - 0.05), min(1.0, table.accuracy.max() + 0.02))
        ax.set_xlabel("5-NN test accuracy")
        ax.set_title(titles[part])
    if not large.empty:
        empty = pd.Series(np.nan, index=large.index)
        large = large.assign(**{k: large.get(k, empty) for k in LARGE_FIELDS})
        table = large.groupby("variant", sort=False).agg(
            accuracy=("accuracy", "mean"), spread=("accuracy", "std"),
            s_per_epoch=("s_per_epoch", "mean"), peak=("peak_rss_mb", "max"),
            status=("status", "first"), reference=("reference", "first"),
        ).reset_index()  # fmt: skip
        fitted = table[~table.reference.astype(bool)].reset_index(drop=True)
        title = f"{int(large.rows.iloc[0]):,}-row table"
        for ax, rows, column, label in (
            (axes[-3], table, "accuracy", "5-NN test accuracy"),
            (axes[-2], fitted, "s_per_epoch", "time per epoch (s)"),
            (axes[-1], fitted, "peak", "peak RSS (MB)"),
        ):
            _bars(ax, rows, column, rows.spread.fillna(0) if column == "accuracy" else None,
                  labels=ax is not axes[-1])  # fmt: skip
            for i, row in enumerate(rows.itertuples()):
                if row.status != "ok":
                    ax.text(0, i, f" {row.status}", va="center", fontsize=8)
            ax.set_xlabel(label)
            ax.set_title(title)
        base = fitted.s_per_epoch[fitted.variant == "numeric columns only"].dropna()
        if len(base):  # the targets
            axes[-2].axvline(1.5 * base.iloc[0], color="k", ls="--", lw=0.8, label="1.5x numeric")
            axes[-2].legend(fontsize=7, loc="lower right")
        axes[-1].axvline(4096, color="k", ls="--", lw=0.8, label="4 GB")
        axes[-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Native table input (red) vs preprocessing pipelines (grey: no embedder)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _bars(ax, table: pd.DataFrame, column: str, spread, labels: bool) -> None:
    """Horizontal bars of ``table[column]``, one per variant: native red, references grey."""
    colours = [
        "#d62728" if variant.startswith(NATIVE) else "#888888" if reference else "#1f77b4"
        for variant, reference in zip(table.variant, table.reference.astype(bool), strict=True)
    ]
    ax.barh(range(len(table)), table[column].fillna(0), xerr=spread, color=colours)
    ax.set_yticks(range(len(table)), [_wrap(v) for v in table.variant] if labels else
                  [""] * len(table), fontsize=7)  # fmt: skip
    ax.invert_yaxis()


def _wrap(text: str, width: int = 28) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


# -- main ------------------------------------------------------------------------------------
def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        spec, out = json.loads(argv[1]), Path(argv[2])
        out.write_text(json.dumps(large_child(spec)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=PARTS, choices=PARTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--large-seeds", nargs="+", type=int, default=[0],
                        help="seeds of the large part (default: 0 only, it is long)")  # fmt: skip
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the large table")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit, large table")
    parser.add_argument("--large-variants", nargs="+", metavar="PREFIX",
                        help="only the large-table variants whose names start so")  # fmt: skip
    parser.add_argument("--memory-cap-gb", type=float, default=8.0,
                        help="address-space limit of each large-table process")  # fmt: skip
    parser.add_argument("--timeout", type=int, default=1800,
                        help="wall-clock limit of each large-table process (s)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: seed 0, 3 epochs on the small tables, a 20,000-row "
                        "large table and 1 epoch")  # fmt: skip
    parser.add_argument("--out", help="file stem under benchmarks/results (default: tabular, "
                        "tabular_quick with --quick)")  # fmt: skip
    parser.add_argument("--append", action="store_true",
                        help="keep an earlier run's rows of the parts not run now")  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.rows, args.epochs = [0], min(args.rows, 20_000), 1
        args.large_seeds, args.timeout = [0], min(args.timeout, 300)
        args.memory_cap_gb = min(args.memory_cap_gb, 3.0)  # one-hot fails sooner
    if "nursery" in args.parts:
        skrub_table_vectorizer()  # fail now, not after the other parts, when skrub is missing
    torch.set_num_threads(args.threads)
    stem = args.out or "tabular" + ("_quick" if args.quick else "")
    rows = []
    if args.append and (RESULTS / f"{stem}.csv").exists():
        earlier = pd.read_csv(RESULTS / f"{stem}.csv")
        rows = earlier[~earlier.part.isin(args.parts)].to_dict("records")
    for part in args.parts:
        if part == "nursery":
            X, y = nursery()
            rows += run_in_process(
                part, X, y, args.seeds, functools.partial(nursery_variants, args=args)
            )
        elif part == "missing":
            X, y = mixed_table()
            numeric = [c for c in X.columns if c.startswith("num_")]
            text = [c for c in X.columns if c not in numeric]
            rows += run_in_process(
                part, X, y, args.seeds,
                functools.partial(missing_variants, args=args, numeric=numeric, text=text),
            )  # fmt: skip
        else:
            rows += run_large(args.large_seeds, args)
    runs = pd.DataFrame(rows)
    runs["part"] = pd.Categorical(runs.part, PARTS)
    runs = runs.sort_values(["part", "seed"], kind="stable")
    RESULTS.mkdir(exist_ok=True)
    runs.to_csv(RESULTS / f"{stem}.csv", index=False)
    command = "python benchmarks/tabular.py " + " ".join(argv)
    header = (
        f"# Native table input vs preprocessing pipelines\n\n"
        f"`{command.strip()}` on {date.today()}: {platform.processor() or platform.machine()}, "
        f"{args.threads} torch threads, torch {torch.__version__}, scikit-learn "
        f"{sklearn.__version__}, pandas {pd.__version__}, sk_dml {sk_dml.__version__}. Every "
        "variant trains TripletEmbedder (defaults, random_state=seed) on what it is given; "
        "5-NN accuracy in its embedding of a held-out stratified split. Timings come from a "
        "shared 2-core machine: compare them within this file."
        + (" `--quick`: a smoke run, not a measurement." if args.quick else "")
        + (" `--append` kept the rows of other parts from an earlier run." if args.append else "")
        + "\n\n"
    )
    (RESULTS / f"{stem}.md").write_text(header + summarise(runs) + "\n")
    plot(runs, RESULTS / f"{stem}.png")
    print(summarise(runs))


if __name__ == "__main__":
    main()
