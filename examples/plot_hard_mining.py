"""
Hard-sample mining: which triplets are active, epoch by epoch
=============================================================

A batch of B rows holds O(B^3) triplets (anchor, positive, negative), and as training goes on
most of them already satisfy the margin and teach nothing. Mining chooses the triplets that
count. :func:`sk_dml.miners.mine_triplets` lists the triplets a rule keeps, from a batch's
distance matrix:

==============  =========================================================================
``all``         every triplet with a positive loss, ``D_an < D_ap + margin`` (batch-all)
``semihard``    negatives farther than the positive but inside the margin,
                ``D_ap < D_an < D_ap + margin`` (FaceNet)
``hard``        negatives nearer than the positive, ``D_an < D_ap``
``batch_hard``  per anchor, its farthest positive and its nearest negative
==============  =========================================================================

This example trains the same small network from the same starting weights four times, once
per rule, in a hand-written loop: mine the batch with :func:`~sk_dml.miners.mine_triplets`,
then take :func:`sk_dml.losses.triplet_loss` over the mined triplets. It records, per epoch,
how many triplets are active (have a positive loss), the training loss, and the precision@1
of the test rows.
"""

import copy
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sk_dml.distances import pairwise_distance
from sk_dml.losses import triplet_loss
from sk_dml.metrics import precision_at_k
from sk_dml.miners import TRIPLET_MINING, mine_triplets
from sk_dml.nets import make_mlp
from sk_dml.sampling import ClassBalancedBatchSampler

# SK_DML_QUICK=1 (the test suite, the documentation build) runs eight epochs instead of fifteen.
QUICK = os.environ.get("SK_DML_QUICK", "0") not in ("", "0")
EPOCHS = 8 if QUICK else 15
MARGIN = 0.2

# %%
# The data, the network and the batches
# -------------------------------------
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train = torch.tensor(scaler.transform(X_train), dtype=torch.float32)
X_test = torch.tensor(scaler.transform(X_test), dtype=torch.float32)
y_train = torch.as_tensor(y_train)
raw = precision_at_k(X_test.numpy(), y_test, k=1)
print(f"test precision@1 of the standardised features (the baseline): {raw:.3f}")

# The network an embedder would build (an MLP whose output is L2-normalised), seeded so that
# every mining rule starts from the same weights.
torch.manual_seed(0)
initial_model = make_mlp(X.shape[1], n_components=16, hidden_layer_sizes=(128,))

# %%
# The mined triplets and ``triplet_loss(mining=...)`` agree
# ---------------------------------------------------------
# With the same distance, the mean loss over :func:`~sk_dml.miners.mine_triplets`'s triplets is
# what ``triplet_loss(..., mining=rule)`` computes without ever listing them (it is much faster,
# and what the embedders use). Listing them here is what lets this example count them.
with torch.no_grad():
    batch = initial_model(X_train[:128])
    dist = pairwise_distance(batch, metric="euclidean")
for rule in TRIPLET_MINING:
    triplets = mine_triplets(dist, y_train[:128], mining=rule, margin=MARGIN)
    listed = triplet_loss(batch, y_train[:128], margin=MARGIN, triplets=triplets)
    direct = triplet_loss(batch, y_train[:128], margin=MARGIN, mining=rule)
    print(f"{rule:>10}: {len(triplets[0]):6d} triplets, loss {listed:.5f} = {direct:.5f}")

# %%
# The training loop
# -----------------
# Batches of 128 rows, 4 rows per class (:class:`~sk_dml.sampling.ClassBalancedBatchSampler`),
# so every batch has positives for every anchor.


def train(rule):
    model = copy.deepcopy(initial_model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    sampler = ClassBalancedBatchSampler(
        y_train.numpy(), batch_size=128, samples_per_class=4, random_state=0
    )
    history = {"active": [], "loss": [], "precision": []}
    for _ in range(EPOCHS):
        model.train()
        active, losses = [], []
        for rows in sampler:  # one epoch
            embeddings = model(X_train[rows])
            labels = y_train[rows]
            dist = pairwise_distance(embeddings.detach(), metric="euclidean")
            anchors, positives, negatives = mine_triplets(dist, labels, mining=rule, margin=MARGIN)
            loss = triplet_loss(
                embeddings, labels, margin=MARGIN, triplets=(anchors, positives, negatives)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            # Active: the mined triplets whose loss is positive (for batch_hard, some of the
            # one-per-anchor triplets may already satisfy the margin).
            margin_left = dist[anchors, positives] - dist[anchors, negatives] + MARGIN
            active.append(int((margin_left > 0).sum()))
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            test_embeddings = model(X_test)
        history["active"].append(np.mean(active))
        history["loss"].append(np.mean(losses))
        history["precision"].append(precision_at_k(test_embeddings, y_test, k=1))
    return history


histories = {rule: train(rule) for rule in TRIPLET_MINING}
for rule, history in histories.items():
    print(
        f"{rule:>10}: {history['active'][0]:8.1f} -> {history['active'][-1]:8.1f} active "
        f"triplets per batch, test precision@1 {history['precision'][-1]:.3f}"
    )

# %%
# The curves
# ----------
# Mining "all" starts with tens of thousands of active triplets per batch and loses most of them
# as the classes separate; "hard" keeps only the violating ones, far fewer. "batch_hard" has at
# most one triplet per anchor (128 per batch). The losses are means over different triplets, so
# their levels differ by construction: compare their trends, and the test precision.
epochs = np.arange(1, EPOCHS + 1)
fig, axes = plt.subplots(1, 3, figsize=(13, 4), layout="constrained")
panels = [
    ("active", "active triplets per batch (log scale)"),
    ("loss", "training loss"),
    ("precision", "test precision@1"),
]
for ax, (key, title) in zip(axes, panels, strict=True):
    for rule, history in histories.items():
        ax.plot(epochs, history[key], "o-", markersize=3, label=rule)
    ax.set(title=title, xlabel="epoch")
    ax.set_xticks(epochs if EPOCHS <= 5 else epochs[::2])
axes[0].set_yscale("log")
axes[0].legend(title="mining")
fig.suptitle(f"Triplet loss (margin {MARGIN}) with four mining rules, digits")
plt.show()
