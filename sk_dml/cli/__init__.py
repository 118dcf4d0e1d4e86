"""The ``sk-dml`` command (also ``python -m sk_dml``).

Subcommands
-----------
demo
    Train an embedder with every loss of class labels on built-in data (digits, letter);
    compare 5-NN accuracies.
fit
    Train an embedder on a CSV or Parquet table (numeric, text and true/false columns, empty
    cells allowed) and save it; ``--categorical``, ``--exclude`` and ``--key`` name columns.
    It learns from the ``--target`` column (class labels, or a continuous target with
    ``--loss log_ratio``) or from a ``--pairs`` file of labelled pairs of the table's rows,
    named by the ``--key`` column's values or by row number (a :class:`~sk_dml.PairEmbedder`).
transform
    Embed a table with a saved model, after the key column when there is one.
evaluate
    Retrieval scores and cross-validated 5-NN accuracy of a table in the learned space
    (``--reference``: its rows query the rows of another table); 5-NN regression R^2 for a
    model of a continuous target; ROC AUC of labelled pairs with ``--pairs``.
plot
    2-D PCA scatter of a table's embedding, coloured by class.
link
    Learn a distance between the records of two tables (or one, to deduplicate) from known
    links (a :class:`~sk_dml.linking.Linker`), write each record's candidate matches with a
    calibrated probability, and optionally save the linker.
match
    A saved linker's candidate matches for two tables (or within one).
explain
    Each input column's share of the learned distance between paired rows.
label
    Show pairs of records side by side and record y / n / unsure answers to a pairs file,
    resumable (active labelling).

Exit status
-----------
0 on success. 2 for bad input, found where it enters: a missing, unreadable or unwritable file,
a missing or bad column (whatever the embedder's checks of a table refuse included), a bad
target or pairs file (the embedder's checks of a target or of labelled pairs included), a bad
option or option value, a value that is not a number, a model file that is not an sk_dml model
or was written by an earlier sk-dml; one line ``sk-dml: error: ...`` on stderr, and no output
file is written. 1 for an internal error, anything else that goes wrong (a ``ValueError`` raised
inside training included): one line ``sk-dml: internal error: ...``, and no output file either.
130 when interrupted. With ``SK_DML_DEBUG=1`` in the environment every error shows its full
traceback instead.

Modules: :mod:`.tables` (files in and out), :mod:`.columns` (the target, feature, key, excluded
and categorical columns), :mod:`.pairs` (a pairs file's pairs as row numbers of a table),
:mod:`.model` (a saved model, and tables, targets and pairs into the embedder),
:mod:`.figures`, :mod:`.commands` (one module and one handler per subcommand, what they share
in :mod:`.commands.common`), :mod:`.parser` (the options, their defaults read from the
estimators) and :mod:`.errors` (what each error means for the exit status). The commands use
sk_dml's public API only.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings

from .errors import CLIError, report, warning_printer
from .parser import build_parser, chosen_command, chosen_loss

__all__ = [
    "CLIError",
    "Model",
    "build_parser",
    "chosen_command",
    "chosen_loss",
    "main",
    "read_table",
    "write_table",
]


# Imported on first use: they import torch, which 'sk-dml --help' does without.
_LAZY = {"Model": ".model", "read_table": ".tables", "write_table": ".tables"}


def __getattr__(name):
    """A lazy name, or a submodule (``cli.commands``), imported on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    if not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    """Run ``sk-dml`` with the arguments ``argv`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 2 for bad input or usage, 1 for an internal error,
        130 when interrupted.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = os.environ.get("SK_DML_DEBUG") == "1"
    try:
        with warnings.catch_warnings():
            warnings.showwarning = warning_printer()
            try:
                command = chosen_command(argv)
                loss = chosen_loss(argv) if command == "fit" else None
                args = build_parser(loss, command).parse_args(argv)
            except SystemExit as done:  # --help and --version
                return 0 if done.code is None else int(done.code)
            args.handler(args)
    except KeyboardInterrupt as interrupt:
        return report(interrupt)
    except Exception as error:
        if debug:
            raise
        return report(error)
    return 0
