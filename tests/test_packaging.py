"""What a new user meets before any Python: make, git, the extras and the documentation build."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sk_dml import cli

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "sphinxext"))

import offline_check  # noqa: E402


def _extras() -> dict:
    """The optional dependencies pyproject.toml declares."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]


# ----------------------------------------------------------------------------- make, git
def _install_commands(tmp_path, *variables) -> str:
    """The commands ``make`` would run to build a fresh virtual environment (dry run)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"
    command = [make, "-n", f"VENV={venv}", *variables, f"{venv}/.installed"]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_make_installs_the_torch_the_user_chooses(tmp_path):
    default = _install_commands(tmp_path)
    assert 'pip install -q  "torch==2.13.0"' in default and "--index-url" not in default
    cpu = _install_commands(tmp_path, "TORCH_INDEX=https://download.pytorch.org/whl/cpu")
    assert '--index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"' in cpu
    other = _install_commands(tmp_path, "TORCH=torch>=2.2")
    assert '"torch>=2.2"' in other and "2.13.0" not in other


def test_the_demo_figure_is_not_left_for_git_to_track():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", "demo_embedding.png"], cwd=ROOT)
    assert ignored.returncode == 0
    assert cli.build_parser().parse_args(["demo"]).out == "."  # where make demo writes it


# --------------------------------------------------------------------------------- extras
def test_parquet_support_is_an_extra_with_a_clear_message(tmp_path, monkeypatch):
    extras = _extras()
    assert any(req.startswith("pyarrow") for req in extras["parquet"])
    assert any("parquet" in req for req in extras["dev"] if req.startswith("sk_dml["))
    # Without pyarrow (or fastparquet), reading and writing Parquet name the extra to install.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "fastparquet", None)
    table = tmp_path / "t.parquet"
    table.write_bytes(b"PAR1")
    with pytest.raises(cli.CLIError, match=r"pip install 'sk_dml\[parquet\]'"):
        cli.read_table(table)
    with pytest.raises(cli.CLIError, match=r"pip install 'sk_dml\[parquet\]'"):
        cli.write_table(pd.DataFrame({"a": [1]}), tmp_path / "out.parquet")


# ------------------------------------------------------------------ documentation offline
def test_remote_assets_are_found_and_links_are_not():
    html = """<html><head>
    <script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>
    <script src="_static/mathjax/tex-chtml.js"></script>
    <link rel="stylesheet" href="//fonts.example.org/font.css">
    <link rel="stylesheet" href="_static/styles/theme.css">
    </head><body>
    <a href="https://github.com/">a link is not an asset</a>
    <img src="HTTP://example.org/logo.png"><img src="_images/figure.png">
    </body></html>"""
    assert offline_check.remote_assets(html) == [
        "<script src='https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js'>",
        "<link href='//fonts.example.org/font.css'>",
        "<img src='HTTP://example.org/logo.png'>",
    ]


def test_the_docs_build_serves_mathjax_itself_and_checks_its_pages():
    conf = (ROOT / "docs" / "conf.py").read_text()
    assert '"sphinx-mathjax-offline"' in conf and '"offline_check"' in conf
    extras = _extras()
    assert any(req.startswith("sphinx-mathjax-offline") for req in extras["docs"])


def test_a_built_documentation_loads_nothing_remote():
    html = ROOT / "docs" / "_build" / "html"
    if not (html / "index.html").exists():
        pytest.skip("the documentation is not built (make docs)")
    assert offline_check.check_build(html) == {}
    assert list(html.rglob("_static/**/tex-*.js")), "no local MathJax in the build"


def test_the_documentation_cites_papers_not_an_unknown_document():
    # "seed" outside random seeds meant a document users never had; the papers replace it.
    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.rst"), *(ROOT / "sk_dml").glob("*.py")]
    unknown = re.compile(r"\bthe seed\b|seed (document|concept)|seed's", re.I)
    assert [str(p.name) for p in pages if unknown.search(p.read_text(encoding="utf-8"))] == []
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for paper in ("Hadsell", "Schroff", "Hermans", "Sohn 2016", "Oh Song"):
        assert paper in readme, paper


# ------------------------------------------------------------- scikit-learn's private names
def test_the_installed_scikit_learn_is_in_the_supported_range():
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement

    declared = next(
        Requirement(r) for r in requires("sk_dml") if Requirement(r).name == "scikit-learn"
    )
    assert declared.specifier.filter([version("scikit-learn")]), (declared, version("sklearn"))
    assert any(spec.operator == "<" for spec in declared.specifier)  # an upper bound


def test_private_scikit_learn_names_are_imported_in_one_module_only():
    """Every ``sklearn`` import of a private module or name sits in sk_dml/_sklearn_compat.py."""
    import ast

    import sk_dml

    offenders = []
    for path in Path(sk_dml.__file__).parent.rglob("*.py"):
        if path.name == "_sklearn_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sklearn"):
                names = [node.module, *(alias.name for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("sklearn")]
            else:
                continue
            if any(part.startswith("_") for name in names for part in name.split(".")):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
