"""Figures: 2-D PCA scatters of embeddings, coloured by class, written atomically."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from .errors import CLIError
from .tables import atomic_output


def figure_format(path) -> str:
    """The image format matplotlib writes for ``path``'s extension."""
    from matplotlib.backend_bases import FigureCanvasBase

    fmt = Path(path).suffix.lower().lstrip(".")
    supported = FigureCanvasBase.get_supported_filetypes()
    if fmt not in supported:
        raise CLIError(f"{path}: unknown image type; use one of .{', .'.join(sorted(supported))}")
    return fmt


def save_figure(fig, path) -> None:
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format=figure_format(path), dpi=120)


def _pca_2d(Z: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The 2-D PCA projection of the embeddings ``Z`` and the variance ratio of both axes.

    With the cosine metric only directions count, so the rows are L2-normalised first.
    """
    if Z.shape[1] < 2:
        raise CLIError("the embedding has a single dimension; a 2-D plot needs 2 or more")
    if metric == "cosine":
        Z = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), np.finfo(Z.dtype).tiny)
    pca = PCA(n_components=2, random_state=0)
    return pca.fit_transform(Z), pca.explained_variance_ratio_


def _class_colours(n_classes: int) -> np.ndarray:
    """One RGBA colour per class: qualitative up to 40 classes (those get a legend), else a
    spectrum (those get a colour bar)."""
    from matplotlib import colormaps

    if n_classes <= 10:
        return colormaps["tab10"](np.arange(n_classes))
    if n_classes <= 40:
        qualitative = np.vstack(
            [colormaps["tab20"](np.arange(20)), colormaps["tab20b"](np.arange(20))]
        )
        return qualitative[:n_classes]
    return colormaps["turbo"](np.linspace(0.05, 0.95, n_classes))


def _scatter(ax, points: np.ndarray, codes: np.ndarray, colours: np.ndarray, ratio) -> None:
    """Points coloured by class code, drawn in random order so that no class hides another."""
    order = np.random.default_rng(0).permutation(len(points))
    ax.scatter(
        points[order, 0],
        points[order, 1],
        c=colours[codes[order]],
        s=float(np.clip(6000 / len(points), 3, 40)),
        alpha=0.8,
        linewidths=0,
        rasterized=len(points) > 5000,
    )
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ratio[1]:.0%} of variance)")
    ax.tick_params(labelsize="small")
    ax.grid(alpha=0.3)


def _class_key(fig, target, classes, colours) -> None:
    """A legend of the classes right of the axes (up to 40 classes), else a colour bar."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.lines import Line2D

    n = len(classes)
    if n <= 40:
        handles = [
            Line2D([], [], marker="o", linestyle="", color=colour, label=str(label))
            for label, colour in zip(classes, colours, strict=True)
        ]
        fig.legend(
            handles=handles,
            title=str(target),
            loc="outside right center",
            ncols=1 + (n - 1) // 20,
            frameon=False,
        )
        return
    mappable = ScalarMappable(BoundaryNorm(np.arange(n + 1) - 0.5, n), ListedColormap(colours))
    ticks = np.unique(np.linspace(0, n - 1, 10).round().astype(int))
    bar = fig.colorbar(mappable, ax=fig.get_axes(), ticks=ticks, label=str(target))
    bar.ax.set_yticklabels([str(classes[i]) for i in ticks])


def embedding_figure(panels, labels, target, title, n_cols: int = 1):
    """A figure with one 2-D PCA scatter per ``(panel title, embeddings, metric)``, coloured
    by class."""
    from matplotlib.figure import Figure

    n_rows = math.ceil(len(panels) / n_cols)
    fig = Figure(figsize=(1.5 + 4.6 * n_cols, 0.6 + 4.2 * n_rows), layout="constrained")
    draw_panels(fig, panels, labels, target, title, n_cols)
    return fig


def draw_panels(fig, panels, labels, target, title, n_cols: int = 1) -> None:
    """Draw :func:`embedding_figure`'s panels into ``fig``, a figure or a subfigure."""
    classes, codes = np.unique(labels, return_inverse=True)
    colours = _class_colours(len(classes))
    n_rows = math.ceil(len(panels) / n_cols)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axes[len(panels) :]:  # a last row that is not full
        ax.set_axis_off()
    for ax, (panel_title, Z, metric) in zip(axes, panels, strict=False):
        points, ratio = _pca_2d(Z, metric)
        _scatter(ax, points, codes, colours, ratio)
        ax.set_title(panel_title, fontsize="medium")
    _class_key(fig, target, classes, colours)
    fig.suptitle(title)
