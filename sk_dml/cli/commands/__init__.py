"""The commands, one module and one handler each: :mod:`.demo`, :mod:`.fit`,
:mod:`.transform`, :mod:`.evaluate`, :mod:`.plot`, :mod:`.link`, :mod:`.explain` and
:mod:`.label` (``run_demo``, ``run_fit``, ...; explain's and label's modules add their own
subparsers), with what they share in :mod:`.common`.

A handler takes the parsed arguments, checks its input where it enters (raising
:class:`~sk_dml.cli.errors.CLIError`) and then does the work.
"""

from __future__ import annotations

from .common import N_NEIGHBORS
from .demo import run_demo
from .evaluate import N_FOLDS, run_evaluate
from .explain import run_explain
from .fit import DEFAULT_LOSS, DEFAULT_PAIRS_LOSS, run_fit
from .label import run_label
from .link import run_link, run_match
from .plot import run_plot
from .transform import run_transform

__all__ = [
    "DEFAULT_LOSS",
    "DEFAULT_PAIRS_LOSS",
    "N_FOLDS",
    "N_NEIGHBORS",
    "run_demo",
    "run_evaluate",
    "run_explain",
    "run_fit",
    "run_label",
    "run_link",
    "run_match",
    "run_plot",
    "run_transform",
]
