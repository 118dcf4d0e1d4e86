"""The normalised-softmax losses (normalised softmax, CosFace, ArcFace) against float64 loops
and pytorch-metric-learning, and their class weights through the estimators."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine

import sk_dml
from sk_dml import ArcFaceEmbedder, CosFaceEmbedder, NormalizedSoftmaxEmbedder
from sk_dml._objectives import ProxyCriterion
from sk_dml.criteria import ArcFaceLoss, CosFaceLoss, NormalizedSoftmaxLoss
from sk_dml.losses import arcface_loss, cosface_loss, normalized_softmax_loss

QUICK = dict(max_epochs=3, hidden_layer_sizes=(16,), n_components=4, batch_size=16)


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def ref_margin_softmax(emb, labels, weights, scale, own_logit):
    """Mean over rows of -log softmax, one row and one class at a time (float64): the logit of
    class c is scale * cos(x, w_c), and scale * own_logit(cos) for the row's own class."""
    emb, weights = np.asarray(emb, float), np.asarray(weights, float)
    total = 0.0
    for x, y in zip(emb, labels, strict=True):
        logits = []
        for c, w in enumerate(weights):
            cos = _cos(x, w)
            logits.append(scale * (own_logit(cos) if c == y else cos))
        top = max(logits)
        log_norm = top + math.log(sum(math.exp(v - top) for v in logits))
        total += log_norm - logits[y]
    return total / len(labels)


def ref_arcface_logit(margin):
    def logit(cos):
        theta = math.acos(min(1.0, max(-1.0, cos)))
        if theta + margin <= math.pi:
            return math.cos(theta + margin)
        return cos - margin * math.sin(margin)  # past pi: keep decreasing in theta

    return logit


def references(temperature=0.05, margin=0.35, scale=64.0, angle=0.5):
    """(our function with its parameters, the loop reference) for each loss."""
    return {
        "normalized_softmax": (
            lambda e, y, w: normalized_softmax_loss(e, y, w, temperature=temperature),
            lambda e, y, w: ref_margin_softmax(e, y, w, 1 / temperature, lambda c: c),
        ),
        "cosface": (
            lambda e, y, w: cosface_loss(e, y, w, margin=margin, scale=scale),
            lambda e, y, w: ref_margin_softmax(e, y, w, scale, lambda c: c - margin),
        ),
        "arcface": (
            lambda e, y, w: arcface_loss(e, y, w, margin=angle, scale=scale),
            lambda e, y, w: ref_margin_softmax(e, y, w, scale, ref_arcface_logit(angle)),
        ),
    }


def batch(seed, n=12, dim=3, n_classes=5, labels=None):
    rng = np.random.default_rng(seed)
    emb = torch.tensor(rng.normal(size=(n, dim)), requires_grad=True)
    weights = torch.tensor(rng.normal(size=(n_classes, dim)), requires_grad=True)
    labels = rng.integers(0, n_classes, n) if labels is None else np.asarray(labels)
    return emb, labels, weights


PARAMETERS = {
    "defaults": {},
    "mild": {"temperature": 0.5, "margin": 0.1, "scale": 2.0, "angle": 0.2},
    "wide margins": {"temperature": 1.0, "margin": 1.5, "scale": 4.0, "angle": 1.5},
}
EDGE_LABELS = {"random": None, "one class": [2] * 12, "all singletons": [0, 1, 2, 3, 4]}


@pytest.mark.parametrize("name", ["normalized_softmax", "cosface", "arcface"])
@pytest.mark.parametrize("params", PARAMETERS.values(), ids=PARAMETERS.keys())
@pytest.mark.parametrize("labels", EDGE_LABELS.values(), ids=EDGE_LABELS.keys())
def test_value_matches_brute_force(name, params, labels):
    ours, reference = references(**params)[name]
    emb, y, weights = batch(0, n=len(labels) if labels else 12, labels=labels)
    expected = reference(emb.detach(), y, weights.detach())
    assert ours(emb, y, weights).item() == pytest.approx(expected, rel=1e-10)


def test_arcface_past_pi_takes_the_decreasing_branch():
    # A row opposite its class weight (theta = pi) and one just short of pi - margin.
    weights = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    emb = torch.tensor([[-1.0, 0.0], [0.45, -0.9]], dtype=torch.float64)
    got = arcface_loss(emb, [0, 1], weights, margin=0.5, scale=2.0).item()
    expected = ref_margin_softmax(emb, [0, 1], weights, 2.0, ref_arcface_logit(0.5))
    assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("name", ["normalized_softmax", "cosface", "arcface"])
def test_gradient_matches_finite_differences(name):
    ours, _ = references(temperature=0.5, margin=0.2, scale=3.0, angle=0.3)[name]
    emb, y, weights = batch(1, n=6, dim=3, n_classes=3)
    assert torch.autograd.gradcheck(lambda e, w: ours(e, y, w), (emb, weights))


@pytest.mark.parametrize("name", ["cosface", "arcface"])
def test_rows_on_their_weight_have_finite_gradients(name):
    weights = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    emb = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]], requires_grad=True)
    ours, _ = references()[name]
    loss = ours(emb, [0, 1, 0], weights)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()
    assert torch.isfinite(weights.grad).all()


PML = {
    "normalized_softmax": (
        "NormalizedSoftmaxLoss",
        {"temperature": 0.1},
        lambda e, y, w: normalized_softmax_loss(e, y, w, temperature=0.1),
    ),
    "cosface": (
        "CosFaceLoss",
        {"margin": 0.2, "scale": 30},
        lambda e, y, w: cosface_loss(e, y, w, margin=0.2, scale=30),
    ),
    "arcface": (  # PML's margin is in degrees
        "ArcFaceLoss",
        {"margin": 28.6, "scale": 64},
        lambda e, y, w: arcface_loss(e, y, w, margin=math.radians(28.6), scale=64),
    ),
}


@pytest.mark.parametrize("name", PML)
def test_matches_pytorch_metric_learning(name):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    cls_name, params, ours = PML[name]
    emb, y, weights = batch(3, n=32, dim=8, n_classes=6)
    theirs = getattr(pml, cls_name)(num_classes=6, embedding_size=8, **params)
    theirs.W.data = weights.detach().T.clone()  # PML keeps (dim, classes)
    expected = theirs(emb.detach(), torch.as_tensor(y)).item()
    assert ours(emb.detach(), y, weights.detach()).item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    "function,kwargs,message",
    [
        (normalized_softmax_loss, {"temperature": 0.0}, "temperature must be a finite number > 0"),
        (cosface_loss, {"scale": -1.0}, "scale must be a finite number > 0"),
        (cosface_loss, {"margin": 2.5}, r"margin must be in \[0, 2\]"),
        (arcface_loss, {"margin": 2.0}, r"margin must be an angle in \[0, pi/2\]"),
        (arcface_loss, {"scale": math.inf}, "scale must be a finite number > 0"),
    ],
)
def test_bad_arguments_are_named(function, kwargs, message):
    emb, y, weights = batch(4)
    with pytest.raises(ValueError, match=message):
        function(emb, y, weights, **kwargs)


def test_weights_of_another_width_are_refused():
    emb, y, _ = batch(4)
    with pytest.raises(ValueError, match="weights have dimension 2 but the embeddings 3"):
        normalized_softmax_loss(emb, y, torch.zeros(5, 2))


# -- the estimators ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return ((X - X.mean(0)) / X.std(0)).astype(np.float32), y


EMBEDDERS = [NormalizedSoftmaxEmbedder, CosFaceEmbedder, ArcFaceEmbedder]


@pytest.mark.parametrize(
    "cls,param,value",
    [
        (NormalizedSoftmaxEmbedder, "temperature", 0.0),
        (CosFaceEmbedder, "scale", 0),
        (CosFaceEmbedder, "margin", 3.0),
        (ArcFaceEmbedder, "margin", -0.1),
        (ArcFaceEmbedder, "margin", 2.0),
    ],
)
def test_a_parameter_out_of_range_is_named_at_fit(wine, cls, param, value):
    X, y = wine
    with pytest.raises(ValueError, match=f"The '{param}' parameter of {cls.__name__} must be"):
        cls(**{param: value}, **QUICK).fit(X, y)


def test_class_weights_train_at_their_own_rate_without_weight_decay(wine):
    X, y = wine
    emb = CosFaceEmbedder(
        random_state=0, learning_rate=1e-3, weight_decay=0.01, early_stopping=False, **QUICK,
    ).fit(X, y)  # fmt: skip
    emb.partial_fit(X, y)  # a constant rate: the base rates stay in the optimizer
    network, weights = emb._trainer.optimizer.param_groups
    criterion = emb._trainer.objective.criterion
    assert [p is criterion.proxies for p in weights["params"]] == [True]
    assert weights["lr"] == pytest.approx(0.1) and weights["weight_decay"] == 0.0
    assert network["lr"] == pytest.approx(1e-3) and network["weight_decay"] == 0.01
    assert criterion.proxies.shape == (3, 4)


def test_a_step_moves_the_class_weights_by_the_larger_rate(wine):
    """Adam's first step moves each parameter by about its learning rate (sign of the
    gradient): the class weights' step is 100 times the network's."""
    X, y = wine
    emb = NormalizedSoftmaxEmbedder(
        random_state=0, learning_rate=1e-4, early_stopping=False, max_epochs=1,
        batch_size=len(X) - len(X) % 4,
        hidden_layer_sizes=(16,), n_components=4,
    )  # fmt: skip
    emb.fit(X, y)
    first = emb._trainer.objective.criterion.proxies.detach().clone()
    before = {k: v.detach().clone() for k, v in emb.module_.named_parameters()}
    emb.partial_fit(X, y)  # one more batch: one Adam step (moments carried over)
    weight_step = (emb._trainer.objective.criterion.proxies.detach() - first).abs().max()
    after = dict(emb.module_.named_parameters())
    net_step = max((after[k].detach() - before[k]).abs().max() for k in before)
    assert 20 * net_step < weight_step < 200 * net_step


@pytest.mark.parametrize("cls", EMBEDDERS)
def test_later_calls_map_their_labels_onto_the_first_fits_weights(wine, monkeypatch, cls):
    X, y = wine
    emb = cls(random_state=0, **QUICK).fit(X, y)  # classes 0, 1, 2
    seen = []
    forward = ProxyCriterion.forward
    monkeypatch.setattr(
        ProxyCriterion,
        "forward",
        lambda self, e, labels: (seen.append(labels.cpu().numpy()), forward(self, e, labels))[1],
    )
    rows = y > 0  # classes 1 and 2 alone: this call's own codes would be 0 and 1
    emb.partial_fit(X[rows], y[rows])
    assert set(np.concatenate(seen)) == {1, 2}
    before = emb.transform(X)
    with pytest.raises(ValueError, match=r"y has classes without a proxy: \[7\]"):
        emb.partial_fit(X, np.where(y == 0, 7, y))
    np.testing.assert_array_equal(emb.transform(X), before)  # a failed call changes nothing


@pytest.mark.parametrize("cls", EMBEDDERS)
def test_save_load_and_train_on_with_new_weights(wine, tmp_path, cls):
    X, y = wine
    emb = cls(random_state=0, **QUICK).fit(X, y)
    sk_dml.save(emb, tmp_path / "m.skdml")
    loaded = sk_dml.load(tmp_path / "m.skdml")
    assert type(loaded) is cls and loaded.get_params() == emb.get_params()
    np.testing.assert_array_equal(loaded.transform(X), emb.transform(X))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded.partial_fit(X, y)
    assert isinstance(loaded._trainer.objective.criterion, ProxyCriterion)


def test_checkpoint_resume_restores_the_class_weights(wine, tmp_path):
    X, y = wine
    params = dict(random_state=0, checkpoint_dir=tmp_path, early_stopping=False, **QUICK)
    whole = ArcFaceEmbedder(**params).fit(X, y)

    class Interrupt(Exception):
        pass

    def stop_after_two(trainer):
        if trainer.n_iter == 2:
            raise Interrupt

    from sk_dml import _training

    hook = _training.Checkpointing.after_epoch

    def after_epoch(self, trainer):
        hook(self, trainer)
        stop_after_two(trainer)

    interrupted = ArcFaceEmbedder(**params)
    _training.Checkpointing.after_epoch = after_epoch
    try:
        with pytest.raises(Interrupt):
            interrupted.fit(X, y)
    finally:
        _training.Checkpointing.after_epoch = hook
    resumed = ArcFaceEmbedder(**params).fit(X, y)
    assert resumed.n_iter_ == 3
    np.testing.assert_array_equal(resumed.transform(X), whole.transform(X))


@pytest.mark.parametrize(
    "loss", [NormalizedSoftmaxLoss(temperature=0.1), CosFaceLoss(margin=0.2), ArcFaceLoss()]
)
def test_loss_objects_train_through_metric_embedder(wine, loss):
    X, y = wine
    emb = sk_dml.MetricEmbedder(loss=loss, random_state=0, **QUICK).fit(X, y)
    assert emb.embedding_metric_ == "euclidean"  # on the unit sphere: ranks like cosine
    np.testing.assert_allclose(np.linalg.norm(emb.transform(X), axis=1), 1.0, rtol=1e-5)
