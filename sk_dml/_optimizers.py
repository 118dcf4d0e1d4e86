"""The trainer's optimizers (internal): AdamW in its fastest correct mode for the dense
weights, and Adam's lazy variant for the embedding tables with sparse gradients."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def fusable(parameters: Sequence[torch.Tensor]) -> bool | None:
    """Whether torch has a fused AdamW kernel for ``parameters`` (CUDA ones; CPU ones since
    torch 2.4): one kernel per step instead of a dozen per weight, the same update to
    rounding, ``benchmarks/results/epoch_profile.md``. None lets torch choose otherwise."""
    cpu = tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 4)
    devices = {"cuda", "cpu"} if cpu else {"cuda"}
    fusable = all(p.is_floating_point() and p.device.type in devices for p in parameters)
    return True if fusable and parameters else None


def sparse_parameters(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The weights of the embedding tables (and bags) in ``module`` that have sparse
    gradients."""
    tables = (torch.nn.Embedding, torch.nn.EmbeddingBag)
    return [m.weight for m in module.modules() if isinstance(m, tables) and m.sparse]


class LazyAdam(torch.optim.Optimizer):
    """Adam's lazy variant for embedding tables with sparse gradients: the update of
    ``torch.optim.SparseAdam`` (the same moments, bias correction and state, so either loads
    the other's ``state_dict``), each step moving only the rows its gradient holds, in less
    time on CPU (``benchmarks/results/text_training_profile.md``): a gradient's duplicate
    rows are summed once (``torch.unique``, ``index_add_``) and the rows' moments updated as
    dense blocks, where SparseAdam coalesces the gradient and goes through sparse tensors."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None) -> None:
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for weight in group["params"]:
                if weight.grad is None:
                    continue
                state = self.state[weight]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(weight)
                    state["exp_avg_sq"] = torch.zeros_like(weight)
                state["step"] += 1
                grad = weight.grad
                rows, inverse = torch.unique(grad._indices()[0], return_inverse=True)
                values = grad._values()
                g = values.new_zeros(len(rows), values.shape[1]).index_add_(0, inverse, values)
                m = state["exp_avg"].index_select(0, rows).lerp_(g, 1 - beta1)
                v = state["exp_avg_sq"].index_select(0, rows).mul_(beta2)
                v.addcmul_(g, g, value=1 - beta2)
                state["exp_avg"].index_copy_(0, rows, m)
                state["exp_avg_sq"].index_copy_(0, rows, v)
                step = state["step"]
                size = group["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step)
                weight.index_add_(0, rows, m.div_(v.sqrt_().add_(group["eps"])), alpha=-size)
