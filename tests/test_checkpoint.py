"""Checkpoint and resume: a fit killed at any moment continues from its last completed epoch.

The oracle for "resumes correctly" is an uninterrupted fit with the same random_state: on the
CPU fits are bit-identical across processes (tests/test_reliability.py), so the resumed fit must
end with exactly the same weights, loss curve and validation scores.
"""

import copy
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import EMBEDDERS, LOSSES
from sklearn.datasets import load_digits

import sk_dml._training as training
from sk_dml import NPairEmbedder, TripletEmbedder
from sk_dml._checkpoint import Checkpoint, fingerprint, weights_digest
from sk_dml.supervision import ClassLabels

# Dropout and a validation split exercise the torch and numpy random streams a resume restores.
PARAMS = dict(
    hidden_layer_sizes=(256, 256),
    n_components=16,
    dropout=0.1,
    max_epochs=10,
    batch_size=64,
    early_stopping=True,
    n_iter_no_change=100,
    random_state=3,
)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _weights(estimator) -> dict:
    return {k: v.clone() for k, v in estimator.module_.state_dict().items()}


def _assert_same_fit(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name
    assert a.loss_curve_ == b.loss_curve_
    assert a.validation_scores_ == b.validation_scores_
    # The loss's own parameters (proxies) too.
    oa, ob = (e._trainer.objective.state_dict() for e in (a, b))
    assert oa.keys() == ob.keys() and all(torch.equal(oa[k], ob[k]) for k in oa)


def _saved_epochs(directory: Path) -> int:
    """Completed epochs in the checkpoint of ``directory`` (0 when there is none)."""
    files = list(directory.glob("sk_dml-*.ckpt"))
    if not files:
        return 0
    return torch.load(files[0], weights_only=True)["trainer"]["run_epoch"]


@pytest.fixture
def count_epochs(monkeypatch):
    """Counts the epochs that actually train in this process."""
    calls = []
    original = training._train_one_epoch

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "_train_one_epoch", counting)
    return calls


_KILLABLE_FIT = """
import sys
from sklearn.datasets import load_digits
from sk_dml import TripletEmbedder
X, y = load_digits(return_X_y=True)
TripletEmbedder(checkpoint_dir=sys.argv[1], **{params}).fit(X / 16.0, y)
"""


@pytest.mark.slow
def test_sigkill_mid_fit_then_rerun_resumes_and_matches_an_uninterrupted_fit(
    digits, tmp_path, count_epochs
):
    script = _KILLABLE_FIT.format(params=repr(PARAMS))
    child = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", script, str(tmp_path)],
        # As many threads as this process: the PCA start's LAPACK sums round by thread count.
        env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())},
    )
    try:
        deadline = time.monotonic() + 240
        while _saved_epochs(tmp_path) < 3 and child.poll() is None:
            assert time.monotonic() < deadline, "the child fit never wrote its third epoch"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)  # no chance to clean up, possibly mid-write
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the fit finished before it could be killed"
    done = _saved_epochs(tmp_path)
    assert 3 <= done < PARAMS["max_epochs"]

    X, y = digits
    resumed = TripletEmbedder(checkpoint_dir=tmp_path, **PARAMS).fit(X, y)
    assert len(count_epochs) == PARAMS["max_epochs"] - done  # not from zero
    assert list(tmp_path.glob("sk_dml-*.ckpt")) == []  # a finished fit removes its checkpoint

    count_epochs.clear()
    uninterrupted = TripletEmbedder(**PARAMS).fit(X, y)
    assert len(count_epochs) == PARAMS["max_epochs"]
    _assert_same_fit(resumed, uninterrupted)
    assert resumed.n_iter_ == PARAMS["max_epochs"]


def _interrupt_at(monkeypatch, epoch: int):
    """Make the ``epoch``-th training epoch (1-based) raise KeyboardInterrupt."""
    original = training._train_one_epoch
    calls = []

    def interrupting(*args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "_train_one_epoch", interrupting)


@pytest.mark.parametrize("cls", EMBEDDERS, ids=LOSSES)
@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_interrupted_fit_resumes_to_the_same_weights(digits, tmp_path, monkeypatch, cls, schedule):
    X, y = digits
    params = {**PARAMS, "hidden_layer_sizes": (32,), "learning_rate_schedule": schedule}
    with monkeypatch.context() as patch:
        _interrupt_at(patch, epoch=4)
        with pytest.warns(RuntimeWarning, match="interrupted after 3 epochs.*saved in"):
            cls(checkpoint_dir=tmp_path, **params).fit(X, y)
    assert _saved_epochs(tmp_path) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the constant schedule's ConvergenceWarning
        resumed = cls(checkpoint_dir=tmp_path, **params).fit(X, y)
        uninterrupted = cls(**params).fit(X, y)
    _assert_same_fit(resumed, uninterrupted)


def test_resume_without_random_state_replays_the_same_split(digits, tmp_path, monkeypatch):
    """random_state=None: the resumed fit must reuse the first run's draws (its validation
    split), which it can only know from the checkpoint."""
    X, y = digits
    params = {**PARAMS, "hidden_layer_sizes": (32,), "random_state": None}
    held_out = []  # the validation rows of each fit, as drawn
    split = ClassLabels.split

    def recording_split(self, *args):
        parts = split(self, *args)
        held_out.append(parts[1].copy())
        return parts

    monkeypatch.setattr(ClassLabels, "split", recording_split)
    with monkeypatch.context() as patch:
        _interrupt_at(patch, epoch=3)
        with pytest.warns(RuntimeWarning, match="interrupted"):
            TripletEmbedder(checkpoint_dir=tmp_path, **params).fit(X, y)
    resumed = TripletEmbedder(checkpoint_dir=tmp_path, **params).fit(X, y)
    TripletEmbedder(**{**params, "max_epochs": 1}).fit(X, y)  # a new fit draws anew
    assert np.array_equal(held_out[0], held_out[1])
    assert not np.array_equal(held_out[0], held_out[2])
    assert resumed.n_iter_ == params["max_epochs"]


def test_warm_start_interrupted_then_resumed_matches_an_uninterrupted_warm_start(
    digits, tmp_path, monkeypatch, count_epochs
):
    X, y = digits
    params = {**PARAMS, "hidden_layer_sizes": (32,), "max_epochs": 6}
    first = TripletEmbedder(**params).fit(X, y)
    reference = copy.deepcopy(first).set_params(warm_start=True).fit(X, y)
    emb = first.set_params(warm_start=True, checkpoint_dir=tmp_path)
    with monkeypatch.context() as patch:
        _interrupt_at(patch, epoch=4)
        with pytest.warns(RuntimeWarning, match="interrupted.*saved in"):
            emb.fit(X, y)  # module_ now holds this run's best weights, not its start
    count_epochs.clear()
    emb.fit(X, y)
    assert len(count_epochs) == params["max_epochs"] - 3
    _assert_same_fit(emb, reference)
    assert list(tmp_path.iterdir()) == []


def test_a_fit_that_fails_leaves_the_fitted_model_unchanged(digits, tmp_path, monkeypatch):
    X, y = digits
    emb = TripletEmbedder(**{**PARAMS, "hidden_layer_sizes": (32,), "max_epochs": 3}).fit(X, y)
    before, n_iter, history = _weights(emb), emb.n_iter_, list(emb.loss_curve_)
    original = training._train_one_epoch
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a worker died")
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "_train_one_epoch", failing)
    emb.set_params(warm_start=True, checkpoint_dir=tmp_path)
    with pytest.raises(RuntimeError, match="a worker died"):
        emb.fit(X, y)
    assert all(torch.equal(before[k], emb.module_.state_dict()[k]) for k in before)
    assert (emb.n_iter_, emb.loss_curve_) == (n_iter, history)
    assert emb._trainer.n_iter == n_iter


def test_an_unusable_checkpoint_dir_is_refused_before_training(digits, tmp_path, count_epochs):
    X, y = digits
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(ValueError, match="checkpoint_dir=.*is not a folder this process can write"):
        TripletEmbedder(checkpoint_dir=not_a_folder / "sub", **PARAMS).fit(X, y)
    assert count_epochs == []


def test_an_interruption_in_the_first_epoch_names_no_checkpoint(digits, tmp_path, monkeypatch):
    X, y = digits
    _interrupt_at(monkeypatch, epoch=1)
    with pytest.warns(RuntimeWarning) as caught:
        TripletEmbedder(checkpoint_dir=tmp_path, **PARAMS).fit(X, y)
    message = str(caught[0].message)
    assert "interrupted after 0 epochs" in message and "saved in" not in message


def test_temporary_files_left_by_a_killed_writer_are_removed(digits, tmp_path):
    X, y = digits
    emb = TripletEmbedder(checkpoint_dir=tmp_path, **{**PARAMS, "max_epochs": 2})
    codes = np.unique(y, return_inverse=True)[1]
    key = fingerprint(emb, X.astype(np.float32), codes, start=None)  # of the encoded table
    stale = tmp_path / f".tmp-{key}-abcd1234"
    stale.write_bytes(b"half a checkpoint")
    other_run = tmp_path / ".tmp-someotherrun-abcd1234"
    other_run.write_bytes(b"another run's")
    emb.fit(X, y)
    assert sorted(p.name for p in tmp_path.iterdir()) == [other_run.name]


def test_partial_fit_and_plain_fit_write_no_files(digits, tmp_path):
    X, y = digits
    emb = TripletEmbedder(checkpoint_dir=tmp_path, **{**PARAMS, "max_epochs": 2})
    emb.partial_fit(X, y)
    assert list(tmp_path.iterdir()) == []
    emb.fit(X, y)
    assert list(tmp_path.iterdir()) == []  # written each epoch, removed at the end


def test_fingerprint_separates_runs_and_ignores_presentation(digits):
    X, y = digits
    codes = np.unique(y, return_inverse=True)[1]
    base = fingerprint(TripletEmbedder(margin=0.2), X, codes, start=None)
    assert base == fingerprint(TripletEmbedder(margin=0.2, verbose=1), X, codes, start=None)
    elsewhere = TripletEmbedder(margin=0.2, checkpoint_dir="x")
    assert base == fingerprint(elsewhere, X, codes, start=None)
    assert base != fingerprint(TripletEmbedder(margin=0.3), X, codes, start=None)
    assert base != fingerprint(NPairEmbedder(), X, codes, start=None)
    other = X.copy()
    other[0, 0] += 1e-3
    assert base != fingerprint(TripletEmbedder(margin=0.2), other, codes, start=None)
    assert base != fingerprint(TripletEmbedder(margin=0.2), X, codes[::-1].copy(), start=None)
    assert base != fingerprint(TripletEmbedder(margin=0.2), X, codes, start=weights_digest({}))
    # A network given as a module counts by its weights; as a callable, by its name.
    net = torch.nn.Linear(64, 8)
    with_net = fingerprint(TripletEmbedder(module=net), X, codes, start=None)
    assert with_net == fingerprint(TripletEmbedder(module=copy.deepcopy(net)), X, codes, start=None)
    torch.nn.init.zeros_(net.weight)
    assert with_net != fingerprint(TripletEmbedder(module=net), X, codes, start=None)


_FINGERPRINT_IN_A_PROCESS = """
import functools
import numpy as np
from sklearn.datasets import load_digits
from sk_dml import TripletEmbedder
from sk_dml._checkpoint import fingerprint
from sk_dml.nets import make_mlp
X, y = load_digits(return_X_y=True)
builder = functools.partial(make_mlp, n_components=8, hidden_layer_sizes=(16,))
emb = TripletEmbedder(module=builder, random_state=np.random.RandomState(3))
print(fingerprint(emb, X, y, start=None))
"""


@pytest.mark.slow
def test_fingerprint_is_the_same_in_every_process():
    """Parameters whose repr holds a memory address (a callable network builder, a
    RandomState) must not change the fingerprint, or a rerun would never find its checkpoint."""
    digests = {
        subprocess.run(
            [sys.executable, "-c", _FINGERPRINT_IN_A_PROCESS],
            capture_output=True,
            text=True,
            check=True,
        ).stdout  # fmt: skip
        for _ in range(2)
    }
    assert len(digests) == 1 and len(digests.pop().strip()) == 32


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    checkpoint = Checkpoint(tmp_path, "k")
    checkpoint.save({"run_epoch": 1, "weights": torch.arange(4.0)}, start_rng=None)

    def crash(payload, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save({"run_epoch": 2, "weights": torch.zeros(4)}, start_rng=None)
    monkeypatch.undo()
    loaded = checkpoint.load(map_location="cpu")
    assert loaded["trainer"]["run_epoch"] == 1
    assert torch.equal(loaded["trainer"]["weights"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == [checkpoint.path.name]  # no temp file left


def test_an_unreadable_checkpoint_is_a_clear_error(digits, tmp_path):
    X, y = digits
    emb = TripletEmbedder(checkpoint_dir=tmp_path, **PARAMS)
    codes = np.unique(y, return_inverse=True)[1]
    path = tmp_path / f"sk_dml-{fingerprint(emb, X.astype(np.float32), codes, start=None)}.ckpt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="cannot be read.*Delete it"):
        emb.fit(X, y)
    torch.save({"format": "something else"}, path)
    with pytest.raises(ValueError, match="not an sk_dml checkpoint"):
        emb.fit(X, y)


def test_a_checkpoint_cannot_run_code(tmp_path):
    """weights_only loading refuses pickled objects: a crafted file is an error, not a call."""
    path = Checkpoint(tmp_path, "k").path

    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    torch.save({"format": "sk_dml.checkpoint", "version": 1, "x": Payload()}, path)
    with pytest.raises(ValueError, match="cannot be read"):
        Checkpoint(tmp_path, "k").load(map_location="cpu")
    assert not (tmp_path / "pwned").exists()
