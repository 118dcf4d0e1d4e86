"""One call of ``fit`` or ``partial_fit``, around the trainer: where it runs and with which
random draws, the network and trainer it starts from, the held-out part, and the run.

:class:`~sk_dml._embedder.BaseEmbedder` checks the data and the loss, then calls
:func:`train`; this module reads the estimator's parameters and never changes the estimator,
so a failed fit leaves a fitted model as it was.
"""

from __future__ import annotations

import copy
import functools
import threading
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.utils import check_random_state

from ._checkpoint import Checkpoint, fingerprint, restore_rng, rng_state_to_tensors, weights_digest
from ._distributed import current_group, on_main
from ._inference import embed
from ._objectives import TupleObjective
from ._training import (
    Checkpointing,
    CollapseGuard,
    EarlyStopping,
    History,
    ProgressBar,
    RunSettings,
    Trainer,
)
from .criteria import Loss
from .nets import set_sparse_gradients
from .supervision import Supervision
from .tabular import TableSchema

# Held while a fit seeds torch's process-wide generator and draws its initial weights from it.
_TORCH_RNG_LOCK = threading.Lock()


@dataclass
class Fitted:
    """What a finished run leaves: the estimator becomes this."""

    module: torch.nn.Module
    trainer: Trainer
    device: torch.device
    validated: bool  # whether part of the data was held out and scored
    n_features_out: int
    unfinished_run_start: str | None  # the start of a warm start a checkpoint may resume


def resolve_device(device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; refuse a device this machine lacks."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device={device!r} is not a valid torch device: {error}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this machine; "
                "use device='auto' or 'cpu'."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)."
            )
    elif resolved.type != "cpu" and resolved.type != "mps":
        raise ValueError(f"device={device!r}: only 'cpu', 'cuda[:i]' and 'mps' are supported.")
    return resolved


@dataclass
class _Placement:
    """Where one fit runs and what its random draws start from."""

    group: object  # a torch.distributed group of 2+ processes, or None
    device: torch.device
    rng: np.random.RandomState  # batches and held-out splits
    seed: int  # torch's generators: initial weights and dropout
    checkpoint: Checkpoint | None
    resume: dict | None  # the interrupted run's checkpoint
    start_rng: dict | None  # rng's state at the start, saved with each checkpoint
    start: str | None  # digest of the weights a warm start starts from


def _place(estimator, task: Supervision, continuing: bool, stop_early: bool) -> _Placement:
    group = current_group()
    device = resolve_device(estimator.device)
    if group is not None:
        device = group.device(device)
    rng = check_random_state(estimator.random_state)
    if group is not None:  # all ranks draw rank 0's batches
        rng = group.share_rng(rng)
    checkpoint, resume, start, start_rng = None, None, None, None
    if estimator.checkpoint_dir is not None and stop_early:
        if continuing:  # the weights this run starts from, or an unfinished run's
            start = getattr(estimator, "_unfinished_run_start", None)
            start = start or weights_digest(estimator.module_.state_dict())
        checkpoint = Checkpoint(
            estimator.checkpoint_dir,
            fingerprint(estimator, *task.arrays(), start=start),
            writer=group is None or group.is_main,
        )
        resume = on_main(group, functools.partial(_open_checkpoint, checkpoint))
        if resume is not None:  # replay the interrupted fit's draws from its first one
            rng = restore_rng(np.random.RandomState(), resume["start_rng"])
        start_rng = rng_state_to_tensors(rng)
    seed = int(rng.randint(np.iinfo(np.int32).max)) + (group.rank if group else 0)
    return _Placement(group, device, rng, seed, checkpoint, resume, start_rng, start)


def train(
    estimator,
    task: Supervision,
    schema: TableSchema,
    loss: Loss,
    *,
    epochs: int,
    continuing: bool,
    stop_early: bool,
) -> Fitted:
    """Train ``estimator``'s network (a new one, or a copy of the fitted one when
    ``continuing``) on ``task`` with ``loss`` for at most ``epochs`` epochs; early stopping
    and the cosine schedule apply when ``stop_early`` (``fit``, not ``partial_fit``)."""
    place = _place(estimator, task, continuing, stop_early)
    generator = torch.Generator(device=place.device).manual_seed(place.seed)  # own dropout
    fork_devices = [place.device] if place.device.type == "cuda" else []
    # Torch's process-wide generator is seeded for this fit (under a lock while the network
    # and the loss's parameters are drawn from it) and given back as it was at the end.
    with torch.random.fork_rng(devices=fork_devices):
        with _TORCH_RNG_LOCK:  # seeding the shared generator: one fit at a time
            torch.manual_seed(place.seed)
            module, trainer, task, validation = _start(
                estimator, task, schema, loss, place, continuing, stop_early
            )
        # Training runs outside the lock: sk_dml's dropout draws from the fit's own
        # generator; a custom module's torch.nn.Dropout from the seeded shared one.
        _run(estimator, trainer, task, validation, place, generator, epochs, stop_early)
    # A checkpoint left by an interrupted warm start resumes at the next warm start, even
    # though the model now holds that run's best weights rather than its start.
    unfinished = place.checkpoint is not None and place.checkpoint.path.exists()
    return Fitted(
        module=module,
        trainer=trainer,
        device=place.device,
        validated=validation is not None,
        n_features_out=embed(module, task.rows[:1]).shape[1],
        unfinished_run_start=place.start if unfinished and continuing else None,
    )


def _start(estimator, task, schema, loss, place, continuing, stop_early):
    """The network and trainer this run starts from (fresh, the fitted ones, or the fitted
    network with a new trainer for another loss), the training part of ``task`` and the
    held-out data (None without)."""
    device = place.device
    if continuing:  # on copies: a fit that fails leaves the fitted model as it was
        module, trainer = copy.deepcopy((estimator.module_, getattr(estimator, "_trainer", None)))
        module.to(device)
        if trainer is not None:
            trainer.objective.to(device)  # the loss's parameters too
    else:
        module = estimator._new_module(schema)
        set_sparse_gradients(module, place.group is None)  # NCCL takes no sparse ones
        module.to(device)
    validation, table = None, task.rows
    if estimator.early_stopping and stop_early:
        task, validation = _hold_out(estimator, task, place.rng, device)
    if not continuing:
        # The input layer's statistics come from the whole table, as a scaler's before a
        # model that holds out part of its input; the PCA start from the training part alone.
        module.inputs.fit_statistics(table)
        module.init_from_data(_pca_sample(task.rows))
        trainer = _new_trainer(estimator, module, loss, task, place.rng, device)
    elif trainer is None or (trainer.loss_name, trainer.supervision) != (
        loss.name,
        task.training_kind,
    ):
        # Unpickled or loaded (no optimizer or loss parameters kept), or another loss: the
        # network and the history go on, the rest starts anew.
        trainer = _new_trainer(estimator, module, loss, task, place.rng, device)
        trainer.history = _fitted_history(estimator)
    else:  # the same loss, perhaps with new parameters; its own ones are kept
        trainer.objective.criterion.function = loss.bound_function(task.loss_kind)
    return module, trainer, task, validation


def _run(estimator, trainer, task, validation, place, generator, epochs, stop_early) -> None:
    device = place.device
    targets = task.targets_for(trainer.objective.criterion)
    learning_rate = estimator._resolved("learning_rate")
    rows = torch.tensor(task.rows, dtype=torch.float32, device=device)
    items = rows if task.items is task.rows else torch.as_tensor(task.items, device=device)
    if isinstance(trainer.objective, TupleObjective):
        trainer.objective.rows = rows
    schedule = estimator.learning_rate_schedule if stop_early else "constant"
    hooks = [
        EarlyStopping(
            estimator.tol,
            estimator.n_iter_no_change,
            validation=validation,
            score_fn=task.score_function(estimator._embedding_metric()),
            patience=stop_early,
            warn=stop_early and schedule == "constant",
            verbose=estimator.verbose != "auto" and estimator.verbose,  # "auto": the bar only
        ),
        CollapseGuard(rows, learning_rate),
        ProgressBar(epochs, estimator.verbose),
    ]
    if place.checkpoint is not None:  # last: it saves what the others recorded
        hooks.append(Checkpointing(place.checkpoint, place.start_rng))
    trainer.run(
        items,
        torch.as_tensor(targets, device=device),
        RunSettings(
            batch_size=estimator.batch_size,
            samples_per_class=estimator.samples_per_class,
            learning_rate=learning_rate,
            max_epochs=epochs,
            schedule=schedule,
        ),
        hooks,
        group=place.group,
        generator=generator,
        groups=task.groups(),
        resume=None if place.resume is None else place.resume["trainer"],
    )
    if isinstance(trainer.objective, TupleObjective):
        trainer.objective.rows = None  # the table is not part of the model


def _hold_out(estimator, task: Supervision, rng, device):
    """The training part of ``task`` and the held-out (rows tensor, targets) that select
    the model: whole classes or rows as ``validation_split`` says. With
    ``early_stopping="auto"``, data too small to hold anything out train whole, with no
    validation (None)."""
    by = estimator.validation_split
    try:
        task, X_val, y_val = task.split(estimator.validation_fraction, by, rng)
    except ValueError as error:
        if estimator.early_stopping == "auto":
            return task, None
        if "early_stopping" in str(error):  # our own message says what to do
            raise
        raise ValueError(
            f"early_stopping=True cannot hold out {by} of this data ({error}); set "
            "early_stopping='auto' to train on all of it when it is too small."
        ) from None
    return task, (torch.tensor(X_val, dtype=torch.float32, device=device), y_val)


def _new_trainer(estimator, module, loss: Loss, task: Supervision, rng, device) -> Trainer:
    """A trainer with a new loss module (new parameters, if the loss has any) and a new
    optimizer around ``module``, for the supervision ``task``."""
    width = embed(module, np.zeros((1, module.inputs.in_features), np.float32)).shape[1]
    criterion = task.criterion(loss, width).to(device)
    return Trainer(
        task.objective(module, criterion),
        loss_name=loss.name,
        supervision=task.training_kind,
        learning_rate=estimator._resolved("learning_rate"),
        weight_decay=estimator.weight_decay,
        rng=rng,
    )


def _fitted_history(estimator) -> History:
    """The history of a model that was unpickled or loaded, so n_iter_ keeps counting."""
    scores = estimator.validation_scores_
    return History(
        loss_curve=list(estimator.loss_curve_),
        validation_scores=list(scores or []),
        best_loss=estimator.best_loss_,
        best_score=estimator.best_score_ if estimator.best_score_ is not None else -np.inf,
    )


def _open_checkpoint(checkpoint: Checkpoint) -> dict | None:
    """Check that the folder takes files, then read this run's checkpoint if there is one."""
    checkpoint.prepare()
    return checkpoint.load(map_location="cpu")


def _pca_sample(X: np.ndarray, max_rows: int = 20_000) -> np.ndarray:
    """Evenly spaced rows of ``X`` (all of them up to ``max_rows``), to initialise from."""
    return X[:: max(1, len(X) // max_rows)]
