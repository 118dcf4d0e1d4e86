"""One engine for every loss: loss objects, the generic embedder, the named ones over it, and
the trainer's state.

Oracles: scikit-learn's own ``clone``/``GridSearchCV`` semantics and error wording, bit-equality
with an uninterrupted run or with the named embedder, and counts of host synchronisations.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import sys
import warnings
from contextlib import redirect_stderr

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sk_dml
import sk_dml._embedder
import sk_dml._fitting
import sk_dml._training as training
from sk_dml import MetricEmbedder, TripletEmbedder, cli
from sk_dml._objectives import Criterion
from sk_dml.criteria import (
    Loss,
    MultiSimilarityLoss,
    ProxyAnchorLoss,
    TripletLoss,
    get_loss_class,
    loss_names,
)
from sk_dml.embedders import ESTIMATORS, make_embedder
from sk_dml.supervision import ClassLabels

QUICK = dict(max_epochs=3, hidden_layer_sizes=(16,), n_components=4, batch_size=16)


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


def _weights(estimator) -> dict:
    return estimator._trainer.objective.state_dict()


def _same_weights(a, b) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# ----------------------------------------------------------------------------- loss objects
def test_loss_objects_follow_scikit_learns_parameter_conventions():
    loss = ProxyAnchorLoss(margin=0.3)
    assert loss.get_params() == {"margin": 0.3, "alpha": 32.0}
    copy = clone(loss)
    assert copy is not loss and copy.get_params() == loss.get_params()
    assert loss.set_params(alpha=8.0) is loss and loss.alpha == 8.0
    emb = MetricEmbedder(loss=loss)
    params = emb.get_params(deep=True)
    assert params["loss__margin"] == 0.3 and params["loss__alpha"] == 8.0
    emb.set_params(loss__margin=0.05)
    assert loss.margin == 0.05
    assert clone(emb).loss is not loss and clone(emb).loss.get_params() == loss.get_params()


def test_every_registered_loss_has_a_name_an_embedder_and_a_distance():
    assert set(loss_names()) >= {"triplet", "proxy_anchor", "multi_similarity"}
    for name in loss_names():
        loss_class = get_loss_class(name)
        assert issubclass(loss_class, Loss) and loss_class.name == name
        assert set(loss_class.embedder_defaults) == {"normalize", "residual", "learning_rate"}
        assert loss_class().embedding_metric(True) in sk_dml.distances.METRICS
    with pytest.raises(ValueError, match="Unknown loss 'softmax'; expected one of triplet"):
        get_loss_class("softmax")


def test_grid_search_over_a_loss_objects_parameter(wine):
    X, y = wine
    pipe = make_pipeline(
        MetricEmbedder(loss=TripletLoss(mining="semihard"), random_state=0, **QUICK),
        KNeighborsClassifier(3),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(pipe, {"metricembedder__loss__margin": [0.05, 0.5]}, cv=2).fit(X, y)
    assert list(search.cv_results_["param_metricembedder__loss__margin"]) == [0.05, 0.5]
    best = search.best_estimator_[0]
    assert best.loss.margin == search.best_params_["metricembedder__loss__margin"]
    assert best.loss.mining == "semihard"  # the other parameters of the loss are kept


@pytest.mark.parametrize("name", loss_names())
def test_a_named_embedder_is_the_generic_one_with_its_loss(wine, name):
    """Same loss, same parameters, same seed: the same fit, bit for bit."""
    X, y = wine
    loss_class = get_loss_class(name)
    named = make_embedder(name, random_state=0, **QUICK).fit(X, y)
    generic = MetricEmbedder(loss=loss_class(), random_state=0, **QUICK).fit(X, y)
    assert _same_weights(named, generic)
    assert named.embedding_metric_ == generic.embedding_metric_
    assert named.loss_curve_ == generic.loss_curve_


def test_named_embedders_take_their_loss_parameters_as_their_own():
    signature = inspect.signature(TripletEmbedder)
    shared = [p for p in inspect.signature(MetricEmbedder).parameters if p != "loss"]
    assert list(signature.parameters) == ["margin", "mining", "distance", *shared]
    assert signature.parameters["normalize"].default is True  # the loss's choice, not "auto"
    proxy = inspect.signature(sk_dml.ProxyAnchorEmbedder).parameters
    assert proxy["residual"].default is True and proxy["learning_rate"].default == 3e-4
    assert TripletEmbedder(margin=0.3)._get_loss().get_params() == {
        "margin": 0.3,
        "mining": "all",
        "distance": "euclidean",
    }
    with pytest.raises(TypeError, match="unexpected keyword argument 'alpha'"):
        TripletEmbedder(alpha=2.0)
    for cls in ESTIMATORS.values():  # every parameter is documented
        if cls._loss_class is not None:
            for param in inspect.signature(cls).parameters:
                assert f"\n    {param} :" in cls.__doc__, (cls.__name__, param)


def test_auto_parameters_take_the_losss_choices():
    emb = MetricEmbedder(loss=MultiSimilarityLoss())
    assert emb._resolved("normalize") is True and emb._resolved("learning_rate") == 3e-4
    assert MetricEmbedder(loss=sk_dml.criteria.NPairLoss())._resolved("normalize") is False
    assert MetricEmbedder(loss=TripletLoss(), normalize=False)._resolved("normalize") is False


# -------------------------------------------------------------------------------- bad input
def test_a_loss_that_is_not_a_loss_object_is_refused_at_fit(wine):
    X, y = wine
    for bad in ("triplet", TripletLoss, torch.nn.TripletMarginLoss()):
        with pytest.raises(ValueError, match="The 'loss' parameter of MetricEmbedder must be"):
            MetricEmbedder(loss=bad, **QUICK).fit(X, y)


@pytest.mark.parametrize(
    "loss, message",
    [
        (TripletLoss(margin=-1), r"The 'margin' parameter of TripletLoss must be .*Got -1"),
        (TripletLoss(mining="easy"), r"The 'mining' parameter of TripletLoss must be .*'easy'"),
        (ProxyAnchorLoss(alpha=0), r"The 'alpha' parameter of ProxyAnchorLoss must be .*Got 0"),
        (MultiSimilarityLoss(epsilon=-0.1), r"'epsilon' parameter of MultiSimilarityLoss"),
        (MultiSimilarityLoss(base=float("nan")), r"'base' parameter of MultiSimilarityLoss"),
    ],
)
def test_a_loss_parameter_out_of_range_is_named_at_fit(wine, loss, message):
    X, y = wine
    emb = MetricEmbedder(loss=TripletLoss(), random_state=0, **QUICK).fit(X, y)
    before = emb.transform(X)
    with pytest.raises(ValueError, match=message):
        emb.set_params(loss=loss).fit(X, y)
    np.testing.assert_array_equal(emb.transform(X), before)  # the fitted model is intact


# ------------------------------------------------------------------------------ the trainer
def test_a_trainer_restored_from_its_state_dict_continues_like_the_original(wine, tmp_path):
    """Two more epochs from a saved state_dict (through a file, read with weights_only=True)
    end with the weights of the trainer that was never stopped."""
    X, y = wine
    emb = MetricEmbedder(loss=ProxyAnchorLoss(), dropout=0.2, random_state=0, **QUICK).fit(X, y)
    trainer = emb._trainer
    torch.save(trainer.state_dict(), tmp_path / "state.pt")
    task = ClassLabels(X, np.searchsorted(np.unique(y), y), labels=np.unique(y))
    twin = sk_dml._fitting._new_trainer(
        emb, emb._new_module(emb.schema_), ProxyAnchorLoss(), task, np.random.RandomState(5), "cpu"
    )
    twin.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert twin.history == trainer.history
    settings = training.RunSettings(batch_size=16, samples_per_class=4, learning_rate=1e-3,
                                    max_epochs=2)  # fmt: skip
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for t in (trainer, twin):
        t.run(Xt, yt, settings, groups=y, generator=torch.Generator().manual_seed(1))
    a, b = trainer.objective.state_dict(), twin.objective.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert twin.history.loss_curve == trainer.history.loss_curve


def test_an_epoch_waits_for_the_device_once(wine, monkeypatch):
    """sk_dml's code converts no tensor to a Python value inside an epoch: only the epoch's
    mean loss at its end (the Multi-Similarity loss itself never synchronises). Torch's own
    conversions (AdamW reads its step counter, a CPU tensor) are not ours to count."""
    X, y = wine
    emb = MetricEmbedder(loss=MultiSimilarityLoss(), random_state=0, **QUICK).fit(X, y)
    conversions = []
    for method in ("__bool__", "__float__", "__int__", "__index__", "item", "tolist"):
        original = getattr(torch.Tensor, method)

        def counted(self, *args, _original=original, _method=method):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("sk_dml"):
                conversions.append(_method)
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, method, counted)
    trainer = emb._trainer
    batches = [np.arange(i, i + 16) for i in range(0, 160, 16)]
    loss = training._train_one_epoch(
        trainer.objective, torch.from_numpy(X), torch.from_numpy(y), batches,
        trainer.optimizers, None, None,
    )  # fmt: skip
    monkeypatch.undo()
    assert np.isfinite(loss)
    assert conversions == ["__float__"]


def test_after_a_divergence_the_model_trains_on(wine):
    """The divergence guard rolls back the weights and clears the optimizer's moments, so a
    warm start with a sane learning rate trains normally."""
    X, y = wine
    emb = sk_dml.ContrastiveEmbedder(
        normalize=False, learning_rate=1e30, random_state=0, warm_start=True, **QUICK
    )
    with pytest.warns(RuntimeWarning, match="diverged.*non-finite in epoch"):
        emb.fit(X * 1e3, y)
    assert not any(emb._trainer.optimizer.state.values())
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        emb.set_params(learning_rate=1e-3).fit(X, y)
    assert np.isfinite(emb.transform(X)).all() and np.isfinite(emb.loss_curve_).all()


def test_warm_start_with_new_loss_parameters_trains_with_them(wine):
    X, y = wine
    emb = MetricEmbedder(loss=TripletLoss(margin=0.1), warm_start=True, random_state=0, **QUICK)
    emb.fit(X, y)
    emb.set_params(loss__margin=0.7).fit(X, y)
    assert emb._trainer.objective.criterion.function.keywords["margin"] == 0.7
    # Another loss: the network and its history go on, the loss starts anew.
    n_iter = emb.n_iter_
    emb.set_params(loss=ProxyAnchorLoss()).fit(X, y)
    assert emb._trainer.objective.criterion.proxies.shape == (3, 4)
    assert emb.n_iter_ == n_iter + QUICK["max_epochs"]


# ------------------------------------------------------------------ a loss added by a user
@pytest.fixture
def center_pull_loss():
    """A loss a user adds: one class, registered by being defined (and unregistered here)."""

    class CenterPullLoss(Loss):
        """Mean squared distance of each row to its class's mean in the batch.

        Parameters
        ----------
        scale : float, default=1.0
        """

        name = "test_center_pull"
        _parameter_constraints = {"scale": [float]}

        def __init__(self, scale=1.0):
            self.scale = scale

        @staticmethod
        def function(embeddings, codes, *, scale):
            onehot = torch.nn.functional.one_hot(codes).to(embeddings.dtype)
            centers = (onehot.T @ embeddings) / onehot.sum(0).clamp_min(1).unsqueeze(1)
            return scale * (embeddings - centers[codes]).square().sum(1).mean()

    yield CenterPullLoss
    del sk_dml.criteria._REGISTRY[CenterPullLoss.name]


def test_a_new_loss_is_one_class_and_everything_picks_it_up(wine, tmp_path, center_pull_loss):
    X, y = wine
    emb = make_embedder("test_center_pull", scale=2.0, random_state=0, **QUICK).fit(X, y)
    assert isinstance(emb, MetricEmbedder) and emb.loss.scale == 2.0
    assert isinstance(emb._trainer.objective.criterion, Criterion)
    assert emb.embedding_metric_ == "euclidean"
    # Model files store the loss by name and parameters.
    sk_dml.save(emb, tmp_path / "m.safetensors")
    loaded = sk_dml.load(tmp_path / "m.safetensors")
    assert isinstance(loaded.loss, center_pull_loss) and loaded.loss.scale == 2.0
    np.testing.assert_array_equal(loaded.transform(X), emb.transform(X))
    # The command line offers it.
    args = cli.build_parser().parse_args(
        ["fit", "data.csv", "--target", "t", "-o", "m", "--loss", "test_center_pull"]
    )
    assert args.loss == "test_center_pull"


def _documented_parameters(cls) -> dict[str, str]:
    """Each parameter's numpydoc line ``name : type, default=...`` in ``cls``'s docstring."""
    section = cls.__doc__.split("Parameters\n    ----------\n", 1)[1]
    section = section.split("\n    Attributes\n", 1)[0]
    return dict(re.findall(r"^    (\w+) : (.*)$", section, flags=re.M))


def test_named_embedder_signatures_stay_in_sync_with_their_loss_and_the_shared_ones():
    """Every named embedder's explicit __init__: its loss's parameters with the loss's
    defaults, then every shared one with the loss's choice where it makes one; the
    constraints cover exactly those; the docstring documents each, with its default."""
    base = inspect.signature(sk_dml._embedder.BaseEmbedder).parameters
    named = [cls for cls in ESTIMATORS.values() if cls._loss_class is not None]
    assert len(named) == 9
    for cls in named:
        loss = cls._loss_class
        expected = [(p.name, p.default) for p in inspect.signature(loss).parameters.values()]
        expected += [(n, loss.embedder_defaults.get(n, p.default)) for n, p in base.items()]
        params = inspect.signature(cls).parameters
        assert [(p.name, p.default) for p in params.values()] == expected, cls.__name__
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values())
        assert set(cls._parameter_constraints) == set(params), cls.__name__
        documented = _documented_parameters(cls)
        assert set(documented) == set(params), cls.__name__
        for name, default in expected:
            shown = documented[name].rsplit("default=", 1)
            assert len(shown) == 2, (cls.__name__, name)
            assert ast.literal_eval(shown[1]) == default, (cls.__name__, name)
        emb = cls(**{name: default for name, default in expected})
        assert emb.get_params() == dict(expected)  # __init__ stores each as given


@pytest.mark.parametrize(
    "cls", [MetricEmbedder, sk_dml.PairEmbedder, sk_dml.TripletConstraintEmbedder]
)
def test_embedders_with_a_loss_parameter_document_every_parameter(cls):
    params = inspect.signature(cls).parameters
    assert set(_documented_parameters(cls)) == set(params)
    assert set(cls._parameter_constraints) == set(params)
    assert cls().get_params() == {name: p.default for name, p in params.items()}


# --------------------------------------------------------------------------- early stopping
def _plateau_curve() -> np.ndarray:
    """A loss that keeps improving by ever less: 1 + 0.5**t, t = 0, 1, ... (times a scale)."""
    return 1.0 + 0.5 ** np.arange(60.0)


def _brute_force_stop(curve, tol, patience) -> int:
    """The number of epochs run: the run ends ``patience`` epochs after the last epoch whose
    loss was lower than (1 - tol) times every loss before it (a positive loss), or at the
    end of the curve."""
    for end in range(1, len(curve) + 1):
        improved = [t for t in range(end) if t == 0 or curve[t] < (1 - tol) * curve[:t].min()]
        if end - 1 - improved[-1] >= patience:
            return end
    return len(curve)


class _FakeTrainer:
    """What EarlyStopping reads of a trainer without validation data."""

    def __init__(self):
        self.history, self.stop, self.group = training.History(), False, None

    @property
    def n_iter(self):
        return len(self.history.loss_curve)

    def snapshot(self):
        return {}


def _stop_epoch_through_the_hook(curve, tol, patience) -> int:
    hook, trainer = training.EarlyStopping(tol, patience), _FakeTrainer()
    for loss in curve:
        trainer.history.loss_curve.append(float(loss))
        hook.after_epoch(trainer)
        if trainer.stop:
            break
    return trainer.n_iter


@pytest.mark.parametrize("tol, patience", [(1e-4, 3), (1e-3, 2), (1e-2, 5)])
def test_the_loss_plateau_stops_at_the_same_epoch_whatever_the_losss_scale(tol, patience):
    curve = _plateau_curve()
    expected = _brute_force_stop(curve, tol, patience)
    assert 5 < expected < len(curve)  # a real plateau, neither the first epochs nor the end
    for scale in (1e-3, 1.0, 1e3):
        assert _stop_epoch_through_the_hook(scale * curve, tol, patience) == expected


def test_a_fit_without_held_out_data_stops_at_the_losss_plateau_and_says_so(wine, monkeypatch):
    """A real fit whose epochs return the constructed loss curve (times 1e-3 and 1e3): the
    same stop, independent of the scale, reported with verbose."""
    X, y = wine
    tol, patience = 1e-4, 3
    expected = _brute_force_stop(_plateau_curve(), tol, patience)
    original = training._train_one_epoch
    for scale in (1e-3, 1e3):
        losses = iter(scale * _plateau_curve())

        def scripted(*args, _losses=losses):
            original(*args)  # train as usual, report the scripted loss
            return float(next(_losses))

        monkeypatch.setattr(training, "_train_one_epoch", scripted)
        emb = TripletEmbedder(
            early_stopping=False, tol=tol, n_iter_no_change=patience,
            learning_rate_schedule="constant", verbose=1, random_state=0,
            **{**QUICK, "max_epochs": 60},
        )  # fmt: skip
        err = io.StringIO()
        with redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)  # a plateau, not max_epochs
            emb.fit(X, y)
        assert emb.n_iter_ == expected
        assert (
            f"Stopped at a plateau after epoch {expected}: the training loss did not improve "
            f"by more than tol=0.0001 times its best for n_iter_no_change=3 epochs (the last "
            f"improvement: epoch {expected - patience})." in err.getvalue()
        )


def test_a_fit_with_held_out_data_says_where_it_stopped(wine):
    X, y = wine
    emb = sk_dml.ContrastiveEmbedder(
        early_stopping=True, n_iter_no_change=1, verbose=1, random_state=0,
        **{**QUICK, "max_epochs": 50},
    )  # fmt: skip
    err = io.StringIO()
    with redirect_stderr(err):
        emb.fit(X, y)
    assert emb.n_iter_ < 50
    # One epoch without improvement ends the run: the one before was the last improvement.
    last = (
        f"the weights of epoch {emb.n_iter_ - 1}"
        if emb.n_iter_ > 1
        else ("the untrained network's weights")
    )
    assert (
        f"Stopped at a plateau after epoch {emb.n_iter_}: the validation score did not improve "
        f"by more than tol=0.0001 for n_iter_no_change=1 epochs; {last}, the last improvement, "
        "were restored." in err.getvalue()
    )
