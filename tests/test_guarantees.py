"""The documentation against the code: every test docs/guarantees.rst cites exists (a promise
never points at nothing), and docs/architecture.rst names every module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sk_dml import _objectives, criteria, losses

ROOT = Path(__file__).resolve().parents[1]
GUARANTEES = ROOT / "docs" / "guarantees.rst"
# ``test_x.py::test_name`` names a file and a test; ``::test_name`` a test of the last file.
CITATION = re.compile(r"``(test_\w+\.py)?::(\w+)``")


def cited_tests(text: str) -> list[tuple[str, str]]:
    cited, current = [], None
    for match in CITATION.finditer(text):
        current = match.group(1) or current
        cited.append((current, match.group(2)))
    return cited


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def test_every_test_the_guarantees_page_cites_exists():
    cited = cited_tests(GUARANTEES.read_text())
    assert len(cited) > 50  # the page cites tests, and the pattern finds them
    missing = [
        f"{file}::{name}"
        for file, name in cited
        if not (ROOT / "tests" / file).exists() or name not in functions_in(ROOT / "tests" / file)
    ]
    assert missing == []


def test_the_citation_pattern_reads_continuation_lines():
    text = "``test_a.py::test_one``,\n       ``::test_two``, ``test_b.py::test_three``"
    assert cited_tests(text) == [
        ("test_a.py", "test_one"),
        ("test_a.py", "test_two"),
        ("test_b.py", "test_three"),
    ]


def test_the_architecture_page_names_every_module():
    """docs/architecture.rst draws the package's modules: none is missing from the picture."""
    package = ROOT / "sk_dml"
    page = (ROOT / "docs" / "architecture.rst").read_text()
    modules = [p.name for p in package.glob("*.py")] + [
        f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()
    ]
    modules += [p.name for p in (package / "cli").glob("*.py") if p.name != "__init__.py"]
    assert [name for name in modules if name not in page] == []


def test_the_api_page_lists_every_loss_and_no_internal_wrapper():
    """docs/api.rst lists every loss object and loss function, and none of the modules that
    wrap a loss for the trainer (``sk_dml._objectives``), which are not public API."""
    page = (ROOT / "docs" / "api.rst").read_text()
    listed = set(re.findall(r"^   (\w+)$", page, flags=re.MULTILINE))
    loss_classes = {criteria.get_loss_class(name).__name__ for name in criteria.loss_names()}
    assert loss_classes <= set(criteria.__all__)
    assert [name for name in (*criteria.__all__, *losses.__all__) if name not in listed] == []
    wrappers = {
        name
        for name, value in vars(_objectives).items()
        if isinstance(value, type) and value.__module__ == _objectives.__name__
    }
    assert wrappers and not wrappers & listed
    assert not wrappers & set(criteria.__all__)
