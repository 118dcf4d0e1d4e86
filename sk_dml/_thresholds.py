"""How a pair classifier's threshold is chosen from scored pairs: metric-learn's calibration
strategies and a target precision, for
:meth:`sk_dml.tuple_embedders.PairEmbedder.calibrate_threshold`."""

from __future__ import annotations

import inspect
import math
from numbers import Real

import numpy as np
from sklearn.metrics import roc_curve

_STRATEGIES = ("accuracy", "f_beta", "max_tpr", "max_tnr", "precision")


def check_calibration(strategy="accuracy", min_rate=None, beta=1.0, min_precision=None) -> dict:
    """calibrate_threshold's arguments, checked: a ValueError naming a wrong one."""
    if not isinstance(strategy, str) or strategy not in _STRATEGIES:
        raise ValueError(
            f"strategy must be one of {', '.join(map(repr, _STRATEGIES))}; got {strategy!r}."
        )
    if strategy in ("max_tpr", "max_tnr") and not (_is_real(min_rate) and 0 <= min_rate <= 1):
        raise ValueError(f"strategy={strategy!r} needs min_rate in [0, 1], got {min_rate!r}.")
    if strategy == "f_beta" and not (_is_real(beta) and math.isfinite(beta)):
        raise ValueError(f"strategy='f_beta' needs beta, a real number; got {beta!r}.")
    if strategy == "precision" and not (_is_real(min_precision) and 0 < min_precision <= 1):
        raise ValueError(
            f"strategy='precision' needs min_precision in (0, 1], got {min_precision!r}."
        )
    return {
        "strategy": strategy,
        "min_rate": min_rate,
        "beta": beta,
        "min_precision": min_precision,
    }


def check_calibration_params(params) -> dict:
    """fit's ``calibration_params``: None, or a dict of calibrate_threshold's keyword
    arguments, checked before training."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ValueError(
            f"calibration_params must be a dict of calibrate_threshold's keyword arguments or "
            f"None, got {type(params).__name__}."
        )
    unknown = sorted(set(params) - set(inspect.signature(check_calibration).parameters))
    if unknown:
        raise ValueError(
            f"calibration_params takes strategy, min_rate, beta and min_precision (those of "
            f"calibrate_threshold); got {', '.join(map(repr, unknown))}."
        )
    return check_calibration(**params)


def _is_real(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def best_threshold(scores, alike, *, strategy, min_rate, beta, min_precision) -> float:
    """The threshold on ``scores`` that ``strategy`` picks for the labels ``alike``, among
    scikit-learn's ``roc_curve`` thresholds (infinity first, then each distinct score, in
    decreasing order), from the counts of pairs each one predicts alike."""
    fpr, tpr, thresholds = roc_curve(alike, scores, drop_intermediate=False)
    n_alike = np.count_nonzero(alike)
    n_unlike = len(alike) - n_alike
    tp, fp = np.rint(tpr * n_alike), np.rint(fpr * n_unlike)  # the counts, exactly
    tpr, tnr = tp / n_alike, (n_unlike - fp) / n_unlike
    if strategy == "accuracy":
        best = np.argmax(tp + n_unlike - fp)  # the first, highest, threshold among equals
    elif strategy == "f_beta":
        beta2 = beta**2
        with np.errstate(divide="ignore", invalid="ignore"):  # no pair alike, beta 0: 0/0
            f_beta = np.nan_to_num((1 + beta2) * tp / (beta2 * n_alike + (tp + fp)))
        best = np.flatnonzero(f_beta == f_beta.max())[-1]
    elif strategy == "max_tpr":
        allowed = tnr >= min_rate
        best = np.flatnonzero(allowed & (tpr == tpr[allowed].max()))[0]
    elif strategy == "max_tnr":
        allowed = tpr >= min_rate
        best = np.flatnonzero(allowed & (tnr == tnr[allowed].max()))[-1]
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.nan_to_num(tp / (tp + fp))
        reached = np.flatnonzero(precision >= min_precision)
        if len(reached) == 0:
            raise ValueError(
                f"No threshold reaches precision {min_precision} on these pairs (the highest "
                f"is {precision.max():.4f}); lower min_precision."
            )
        best = reached[-1]  # the lowest threshold: the most recall at that precision
    return float(thresholds[best])
