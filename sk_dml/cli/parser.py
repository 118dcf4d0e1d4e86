"""The argument parser; ``fit``'s options and the defaults its help shows come from the estimators.

``fit --loss`` offers :func:`sk_dml.criteria.loss_names`: with ``--target``, the losses of
class labels and of a continuous target; with ``--pairs``, those that learn from labelled pairs
(``loss_names("pairs")``). Every default in ``fit --help`` is read, when the parser is built,
from ``make_embedder(loss).get_params()`` and the loss class's ``get_params()`` for the loss
named by ``--loss`` on the command line (else the default loss: of labelled pairs when
``--pairs`` is on it), so the help cannot drift from the estimators. A parameter whose default
differs between losses says so; ``sk-dml fit --loss NAME --help`` shows that loss's values.
``demo`` trains on class labels, so it compares the losses of ``loss_names("classes")``.

Each subcommand's options are added by its own function in :data:`SUBCOMMANDS`, which imports
what the subcommand needs; only the subcommand on the command line is built, so ``sk-dml
--help`` imports neither torch nor the estimators.
"""

from __future__ import annotations

import argparse

from .. import __version__
from .errors import PROG, CLIError


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are raised as :class:`CLIError`."""

    def error(self, message):
        raise CLIError(f"{message} (see '{self.prog} --help')")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def _assignment(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise ValueError(text)
    return name.strip(), value.strip()


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise ValueError(text)
    return value


# How argparse names the types in its errors.
_positive_int.__name__ = "positive integer"
_positive_float.__name__ = "positive number"
_assignment.__name__ = "NAME=VALUE"
_probability.__name__ = "probability in [0, 1]"

TABLE = "CSV (.csv, .csv.gz) or Parquet (.parquet, .pq) table"
TARGET_HELP = "the class column (default: the one the model was trained on)"

# fit's options that set a parameter of the embedder: flag -> (parameter, argparse keywords,
# help). A help is formatted with the embedder's parameters; the default is added to it.
EMBEDDER_OPTIONS = {
    "--margin": ("margin", {"type": float, "metavar": "M"}, "margin of the loss"),
    "--mining": ("mining", {}, "triplet mining"),  # choices: TRIPLET_MINING, set in _add_fit
    "--temperature": (
        "temperature",
        {"type": _positive_float, "metavar": "T"},
        "softmax temperature of the normalised softmax loss",
    ),
    "--scale": (
        "scale",
        {"type": _positive_float, "metavar": "S"},
        "scale of the logits of CosFace and ArcFace",
    ),
    "--epochs": ("max_epochs", {"type": _positive_int, "metavar": "N"}, "maximum epochs"),
    "--n-components": (
        "n_components",
        {"type": _positive_int, "metavar": "N"},
        "embedding dimension",
    ),
    "--hidden-layer-sizes": (
        "hidden_layer_sizes",
        {"type": _positive_int, "nargs": "+", "metavar": "N"},
        "widths of the hidden layers",
    ),
    "--batch-size": (
        "batch_size",
        {"type": _positive_int, "metavar": "N"},
        "rows per batch (pairs, with --pairs); with class labels a multiple of {samples_per_class}",
    ),
    "--learning-rate": (
        "learning_rate",
        {"type": _positive_float, "metavar": "LR"},
        "AdamW's starting learning rate",
    ),
    "--min-frequency": (
        "min_frequency",
        {"type": _positive_int, "metavar": "N"},
        "a category seen in fewer rows shares one embedding with the categories first seen "
        "after fit",
    ),
}
# Options that set an embedder parameter whose default (None) means "off": no default shown.
UNSET_OPTIONS = {
    "--random-state": (
        "random_state",
        {"type": int, "metavar": "N"},
        "seed, for reproducible fits",
    ),
    "--checkpoint-dir": (
        "checkpoint_dir",
        {"metavar": "DIR"},
        "save the training state there after every epoch; rerunning the same command after a "
        "crash resumes from the last completed epoch",
    ),
}


def _shown(value) -> str:
    """A parameter's value as the help shows it (a tuple as the command line takes it)."""
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value))
    return "none" if value is None else str(value)


def _parameters(loss: str) -> dict:
    """The parameters ``fit --loss LOSS`` can set and their defaults: the loss's and the
    embedder's (``make_embedder`` takes both)."""
    from ..criteria import get_loss_class
    from ..embedders import make_embedder

    embedder = make_embedder(loss).get_params(deep=False)
    embedder.pop("loss", None)  # a MetricEmbedder's loss object: --loss sets it
    return {**get_loss_class(loss)().get_params(), **embedder}


def _default(param: str, loss: str, defaults: dict) -> str:
    """What the help says of ``param``'s default under ``--loss loss``, in parentheses:
    which losses take it (when not all do), and its value, for ``loss`` when it depends on
    the loss (``auto = value`` when the embedder leaves it to the loss)."""
    from ..criteria import get_loss_class

    takers = [name for name, params in defaults.items() if param in params]
    scope = ""
    if len(takers) < len(defaults):
        scope = f"{takers[0]} only; " if len(takers) == 1 else f"{', '.join(takers)}; "
    if param not in defaults[loss]:
        return f"({scope}not taken by --loss {loss})"
    value = defaults[loss][param]
    shown = _shown(value)
    if isinstance(value, str) and value == "auto":
        shown += f" = {_shown(get_loss_class(loss).embedder_defaults[param])}"
    if len({_shown(defaults[name][param]) for name in takers}) == 1:
        return f"({scope}default: {shown})"
    return f"({scope or 'depends on the loss; '}default for {loss}: {shown})"


def chosen_loss(argv: list[str]) -> str:
    """The ``--loss`` named in ``argv`` when it is a known loss, else the default loss (that
    of labelled pairs when ``--pairs`` is in ``argv``): the loss whose defaults ``fit --help``
    shows."""
    from ..criteria import loss_names
    from .commands.fit import DEFAULT_LOSS, DEFAULT_PAIRS_LOSS

    chosen, pairs = None, False
    for i, token in enumerate(argv):
        if token == "--":
            break
        if token == "--loss" and i + 1 < len(argv):
            chosen = argv[i + 1]
        elif token.startswith("--loss="):
            chosen = token.partition("=")[2]
        elif token == "--pairs" or token.startswith("--pairs="):
            pairs = True
    if chosen in loss_names():
        return chosen
    return DEFAULT_PAIRS_LOSS if pairs else DEFAULT_LOSS


def chosen_command(argv: list[str]) -> str:
    """The subcommand named in ``argv`` (the first word that is no option: ``sk-dml`` itself
    has only ``--help`` and ``--version``), ``""`` when there is none."""
    return next((token for token in argv if not token.startswith("-")), "")


def _add_fit(fit: argparse.ArgumentParser, loss: str | None) -> None:
    """``fit``'s options, its help showing ``loss``'s defaults (default: the default loss)."""
    from ..criteria import get_loss_class, loss_names
    from ..miners import TRIPLET_MINING
    from . import commands
    from .columns import add_column_list_option
    from .commands.fit import DEFAULT_LOSS, DEFAULT_PAIRS_LOSS

    loss = DEFAULT_LOSS if loss is None else loss
    defaults = {name: _parameters(name) for name in loss_names()}
    params = defaults[loss]
    fit.description = (
        "Train an embedder on DATA's feature columns: all but the target, the key "
        "and the excluded ones. It learns from the --target column (class labels, or with a "
        f"loss of a continuous target ({', '.join(loss_names('target'))}) numbers), or from "
        "labelled pairs of DATA's rows (--pairs). The embedder standardises numeric columns "
        "and learns an "
        "embedding of each categorical column's values (text and true/false columns, and those "
        "named by --categorical), and of each --text column's character n-grams; cells may be "
        "empty (missing). The model file is an sk_dml "
        "model (sk_dml.load reads it; no pickle). The defaults shown are the estimator's for "
        f"--loss {loss}; 'sk-dml fit --loss NAME --help' shows another loss's."
    )
    fit.add_argument("data", metavar="DATA", help=TABLE)
    learns = fit.add_mutually_exclusive_group(required=True)
    learns.add_argument(
        "--target",
        metavar="COL",
        help="the column to learn from: class labels, or numbers with a loss of a continuous "
        f"target ({', '.join(loss_names('target'))})",
    )
    learns.add_argument(
        "--pairs",
        metavar="PAIRS",
        help="learn from labelled pairs of DATA's rows instead: a CSV or Parquet table with a "
        "header and exactly 3 columns, read by position: the two rows of each pair (values "
        "of the --key column, else 0-based row numbers of DATA) and the label (1 alike, 0 or "
        "-1 not alike; or true/false)",
    )
    add_column_list_option(
        fit,
        "--categorical",
        "columns of numbers to learn as categories, each value a label of its own (a "
        "code, a zip code); text and true/false columns always are; repeatable",
    )
    add_column_list_option(
        fit,
        "--exclude",
        "columns to leave out of the features (IDs, keys, leaks of the target); repeatable",
    )
    add_column_list_option(
        fit,
        "--text",
        "columns of free text to read by character n-grams rather than as categories, so "
        "that similar strings (typos) get similar embeddings: names, streets, phone numbers; "
        "repeatable",
    )
    fit.add_argument(
        "--key",
        metavar="COL",
        help="a column that identifies the rows: left out of the features, written by "
        "'transform' before the embedding so that rows can be joined back, and, with --pairs, "
        "the values by which the pairs name rows (each must be unique)",
    )
    fit.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write")
    fit.add_argument(
        "--loss",
        choices=loss_names(),
        help="the loss to minimise; it decides the defaults said to depend on it. With "
        f"--target, a loss of class labels ({', '.join(loss_names('classes'))}) or of a "
        f"continuous target ({', '.join(loss_names('target'))}); with --pairs, one of labelled "
        f"pairs ({', '.join(loss_names('pairs'))}) (default: {DEFAULT_LOSS}; "
        f"{DEFAULT_PAIRS_LOSS} with --pairs)",
    )
    for flag, (param, keywords, text) in EMBEDDER_OPTIONS.items():
        if param == "mining":
            keywords = {**keywords, "choices": TRIPLET_MINING}
        text = f"{text.format_map(params)} {_default(param, loss, defaults)}"
        fit.add_argument(flag, dest=param, help=text.replace("%", "%%"), **keywords)
    own = get_loss_class(loss)().get_params()
    listed = ", ".join(f"{name}={_shown(value)}" for name, value in own.items())
    listed = f"defaults for {loss}: {listed}" if own else f"{loss} takes none"
    fit.add_argument(
        "--loss-param",
        dest="loss_params",
        type=_assignment,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=f"set a parameter of the loss; repeatable ({listed})".replace("%", "%%"),
    )
    for flag, (param, keywords, text) in UNSET_OPTIONS.items():
        fit.add_argument(flag, dest=param, help=text, **keywords)
    progress = fit.add_mutually_exclusive_group()
    progress.add_argument(
        "--verbose",
        action="store_const",
        const=1,
        dest="verbose",
        help="always show the progress bar of the epochs (without --verbose or --quiet, it "
        "shows when the fit will take more than a few seconds and stderr is a terminal)",
    )
    progress.add_argument(
        "--quiet", action="store_const", const=0, dest="verbose", help="never show it"
    )
    options = {**EMBEDDER_OPTIONS, **UNSET_OPTIONS}
    fit.set_defaults(
        handler=commands.run_fit,
        embedder_options={flag: param for flag, (param, _, _) in options.items()},
    )


def _add_demo(demo: argparse.ArgumentParser, loss: str | None) -> None:
    """``demo``'s options."""
    from ..criteria import loss_names
    from . import commands

    demo.description = (
        "A first look (under 20 s): train a TripletEmbedder for 10 epochs, with a "
        "progress bar per epoch, on two shipped tables given as they are, UCI Image "
        "Segmentation (19 numeric columns) and 3,000 rows of UCI Nursery (8 text columns); "
        "print the 5-NN test accuracy in the learned space next to plain 5-NN on the input "
        "features (numbers standardised, text one-hot), and draw each test set's input "
        "features next to its embedding. With --full, the full comparison (half an hour or "
        "more on a 2-core CPU): an embedder with each loss of class labels "
        f"({', '.join(loss_names('classes'))}; default parameters) on scikit-learn's digits "
        "and the shipped letter data. Stratified 70/30 splits, seed 0, random_state=0."
    )
    demo.add_argument(
        "--full", action="store_true", help="every loss of class labels on digits and letter"
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="5 epochs per fit, 1,500 rows of nursery (with --full: the first 3,000 of letter)",
    )
    demo.add_argument(
        "--out", default=".", metavar="DIR", help="folder of demo_embedding.png (default: .)"
    )
    demo.set_defaults(handler=commands.run_demo)


def _add_transform(transform: argparse.ArgumentParser, loss: str | None) -> None:
    """``transform``'s options."""
    from . import commands

    transform.description = (
        "Embed the rows of DATA; writes columns emb0..emb{d-1}, in DATA's row "
        "order, after the key column when there is one (the model's key, from 'fit --key', or "
        "--key). DATA needs the model's feature columns; other columns (the target, say) are "
        "ignored."
    )
    transform.add_argument("model", metavar="MODEL", help="a model file written by 'fit'")
    transform.add_argument("data", metavar="DATA", help=TABLE)
    transform.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help=f"output {TABLE}, or - for CSV on standard output",
    )
    keys = transform.add_mutually_exclusive_group()
    keys.add_argument(
        "--key",
        metavar="COL",
        help="the column of DATA to write first, to join rows back (instead of the model's key)",
    )
    keys.add_argument(
        "--no-key", action="store_true", help="write the embedding alone, without the key column"
    )
    transform.set_defaults(handler=commands.run_transform)


def _add_evaluate(evaluate: argparse.ArgumentParser, loss: str | None) -> None:
    """``evaluate``'s options."""
    from ..criteria import loss_names
    from . import commands
    from .commands import N_FOLDS, N_NEIGHBORS

    evaluate.description = (
        "Print precision@1, R-precision, MAP@R and recall@10 of DATA in the "
        "learned space, with the model's embedding metric (every row queries all the others, "
        "or with --reference the rows of REF), and the accuracy of a "
        f"{N_NEIGHBORS}-NN classifier under {N_FOLDS}-fold stratified cross-validation of DATA "
        "(with --reference: fitted on REF's rows, predicting DATA's), "
        "on the embeddings and, as a baseline, on the input features (numbers standardised as "
        "the network does, categories one-hot, text as TF-IDF). It warns when DATA holds rows "
        "the model was fitted on (a fingerprint of the fitting table is in the model file "
        "written by 'fit'): scores on them flatter the model. A model of a continuous target "
        f"(--loss {', '.join(loss_names('target'))}) gets the R^2 of {N_NEIGHBORS}-NN regression "
        "of the target instead (leave-one-out in DATA, or DATA's rows from REF's). With "
        "--pairs, any model gets the ROC AUC of labelled pairs of DATA's rows (and a model "
        "fitted on pairs its accuracy at the threshold set at fit); a model fitted on pairs "
        "needs --pairs or a class column (--target)."
    )
    evaluate.add_argument("model", metavar="MODEL", help="a model file written by 'fit'")
    evaluate.add_argument("data", metavar="DATA", help=TABLE)
    scored = evaluate.add_mutually_exclusive_group()
    scored.add_argument(
        "--target",
        metavar="COL",
        help="the class column, or the target column of a model of a continuous target "
        "(default: the one the model was trained on)",
    )
    scored.add_argument(
        "--pairs",
        metavar="PAIRS",
        help="score labelled pairs of DATA's rows instead (a pairs file as 'fit --pairs' takes: "
        "the two rows of each pair, then its label)",
    )
    evaluate.add_argument(
        "--reference",
        metavar="REF",
        help=f"a {TABLE} with the same target column: DATA's rows are the queries and REF's "
        "the rows they retrieve, and the k-NN is fitted on REF (rows of DATA of a class absent "
        "from REF are left out)",
    )
    pair_keys = evaluate.add_mutually_exclusive_group()
    pair_keys.add_argument(
        "--key",
        metavar="COL",
        help="with --pairs: the column of DATA whose values the pairs give (default: the "
        "model's key column, if it has one; else row numbers)",
    )
    pair_keys.add_argument(
        "--no-key",
        action="store_true",
        help="with --pairs: the pairs give 0-based row numbers of DATA, even if the model has a "
        "key column",
    )
    evaluate.set_defaults(handler=commands.run_evaluate)


def _add_plot(plot: argparse.ArgumentParser, loss: str | None) -> None:
    """``plot``'s options."""
    from . import commands

    plot.description = (
        "Draw the 2-D PCA projection of DATA's embedding, coloured by class "
        "(of the L2-normalised embedding when the model's metric is cosine)."
    )
    plot.add_argument("model", metavar="MODEL", help="a model file written by 'fit'")
    plot.add_argument("data", metavar="DATA", help=TABLE)
    plot.add_argument("--target", metavar="COL", help=TARGET_HELP)
    plot.add_argument(
        "-o", "--output", required=True, metavar="FIG", help="image file (.png, .pdf, .svg, ...)"
    )
    plot.set_defaults(handler=commands.run_plot)


def _add_link(link: argparse.ArgumentParser, loss: str | None) -> None:
    """``link``'s options: fit a Linker on two tables (or one) and known links, write matches."""
    from . import commands

    link.description = (
        "Learn a distance between the records of LEFT and RIGHT from LINKS, pairs "
        "of ids of matching records (a LEFT id, then a RIGHT id: the links file's first two "
        "columns), and write each LEFT record's nearest RIGHT records with their distance, "
        "calibrated match probability and rank. Without RIGHT, deduplicate LEFT."
    )
    link.add_argument("left", metavar="LEFT", help=TABLE)
    link.add_argument("right", metavar="RIGHT", nargs="?", help=f"{TABLE} (omit: deduplicate)")
    link.add_argument("--links", required=True, metavar="LINKS", help=f"known links, a {TABLE}")
    _add_matches_options(link)
    link.add_argument(
        "--key", metavar="COL", help="the id column of the tables (default: the row number)"
    )
    link.add_argument("--model", metavar="FILE", help="also save the linker, for 'match'")
    link.add_argument(
        "--epochs", type=_positive_int, default=None, metavar="N", help="most training epochs"
    )
    link.add_argument("--random-state", type=int, default=0, metavar="N", help="seed (default: 0)")
    link.set_defaults(handler=commands.run_link)


def _add_match(match: argparse.ArgumentParser, loss: str | None) -> None:
    """``match``'s options: a saved Linker's matches."""
    from . import commands

    match.description = (
        "Write each LEFT record's nearest RIGHT records (without RIGHT: the other "
        "LEFT records) under a linker saved by 'link --model'."
    )
    match.add_argument("model", metavar="MODEL", help="a model file written by 'link --model'")
    match.add_argument("left", metavar="LEFT", help=TABLE)
    match.add_argument("right", metavar="RIGHT", nargs="?", help=f"{TABLE} (omit: deduplicate)")
    _add_matches_options(match)
    match.set_defaults(handler=commands.run_match)


def _add_matches_options(command: argparse.ArgumentParser) -> None:
    """The options of ``link`` and ``match`` that say which matches to write, and where."""
    command.add_argument("-o", "--output", required=True, metavar="OUT", help=f"matches, a {TABLE}")
    command.add_argument(
        "-k", type=_positive_int, default=None, help="candidates per record (default: 10)"
    )
    command.add_argument(
        "--threshold",
        type=_probability,
        default=None,
        metavar="P",
        help="keep the candidates whose match probability is at least P",
    )


class _Made:
    """Stands for the subparsers to a command module that adds its own subparser
    (``add_parser(commands_)``): hands it the subparser already made, with its description."""

    def __init__(self, subparser: argparse.ArgumentParser):
        self.subparser = subparser

    def add_parser(self, name: str, **keywords) -> argparse.ArgumentParser:
        self.subparser.description = keywords.get("description")
        return self.subparser


def _add_explain(explain: argparse.ArgumentParser, loss: str | None) -> None:
    """``explain``'s options, from its module."""
    from .commands import explain as explain_command

    explain_command.add_parser(_Made(explain))


def _add_label(label: argparse.ArgumentParser, loss: str | None) -> None:
    """``label``'s options, from its module."""
    from .commands import label as label_command

    label_command.add_parser(_Made(label))


# The subcommands: name -> (the line of 'sk-dml --help', the function that adds its options,
# imports what it needs and sets its handler). Only the subcommand being run is built, so that
# 'sk-dml --help' imports neither torch nor the estimators.
SUBCOMMANDS = {
    "demo": ("a first look: learned 5-NN against plain 5-NN on shipped data", _add_demo),
    "fit": ("train an embedder on a table and save it", _add_fit),
    "transform": ("embed a table", _add_transform),
    "evaluate": ("score a table in the learned space", _add_evaluate),
    "plot": ("draw a 2-D PCA scatter of a table's embedding", _add_plot),
    "explain": ("each column's share of the learned distance of pairs of rows", _add_explain),
    "label": (
        "label pairs of records in the terminal, the pairs chosen by active learning",
        _add_label,
    ),
    "link": ("link two tables (or deduplicate one) from known links", _add_link),
    "match": ("match two tables with a saved linker", _add_match),
}


def build_parser(loss: str | None = None, command: str | None = None) -> argparse.ArgumentParser:
    """The ``sk-dml`` argument parser. ``fit --help`` shows the defaults of ``loss`` (default:
    the default loss). Only ``command``'s options are built (all with None); the other
    subcommands get their name and help line."""
    parser = _Parser(
        prog=PROG,
        description="Deep metric learning for tabular data: learn an embedding in which rows "
        "of the same class are near each other.",
        epilog="Bad input (a file, a column, an option) exits with status 2 and one line on "
        "stderr, an internal error with status 1; SK_DML_DEBUG=1 shows the traceback.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands_ = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (text, add_options) in SUBCOMMANDS.items():
        subparser = commands_.add_parser(name, help=text)
        if command is None or command == name:
            add_options(subparser, loss)
    return parser
