"""The torch modules that turn a loss into what the trainer minimises (internal).

A loss object (:mod:`sk_dml.criteria`) builds a *criterion* at fit time
(:meth:`sk_dml.criteria.Loss.build`): its pure function (:mod:`sk_dml.losses`) with the
hyper-parameters bound, as an ``nn.Module`` that owns any learnable parameters the loss has
(one proxy per class). The estimator wraps the network and the criterion into one
*objective*, the module the :class:`sk_dml._training.Trainer` trains, checkpoints and
averages across ranks. None of these is public API: a loss is used through its object or its
function.

Model files and pickles hold no instance of these classes (an estimator pickles without its
trainer, ``MetricEmbedder.__getstate__``; checkpoints hold tensors only), so moving or renaming
them breaks no saved model: ``tests/test_persistence.py`` checks that a pickled model names
none of them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Criterion(nn.Module):
    """A built loss: ``(embeddings, codes) -> scalar``, and how a call's classes map to codes.

    A loss without parameters codes each call's classes afresh (only which rows share a label
    matters); a proxy loss maps them onto the proxies of the classes it was built for.
    """

    #: How the optimizer treats this module's own parameters: a multiple of the network's
    #: learning rate ("lr_multiplier") and, if set, their own "weight_decay".
    optimizer_settings: dict = {}

    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, embeddings: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.function(embeddings, codes)

    def codes_for(self, classes: np.ndarray) -> np.ndarray:
        """The code of each of a training call's (sorted) ``classes``."""
        return np.arange(len(classes))


class TupleCriterion(Criterion):
    """A built loss on tuples of rows: ``(embeddings (B, t, dim), labels) -> scalar``.

    The function takes the t members of the tuples (a pair's two rows, a triplet's anchor,
    positive and negative), then the pair labels when ``labelled``.
    """

    def __init__(self, function, labelled: bool):
        super().__init__(function)
        self.labelled = labelled

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        members = embeddings.unbind(1)
        return self.function(*members, labels) if self.labelled else self.function(*members)


class InBatchPairCriterion(Criterion):
    """A class loss on the rows of a batch of pairs, each row labelled by its entity:
    ``(embeddings (B, 2, dim), targets (B, 3)) -> scalar``, the targets holding each pair's
    label and its two rows' entities (:class:`sk_dml.supervision.LabelledPairs`)."""

    def forward(self, embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        rows = torch.cat([embeddings[:, 0], embeddings[:, 1]])
        return self.function(rows, torch.cat([targets[:, 1], targets[:, 2]]))


class ProxyCriterion(Criterion):
    """A loss with one learnable vector per class of ``classes`` (the sorted training labels):
    a proxy-anchor loss's proxies, a normalised softmax's class weights.

    The vectors are this module's parameters, so they are trained, checkpointed and averaged
    across ranks with the network, with the loss's ``optimizer_settings``. They start as in
    Kim et al. (2020): Kaiming-normal (fan-out) draws from torch's generator, which the fit
    seeds from ``random_state`` (only their directions matter to these losses).
    """

    def __init__(self, function, classes, dim: int, optimizer_settings: dict | None = None):
        super().__init__(function)
        self.optimizer_settings = dict(optimizer_settings or {})
        self.classes = np.asarray(classes)
        self.proxies = nn.Parameter(torch.empty(len(self.classes), dim))
        nn.init.kaiming_normal_(self.proxies, mode="fan_out")

    def forward(self, embeddings: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return self.function(embeddings, codes, self.proxies)

    def codes_for(self, classes: np.ndarray) -> np.ndarray:
        """Each label's proxy; a label without one is a ValueError, never a silent re-coding."""
        classes = np.asarray(classes)
        index = np.searchsorted(self.classes, classes)
        known = (index < len(self.classes)) & (
            self.classes[np.minimum(index, len(self.classes) - 1)] == classes
        )
        if not known.all():
            raise ValueError(
                f"y has classes without a proxy: {classes[~known].tolist()[:10]}. This loss "
                f"learns one vector (proxy or class weight) per class of the first fit "
                f"({len(self.classes)} classes); to add classes, fit again without warm_start."
            )
        return index


class Objective(nn.Module):
    """What training optimises: the embedding network and its loss, as one module.

    ``criterion`` is a :class:`Criterion`; its parameters (a proxy loss's proxies) are
    trained, checkpointed, restored with the best epoch and averaged across ranks together
    with the network's, because they are this module's.
    """

    def __init__(self, module: nn.Module, criterion: nn.Module):
        super().__init__()
        self.module = module
        self.criterion = criterion

    def forward(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(self.module(X), y)


class TupleObjective(Objective):
    """The objective of supervision by tuples of rows (pairs, triplets): its items are
    tuples of indices into ``rows``, the encoded table on the device, which the fit sets
    before training (a plain attribute: not part of the state)."""

    rows: torch.Tensor | None = None

    def forward(self, tuples: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        embeddings = self.module(self.rows[tuples.reshape(-1)])
        return self.criterion(embeddings.view(*tuples.shape, -1), y)
