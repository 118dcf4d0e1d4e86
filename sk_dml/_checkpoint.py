"""Per-epoch checkpoints, so that a fit killed at any moment resumes where it stopped.

A checkpoint is one file per training run, named by a fingerprint of what defines the run (the
estimator's class and parameters, the training data, and the starting weights of a warm start):
a rerun of the same ``fit`` finds it, a different fit (another grid-search candidate, other
data) cannot mistake it for its own. This module defines the file: a header (format name and
version), the fit's starting random state, and the trainer's ``state_dict()`` (network, loss
parameters, optimizer, learning-rate schedule, the batch sampler's and the dropout generator's
random states, and the history with the best weights), so that a resumed fit ends with the very
weights an uninterrupted one would.

Files are written atomically (write a temporary file in the same folder, flush it to disk, then
rename it over the old one): a kill mid-write leaves the previous epoch's checkpoint intact. They
are read with ``torch.load(weights_only=True)``, which builds tensors and plain containers only
and cannot run code from the file. A fit that finishes deletes its checkpoint.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator

__all__ = ["Checkpoint", "fingerprint", "restore_rng", "rng_state_to_tensors", "weights_digest"]

FORMAT_NAME = "sk_dml.checkpoint"
# 2: the network and the loss's parameters saved as one 'objective'; 3: the fit's own dropout
# generator's state instead of torch's process-wide one; 4: the trainer's state_dict() as one
# 'trainer' entry
FORMAT_VERSION = 4
# Parameters that change neither the numbers a fit computes nor where its checkpoint lives.
_IGNORED_PARAMS = ("verbose", "checkpoint_dir", "device", "warm_start")


def weights_digest(state_dict: dict) -> str:
    """A hex digest of a network's weights (names, shapes, dtypes and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state_dict.items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype};".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _describe(value) -> str:
    """A parameter's value as text that is the same in every process (no memory addresses)."""
    if isinstance(value, torch.nn.Module):  # its class and its weights, not its repr
        kind = type(value)
        return f"{kind.__module__}.{kind.__qualname__}:{weights_digest(value.state_dict())}"
    if isinstance(value, np.random.RandomState):
        _, keys, pos, *_ = value.get_state()
        return f"RandomState:{hashlib.sha256(keys.tobytes()).hexdigest()}:{pos}"
    if isinstance(value, functools.partial):
        args = ",".join(map(_describe, value.args))
        keywords = ",".join(f"{k}={_describe(v)}" for k, v in sorted(value.keywords.items()))
        return f"partial({_describe(value.func)},{args},{keywords})"
    if isinstance(value, BaseEstimator):  # a loss object: its class and its parameters
        params = ",".join(f"{k}={_describe(v)}" for k, v in sorted(value.get_params().items()))
        return f"{type(value).__qualname__}({params})"
    if callable(value) and hasattr(value, "__qualname__"):  # a function or a class
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    return repr(value)


def fingerprint(estimator, *arrays: np.ndarray, start: str | None) -> str:
    """A hex digest of the class, the parameters, the data (``arrays``) and the start weights'
    digest (``start``: None for a fresh fit, ``weights_digest`` of the network a warm start
    continues from)."""
    digest = hashlib.sha256(type(estimator).__qualname__.encode())
    params = estimator.get_params(deep=False)
    for name in sorted(params):
        if name not in _IGNORED_PARAMS:
            digest.update(f"{name}={_describe(params[name])};".encode())
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    digest.update(f"start={start}".encode())
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
    """

    def __init__(self, directory, key: str, writer: bool = True):
        self.directory = Path(directory)
        self.key = key
        self.path = self.directory / f"sk_dml-{key}.ckpt"
        self.writer = writer

    def prepare(self) -> None:
        """Create the folder and check that it takes files, before any training is spent."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.directory):
                pass
        except OSError as error:
            raise ValueError(
                f"checkpoint_dir={os.fspath(self.directory)!r} is not a folder this process can "
                f"write to ({type(error).__name__}: {error})."
            ) from None

    def _remove_temporary_files(self) -> None:
        """Delete what a writer of this run killed mid-write left behind."""
        for stale in self.directory.glob(f".tmp-{self.key}-*"):
            stale.unlink(missing_ok=True)

    def load(self, map_location) -> dict | None:
        """The saved ``{"start_rng": ..., "trainer": ...}`` (see :meth:`save`), or None when
        this run has no checkpoint yet."""
        self._remove_temporary_files()
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

    def save(self, trainer_state: dict, start_rng: dict) -> None:
        """Atomically replace the checkpoint (rank 0 only; others return).

        ``trainer_state`` is a ``Trainer.state_dict()``; ``start_rng`` the fit's numpy random
        state before it drew anything (``rng_state_to_tensors``), from which a resumed fit
        replays the same validation split and seeds, even with ``random_state=None``.
        """
        if not self.writer:
            return
        payload = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "start_rng": start_rng,
            "trainer": trainer_state,
        }
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".tmp-{self.key}-")
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(payload, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _sync_directory(self.directory)

    def remove(self) -> None:
        """Delete the checkpoint once its fit has finished (rank 0 only)."""
        if self.writer:
            self.path.unlink(missing_ok=True)
            self._remove_temporary_files()


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
