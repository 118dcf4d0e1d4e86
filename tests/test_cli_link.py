"""``sk-dml link`` and ``sk-dml match`` through the console entry point: the matches are the
Python Linker's, and bad ids are named."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sk_dml import PairEmbedder
from sk_dml.datasets import make_linkage_tables
from sk_dml.linking import Linker, default_embedder

ENV = {k: v for k, v in os.environ.items() if k != "SK_DML_DEBUG"} | {"OMP_NUM_THREADS": "1"}


def run_cli(*args) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "sk_dml", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("link")
    left, right, links = make_linkage_tables(200, random_state=2)
    for name, frame in (("left", left), ("right", right), ("links", links[:60])):
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def test_link_writes_the_python_linkers_matches_and_match_reuses_the_model(files):
    out, model = files / "matches.csv", files / "linker.skdml"
    args = [files / "left.csv", files / "right.csv", "--links", files / "links.csv"]
    result = run_cli(
        "link", *args, "--key", "id", "-o", out, "--model", model, "-k", 3, "--epochs", 1
    )
    assert result.returncode == 0, result.stderr
    assert "trained on 48 of the 60 links" in result.stdout
    written = pd.read_csv(out, dtype={"left_id": str, "right_id": str})
    # The oracle: the same fit in Python, from the same files.
    left, right, links = (pd.read_csv(files / f"{n}.csv") for n in ("left", "right", "links"))
    linker = Linker(default_embedder().set_params(max_epochs=1), key="id", random_state=0)
    expected = linker.fit(left, right, links).match(left, right, k=3)
    np.testing.assert_array_equal(written["right_id"], expected["right_id"])
    np.testing.assert_allclose(written["probability"], expected["probability"], atol=1e-6)

    again = files / "again.csv"
    result = run_cli(
        "match",
        model,
        files / "left.csv",
        files / "right.csv",
        "-o",
        again,
        "-k",
        3,
        "--threshold",
        0.5,
    )
    assert result.returncode == 0, result.stderr
    kept = written[written["probability"] >= 0.5].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        pd.read_csv(again, dtype={"left_id": str, "right_id": str}), kept, atol=1e-6
    )


def test_link_names_absent_ids_and_a_missing_key_column(files, tmp_path):
    links = pd.read_csv(files / "links.csv")
    links.loc[3, "right_id"] = "R_ghost"
    links.to_csv(tmp_path / "bad.csv", index=False)
    args = [files / "left.csv", files / "right.csv", "--key", "id", "-o", tmp_path / "m.csv"]
    result = run_cli("link", *args, "--links", tmp_path / "bad.csv")
    assert result.returncode == 2
    assert "ids of the links' right column are not ids of the right table" in result.stderr
    assert "R_ghost" in result.stderr
    result = run_cli(
        "link",
        *args[:2],
        "--key",
        "ident",
        "-o",
        tmp_path / "m.csv",
        "--links",
        files / "links.csv",
    )
    assert result.returncode == 2 and "key column 'ident' is not in left" in result.stderr
    assert not (tmp_path / "m.csv").exists()


def test_match_refuses_a_model_that_is_not_a_linker(files, tmp_path):
    import sk_dml

    left = pd.read_csv(files / "left.csv").drop(columns="id")
    pairs = np.array([[0, 1], [2, 3], [4, 5], [6, 7]])
    emb = PairEmbedder(preprocessor=left, max_epochs=1, early_stopping=False, random_state=0)
    sk_dml.save(emb.fit(pairs, [1, 0, 1, 0]), tmp_path / "pairs.skdml")
    result = run_cli(
        "match", tmp_path / "pairs.skdml", files / "left.csv", "-o", tmp_path / "m.csv"
    )
    assert result.returncode == 2
    assert "holds a PairEmbedder, not a linker" in result.stderr
