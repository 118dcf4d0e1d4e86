"""The public pieces the command line is built on, and that it uses nothing else of sk_dml.

Each piece says, before a fit or an embedding, what the estimator would say then: the checks
of a table (:func:`sk_dml.tabular.learn_table_schema`, :meth:`TableSchema.check`), of tuples
(:func:`sk_dml.tuple_embedders.check_tuples`) and of parameters
(:func:`sk_dml.embedders.check_params`); :func:`sk_dml.supervision.learns_from` says what an
embedder learns from; the schema's slices say where each kind of column sits in the encoding.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

import sk_dml
from sk_dml import (
    LogRatioEmbedder,
    MetricEmbedder,
    PairEmbedder,
    TripletConstraintEmbedder,
    TripletEmbedder,
)
from sk_dml.criteria import LogRatioLoss, TripletLoss
from sk_dml.embedders import check_params
from sk_dml.supervision import (
    KINDS,
    ClassLabels,
    ContinuousTarget,
    LabelledPairs,
    TripletConstraints,
    learns_from,
)
from sk_dml.tabular import categorical_positions, learn_table_schema
from sk_dml.tuple_embedders import check_tuples

TINY = dict(max_epochs=1, n_components=2, hidden_layer_sizes=(8,), batch_size=16, random_state=0)
CLI = Path(sk_dml.__file__).parent / "cli"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 64
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
            "c": rng.choice(["p", "q", "r"], n),
            "code": rng.integers(0, 4, n),
            "name": rng.choice(["anna smith", "ann smyth", "bob jones", None], n),
            "flag": rng.random(n) < 0.5,
        }
    )


@pytest.fixture(scope="module")
def fitted(table):
    params = dict(
        categorical_features=["c", "code", "flag"],
        text_features=["name"],
        min_frequency=2,
        category_embedding_dim={"c": 3},
    )
    y = np.arange(len(table)) % 4
    return TripletEmbedder(**TINY, **params).fit(table, y)


def test_learn_table_schema_is_the_schema_fit_learns(fitted, table):
    assert learn_table_schema(table, fitted.get_params()) == fitted.schema_
    default = TripletEmbedder()
    assert learn_table_schema(table, default.get_params()).categorical == [2, 4, 5]  # by dtype
    bad = table.assign(a=np.where(np.arange(len(table)) == 3, np.inf, table.a))
    with pytest.raises(ValueError, match="infinity in column 'a'") as before:
        learn_table_schema(bad, default.get_params())
    with pytest.raises(ValueError) as at_fit:
        TripletEmbedder(**TINY).fit(bad, np.arange(len(bad)) % 4)
    assert str(before.value) == str(at_fit.value)


def test_the_schema_checks_and_encodes_a_table_as_transform_does(fitted, table):
    schema = fitted.schema_
    shuffled = table[table.columns[::-1]]  # columns are matched by name
    schema.check(shuffled)
    encoded = schema.encode_table(shuffled)
    assert encoded.shape == (len(table), schema.n_encoded)
    with torch.no_grad():
        Z = fitted.module_.eval()(torch.as_tensor(encoded)).numpy()
    np.testing.assert_allclose(Z, fitted.transform(table), rtol=1e-6, atol=1e-6)
    unseen = table.assign(c="never seen")  # any level: the "rare or unseen" code
    schema.check(unseen)
    for bad in (
        table.assign(a=np.inf),
        table.assign(a="text"),
        table.drop(columns="b"),
        table.assign(extra=1.0),
    ):
        with pytest.raises(ValueError) as checked:
            schema.check(bad)
        with pytest.raises(ValueError) as encoded:
            schema.encode_table(bad)
        with pytest.raises(ValueError) as transformed:
            fitted.transform(bad)
        assert str(checked.value) == str(encoded.value) == str(transformed.value)


def test_the_slices_of_the_encoding(fitted, table):
    schema = fitted.schema_
    encoded = schema.encode_table(table)
    slices = [schema.numeric_slice, schema.categorical_slice, *schema.text_slices]
    assert [s.start for s in slices[1:]] == [s.stop for s in slices[:-1]]
    assert slices[0].start == 0 and slices[-1].stop == schema.n_encoded
    assert [s.stop - s.start for s in schema.text_slices] == schema.max_ngrams
    numbers = encoded[:, schema.numeric_slice]
    np.testing.assert_array_equal(numbers, table[["a", "b"]].to_numpy(np.float32))
    codes = encoded[:, schema.categorical_slice]
    assert codes.shape[1] == len(schema.categorical) and (codes == np.round(codes)).all()
    assert (codes < np.asarray(schema.table_sizes)).all()
    (ids,) = [encoded[:, s] for s in schema.text_slices]
    missing = table.name.isna().to_numpy()
    assert (ids[missing] == 0).all() and (ids[~missing, 0] > 0).all()


def test_categorical_positions_follow_learn_schema(table):
    columns, names = [table[c] for c in table.columns], list(table.columns)
    assert categorical_positions(columns, names) == [2, 4, 5]  # c, name, flag: from the dtypes
    assert categorical_positions(columns, names, exclude={4}) == [2, 5]  # name read as text
    assert categorical_positions(columns, names, ["code", "c"]) == [2, 3]
    assert categorical_positions(columns, names, None) == []
    with pytest.raises(ValueError, match="'nope', which is not a column"):
        categorical_positions(columns, names, ["nope"])


def test_learns_from_names_the_kind_of_supervision():
    cases = {
        TripletEmbedder(): ClassLabels,
        MetricEmbedder(): ClassLabels,
        MetricEmbedder(loss=LogRatioLoss()): ContinuousTarget,
        LogRatioEmbedder(): ContinuousTarget,
        PairEmbedder(): LabelledPairs,
        PairEmbedder(loss=TripletLoss()): LabelledPairs,
        TripletConstraintEmbedder(): TripletConstraints,
    }
    for estimator, kind in cases.items():
        assert learns_from(estimator) is kind is KINDS[kind.kind]
    assert {kind.words for kind in KINDS.values()} >= {"class labels", "a continuous target"}


def test_check_tuples_refuses_what_fit_refuses(table):
    pairs = np.array([[0, 1], [2, 3], [4, 4]])
    embedder = PairEmbedder(preprocessor=table, **TINY)
    np.testing.assert_array_equal(check_tuples(embedder, pairs[:2]), pairs[:2])
    assert check_tuples(embedder, pairs[:2]).dtype == np.int64
    for bad in (pairs, np.array([[0, len(table)]]), np.array([[0, 1, 2]])):
        with pytest.raises(ValueError) as checked:
            check_tuples(embedder, bad)
        with pytest.raises(ValueError) as at_fit:
            PairEmbedder(preprocessor=table, **TINY).fit(bad, np.ones(len(bad)))
        assert str(checked.value) == str(at_fit.value)
    triplets = TripletConstraintEmbedder(preprocessor=table)
    assert check_tuples(triplets, np.array([[0, 1, 2]])).shape == (1, 3)


def test_check_params_refuses_what_fit_refuses(table):
    pairs = (np.array([[0, 1], [2, 3]]), [1, 0])
    for estimator, data in [
        (TripletEmbedder(margin=-1.0), (table, np.arange(len(table)) % 4)),
        (TripletEmbedder(batch_size=0), (table, np.arange(len(table)) % 4)),
        (MetricEmbedder(loss=TripletLoss(margin=-1.0)), (table, np.arange(len(table)) % 4)),
        (PairEmbedder(table, loss=TripletLoss(margin=-1.0)), pairs),
    ]:
        with pytest.raises(InvalidParameterError) as checked:
            check_params(estimator)
        with pytest.raises(InvalidParameterError) as at_fit:
            estimator.fit(*data)
        assert str(checked.value) == str(at_fit.value)
    for estimator in (TripletEmbedder(), MetricEmbedder(loss=LogRatioLoss()), PairEmbedder()):
        check_params(estimator)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_uses(source: str, package: tuple[str, ...], name: str) -> list[str]:
    """The private names of sk_dml that the module ``name`` of ``package`` (in sk_dml.cli),
    whose text is ``source``, imports or reaches by attribute: a module or name with a leading
    underscore outside sk_dml.cli, or ``obj._name`` on anything but ``self`` and ``cls``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            module = node.module.split(".") if node.module else []
            if node.level:
                module = [*package[: len(package) - node.level + 1], *module]
            if module[0] != "sk_dml":
                continue
            private = [part for part in module if _is_private(part)]
            if module[:2] != ["sk_dml", "cli"]:
                private += [alias.name for alias in node.names if _is_private(alias.name)]
            found += [f"{name}:{node.lineno}: {'.'.join(module)} {p}" for p in private]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "sk_dml" and any(map(_is_private, parts)):
                    found.append(f"{name}:{node.lineno}: {alias.name}")
        elif isinstance(node, ast.Attribute):
            attr = node.attr
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if _is_private(attr) and not own:
                found.append(f"{name}:{node.lineno}: .{attr}")
    return found


def test_the_command_line_uses_only_public_api():
    modules = sorted(CLI.rglob("*.py"))
    assert CLI / "commands" / "fit.py" in modules
    uses, unknown = [], []
    for path in modules:
        package = path.relative_to(CLI.parent.parent).parent.parts  # ("sk_dml", "cli", ...)
        uses += _private_uses(path.read_text(), package, str(path.relative_to(CLI)))
        for node in ast.walk(ast.parse(path.read_text())):  # a relative import lands somewhere
            if isinstance(node, ast.ImportFrom) and node.level:
                module = ".".join(
                    [*package[: len(package) - node.level + 1], *filter(None, [node.module])]
                )
                if importlib.util.find_spec(module) is None:
                    unknown.append(f"{path.name}:{node.lineno}: {module}")
    assert uses == [] and unknown == []


def test_the_scan_finds_private_uses():
    source = (
        "from ..._inference import embed\n"
        "from ...tabular import _categorical_positions\n"
        "from sk_dml._embedder import BaseEmbedder\n"
        "import sk_dml._compat\n"
        "from ..errors import CLIError\n"
        "from ..pairs import _KeyLookup\n"  # the command line's own
        "from sklearn.utils import _param_validation\n"  # not sk_dml's
        "estimator._encode(X)\n"
        "self._helper()\n"
        "column_list.__name__\n"
        "from ... import __version__\n"
    )
    uses = _private_uses(source, ("sk_dml", "cli", "commands"), "probe.py")
    assert [use.split(":")[1] for use in uses] == ["1", "2", "3", "4", "8"], uses
