"""The triplet loss's windows, counted exactly without listing triplets (internal).

:func:`sk_dml.losses.triplet_loss` with ``mining`` in ``all``, ``semihard`` or ``hard``
sums ``D_ap - D_an + margin`` over the triplets whose negative lies in its positive pair's
window (:func:`sk_dml.miners.triplet_window`). Window membership is piecewise constant in
the distances, so that sum is ``sum(W * D) + margin * count`` for a (B, B) weight matrix W of
counts, found here without autograd by one of three exact forms; which costs least depends
on the batch (:func:`window_weights`).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from .miners import triplet_window


def positives_table(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each anchor's positives (the other rows with its label) in a (B, M) table: their row
    indices and which slots are real, M being the most positives any anchor has.

    Built from the sorted labels in O(B log B + B M) (no (B, B) pass); reading M is the
    one host sync of the triplet windows.
    """
    batch, device = len(labels), labels.device
    sorted_labels, order = labels.sort(stable=True)
    first = torch.searchsorted(sorted_labels, labels)  # where each anchor's label starts
    count = torch.searchsorted(sorted_labels, labels, right=True) - first
    width = int(count.max()) - 1 if batch else 0
    place = torch.empty_like(order)
    place[order] = torch.arange(batch, device=device)  # each row's position once sorted
    slots = torch.arange(width, device=device)
    position = first.unsqueeze(1) + slots
    position += position >= place.unsqueeze(1)  # step over the anchor itself
    valid = slots < (count - 1).unsqueeze(1)
    index = order[position.clamp_max(max(batch - 1, 0))].masked_fill(~valid, 0)
    return index, valid


#: The per-anchor form compares each positive pair with its anchor's whole row (B x M x B
#: comparisons): the cheapest up to this many positives per anchor M, sorting or ranking
#: above (``benchmarks/results/epoch_profile.md``).
_PER_ANCHOR_MAX_WIDTH = 8
#: Sorting each anchor's negatives pays for the semi-hard window up to rows of this length:
#: NumPy sorts rows of up to 256 keys with a vectorised network, longer ones 5-10x slower
#: per key, and ranking costs less then.
_SORTED_MAX_BATCH = 256


@torch.no_grad()
def window_weights(dist, pos_index, pos_valid, negative, margin, mining):
    """The (B, B) weights W and the number of triplets in the windows, such that the sum of
    ``D_ap - D_an + margin`` over those triplets is ``sum(W * D) + margin * count``.

    W_ap is the number of negatives in the window of the positive pair (a, p) and -W_an the
    number of windows of anchor a that hold the negative n (window membership is piecewise
    constant, so the sum is linear in D with these counts, found without autograd). The
    three forms count exactly alike; which costs least depends on M, the most positives an
    anchor has: comparing each pair with every negative for few (class-balanced batches of
    many classes), else sorting each anchor's negatives for the semi-hard window (two
    bounds) in batches of up to 256 rows, and ranking them among the sorted positives
    otherwise.
    """
    if pos_index.shape[1] <= _PER_ANCHOR_MAX_WIDTH:
        form = _window_counts_per_anchor
    elif mining == "semihard" and len(dist) <= _SORTED_MAX_BATCH:
        form = _window_counts_sorted
    else:
        form = _window_counts_ranked
    count_ap, count_an = form(dist, pos_index, pos_valid, negative, margin, mining)
    weights = count_an.neg_().scatter_add_(1, pos_index, count_ap)
    # Summed in float64: there may be more triplets than float32 counts exactly.
    return weights, count_ap.sum(dtype=torch.float64)


def _window_counts_per_anchor(dist, pos_index, pos_valid, negative, margin, mining):
    """(negatives in each positive pair's window (B, M), windows holding each (a, n) (B, B)),
    comparing each pair with its anchor's row of distances: O(B^2 M) time and memory."""
    d_ap = dist.gather(1, pos_index)  # (B, M)
    low, high = triplet_window(d_ap, margin, mining)
    high = high.masked_fill(~pos_valid, float("-inf"))  # padding slots: an empty window
    # Non-negatives become NaN, which no comparison keeps: the masks fold into the bounds.
    d_an = dist.masked_fill(~negative, float("nan")).unsqueeze(1)  # (B, 1, B)
    in_window = d_an < high.unsqueeze(2)  # (B, M, B) over (a, p, n)
    if mining == "semihard":  # "all" and "hard" have no lower bound: one pass, not three
        in_window &= d_an > low.unsqueeze(2)
    # Converting once and summing floats is twice as fast as two converting sums.
    in_window = in_window.to(dist.dtype)
    return in_window.sum(2), in_window.sum(1)


def _window_counts_sorted(dist, pos_index, pos_valid, negative, margin, mining):
    """The counts of :func:`_window_counts_per_anchor`, from each anchor's negatives sorted
    by distance: O(B^2 log B) time, O(B^2) memory, whatever the number of positives.

    Each window is then a run of consecutive sorted negatives, found by binary search of its
    two bounds (the very values the mining rule compares with): c_ap is the run's length, and
    c_an the number of runs covering n's position (a prefix sum of +1 at each run's start and
    -1 at its stop), put back in the original order.
    """
    batch, width = pos_index.shape
    low, high = triplet_window(dist.gather(1, pos_index), margin, mining)  # (B, M)
    high = high.masked_fill(~pos_valid, float("-inf"))  # padding slots: an empty run
    ranked, order = _sorted_negatives(dist, negative)
    start = torch.searchsorted(ranked, low.contiguous(), right=True)  # first above low
    stop = torch.searchsorted(ranked, high.contiguous(), right=False)  # first at or above high
    count_ap = (stop - start).clamp_min_(0)
    runs = (count_ap > 0).to(dist.dtype)
    edges = torch.zeros(batch, batch + 1, dtype=dist.dtype, device=dist.device)
    edges.scatter_add_(1, start, runs).scatter_add_(1, stop, -runs)
    count_sorted = edges[:, :batch].cumsum_(1)
    count_an = torch.empty_like(count_sorted).scatter_(1, order, count_sorted)
    return count_ap.to(dist.dtype), count_an


def _sorted_negatives(dist, negative) -> tuple[torch.Tensor, torch.Tensor]:
    """Each anchor's row of distances sorted, non-negatives last (as inf), and the order:
    ``where(negative, dist, inf).sort(dim=1)`` for non-negative distances. On the CPU,
    float32 rows are sorted as 64-bit keys (a value's bits, then its column) by NumPy's
    vectorised sort, five times faster there than torch's sort; equal values may come in
    another order, which no count depends on."""
    if dist.device.type != "cpu" or dist.dtype != torch.float32 or sys.byteorder != "little":
        return torch.where(negative, dist, float("inf")).sort(dim=1)
    width = dist.shape[1]
    # The bits of a non-negative float32 (inf included) order like the floats themselves;
    # clearing the sign bit makes -0.0 the 0.0 it equals.
    bits = np.where(negative.numpy(), dist.numpy().view(np.uint32) & 0x7FFFFFFF, 0x7F800000)
    keys = (bits.astype(np.uint64) << np.uint64(32)) | np.arange(width, dtype=np.uint64)
    keys.sort(axis=1)
    words = keys.view(np.uint32)  # little-endian: (column, value bits) per key
    ranked = torch.from_numpy(words[:, 1::2].view(np.float32).copy())
    order = torch.from_numpy(words[:, 0::2].astype(np.int64))
    return ranked, order


def _window_counts_ranked(dist, pos_index, pos_valid, negative, margin, mining):
    """The counts of :func:`_window_counts_per_anchor`, by ranking each negative among its
    anchor's sorted positive windows: O(B^2 log M) time, O(B^2) memory, for any labels.

    A window's bounds are non-decreasing functions of D_ap, so with an anchor's positives
    sorted by D_ap the windows that hold a negative n are a run of consecutive positions
    ``[start_n, stop_n)``, found by binary search: that gives c_an = stop - start at once, and
    c_ap as the number of runs covering p's position (a prefix sum of +1 at each start and -1
    at each stop). The bounds are the very values the mining rule compares with.
    """
    batch, width = pos_index.shape
    d_ap = dist.gather(1, pos_index)  # (B, M)
    # Padding sorts last (inf) and lies beyond stop <= the anchor's number of positives.
    sorted_ap, order = d_ap.masked_fill(~pos_valid, float("inf")).sort(dim=1)
    _, high = triplet_window(sorted_ap, margin, mining)
    d_an = dist.contiguous()
    start = torch.searchsorted(high.contiguous(), d_an, right=True)  # first high > D_an
    if mining == "semihard":  # and D_ap < D_an: before the first D_ap >= D_an
        stop = torch.searchsorted(sorted_ap.contiguous(), d_an, right=False)
    else:
        stop = pos_valid.sum(1, keepdim=True)
    weight = (negative & (start < stop)).to(dist.dtype)  # (B, B): n in some window of a
    count_an = (stop - start) * weight
    edges = torch.zeros(batch, width + 1, dtype=dist.dtype, device=dist.device)
    edges.scatter_add_(1, start, weight)
    if mining == "semihard":
        edges.scatter_add_(1, stop, -weight)
    else:
        edges.scatter_add_(1, stop, -weight.sum(1, keepdim=True))
    count_sorted = edges.cumsum(1)[:, :width]
    count_ap = torch.zeros_like(count_sorted).scatter_(1, order, count_sorted)
    return count_ap, count_an
