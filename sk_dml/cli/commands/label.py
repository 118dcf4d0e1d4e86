"""``sk-dml label``: label pairs of a table's records in the terminal, the pairs proposed by
active learning (:class:`sk_dml.active.PairLabeller`).

Each answer is appended to the pairs file and flushed at once, so an interrupted session loses
none; a later run reads the file back, learns from it and proposes only pairs not answered.
The pairs file is what ``fit --pairs`` takes (the two records' key values, then 1 or 0);
"unsure" answers go to a file beside it (``NAME.unsure.csv``), so they are not proposed again.
"""

from __future__ import annotations

import csv
import os
import warnings
from pathlib import Path

import pandas as pd

from ...active import PairLabeller
from ...tuple_embedders import PairEmbedder
from ..columns import add_column_list_option
from ..errors import CLIError
from ..model import input_errors
from ..tables import check_output, read_table

HEADER = ["left", "right", "label"]
ANSWERS = {"y": 1, "yes": 1, "n": 0, "no": 0, "u": None, "unsure": None}
# The entity-resolution setting of the user guide, refitted briefly after each batch; each
# refit keeps the best network on held-out answers once there are enough (early stopping).
SETTING = {"n_components": 256, "normalize": True}
WIDTH = 32  # characters of a value shown


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


_positive.__name__ = "positive integer"  # how argparse names the type in its errors


def _unsure_path(output: Path) -> Path:
    return output.with_name(output.name[: -len(".csv")] + ".unsure.csv")


def _answered(path: Path, ids: dict) -> tuple[list, list]:
    """The pairs (key values) and labels (1, 0, None) already in the file ``path``."""
    if not path.exists() or path.stat().st_size == 0:
        return [], []
    table = read_table(path)
    if list(table.columns) != HEADER:
        raise CLIError(f"{path}: not a pairs file of 'sk-dml label' (columns {HEADER})")
    pairs, labels = [], []
    for left, right, label in table.itertuples(index=False):
        try:
            pairs.append((ids[str(left)], ids[str(right)]))
        except KeyError as error:
            raise CLIError(f"{path}: {error.args[0]!r} is not a key of the table") from None
        labels.append(None if str(label) == "unsure" else int(label))
    return pairs, labels


def _show(frame: pd.DataFrame, left, right, key: str, distance: float, number: int) -> None:
    """The two records side by side; '*' marks the fields that differ."""
    rows = frame.loc[[left, right]]
    print(f"\npair {number} (distance {distance:.4g})")
    print(f"  {'':<20} {str(left)[:WIDTH]:<{WIDTH}} {str(right)[:WIDTH]}")
    for column in rows.columns:
        a, b = rows[column].iloc[0], rows[column].iloc[1]
        a, b = ("" if pd.isna(v) else str(v) for v in (a, b))
        mark = " " if a == b else "*"
        print(f"{mark} {str(column)[:20]:<20} {a[:WIDTH]:<{WIDTH}} {b[:WIDTH]}")


def _ask() -> str:
    """One answer from stdin: y, n, u or q (q at the end of the input)."""
    while True:
        try:
            answer = input("same record? [y]es [n]o [u]nsure [q]uit: ").strip().lower()
        except EOFError:
            return "q"
        if answer in ANSWERS or answer in ("q", "quit"):
            return answer[0]
        print("please answer y, n, u or q")


def run_label(args) -> None:
    """Propose pairs, show them, record the answers; until q or the end of the input."""
    output = check_output(args.output)
    if not output.name.lower().endswith(".csv"):
        raise CLIError(f"{output}: the pairs file of 'label' is a .csv file (appended to)")
    frame = read_table(args.data)
    if args.key not in frame.columns:
        raise CLIError(f"{args.data}: no key column {args.key!r}")
    features = frame.drop(columns=[c for c in args.exclude if c in frame.columns])
    embedder = PairEmbedder(
        max_epochs=args.epochs,
        random_state=args.random_state,
        text_features=args.text or None,
        **SETTING,
    )
    with input_errors(args.data):
        labeller = PairLabeller(embedder, features, key=args.key, random_state=args.random_state)
    shown = frame.set_index(args.key, drop=False)
    ids = {str(v): v for v in frame[args.key]}
    pairs, labels = _answered(output, ids)
    more, unsure = _answered(_unsure_path(output), ids)
    if pairs or more:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            labeller.teach(pairs + more, labels + unsure)
        print(f"read {len(pairs)} answer(s) from {output}, {len(more)} unsure")
    files = {}
    try:
        for path in (output, _unsure_path(output)):
            new = not path.exists() or path.stat().st_size == 0
            files[path] = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115
            if new:
                csv.writer(files[path]).writerow(HEADER)
        number, done = len(labeller.labels_), False
        while not done:
            batch = labeller.suggest(args.batch)
            if not len(batch):
                print("no unlabelled candidate pair left")
                break
            answered, answers = [], []
            for left, right, distance in batch.itertuples(index=False):
                number += 1
                _show(shown, left, right, args.key, distance, number)
                answer = _ask()
                if answer == "q":
                    done = True
                    break
                label = ANSWERS[answer]
                path = output if label is not None else _unsure_path(output)
                csv.writer(files[path]).writerow(
                    [left, right, "unsure" if label is None else label]
                )
                files[path].flush()
                os.fsync(files[path].fileno())
                answered.append((left, right))
                answers.append(label)
            if answered:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    labeller.teach(answered, answers)
    finally:
        for handle in files.values():
            handle.close()
    known = labeller.labels_ >= 0
    print(
        f"\n{int(known.sum())} answer(s) in {output} ({int(labeller.labels_[known].sum())} "
        f"alike); train on them with: sk-dml fit {args.data} --pairs {output} --key {args.key} "
        "-o MODEL"
    )


def add_parser(commands_) -> None:
    """The ``label`` subcommand, on the subparsers ``commands_``."""
    label = commands_.add_parser(
        "label",
        help="label pairs of records in the terminal, the pairs chosen by active learning",
        description="Show pairs of DATA's records side by side and record whether they are "
        "the same entity: y(es), n(o), u(nsure), q(uit). The pairs are proposed by active "
        "learning: first near and mid-distance pairs by TF-IDF and standardised numbers; once "
        "both kinds of answer are in, a PairEmbedder is refitted after each batch and the "
        "pairs proposed are those nearest its threshold. Each answer is appended to OUT at "
        "once (rerun the command to resume: pairs answered are not asked again); OUT is a "
        "pairs file for 'fit --pairs' (with the same --key). Unsure answers go to OUT's name "
        "with .unsure.csv.",
    )
    label.add_argument("data", metavar="DATA", help="CSV or Parquet table of the records")
    label.add_argument(
        "--key", required=True, metavar="COL", help="the column naming the records (unique)"
    )
    label.add_argument("-o", "--output", required=True, metavar="OUT", help="pairs file (.csv)")
    add_column_list_option(
        label,
        "--exclude",
        "columns to leave out of the features (shown all the same); repeatable",
    )
    add_column_list_option(
        label,
        "--text",
        "columns to read as text (character n-grams); repeatable",
    )
    label.add_argument(
        "--batch",
        type=_positive,
        default=10,
        metavar="N",
        help="pairs between refits (default: 10)",
    )
    label.add_argument(
        "--epochs",
        type=_positive,
        default=20,
        metavar="N",
        help="epochs of each refit (default: 20)",
    )
    label.add_argument("--random-state", type=int, metavar="N", help="seed, for reproducibility")
    label.set_defaults(handler=run_label)
