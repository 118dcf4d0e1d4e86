"""
The losses in your own torch training loop
==========================================

The estimators are a convenience: the losses, the miners and the batch sampler underneath are
plain functions and classes that work in any PyTorch code. A loss takes a batch of embeddings
and their labels and returns a scalar tensor to call ``backward()`` on.

This example trains a torch MLP of its own with the lifted structured loss
(:func:`sk_dml.losses.lifted_struct_loss`), on batches from
:class:`sk_dml.sampling.ClassBalancedBatchSampler`, and scores the test embedding after each
epoch with :func:`sk_dml.metrics.precision_at_k`.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from sk_dml.datasets import load_segment
from sk_dml.losses import lifted_struct_loss
from sk_dml.metrics import precision_at_k
from sk_dml.sampling import ClassBalancedBatchSampler

# SK_DML_QUICK=1 (the test suite, the documentation build) runs ten epochs instead of forty.
QUICK = os.environ.get("SK_DML_QUICK", "0") not in ("", "0")
EPOCHS = 10 if QUICK else 40

# %%
# The data
# --------
# The UCI image segmentation data shipped with sk_dml: 19 numeric features, seven classes.
X, y = load_segment()
X_train, X_test, y_train, y_test = train_test_split(
    X.to_numpy(), y.to_numpy(), test_size=0.3, stratify=y, random_state=0
)
scaler = StandardScaler().fit(X_train)
X_train = torch.tensor(scaler.transform(X_train), dtype=torch.float32)
X_test = torch.tensor(scaler.transform(X_test), dtype=torch.float32)
y_train_t = torch.as_tensor(y_train)
print(f"precision@1 of the standardised features: {precision_at_k(X_test, y_test, k=1):.3f}")

# %%
# The network, the optimizer and the batches
# ------------------------------------------
# Any module that maps (batch, 19) to (batch, dim) does. The lifted structured loss works on
# unnormalised embeddings (its log-sum-exp needs distances that can grow), so there is no
# normalisation layer at the end.
torch.manual_seed(0)
model = nn.Sequential(
    nn.Linear(X_train.shape[1], 128),
    nn.ReLU(),
    nn.Linear(128, 128),
    nn.ReLU(),
    nn.Linear(128, 16),
)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

# Each batch is made of groups of 8 rows of one class, so every row has positives in its batch;
# one pass over the sampler is one epoch that sees every training row exactly once.
sampler = ClassBalancedBatchSampler(y_train, batch_size=64, samples_per_class=8, random_state=0)

# %%
# The loop
# --------
step_losses, epoch_losses, precisions = [], [], []
for epoch in range(EPOCHS):
    model.train()
    losses = []
    for rows in sampler:  # rows: an int64 array of row indices
        loss = lifted_struct_loss(model(X_train[rows]), y_train_t[rows], margin=1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        precisions.append(precision_at_k(model(X_test), y_test, k=1))
    step_losses.extend(losses)
    epoch_losses.append(np.mean(losses))
    if epoch % 10 == 9 or epoch == EPOCHS - 1:
        print(
            f"epoch {epoch + 1:2d}: loss {epoch_losses[-1]:.4f}, precision@1 {precisions[-1]:.3f}"
        )

# %%
# The curves
# ----------
# Left, the loss of every batch (light) and its mean per epoch; right, the precision@1 of the
# test rows in the learned space (each test row's nearest other test row has its class).
steps_per_epoch = len(step_losses) / EPOCHS
epochs = np.arange(1, EPOCHS + 1)
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
left.plot(
    np.arange(1, len(step_losses) + 1) / steps_per_epoch, step_losses,
    color="tab:blue", alpha=0.3, linewidth=0.8, label="batch",
)  # fmt: skip
left.plot(epochs, epoch_losses, "o-", color="tab:blue", markersize=3, label="epoch mean")
left.set_yscale("log")
left.set_ylim(min(epoch_losses) / 4, max(step_losses) * 1.5)  # batches that reach ~0 dip below
left.set(xlabel="epoch", ylabel="lifted structured loss (log scale)", title="Training loss")
left.legend()
right.plot(epochs, precisions, "o-", color="tab:orange", markersize=3, label="learned embedding")
right.axhline(
    precision_at_k(X_test, y_test, k=1), color="gray", linestyle="--",
    label="standardised features",
)  # fmt: skip
right.set(xlabel="epoch", ylabel="precision@1", title="Test precision@1")
right.legend(loc="lower right")
fig.suptitle("A torch MLP trained with sk_dml.losses.lifted_struct_loss (segment data)")
plt.show()
