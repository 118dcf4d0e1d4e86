"""The embedding networks: a small MLP by default, or any torch module a user brings."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar

import numpy as np
import torch
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "Dropout",
    "L2Normalize",
    "ResidualEmbedding",
    "build_module",
    "dropout_generator",
    "make_mlp",
]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "silu": nn.SiLU,
}


class L2Normalize(nn.Module):
    """Scale each row to unit Euclidean norm (embeddings on the unit sphere)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x, dim=1)


_DROPOUT_GENERATOR: ContextVar[torch.Generator | None] = ContextVar(
    "sk_dml_dropout_generator", default=None
)


@contextlib.contextmanager
def dropout_generator(generator: torch.Generator | None) -> Iterator[None]:
    """Make :class:`Dropout` draw its masks from ``generator`` in this thread (or task).

    A fit trains inside this with a generator seeded from its ``random_state``, so its masks
    do not depend on what other threads draw from torch's process-wide generator.
    """
    token = _DROPOUT_GENERATOR.set(generator)
    try:
        yield
    finally:
        _DROPOUT_GENERATOR.reset(token)


class Dropout(nn.Dropout):
    """``torch.nn.Dropout`` whose masks come from the generator of :func:`dropout_generator`.

    Outside such a context (a loop of your own) it is torch's Dropout, drawing from torch's
    process-wide generator.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        generator = _DROPOUT_GENERATOR.get()
        if generator is None or not self.training or self.p == 0:
            return super().forward(x)
        keep = torch.empty_like(x).bernoulli_(1 - self.p, generator=generator)
        return x * keep / (1 - self.p)


def make_mlp(
    n_features: int,
    n_components: int,
    hidden_layer_sizes: Sequence[int] = (256,),
    activation: str = "relu",
    dropout: float = 0.0,
    normalize: bool = True,
) -> nn.Sequential:
    """``Linear -> activation [-> Dropout]`` per hidden layer, a final ``Linear`` to
    ``n_components``, then optionally :class:`L2Normalize` (:class:`Dropout`: a fit's masks
    come from its own generator)."""
    layers: list[nn.Module] = []
    width = n_features
    for size in hidden_layer_sizes:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, n_components))
    if normalize:
        layers.append(L2Normalize())
    return nn.Sequential(*layers)


class ResidualEmbedding(nn.Module):
    """``linear(x) + mlp(x)``, started as the principal-component projection of the inputs.

    The linear path starts as the PCA rotation of the training rows (an isometry when
    ``n_components >= n_features``, the top principal axes otherwise) and the MLP's last layer
    starts at zero, so before training the embedding *is* the input, up to rotation, and its
    distances are the input's distances. Training then bends it only as far as the loss asks,
    which keeps the information that distinguishes classes never seen in training (plain deep
    embeddings collapse each training class and lose it; see Musgrave et al. 2020, "A Metric
    Learning Reality Check").
    """

    def __init__(
        self,
        n_features: int,
        n_components: int,
        hidden_layer_sizes: Sequence[int] = (512, 512),
        activation: str = "relu",
        dropout: float = 0.0,
        normalize: bool = True,
    ):
        super().__init__()
        self.linear = nn.Linear(n_features, n_components, bias=False)
        self.mlp = make_mlp(
            n_features, n_components, hidden_layer_sizes, activation, dropout, normalize=False
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)
        self.normalize = L2Normalize() if normalize else nn.Identity()

    @torch.no_grad()
    def init_from_data(self, X: torch.Tensor) -> ResidualEmbedding:
        """Set the linear path to the PCA rotation of the rows of ``X`` (centred)."""
        X = torch.tensor(np.array(X, dtype=np.float64))  # a copy: X may be read-only
        _, _, vh = torch.linalg.svd(X - X.mean(0), full_matrices=False)  # rows: principal axes
        weight = torch.zeros_like(self.linear.weight, dtype=torch.float64)
        k = min(len(vh), weight.shape[0])
        weight[:k] = vh[:k]
        self.linear.weight.copy_(weight)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(self.linear(x) + self.mlp(x))


def build_module(
    module: nn.Module | Callable[[int], nn.Module] | None,
    n_features: int,
    residual: bool = False,
    **mlp_params,
) -> nn.Module:
    """The network an estimator trains.

    ``module`` may be ``None`` (the MLP of ``make_mlp(n_features, **mlp_params)``, or with
    ``residual`` a :class:`ResidualEmbedding` of the same layers), a
    ``torch.nn.Module`` (deep-copied, so the estimator's parameter is never trained in place) or a
    callable ``n_features -> nn.Module`` (called once per fresh fit).
    """
    if module is None:
        return (ResidualEmbedding if residual else make_mlp)(n_features, **mlp_params)
    if isinstance(module, nn.Module):
        return copy.deepcopy(module)
    built = module(n_features)
    if not isinstance(built, nn.Module):
        raise TypeError(
            f"module must be a torch.nn.Module or a callable returning one; the callable "
            f"returned {type(built).__name__}."
        )
    return built
