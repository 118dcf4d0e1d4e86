"""Hard-sample mining: which pairs and triplets of a batch count.

Every rule here works on a precomputed ``(B, B)`` distance (or, for the pair rule, similarity)
matrix, so a user can mine with one distance and train with another. Triplet rules are
expressed as an open *window* on the anchor-negative distance, which is what lets
:func:`sk_dml.losses.triplet_loss` evaluate them in O(B^2 log B) without listing triplets;
:func:`mine_triplets` lists them explicitly for use in one's own loss.

==============  =================================================  ==============================
mining          negatives n counted for the positive pair (a, p)   reference
==============  =================================================  ==============================
``all``         D_an < D_ap + margin (the triplets with a loss)    Hermans et al. 2017, batch-all
``semihard``    D_ap < D_an < D_ap + margin                        Schroff et al. 2015 (FaceNet)
``hard``        D_an < D_ap                                        (the violating triplets)
``batch_hard``  per anchor: farthest positive, nearest negative    Hermans et al. 2017
==============  =================================================  ==============================

Pair mining, on a similarity matrix S (higher = more alike): :func:`multi_similarity_pairs`
keeps the negative pairs (i, n) with ``S_in > min_{p in P_i} S_ip - epsilon`` and the positive
pairs (i, p) with ``S_ip < max_{n in N_i} S_in + epsilon`` (Wang et al. 2019, the
Multi-Similarity miner that :func:`sk_dml.losses.multi_similarity_loss` uses).
"""

from __future__ import annotations

import torch

__all__ = [
    "TRIPLET_MINING",
    "check_mining",
    "hardest_pairs",
    "mine_triplets",
    "multi_similarity_pairs",
    "pair_masks",
    "triplet_window",
]

TRIPLET_MINING = ("all", "semihard", "hard", "batch_hard")

# Anchors per chunk in mine_triplets, so its (chunk, B, B) boolean tensor stays near 16M elements.
_CHUNK_ELEMENTS = 1 << 24


def check_mining(mining: str) -> str:
    """Return ``mining`` or raise a ValueError naming the valid choices."""
    if mining not in TRIPLET_MINING:
        raise ValueError(f"Unknown mining {mining!r}; expected one of {', '.join(TRIPLET_MINING)}.")
    return mining


def pair_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean ``(B, B)`` masks of positive pairs (same label, i != j) and negative pairs."""
    labels = torch.as_tensor(labels)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return positive, ~same


def multi_similarity_pairs(
    sim: torch.Tensor, labels, *, epsilon: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs the Multi-Similarity miner keeps (Wang et al., CVPR 2019, section 3.3).

    With P_i and N_i the positives (same label, i != j) and negatives of anchor i:

    - a negative pair (i, n) is kept when ``S_in > min_{p in P_i} S_ip - epsilon``;
    - a positive pair (i, p) is kept when ``S_ip < max_{n in N_i} S_in + epsilon``.

    Both inequalities are strict. An anchor without positives keeps no negative and one without
    negatives keeps no positive (the min and max of an empty set are +inf and -inf). The
    comparisons are evaluated as ``S_in + epsilon > min_p S_ip`` and ``S_ip - epsilon <
    max_n S_in``, as pytorch-metric-learning's ``MultiSimilarityMiner`` does, so both round alike
    at ties.

    Parameters
    ----------
    sim : torch.Tensor of shape (B, B)
        Similarities, higher = more alike (e.g. cosine similarity); used without gradient.
    labels : array-like of shape (B,)
    epsilon : float, default=0.1
        Must be >= 0.

    Returns
    -------
    positive, negative : boolean torch.Tensor of shape (B, B)
        Masks of the kept positive and negative pairs (row = anchor); a subset of
        :func:`pair_masks`. O(B^2) time and memory, and no host synchronisation.
    """
    if not epsilon >= 0:  # also refuses NaN
        raise ValueError(f"epsilon must be >= 0, got {epsilon!r}.")
    if not isinstance(sim, torch.Tensor) or sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(
            f"sim must be a square 2-D torch.Tensor, got shape {tuple(getattr(sim, 'shape', ()))}."
        )
    labels = torch.as_tensor(labels, device=sim.device)
    if labels.shape != sim.shape[:1]:
        raise ValueError(
            f"labels must be 1-D with one entry per row of sim: got shape {tuple(labels.shape)} "
            f"for {len(sim)} rows."
        )
    positive, negative = pair_masks(labels)
    if len(labels) == 0:  # nothing to reduce over (a shape, not a value: no sync)
        return positive, negative
    sim = sim.detach()
    hardest_pos = sim.masked_fill(~positive, float("inf")).amin(dim=1, keepdim=True)  # (B, 1)
    hardest_neg = sim.masked_fill(~negative, float("-inf")).amax(dim=1, keepdim=True)
    return positive & (sim - epsilon < hardest_neg), negative & (sim + epsilon > hardest_pos)


def triplet_window(
    d_ap: torch.Tensor, margin: float, mining: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Open interval ``(low, high)`` of anchor-negative distances a mining rule keeps.

    A negative n counts for the positive pair (a, p) exactly when ``low < D_an < high``;
    ``d_ap`` may have any shape and the bounds have the same one.
    """
    if mining == "all":
        return torch.full_like(d_ap, float("-inf")), d_ap + margin
    if mining == "semihard":
        return d_ap, d_ap + margin
    if mining == "hard":
        return torch.full_like(d_ap, float("-inf")), d_ap
    raise ValueError(f"mining={mining!r} has no negative window (expected all, semihard or hard).")


def hardest_pairs(
    dist: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch-hard mining: each anchor's farthest positive and nearest negative.

    Returns
    -------
    d_pos, d_neg : (B,) distances to the hardest positive and hardest negative
    pos_idx, neg_idx : (B,) their indices
    valid : (B,) bool, anchors that have at least one positive and one negative
    """
    labels = torch.as_tensor(labels, device=dist.device)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    positives = torch.where(same, dist, float("-inf")).fill_diagonal_(float("-inf"))
    d_pos, pos_idx = positives.max(dim=1)
    d_neg, neg_idx = torch.where(same, float("inf"), dist).min(dim=1)
    n_same = same.sum(1)  # the anchor itself included
    valid = (n_same > 1) & (n_same < len(labels))
    return d_pos, d_neg, pos_idx, neg_idx, valid


@torch.no_grad()
def mine_triplets(
    dist: torch.Tensor, labels: torch.Tensor, *, mining: str = "all", margin: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """List the triplets ``(anchors, positives, negatives)`` that a mining rule selects.

    Parameters
    ----------
    dist : torch.Tensor of shape (B, B)
        Distances used for mining (e.g. ``pairwise_distance(emb, metric="cosine")``).
    labels : torch.Tensor of shape (B,)
    mining : {"all", "semihard", "hard", "batch_hard"}
    margin : float

    Returns
    -------
    anchors, positives, negatives : LongTensors of equal length
        Feed them to ``triplet_loss(..., triplets=...)``. With the same distance, the loss over
        these triplets equals ``triplet_loss(..., mining=mining)``.
    """
    check_mining(mining)
    labels = torch.as_tensor(labels, device=dist.device)
    if mining == "batch_hard":
        _, _, pos_idx, neg_idx, valid = hardest_pairs(dist, labels)
        anchors = valid.nonzero().squeeze(1)
        return anchors, pos_idx[anchors], neg_idx[anchors]
    positive, negative = pair_masks(labels)
    batch = len(labels)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, batch * batch))
    found = []
    for start in range(0, batch, chunk):
        rows = slice(start, start + chunk)
        low, high = triplet_window(dist[rows], margin, mining)  # (c, B): per (a, p)
        d_an = dist[rows].unsqueeze(1)  # (c, 1, B): per (a, n)
        keep = (
            positive[rows].unsqueeze(2)
            & negative[rows].unsqueeze(1)
            & (d_an > low.unsqueeze(2))
            & (d_an < high.unsqueeze(2))
        )  # (c, B, B) over (a, p, n)
        a, p, n = keep.nonzero(as_tuple=True)
        found.append((a + start, p, n))
    return tuple(torch.cat(parts) for parts in zip(*found, strict=True))
