"""The sk-dml command line, end to end: real runs, bad input and fuzzed files.

The real entry points (``python -m sk_dml`` and the ``sk-dml`` script) run in subprocesses;
the many bad-input and fuzz cases call ``sk_dml.cli.main(argv)`` in-process, which returns
the exit status, to stay fast.
"""

import contextlib
import importlib.util
import io
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from sklearn.compose import make_column_transformer
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import sk_dml
import sk_dml._embedder
from sk_dml import cli
from sk_dml.criteria import ContrastiveLoss, get_loss_class, loss_names
from sk_dml.datasets import load_nursery
from sk_dml.embedders import make_embedder
from sk_dml.metrics import mean_average_precision_at_r, precision_at_k, r_precision, recall_at_k
from sk_dml.persistence import read_metadata

EMBEDDER_NAMES = ("TripletEmbedder", "ContrastiveEmbedder", "NPairEmbedder", "LiftedStructEmbedder")
# A tiny, quick model for every fit here.
TINY = ["--epochs", "2", "--n-components", "4", "--hidden-layer-sizes", "16"]
TINY += ["--batch-size", "32", "--random-state", "0"]
# The same model through the Python API: the oracle of what fit trains.
TINY_PARAMS = dict(max_epochs=2, n_components=4, hidden_layer_sizes=(16,), batch_size=32)
TINY_PARAMS["random_state"] = 0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Subprocesses without the debug switch; one thread each keeps them quick on a busy machine.
ENV = {k: v for k, v in os.environ.items() if k != "SK_DML_DEBUG"} | {"OMP_NUM_THREADS": "1"}
HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None  # Parquet support


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.delenv("SK_DML_DEBUG", raising=False)


def run_cli(*args) -> subprocess.CompletedProcess:
    """``python -m sk_dml ARGS`` in a subprocess."""
    command = [sys.executable, "-m", "sk_dml", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)


def call(*args) -> tuple[int, str, str]:
    """``sk_dml.cli.main(ARGS)`` in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def assert_png(path: Path, min_size: int = 400) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    height, width = imread(path).shape[:2]
    assert height >= min_size and width >= min_size


@pytest.fixture(scope="module")
def mixed_table() -> pd.DataFrame:
    """Nursery rows (8 text columns, 3 classes) with a numeric and a bool column added."""
    X, y = load_nursery()
    rng = np.random.default_rng(0)
    common = np.flatnonzero(y.isin(["not_recom", "priority", "spec_prior"]).to_numpy())
    rows = rng.choice(common, 240, replace=False)
    frame = X.iloc[rows].reset_index(drop=True)
    frame["age"] = rng.normal(40, 12, len(frame)).round(1)
    frame["member"] = rng.random(len(frame)) < 0.3
    frame["label"] = y.iloc[rows].to_numpy()
    return frame


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A folder with small.csv (numeric a, b; text c; target label) and small.skdml fitted on it
    in-process, plus the bad input files of the error tests."""
    folder = tmp_path_factory.mktemp("small")
    rng = np.random.default_rng(0)
    labels = np.repeat(["x", "y", "z"], 20)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=60) + (labels == "x"),
            "b": rng.integers(0, 5, 60),
            "c": rng.choice(["p", "q", "r"], 60),
            "label": labels,
        }
    )
    frame.to_csv(folder / "small.csv", index=False)
    code, _, err = call("fit", folder / "small.csv", "--target", "label", *TINY, "-o",
                        folder / "small.skdml")  # fmt: skip
    assert code == 0, err
    # Bad input files.
    (folder / "small.txt").write_text(frame.to_csv(index=False))
    (folder / "empty.csv").write_bytes(b"")
    (folder / "header.csv").write_text("a,b,c,label\n")
    frame.assign(label="x").to_csv(folder / "one_class.csv", index=False)
    frame.assign(b=3).to_csv(folder / "constant_b.csv", index=False)
    frame.iloc[[0, 1, 2, 20, 21, 22]].to_csv(folder / "small_classes.csv", index=False)
    frame.drop(columns=["b"]).to_csv(folder / "no_b.csv", index=False)
    frame.drop(columns=["label"]).to_csv(folder / "no_label.csv", index=False)
    frame.assign(label=np.repeat(["u", "v"], 30)).to_csv(folder / "other_classes.csv", index=False)
    frame.astype({"a": object}).assign(a=lambda f: f.a.where(f.index != 7, "12,5kg")).to_csv(
        folder / "garbage.csv", index=False
    )
    (folder / "latin1.csv").write_bytes("a,b,c,label\n1,2,\xe9t\xe9,x\n".encode("latin-1"))
    (folder / "broken.csv.gz").write_bytes(b"\x1f\x8b\x08\x00 this is no gzip stream")
    (folder / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    (folder / "pickle.skdml").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    (folder / "noise.skdml").write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    (folder / "truncated.skdml").write_bytes((folder / "small.skdml").read_bytes()[:200])
    bare = sk_dml.TripletEmbedder(max_epochs=1, hidden_layer_sizes=(4,), batch_size=8)
    sk_dml.save(bare.fit(frame[["a", "b"]].to_numpy(float), labels), folder / "bare.skdml")
    # A model file of the sk-dml before tables went to the embedder: one-hot encoded columns.
    one_hot = np.column_stack([frame[["a", "b"]], pd.get_dummies(frame.c).to_numpy(float)])
    old = sk_dml.TripletEmbedder(max_epochs=1, hidden_layer_sizes=(4,), batch_size=8)
    sk_dml.save(old.fit(one_hot, labels), folder / "old.skdml", extra=OLD_EXTRA)
    # Tables the embedder refuses.
    frame.assign(b=np.nan).to_csv(folder / "all_missing.csv", index=False)
    frame.assign(a=frame.a.where(frame.index != 4, np.inf)).to_csv(folder / "inf.csv", index=False)
    frame.assign(a=frame.a.where(frame.index != 4, 1e300)).to_csv(folder / "huge.csv", index=False)
    write_pair_files(folder, frame)
    return folder


def write_pair_files(folder: Path, frame: pd.DataFrame) -> None:
    """Labelled pairs of the small table's rows: pairs.csv by 0-based row number; small_ids.csv
    (the table with a unique text ID column) and pairs_ids.csv, the same pairs by ID; the bad
    pairs files of the error tests; and pairs.skdml, a quick PairEmbedder fitted on pairs.csv."""
    rng = np.random.default_rng(5)
    left = rng.integers(0, len(frame), 80)
    right = (left + rng.integers(1, len(frame), 80)) % len(frame)  # never the same row
    labels = frame["label"].to_numpy()
    pairs = pd.DataFrame({"left": left, "right": right, "same": labels[left] == labels[right]})
    pairs["same"] = pairs["same"].astype(int)
    pairs.to_csv(folder / "pairs.csv", index=False)
    ids = np.array([f"row-{i:03d}" for i in rng.permutation(len(frame))])
    frame.assign(id=ids).to_csv(folder / "small_ids.csv", index=False)
    by_id = pairs.assign(left=ids[left], right=ids[right], same=pairs.same == 1)  # true/false
    by_id.to_csv(folder / "pairs_ids.csv", index=False)
    # Bad pairs files and tables.
    pairs.drop(columns="same").to_csv(folder / "pairs_two_columns.csv", index=False)
    pairs.assign(same=pairs.same.where(pairs.index != 3)).to_csv(
        folder / "pairs_missing_label.csv", index=False
    )
    pairs.assign(right=pairs.right.where(pairs.index != 7, 60)).to_csv(
        folder / "pairs_out_of_range.csv", index=False
    )
    pairs.assign(left=pairs.left.where(pairs.index != 2, pairs.right)).to_csv(
        folder / "pairs_self.csv", index=False
    )
    pairs.assign(same=1).to_csv(folder / "pairs_one_kind.csv", index=False)
    pairs.assign(same=pairs.same.where(pairs.index != 5, 2)).to_csv(
        folder / "pairs_bad_labels.csv", index=False
    )
    by_id.assign(left=by_id.left.where(by_id.index != 4, "row-999")).to_csv(
        folder / "pairs_unknown_id.csv", index=False
    )
    frame.assign(id=np.where(np.arange(len(frame)) == 9, ids[2], ids)).to_csv(
        folder / "small_repeated_ids.csv", index=False
    )
    quick = sk_dml.PairEmbedder(
        preprocessor=frame[["a", "b", "c"]], max_epochs=1, hidden_layer_sizes=(4,), batch_size=8
    )
    extra = {"pairs": "pairs.csv", "key": None, "excluded": ["label"]}
    sk_dml.save(
        quick.fit(pairs[["left", "right"]], pairs.same), folder / "pairs.skdml", extra=extra
    )


# The extra of a model file written by the earlier sk-dml (its one-hot preprocessing).
OLD_EXTRA = {
    "preprocessing": {
        "format": "sk_dml.cli.preprocessing",
        "version": 1,
        "columns": ["a", "b", "c"],
        "numeric": {
            "columns": ["a", "b"],
            "mean": [0.3, 2.0],
            "var": [1.0, 2.0],
            "scale": [1.0, 1.41],
            "n_samples_seen": 60,
        },
        "categorical": {"columns": ["c"], "categories": [["p", "q", "r"]]},
    },
    "target": "label",
}


# ----------------------------------------------------------------------------- real runs
@pytest.mark.slow
def test_fit_transform_evaluate_plot_end_to_end(tmp_path, mixed_table):
    data = tmp_path / "mixed.csv"
    mixed_table.to_csv(data, index=False)
    model = tmp_path / "model.skdml"
    fit = run_cli("fit", data, "--target", "label", "--loss", "contrastive", "--margin", "0.8",
                  *TINY, "-o", model)  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    assert "ContrastiveEmbedder" in fit.stdout and model.is_file()
    assert "Traceback" not in fit.stderr
    saved = read_metadata(model)
    assert saved["estimator"] == "ContrastiveEmbedder" and saved["params"]["margin"] == 0.8
    assert saved["params"]["max_epochs"] == 2 and saved["params"]["hidden_layer_sizes"] == [16]

    # New rows: no target, columns reordered, an extra id column; CSV or Parquet in, gzip out.
    new = mixed_table.drop(columns="label").iloc[:50, ::-1].assign(id=np.arange(50))
    if HAS_PYARROW:
        source = tmp_path / "new.parquet"
        new.to_parquet(source)
    else:
        source = tmp_path / "new.csv"
        new.to_csv(source, index=False)
    out = tmp_path / "emb.csv.gz"
    transform = run_cli("transform", model, source, "-o", out)
    assert transform.returncode == 0, transform.stderr
    embeddings = pd.read_csv(out)
    assert list(embeddings.columns) == ["emb0", "emb1", "emb2", "emb3"]
    features = [c for c in mixed_table.columns if c != "label"]
    expected = sk_dml.load(model).transform(new[features])
    np.testing.assert_allclose(embeddings.to_numpy(), expected, rtol=1e-6, atol=1e-7)

    evaluate = run_cli("evaluate", model, data)  # the target defaults to the model's
    assert evaluate.returncode == 0, evaluate.stderr
    scores = re.findall(r"^(precision@1|MAP@R|5-NN accuracy) +([\d.]+)", evaluate.stdout, re.M)
    assert [name for name, _ in scores] == ["precision@1", "MAP@R", *["5-NN accuracy"] * 2]
    assert all(0 <= float(value) <= 1 for _, value in scores)
    assert "5-fold stratified cross-validation" in evaluate.stdout

    figure = tmp_path / "embedding.png"
    plot = run_cli("plot", model, data, "--target", "label", "-o", figure)
    assert plot.returncode == 0, plot.stderr
    assert_png(figure)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["mixed.csv", "model.skdml", source.name, "emb.csv.gz", "embedding.png"]
    )


RETRIEVAL_LINE = r"^(precision@1|R-precision|MAP@R|recall@10|5-NN accuracy) +(\S+)"


def embed(folder: Path, frame: pd.DataFrame):
    """The small model's embedding of ``frame``, its labels and the embedding metric."""
    model = sk_dml.load(folder / "small.skdml")
    Z = model.transform(frame[["a", "b", "c"]])
    return Z, frame["label"].to_numpy(), model.embedding_metric_


def test_evaluate_prints_the_retrieval_scores_of_the_embedding(small):
    code, stdout, stderr = call("evaluate", small / "small.skdml", small / "small.csv")
    assert code == 0, stderr
    printed = re.findall(RETRIEVAL_LINE, stdout, re.M)
    Z, y, metric = embed(small, pd.read_csv(small / "small.csv"))
    assert printed[:4] == [
        ("precision@1", f"{precision_at_k(Z, y, k=1, metric=metric):.4f}"),
        ("R-precision", f"{r_precision(Z, y, metric=metric):.4f}"),
        ("MAP@R", f"{mean_average_precision_at_r(Z, y, metric=metric):.4f}"),
        ("recall@10", f"{recall_at_k(Z, y, k=10, metric=metric):.4f}"),
    ]
    assert [name for name, _ in printed[4:]] == ["5-NN accuracy"] * 2
    assert "leave-one-out" in stdout and "REF" not in stdout
    # The baseline: the numbers standardised with the training rows' statistics, the text
    # column one-hot (the model was fitted on these very rows).
    frame = pd.read_csv(small / "small.csv")
    encoder = make_column_transformer((StandardScaler(), ["a", "b"]), (OneHotEncoder(), ["c"]))
    X = encoder.fit_transform(frame)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    accuracy = cross_val_score(KNeighborsClassifier(5), X, y, cv=folds)
    assert printed[5][1] == f"{accuracy.mean():.4f}"
    assert f"{accuracy.mean():.4f} +/- {accuracy.std():.4f}" in stdout.splitlines()[-1]


def test_fit_with_the_proxy_anchor_loss(small, tmp_path):
    code, _, err = call("fit", small / "small.csv", "--target", "label", "--loss", "proxy_anchor",
                        "--margin", "0.2", *TINY, "-o", tmp_path / "p.skdml")  # fmt: skip
    assert code == 0, err
    estimator = cli.Model.load(tmp_path / "p.skdml").estimator
    assert isinstance(estimator, sk_dml.ProxyAnchorEmbedder) and estimator.margin == 0.2


@pytest.mark.parametrize(
    "loss,options,expected",
    [
        ("arcface", ["--margin", "0.3", "--scale", "30"], {"margin": 0.3, "scale": 30.0}),
        ("cosface", ["--scale", "16"], {"margin": 0.35, "scale": 16.0}),
        ("normalized_softmax", ["--temperature", "0.1"], {"temperature": 0.1}),
    ],
)
def test_fit_with_a_normalised_softmax_loss(small, tmp_path, loss, options, expected):
    code, out, err = call("fit", small / "small.csv", "--target", "label", "--loss", loss,
                          *options, *TINY, "-o", tmp_path / "s.skdml")  # fmt: skip
    assert code == 0, err
    estimator = cli.Model.load(tmp_path / "s.skdml").estimator
    assert type(estimator) is type(sk_dml.embedders.make_embedder(loss))
    assert {k: estimator.get_params()[k] for k in expected} == expected


def test_a_loss_option_the_loss_does_not_take_is_refused(small, tmp_path):
    code, _, err = call("fit", small / "small.csv", "--target", "label", "--loss", "triplet",
                        "--temperature", "0.1", *TINY, "-o", tmp_path / "t.skdml")  # fmt: skip
    assert code == 2 and "--temperature" in err


def test_fit_with_a_loss_that_has_no_named_embedder(small, tmp_path):
    code, out, err = call("fit", small / "small.csv", "--target", "label", "--loss",
                          "multi_similarity", *TINY, "-o", tmp_path / "m.skdml")  # fmt: skip
    assert code == 0, err
    assert out.startswith("MetricEmbedder(MultiSimilarityLoss) trained on")
    estimator = cli.Model.load(tmp_path / "m.skdml").estimator
    assert isinstance(estimator.loss, sk_dml.criteria.MultiSimilarityLoss)
    code, _, err = call("fit", small / "small.csv", "--target", "label", "-o", tmp_path / "x",
                        "--loss", "multi_similarity", "--margin", "0.2")  # fmt: skip
    assert code == 2 and "--margin does not apply to --loss multi_similarity" in err


def test_loss_params_and_learning_rate_reach_the_estimator(small, tmp_path):
    code, _, err = call("fit", small / "small.csv", "--target", "label", "--loss",
                        "multi_similarity", "--loss-param", "alpha=3", "--loss-param",
                        "epsilon=none", "--learning-rate", "0.001", *TINY, "-o",
                        tmp_path / "m.skdml")  # fmt: skip
    assert code == 0, err
    estimator = cli.Model.load(tmp_path / "m.skdml").estimator
    assert estimator.loss.get_params() == {"alpha": 3.0, "beta": 50.0, "base": 0.5, "epsilon": None}
    assert estimator.learning_rate == 0.001
    code, _, err = call("fit", small / "small.csv", "--target", "label", "--loss-param",
                        "mining=hard", "--loss-param", "distance=cosine", *TINY, "-o",
                        tmp_path / "t.skdml")  # fmt: skip
    assert code == 0, err
    estimator = cli.Model.load(tmp_path / "t.skdml").estimator
    assert isinstance(estimator, sk_dml.TripletEmbedder)
    assert (estimator.mining, estimator.distance) == ("hard", "cosine")


def test_evaluate_against_a_reference_table(small, tmp_path):
    frame = pd.read_csv(small / "small.csv")
    queries, reference = frame.iloc[::2], frame.iloc[1::2]
    reference = reference[reference.label != "z"].iloc[:, ::-1]  # no class z, columns reordered
    queries.to_csv(tmp_path / "queries.csv", index=False)
    reference.to_csv(tmp_path / "reference.csv.gz", index=False)
    code, stdout, stderr = call("evaluate", small / "small.skdml", tmp_path / "queries.csv",
                                "--reference", tmp_path / "reference.csv.gz")  # fmt: skip
    assert code == 0, stderr
    printed = re.findall(RETRIEVAL_LINE, stdout, re.M)
    Zq, yq, metric = embed(small, queries)
    Zr, yr, _ = embed(small, reference)
    against = dict(reference=Zr, reference_labels=yr, metric=metric)
    assert printed[:4] == [
        ("precision@1", f"{precision_at_k(Zq, yq, k=1, **against):.4f}"),
        ("R-precision", f"{r_precision(Zq, yq, **against):.4f}"),
        ("MAP@R", f"{mean_average_precision_at_r(Zq, yq, **against):.4f}"),
        ("recall@10", f"{recall_at_k(Zq, yq, k=10, **against):.4f}"),
    ]
    # The 5-NN accuracies: a k-NN fitted on REF predicts DATA's rows of REF's classes, on the
    # embeddings and on the baseline's features (the model's statistics: the whole table's).
    known = np.isin(yq, yr)
    learned = KNeighborsClassifier(5, metric=metric).fit(Zr, yr).score(Zq[known], yq[known])
    encoder = make_column_transformer((StandardScaler(), ["a", "b"]), (OneHotEncoder(), ["c"]))
    encoder.fit(frame)
    Xq, Xr = encoder.transform(queries), encoder.transform(reference)
    plain = KNeighborsClassifier(5).fit(Xr, yr).score(Xq[known], yq[known])
    assert printed[4:] == [("5-NN accuracy", f"{learned:.4f}"), ("5-NN accuracy", f"{plain:.4f}")]
    assert "5-NN fitted on REF's rows predicts DATA's" in stdout
    # Leave-one-out and cross-validation within DATA give other scores.
    _, alone, _ = call("evaluate", small / "small.skdml", tmp_path / "queries.csv")
    printed_alone = re.findall(RETRIEVAL_LINE, alone, re.M)
    assert printed_alone[:4] != printed[:4]
    assert "cross-validation" in alone and "cross-validation" not in stdout
    assert "queries: DATA, references: REF" in stdout and "leave-one-out" not in stdout
    assert f"ref    {tmp_path / 'reference.csv.gz'}: 20 rows, 2 classes" in stdout
    assert "10 DATA row(s) of a class absent from REF left out" in stdout


def test_fit_reports_the_validation_score_and_shows_progress_when_asked(small, tmp_path):
    command = ("fit", small / "small.csv", "--target", "label", *TINY)
    quiet = run_cli(*command, "-o", tmp_path / "quiet.skdml")
    loud = run_cli(*command, "--verbose", "-o", tmp_path / "loud.skdml")
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    model = sk_dml.load(tmp_path / "quiet.skdml")
    scores = model.validation_scores_  # held-out rows' precision@1, epoch by epoch
    assert len(scores) == model.n_iter_ and model.best_score_ >= scores[0]
    reported = (
        f"; precision@1 of the held-out rows: {scores[0]:.4f} after epoch 1, "
        f"{model.best_score_:.4f} kept"
    )
    assert reported in quiet.stdout.splitlines()[0] and reported in loud.stdout
    # No bar on a stderr that is no terminal (a quick fit), the bar with --verbose.
    assert "loss=" not in quiet.stderr and f"val={scores[-1]:.4f}" in loud.stderr
    silenced = run_cli(*command, "--quiet", "--verbose", "-o", tmp_path / "x.skdml")
    assert silenced.returncode == 2 and "not allowed with argument" in silenced.stderr


def test_evaluate_warns_when_data_holds_the_rows_the_model_was_fitted_on(small, tmp_path):
    model, frame = small / "small.skdml", pd.read_csv(small / "small.csv")
    fitted = set(pd.util.hash_pandas_object(frame[["a", "b", "c"]], index=False))
    assert len(read_metadata(model)["extra"]["fingerprint"]["sample"]) == len(fitted)  # < 256
    frame.iloc[::-1].to_csv(tmp_path / "shuffled.csv", index=False)  # the same rows
    frame.iloc[::4].to_csv(tmp_path / "part.csv", index=False)  # 15 of the 60
    new = frame.assign(a=frame.a + 100)  # no row of the fitting table
    new.to_csv(tmp_path / "new.csv", index=False)
    expected = {
        "small.csv": "small.csv is the table the model was fitted on: scores on rows it",
        "shuffled.csv": "shuffled.csv is the table the model was fitted on",
        "part.csv": "part.csv holds rows the model was fitted on (about 25% of its 60 fitting",
        "new.csv": None,
    }
    for name, warning in expected.items():
        source = small / name if name == "small.csv" else tmp_path / name
        result = run_cli("evaluate", model, source)
        assert result.returncode == 0, result.stderr
        warned = [line for line in result.stderr.splitlines() if "sk-dml: warning:" in line]
        assert [warning in line for line in warned] == ([True] if warning else []), warned
    # The honest way: new rows as DATA, the fitting table as REF.
    result = run_cli("evaluate", model, tmp_path / "new.csv", "--reference", small / "small.csv")
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr


@pytest.mark.slow
def test_fit_with_a_checkpoint_dir_trains_the_same_model_and_cleans_up(tmp_path, mixed_table):
    """Resuming after a kill is tested on the library (tests/test_checkpoint.py); here the
    option reaches the estimator and changes nothing else."""
    data = tmp_path / "mixed.csv"
    mixed_table.to_csv(data, index=False)
    command = ("fit", data, "--target", "label", *TINY)
    plain = run_cli(*command, "-o", tmp_path / "plain.skdml")
    assert plain.returncode == 0, plain.stderr
    checkpoints = tmp_path / "ckpt"
    resumed = run_cli(*command, "--checkpoint-dir", checkpoints, "-o", tmp_path / "resumed.skdml")
    assert resumed.returncode == 0, resumed.stderr
    assert read_metadata(tmp_path / "resumed.skdml")["params"]["checkpoint_dir"] == str(checkpoints)
    assert list(checkpoints.iterdir()) == []  # a finished fit removes its checkpoint
    a = cli.Model.load(tmp_path / "plain.skdml").estimator.module_.state_dict()
    b = cli.Model.load(tmp_path / "resumed.skdml").estimator.module_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_demo_first_look_quick(tmp_path):
    result = run_cli("demo", "--quick", "--out", tmp_path / "figures")
    assert result.returncode == 0, result.stderr
    for name in ("segment", "nursery"):
        lines = [line for line in result.stdout.splitlines() if line.startswith(f"{name} ")]
        assert [line.split()[1] for line in lines] == ["plain", "TripletEmbedder"]
        assert all(0.5 < float(line.split()[-1]) <= 1 for line in lines)  # 5-NN accuracy
    assert "1050 train / 450 test rows" in result.stdout  # 1500 rows of nursery
    assert "loss=" in result.stderr and "Traceback" not in result.stderr  # a bar per epoch
    assert_png(tmp_path / "figures" / "demo_embedding.png", min_size=800)


@pytest.mark.slow
def test_demo_full_quick(tmp_path):
    result = run_cli("demo", "--full", "--quick", "--out", tmp_path / "figures")
    assert result.returncode == 0, result.stderr
    table = result.stdout
    for name in EMBEDDER_NAMES:
        lines = [line for line in table.splitlines() if f" {name} " in line]
        assert [line.split()[0] for line in lines] == ["digits", "letter"]
        assert all(0.5 < float(line.split()[-1]) <= 1 for line in lines)  # 5-NN accuracy
    assert table.count("plain 5-NN") == 2
    assert "2100 train / 900 test rows" in table  # the first 3000 rows of letter
    assert "training" in result.stderr and "Traceback" not in result.stderr  # progress bar
    assert_png(tmp_path / "figures" / "demo_embedding.png", min_size=800)


@pytest.mark.slow
def test_console_script():
    script = console_script()
    if script is None:
        pytest.skip("the sk-dml console script is not installed")
    result = subprocess.run([script, "--version"], capture_output=True, text=True, env=ENV)
    assert result.returncode == 0 and result.stdout.strip() == f"sk-dml {sk_dml.__version__}"
    usage = subprocess.run([script, "fit"], capture_output=True, text=True, env=ENV)
    assert usage.returncode == 2
    assert usage.stderr.splitlines() == [
        "sk-dml: error: the following arguments are required: DATA, -o/--output "
        "(see 'sk-dml fit --help')"
    ]


def console_script() -> str | None:
    """The installed ``sk-dml`` script, None when it is not installed."""
    script = Path(sys.executable).with_name("sk-dml")
    return str(script) if script.exists() else shutil.which("sk-dml")


# Runs the console script as its own process would, then says on stderr whether torch was
# imported and which options the parser took.
MODULES_AFTER = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as done:
    status = done.code
print(f"torch imported: {'torch' in sys.modules}; status {status}", file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args, torch_needed",
    [(["--help"], False), (["--version"], False), ([], False), (["fit", "--help"], True)],
)
def test_help_imports_torch_only_for_a_command_that_needs_it(args, torch_needed):
    script = console_script()
    if script is None:
        pytest.skip("the sk-dml console script is not installed")
    command = [sys.executable, "-c", MODULES_AFTER, script, *args]
    result = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    status = 2 if not args else 0
    assert result.stderr.splitlines()[-1] == f"torch imported: {torch_needed}; status {status}"
    if args == ["--help"]:  # every subcommand listed with its help line
        for name in ("demo", "fit", "transform", "evaluate", "plot"):
            assert re.search(rf"^ +{name}\s+\w", result.stdout, re.MULTILINE), name
    if args == ["fit", "--help"]:  # fit's options, read from the estimators
        assert "--margin M" in result.stdout


# ------------------------------------------------------------- options from the estimators
# fit's options that set an embedder parameter, and that parameter.
FIT_PARAMETERS = {
    "--margin": "margin",
    "--mining": "mining",
    "--temperature": "temperature",
    "--scale": "scale",
    "--epochs": "max_epochs",
    "--n-components": "n_components",
    "--hidden-layer-sizes": "hidden_layer_sizes",
    "--batch-size": "batch_size",
    "--learning-rate": "learning_rate",
    "--min-frequency": "min_frequency",
}


def help_entries(monkeypatch, *args) -> dict[str, str]:
    """The options of ``sk-dml ARGS --help``: each option's first long flag -> its entry
    (invocation and help) on one line."""
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps no help line
    code, out, err = call(*args, "--help")
    assert code == 0, err
    entries, flag = {}, None
    for line in out.split("\noptions:\n", 1)[1].splitlines():
        if line.startswith("  -"):
            flag = re.search(r"--[\w-]+", line).group()
            entries[flag] = line.strip()
        elif flag is not None:
            entries[flag] += " " + line.strip()
    return entries


def printed_value(text: str, like):
    """A value as the help prints it, read as the type of ``like``."""
    if isinstance(like, (tuple, list)):
        return tuple(int(v) for v in text.split())
    if text == "none":
        return None
    if isinstance(like, (int, float)) and not isinstance(like, bool):
        return float(text)
    return text


@pytest.mark.parametrize("loss", loss_names())
def test_fit_help_shows_the_estimators_defaults(loss, monkeypatch):
    entries = help_entries(monkeypatch, "fit", "--loss", loss)
    choices = re.match(r"--loss \{([^}]*)\}", entries["--loss"]).group(1)
    assert choices.split(",") == loss_names()
    assert entries["--loss"].endswith(f"(default: triplet; {loss_names('pairs')[0]} with --pairs)")
    shown = {flag for flag, entry in entries.items() if "default" in entry or "not taken" in entry}
    assert shown == {*FIT_PARAMETERS, "--loss", "--loss-param"}  # every default is checked here

    params = make_embedder(loss).get_params()  # the oracle
    for flag, param in FIT_PARAMETERS.items():
        note = re.search(r"\(([^()]*)\)$", entries[flag]).group(1)
        if param not in params and f"loss__{param}" not in params:
            assert note.endswith(f"not taken by --loss {loss}"), (flag, note)
            continue
        expected = params.get(param, params.get(f"loss__{param}"))
        match = re.fullmatch(r"(?:.*; )?default(?: for (\S+))?: (.+)", note)
        assert match, (flag, note)
        named, printed = match.groups()
        if named is None:  # said not to depend on the loss: the same for every loss taking it
            for other in loss_names():
                other_params = make_embedder(other).get_params()
                assert other_params.get(param, expected) == expected, (flag, other)
        else:
            assert named == loss
        if isinstance(expected, str) and expected == "auto":  # the loss's choice, shown too
            printed, resolved = printed.split(" = ")
            choice = get_loss_class(loss).embedder_defaults[param]
            assert printed_value(resolved, choice) == choice
        assert printed_value(printed, expected) == expected, (flag, note)

    listed = re.search(rf"defaults for {loss}: ([^()]*)\)$", entries["--loss-param"]).group(1)
    own = get_loss_class(loss)().get_params()
    pairs = dict(pair.split("=") for pair in listed.split(", "))
    assert {name: printed_value(text, own[name]) for name, text in pairs.items()} == own


def test_an_error_inside_training_is_an_internal_error(small, tmp_path, monkeypatch):
    def boom(self, X, y):
        raise ValueError("boom")

    monkeypatch.setattr(sk_dml._embedder.BaseEmbedder, "fit", boom)
    fit = ("fit", small / "small.csv", "--target", "label", *TINY)
    code, stdout, stderr = call(*fit, "-o", tmp_path / "m.skdml")
    assert code == 1 and stdout == ""
    assert stderr.splitlines() == [
        "sk-dml: internal error: ValueError: boom (set SK_DML_DEBUG=1 to see the traceback)"
    ]
    assert list(tmp_path.iterdir()) == []
    # Bad input is still bad input: found before training, exit status 2.
    code, _, stderr = call(*fit[:2], "--target", "nope", "-o", tmp_path / "m.skdml")
    assert code == 2 and stderr.startswith("sk-dml: error: ") and "'nope'" in stderr
    code, _, stderr = call("transform", small / "small.skdml", small / "no_b.csv", "-o",
                           tmp_path / "e.csv")  # fmt: skip
    assert code == 2 and "missing column(s) 'b'" in stderr
    # A KeyError inside the embedding is no missing column either.
    monkeypatch.setattr(sk_dml._embedder.BaseEmbedder, "transform", lambda self, X: {}["k"])
    code, _, stderr = call("transform", small / "small.skdml", small / "small.csv", "-o",
                           tmp_path / "e.csv")  # fmt: skip
    assert code == 1 and stderr.startswith("sk-dml: internal error: KeyError: ")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("SK_DML_DEBUG", "1")
    with pytest.raises(ValueError, match="boom"):
        cli.main([str(a) for a in (*fit, "-o", tmp_path / "m.skdml")])


# --------------------------------------------------------------- columns, keys, the model file
def fitted_by_python(frame: pd.DataFrame, features, **params):
    """The embedder the Python API fits on ``frame``'s ``features`` with fit's TINY options."""
    return make_embedder("triplet", **TINY_PARAMS, **params).fit(frame[features], frame.label)


def categorical_columns(estimator) -> list[str]:
    schema = estimator.schema_
    return [schema.feature_names[p] for p in schema.categorical]


def test_fit_hands_the_table_to_the_embedder_and_saves_a_plain_model_file(small):
    frame = pd.read_csv(small / "small.csv")
    loaded = sk_dml.load(small / "small.skdml")  # no CLI code involved
    expected = fitted_by_python(frame, ["a", "b", "c"])
    assert loaded.schema_ == expected.schema_
    assert categorical_columns(loaded) == ["c"]  # pandas read c as text
    assert loaded.get_params()["categorical_features"] == "from_dtype"
    np.testing.assert_allclose(
        loaded.transform(frame[["a", "b", "c"]]),
        expected.transform(frame[["a", "b", "c"]]),
        rtol=1e-5,
        atol=1e-6,
    )
    extra = read_metadata(small / "small.skdml")["extra"]
    assert extra.pop("fingerprint")["rows"] == len(frame)  # for evaluate's warning
    assert extra == {"target": "label", "key": None, "excluded": []}


def test_categorical_learns_numeric_columns_as_categories(small, tmp_path):
    model = tmp_path / "m.skdml"
    code, out, err = call("fit", small / "small.csv", "--target", "label", "--categorical", "b",
                          *TINY, "-o", model)  # fmt: skip
    assert code == 0, err
    assert "(1 numeric and 2 categorical columns: 'b', 'c')" in out
    frame = pd.read_csv(small / "small.csv")
    assert pd.api.types.is_integer_dtype(frame.b)  # numbers, as pandas reads them
    loaded = sk_dml.load(model)
    assert categorical_columns(loaded) == ["b", "c"]
    levels = dict(zip(categorical_columns(loaded), loaded.schema_.levels, strict=True))
    assert levels["b"] == sorted(str(v) for v in frame.b.unique())  # each value a level
    expected = fitted_by_python(frame, ["a", "b", "c"], categorical_features=["b", "c"])
    assert loaded.schema_ == expected.schema_
    np.testing.assert_allclose(
        loaded.transform(frame[["a", "b", "c"]]),
        expected.transform(frame[["a", "b", "c"]]),
        rtol=1e-5,
        atol=1e-6,
    )
    # Names separated by commas, or the option repeated.
    args = cli.build_parser().parse_args(
        ["fit", "d.csv", "--target", "t", "-o", "m", "--categorical", "b,c", "--categorical", "e"]
    )
    assert args.categorical == ["b", "c", "e"]


def test_text_reads_columns_by_character_ngrams(small, tmp_path):
    model = tmp_path / "m.skdml"
    code, out, err = call("fit", small / "small.csv", "--target", "label", "--text", "c,b",
                          *TINY, "-o", model)  # fmt: skip
    assert code == 0, err
    assert "(1 numeric and 0 categorical columns, 2 text columns: 'b', 'c')" in out
    # Each column's reading and its reason, one line each, from the model's schema.
    listing = out.split("columns read as:\n", 1)[1].splitlines()[:3]
    assert [line.split()[:3] for line in listing] == [
        ["a", "numeric", "numeric"],
        ["b", "text", "text_features"],
        ["c", "text", "text_features"],
    ]
    frame = pd.read_csv(small / "small.csv")
    loaded = sk_dml.load(model)
    assert categorical_columns(loaded) == []  # c, text to pandas, is read by n-grams
    assert [loaded.schema_.feature_names[p] for p in loaded.schema_.text] == ["b", "c"]
    expected = fitted_by_python(
        frame, ["a", "b", "c"], categorical_features=[], text_features=["b", "c"]
    )
    assert loaded.schema_ == expected.schema_
    np.testing.assert_allclose(
        loaded.transform(frame[["a", "b", "c"]]),
        expected.transform(frame[["a", "b", "c"]]),
        rtol=1e-5,
        atol=1e-6,
    )
    args = cli.build_parser().parse_args(
        ["fit", "d.csv", "--target", "t", "-o", "m", "--text", "b,c", "--text", "e"]
    )
    assert args.text == ["b", "c", "e"]
    # evaluate's baseline reads the text columns as their TF-IDF (scikit-learn's hashed
    # character n-grams and TfidfTransformer), the number standardised.
    code, stdout, err = call("evaluate", model, small / "small.csv")
    assert code == 0, err
    tfidf = make_pipeline(
        HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=2**16,
                          alternate_sign=False, norm=None),
        TfidfTransformer(),
    )  # fmt: skip
    X = np.hstack([
        StandardScaler().fit_transform(frame[["a"]]),
        *(tfidf.fit_transform(frame[c].astype(str)).toarray() for c in ("b", "c")),
    ])  # fmt: skip
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    accuracy = cross_val_score(KNeighborsClassifier(5), X, frame["label"], cv=folds)
    assert re.findall(RETRIEVAL_LINE, stdout, re.M)[5][1] == f"{accuracy.mean():.4f}"


def test_exclude_leaves_columns_out_of_the_features(small, tmp_path):
    model = tmp_path / "m.skdml"
    code, _, err = call("fit", small / "small.csv", "--target", "label", "--exclude", "a",
                        *TINY, "-o", model)  # fmt: skip
    assert code == 0, err
    loaded = sk_dml.load(model)
    assert list(loaded.feature_names_in_) == ["b", "c"]
    assert read_metadata(model)["extra"]["excluded"] == ["a"]
    # A table without the excluded column is embedded like the Python API does.
    frame = pd.read_csv(small / "small.csv").drop(columns="a")
    frame.to_csv(tmp_path / "no_a.csv", index=False)
    code, _, err = call("transform", model, tmp_path / "no_a.csv", "-o", tmp_path / "e.csv")
    assert code == 0, err
    expected = fitted_by_python(frame, ["b", "c"]).transform(frame[["b", "c"]])
    np.testing.assert_allclose(pd.read_csv(tmp_path / "e.csv"), expected, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def keyed(small, tmp_path_factory) -> Path:
    """keyed.csv: the small table with a text ID column first, and keyed.skdml fitted with
    ``--key id``."""
    folder = tmp_path_factory.mktemp("keyed")
    frame = pd.read_csv(small / "small.csv")
    ids = [f"row-{i:03d}" for i in np.random.default_rng(1).permutation(len(frame))]
    frame.insert(0, "id", ids)
    frame.to_csv(folder / "keyed.csv", index=False)
    code, _, err = call("fit", folder / "keyed.csv", "--target", "label", "--key", "id", *TINY,
                        "-o", folder / "keyed.skdml")  # fmt: skip
    assert code == 0, err
    return folder


def test_key_is_no_feature_and_transform_writes_it_first_to_join_rows_back(keyed, tmp_path):
    model = keyed / "keyed.skdml"
    loaded = sk_dml.load(model)
    assert list(loaded.feature_names_in_) == ["a", "b", "c"]
    assert read_metadata(model)["extra"]["key"] == "id"
    # New rows: shuffled, without the target.
    rows = pd.read_csv(keyed / "keyed.csv").sample(frac=1, random_state=2).drop(columns="label")
    rows.to_csv(tmp_path / "rows.csv", index=False)
    code, out, err = call("transform", model, tmp_path / "rows.csv", "-o", tmp_path / "e.csv")
    assert code == 0, err
    assert "after the key column 'id'" in out
    written = pd.read_csv(tmp_path / "e.csv")
    assert list(written.columns) == ["id", "emb0", "emb1", "emb2", "emb3"]
    assert written.id.tolist() == rows.id.tolist()  # the input's rows, in order
    joined = rows.merge(written, on="id", validate="one_to_one")
    assert joined.id.tolist() == rows.id.tolist()
    np.testing.assert_allclose(
        joined.filter(like="emb"), loaded.transform(rows[["a", "b", "c"]]), rtol=1e-6, atol=1e-7
    )
    # --key picks another column, --no-key writes the embedding alone.
    code, _, err = call("transform", model, tmp_path / "rows.csv", "--key", "c", "-o",
                        tmp_path / "c.csv")  # fmt: skip
    assert code == 0, err
    by_c = pd.read_csv(tmp_path / "c.csv")
    assert list(by_c.columns)[0] == "c" and by_c.c.tolist() == rows.c.tolist()
    pd.testing.assert_frame_equal(by_c.drop(columns="c"), written.drop(columns="id"))
    code, _, err = call("transform", model, tmp_path / "rows.csv", "--no-key", "-o",
                        tmp_path / "n.csv")  # fmt: skip
    assert code == 0, err
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "n.csv"), written.drop(columns="id"))
    # Rows without the model's key column: an input error that says what to do.
    rows.drop(columns="id").to_csv(tmp_path / "no_id.csv", index=False)
    code, _, err = call("transform", model, tmp_path / "no_id.csv", "-o", tmp_path / "x.csv")
    assert code == 2 and "no column 'id' (the model's key column)" in err and "--no-key" in err
    assert not (tmp_path / "x.csv").exists()


def test_transform_to_standard_output(keyed, tmp_path):
    model, rows = keyed / "keyed.skdml", keyed / "keyed.csv"
    to_file = run_cli("transform", model, rows, "-o", tmp_path / "e.csv")
    assert to_file.returncode == 0, to_file.stderr
    piped = run_cli("transform", model, rows, "-o", "-")
    assert piped.returncode == 0, piped.stderr
    # The table alone on stdout, the same as the file; what was written said on stderr.
    pd.testing.assert_frame_equal(
        pd.read_csv(io.StringIO(piped.stdout)), pd.read_csv(tmp_path / "e.csv")
    )
    assert "to standard output" in piped.stderr and "Traceback" not in piped.stderr
    assert not (Path.cwd() / "-").exists()


def test_missing_cells_are_the_embedders_to_handle(small, tmp_path):
    frame = pd.read_csv(small / "small.csv")
    rng = np.random.default_rng(3)
    for column in ("a", "b", "c"):
        frame.loc[rng.random(len(frame)) < 0.2, column] = None
    frame.to_csv(tmp_path / "holes.csv", index=False)
    assert (tmp_path / "holes.csv").read_text().count(",,") > 0  # empty cells
    model = tmp_path / "m.skdml"
    code, _, err = call("fit", tmp_path / "holes.csv", "--target", "label", *TINY, "-o", model)
    assert code == 0, err
    read = pd.read_csv(tmp_path / "holes.csv")  # as pandas reads the file
    loaded = sk_dml.load(model)
    expected = fitted_by_python(read, ["a", "b", "c"])
    assert loaded.schema_ == expected.schema_
    assert loaded.schema_.missing_indicators == [0, 1]  # a and b had missing numbers
    code, _, err = call("transform", model, tmp_path / "holes.csv", "-o", tmp_path / "e.csv")
    assert code == 0, err
    written = pd.read_csv(tmp_path / "e.csv").to_numpy()
    assert np.isfinite(written).all()
    features = read[["a", "b", "c"]]
    np.testing.assert_allclose(written, expected.transform(features), rtol=1e-5, atol=1e-6)
    code, out, err = call("evaluate", model, tmp_path / "holes.csv")
    assert code == 0, err


# --------------------------------------------------------- labelled pairs, continuous targets
PAIR_SCORE = r"^(ROC AUC|accuracy) +(\S+)"


def one_hot_baseline(frame: pd.DataFrame) -> np.ndarray:
    """The small table's input features as evaluate's baseline sees them (no missing cells)."""
    encoder = make_column_transformer(
        (StandardScaler(), ["a", "b"]), (OneHotEncoder(sparse_output=False), ["c"])
    )
    return encoder.fit_transform(frame)


def test_fit_on_pairs_by_key_and_by_row_number(small, tmp_path):
    frame = pd.read_csv(small / "small_ids.csv")
    pairs = pd.read_csv(small / "pairs.csv")  # 0-based row numbers; pairs_ids.csv: the same by ID
    features = frame[["a", "b", "c"]]
    expected = sk_dml.PairEmbedder(  # the oracle: the Python API on the same rows and pairs
        preprocessor=features, loss=ContrastiveLoss(), **TINY_PARAMS
    ).fit(pairs[["left", "right"]].to_numpy(), pairs.same.to_numpy())
    runs = {
        "key": ("fit", small / "small_ids.csv", "--pairs", small / "pairs_ids.csv", "--key", "id"),
        "row": ("fit", small / "small.csv", "--pairs", small / "pairs.csv"),
    }
    for name, command in runs.items():
        model = tmp_path / f"{name}.skdml"
        code, out, err = call(*command, "--exclude", "label", *TINY, "-o", model)
        assert code == 0, err
        assert out.startswith(
            f"PairEmbedder(ContrastiveLoss) trained on 80 pairs ({pairs.same.sum()} alike) of 60 "
            "rows (2 numeric and 1 categorical columns: 'c') in 2 epochs"
        )
        loaded = sk_dml.load(model)  # no CLI code involved
        assert isinstance(loaded, sk_dml.PairEmbedder) and loaded.preprocessor is None
        assert loaded.loss.get_params() == ContrastiveLoss().get_params()
        assert loaded.schema_ == expected.schema_ and loaded.threshold_ == expected.threshold_
        np.testing.assert_allclose(
            loaded.transform(features), expected.transform(features), rtol=1e-6, atol=1e-7
        )
        extra = read_metadata(model)["extra"]
        assert extra.pop("fingerprint")["rows"] == len(frame)  # evaluate's: the table's rows
        assert extra == {
            "pairs": str(command[3]),
            "key": "id" if name == "key" else None,
            "excluded": ["label"],
        }
    # transform, as with any model: after the model's key column.
    code, _, err = call("transform", tmp_path / "key.skdml", small / "small_ids.csv", "-o",
                        tmp_path / "e.csv")  # fmt: skip
    assert code == 0, err
    written = pd.read_csv(tmp_path / "e.csv")
    assert written.id.tolist() == frame.id.tolist()
    np.testing.assert_allclose(
        written.filter(like="emb"), expected.transform(features), rtol=1e-6, atol=1e-7
    )


def test_evaluate_scores_labelled_pairs(small):
    frame = pd.read_csv(small / "small.csv")
    pairs = pd.read_csv(small / "pairs.csv")
    rows, same = pairs[["left", "right"]].to_numpy(), pairs.same.to_numpy()
    model = small / "pairs.skdml"
    code, out, err = call("evaluate", model, small / "small.csv", "--pairs", small / "pairs.csv")
    assert code == 0, err
    printed = re.findall(PAIR_SCORE, out, re.M)
    loaded = sk_dml.load(model).set_params(preprocessor=frame[["a", "b", "c"]])
    X = one_hot_baseline(frame)
    plain = np.linalg.norm(X[rows[:, 0]] - X[rows[:, 1]], axis=1)
    assert printed == [
        ("ROC AUC", f"{loaded.score(rows, same):.4f}"),
        ("ROC AUC", f"{roc_auc_score(same, -plain):.4f}"),
        ("accuracy", f"{np.mean(loaded.predict(rows) == same):.4f}"),
    ]
    assert f"80 pairs ({same.sum()} alike) of its rows, named by row number" in out
    # The same pairs by ID: the same scores.
    code, by_id, err = call("evaluate", model, small / "small_ids.csv", "--pairs",
                            small / "pairs_ids.csv", "--key", "id")  # fmt: skip
    assert code == 0, err
    assert re.findall(PAIR_SCORE, by_id, re.M) == printed and "named by 'id'" in by_id
    # Any model scores pairs (only a pairs model has a threshold), and a pairs model scores a
    # class column.
    code, out, err = call("evaluate", small / "small.skdml", small / "small.csv", "--pairs",
                          small / "pairs.csv")  # fmt: skip
    assert code == 0, err
    assert [name for name, _ in re.findall(PAIR_SCORE, out, re.M)] == ["ROC AUC", "ROC AUC"]
    code, out, err = call("evaluate", model, small / "small.csv", "--target", "label")
    assert code == 0, err
    assert "precision@1" in out


def test_pairs_name_rows_by_key_values_read_as_numbers_or_text():
    frame = pd.DataFrame({"num": [10, 11, 12, 13], "text": ["a", "7", "b", "8"]})
    given = pd.DataFrame({"l": [10, 12], "r": [13.0, 11.0], "y": [1, 0]})  # ints, floats
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.csv"
        given.to_csv(path, index=False)
        rows, labels = cli.pairs.read_pairs(path, frame, "num", "d.csv")
        assert rows.tolist() == [[0, 3], [2, 1]] and labels.tolist() == [1, 0]
        # Key values read as text, some of which pandas reads as numbers in the pairs file.
        given.assign(l=[7, 8], r=["b", "a"]).to_csv(path, index=False)
        rows, _ = cli.pairs.read_pairs(path, frame, "text", "d.csv")
        assert rows.tolist() == [[1, 2], [3, 0]]
        given.assign(l=[3, 0], r=[1.0, 2.0]).to_csv(path, index=False)
        rows, _ = cli.pairs.read_pairs(path, frame, None, "d.csv")  # row numbers
        assert rows.tolist() == [[3, 1], [0, 2]]


def test_fit_and_evaluate_with_a_continuous_target(small, tmp_path):
    frame = pd.read_csv(small / "small.csv")
    frame["price"] = 2 * frame.a + np.random.default_rng(7).normal(size=len(frame))
    assert frame.price.nunique() == len(frame)  # no class of 4 rows: no class labels
    frame.to_csv(tmp_path / "prices.csv", index=False)
    model = tmp_path / "lr.skdml"
    code, out, err = call("fit", tmp_path / "prices.csv", "--target", "price", "--loss",
                          "log_ratio", "--exclude", "label", *TINY, "-o", model)  # fmt: skip
    assert code == 0, err
    assert out.startswith("LogRatioEmbedder trained on 60 rows (2 numeric and 1 categorical")
    features = frame[["a", "b", "c"]]
    expected = sk_dml.LogRatioEmbedder(**TINY_PARAMS).fit(features, frame.price)
    loaded = sk_dml.load(model)
    assert isinstance(loaded, sk_dml.LogRatioEmbedder)
    Z = loaded.transform(features)
    np.testing.assert_allclose(Z, expected.transform(features), rtol=1e-6, atol=1e-7)
    extra = read_metadata(model)["extra"]
    assert extra.pop("fingerprint")["rows"] == len(frame)
    assert extra == {"target": "price", "key": None, "excluded": ["label"]}

    # evaluate: the R^2 of 5-NN regression of the target, in the embedding and on the inputs.
    y = frame.price.to_numpy()

    def knn_r2(queries, reference, y_true, y_ref, metric, leave_one_out=False):
        distances = cdist(queries, reference, metric)
        if leave_one_out:
            np.fill_diagonal(distances, np.inf)
        nearest = np.argsort(distances, axis=1, kind="stable")[:, :5]
        return f"{r2_score(y_true, y_ref[nearest].mean(axis=1)):.4f}"

    metric, X = loaded.embedding_metric_, one_hot_baseline(frame)
    code, out, err = call("evaluate", model, tmp_path / "prices.csv")
    assert code == 0, err
    assert re.findall(r"^5-NN R\^2 +(\S+)", out, re.M) == [
        knn_r2(Z, Z, y, y, metric, leave_one_out=True),
        knn_r2(X, X, y, y, "euclidean", leave_one_out=True),
    ]
    assert "continuous target 'price'" in out and "precision@1" not in out
    # DATA's rows from REF's.
    frame.iloc[::2].to_csv(tmp_path / "q.csv", index=False)
    frame.iloc[1::2].to_csv(tmp_path / "r.csv", index=False)
    code, out, err = call("evaluate", model, tmp_path / "q.csv", "--reference", tmp_path / "r.csv")
    assert code == 0, err
    q, r = slice(0, None, 2), slice(1, None, 2)
    assert re.findall(r"^5-NN R\^2 +(\S+)", out, re.M)[0] == knn_r2(Z[q], Z[r], y[q], y[r], metric)
    assert "DATA's rows from REF's" in out


def test_fit_help_with_pairs_shows_the_pairs_loss_and_its_defaults(monkeypatch):
    pairs_loss = loss_names("pairs")[0]
    assert pairs_loss == "contrastive"
    assert cli.chosen_loss(["fit", "d.csv", "--pairs", "p.csv"]) == pairs_loss
    assert cli.chosen_loss(["fit", "d.csv", "--pairs=p.csv", "--loss", "npair"]) == "npair"
    assert cli.chosen_loss(["fit", "d.csv", "--target", "y"]) == "triplet"
    entries = help_entries(monkeypatch, "fit", "d.csv", "--pairs", "p.csv")
    margin = ContrastiveLoss().margin
    assert entries["--margin"].endswith(f"default for {pairs_loss}: {margin})")
    assert "not taken by --loss contrastive" in entries["--mining"]
    assert "exactly 3 columns" in entries["--pairs"] and "true/false" in entries["--pairs"]


def test_a_loss_of_neither_classes_nor_a_target_is_refused_with_target(
    small, tmp_path, monkeypatch
):
    monkeypatch.setattr(ContrastiveLoss, "supervisions", ("pairs",))
    code, _, err = call("fit", small / "small.csv", "--target", "label", "--loss", "contrastive",
                        "-o", tmp_path / "m.skdml")  # fmt: skip
    assert code == 2 and len(err.splitlines()) == 1
    assert "--loss contrastive learns from labelled pairs, not from a --target column" in err
    assert "log_ratio" in err and list(tmp_path.iterdir()) == []


def test_demo_compares_only_the_losses_of_class_labels(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(48, 3)), np.repeat([0, 1, 2], 16)
    tiny_data = [(name, X[::2], X[1::2], y[::2], y[1::2]) for name in ("digits", "letter")]
    trained = []

    def tiny_embedder(loss, **params):
        trained.append(loss)
        params.update(max_epochs=1, hidden_layer_sizes=(4,), n_components=2, batch_size=8)
        return make_embedder(loss, **params)

    monkeypatch.setattr(cli.commands.demo, "_demo_data", lambda quick: tiny_data)
    monkeypatch.setattr(cli.commands.demo, "make_embedder", tiny_embedder)
    monkeypatch.setattr(cli.commands.demo, "save_figure", lambda figure, path: None)
    code, out, err = call("demo", "--full", "--quick", "--out", tmp_path)
    assert code == 0, err
    assert trained[1:] == loss_names("classes") * 2  # after the warm-up fit
    assert "log_ratio" not in loss_names("classes") and "LogRatio" not in out


def test_demo_first_look_prints_each_table_against_plain_5nn(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    labels = np.repeat(["p", "q", "r"], 30)
    numbers = pd.DataFrame({"a": rng.normal(size=90) + (labels == "p"), "b": rng.normal(size=90)})
    words = pd.DataFrame({"w": np.where(labels == "q", "yes", rng.choice(["no", "maybe"], 90))})
    splits = [
        cli.commands.demo.Split.of("numbers", numbers, labels, "standardised", StandardScaler()),
        cli.commands.demo.Split.of("words", words, labels, "one-hot", OneHotEncoder()),
    ]
    tiny = dict(max_epochs=1, hidden_layer_sizes=(4,), n_components=2, batch_size=12)
    monkeypatch.setattr(cli.commands.demo, "_first_look_data", lambda quick: splits)
    monkeypatch.setattr(
        cli.commands.demo,
        "make_embedder",
        lambda loss, **params: make_embedder(loss, **{**params, **tiny}),
    )
    figures = []
    monkeypatch.setattr(cli.commands.demo, "save_figure", lambda fig, path: figures.append(fig))
    code, out, err = call("demo", "--out", tmp_path)
    assert code == 0, err
    for split in splits:  # plain 5-NN on the baseline's encoding, fitted on the training rows
        encode = split.encoder.transform
        knn = KNeighborsClassifier(5).fit(encode(split.X_train), split.y_train)
        plain = knn.score(encode(split.X_test), split.y_test)
        lines = [line.split() for line in out.splitlines() if line.startswith(f"{split.name} ")]
        assert lines[-2][1:3] == ["plain", "5-NN"] and lines[-2][-1] == f"{plain:.4f}"
        assert lines[-1][1] == "TripletEmbedder" and lines[-1][2] == "1"  # one epoch
    assert "loss=" in err  # the progress bar of each fit's epochs
    assert [len(sub.axes) for sub in figures[0].subfigs] == [2, 2]  # raw features, embedding


# ---------------------------------------------------------------------------- bad input
BAD_INPUT = {
    "missing data file": ("fit {dir}/nope.csv --target label -o {out}/m.skdml", "no such file"),
    "unknown extension": ("fit {dir}/small.txt --target label -o {out}/m.skdml", "file type"),
    "empty file": ("fit {dir}/empty.csv --target label -o {out}/m.skdml", "empty"),
    "header only": ("fit {dir}/header.csv --target label -o {out}/m.skdml", "no rows"),
    "missing target": ("fit {dir}/small.csv --target nope -o {out}/m.skdml", "'nope'"),
    "one class": ("fit {dir}/one_class.csv --target label -o {out}/m.skdml", "single class"),
    "not UTF-8": ("fit {dir}/latin1.csv --target label -o {out}/m.skdml", "utf-8"),
    "corrupt gzip": ("fit {dir}/broken.csv.gz --target label -o {out}/m.skdml", "broken.csv.gz"),
    "corrupt parquet": ("fit {dir}/broken.parquet --target label -o {out}/m", "broken.parquet"),
    "no output folder": ("fit {dir}/small.csv --target label -o {out}/no/m.skdml", "folder"),
    "option of another loss": (
        "fit {dir}/small.csv --target label --loss npair --margin 1 -o {out}/m.skdml",
        "--margin",
    ),
    "usage": ("fit {dir}/small.csv -o {out}/m.skdml", "one of the arguments --target --pairs"),
    "target and pairs": (
        "fit {dir}/small.csv --target label --pairs {dir}/pairs.csv -o {out}/m.skdml",
        "argument --pairs: not allowed with argument --target",
    ),
    "loss that does not learn from pairs": (
        "fit {dir}/small.csv --pairs {dir}/pairs.csv --loss triplet -o {out}/m.skdml",
        "--loss triplet does not learn from labelled pairs (--pairs); losses that do: contrastive",
    ),
    "option of no pairs loss": (
        "fit {dir}/small.csv --pairs {dir}/pairs.csv --mining hard -o {out}/m.skdml",
        "--mining does not apply to --loss contrastive",
    ),
    "missing pairs file": (
        "fit {dir}/small.csv --pairs {dir}/nope.csv -o {out}/m.skdml",
        "nope.csv: no such file",
    ),
    "pairs file of two columns": (
        "fit {dir}/small.csv --pairs {dir}/pairs_two_columns.csv -o {out}/m.skdml",
        "pairs_two_columns.csv: a pairs file has exactly 3 columns",
    ),
    "pair without a label": (
        "fit {dir}/small.csv --pairs {dir}/pairs_missing_label.csv -o {out}/m.skdml",
        "pairs_missing_label.csv: column 'same' has 1 missing value(s) (first in pair 3",
    ),
    "pair row number out of range": (
        "fit {dir}/small.csv --pairs {dir}/pairs_out_of_range.csv -o {out}/m.skdml",
        "pairs_out_of_range.csv: column 'right' holds row number 60, but ",
    ),
    "pair row number out of range (the table)": (
        "fit {dir}/small.csv --pairs {dir}/pairs_out_of_range.csv -o {out}/m.skdml",
        "small.csv has 60 rows (numbered 0 to 59); 1 pair(s) name a row outside it",
    ),
    "pair rows named by key values without --key": (
        "fit {dir}/small_ids.csv --pairs {dir}/pairs_ids.csv -o {out}/m.skdml",
        "pairs_ids.csv: without --key, a pair names its rows by their 0-based row numbers",
    ),
    "pair row not in the key column": (
        "fit {dir}/small_ids.csv --pairs {dir}/pairs_unknown_id.csv --key id -o {out}/m.skdml",
        "pairs_unknown_id.csv: column 'left' holds 'row-999', not a value of the key column 'id'",
    ),
    "pair rows by row number with --key": (
        "fit {dir}/small_ids.csv --pairs {dir}/pairs.csv --key id -o {out}/m.skdml",
        "pairs.csv: column 'left' holds",
    ),
    "key column with a repeated value": (
        "fit {dir}/small_repeated_ids.csv --pairs {dir}/pairs_ids.csv --key id -o {out}/m.skdml",
        "small_repeated_ids.csv: the key column 'id' holds 'row-",
    ),
    "pair of a row with itself": (
        "fit {dir}/small.csv --pairs {dir}/pairs_self.csv -o {out}/m.skdml",
        "pairs_self.csv: 1 of the pairs name the same row twice",
    ),
    "pairs of one kind": (
        "fit {dir}/small.csv --pairs {dir}/pairs_one_kind.csv -o {out}/m.skdml",
        "pairs_one_kind.csv: the label column 'same': y holds one kind of pair label only",
    ),
    "pair labels that are not 1/0/-1": (
        "fit {dir}/small.csv --pairs {dir}/pairs_bad_labels.csv -o {out}/m.skdml",
        "pairs_bad_labels.csv: the label column 'same': Pair labels must be 1 (alike) and 0 or -1",
    ),
    "text target of log_ratio": (
        "fit {dir}/small.csv --target label --loss log_ratio -o {out}/m.skdml",
        "small.csv: the target column 'label': A continuous target must be numeric",
    ),
    "constant target of log_ratio": (
        "fit {dir}/constant_b.csv --target b --loss log_ratio -o {out}/m.skdml",
        "constant_b.csv: the target column 'b': y is constant",
    ),
    "batch smaller than a group of log_ratio": (
        "fit {dir}/small.csv --target a --loss log_ratio --batch-size 2 -o {out}/m.skdml",
        "--batch-size 2: must be at least 4",
    ),
    "evaluate a pairs model without pairs": (
        "evaluate {dir}/pairs.skdml {dir}/small.csv",
        "pairs.skdml: the model learned from labelled pairs (pairs.csv), not a target column; "
        "give --pairs FILE",
    ),
    "evaluate pairs and target": (
        "evaluate {dir}/small.skdml {dir}/small.csv --pairs {dir}/pairs.csv --target label",
        "not allowed with",
    ),
    "evaluate pairs and reference": (
        "evaluate {dir}/small.skdml {dir}/small.csv --pairs {dir}/pairs.csv --reference "
        "{dir}/small.csv",
        "--reference: not with --pairs",
    ),
    "evaluate key without pairs": (
        "evaluate {dir}/small.skdml {dir}/small_ids.csv --key id",
        "--key says how a pairs file names rows; it needs --pairs",
    ),
    "evaluate pairs of one kind": (
        "evaluate {dir}/pairs.skdml {dir}/small.csv --pairs {dir}/pairs_one_kind.csv",
        "pairs_one_kind.csv: the label column 'same': y holds one kind of pair label only",
    ),
    "plot a pairs model without a target": (
        "plot {dir}/pairs.skdml {dir}/small.csv -o {out}/f.png",
        "not a target column; give --target COL",
    ),
    "option value out of range": (
        "fit {dir}/small.csv --target label --margin -1 -o {out}/m.skdml",
        "'margin' parameter",
    ),
    "loss param of another loss": (
        "fit {dir}/small.csv --target label --loss npair --loss-param alpha=2 -o {out}/m.skdml",
        "takes l2_reg",
    ),
    "loss param not a number": (
        "fit {dir}/small.csv --target label --loss-param margin=wide -o {out}/m.skdml",
        "not a number",
    ),
    "loss param out of range": (
        "fit {dir}/small.csv --target label --loss lifted --loss-param variant=soft -o {out}/m",
        "'variant' parameter",
    ),
    "loss param without a value": (
        "fit {dir}/small.csv --target label --loss-param margin -o {out}/m.skdml",
        "NAME=VALUE",
    ),
    "option given twice": (
        "fit {dir}/small.csv --target label --margin 1 --loss-param margin=2 -o {out}/m.skdml",
        "both set margin",
    ),
    "learning rate not positive": (
        "fit {dir}/small.csv --target label --learning-rate 0 -o {out}/m.skdml",
        "positive number",
    ),
    "batch size of a partial group": (
        "fit {dir}/small.csv --target label --batch-size 6 -o {out}/m.skdml",
        "multiple of 4",
    ),
    "classes smaller than a group": (
        "fit {dir}/small_classes.csv --target label -o {out}/m.skdml",
        "largest class",
    ),
    "continuous target": ("fit {dir}/small.csv --target a -o {out}/m.skdml", "continuous"),
    "checkpoint dir is a file": (
        "fit {dir}/small.csv --target label --checkpoint-dir {dir}/small.csv -o {out}/m.skdml",
        "not a folder",
    ),
    "missing model": ("transform {dir}/nope.skdml {dir}/small.csv -o {out}/e.csv", "no such"),
    "pickle model": ("transform {dir}/pickle.skdml {dir}/small.csv -o {out}/e.csv", "not an sk"),
    "random bytes model": ("transform {dir}/noise.skdml {dir}/small.csv -o {out}/e.csv", "noise"),
    "truncated model": ("transform {dir}/truncated.skdml {dir}/small.csv -o {out}/e.csv", "trunc"),
    "model fitted without column names": (
        "transform {dir}/bare.skdml {dir}/small.csv -o {out}/e.csv",
        "without column names",
    ),
    "model of the earlier sk-dml": (
        "transform {dir}/old.skdml {dir}/small.csv -o {out}/e.csv",
        "refit the model with 'sk-dml fit'",
    ),
    "evaluate with a model of the earlier sk-dml": (
        "evaluate {dir}/old.skdml {dir}/small.csv",
        "old.skdml: written by an earlier sk-dml",
    ),
    "data file as model": ("transform {dir}/small.csv {dir}/small.csv -o {out}/e.csv", "small"),
    "missing column": ("transform {dir}/small.skdml {dir}/no_b.csv -o {out}/e.csv", "'b'"),
    "text in numeric column": (
        "transform {dir}/small.skdml {dir}/garbage.csv -o {out}/e.csv",
        "'12,5kg'",
    ),
    "unknown output type": ("transform {dir}/small.skdml {dir}/small.csv -o {out}/e.xls", ".xls"),
    "evaluate without target": ("evaluate {dir}/small.skdml {dir}/no_label.csv", "'label'"),
    "evaluate missing target": (
        "evaluate {dir}/small.skdml {dir}/small.csv --target nope",
        "'nope'",
    ),
    "evaluate missing reference": (
        "evaluate {dir}/small.skdml {dir}/small.csv --reference {dir}/nope.csv",
        "nope.csv: no such file",
    ),
    "evaluate reference without target": (
        "evaluate {dir}/small.skdml {dir}/small.csv --reference {dir}/no_label.csv",
        "no_label.csv: no target column 'label'",
    ),
    "evaluate reference missing column": (
        "evaluate {dir}/small.skdml {dir}/small.csv --reference {dir}/no_b.csv",
        "no_b.csv: missing column(s) 'b'",
    ),
    "evaluate reference of other classes": (
        "evaluate {dir}/small.skdml {dir}/small.csv --reference {dir}/other_classes.csv",
        "nothing to retrieve",
    ),
    "unknown image type": ("plot {dir}/small.skdml {dir}/small.csv -o {out}/f.xyz", "image"),
    "unknown categorical column": (
        "fit {dir}/small.csv --target label --categorical b,nope -o {out}/m.skdml",
        "--categorical names 'nope', not a column",
    ),
    "unknown excluded column": (
        "fit {dir}/small.csv --target label --exclude nope -o {out}/m.skdml",
        "--exclude names 'nope', not a column",
    ),
    "unknown key column": (
        "fit {dir}/small.csv --target label --key nope -o {out}/m.skdml",
        "--key names 'nope', not a column",
    ),
    "unknown key column of transform": (
        "transform {dir}/small.skdml {dir}/small.csv --key nope -o {out}/e.csv",
        "no column 'nope' (--key)",
    ),
    "key and no key": (
        "transform {dir}/small.skdml {dir}/small.csv --key a --no-key -o {out}/e.csv",
        "not allowed with",
    ),
    "empty column name": (
        "fit {dir}/small.csv --target label --exclude a,,b -o {out}/m.skdml",
        "invalid COL[,COL...] value: 'a,,b'",
    ),
    "target named categorical": (
        "fit {dir}/small.csv --target label --categorical label -o {out}/m.skdml",
        "--categorical 'label': the target column",
    ),
    "unknown text column": (
        "fit {dir}/small.csv --target label --text nope -o {out}/m.skdml",
        "--text names 'nope', not a column",
    ),
    "text column also categorical": (
        "fit {dir}/small.csv --target label --text c --categorical c -o {out}/m.skdml",
        "--text 'c' is also named by --categorical",
    ),
    "target named text": (
        "fit {dir}/small.csv --target label --text label -o {out}/m.skdml",
        "--text 'label': the target column",
    ),
    "excluded column named categorical": (
        "fit {dir}/small.csv --target label --exclude b --categorical b -o {out}/m.skdml",
        "--categorical 'b': excluded",
    ),
    "every feature excluded": (
        "fit {dir}/small.csv --target label --exclude a,b --key c -o {out}/m.skdml",
        "no feature columns left",
    ),
    "column without values": (
        "fit {dir}/all_missing.csv --target label -o {out}/m.skdml",
        "all_missing.csv: Column 'b' has no value at all",
    ),
    "infinite value": ("fit {dir}/inf.csv --target label -o {out}/m.skdml", "infinity"),
    "infinite value in transform": (
        "transform {dir}/small.skdml {dir}/inf.csv -o {out}/e.csv",
        "inf.csv: Input X contains infinity in column 'a'",
    ),
    "numbers beyond float32": (
        "fit {dir}/huge.csv --target label -o {out}/m.skdml",
        "Column 'a' holds 1e+300, beyond the range of float32",
    ),
    "numbers beyond float32 in transform": (
        "transform {dir}/small.skdml {dir}/huge.csv -o {out}/e.csv",
        "Column 'a' holds 1e+300, beyond the range of float32",
    ),
    "unknown command": ("frobnicate", "invalid choice"),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_is_one_line_and_exit_status_2(case, small, tmp_path):
    template, expected = BAD_INPUT[case]
    out = tmp_path / "out"
    out.mkdir()
    argv = [token.format(dir=small, out=out) for token in template.split()]
    code, stdout, stderr = call(*argv)
    assert code == 2
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("sk-dml: error: ") and expected in stderr
    assert "Traceback" not in stderr and stdout == ""
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_real_entry_point_reports_bad_input_in_one_line(small, tmp_path):
    for args in (
        ["transform", small / "pickle.skdml", small / "small.csv", "-o", tmp_path / "e.csv"],
        ["transform", small / "small.skdml", small / "garbage.csv", "-o", tmp_path / "e.csv"],
    ):
        result = run_cli(*args)
        assert result.returncode == 2
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith("sk-dml: error: ")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_file(small, tmp_path, monkeypatch):
    def write_half_then_fail(self, path, *args, **kwargs):
        Path(path).write_text("emb0\n0.1")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", write_half_then_fail)
    code, _, stderr = call("transform", small / "small.skdml", small / "small.csv", "-o",
                           tmp_path / "e.csv")  # fmt: skip
    assert code == 2 and "No space left on device" in stderr
    assert list(tmp_path.iterdir()) == []


def test_unexpected_errors_exit_1_and_debug_shows_the_traceback(small, tmp_path, monkeypatch):
    def broken(args):
        raise RuntimeError("something broke")

    monkeypatch.setattr(cli.commands, "run_evaluate", broken)
    code, _, stderr = call("evaluate", small / "small.skdml", small / "small.csv")
    assert code == 1
    assert stderr.splitlines() == [
        "sk-dml: internal error: RuntimeError: something broke "
        "(set SK_DML_DEBUG=1 to see the traceback)"
    ]
    monkeypatch.setenv("SK_DML_DEBUG", "1")
    with pytest.raises(RuntimeError, match="something broke"):
        cli.main(["evaluate", str(small / "small.skdml"), str(small / "small.csv")])
    with pytest.raises(cli.CLIError, match="no such file"):
        cli.main(["fit", str(tmp_path / "nope.csv"), "--target", "y", "-o", str(tmp_path / "m")])


# -------------------------------------------------------------------------------- fuzzing
GARBAGE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "inf", "NA", "True", "1e999", '"', '"1,2"', "p\nq"]),
    st.text(max_size=4),
)
# Values a column of the small model's data would hold.
CLEAN = {
    "a": st.floats(-10, 10).map(lambda v: f"{v:.3g}"),
    "b": st.integers(-3, 3).map(str),
    "c": st.sampled_from(["p", "q", "r", "unseen"]),
    "label": st.sampled_from(["x", "y"]),
    "z": st.text(max_size=3),
}


@st.composite
def malformed_csv(draw) -> bytes:
    """Random bytes, random text, or a table of the small model's columns (some missing,
    some repeated, in any order) whose values and row lengths are then damaged a few times."""
    kind = draw(st.sampled_from(["bytes", "text", "table", "table", "table"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "text":
        return draw(st.text(max_size=200)).encode()
    header = draw(
        st.one_of(
            st.permutations(list(CLEAN)),
            st.lists(st.sampled_from([*CLEAN, ""]), max_size=6),
        )
    )
    n_rows = draw(st.integers(0, 30))
    rows = [[draw(CLEAN.get(name, GARBAGE)) for name in header] for _ in range(n_rows)]
    for _ in range(draw(st.integers(0, 3)) if rows else 0):
        row = rows[draw(st.integers(0, len(rows) - 1))]
        damage = draw(st.sampled_from(["value", "short", "long"]))
        if damage == "value" and row:
            row[draw(st.integers(0, len(row) - 1))] = draw(GARBAGE)
        elif damage == "short" and row:
            row.pop()
        elif damage == "long":
            row.append(draw(GARBAGE))
    text = "\n".join(",".join(row) for row in [header, *rows])
    return text.encode(draw(st.sampled_from(["utf-8", "latin-1"])), errors="replace")


def run_fuzzed(command: list[str], data: bytes, output_name: str) -> None:
    """Run ``command`` on ``data`` written to a CSV file, and check the outcome."""
    with tempfile.TemporaryDirectory() as folder:
        source, out = Path(folder) / "data.csv", Path(folder) / "out"
        source.write_bytes(data)
        out.mkdir()
        code, _, stderr = call(*command, source, "-o", out / output_name)
        assert code in (0, 2), stderr
        assert "Traceback" not in stderr
        assert all(line.startswith("sk-dml: ") for line in stderr.splitlines()), stderr
        written = [p.name for p in out.iterdir()]
        assert written == ([output_name] if code == 0 else []), (code, stderr, written)


FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CORNER_CASES = [
    b"",
    b"a,b,c,label\n",
    b"\xff\xfe\x00\x81garbage",
    b"a,b,c,label\n1,2,p\n1,2,p,x,9,9\n",
    b'a,b,c,label\n1,2,"p,x\n',
]


@FUZZ
@given(data=malformed_csv())
@example(data=CORNER_CASES[0])
@example(data=CORNER_CASES[1])
@example(data=CORNER_CASES[2])
@example(data=CORNER_CASES[3])
@example(data=CORNER_CASES[4])
def test_fuzzed_csv_to_fit(data):
    tiny = ["--epochs", "1", "--hidden-layer-sizes", "4", "--n-components", "2"]
    run_fuzzed(["fit", "--target", "label", *tiny, "--batch-size", "8"], data, "m.skdml")


@FUZZ
@given(data=malformed_csv())
@example(data=CORNER_CASES[0])
@example(data=CORNER_CASES[1])
@example(data=CORNER_CASES[2])
@example(data=CORNER_CASES[3])
@example(data=b"a,b,c\n1,2,p\n0.5,-1,unseen\n")
def test_fuzzed_csv_to_transform(data, small):
    run_fuzzed(["transform", small / "small.skdml"], data, "e.csv")


# Cells of a fuzzed pairs file: rows (row numbers or IDs of small_ids.csv, one or the other in
# a file), labels (of one style in a file), and garbage.
ROW_CELLS = [st.integers(0, 59).map(str), st.integers(0, 60).map(lambda i: f"row-{i:03d}")]
LABEL_STYLES = [("1", "0"), ("1", "-1"), ("true", "false"), ("1.0", "0.0"), ("yes", "no")]
GARBAGE_CELLS = st.one_of(
    st.sampled_from(["", "nan", "-1", "60", "2", "2.5", '"', "0,1"]), st.text(max_size=3)
)


@st.composite
def pairs_csv(draw) -> bytes:
    """A pairs file of (mostly) 3 columns and up to 12 rows: two of rows, one of labels, and
    now and then a cell of garbage."""
    n_columns = draw(st.sampled_from([3, 3, 3, 2, 4]))
    header = ",".join(f"c{i}" for i in range(n_columns))
    rows_named = draw(st.sampled_from(ROW_CELLS))
    labels = st.sampled_from(draw(st.sampled_from(LABEL_STYLES)))
    kinds = [rows_named, rows_named, labels, GARBAGE_CELLS][:n_columns]
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        cells = [draw(kind) for kind in kinds]
        if draw(st.integers(0, 9)) == 0:
            cells[draw(st.integers(0, n_columns - 1))] = draw(GARBAGE_CELLS)
        rows.append(",".join(cells))
    return "\n".join([header, *rows]).encode()


@FUZZ
@given(data=pairs_csv(), by_id=st.booleans())
@example(data=b"l,r,y\n0,1,1\n2,3,0\n", by_id=False)
@example(data=b"l,r,y\nrow-001,row-002,true\nrow-003,row-004,false\n", by_id=True)
@example(data=b"l,r,y\n0,0,1\n2,3,0\n", by_id=False)
@example(data=b"l,r,y\n1,2,yes\n", by_id=False)
def test_fuzzed_pairs_file_to_fit(data, by_id, small):
    table = ["small_ids.csv", "--key", "id"] if by_id else ["small.csv"]
    tiny = ["--epochs", "1", "--hidden-layer-sizes", "4", "--n-components", "2"]
    with tempfile.TemporaryDirectory() as folder:
        pairs, out = Path(folder) / "pairs.csv", Path(folder) / "out"
        pairs.write_bytes(data)
        out.mkdir()
        code, _, stderr = call("fit", small / table[0], *table[1:], "--pairs", pairs, "--exclude",
                               "label", *tiny, "-o", out / "m.skdml")  # fmt: skip
        assert code in (0, 2), stderr
        assert "Traceback" not in stderr
        assert all(line.startswith("sk-dml: ") for line in stderr.splitlines()), stderr
        written = [p.name for p in out.iterdir()]
        assert written == (["m.skdml"] if code == 0 else []), (code, stderr, written)
