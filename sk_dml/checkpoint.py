"""Per-epoch checkpoints, so that a fit killed at any moment resumes where it stopped.

A checkpoint is one file per training run, named by a fingerprint of what defines the run (the
estimator's class and parameters, the training data, and the starting weights of a warm start):
a rerun of the same ``fit`` finds it, a different fit (another grid-search candidate, other
data) cannot mistake it for its own. It holds the network, the optimizer, the learning-rate
schedule, the batch sampler's and torch's random states, and the history (losses, best score,
best weights), so that a resumed fit ends with the very weights an uninterrupted one would.

Files are written atomically (write a temporary file in the same folder, flush it to disk, then
rename it over the old one): a kill mid-write leaves the previous epoch's checkpoint intact. They
are read with ``torch.load(weights_only=True)``, which builds tensors and plain containers only
and cannot run code from the file. A fit that finishes deletes its checkpoint.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["Checkpoint", "fingerprint", "restore_rng", "rng_state_to_tensors"]

FORMAT_NAME = "sk_dml.checkpoint"
FORMAT_VERSION = 1
# Parameters that change neither the numbers a fit computes nor where its checkpoint lives.
_IGNORED_PARAMS = ("verbose", "checkpoint_dir", "device", "warm_start")


def fingerprint(estimator, X: np.ndarray, codes: np.ndarray, start_weights: dict | None) -> str:
    """A hex digest of the class, the parameters, the data and (warm start) the start weights."""
    digest = hashlib.sha256(type(estimator).__qualname__.encode())
    params = estimator.get_params(deep=False)
    for name in sorted(params):
        if name in _IGNORED_PARAMS:
            continue
        value = params[name]
        if isinstance(value, np.random.RandomState):
            value = "RandomState"  # its repr holds a memory address
        digest.update(f"{name}={value!r};".encode())
    for array in (X, codes):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    for name, tensor in sorted((start_weights or {}).items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def rng_state_to_tensors(rng: np.random.RandomState) -> dict:
    """A numpy generator's state as tensors and numbers (loadable with weights_only=True)."""
    _, keys, pos, has_gauss, cached_gaussian = rng.get_state()
    return {
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def restore_rng(rng: np.random.RandomState, state: dict) -> np.random.RandomState:
    """Put ``rng`` (in place: samplers hold it) in a state saved by ``rng_state_to_tensors``."""
    keys = state["keys"].numpy().astype(np.uint32)
    rng.set_state(("MT19937", keys, state["pos"], state["has_gauss"], state["cached_gaussian"]))
    return rng


class Checkpoint:
    """The checkpoint file of one training run in ``directory``.

    Parameters
    ----------
    directory : str or path-like
        Created if missing. Under torch.distributed only rank 0 reads and writes it.
    key : str
        The run's :func:`fingerprint`.
    writer : bool
        Whether this process writes (rank 0) or only reads.

    Attributes
    ----------
    start_rng : dict or None
        The fit's numpy random state before it drew anything (``rng_state_to_tensors``), set
        by the fit and saved in every checkpoint: a resumed fit replays the same validation
        split and seeds from it, even with ``random_state=None``.
    """

    def __init__(self, directory, key: str, writer: bool = True):
        self.path = Path(directory) / f"sk_dml-{key}.ckpt"
        self.writer = writer
        self.start_rng: dict | None = None

    def load(self, map_location) -> dict | None:
        """The saved state, or None when this run has no checkpoint yet."""
        if not self.path.exists():
            return None
        try:
            payload = torch.load(self.path, map_location=map_location, weights_only=True)
        except Exception as error:  # a truncated or foreign file: say which and why
            reason = (str(error).splitlines() or [""])[0]  # torch's advice that follows is moot
            raise ValueError(
                f"The checkpoint {self.path} cannot be read ({type(error).__name__}: {reason}). "
                "Delete it to train from the start."
            ) from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
            raise ValueError(f"{self.path} is not an sk_dml checkpoint; delete it or move it.")
        if payload.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"The checkpoint {self.path} has format version {payload.get('version')}; this "
                f"sk_dml reads version {FORMAT_VERSION}. Delete it to train from the start."
            )
        return payload

    def save(self, state: dict) -> None:
        """Atomically replace the checkpoint with ``state`` (rank 0 only; others return)."""
        if not self.writer:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "start_rng": self.start_rng,
            **state,
        }
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".ckpt")
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(payload, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _sync_directory(self.path.parent)

    def remove(self) -> None:
        """Delete the checkpoint once its fit has finished (rank 0 only)."""
        if self.writer:
            self.path.unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    """Make a rename durable: flush the folder's entry (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
