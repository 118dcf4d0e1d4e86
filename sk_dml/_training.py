"""The fit loop, shared by every estimator and blind to which loss it minimises.

It holds the whole training set as tensors on the device and slices batches by index (a
per-sample DataLoader would cost more than the network itself on a CPU), draws class-balanced
batches, steps the optimizer, tracks the loss and an optional validation score, stops early,
and protects the model: a non-finite loss or gradient, or a KeyboardInterrupt, ends training
with the best weights seen so far restored and a warning that says why, and so does an
embedding that collapsed (every training row mapped to one point). With a checkpoint it
saves its whole state after every epoch and resumes from it (``sk_dml.checkpoint``); in a
torch.distributed group it trains data-parallel (``sk_dml._distributed``).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from tqdm.auto import tqdm

from ._distributed import ProcessGroup, on_main, shard_batches
from .checkpoint import Checkpoint, restore_rng, rng_state_to_tensors
from .nets import dropout_generator
from .sampling import ClassBalancedBatchSampler

#: Relative spread of the training embeddings at or below which a fit is called collapsed.
COLLAPSE_TOL = 1e-3

__all__ = ["Objective", "TrainingSettings", "TrainingState", "embed", "fresh_state", "run_epochs"]


class Objective(torch.nn.Module):
    """What training optimises: the embedding network and its loss, as one module.

    ``criterion`` is a callable ``(embeddings, labels) -> loss``; when it is a torch module its
    parameters (a proxy loss's proxies) are trained, checkpointed, restored with the best epoch
    and averaged across ranks together with the network's, because they are this module's.
    """

    def __init__(self, module: torch.nn.Module, criterion: Callable):
        super().__init__()
        self.module = module
        self.criterion = criterion

    def forward(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.criterion(self.module(X), y)


@dataclass
class TrainingSettings:
    """What the loop needs from an estimator's parameters."""

    batch_size: int
    samples_per_class: int
    tol: float
    n_iter_no_change: int
    learning_rate: float
    schedule: str = "constant"  # or "cosine": anneal to 0 over the epochs of this run
    verbose: int = 0


@dataclass
class TrainingState:
    """Everything that carries over between calls (``warm_start``, ``partial_fit``)."""

    optimizer: torch.optim.Optimizer
    rng: np.random.RandomState
    objective: Objective
    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    best_loss: float = np.inf
    best_score: float = -np.inf
    best_weights: dict | None = None
    no_improvement: int = 0

    @property
    def n_iter(self) -> int:
        return len(self.loss_curve)


def _snapshot(objective: Objective) -> dict:
    return {k: v.detach().clone() for k, v in objective.state_dict().items()}


def _improved(state: TrainingState, loss: float, score: float | None, tol: float) -> bool:
    """Track the best epoch: by validation score when there is one, else by training loss."""
    if score is not None:
        better = score > state.best_score + tol
        state.best_score = max(state.best_score, score)
        state.best_loss = min(state.best_loss, loss)
    else:
        better = loss < state.best_loss - tol
        state.best_loss = min(state.best_loss, loss)
    return better


def _train_one_epoch(objective, X, y, batches, optimizer, group, generator=None) -> float:
    """One pass over ``batches``; returns the mean batch loss (over all ranks in a group).

    Dropout masks come from ``generator`` (see ``run_epochs``). Raises FloatingPointError at
    the first step whose loss or gradient is not finite, before that step changes any weight.
    In a group the check uses the summed loss and the all-reduced gradient, so every rank
    raises at the same step.
    """
    objective.train()
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    n_batches = 0
    for batch in batches:
        index = torch.from_numpy(batch).to(X.device, non_blocking=True)
        with dropout_generator(generator):
            loss = objective(X[index], y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # clip_grad_norm_ with an infinite bound only measures the gradient's norm.
        grad_norm = torch.nn.utils.clip_grad_norm_(objective.parameters(), float("inf"))
        step_loss = loss.detach() if group is None else group.sum(loss) / group.world_size
        if not torch.isfinite(step_loss + grad_norm):
            raise FloatingPointError(
                f"the {'loss' if not torch.isfinite(step_loss) else 'gradient'} became "
                f"non-finite at step {n_batches + 1} of the epoch"
            )
        optimizer.step()
        total += step_loss
        n_batches += 1
    return float(total) / max(n_batches, 1)


def _checkpoint_state(objective, state, scheduler, run_epoch, converged, group, generator) -> dict:
    """Everything a resumed fit needs to continue exactly as this one would."""
    dropout_rng = None if generator is None else generator.get_state()
    return {
        "run_epoch": run_epoch,
        "converged": converged,
        "objective": objective.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "best_weights": state.best_weights,
        "loss_curve": list(state.loss_curve),
        "validation_scores": list(state.validation_scores),
        "best_loss": state.best_loss,
        "best_score": state.best_score,
        "no_improvement": state.no_improvement,
        "sampler_rng": rng_state_to_tensors(state.rng),
        "dropout_rng": [dropout_rng] if group is None else group.gather(dropout_rng),
    }


def _restore(saved, objective, state, scheduler, group, device, generator) -> tuple[int, bool]:
    """Load a checkpoint into the training objects; returns (epochs done, converged)."""
    objective.load_state_dict(saved["objective"])
    state.optimizer.load_state_dict(saved["optimizer"])
    if scheduler is not None and saved["scheduler"] is not None:
        scheduler.load_state_dict(saved["scheduler"])
    state.best_weights = {k: v.to(device) for k, v in saved["best_weights"].items()}
    state.loss_curve = list(saved["loss_curve"])
    state.validation_scores = list(saved["validation_scores"])
    state.best_loss = saved["best_loss"]
    state.best_score = saved["best_score"]
    state.no_improvement = saved["no_improvement"]
    restore_rng(state.rng, saved["sampler_rng"])
    # Each rank continues its own dropout stream; exact when the group size is the same.
    dropout_rng = saved["dropout_rng"][(group.rank if group else 0) % len(saved["dropout_rng"])]
    if generator is not None and dropout_rng is not None:
        generator.set_state(dropout_rng)
    return saved["run_epoch"], saved["converged"]


def run_epochs(
    objective: Objective,
    X: torch.Tensor,
    y: torch.Tensor,
    state: TrainingState,
    settings: TrainingSettings,
    max_epochs: int,
    validation: tuple[torch.Tensor, np.ndarray] | None = None,
    score_fn: Callable[[np.ndarray, np.ndarray], float] | None = None,
    stop_early: bool = True,
    score_start: bool = False,
    group: ProcessGroup | None = None,
    checkpoint: Checkpoint | None = None,
    resume: dict | None = None,
    generator: torch.Generator | None = None,
) -> bool:
    """Train ``objective`` for up to ``max_epochs`` epochs; returns whether training converged.

    Parameters
    ----------
    objective : the network and its loss; ``objective.module`` is what validation embeds with
    X, y : tensors on the training device, (n, n_features) float and (n,) integer codes
    state : the optimizer, RNG and history, updated in place
    validation : (X_val tensor, y_val array) scored after each epoch by ``score_fn`` on the
        embeddings; the best-scoring weights are restored at the end
    score_start : also score the network before training, as a candidate for the best weights
        (used with held-out classes, where training can make retrieval worse than its start)
    stop_early : stop after ``n_iter_no_change`` epochs without improvement by ``tol``;
        ``False`` runs exactly ``max_epochs`` epochs (``partial_fit``)
    group : train data-parallel in this torch.distributed group (every rank calls this with
        the same data and settings)
    checkpoint : save the state there after every epoch; deleted when training ends normally
    resume : a checkpoint's saved state to continue from (its completed epochs are skipped)
    generator : what :class:`sk_dml.nets.Dropout` draws its masks from (on ``X``'s device),
        saved in checkpoints; None leaves dropout to torch's process-wide generator
    """
    device = X.device
    sampler = ClassBalancedBatchSampler(
        y.cpu().numpy(), settings.batch_size, settings.samples_per_class, random_state=state.rng
    )
    converged = False
    for param_group in state.optimizer.param_groups:  # each run starts from the base rate
        param_group["lr"] = settings.learning_rate
        param_group.pop("initial_lr", None)
    scheduler = None
    if settings.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(state.optimizer, T_max=max_epochs)
    start_epoch = 0
    if resume is not None:
        start_epoch, converged = _restore(
            resume, objective, state, scheduler, group, device, generator
        )
    trained = group.wrap(objective) if group is not None else objective  # rank 0's weights
    is_main = group is None or group.is_main

    def validation_score() -> float:
        score = score_fn(embed(objective.module, validation[0]), validation[1]) if is_main else None
        if group is not None:  # every rank takes rank 0's score, so all stop together
            score = group.broadcast_float(score, device)
        return score

    if state.best_weights is None:
        state.best_weights = _snapshot(objective)
    if score_start and validation is not None and resume is None and state.n_iter == 0:
        state.best_score = validation_score()
    epochs = range(start_epoch, max_epochs if not converged else start_epoch)
    progress = tqdm(epochs, disable=not (settings.verbose and is_main), desc="epochs", leave=False)
    try:
        for epoch in progress:
            batches = list(sampler)
            if group is not None:
                batches = shard_batches(batches, group.rank, group.world_size)
            loss = _train_one_epoch(trained, X, y, batches, state.optimizer, group, generator)
            if scheduler is not None:
                scheduler.step()
            score = None
            if validation is not None:
                score = validation_score()
                state.validation_scores.append(score)
            state.loss_curve.append(loss)
            if _improved(state, loss, score, settings.tol):
                state.no_improvement = 0
                state.best_weights = _snapshot(objective)
            else:
                state.no_improvement += 1
            progress.set_postfix(loss=f"{loss:.4g}", **({"val": f"{score:.4f}"} if score else {}))
            converged = stop_early and state.no_improvement >= settings.n_iter_no_change
            if checkpoint is not None:
                saved = _checkpoint_state(
                    objective, state, scheduler, epoch + 1, converged, group, generator
                )
                on_main(group, functools.partial(checkpoint.save, saved))
            if converged:
                break
    except (FloatingPointError, KeyboardInterrupt) as error:
        objective.load_state_dict(state.best_weights)
        objective.eval()
        if isinstance(error, FloatingPointError):
            what = f"Training diverged: {error}. Lower learning_rate (or use normalize=True)."
        else:
            what = f"Training interrupted after {state.n_iter} epochs."
        if checkpoint is not None and checkpoint.path.exists():
            what += f" The last completed epoch is saved in {checkpoint.path}."
        warnings.warn(
            f"{what} The best weights so far were restored and the estimator is usable.",
            RuntimeWarning,
            stacklevel=5,  # the user's fit/partial_fit call
        )
        return False
    finally:
        progress.close()
    if checkpoint is not None:
        on_main(group, checkpoint.remove)
    if validation is not None:
        objective.load_state_dict(state.best_weights)
    objective.eval()
    if _collapsed(objective.module, X):
        objective.load_state_dict(state.best_weights)
        objective.eval()
        restored = "the best epoch's weights were restored"
        if _collapsed(objective.module, X):
            restored += ", but they are degenerate too"
        warnings.warn(
            f"The embedding collapsed: after {state.n_iter} epochs every training row maps to "
            f"(nearly) the same point, or to a non-finite one; {restored}. Lower learning_rate "
            f"(it is {settings.learning_rate:g}).",
            RuntimeWarning,
            stacklevel=5,  # the user's fit/partial_fit call
        )
    # With a cosine schedule, reaching max_epochs is the plan, not a failure to converge.
    if stop_early and not converged and scheduler is None:
        warnings.warn(
            f"Stopped after max_epochs={max_epochs} epochs without converging (the "
            f"{'validation score' if validation is not None else 'loss'} still improved by more "
            f"than tol within the last n_iter_no_change epochs). Consider raising max_epochs.",
            ConvergenceWarning,
            stacklevel=5,  # the user's fit/partial_fit call
        )
    return converged


def _collapsed(module: torch.nn.Module, X: torch.Tensor, max_rows: int = 4096) -> bool:
    """Whether ``module`` maps distinct training rows to one point (or a non-finite one).

    On up to ``max_rows`` evenly spaced rows: the root-mean-square distance of the embeddings
    to their mean is at most ``COLLAPSE_TOL`` times their root-mean-square norm. Rows that are
    all identical are never called collapsed.
    """
    sample = X[:: max(1, len(X) // max_rows)]
    if not (sample != sample[0]).any():
        return False
    Z = torch.from_numpy(embed(module, sample)).double()
    spread = (Z - Z.mean(0)).square().sum(1).mean().sqrt()
    scale = Z.square().sum(1).mean().sqrt()
    return not bool(spread > COLLAPSE_TOL * scale)  # NaN counts as collapsed


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


def fresh_state(objective: Objective, learning_rate, weight_decay, rng) -> TrainingState:
    """A new optimizer (AdamW over the network and the loss's parameters) and history for a
    fresh fit; ``rng`` drives batch sampling."""
    optimizer = torch.optim.AdamW(
        objective.parameters(), lr=learning_rate, weight_decay=weight_decay
    )
    return TrainingState(optimizer=optimizer, rng=rng, objective=objective)
