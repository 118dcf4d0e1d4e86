"""Fail the documentation build when a page would fetch something from the network.

After an HTML build, every page is scanned for assets (scripts, style sheets, images, frames,
media, fonts) whose address is remote (``http://``, ``https://`` or ``//``): the pages must
render offline, formulas included. Links a reader follows (``<a href>``) are not assets.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

# The attributes of each tag that make the browser fetch something when the page loads.
_ASSET_ATTRIBUTES = {
    "script": ("src",),
    "link": ("href",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "embed": ("src",),
    "object": ("data",),
}
_REMOTE = ("http://", "https://", "//")


class _AssetFinder(HTMLParser):
    def __init__(self):
        super().__init__()
        self.remote: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in _ASSET_ATTRIBUTES.get(tag, ()) and value:
                if value.strip().lower().startswith(_REMOTE):
                    self.remote.append(f"<{tag} {name}={value.strip()!r}>")


def remote_assets(html: str) -> list[str]:
    """The remote assets ``html`` loads, as ``<tag attribute='address'>`` strings."""
    finder = _AssetFinder()
    finder.feed(html)
    finder.close()
    return finder.remote


def check_build(outdir) -> dict[str, list[str]]:
    """Each HTML page under ``outdir`` that loads remote assets, with those assets."""
    found = {}
    for page in sorted(Path(outdir).rglob("*.html")):
        remote = remote_assets(page.read_text(encoding="utf-8", errors="replace"))
        if remote:
            found[str(page.relative_to(outdir))] = remote
    return found


def _on_build_finished(app, exception):
    from sphinx.util import logging  # here, so that the scanner imports without Sphinx

    if exception is not None or app.builder.format != "html":
        return
    logger = logging.getLogger(__name__)
    for page, remote in check_build(app.outdir).items():
        logger.warning(f"{page} loads remote assets, so it needs the network: {', '.join(remote)}")


def setup(app):
    app.connect("build-finished", _on_build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
