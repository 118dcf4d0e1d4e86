"""Data-parallel training under torchrun: two gloo processes on this machine.

Oracles: the two ranks' weights must be bit-identical to each other (DDP all-reduces the
gradients), and the model's 5-NN accuracy on held-out digits must match a single-process fit
of the same estimator within noise.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import sk_dml
from sk_dml._distributed import current_group, shard_batches

_SCRIPT = textwrap.dedent(
    """
    import os
    import sys
    import torch
    import torch.distributed as dist
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier
    import sk_dml._training
    import sk_dml._checkpoint
    from sk_dml import TripletEmbedder
    from sk_dml.criteria import loss_names
    from sk_dml.embedders import make_embedder

    shown, written = [], []

    class RecordingBar(sk_dml._training.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            shown.append(not self.disable)

    original_save = sk_dml._checkpoint.Checkpoint.save

    def recording_save(self, *args):
        written.append(self.path.name)
        original_save(self, *args)

    sk_dml._training.tqdm = RecordingBar
    sk_dml._checkpoint.Checkpoint.save = recording_save

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16.0, y, test_size=0.3, stratify=y, random_state=0
    )
    # The plain MLP at 3e-3 (the triplet loss's defaults when this test was written): it
    # learns fast enough for 20 epochs to show data-parallel accuracy and a plateau.
    common = dict(hidden_layer_sizes=(128,), n_components=16, batch_size=64, device="cpu",
                  residual=False, learning_rate=3e-3)
    emb = TripletEmbedder(
        max_epochs=20, early_stopping=False, random_state=0, verbose=1, **common
    ).fit(X_train, y_train)
    knn = KNeighborsClassifier(5).fit(emb.transform(X_train), y_train)
    stopped = TripletEmbedder(
        max_epochs=30, early_stopping=True, n_iter_no_change=3, random_state=1,
        checkpoint_dir=sys.argv[1] + "/checkpoints", **common
    ).fit(X_train, y_train)
    progress_shown = list(shown)  # of the two triplet fits
    # Every loss, the proxy loss's parameters included, trains identically on both ranks.
    by_loss = {  # held-out classes, or rows for a loss that reads y as a continuous target
        name: make_embedder(
            name, max_epochs=3, early_stopping=True, random_state=2, **common,
            validation_split="classes" if name in loss_names("classes") else "rows",
        ).fit(X_train, y_train)
        for name in loss_names()
    }
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    torch.save(
        {
            "weights": emb.module_.state_dict(),
            "accuracy": knn.score(emb.transform(X_test), y_test),
            "loss_curve": emb.loss_curve_,
            "stopped_weights": stopped.module_.state_dict(),
            "stopped_scores": stopped.validation_scores_,
            "objectives": {k: e._trainer.objective.state_dict() for k, e in by_loss.items()},
            "scores": {k: e.validation_scores_ for k, e in by_loss.items()},
            "progress_shown": progress_shown,
            "checkpoint_writes": written,
            "checkpoints_left": os.listdir(sys.argv[1] + "/checkpoints"),
        },
        f"{sys.argv[1]}/rank{rank}_of_{world}.pt",
    )
    """
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The script run once alone and once under torchrun with 2 processes (gloo)."""
    out = tmp_path_factory.mktemp("ddp")
    script = out / "train.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("WORLD_SIZE", None)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    for command in (
        [sys.executable, str(script), str(out)],
        [*launcher, "--nproc_per_node", "2", str(script), str(out)],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    return {
        name: torch.load(out / f"{name}.pt") for name in ("rank0_of_1", "rank0_of_2", "rank1_of_2")
    }


def _equal_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_ranks_end_with_identical_weights(runs):
    rank0, rank1 = runs["rank0_of_2"], runs["rank1_of_2"]
    assert _equal_weights(rank0["weights"], rank1["weights"])
    assert rank0["loss_curve"] == rank1["loss_curve"]  # the loss is averaged over the ranks
    # Early stopping: every rank takes rank 0's validation score and stops at the same epoch.
    assert _equal_weights(rank0["stopped_weights"], rank1["stopped_weights"])
    assert rank0["stopped_scores"] == rank1["stopped_scores"]
    assert len(rank0["stopped_scores"]) < 30
    # Every loss; a loss with parameters has its proxies averaged like the network's weights.
    assert any(k.startswith("criterion.proxies") for k in rank0["objectives"]["proxy_anchor"])
    assert rank0["objectives"].keys() == set(sk_dml.criteria.loss_names())
    for name, objective in rank0["objectives"].items():
        assert _equal_weights(objective, rank1["objectives"][name]), name
        assert rank0["scores"][name] == rank1["scores"][name], name


@pytest.mark.slow
def test_data_parallel_accuracy_matches_single_process(runs):
    alone, parallel = runs["rank0_of_1"]["accuracy"], runs["rank0_of_2"]["accuracy"]
    assert alone > 0.93 and parallel > 0.93
    assert abs(alone - parallel) < 0.03
    # Each rank saw only half the batches: the two fits really are different runs.
    assert not _equal_weights(runs["rank0_of_1"]["weights"], runs["rank0_of_2"]["weights"])


@pytest.mark.slow
def test_only_rank_0_shows_progress_and_writes_checkpoints(runs):
    assert runs["rank0_of_2"]["progress_shown"] == [True, False]  # verbose=1, then verbose=0
    assert runs["rank1_of_2"]["progress_shown"] == [False, False]
    assert len(runs["rank0_of_2"]["checkpoint_writes"]) == len(runs["rank0_of_2"]["stopped_scores"])
    assert runs["rank1_of_2"]["checkpoint_writes"] == []
    assert runs["rank0_of_2"]["checkpoints_left"] == []  # removed when the fit ended


_OWN_GROUP_SCRIPT = textwrap.dedent(
    """
    import socket
    import sys
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    import warnings
    from sklearn.datasets import load_wine
    from sk_dml import NPairEmbedder

    def train(rank, port, out):
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2
        )
        X, y = load_wine(return_X_y=True)
        emb = NPairEmbedder(hidden_layer_sizes=(32,), n_components=8, batch_size=32,
                            max_epochs=3, device="cpu")  # random_state=None: rank 0's draw
        emb.fit(X / X.max(0), y)
        emb.partial_fit(X / X.max(0), y)
        # Divergence in the first epoch restores the initial weights: rank 0's, on every rank.
        diverged = NPairEmbedder(hidden_layer_sizes=(32,), n_components=8, batch_size=32,
                                 max_epochs=3, device="cpu", learning_rate=1e30)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            diverged.fit(X * 1e3, y)
        # A checkpoint folder rank 0 cannot use stops every rank at once (no hang).
        try:
            NPairEmbedder(checkpoint_dir=__file__ + "/not_a_folder", max_epochs=2).fit(X, y)
            refused = None
        except Exception as error:
            refused = f"{type(error).__name__}: {error}"
        torch.save(
            {
                "weights": emb.module_.state_dict(),
                "diverged_weights": diverged.module_.state_dict(),
                "diverged_warnings": [str(w.message) for w in caught],
                "refused": refused,
            },
            f"{out}/own_group_rank{rank}.pt",
        )
        dist.destroy_process_group()

    if __name__ == "__main__":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mp.spawn(train, args=(port, sys.argv[1]), nprocs=2)
    """
)


@pytest.mark.slow
def test_a_process_group_created_by_the_user_is_used(tmp_path):
    """No torchrun: the script creates the group itself; fit and partial_fit run in it, a
    divergence leaves every rank with the same weights, and an error on rank 0 alone (its
    checkpoint folder) stops every rank instead of leaving them waiting for rank 0."""
    script = tmp_path / "own_group.py"
    script.write_text(_OWN_GROUP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("WORLD_SIZE", None)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"own_group_rank{r}.pt") for r in (0, 1))
    assert _equal_weights(rank0["weights"], rank1["weights"])
    assert _equal_weights(rank0["diverged_weights"], rank1["diverged_weights"])
    assert all(any("diverged" in w for w in r["diverged_warnings"]) for r in (rank0, rank1))
    assert rank0["refused"].startswith("ValueError: checkpoint_dir=")
    assert rank1["refused"].startswith("RuntimeError: Rank 0 failed, so rank 1 stops too")


@given(n_batches=st.integers(1, 40), world_size=st.integers(1, 8))
def test_shards_cover_every_batch_with_equal_step_counts(n_batches, world_size):
    batches = [f"b{i}" for i in range(n_batches)]
    shares = [shard_batches(batches, rank, world_size) for rank in range(world_size)]
    steps = {len(share) for share in shares}
    assert steps == {-(-n_batches // world_size)}  # same number of steps on every rank
    assert {b for share in shares for b in share} == set(batches)  # none dropped
    # Padding repeats batches only to even out the ranks.
    assert sum(map(len, shares)) - n_batches < world_size


def test_a_single_process_is_not_a_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not torch.distributed.is_initialized()
    assert current_group() is None
