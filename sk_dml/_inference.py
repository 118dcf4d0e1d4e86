"""Running a trained network: the embeddings of a table's encoded rows. Below both training
and the estimators, so that inference (``transform``, the learned metric, Dask blocks, the
command line) never imports the training engine."""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def embed(module: torch.nn.Module, X, batch_size: int = 65536) -> np.ndarray:
    """Embeddings of the rows of ``X`` (array or tensor) as float32 numpy, in eval mode.

    Rows go to the module's device one batch at a time and land in a preallocated output, so
    peak memory stays near the output's size however many rows there are. The module is left
    in eval mode and not otherwise touched, so concurrent calls from threads are safe.
    """
    if module.training:
        module.eval()
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    out = None
    for start in range(0, len(X), batch_size):
        chunk = X[start : start + batch_size]
        if not isinstance(chunk, torch.Tensor):  # a copy: input may be read-only (memmap)
            chunk = torch.from_numpy(np.array(chunk, dtype=np.float32))
        chunk = chunk.to(device, torch.float32)
        z = module(chunk).float().cpu().numpy()
        if out is None:
            out = np.empty((len(X), z.shape[1]), dtype=np.float32)
        out[start : start + len(z)] = z
    return out
