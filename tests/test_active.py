"""Active labelling of pairs: PairLabeller's loop with a simulated oracle labeller (answers
from known entities), its proposals against a brute-force neighbour graph (scikit-learn's
exact search), and ``sk-dml label`` through the console script with answers on stdin."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import NearestNeighbors

import sk_dml
from sk_dml import cli
from sk_dml.active import PairLabeller
from sk_dml.cli.pairs import read_pairs

QUICK = dict(max_epochs=3, hidden_layer_sizes=(32,), n_components=16, random_state=0)
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "da", "fe"]


def records(n_entities=120, seed=0) -> tuple[pd.DataFrame, np.ndarray]:
    """A small entity-resolution table: each entity's record and one or two copies with a
    typo in the name, a missing city or a nudged number; an ``id`` column; the entities."""
    rng = np.random.default_rng(seed)
    rows, entity = [], []
    for e in range(n_entities):
        name = "".join(rng.choice(SYLLABLES, 3)) + " " + "".join(rng.choice(SYLLABLES, 2))
        city = rng.choice(["north", "south", "east", "west", "centre"])
        year = int(rng.integers(1940, 2005))
        for copy in range(1 + int(rng.integers(1, 3))):
            typo = name
            if copy:
                k = int(rng.integers(len(name) - 1))
                typo = name[:k] + name[k + 1] + name[k] + name[k + 2 :]
            rows.append({"name": typo, "city": None if copy and rng.random() < 0.3 else city,
                         "year": year + (int(rng.integers(-1, 2)) if copy else 0)})  # fmt: skip
            entity.append(e)
    table = pd.DataFrame(rows)
    table["name"] = table["name"].astype("string")
    table.insert(0, "id", [f"r{i}" for i in range(len(table))])
    return table, np.asarray(entity)


@pytest.fixture(scope="module")
def er():
    return records()


def oracle(entity, ids, pairs) -> np.ndarray:
    """The true answers for pairs named by ``id`` values."""
    position = {v: i for i, v in enumerate(ids)}
    rows = np.vectorize(position.get)(np.asarray(pairs, dtype=object))
    return (entity[rows[:, 0]] == entity[rows[:, 1]]).astype(int)


def knn_pairs(Z, metric, k) -> set:
    """The pairs (i < j) of the exact k-nearest-neighbour graph, itself left out."""
    search = NearestNeighbors(n_neighbors=k + 1, metric=metric, algorithm="brute").fit(Z)
    index = search.kneighbors(Z, return_distance=False)
    return {(min(i, j), max(i, j)) for i, row in enumerate(index) for j in row if i != j}


def test_the_loop_learns_from_a_simulated_oracle(er):
    table, entity = er
    emb = sk_dml.PairEmbedder(**QUICK)
    labeller = PairLabeller(emb, table, key="id", n_neighbors=5, random_state=0)
    ids = table["id"].to_numpy()
    asked = set()
    for round_ in range(4):
        Z, metric = labeller.embedding()
        graph = knn_pairs(Z, metric, 5)
        batch = labeller.suggest(10)
        assert len(batch) == 10
        pairs = batch[["left", "right"]].to_numpy()
        position = {v: i for i, v in enumerate(ids)}
        rows = np.vectorize(position.get)(pairs.astype(object))
        # From the current neighbour graph, never asked before, one pair per record.
        assert {(min(i, j), max(i, j)) for i, j in rows} <= graph
        keys = {frozenset(p) for p in rows.tolist()}
        assert not keys & asked and len(keys) == 10
        asked |= keys
        assert len(np.unique(rows)) == 2 * len(rows)
        answers = oracle(entity, ids, pairs)
        if round_ == 0:  # no labels yet: the nearest pairs and mid-distance ones
            assert not labeller.fitted
            assert 0 < answers.sum() < len(answers)
            distance = batch["distance"].to_numpy()
            nearest = min(d for (i, j), d in _distances(Z, metric, graph).items())
            assert np.isclose(distance.min(), nearest, atol=1e-6)
        labeller.teach(pairs, answers)
    assert labeller.fitted and hasattr(emb, "threshold_") and emb.warm_start
    assert len(labeller.labels_) == 40 and set(labeller.labels_) <= {0, 1}
    np.testing.assert_array_equal(labeller.labels_, oracle(entity, ids, ids[labeller.pairs_]))


def _distances(Z, metric, pairs) -> dict:
    from scipy.spatial.distance import cdist

    return {(i, j): cdist(Z[[i]], Z[[j]], metric)[0, 0] for i, j in pairs}


def test_fitted_proposals_are_the_pairs_nearest_the_threshold(er):
    table, entity = er
    table = table.drop(columns="id")  # pairs of row positions
    emb = sk_dml.PairEmbedder(**QUICK)
    labeller = PairLabeller(
        emb, table, n_neighbors=4, max_per_record=10**6, exploration=0.0, random_state=0
    )
    first = labeller.suggest(30)
    labeller.teach(
        first[["left", "right"]], oracle(entity, np.arange(len(table)), first[["left", "right"]])
    )
    assert labeller.fitted
    Z = emb.transform(table)
    answered = {tuple(sorted(p)) for p in labeller.pairs_.tolist()}
    distances = _distances(
        Z, emb.embedding_metric_, knn_pairs(Z, emb.embedding_metric_, 4) - answered
    )
    expected = sorted(distances, key=lambda p: abs(distances[p] + emb.threshold_))[:15]
    proposed = labeller.suggest(15)
    assert [tuple(sorted(p)) for p in proposed[["left", "right"]].to_numpy().tolist()] == expected
    np.testing.assert_allclose(proposed["distance"], [distances[p] for p in expected], rtol=1e-4)


def test_diversity_and_exploration_keep_their_bounds(er):
    table, entity = er
    emb = sk_dml.PairEmbedder(**QUICK)
    labeller = PairLabeller(emb, table, n_neighbors=6, max_per_record=2, random_state=1)
    batch = labeller.suggest(40)
    counts = pd.Series(batch[["left", "right"]].to_numpy().ravel()).value_counts()
    assert counts.max() <= 2


def test_unsure_answers_are_recorded_but_not_learned(er):
    table, entity = er
    emb = sk_dml.PairEmbedder(**QUICK)
    labeller = PairLabeller(emb, table, key="id", random_state=0)
    labeller.teach([("r0", "r1"), ("r0", "r5")], [None, 1])
    assert not labeller.fitted and not hasattr(emb, "module_")  # one kind of answer only
    np.testing.assert_array_equal(labeller.labels_, [-1, 1])
    proposed = {frozenset(p) for p in labeller.suggest(50)[["left", "right"]].to_numpy().tolist()}
    assert frozenset(("r0", "r1")) not in proposed and frozenset(("r0", "r5")) not in proposed
    labeller.teach([("r3", "r40")], [False])
    assert labeller.fitted


def test_bad_input_is_named(er):
    table, _ = er
    emb = sk_dml.PairEmbedder(**QUICK)
    with pytest.raises(ValueError, match="'key'"):
        PairLabeller(emb, table, key="key")
    with pytest.raises(ValueError, match="unique"):
        PairLabeller(emb, table.assign(id="same"), key="id")
    with pytest.raises(ValueError, match="n_neighbors"):
        PairLabeller(emb, table, n_neighbors=0)
    with pytest.raises(ValueError, match="exploration"):
        PairLabeller(emb, table, exploration=2)
    labeller = PairLabeller(emb, table, key="id")
    with pytest.raises(ValueError, match="'nobody'"):
        labeller.teach([("r0", "nobody")], [1])
    with pytest.raises(ValueError, match="maybe"):
        labeller.teach([("r0", "r1")], ["maybe"])
    with pytest.raises(ValueError, match="1 pairs but 2 labels"):
        labeller.teach([("r0", "r1")], [1, 0])
    with pytest.raises(ValueError, match="n must be"):
        labeller.suggest(0)
    assert len(labeller.labels_) == 0  # nothing recorded from refused answers


def console_script() -> str:
    script = Path(sys.executable).with_name("sk-dml")
    found = str(script) if script.exists() else shutil.which("sk-dml")
    if found is None:
        pytest.skip("the sk-dml console script is not installed")
    return found


def test_the_label_command_appends_each_answer_and_resumes(tmp_path):
    table, entity = records(n_entities=40)
    table.to_csv(tmp_path / "records.csv", index=False)
    out = tmp_path / "pairs.csv"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [console_script(), "label", tmp_path / "records.csv", "--key", "id", "-o", out,
               "--batch", "3", "--epochs", "1", "--random-state", "0"]  # fmt: skip
    run = subprocess.run(command, input="y\nn\nmaybe\nu\nq\n", capture_output=True, text=True,
                         env=env, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "please answer y, n, u or q" in run.stdout and "name" in run.stdout
    first = pd.read_csv(out)
    assert list(first.columns) == ["left", "right", "label"] and first["label"].tolist() == [1, 0]
    unsure = pd.read_csv(tmp_path / "pairs.unsure.csv")
    assert len(unsure) == 1 and unsure["label"].tolist() == ["unsure"]
    # Resumed: the answers are read back, and the pairs asked are new ones; the end of the
    # input quits.
    run = subprocess.run(command, input="n\ny\n", capture_output=True, text=True, env=env,
                         timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "read 2 answer(s)" in run.stdout
    both = pd.read_csv(out)
    assert both.iloc[:2].equals(first) and both["label"].tolist() == [1, 0, 0, 1]
    asked = [frozenset(p) for p in both[["left", "right"]].itertuples(index=False)]
    asked.append(frozenset(unsure.iloc[0, :2]))
    assert len(set(asked)) == len(asked)
    # The file is a pairs file of fit --pairs: its rows are read as the table's rows.
    pairs, labels = read_pairs(out, table, "id", "records.csv")
    np.testing.assert_array_equal(table["id"].to_numpy()[pairs], both[["left", "right"]])
    code = cli.main([*map(str, command[1:3]), "--key", "nokey", "-o", str(out)])
    assert code == 2
