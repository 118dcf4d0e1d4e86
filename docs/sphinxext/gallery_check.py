"""Fail the documentation build when a gallery example draws no figure.

The gallery runs every ``examples/plot_*.py`` once (the test suite does not run them again);
sphinx-gallery reports an example that raises, and this check the one that ends without a
matplotlib figure, which sphinx-gallery would silently show with a placeholder.
"""

from __future__ import annotations

from pathlib import Path


def examples_without_figure(examples: Path, images: Path) -> list[str]:
    """The ``plot_*.py`` scripts of ``examples`` with no first figure in ``images``."""
    return [
        script.name
        for script in sorted(examples.glob("plot_*.py"))
        if not (images / f"sphx_glr_{script.stem}_001.png").exists()
    ]


def _on_build_finished(app, exception):
    from sphinx.errors import ExtensionError  # here, so that tests import this without Sphinx

    if exception is not None or app.builder.format != "html":
        return
    conf = app.config.sphinx_gallery_conf
    if str(conf.get("plot_gallery", True)) == "False":  # a build that runs no example
        return
    images = Path(app.srcdir) / conf["gallery_dirs"] / "images"
    missing = examples_without_figure(Path(conf["examples_dirs"]), images)
    if missing:
        raise ExtensionError(f"gallery examples that drew no figure: {', '.join(missing)}")


def setup(app):
    app.connect("build-finished", _on_build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
