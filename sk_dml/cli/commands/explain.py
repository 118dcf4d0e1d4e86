"""``sk-dml explain``: each input column's share of the learned distance of pairs of rows
(:func:`sk_dml.explain.explain_distance`)."""

from __future__ import annotations

import pandas as pd

from ..errors import CLIError
from ..model import Model, input_errors
from ..pairs import _KeyLookup, _row_numbers
from ..tables import check_output, read_table, table_format, write_table


def _ids(text: str) -> pd.Series:
    """Comma-separated row ids, as numbers when they all are."""
    values = pd.Series([v.strip() for v in text.split(",")])
    numbers = pd.to_numeric(values, errors="coerce")
    return numbers if numbers.notna().all() else values


def _rows_by_id(args, model: Model) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """LEFT and RIGHT as row ids of the --data table: values of the key column (--key, else
    the model's), or 0-based row numbers; and the ids, to write first."""
    frame = read_table(args.data)
    key = args.key or model.key
    ids = {}
    for side, text in (("left", args.left), ("right", args.right)):
        values = _ids(text).rename(side)
        if key is None:
            ids[side] = _row_numbers(values, len(frame), side.upper(), args.data)
        else:
            if key not in frame.columns:
                raise CLIError(f"{args.data}: no key column {key!r}")
            ids[side] = _KeyLookup(frame[key], key, args.data).rows(values, side.upper())
    if len(ids["left"]) != len(ids["right"]):
        raise CLIError(
            f"LEFT names {len(ids['left'])} row(s) and RIGHT {len(ids['right'])}; give as many"
        )
    named = pd.DataFrame({"left": _ids(args.left), "right": _ids(args.right)})
    features = model.features(frame, args.data)
    return features.iloc[ids["left"]], features.iloc[ids["right"]], named


def _tables(args, model: Model) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """LEFT and RIGHT as tables of rows, paired in order."""
    left = model.features(read_table(args.left), args.left)
    right = model.features(read_table(args.right), args.right)
    if len(left) != len(right):
        raise CLIError(
            f"{args.left} has {len(left)} rows and {args.right} {len(right)}; the pairs are "
            "their rows in order, so they need as many"
        )
    return left, right, pd.DataFrame(index=range(len(left)))


def run_explain(args) -> None:
    """Print (and with -o write) each input column's share of each pair's distance."""
    if args.output:
        table_format(args.output)
        check_output(args.output)
    model = Model.load(args.model)
    left, right, named = _rows_by_id(args, model) if args.data else _tables(args, model)
    with input_errors(args.data or args.left):
        explained = model.estimator.explain_distance(left, right)
    explained = pd.concat([named.reset_index(drop=True), explained], axis=1)
    print(model.describe())
    print(explained.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.output:
        write_table(explained, args.output)
        print(f"wrote {len(explained)} explanation(s) to {args.output}")


def add_parser(commands_) -> None:
    """The ``explain`` subcommand, on the subparsers ``commands_``."""
    table = "CSV (.csv, .csv.gz) or Parquet (.parquet, .pq) table"
    explain = commands_.add_parser(
        "explain",
        help="each column's share of the learned distance of pairs of rows",
        description="Split the learned distance of each pair of rows into one share per input "
        "column (a number with its missing indicator, a category's embedding, a text column's "
        "n-grams), by integrated gradients along the straight path between the two rows' "
        "inputs to the network: the shares add up to the distance, and the completeness "
        "error |sum of shares - distance| is printed with them. The pairs are the rows of "
        "LEFT and RIGHT in order, or, with --data, the rows LEFT and RIGHT name.",
    )
    explain.add_argument("model", metavar="MODEL", help="a model file written by 'fit'")
    explain.add_argument(
        "left", metavar="LEFT", help=f"a {table}; with --data, row ids (comma-separated)"
    )
    explain.add_argument(
        "right", metavar="RIGHT", help=f"a {table}; with --data, row ids (comma-separated)"
    )
    explain.add_argument(
        "--data",
        metavar="DATA",
        help=f"a {table} whose rows LEFT and RIGHT name by the values of the key column "
        "(--key, else the model's), or else by 0-based row numbers",
    )
    explain.add_argument("--key", metavar="COL", help="with --data: the key column of DATA")
    explain.add_argument(
        "-o", "--output", metavar="OUT", help=f"also write the shares as a {table}"
    )
    explain.set_defaults(handler=run_explain)
