"""Sphinx configuration of the sk_dml documentation.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    python -m sphinx -W -b html docs docs/_build/html

The example gallery runs every ``examples/plot_*.py`` in quick mode (``SK_DML_QUICK=1``, set
below unless the environment already sets it); ``SK_DML_QUICK=0`` builds it with full training.
The build reaches no network: no intersphinx inventories, no version switcher, no analytics;
and neither do its pages: MathJax is copied into the build (``sphinx-mathjax-offline``) and
``sphinxext/offline_check.py`` fails the build when a page loads a remote asset.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "sphinxext"))

# Before sk_dml or any example is imported: the gallery trains in quick mode by default.
os.environ.setdefault("SK_DML_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import sk_dml  # noqa: E402

# -- project -------------------------------------------------------------------------------
project = "sk_dml"
author = "the sk_dml developers"
copyright = "the sk_dml developers, BSD-3-Clause"  # noqa: A001
version = release = sk_dml.__version__

# -- extensions ----------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax from the build itself, not from a CDN
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "offline_check",  # fails the build if a page would load a remote asset
    "gallery_check",  # fails the build if a gallery example draws no figure
]
try:  # renders the benchmark results (markdown) as pages; without it they show as source
    import myst_parser  # noqa: F401
except ImportError:
    HAVE_MYST = False
else:
    HAVE_MYST = True
    extensions.append("myst_parser")
    source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
    # The markdown pages are benchmark reports written by scripts, not by hand: a link to a file
    # outside the documentation or a skipped heading level there must not fail the build.
    suppress_warnings = ["myst.xref_missing", "myst.header"]

templates_path = ["_templates"]
exclude_patterns = ["_build", "sphinxext", "Thumbs.db", ".DS_Store"]
root_doc = "index"
default_role = "literal"

# -- autodoc, autosummary, numpydoc --------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc's Parameters sections say it better
numpydoc_show_class_members = False  # the autosummary templates list the members
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- sphinx-gallery ------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "gallery_order.ExampleOrder",
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_memory": False,
    "backreferences_dir": None,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "default_thumb_file": None,
    "min_reported_time": 1,
    # Its computation-times pages load jQuery and DataTables from CDNs: the docs must work offline.
    "write_computation_times": False,
}

# -- HTML: pydata-sphinx-theme, configured to fetch nothing ---------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sk_dml {release}"
html_theme_options = {
    "navbar_end": ["theme-switcher"],  # no version switcher (it would download a JSON file)
    "show_version_warning_banner": False,
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
# The gallery's pages have no navigation sidebar, so that their code (100 columns) has room.
html_sidebars = {"index": [], "getting_started": [], "guarantees": [], "auto_examples/*": []}
html_show_sourcelink = False
html_last_updated_fmt = None


# -- benchmark results ---------------------------------------------------------------------
# benchmarks/ writes its results (markdown tables, PNG figures, CSV data) to benchmarks/results,
# and new ones appear as the benchmarks are run. At every build they are copied to
# docs/benchmark_results (ignored by git) and listed in benchmark_results/_list.rst.inc, which
# benchmarks.rst includes: each markdown file becomes a page, each PNG is shown, each CSV can be
# downloaded. Whatever is missing is simply not listed.
RESULTS_SRC = ROOT / "benchmarks" / "results"
RESULTS_DOCS = DOCS / "benchmark_results"


def _markdown_title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem


def _copy_benchmark_results() -> None:
    shutil.rmtree(RESULTS_DOCS, ignore_errors=True)
    RESULTS_DOCS.mkdir()
    found = sorted(RESULTS_SRC.iterdir()) if RESULTS_SRC.is_dir() else []
    found = [p for p in found if p.is_file() and p.suffix in (".md", ".png", ".csv")]
    for path in found:
        shutil.copy2(path, RESULTS_DOCS / path.name)
    # A README first, then the reports by name.
    markdown = sorted(
        (p for p in found if p.suffix == ".md"), key=lambda p: (p.stem != "README", p.name)
    )
    images = [p for p in found if p.suffix == ".png"]
    tables = [p for p in found if p.suffix == ".csv"]

    lines = []
    if not found:
        lines += ["No results yet: ``benchmarks/results`` is empty or missing at build time.", ""]
    if markdown:
        lines += ["Reports", "-------", "", ".. toctree::", "   :maxdepth: 1", ""]
        for path in markdown:
            if not HAVE_MYST:  # without myst-parser, a small rst page shows the markdown source
                title = _markdown_title(path)
                (RESULTS_DOCS / f"{path.stem}.rst").write_text(
                    f"{title}\n{'=' * len(title)}\n\n"
                    f".. literalinclude:: {path.name}\n   :language: markdown\n",
                    encoding="utf-8",
                )
            lines.append(f"   benchmark_results/{path.stem}")
        lines.append("")
    if images:
        lines += ["Figures", "-------", ""]
        for path in images:
            lines += [
                f"``{path.name}``",
                "",
                f".. image:: benchmark_results/{path.name}",
                f"   :alt: {path.stem}",
                "   :width: 100%",
                "",
            ]
    if tables:
        lines += ["Raw data", "--------", ""]
        lines += [f"- :download:`{p.name} <benchmark_results/{p.name}>`" for p in tables]
        lines.append("")
    (RESULTS_DOCS / "_list.rst.inc").write_text("\n".join(lines) + "\n", encoding="utf-8")


_copy_benchmark_results()
