"""``sk-dml plot``: the 2-D PCA projection of a table's embedding, coloured by class."""

from __future__ import annotations

from pathlib import Path

from ..columns import class_labels
from ..figures import embedding_figure, figure_format, save_figure
from ..model import Model
from ..tables import check_output, read_table
from .common import target_of


def run_plot(args) -> None:
    """Draw the 2-D PCA projection of DATA's embedding coloured by class."""
    figure_format(args.output)
    check_output(args.output)
    model = Model.load(args.model)
    frame = read_table(args.data)
    target = target_of(args, model)
    labels = class_labels(frame, target, args.data)
    Z = model.embed(frame, args.data)
    metric = model.estimator.embedding_metric_
    title = (
        f"{type(model.estimator).__name__} embedding of {Path(args.data).name}\n"
        f"{len(Z)} rows, {Z.shape[1]}-D, {metric} metric: 2-D PCA"
    )
    save_figure(embedding_figure([("", Z, metric)], labels, target, title), args.output)
    print(f"wrote {args.output}")
