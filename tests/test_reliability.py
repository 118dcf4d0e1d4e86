"""Bad input, training that goes wrong, determinism and concurrency."""

import hashlib
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from conftest import EMBEDDERS, LOSSES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist
from sklearn.datasets import load_digits, load_wine
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from sk_dml import (
    ContrastiveEmbedder,
    LiftedStructEmbedder,
    NPairEmbedder,
    ProxyAnchorEmbedder,
    TripletEmbedder,
    nets,
)

QUICK = dict(max_epochs=3, hidden_layer_sizes=(16,), n_components=4, batch_size=16)
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y


def _with(X, row, col, value):
    X = X.copy()
    X[row, col] = value
    return X


# --------------------------------------------------------------------------------- bad input
# (description, X transform, y transform, exception, message) — scikit-learn's wording where
# scikit-learn validates.
BAD_FIT_INPUT = [
    ("inf in X", lambda X: _with(X, 0, 0, np.inf), None, ValueError, "Input X contains inf"),
    ("empty X", lambda X: X[:0], lambda y: y[:0], ValueError, "0 sample"),
    ("1-D X", lambda X: X[:, 0], None, ValueError, "Expected 2D array, got 1D array"),
    ("3-D X", lambda X: X[:, :, None], None, ValueError, "dim 3"),
    ("sparse X", sp.csr_matrix, None, TypeError, "dense data is required"),
    ("strings in X", lambda X: X.astype(str).astype(object) + "x", None, ValueError, "convert"),
    ("lengths differ", None, lambda y: y[:-5], ValueError, "inconsistent numbers of samples"),
    ("NaN in y", None, lambda y: np.where(np.arange(len(y)) == 4, np.nan, y), ValueError, "NaN"),
    ("one class", None, lambda y: np.zeros_like(y), ValueError, "at least 2 classes"),
    ("all singletons", None, lambda y: np.arange(len(y)), ValueError, "no positive pair"),
    ("continuous y", None, lambda y: y + 0.5 * np.arange(len(y)), ValueError, "Unknown label"),
]


@pytest.mark.parametrize(
    "case,fx,fy,error,message", BAD_FIT_INPUT, ids=[c[0] for c in BAD_FIT_INPUT]
)
def test_bad_training_input_is_refused_clearly(wine, case, fx, fy, error, message):
    X, y = wine
    X = fx(X) if fx else X
    y = fy(y) if fy else y
    with pytest.raises(error, match=message):
        TripletEmbedder(**QUICK).fit(X, y)


BAD_PARAMS = [
    (dict(margin=-0.1), r"'margin' parameter.*range \[0.0, inf\)"),
    (dict(batch_size=1), "'batch_size' parameter"),
    (dict(mining="hardest"), "'mining' parameter"),
    (dict(distance="mahalanobis"), "'distance' parameter"),
    (dict(learning_rate=0), "'learning_rate' parameter"),
    (dict(hidden_layer_sizes=(16, -2)), "hidden_layer_sizes must be positive"),
]


@pytest.mark.parametrize("params,message", BAD_PARAMS, ids=[str(p[0]) for p in BAD_PARAMS])
def test_invalid_parameters_name_the_parameter(wine, params, message):
    X, y = wine
    with pytest.raises(ValueError, match=message):
        TripletEmbedder(**{**QUICK, **params}).fit(X, y)


def test_invalid_parameter_is_scikit_learns_error(wine):
    X, y = wine
    with pytest.raises(InvalidParameterError):
        LiftedStructEmbedder(variant="soft").fit(X, y)


def test_batch_layout_must_be_consistent(wine):
    X, y = wine
    with pytest.raises(ValueError, match="multiple of samples_per_class"):
        TripletEmbedder(**{**QUICK, "batch_size": 18, "samples_per_class": 4}).fit(X, y)
    with pytest.raises(ValueError, match="larger than every class"):
        TripletEmbedder(**{**QUICK, "batch_size": 200, "samples_per_class": 100}).fit(X, y)


def test_a_class_with_one_row_among_others_works(wine):
    X, y = wine
    y = y.copy()
    y[0] = 7  # a class of its own
    # Trained on every row: the default hold-out of 10% of the rows (random, since a class of
    # one row cannot be stratified) would sometimes take that row out of training.
    with pytest.warns(UserWarning, match="fewer than samples_per_class"):
        emb = ContrastiveEmbedder(early_stopping=False, **QUICK).fit(X, y)
    assert np.isfinite(emb.transform(X)).all()


def test_transform_input_must_match_fit(wine):
    X, y = wine
    emb = TripletEmbedder(**QUICK).fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features, but TripletEmbedder is expecting 13"):
        emb.transform(X[:, :5])
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(13)])
    fitted_on_frame = TripletEmbedder(**QUICK).fit(frame, y)
    with pytest.raises(ValueError, match="feature names should match"):
        fitted_on_frame.transform(frame.rename(columns={"c0": "other"}))
    with pytest.raises(ValueError, match="Input X contains inf"):
        emb.transform(_with(X, 1, 1, -np.inf))
    with pytest.raises(NotFittedError):
        TripletEmbedder().transform(X)


def test_missing_cuda_is_a_clear_error(wine):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    X, y = wine
    with pytest.raises(ValueError, match="CUDA is not available"):
        TripletEmbedder(device="cuda", **QUICK).fit(X, y)


def test_a_failed_fit_leaves_the_previous_model_intact(wine):
    X, y = wine
    emb = NPairEmbedder(random_state=0, **QUICK).fit(X, y)
    before = emb.transform(X)
    with pytest.raises(ValueError):
        emb.fit(X, np.zeros_like(y))
    with pytest.raises(ValueError):
        emb.fit(_with(X, 0, 0, np.inf), y)
    np.testing.assert_array_equal(emb.transform(X), before)
    assert emb.n_features_in_ == 13


# ------------------------------------------------------------------ training that goes wrong
def test_divergence_stops_with_finite_weights_and_a_warning(wine):
    X, y = wine
    emb = ContrastiveEmbedder(
        normalize=False, learning_rate=1e30, random_state=0, **{**QUICK, "max_epochs": 20}
    )
    with pytest.warns(RuntimeWarning, match="diverged.*Lower learning_rate"):
        emb.fit(X, y)
    Z = emb.transform(X)
    assert np.isfinite(Z).all()
    assert all(torch.isfinite(p).all() for p in emb.module_.parameters())


# A learning rate so high that the network dies (every row maps to one point) while no loss or
# gradient becomes non-finite (normalised outputs keep every loss finite).
COLLAPSING = dict(
    learning_rate=1e6,
    learning_rate_schedule="constant",
    max_epochs=5,
    random_state=0,
    normalize=True,
)


def _degenerate(Z) -> bool:
    """The oracle: every row at the same point (scipy's pairwise distances), or non-finite."""
    return not np.isfinite(Z).all() or pdist(Z).max() <= 1e-6 * max(np.abs(Z).max(), 1.0)


@pytest.mark.parametrize("early_stopping", [False, True], ids=["loss", "early_stopping"])
@pytest.mark.parametrize("cls", EMBEDDERS, ids=LOSSES)
def test_a_collapsed_embedding_is_never_returned_silently(wine, cls, early_stopping):
    X, y = wine
    params = {**COLLAPSING, "early_stopping": early_stopping}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emb = cls(**params).fit(X, y)
    warned = [
        str(w.message)
        for w in caught
        if w.category is RuntimeWarning
        and "collapsed" in str(w.message)
        and "Lower learning_rate" in str(w.message)
    ]
    # Without a validation score the last epoch is returned, and it collapsed; with one, the
    # best-scoring epoch is, and it may be healthy (then nothing needs saying).
    assert warned or (early_stopping and not _degenerate(emb.transform(X)))
    # The weights returned are the best epoch's: those of a fit that stops after that epoch.
    curve = np.array(emb.validation_scores_) if early_stopping else -np.array(emb.loss_curve_)
    best = int(np.argmax(curve)) + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        shorter = cls(**{**params, "max_epochs": best}).fit(X, y)
    np.testing.assert_array_equal(emb.transform(X), shorter.transform(X))


@pytest.mark.parametrize("cls", EMBEDDERS, ids=LOSSES)
def test_healthy_fits_and_identical_rows_raise_no_collapse_alarm(wine, cls):
    X, y = wine
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        Z = cls(random_state=0, **QUICK).fit(X, y).transform(X)
        # Rows that are all the same may well map to one point: that is no collapse.
        cls(random_state=0, **QUICK).fit(np.ones_like(X), y)
    assert pdist(Z).max() > 1e-2 * np.abs(Z).max()  # the oracle: rows really are apart


class _InterruptAfter(torch.nn.Module):
    """A network that raises KeyboardInterrupt (as Ctrl-C would) on its n-th training call."""

    def __init__(self, n_features, calls):
        super().__init__()
        self.linear = torch.nn.Linear(n_features, 4)
        self.calls, self.seen = calls, 0

    def forward(self, x):
        if self.training:
            self.seen += 1
            if self.seen == self.calls:
                raise KeyboardInterrupt
        return self.linear(x)


def test_keyboard_interrupt_keeps_a_usable_model(wine):
    X, y = wine
    emb = TripletEmbedder(module=lambda d: _InterruptAfter(d, calls=25), **QUICK)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        emb.fit(X, y)
    assert emb.n_iter_ >= 1
    assert np.isfinite(emb.transform(X)).all()
    assert 0 <= emb.score(X, y) <= 1


_FIT_IN_A_PROCESS = """
import hashlib, sys
import numpy as np
from sklearn.datasets import load_digits, load_wine
from sk_dml import TripletEmbedder
X, y = load_wine(return_X_y=True)
Z = TripletEmbedder(random_state=7, dropout=0.1, max_epochs=3, batch_size=16).fit(X, y).transform(X)
print(hashlib.sha256(Z.tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_same_random_state_is_bit_identical_across_processes():
    digests = {
        subprocess.run(
            [sys.executable, "-W", "ignore", "-c", _FIT_IN_A_PROCESS],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for _ in range(2)
    }
    X, y = load_wine(return_X_y=True)
    here = TripletEmbedder(random_state=7, dropout=0.1, max_epochs=3, batch_size=16).fit(X, y)
    digests.add(hashlib.sha256(here.transform(X).tobytes()).hexdigest())
    assert len(digests) == 1


def _fit_digits(cls, seed):
    X, y = load_digits(return_X_y=True)
    params = dict(hidden_layer_sizes=(64,), n_components=8, batch_size=64, dropout=0.1)
    emb = cls(max_epochs=8, random_state=seed, **params).fit(X / 16, y)
    return emb.transform(X / 16)


@pytest.mark.slow
def test_fits_in_threads_equal_the_same_fits_one_after_the_other():
    # Dropout and a proxy loss's proxies both draw random numbers; random_state must decide
    # them whatever else runs in the process.
    fits = [
        (TripletEmbedder, 0),
        (TripletEmbedder, 1),
        (TripletEmbedder, 0),
        (ProxyAnchorEmbedder, 1),
    ]
    sequential = [_fit_digits(cls, seed) for cls, seed in fits]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda fit: _fit_digits(*fit), fits))
    for alone, beside in zip(sequential, concurrent, strict=True):
        np.testing.assert_array_equal(beside, alone)
    np.testing.assert_array_equal(sequential[0], sequential[2])
    assert not np.array_equal(sequential[0], sequential[1])


def test_custom_module_with_torch_dropout_is_reproducible_one_fit_at_a_time():
    def net(n_features):
        return torch.nn.Sequential(
            torch.nn.Linear(n_features, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3),
            torch.nn.Linear(32, 8),
        )  # fmt: skip

    X, y = load_digits(return_X_y=True)
    fits = [
        TripletEmbedder(module=net, max_epochs=2, batch_size=64, random_state=seed).fit(X / 16, y)
        for seed in (0, 0, 1)
    ]
    Z = [fit.transform(X / 16) for fit in fits]
    np.testing.assert_array_equal(Z[0], Z[1])
    assert not np.array_equal(Z[0], Z[2])


def test_dropout_draws_from_the_fits_generator():
    x = torch.ones(6, 1000)
    layer = nets.Dropout(0.3).train()
    with nets.dropout_generator(torch.Generator().manual_seed(5)):
        dropped = layer(x)
    # The oracle: the same Bernoulli draws made directly from a generator with the same seed.
    keep = torch.empty_like(x).bernoulli_(0.7, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(dropped, keep / 0.7)
    # Outside a fit it is torch's Dropout; in eval mode it is the identity.
    torch.manual_seed(2)
    outside = layer(x)
    torch.manual_seed(2)
    torch.testing.assert_close(outside, torch.nn.Dropout(0.3).train()(x))
    torch.testing.assert_close(layer.eval()(x), x)


# ----------------------------------------------------------------------------------- load
def test_transform_is_thread_safe(wine):
    X, y = wine
    emb = LiftedStructEmbedder(random_state=0, **QUICK).fit(X, y)
    big = np.repeat(X, 50, axis=0)
    expected = emb.transform(big)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: emb.transform(big), range(16)))
    for result in results:
        np.testing.assert_array_equal(result, expected)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_rows=st.integers(4, 40),
    n_features=st.integers(1, 6),
    n_classes=st.integers(2, 5),
    dtype=st.sampled_from([np.float32, np.float64, np.int64]),
    cls=st.sampled_from(EMBEDDERS),
    seed=st.integers(0, 2**16),
)
def test_property_any_valid_table_gives_finite_embeddings(
    n_rows, n_features, n_classes, dtype, cls, seed
):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n_rows, n_features)) * 10).astype(dtype)
    y = np.concatenate([[0, 0, 1], rng.integers(0, n_classes, n_rows - 3)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, UserWarning))
        emb = cls(max_epochs=2, batch_size=8, samples_per_class=2, hidden_layer_sizes=(8,),
                  n_components=3, random_state=seed).fit(X, y)  # fmt: skip
    Z = emb.transform(X)
    assert Z.shape == (n_rows, 3) and Z.dtype == np.float32
    assert np.isfinite(Z).all()
    # Rows are embedded independently: the order of the batch does not matter.
    order = rng.permutation(n_rows)
    np.testing.assert_allclose(emb.transform(X[order]), Z[order], rtol=1e-5, atol=1e-6)
