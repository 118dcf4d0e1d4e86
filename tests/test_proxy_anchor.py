"""The Proxy-Anchor loss against float64 loops, and its estimator's proxies across calls."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_wine

import sk_dml
from sk_dml import ProxyAnchorEmbedder
from sk_dml._objectives import ProxyCriterion
from sk_dml.losses import proxy_anchor_loss

QUICK = dict(max_epochs=3, hidden_layer_sizes=(16,), n_components=4, batch_size=16)


def ref_proxy_anchor(emb, labels, proxies, margin, alpha):
    """Kim et al. (2020), eq. 4, by loops over proxies and rows (float64)."""
    emb, proxies = np.asarray(emb, float), np.asarray(proxies, float)

    def cos(a, b):
        return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))

    pos_terms, neg_total = [], 0.0
    for c, proxy in enumerate(proxies):
        rows = list(zip(emb, labels, strict=True))
        pos = [math.exp(-alpha * (cos(x, proxy) - margin)) for x, y in rows if y == c]
        neg = [math.exp(alpha * (cos(x, proxy) + margin)) for x, y in rows if y != c]
        if pos:
            pos_terms.append(math.log(1 + sum(pos)))
        neg_total += math.log(1 + sum(neg))
    return (sum(pos_terms) / len(pos_terms) if pos_terms else 0.0) + neg_total / len(proxies)


def batch(seed, n=12, dim=3, n_classes=5, labels=None):
    rng = np.random.default_rng(seed)
    emb = torch.tensor(rng.normal(size=(n, dim)), requires_grad=True)
    proxies = torch.tensor(rng.normal(size=(n_classes, dim)), requires_grad=True)
    labels = rng.integers(0, n_classes, n) if labels is None else np.asarray(labels)
    return emb, labels, proxies


EDGE_LABELS = {
    "random": None,
    "one class": [2] * 12,
    "singletons": list(range(5)) + [0] * 7,
    "all singletons": [0, 1, 2, 3, 4],
    "a class absent": [0, 0, 1, 1, 3, 3, 3, 0, 1, 0, 1, 3],
}


@pytest.mark.parametrize("labels", EDGE_LABELS.values(), ids=EDGE_LABELS.keys())
@pytest.mark.parametrize("margin,alpha", [(0.1, 32.0), (0.0, 1.0), (0.5, 4.0)])
def test_value_matches_brute_force(labels, margin, alpha):
    emb, y, proxies = batch(0, n=len(labels) if labels else 12, labels=labels)
    got = proxy_anchor_loss(emb, y, proxies, margin=margin, alpha=alpha)
    expected = ref_proxy_anchor(emb.detach(), y, proxies.detach(), margin, alpha)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_gradient_matches_autograd_of_the_loop_formula():
    emb, y, proxies = batch(1)
    proxy_anchor_loss(emb, y, proxies, margin=0.1, alpha=8.0).backward()

    def loop(e, p):  # the reference written with torch ops, one proxy at a time
        e, p = torch.nn.functional.normalize(e, dim=1), torch.nn.functional.normalize(p, dim=1)
        pos_terms, neg = [], 0.0
        for c in range(len(p)):
            s = e @ p[c]
            mask = torch.as_tensor(y == c)
            if mask.any():
                pos_terms.append(torch.log1p(torch.exp(-8.0 * (s[mask] - 0.1)).sum()))
            neg = neg + torch.log1p(torch.exp(8.0 * (s[~mask] + 0.1)).sum())
        return sum(pos_terms) / len(pos_terms) + neg / len(p)

    e2, p2 = emb.detach().clone().requires_grad_(), proxies.detach().clone().requires_grad_()
    loop(e2, p2).backward()
    torch.testing.assert_close(emb.grad, e2.grad)
    torch.testing.assert_close(proxies.grad, p2.grad)


def test_duplicated_rows_and_large_alpha_stay_finite():
    emb, y, proxies = batch(2, n=8, labels=[0, 0, 1, 1, 0, 0, 1, 1])
    emb = torch.cat([emb[:4], emb[:4]]).detach().float().requires_grad_()
    loss = proxy_anchor_loss(emb, y, proxies.detach().float().requires_grad_(), alpha=1e4)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()


def test_matches_pytorch_metric_learning():
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    emb, y, proxies = batch(3, n=32, dim=8, n_classes=6)
    theirs = pml.ProxyAnchorLoss(num_classes=6, embedding_size=8, margin=0.1, alpha=32)
    theirs.proxies.data = proxies.detach().float().clone()
    expected = theirs(emb.detach().float(), torch.as_tensor(y)).item()
    got = proxy_anchor_loss(emb.detach().float(), y, proxies.detach().float()).item()
    assert got == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"alpha": 0.0}, "alpha must be > 0"),
        ({"margin": -1.0}, "margin must be >= 0"),
        ({"proxies": torch.zeros(5, 2)}, "proxies have dimension 2"),
        ({"labels": [0] * 11 + [5]}, r"proxy indices in \[0, 5\)"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    emb, y, proxies = batch(4)
    args = {"labels": y, "proxies": proxies, **kwargs}
    labels, proxies = args.pop("labels"), args.pop("proxies")
    with pytest.raises(ValueError, match=message):
        proxy_anchor_loss(emb, labels, proxies, **args)


# -- the estimator --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return ((X - X.mean(0)) / X.std(0)).astype(np.float32), y


def test_later_calls_map_their_labels_onto_the_first_fits_proxies(wine, monkeypatch):
    X, y = wine
    emb = ProxyAnchorEmbedder(random_state=0, **QUICK).fit(X, y)  # classes 0, 1, 2
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
    with pytest.raises(ValueError, match=r"y has classes without a proxy: \[7\]"):
        emb.partial_fit(X, np.where(y == 0, 7, y))


def test_proxies_carry_over_warm_start_and_string_labels(wine):
    X, y = wine
    labels = np.array(["a", "b", "c"])[y]
    emb = ProxyAnchorEmbedder(random_state=0, warm_start=True, early_stopping=False, **QUICK)
    emb.fit(X, labels)
    proxies = emb._trainer.objective.criterion.proxies.detach().clone()
    emb.fit(X, labels)
    after = emb._trainer.objective.criterion.proxies
    assert emb.n_iter_ == 6 and not torch.equal(proxies, after)  # trained on, not made anew
    assert list(emb._trainer.objective.criterion.classes) == ["a", "b", "c"]


def test_a_failed_partial_fit_leaves_the_model_unchanged(wine):
    X, y = wine
    emb = ProxyAnchorEmbedder(random_state=0, **QUICK).fit(X, y)
    before = emb.transform(X)
    with pytest.raises(ValueError, match="without a proxy"):
        emb.partial_fit(X, y + 1)
    np.testing.assert_array_equal(emb.transform(X), before)
    assert emb.n_iter_ == 3


def test_loaded_model_trains_on_with_new_proxies(wine, tmp_path):
    X, y = wine
    emb = ProxyAnchorEmbedder(random_state=0, **QUICK).fit(X, y)
    sk_dml.save(emb, tmp_path / "m.skdml")
    loaded = sk_dml.load(tmp_path / "m.skdml")
    np.testing.assert_array_equal(loaded.transform(X), emb.transform(X))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: a documented, quiet restart of the proxies
        loaded.partial_fit(X, y)
    assert loaded.n_iter_ == 4
