"""What an error means for the exit status: bad input (2) or an internal error (1).

Input is checked where it enters: a file, a column, an option's value, a model file. A problem
found there is raised as :class:`CLIError`, whose message names the file, column or option. A
table is checked by encoding it as the embedder does before it trains on it or embeds it
(:func:`sk_dml.cli.model.encode`), so the embedder's own errors for a bad table (a column of an
unsupported type, infinite values, ...) are bad input too; so are its errors for a bad
continuous target or bad labelled pairs, checked the same way before training. Any other
exception is an internal error, wherever it comes from (a ``ValueError`` deep inside training
included): the input passed its checks, so the failure is not the user's to fix.
"""

from __future__ import annotations

import sys

PROG = "sk-dml"
EXIT_INTERNAL = 1
EXIT_INPUT = 2
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """A problem with the command's input, reported as one line with exit status 2."""


def one_line(text) -> str:
    """``text`` with all runs of whitespace, newlines included, as single spaces."""
    return " ".join(str(text).split())


def names(columns, limit: int = 10) -> str:
    """A short readable list of column names."""
    shown = ", ".join(repr(c) for c in columns[:limit])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > limit else "")


def message(error: BaseException) -> str:
    """The one-line text of an error (a KeyError's text is its key's repr)."""
    if isinstance(error, KeyError) and error.args:
        return f"missing key {one_line(error.args[0])!r}"
    return one_line(error) or type(error).__name__


def report(error: BaseException) -> int:
    """Print ``error`` as one line on stderr and return the exit status it means."""
    if isinstance(error, KeyboardInterrupt):
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if isinstance(error, CLIError):
        print(f"{PROG}: error: {message(error)}", file=sys.stderr)
        return EXIT_INPUT
    print(
        f"{PROG}: internal error: {type(error).__name__}: {message(error)} "
        "(set SK_DML_DEBUG=1 to see the traceback)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def warning_printer():
    """A ``warnings.showwarning`` that prints each distinct warning once, as one line."""
    shown = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = one_line(message)
        if text not in shown:
            shown.add(text)
            print(f"{PROG}: warning: {text}", file=sys.stderr)

    return show
