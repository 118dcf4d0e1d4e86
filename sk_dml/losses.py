"""The losses as pure torch functions: ``(embeddings, labels, ...) -> scalar``.

The pair and triplet losses work on the ``(B, B)`` distance (or similarity) matrix of the batch
with per-row reductions, so time is O(B^2) (O(B^2 log B) for the triplet windows) and memory
O(B^2): no ``B^3`` triplet list and no ``|P| x |N|`` matrix is ever built; the
Multi-Similarity loss works the same way on the cosine similarities. The proxy loss
compares the batch with one learnable proxy per class instead: O(B x C). Each returns a
scalar that is connected to the autograd graph (a zero with a gradient when no pair or
triplet is active) and never NaN for finite input.

Notation: D = ``pairwise_distance(embeddings, metric=distance)``; S = the cosine similarities;
a positive pair is i != j with y_i == y_j, a negative pair y_i != y_j; relu(x) = max(0, x).

A loss's hyper-parameters are keyword-only, with the defaults of its loss object in
:mod:`sk_dml.criteria` (``tests/test_losses.py`` checks that they agree, and pins the one
deliberate exception: :func:`npair_loss`'s ``l2_reg``); that object documents their meaning,
ranges and defaults once, for the function and the estimators alike.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._triplet_windows import positives_table, window_weights
from .distances import check_metric, paired_distance, pairwise_distance
from .miners import (
    check_mining,
    hardest_pairs,
    multi_similarity_pairs,
    pair_masks,
)

__all__ = [
    "contrastive_loss",
    "arcface_loss",
    "contrastive_pair_loss",
    "cosface_loss",
    "lifted_struct_loss",
    "log_ratio_loss",
    "multi_similarity_loss",
    "normalized_softmax_loss",
    "npair_loss",
    "proxy_anchor_loss",
    "triplet_constraint_loss",
    "triplet_loss",
]


def _check_batch(embeddings: torch.Tensor, labels) -> torch.Tensor:
    """Validate a batch and return its labels as a tensor on the embeddings' device."""
    if not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 2:
        raise ValueError(
            f"embeddings must be a 2-D torch.Tensor (batch, dim), got {type(embeddings).__name__}"
            f" of shape {tuple(getattr(embeddings, 'shape', ()))}."
        )
    labels = torch.as_tensor(labels, device=embeddings.device)
    if labels.ndim != 1 or len(labels) != len(embeddings):
        raise ValueError(
            f"labels must be 1-D with one entry per embedding: got shape {tuple(labels.shape)} "
            f"for {len(embeddings)} embeddings."
        )
    return labels


def _check_margin(margin: float) -> None:
    if not margin >= 0:  # also refuses NaN
        raise ValueError(f"margin must be >= 0, got {margin!r}.")


def _zero(embeddings: torch.Tensor) -> torch.Tensor:
    """A zero that keeps the graph connected, for batches where nothing is active."""
    return embeddings.sum() * 0.0


def _row_logsumexp(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logsumexp of each row over ``mask``; rows with an empty mask give 0 (and ``False``).

    An all ``-inf`` row would make logsumexp's gradient NaN, so empty rows are filled with zeros
    before the reduction and reported through the second output instead.
    """
    has_any = mask.any(dim=1)
    masked = values.masked_fill(~mask, float("-inf"))
    masked = torch.where(has_any.unsqueeze(1), masked, torch.zeros_like(values))
    return torch.logsumexp(masked, dim=1), has_any


def contrastive_loss(
    embeddings: torch.Tensor, labels, *, margin: float = 1.0, distance: str = "euclidean"
) -> torch.Tensor:
    """Contrastive loss (Hadsell, Chopra & LeCun 2006).

    Mean over all unordered pairs i < j of ``[y_i == y_j] D_ij^2 + [y_i != y_j] relu(m - D_ij)^2``:
    positives are pulled together, negatives pushed apart until they are ``margin`` away.
    ``margin`` and ``distance``: see :class:`~sk_dml.criteria.ContrastiveLoss`.
    """
    labels = _check_batch(embeddings, labels)
    _check_margin(margin)
    batch = len(labels)
    if batch < 2:
        return _zero(embeddings)
    dist = pairwise_distance(embeddings, metric=check_metric(distance))
    positive, negative = pair_masks(labels)
    per_pair = torch.where(positive, dist.square(), 0.0) + torch.where(
        negative, F.relu(margin - dist).square(), 0.0
    )
    # The full matrix holds every unordered pair twice.
    return per_pair.sum() / (batch * (batch - 1))


def triplet_loss(
    embeddings: torch.Tensor,
    labels,
    *,
    margin: float = 0.2,
    distance: str = "euclidean",
    mining: str = "all",
    triplets: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Triplet margin loss ``l = relu(D_ap - D_an + margin)``, optionally with hard-sample mining.

    Parameters
    ----------
    embeddings : torch.Tensor of shape (B, dim)
    labels : array-like of shape (B,)
    margin, distance, mining
        As :class:`~sk_dml.criteria.TripletLoss` documents them. ``mining`` picks the triplets
        of the batch that count:

        - ``all``: mean of l over the valid triplets with l > 0 (batch-all);
        - ``semihard``: mean of l over triplets with D_ap < D_an < D_ap + margin;
        - ``hard``: mean of l over triplets with D_an < D_ap;
        - ``batch_hard``: mean over anchors of relu(max_p D_ap - min_n D_an + margin).
    triplets : tuple of three LongTensors, optional
        Precomputed ``(anchors, positives, negatives)``, e.g. from
        :func:`sk_dml.miners.mine_triplets` with another distance; the loss is then the mean of l
        over them and ``mining`` is not used.

    Notes
    -----
    The window modes never list triplets. When anchors have few positives (class-balanced
    batches), each positive pair is compared with its anchor's row of distances: O(B^2 K) for
    K rows per class. Otherwise each anchor's positives are sorted once and every negative is
    ranked among their windows by binary search: O(B^2 log K) time and O(B^2) memory whatever
    the labels; or, for the semi-hard window in batches of up to 256 rows, each anchor's
    negatives are sorted and each window found among them: O(B^2 log B). No B^3 tensor is
    built either way, and the loss is the same sum of ``relu(D_ap - D_an + margin)`` over the
    same triplets, differentiated as a weighted sum of the distances. ``batch_hard`` mines on
    distances computed without a graph and differentiates only the 2B pairs it picks.
    """
    labels = _check_batch(embeddings, labels)
    _check_margin(margin)
    metric = check_metric(distance)
    if triplets is not None:
        dist = pairwise_distance(embeddings, metric=metric)  # (B, B)
        anchors, positives, negatives = (torch.as_tensor(t, device=dist.device) for t in triplets)
        if len(anchors) == 0:
            return _zero(embeddings)
        return F.relu(dist[anchors, positives] - dist[anchors, negatives] + margin).mean()
    # The masks below keep the value and the graph (zero gradients) when nothing is active,
    # without asking the device whether anything is: a host sync stalls a GPU.
    if check_mining(mining) == "batch_hard":
        # Mined without a graph; only the 2B chosen pairs' distances are differentiated.
        with torch.no_grad():
            dist = pairwise_distance(embeddings.detach(), metric=metric)
            _, _, pos_idx, neg_idx, valid = hardest_pairs(dist, labels)
        d_pos = paired_distance(embeddings, embeddings[pos_idx], metric)
        d_neg = paired_distance(embeddings, embeddings[neg_idx], metric)
        per_anchor = torch.where(valid, F.relu(d_pos - d_neg + margin), 0.0)
        return per_anchor.sum() / valid.sum().clamp_min(1)

    dist = pairwise_distance(embeddings, metric=metric)  # (B, B)
    pos_index, pos_valid = positives_table(labels)
    negative = labels.unsqueeze(0) != labels.unsqueeze(1)
    weights, n_active = window_weights(
        dist.detach(), pos_index, pos_valid, negative, margin, mining
    )
    # sum over the window's triplets of D_ap - D_an + margin = sum(W * D) + margin * count.
    total = (weights * dist).sum(dtype=torch.float64) + margin * n_active
    return (total / n_active.clamp_min(1)).to(dist.dtype)


def npair_loss(embeddings: torch.Tensor, labels, *, l2_reg: float = 0.0) -> torch.Tensor:
    """Multi-class N-pair loss (Sohn 2016) for any batch with repeated labels.

    With similarities ``s_ij = f_i . f_j``: for every ordered positive pair (a, p) whose anchor has
    a negative, ``log(1 + sum_n exp(s_an - s_ap)) = softplus(logsumexp_n s_an - s_ap)``; the mean
    over those pairs plus ``l2_reg * mean_i ||f_i||^2`` (the paper's embedding-norm penalty).
    Its default here is 0, the paper's loss without the penalty (pytorch-metric-learning's
    ``NPairsLoss()``); :class:`~sk_dml.criteria.NPairLoss` defaults to 0.002, since its
    embedders do not normalise.
    """
    labels = _check_batch(embeddings, labels)
    if not l2_reg >= 0:
        raise ValueError(f"l2_reg must be >= 0, got {l2_reg!r}.")
    sim = embeddings @ embeddings.T  # (B, B)
    positive, negative = pair_masks(labels)
    lse_neg, has_negative = _row_logsumexp(sim, negative)  # (B,)
    valid = positive & has_negative.unsqueeze(1)
    penalty = l2_reg * embeddings.square().sum(1).mean() if l2_reg else 0.0
    per_pair = F.softplus(lse_neg.unsqueeze(1) - sim)  # (B, B): term of pair (a, p)
    # A masked mean, not per_pair[valid]: no host sync, and a connected zero when no pair is.
    return torch.where(valid, per_pair, 0.0).sum() / valid.sum().clamp_min(1) + penalty


def lifted_struct_loss(
    embeddings: torch.Tensor,
    labels,
    *,
    margin: float = 1.0,
    distance: str = "euclidean",
    variant: str = "smooth",
) -> torch.Tensor:
    """Lifted structured loss (Oh Song et al. 2016).

    For each unordered positive pair i < j, with N_i the negatives of i:

    - ``variant="hard"`` (the paper's eq. 3: the nearer of the two hardest negatives wins; not
      smooth, so only that negative gets a gradient):
      ``J_ij = D_ij + margin - min(min_{k in N_i} D_ik, min_{l in N_j} D_jl)``;
    - ``variant="smooth"`` (the paper's eq. 4, a smooth upper bound of the hard one that gives
      every negative a gradient):
      ``J_ij = D_ij + log(sum_{k in N_i} exp(margin - D_ik) + sum_{l in N_j} exp(margin - D_jl))``.

    loss = ``1 / (2|P|) * sum relu(J_ij)^2`` over the pairs P that have a negative. Each row's
    negatives are reduced once (a min or a logsumexp), so nothing of size ``|P| x |N|`` is built.
    ``margin``, ``distance`` and ``variant``: see :class:`~sk_dml.criteria.LiftedStructLoss`.
    """
    labels = _check_batch(embeddings, labels)
    _check_margin(margin)
    if variant not in ("smooth", "hard"):
        raise ValueError(f"Unknown variant {variant!r}; expected 'smooth' or 'hard'.")
    dist = pairwise_distance(embeddings, metric=check_metric(distance))  # (B, B)
    positive, negative = pair_masks(labels)
    if variant == "hard":
        nearest_neg = dist.masked_fill(~negative, float("inf")).min(dim=1).values  # (B,)
        has_negative = negative.any(dim=1)
        nearest = torch.minimum(nearest_neg.unsqueeze(1), nearest_neg.unsqueeze(0))
        objective = dist + margin - nearest  # (B, B)
    else:
        lse, has_negative = _row_logsumexp(margin - dist, negative)  # (B,)
        objective = dist + torch.logaddexp(lse.unsqueeze(1), lse.unsqueeze(0))
    upper = torch.ones_like(positive).triu(diagonal=1)
    valid = positive & upper & (has_negative.unsqueeze(1) | has_negative.unsqueeze(0))
    # A masked sum (no host sync); a connected zero when no pair is valid.
    per_pair = torch.where(valid, F.relu(objective), 0.0).square()
    return per_pair.sum() / (2 * valid.sum().clamp_min(1))


def proxy_anchor_loss(
    embeddings: torch.Tensor,
    labels,
    proxies: torch.Tensor,
    *,
    margin: float = 0.1,
    alpha: float = 32.0,
) -> torch.Tensor:
    """Proxy-Anchor loss (Kim, Kim, Cho & Kwak, CVPR 2020).

    Each class c has a learnable proxy p_c; s(x, p) is the cosine similarity. With P+ the proxies
    whose class occurs in the batch, X+_c the batch rows of class c and X-_c the others::

        1/|P+| sum_{c in P+} log(1 + sum_{x in X+_c} exp(-alpha (s(x, p_c) - margin)))
        + 1/C  sum_{c}       log(1 + sum_{x in X-_c} exp( alpha (s(x, p_c) + margin)))

    Every row pulls its proxy and pushes all others, weighted by how hard it is, so one batch
    informs all C classes at a cost of O(B x C). ``labels`` are proxy indices in ``[0, C)``.
    ``log(1 + sum exp)`` is evaluated as ``softplus(logsumexp)``: finite for any finite input.
    ``margin`` and ``alpha``: see :class:`~sk_dml.criteria.ProxyAnchorLoss`.
    """
    labels = _check_batch(embeddings, labels)
    _check_margin(margin)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha!r}.")
    if not isinstance(proxies, torch.Tensor) or proxies.ndim != 2:
        raise ValueError("proxies must be a 2-D torch.Tensor (n_classes, dim).")
    if proxies.shape[1] != embeddings.shape[1]:
        raise ValueError(
            f"proxies have dimension {proxies.shape[1]} but the embeddings {embeddings.shape[1]}."
        )
    n_classes = len(proxies)
    if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < n_classes):
        raise ValueError(f"labels must be proxy indices in [0, {n_classes}).")
    sim = F.normalize(embeddings, dim=1) @ F.normalize(proxies, dim=1).T  # (B, C)
    positive = labels.unsqueeze(1) == torch.arange(n_classes, device=labels.device)  # (B, C)
    # Columns are proxies: reduce over the rows of the batch.
    lse_pos, present = _row_logsumexp((-alpha * (sim - margin)).T, positive.T)  # (C,)
    lse_neg, has_neg = _row_logsumexp((alpha * (sim + margin)).T, ~positive.T)
    pos_term = torch.where(present, F.softplus(lse_pos), 0.0).sum() / present.sum().clamp_min(1)
    neg_term = torch.where(has_neg, F.softplus(lse_neg), 0.0).sum() / n_classes
    return pos_term + neg_term


def multi_similarity_loss(
    embeddings: torch.Tensor,
    labels,
    *,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
    epsilon: float | None = 0.1,
) -> torch.Tensor:
    """Multi-Similarity loss (Wang, Han, Huang, Dong & Scott, CVPR 2019).

    S is the cosine similarity of the batch; P_i and N_i are the positives and negatives of
    anchor i that :func:`sk_dml.miners.multi_similarity_pairs` keeps with this ``epsilon``
    (every positive and negative pair when ``epsilon`` is None)::

        1/B sum_i [ 1/alpha log(1 + sum_{p in P_i} exp(-alpha (S_ip - base)))
                  + 1/beta  log(1 + sum_{n in N_i} exp( beta  (S_in - base))) ]

    Each pair is weighted by its own similarity, by the other pairs of its anchor and by the
    mining, so easy pairs count little. An anchor's term without kept positives (negatives) is 0,
    and the mean is over all B anchors, those without any kept pair included: as in
    pytorch-metric-learning's ``MultiSimilarityLoss``, whose default ``MeanReducer`` averages
    its B per-row losses. Fed ``MultiSimilarityMiner(epsilon)``'s pairs (no miner for
    ``epsilon=None``), that loss has the same value, except that it returns 0 when at most one
    positive and one negative pair are mined. (The authors' code also divides by B, but counts
    an anchor only when it keeps both a positive and a negative.) ``log(1 + sum exp)`` is
    evaluated as ``softplus(logsumexp)``: finite for any finite input. O(B^2) time and memory.

    Parameters
    ----------
    embeddings : torch.Tensor of shape (B, dim)
    labels : array-like of shape (B,)
    alpha, beta, base, epsilon
        The scales of the positive and negative pairs, the similarity that separates them
        and the margin of the pair mining, as :class:`~sk_dml.criteria.MultiSimilarityLoss`
        documents them.
    """
    labels = _check_batch(embeddings, labels)
    for name, scale in (("alpha", alpha), ("beta", beta)):
        if not scale > 0:  # also refuses NaN
            raise ValueError(f"{name} must be > 0, got {scale!r}.")
        if not math.isfinite(scale):
            raise ValueError(f"{name} must be finite, got {scale!r}.")
    if not math.isfinite(base):
        raise ValueError(f"base must be a finite real number, got {base!r}.")
    if epsilon is not None and not epsilon >= 0:
        raise ValueError(f"epsilon must be >= 0 or None, got {epsilon!r}.")
    if len(labels) < 2:  # a shape, not a value: no pair at all
        return _zero(embeddings)
    unit = F.normalize(embeddings, dim=1)
    sim = unit @ unit.T  # (B, B)
    if epsilon is None:
        positive, negative = pair_masks(labels)
    else:
        positive, negative = multi_similarity_pairs(sim, labels, epsilon=epsilon)
    # Rows without a kept pair come back as (0, False) and are masked out: no host sync.
    lse_pos, has_pos = _row_logsumexp(-alpha * (sim - base), positive)  # (B,)
    lse_neg, has_neg = _row_logsumexp(beta * (sim - base), negative)
    per_anchor = (
        torch.where(has_pos, F.softplus(lse_pos), 0.0) / alpha
        + torch.where(has_neg, F.softplus(lse_neg), 0.0) / beta
    )
    return per_anchor.mean()


# ------------------------------------------------------------ normalised-softmax family
def _check_class_weights(embeddings: torch.Tensor, labels, weights) -> torch.Tensor:
    """Validate a batch against one weight vector per class; returns the labels."""
    labels = _check_batch(embeddings, labels)
    if not isinstance(weights, torch.Tensor) or weights.ndim != 2:
        raise ValueError("weights must be a 2-D torch.Tensor (n_classes, dim).")
    if weights.shape[1] != embeddings.shape[1]:
        raise ValueError(
            f"weights have dimension {weights.shape[1]} but the embeddings {embeddings.shape[1]}."
        )
    return labels


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not (value > 0 and math.isfinite(value)):  # also refuses NaN
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}.")


def _class_cosines(embeddings: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """cos(x_i, w_c) for every row and class: (B, C)."""
    return F.normalize(embeddings, dim=1) @ F.normalize(weights, dim=1).T


def normalized_softmax_loss(
    embeddings: torch.Tensor, labels, weights: torch.Tensor, *, temperature: float = 0.05
) -> torch.Tensor:
    """Normalised softmax loss (Zhai & Wu, "Classification is a Strong Baseline for Deep
    Metric Learning", BMVC 2019).

    A softmax classifier whose rows and class weights are both L2-normalised, so its logits
    are cosines; with ``w_c`` the weight of class c (a row of ``weights``)::

        1/B sum_i -log softmax_c(cos(x_i, w_c) / temperature)[y_i]

    ``labels`` are class indices in ``[0, C)``. Equal to pytorch-metric-learning's
    ``NormalizedSoftmaxLoss`` with ``W = weights.T``. O(B x C).

    Parameters
    ----------
    embeddings : torch.Tensor of shape (B, dim)
    labels : array-like of shape (B,)
    weights : torch.Tensor of shape (C, dim)
        One learnable vector per class.
    temperature
        Divides the cosines, as :class:`~sk_dml.criteria.NormalizedSoftmaxLoss` documents it.
    """
    labels = _check_class_weights(embeddings, labels, weights)
    _check_positive(temperature=temperature)
    return F.cross_entropy(_class_cosines(embeddings, weights) / temperature, labels)


def _margin_softmax(cosines, labels, target_logit, scale: float) -> torch.Tensor:
    """Cross-entropy of ``scale * cosines`` with each row's own class's cosine replaced by
    ``target_logit(that cosine)``."""
    own = cosines.gather(1, labels.unsqueeze(1))
    logits = cosines.scatter(1, labels.unsqueeze(1), target_logit(own))
    return F.cross_entropy(scale * logits, labels)


def cosface_loss(
    embeddings: torch.Tensor,
    labels,
    weights: torch.Tensor,
    *,
    margin: float = 0.35,
    scale: float = 64.0,
) -> torch.Tensor:
    """CosFace, the large margin cosine loss (Wang et al., CVPR 2018).

    The normalised softmax with an additive margin on the cosine of each row's own class::

        1/B sum_i -log [ exp(s (cos_iy - m)) / (exp(s (cos_iy - m)) + sum_{c != y} exp(s cos_ic)) ]

    with ``cos_ic = cos(x_i, w_c)``, s = ``scale`` and m = ``margin``. Equal to
    pytorch-metric-learning's ``CosFaceLoss`` with ``W = weights.T``. O(B x C).

    Parameters
    ----------
    embeddings : torch.Tensor of shape (B, dim)
    labels : array-like of shape (B,)
    weights : torch.Tensor of shape (C, dim)
    margin, scale
        The margin on the cosine and the scale of the logits, as
        :class:`~sk_dml.criteria.CosFaceLoss` documents them.
    """
    labels = _check_class_weights(embeddings, labels, weights)
    _check_positive(scale=scale)
    if not 0 <= margin <= 2:
        raise ValueError(f"margin must be in [0, 2] (a difference of cosines), got {margin!r}.")
    return _margin_softmax(
        _class_cosines(embeddings, weights), labels, lambda cos: cos - margin, scale
    )


def arcface_loss(
    embeddings: torch.Tensor,
    labels,
    weights: torch.Tensor,
    *,
    margin: float = 0.5,
    scale: float = 64.0,
) -> torch.Tensor:
    """ArcFace, the additive angular margin loss (Deng et al., CVPR 2019).

    The normalised softmax with an angle ``margin`` (radians) added to the angle between each
    row and its own class's weight: its logit is ``s cos(theta + m)``. Where ``theta + m``
    would pass pi (and the logit would rise again) it is ``s (cos theta - m sin m)`` instead,
    which keeps the loss decreasing in theta (the authors' code does the same).
    ``cos(theta + m)`` is computed as ``cos theta cos m - sin theta sin m`` (with sin theta at
    least the square root of the dtype's epsilon), so the gradient stays finite at
    cos theta = +-1. Equal to pytorch-metric-learning's ``ArcFaceLoss`` with
    ``W = weights.T`` and its ``margin`` in degrees (``np.degrees(margin)``; its default 28.6
    is this default 0.5). O(B x C).

    Parameters
    ----------
    embeddings : torch.Tensor of shape (B, dim)
    labels : array-like of shape (B,)
    weights : torch.Tensor of shape (C, dim)
    margin, scale
        The margin on the angle (radians) and the scale of the logits, as
        :class:`~sk_dml.criteria.ArcFaceLoss` documents them.
    """
    labels = _check_class_weights(embeddings, labels, weights)
    _check_positive(scale=scale)
    if not 0 <= margin <= math.pi / 2:
        raise ValueError(f"margin must be an angle in [0, pi/2] radians, got {margin!r}.")
    cos_m, sin_m = math.cos(margin), math.sin(margin)

    def target_logit(cos: torch.Tensor) -> torch.Tensor:
        # sin theta at least sqrt(eps) of the dtype: a finite gradient at |cos theta| = 1, and
        # an error no larger than the rounding of cos theta itself.
        sin = (1.0 - cos.square()).clamp_min(torch.finfo(cos.dtype).eps).sqrt()
        # theta <= pi - m  <=>  cos theta >= cos(pi - m) = -cos m
        return torch.where(cos >= -cos_m, cos * cos_m - sin * sin_m, cos - margin * sin_m)

    return _margin_softmax(_class_cosines(embeddings, weights), labels, target_logit, scale)


# ------------------------------------------------------------------ beyond class labels
def contrastive_pair_loss(
    left: torch.Tensor, right: torch.Tensor, same, *, margin: float = 1.0,
    distance: str = "euclidean",
) -> torch.Tensor:  # fmt: skip
    """The contrastive loss of labelled pairs (Hadsell, Chopra & LeCun 2006).

    Row i of ``left`` and of ``right`` form a pair, similar where ``same[i]`` is true: the
    mean over pairs of ``same D^2 + (1 - same) relu(margin - D)^2``, with D the ``distance``
    between the two rows. This is :func:`contrastive_loss` on given pairs instead of every
    pair of a labelled batch; ``margin`` and ``distance``: see
    :class:`~sk_dml.criteria.ContrastiveLoss`.
    """
    if not isinstance(left, torch.Tensor) or left.ndim != 2 or left.shape != right.shape:
        raise ValueError(
            "left and right must be 2-D torch.Tensors of one shape (pairs, dim), got shapes "
            f"{tuple(getattr(left, 'shape', ()))} and {tuple(getattr(right, 'shape', ()))}."
        )
    same = torch.as_tensor(same, device=left.device).bool()
    if same.shape != (len(left),):
        raise ValueError(f"same must have one entry per pair, got shape {tuple(same.shape)}.")
    _check_margin(margin)
    if len(left) == 0:
        return _zero(left)
    dist = paired_distance(left, right, check_metric(distance))
    return torch.where(same, dist.square(), F.relu(margin - dist).square()).mean()


def triplet_constraint_loss(
    anchors: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, *,
    margin: float = 0.2, distance: str = "euclidean",
) -> torch.Tensor:  # fmt: skip
    """The triplet margin loss of given constraints "anchor i is nearer positive i than
    negative i": the mean over triplets of ``relu(D_ap - D_an + margin)``. ``margin`` and
    ``distance``: see :class:`~sk_dml.criteria.TripletLoss`."""
    shapes = {tuple(t.shape) for t in (anchors, positives, negatives)}
    if len(shapes) != 1 or anchors.ndim != 2:
        raise ValueError(
            f"anchors, positives and negatives must be 2-D of one shape, got {sorted(shapes)}."
        )
    _check_margin(margin)
    if len(anchors) == 0:
        return _zero(anchors)
    metric = check_metric(distance)
    d_ap = paired_distance(anchors, positives, metric)
    d_an = paired_distance(anchors, negatives, metric)
    return F.relu(d_ap - d_an + margin).mean()


def log_ratio_loss(embeddings: torch.Tensor, targets, *, epsilon: float = 1e-3) -> torch.Tensor:
    """Log-ratio loss (Kim, Kim, Cho & Kwak, CVPR 2019, "Deep Metric Learning Beyond Binary
    Supervision"): distances in the embedding follow the ratios of distances of the targets.

    With ``D_ij`` the squared Euclidean distance of embeddings i and j and ``T_ij`` the
    Euclidean distance of their targets, for every anchor a and every unordered pair {i, j} of
    the other rows of the batch (the paper's dense triplet mining)::

        ( log((D_ai + eps) / (D_aj + eps)) - log((T_ai + eps) / (T_aj + eps)) )^2

    averaged over anchors and pairs. With ``u_i = log(D_ai + eps) - log(T_ai + eps)`` an
    anchor's sum over pairs is ``m sum u_i^2 - (sum u_i)^2`` (m = B - 1 other rows), so the
    exact loss costs O(B^2) time and memory, not the O(B^3) of listing triplets.

    Parameters
    ----------
    embeddings : torch.Tensor of shape (B, dim)
    targets : array-like of shape (B,) or (B, n_targets)
        Continuous targets, on a common scale (standardise them first).
    epsilon
        Added to both distances, as :class:`~sk_dml.criteria.LogRatioLoss` documents it.
    """
    if not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 2:
        raise ValueError(
            f"embeddings must be a 2-D torch.Tensor (batch, dim), got "
            f"{type(embeddings).__name__} of shape {tuple(getattr(embeddings, 'shape', ()))}."
        )
    targets = torch.as_tensor(targets, device=embeddings.device)
    targets = targets.to(embeddings.dtype if targets.is_floating_point() else torch.float32)
    if targets.ndim == 1:
        targets = targets.unsqueeze(1)
    if targets.ndim != 2 or len(targets) != len(embeddings):
        raise ValueError(
            f"targets must have one row per embedding: got shape {tuple(targets.shape)} for "
            f"{len(embeddings)} embeddings."
        )
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon!r}.")
    batch = len(embeddings)
    if batch < 3:  # an anchor needs two other rows
        return _zero(embeddings)
    others = ~torch.eye(batch, dtype=torch.bool, device=embeddings.device)
    d_emb = pairwise_distance(embeddings, metric="sqeuclidean")
    d_target = pairwise_distance(targets.to(embeddings.dtype), metric="euclidean")
    u = torch.where(others, torch.log(d_emb + epsilon) - torch.log(d_target + epsilon), 0.0)
    m = batch - 1
    per_anchor = m * u.square().sum(1) - u.sum(1).square()
    return per_anchor.sum() / (batch * m * (m - 1) / 2)
