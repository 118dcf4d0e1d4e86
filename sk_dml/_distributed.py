"""Data-parallel training on torch.distributed (DDP), for fits launched with ``torchrun``.

An estimator trains data-parallel when a process group with more than one process exists,
or when ``torchrun`` started this process (``WORLD_SIZE`` > 1 in the environment), in which
case the group is created here: NCCL when CUDA is available, gloo otherwise. Every rank
holds the whole training table; each epoch all ranks draw the same class-balanced batches
(rank 0's random state is shared) and rank ``r`` trains on batches ``r, r + W, r + 2W, ...``.
DistributedDataParallel averages the gradients, so every rank keeps the same weights; losses,
validation scores and stop decisions are shared so that all ranks stop at the same epoch.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["ProcessGroup", "current_group", "on_main", "shard_batches"]


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in the training group."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files and shows progress."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """The device this rank trains on, from a validated one: "cuda" means the local
        rank's GPU (``LOCAL_RANK``), which also becomes the current CUDA device."""
        if device.type == "cuda":
            if device.index is None:
                device = torch.device("cuda", self.local_rank % torch.cuda.device_count())
            # NCCL's object collectives (checkpoint broadcast, RNG gather) use the current
            # device: make it this rank's.
            torch.cuda.set_device(device)
        if device.type == "cpu" and dist.get_backend() == "nccl":
            raise ValueError(
                "The torch.distributed process group uses the NCCL backend, which needs CUDA "
                "tensors, but this estimator trains on the CPU; use device='cuda' (or 'auto') "
                "or create the group with backend='gloo'."
            )
        return device

    def share_rng(self, rng: np.random.RandomState) -> np.random.RandomState:
        """A generator seeded by rank 0's ``rng`` on every rank, so all draw the same batches."""
        seed = int(rng.randint(np.iinfo(np.int32).max)) if self.is_main else None
        return np.random.RandomState(self.broadcast_object(seed))

    def broadcast_object(self, obj):
        """Rank 0's (picklable) ``obj`` on every rank."""
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over the ranks (a new tensor)."""
        total = tensor.detach().clone()
        dist.all_reduce(total)
        return total

    def broadcast_float(self, value: float | None, device) -> float:
        """Rank 0's number on every rank."""
        box = torch.tensor(np.nan if value is None else value, dtype=torch.float64, device=device)
        dist.broadcast(box, src=0)
        return float(box)

    def gather(self, obj) -> list:
        """Every rank's ``obj``, in rank order, on every rank."""
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module under DistributedDataParallel (which broadcasts rank 0's weights)."""
        param = next(module.parameters())
        device_ids = [param.device] if param.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def current_group() -> ProcessGroup | None:
    """The process group to train in, creating it under ``torchrun``; None when alone."""
    if not dist.is_available():
        return None
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return None
        # torchrun set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT: the env:// rendezvous.
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        atexit.register(_destroy)
    if dist.get_world_size() == 1:
        return None
    rank = dist.get_rank()
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    return ProcessGroup(rank=rank, world_size=dist.get_world_size(), local_rank=local_rank)


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def on_main(group: ProcessGroup | None, action):
    """``action()`` on rank 0 only (or here, alone); its result, or its error, on every rank.

    File work (reading and writing checkpoints) happens on rank 0; were its error raised there
    alone, the other ranks would wait for rank 0 at their next collective until a timeout.
    """
    if group is None:
        return action()
    result, error = None, None
    if group.is_main:
        try:
            result = action()
        except Exception as exc:
            error = exc
    failure = group.broadcast_object(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    if failure is not None:
        raise RuntimeError(f"Rank 0 failed, so rank {group.rank} stops too: {failure}")
    return group.broadcast_object(result)


def shard_batches(batches: list, rank: int, world_size: int) -> list:
    """Rank ``rank``'s share of an epoch's batches: every ``world_size``-th one.

    Every rank must run the same number of steps (each step's gradient all-reduce waits for
    all of them), so the list is first padded by repeating batches from its start, as
    torch's DistributedSampler pads samples: no batch is dropped.
    """
    steps = -(-len(batches) // world_size)
    padded = [batches[i % len(batches)] for i in range(steps * world_size)]
    return padded[rank::world_size]
