"""The training engine, shared by every embedder and blind to which loss it minimises.

A :class:`Trainer` owns everything that training changes: the objective (the network and the
loss's own parameters, such as proxies), the optimizer, the learning-rate schedule, the
batch sampler's random state, the dropout generator and the history, with ``state_dict()`` /
``load_state_dict()`` for all of it. Its loop holds the whole training set as tensors on the
device and slices class-balanced batches by index (a per-sample DataLoader would cost more
than the network itself on a CPU). It never waits for the device inside an epoch: the loss is
summed on the device, and its finiteness and the weights' are checked once at the epoch's end;
a non-finite epoch rolls the weights back to the best epoch so far and ends training with a
warning (the divergence guard), as does a KeyboardInterrupt.

What varies between fits is a hook around the epoch (:class:`Hook`): early stopping on a
validation score or the training loss (:class:`EarlyStopping`), per-epoch checkpoints that a
killed fit resumes from (:class:`Checkpointing`), a progress bar (:class:`ProgressBar`) and the
check that the embedding did not collapse (:class:`CollapseGuard`). In a torch.distributed
group the trainer trains data-parallel (``sk_dml._distributed``).
"""

from __future__ import annotations

import functools
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from tqdm.auto import tqdm

from ._checkpoint import Checkpoint, restore_rng, rng_state_to_tensors
from ._distributed import ProcessGroup, on_main, shard_batches
from ._inference import embed
from ._objectives import Objective
from ._optimizers import LazyAdam, fusable, sparse_parameters
from .nets import dropout_generator
from .sampling import ClassBalancedBatchSampler, ShuffledBatchSampler

#: Relative spread of the training embeddings at or below which a fit is called collapsed.
COLLAPSE_TOL = 1e-3

__all__ = [
    "Checkpointing",
    "CollapseGuard",
    "EarlyStopping",
    "Hook",
    "ProgressBar",
    "Trainer",
]


@dataclass
class History:
    """The record of every epoch so far, over all the runs of one model."""

    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    best_loss: float = np.inf
    best_score: float = -np.inf
    no_improvement: int = 0


@dataclass
class RunSettings:
    """How one run (one ``fit`` or ``partial_fit`` call) trains."""

    batch_size: int
    samples_per_class: int
    learning_rate: float
    max_epochs: int
    schedule: str = "constant"  # or "cosine": anneal to 0 over this run's max_epochs


class Hook:
    """Something done around the epochs of a run; every method is optional."""

    def on_start(self, trainer: Trainer) -> None:
        """Before the first epoch of the run (after a checkpoint was restored: then
        ``trainer.run_epoch > 0``)."""

    def after_epoch(self, trainer: Trainer) -> None:
        """After each completed epoch; ``trainer.stop = True`` ends the run."""

    def on_abort(self, trainer: Trainer) -> str:
        """The run ended early (divergence or interrupt); returns a sentence for the warning."""
        return ""

    def on_end(self, trainer: Trainer) -> None:
        """After the last epoch of a run that was not aborted."""

    def close(self) -> None:
        """Release resources, however the run ended."""


class Trainer:
    """The objective, its optimizer (AdamW; :class:`LazyAdam` for sparse embedding tables) and
    everything else training changes.

    A trainer lives as long as the fitted model: ``warm_start`` and ``partial_fit`` continue
    with the same one. ``loss_name`` names the loss that built ``objective.criterion`` and
    ``supervision`` what it learns from (the :mod:`sk_dml.supervision` kind, and the kind its
    loss sees); ``rng`` draws the batches.
    """

    def __init__(
        self, objective: Objective, *, loss_name: str, supervision: str = "classes",
        learning_rate, weight_decay, rng,
    ):  # fmt: skip
        self.objective = objective
        self.loss_name = loss_name
        self.supervision = supervision
        sparse = sparse_parameters(objective)
        dense = [p for p in objective.parameters() if all(p is not q for q in sparse)]
        # The loss's own parameters (proxies, class weights) in a group of their own, with
        # the settings the loss declares (e.g. a 100x learning rate, no weight decay).
        own = list(objective.criterion.parameters())
        network = [p for p in dense if all(p is not q for q in own)]
        param_groups = [{"params": network}]
        if own:
            settings = getattr(objective.criterion, "optimizer_settings", {})
            param_groups.append({"params": own, "lr_multiplier": 1.0, **settings})
        self.optimizer = torch.optim.AdamW(
            param_groups, lr=learning_rate, weight_decay=weight_decay, fused=fusable(dense)
        )
        # Embedding tables with sparse gradients (sk_dml.nets.TableInput): Adam's lazy
        # variant, which moves only the rows a batch used (no weight decay).
        self.sparse_optimizer = LazyAdam(sparse, lr=learning_rate) if sparse else None
        self.rng = rng
        self.history = History()
        self.best_weights: dict | None = None
        # The current run's state, set by run().
        self.scheduler = self.sparse_scheduler = None
        self.generator: torch.Generator | None = None
        self.group: ProcessGroup | None = None
        self.run_epoch = 0
        self.stop = False

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.optimizer, self.sparse_optimizer) if o is not None]

    @property
    def n_iter(self) -> int:
        return len(self.history.loss_curve)

    def snapshot(self) -> dict:
        """A copy of the objective's weights (network and loss parameters)."""
        return {k: v.detach().clone() for k, v in self.objective.state_dict().items()}

    def restore_best(self) -> None:
        self.objective.load_state_dict(self.best_weights)
        self.objective.eval()

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resumed run needs to continue exactly as this one would (tensors,
        numbers and plain containers: loadable with ``torch.load(weights_only=True)``)."""
        dropout_rng = None if self.generator is None else self.generator.get_state()
        group = self.group
        return {
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "sparse_optimizer": _state_or_none(self.sparse_optimizer),
            "sparse_scheduler": _state_or_none(self.sparse_scheduler),
            "best_weights": self.best_weights,
            "history": asdict(self.history),
            "sampler_rng": rng_state_to_tensors(self.rng),
            "dropout_rng": [dropout_rng] if group is None else group.gather(dropout_rng),
            "run_epoch": self.run_epoch,
            "stop": self.stop,
        }

    def load_state_dict(self, state: dict) -> None:
        device = next(iter(self.objective.state_dict().values())).device
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.sparse_optimizer is not None and state.get("sparse_optimizer") is not None:
            self.sparse_optimizer.load_state_dict(state["sparse_optimizer"])
        if self.sparse_scheduler is not None and state.get("sparse_scheduler") is not None:
            self.sparse_scheduler.load_state_dict(state["sparse_scheduler"])
        self.best_weights = {k: v.to(device) for k, v in state["best_weights"].items()}
        self.history = History(**state["history"])
        restore_rng(self.rng, state["sampler_rng"])
        # Each rank continues its own dropout stream; exact when the group size is the same.
        saved = state["dropout_rng"]
        dropout_rng = saved[(self.group.rank if self.group else 0) % len(saved)]
        if self.generator is not None and dropout_rng is not None:
            self.generator.set_state(dropout_rng)
        self.run_epoch = state["run_epoch"]
        self.stop = state["stop"]

    # -- training ------------------------------------------------------------------------------
    def run(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        settings: RunSettings,
        hooks: Sequence[Hook] = (),
        *,
        groups: np.ndarray | None = None,
        group: ProcessGroup | None = None,
        generator: torch.Generator | None = None,
        resume: dict | None = None,
    ) -> None:
        """Train on the items ``X`` (rows, or tuples of row indices) and their targets ``y``
        (class codes, target values or pair labels) for up to ``settings.max_epochs`` epochs,
        the ``hooks`` around each, in their order. Batches hold groups of
        ``settings.samples_per_class`` items of one of the ``groups`` (an int array, one
        entry per item; :class:`~sk_dml.sampling.ClassBalancedBatchSampler`), or a random
        ``settings.batch_size`` items when ``groups`` is None.

        Every rank of ``group`` calls this with the same data and settings. Dropout masks
        come from ``generator`` (see :func:`sk_dml.nets.dropout_generator`). ``resume`` is a
        :meth:`state_dict` of an interrupted run of the same fit, to continue from.
        """
        self.group, self.generator = group, generator
        self.run_epoch, self.stop = 0, False
        for optimizer in self.optimizers:  # each run starts from the base rate
            for param_group in optimizer.param_groups:
                multiplier = param_group.get("lr_multiplier", 1.0)
                param_group["lr"] = settings.learning_rate * multiplier
                param_group.pop("initial_lr", None)
        self.scheduler = self.sparse_scheduler = None
        if settings.schedule == "cosine":
            self.scheduler, self.sparse_scheduler = (
                None
                if optimizer is None
                else torch.optim.lr_scheduler.CosineAnnealingLR(
                    optimizer, T_max=settings.max_epochs
                )
                for optimizer in (self.optimizer, self.sparse_optimizer)
            )
        if groups is None:
            sampler = ShuffledBatchSampler(len(X), settings.batch_size, random_state=self.rng)
        else:
            sampler = ClassBalancedBatchSampler(
                groups, settings.batch_size, settings.samples_per_class, random_state=self.rng
            )
        if resume is not None:
            self.load_state_dict(resume)
        trained = group.wrap(self.objective) if group is not None else self.objective
        try:
            for hook in hooks:
                hook.on_start(self)
            if self.best_weights is None:
                self.best_weights = self.snapshot()
            while not self.stop and self.run_epoch < settings.max_epochs:
                batches = list(sampler)
                if group is not None:
                    batches = shard_batches(batches, group.rank, group.world_size)
                loss = _train_one_epoch(trained, X, y, batches, self.optimizers, group, generator)
                if not np.isfinite(loss):  # the divergence guard
                    raise FloatingPointError(
                        f"the loss or the weights became non-finite in epoch {self.n_iter + 1}"
                    )
                for scheduler in (self.scheduler, self.sparse_scheduler):
                    if scheduler is not None:
                        scheduler.step()
                self.history.loss_curve.append(loss)
                self.run_epoch += 1
                for hook in hooks:
                    hook.after_epoch(self)
        except (FloatingPointError, KeyboardInterrupt) as error:
            self.restore_best()
            if isinstance(error, FloatingPointError):
                for optimizer in self.optimizers:
                    optimizer.state.clear()  # their moments may be non-finite too
                what = f"Training diverged: {error}. Lower learning_rate (or use normalize=True)."
            else:
                what = f"Training interrupted after {self.n_iter} epochs."
            what += "".join(hook.on_abort(self) for hook in hooks)
            warn_user(
                f"{what} The best weights so far were restored and the estimator is usable.",
                RuntimeWarning,
            )
            return
        finally:
            for hook in hooks:
                hook.close()
        for hook in hooks:
            hook.on_end(self)
        self.objective.eval()


def _train_one_epoch(objective, X, y, batches, optimizers, group, generator) -> float:
    """One pass over ``batches``; returns the mean batch loss (over all ranks in a group), or
    NaN when a loss or, at the end, a weight is not finite.

    The device is asked for nothing until the epoch ends: losses are summed where they are
    computed. A non-finite gradient shows up as non-finite weights after its step. Dropout
    masks come from ``generator``.
    """
    objective.train()
    total = torch.zeros((), dtype=torch.float64, device=X.device)
    for batch in batches:
        index = torch.from_numpy(batch).to(X.device, non_blocking=True)
        with dropout_generator(generator):
            loss = objective(X[index], y[index])
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        total += loss.detach()
    # inf - inf is NaN and finite - finite is 0: a non-finite weight turns the total into NaN.
    for weight in objective.parameters():
        total += (weight.detach() - weight.detach()).sum()
    if group is not None:
        total = group.sum(total) / group.world_size
    return float(total) / max(len(batches), 1)


def _state_or_none(stateful) -> dict | None:
    return None if stateful is None else stateful.state_dict()


def warn_user(message: str, category: type[Warning]) -> None:
    """Warn at the user's call: the first frame outside sk_dml and scikit-learn."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in (
        "sk_dml",
        "sklearn",
    ):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


# -------------------------------------------------------------------------------------- hooks
class EarlyStopping(Hook):
    """Track the best epoch and stop after ``n_iter_no_change`` epochs without an improvement:
    of a validation score by more than ``tol`` when ``validation`` is given (scores lie in
    [0, 1]), else of the training loss by more than ``tol`` times the best loss's magnitude
    (:func:`loss_improved`: a loss's scale depends on the loss, its margin and temperature,
    so an absolute tolerance would stop a loss that is small from the start too early).

    Parameters
    ----------
    validation : (X_val tensor, y_val array) scored before training and after each epoch by
        ``score_fn`` on the embeddings; the best-scoring weights (perhaps the start's) are
        restored at the end
    patience : whether to stop at a plateau; False (``partial_fit``) only tracks the best
    warn : warn (ConvergenceWarning) when max_epochs ends training before a plateau
    verbose : say on stderr (rank 0) when and why training stopped at a plateau
    """

    def __init__(
        self,
        tol: float,
        n_iter_no_change: int,
        *,
        validation: tuple[torch.Tensor, np.ndarray] | None = None,
        score_fn: Callable[[np.ndarray, np.ndarray], float] | None = None,
        patience: bool = True,
        warn: bool = False,
        verbose: int = 0,
    ):
        self.tol, self.n_iter_no_change = tol, n_iter_no_change
        self.validation, self.score_fn = validation, score_fn
        self.patience, self.warn, self.verbose = patience, warn, verbose

    def _score(self, trainer: Trainer) -> float:
        group = trainer.group
        X_val, y_val = self.validation
        is_main = group is None or group.is_main
        score = self.score_fn(embed(trainer.objective.module, X_val), y_val) if is_main else None
        if group is not None:  # every rank takes rank 0's score, so all stop together
            score = group.broadcast_float(score, X_val.device)
        return score

    def on_start(self, trainer: Trainer) -> None:
        fresh = trainer.run_epoch == 0 and trainer.n_iter == 0  # not resumed, not warm
        # The network before training is a candidate too: training can make held-out
        # retrieval worse than its start, and then the start is what the fit returns.
        if self.validation is not None and fresh:
            trainer.history.best_score = self._score(trainer)

    def after_epoch(self, trainer: Trainer) -> None:
        history, loss = trainer.history, trainer.history.loss_curve[-1]
        if self.validation is not None:
            score = self._score(trainer)
            history.validation_scores.append(score)
            better = score > history.best_score + self.tol
            history.best_score = max(history.best_score, score)
            history.best_loss = min(history.best_loss, loss)
        else:
            better = loss_improved(loss, history.best_loss, self.tol)
            history.best_loss = min(history.best_loss, loss)
        if better:
            history.no_improvement = 0
            trainer.best_weights = trainer.snapshot()
        else:
            history.no_improvement += 1
        if self.patience and history.no_improvement >= self.n_iter_no_change:
            trainer.stop = True

    def on_end(self, trainer: Trainer) -> None:
        if self.validation is not None:
            trainer.restore_best()
        if self.verbose and trainer.stop and (trainer.group is None or trainer.group.is_main):
            print(self._stop_message(trainer), file=sys.stderr)
        if self.warn and not trainer.stop:
            what = "validation score" if self.validation is not None else "loss"
            warn_user(
                f"Stopped after max_epochs={trainer.run_epoch} epochs without converging (the "
                f"{what} still improved by more than tol within the last n_iter_no_change "
                "epochs). Consider raising max_epochs.",
                ConvergenceWarning,
            )

    def _stop_message(self, trainer: Trainer) -> str:
        last = trainer.n_iter - trainer.history.no_improvement  # the last improvement
        start = (
            f"Stopped at a plateau after epoch {trainer.n_iter}: the "
            + ("validation score" if self.validation is not None else "training loss")
            + f" did not improve by more than tol={self.tol:g}"
            + ("" if self.validation is not None else " times its best")
            + f" for n_iter_no_change={self.n_iter_no_change} epochs"
        )
        if self.validation is None:
            return f"{start} (the last improvement: epoch {last})."
        weights = f"the weights of epoch {last}" if last else "the untrained network's weights"
        return f"{start}; {weights}, the last improvement, were restored."


def loss_improved(loss: float, best: float, tol: float) -> bool:
    """Whether ``loss`` beats ``best`` by more than ``tol * |best|``: relative, so a loss
    curve and the same curve times any positive factor stop at the same epoch (the first
    finite loss always improves on the start's ``inf``)."""
    if not np.isfinite(best):
        return True
    return bool(loss < best - tol * abs(best))


class Checkpointing(Hook):
    """Save the trainer's state after every epoch (so it goes last among the hooks); delete
    the file when the run ends normally.

    ``start_rng`` is the fit's numpy random state before it drew anything: saved with every
    epoch, it lets a resumed fit replay the same validation split, even with
    ``random_state=None``.
    """

    def __init__(self, checkpoint: Checkpoint, start_rng: dict):
        self.checkpoint, self.start_rng = checkpoint, start_rng

    def after_epoch(self, trainer: Trainer) -> None:
        state = trainer.state_dict()  # a collective call in a group: every rank makes it
        on_main(trainer.group, functools.partial(self.checkpoint.save, state, self.start_rng))

    def on_abort(self, trainer: Trainer) -> str:
        if self.checkpoint.path.exists():
            return f" The last completed epoch is saved in {self.checkpoint.path}."
        return ""

    def on_end(self, trainer: Trainer) -> None:
        on_main(trainer.group, self.checkpoint.remove)


# Under verbose="auto", a fit expected to take longer than this many seconds shows its bar.
AUTO_PROGRESS_SECONDS = 5.0


def _interactive() -> bool:
    """Whether a person is likely watching: stderr is a terminal, or a Jupyter kernel runs."""
    stream = sys.stderr
    return "ipykernel" in sys.modules or bool(stream is not None and stream.isatty())


class ProgressBar(Hook):
    """A tqdm bar over the epochs with the loss and the validation score, on rank 0 only.
    ``verbose``: a true value shows it, 0 or False never; ``"auto"`` shows it once the epochs
    so far say the run will take more than :data:`AUTO_PROGRESS_SECONDS` and someone is
    watching (:func:`_interactive`), so quick fits and tests print nothing."""

    def __init__(self, max_epochs: int, verbose):
        self.bar = None
        self.max_epochs, self.verbose = max_epochs, verbose

    def on_start(self, trainer: Trainer) -> None:
        self.shown = (trainer.group is None or trainer.group.is_main) and bool(self.verbose)
        self.start, self.first_epoch = time.perf_counter(), trainer.run_epoch
        self._open(trainer.run_epoch, disable=not self.shown or self.verbose == "auto")

    def _open(self, initial: int, disable: bool) -> None:
        self.bar = tqdm(
            total=self.max_epochs, initial=initial, desc="epochs", leave=False, disable=disable
        )

    def _long(self, trainer: Trainer) -> bool:
        """Whether the epochs so far say this run takes more than AUTO_PROGRESS_SECONDS."""
        done = trainer.run_epoch - self.first_epoch
        per_epoch = (time.perf_counter() - self.start) / done
        return per_epoch * (self.max_epochs - self.first_epoch) > AUTO_PROGRESS_SECONDS

    def after_epoch(self, trainer: Trainer) -> None:
        if self.bar.disable:
            if not (self.shown and self._long(trainer) and _interactive()):
                return
            self.bar.close()  # "auto", and a long fit someone watches: show it from now on
            self._open(trainer.run_epoch - 1, disable=False)
        history = trainer.history
        postfix = {"loss": f"{history.loss_curve[-1]:.4g}"}
        if len(history.validation_scores) == trainer.n_iter:
            postfix["val"] = f"{history.validation_scores[-1]:.4f}"
        self.bar.set_postfix(postfix)
        self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class CollapseGuard(Hook):
    """At the end, refuse an embedding that maps every training row to one point (or to a
    non-finite one): restore the best epoch's weights and warn."""

    def __init__(self, X: torch.Tensor, learning_rate: float):
        self.X, self.learning_rate = X, learning_rate

    def on_end(self, trainer: Trainer) -> None:
        trainer.objective.eval()
        if not _collapsed(trainer.objective.module, self.X):
            return
        trainer.restore_best()
        restored = "the best epoch's weights were restored"
        if _collapsed(trainer.objective.module, self.X):
            restored += ", but they are degenerate too"
        warn_user(
            f"The embedding collapsed: after {trainer.n_iter} epochs every training row maps to "
            f"(nearly) the same point, or to a non-finite one; {restored}. Lower learning_rate "
            f"(it is {self.learning_rate:g}).",
            RuntimeWarning,
        )


def _collapsed(module: torch.nn.Module, X: torch.Tensor, max_rows: int = 512) -> bool:
    """Whether ``module`` maps distinct training rows to one point (or a non-finite one).

    On up to ``max_rows`` evenly spaced rows (enough to see a collapse, and cheap next to an
    epoch of a small table): the root-mean-square distance of the embeddings to their mean
    is at most ``COLLAPSE_TOL`` times their root-mean-square norm. Rows that are all
    identical are never called collapsed.
    """
    rows = torch.linspace(0, len(X) - 1, min(len(X), max_rows), device=X.device)
    sample = X[rows.round().long()]
    if not (sample != sample[0]).any():
        return False
    Z = torch.from_numpy(embed(module, sample)).double()
    spread = (Z - Z.mean(0)).square().sum(1).mean().sqrt()
    scale = Z.square().sum(1).mean().sqrt()
    return not bool(spread > COLLAPSE_TOL * scale)  # NaN counts as collapsed
