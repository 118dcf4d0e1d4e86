"""Losses that own learnable parameters, as torch modules the fit loop trains.

A pair or triplet loss is a plain function of the batch; a proxy loss also holds one learnable
vector per class. Wrapped in a module, those vectors are trained, checkpointed and averaged
across ranks with the network (``sk_dml._training.Objective``), and the module remembers which
label each proxy stands for, so that later calls (``partial_fit``, ``warm_start``) map their
labels onto the same proxies instead of silently re-coding them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .losses import proxy_anchor_loss

__all__ = ["ProxyAnchorCriterion"]


class ProxyAnchorCriterion(nn.Module):
    """:func:`sk_dml.losses.proxy_anchor_loss` with one learnable proxy per class of ``classes``.

    Proxies start as in Kim et al. (2020): Kaiming-normal (fan-out) draws from torch's
    generator, which the fit seeds from ``random_state``.
    """

    def __init__(self, classes, dim: int, *, margin: float, alpha: float):
        super().__init__()
        self.classes = np.asarray(classes)
        self.margin = margin
        self.alpha = alpha
        self.proxies = nn.Parameter(torch.empty(len(self.classes), dim))
        nn.init.kaiming_normal_(self.proxies, mode="fan_out")

    def proxy_index(self, classes) -> np.ndarray:
        """The proxy of each label in ``classes``; a label without a proxy is an error."""
        classes = np.asarray(classes)
        index = np.searchsorted(self.classes, classes)
        known = (index < len(self.classes)) & (
            self.classes[np.minimum(index, len(self.classes) - 1)] == classes
        )
        if not known.all():
            raise ValueError(
                f"y has classes without a proxy: {classes[~known].tolist()[:10]}. A proxy loss "
                f"learns one proxy per class of the first fit ({len(self.classes)} classes); "
                "to add classes, fit again without warm_start."
            )
        return index

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return proxy_anchor_loss(
            embeddings, labels, self.proxies, margin=self.margin, alpha=self.alpha
        )
