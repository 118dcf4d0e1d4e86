"""The embedding networks: a small MLP by default, or any torch module a user brings."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "L2Normalize", "build_module", "make_mlp"]

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


def make_mlp(
    n_features: int,
    n_components: int,
    hidden_layer_sizes: Sequence[int] = (256,),
    activation: str = "relu",
    dropout: float = 0.0,
    normalize: bool = True,
) -> nn.Sequential:
    """``Linear -> activation [-> Dropout]`` per hidden layer, a final ``Linear`` to
    ``n_components``, then optionally :class:`L2Normalize`."""
    layers: list[nn.Module] = []
    width = n_features
    for size in hidden_layer_sizes:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, n_components))
    if normalize:
        layers.append(L2Normalize())
    return nn.Sequential(*layers)


def build_module(
    module: nn.Module | Callable[[int], nn.Module] | None, n_features: int, **mlp_params
) -> nn.Module:
    """The network an estimator trains.

    ``module`` may be ``None`` (the MLP of ``make_mlp(n_features, **mlp_params)``), a
    ``torch.nn.Module`` (deep-copied, so the estimator's parameter is never trained in place) or a
    callable ``n_features -> nn.Module`` (called once per fresh fit).
    """
    if module is None:
        return make_mlp(n_features, **mlp_params)
    if isinstance(module, nn.Module):
        return copy.deepcopy(module)
    built = module(n_features)
    if not isinstance(built, nn.Module):
        raise TypeError(
            f"module must be a torch.nn.Module or a callable returning one; the callable "
            f"returned {type(built).__name__}."
        )
    return built
