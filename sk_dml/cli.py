"""The ``sk-dml`` command (also ``python -m sk_dml``).

Subcommands
-----------
demo
    Train every embedder on built-in data (digits, letter); compare 5-NN accuracies.
fit
    Train an embedder on a CSV or Parquet table and save it with its preprocessing.
transform
    Embed a table with a saved model.
evaluate
    Retrieval scores and cross-validated 5-NN accuracy of a table in the learned space
    (``--reference``: its rows query the rows of another table).
plot
    2-D PCA scatter of a table's embedding, coloured by class.

``fit`` standardises numeric columns and one-hot encodes categorical ones (text, bool,
category) with a scikit-learn ``ColumnTransformer``. The fitted transformer travels in the
model file as plain JSON data (no pickle) and is rebuilt when the model is used.

Bad input (a missing or unreadable file, a missing column, a value that is not a number, ...)
is reported as one line ``sk-dml: error: ...`` on stderr with exit status 2, and no output file
is written. An unexpected failure exits with status 1. With ``SK_DML_DEBUG=1`` in the
environment every error shows its full traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from tqdm import tqdm

from . import __version__
from .criteria import get_loss_class, loss_names
from .embedders import make_embedder
from .metrics import retrieval_scores
from .miners import TRIPLET_MINING
from .persistence import load, read_metadata, save

__all__ = [
    "CLIError",
    "Model",
    "build_parser",
    "main",
    "preprocessing_from_dict",
    "preprocessing_to_dict",
    "read_table",
    "write_table",
]

PROG = "sk-dml"
# File name endings of the tables read and written, and their format.
TABLE_FORMATS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
# The category that stands for a missing value in a categorical column.
MISSING = "<missing>"
PREPROCESSING_FORMAT = "sk_dml.cli.preprocessing"
PREPROCESSING_VERSION = 1
# Neighbours of the k-NN accuracies and folds of evaluate's cross-validation.
N_NEIGHBORS = 5
N_FOLDS = 5
# The k of evaluate's recall@k.
RECALL_AT = 10
# Errors that mean "bad input" (exit status 2). ValueError covers pandas' parser errors,
# UnicodeDecodeError, scikit-learn's parameter errors and pyarrow's ArrowInvalid; OSError
# covers missing files, gzip's BadGzipFile and pyarrow's IO errors.
INPUT_ERRORS = (ValueError, KeyError, OSError, EOFError, zlib.error)


class CLIError(Exception):
    """A problem with the command's input, reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are raised as :class:`CLIError`."""

    def error(self, message):
        raise CLIError(f"{message} (see '{self.prog} --help')")


def _one_line(text) -> str:
    """``text`` with all runs of whitespace, newlines included, as single spaces."""
    return " ".join(str(text).split())


def _names(columns, limit: int = 10) -> str:
    """A short readable list of column names."""
    shown = ", ".join(repr(c) for c in columns[:limit])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > limit else "")


# ------------------------------------------------------------------------------- files
_NEEDS_PYARROW = "Parquet needs pyarrow: pip install 'sk_dml[parquet]'"


def _table_format(path) -> str:
    """``"csv"`` or ``"parquet"``, from the file name's ending."""
    name = Path(path).name.lower()
    for ending, fmt in TABLE_FORMATS.items():
        if name.endswith(ending):
            return fmt
    raise CLIError(f"{path}: unknown file type; use one of {', '.join(TABLE_FORMATS)}")


def read_table(path) -> pd.DataFrame:
    """Read a CSV (optionally gzipped) or Parquet table with at least one row.

    Raises
    ------
    CLIError
        When the file is missing, of an unknown type, unreadable or empty.
    """
    fmt = _table_format(path)
    if not Path(path).is_file():
        raise CLIError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise CLIError(f"{path}: the file is empty") from None
    except ImportError as error:
        raise CLIError(f"{path}: {_NEEDS_PYARROW} ({_one_line(error)})") from None
    except (*INPUT_ERRORS, TypeError, NotImplementedError) as error:
        raise CLIError(f"{path}: cannot read it as {fmt.upper()} ({_one_line(error)})") from None
    if len(frame) == 0:
        raise CLIError(f"{path}: the table has no rows")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _check_output(path) -> Path:
    """Refuse an output path in a missing folder, or that is a folder, before any work."""
    path = Path(path)
    if not path.parent.is_dir():
        raise CLIError(f"{path}: the folder {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise CLIError(f"{path}: is a folder, not a file name")
    return path


@contextlib.contextmanager
def _atomic_output(path):
    """Yield a temporary path beside ``path``, moved onto ``path`` only if the block succeeds."""
    path = _check_output(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_table(frame: pd.DataFrame, path) -> None:
    """Write ``frame`` (without its index) as CSV, gzipped CSV or Parquet, atomically."""
    fmt = _table_format(path)
    with _atomic_output(path) as tmp:
        if fmt == "csv":
            gzipped = str(path).lower().endswith(".gz")
            frame.to_csv(tmp, index=False, compression="gzip" if gzipped else None)
        else:
            try:
                frame.to_parquet(tmp, index=False)
            except ImportError as error:
                raise CLIError(f"{path}: {_NEEDS_PYARROW} ({_one_line(error)})") from None


def _figure_format(path) -> str:
    """The image format matplotlib writes for ``path``'s extension."""
    from matplotlib.backend_bases import FigureCanvasBase

    fmt = Path(path).suffix.lower().lstrip(".")
    supported = FigureCanvasBase.get_supported_filetypes()
    if fmt not in supported:
        raise CLIError(f"{path}: unknown image type; use one of .{', .'.join(sorted(supported))}")
    return fmt


def _save_figure(fig, path) -> None:
    with _atomic_output(path) as tmp:
        fig.savefig(tmp, format=_figure_format(path), dpi=120)


# ----------------------------------------------------------------------- preprocessing
def _split_columns(frame: pd.DataFrame, source) -> tuple[list[str], list[str]]:
    """Names of the numeric and of the categorical columns of ``frame``."""
    numeric, categorical = [], []
    for name, column in frame.items():
        dtype = column.dtype
        if (
            pd.api.types.is_bool_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype)
            or pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype)
        ):
            categorical.append(name)
        elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
            numeric.append(name)
        else:
            raise CLIError(
                f"{source}: column {name!r} has type {dtype}; sk-dml encodes numeric and "
                "categorical (text, bool, category) columns only"
            )
    return numeric, categorical


def _as_text(column: pd.Series) -> np.ndarray:
    """Categorical values as strings, missing values as :data:`MISSING`: the encoder's input."""
    values = column.astype(object)
    return np.where(values.isna(), MISSING, values.map(str)).astype(object)


def _prepare(frame: pd.DataFrame, columns: list[str], numeric: list[str], source) -> pd.DataFrame:
    """The input of the preprocessing: ``columns`` of ``frame`` in that order, the ``numeric``
    ones as finite float64 and the others as strings. Other columns of ``frame`` are ignored.
    """
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise CLIError(f"{source}: missing column(s) {_names(absent)} that the model needs")
    numeric = set(numeric)
    prepared = {}
    for name in columns:
        column = frame[name]
        if name not in numeric:
            prepared[name] = _as_text(column)
            continue
        values = pd.to_numeric(column, errors="coerce").astype(np.float64)
        garbage = values.isna() & column.notna()
        if garbage.any():
            raise CLIError(
                f"{source}: column {name!r} must be numeric but holds {column[garbage].iloc[0]!r}"
            )
        if values.isna().any():
            raise CLIError(
                f"{source}: column {name!r} has {int(values.isna().sum())} missing value(s); "
                "fill or drop them first"
            )
        if not np.isfinite(values).all():
            raise CLIError(f"{source}: column {name!r} holds infinite values")
        prepared[name] = values
    return pd.DataFrame(prepared, index=frame.index)


def _preprocess(transformer: ColumnTransformer, prepared: pd.DataFrame, source) -> np.ndarray:
    """``transformer.transform(prepared)``, refusing values that overflow float32 (the
    network's precision): numbers too large to standardise, or far outside the training range.
    """
    with np.errstate(all="ignore"):
        X = transformer.transform(prepared)
    overflow = ~(np.abs(X) <= np.finfo(np.float32).max)  # also true for inf and NaN
    if overflow.any():
        names = transformer.get_feature_names_out()[overflow.any(axis=0)]
        columns = sorted({name.split("__", 1)[1] for name in names})
        raise CLIError(
            f"{source}: column(s) {_names(columns)} hold numbers too large for float32 once "
            "standardised"
        )
    return X


def _column_transformer(numeric, categorical, categories="auto") -> ColumnTransformer:
    """StandardScaler on ``numeric``, OneHotEncoder on ``categorical``; dense output."""
    parts = []
    if numeric:
        parts.append(("num", StandardScaler(), list(numeric)))
    if categorical:
        encoder = OneHotEncoder(categories=categories, handle_unknown="ignore", sparse_output=False)
        parts.append(("cat", encoder, list(categorical)))
    return ColumnTransformer(parts, sparse_threshold=0.0)


def preprocessing_to_dict(transformer: ColumnTransformer) -> dict:
    """The fitted ``ColumnTransformer`` made by ``fit`` as JSON-serialisable data.

    Returns
    -------
    dict
        ``columns`` (the input columns in order), ``numeric`` (columns, ``mean_``, ``var_``,
        ``scale_``, ``n_samples_seen_`` of the scaler) and ``categorical`` (columns and the
        encoder's ``categories_``). :func:`preprocessing_from_dict` rebuilds the transformer.
    """
    fitted = transformer.named_transformers_
    numeric = {"columns": [], "mean": [], "var": [], "scale": [], "n_samples_seen": 0}
    if "num" in fitted:
        scaler = fitted["num"]
        numeric = {
            "columns": [str(c) for c in scaler.feature_names_in_],
            "mean": scaler.mean_.tolist(),
            "var": scaler.var_.tolist(),
            "scale": scaler.scale_.tolist(),
            "n_samples_seen": int(scaler.n_samples_seen_),
        }
    categorical = {"columns": [], "categories": []}
    if "cat" in fitted:
        encoder = fitted["cat"]
        categorical = {
            "columns": [str(c) for c in encoder.feature_names_in_],
            "categories": [[str(v) for v in cats] for cats in encoder.categories_],
        }
    return {
        "format": PREPROCESSING_FORMAT,
        "version": PREPROCESSING_VERSION,
        "columns": [str(c) for c in transformer.feature_names_in_],
        "numeric": numeric,
        "categorical": categorical,
    }


def preprocessing_from_dict(data: dict) -> ColumnTransformer:
    """Rebuild the fitted ``ColumnTransformer`` described by :func:`preprocessing_to_dict`.

    The encoder is fitted with its stored categories, and the scaler gets its stored
    statistics: the result transforms exactly like the original.
    """
    if data.get("format") != PREPROCESSING_FORMAT or data.get("version") != PREPROCESSING_VERSION:
        raise ValueError("unknown preprocessing format")
    numeric, categorical = data["numeric"], data["categorical"]
    categories = [np.asarray(cats, dtype=object) for cats in categorical["categories"]]
    transformer = _column_transformer(numeric["columns"], categorical["columns"], categories)
    one_row = {name: [0.0] for name in numeric["columns"]}
    one_row.update(
        {name: [cats[0]] for name, cats in zip(categorical["columns"], categories, strict=True)}
    )
    transformer.fit(pd.DataFrame(one_row)[data["columns"]])
    if numeric["columns"]:
        scaler = transformer.named_transformers_["num"]
        scaler.mean_ = np.asarray(numeric["mean"], dtype=np.float64)
        scaler.var_ = np.asarray(numeric["var"], dtype=np.float64)
        scaler.scale_ = np.asarray(numeric["scale"], dtype=np.float64)
        scaler.n_samples_seen_ = int(numeric["n_samples_seen"])
    return transformer


# ------------------------------------------------------------------------------ models
@dataclass
class Model:
    """A model file written by ``fit``: the embedder and its preprocessing."""

    path: Path
    estimator: object
    preprocessing: dict
    transformer: ColumnTransformer
    target: str

    @classmethod
    def load(cls, path) -> Model:
        """Read a model file; a file that is not one raises :class:`CLIError`."""
        path = Path(path)
        if not path.is_file():
            raise CLIError(f"{path}: no such model file")
        try:  # a ValueError (not a model file, damaged, ...) names the file: it goes as it is
            extra = read_metadata(path)["extra"]
            estimator = load(path)
        except (TypeError, KeyError, RuntimeError) as error:
            raise CLIError(f"{path}: damaged model file ({_one_line(error)})") from None
        preprocessing = extra.get("preprocessing") if isinstance(extra, dict) else None
        if not isinstance(preprocessing, dict):
            raise CLIError(
                f"{path}: the model holds no preprocessing; was it made by 'sk-dml fit'?"
            )
        try:
            transformer = preprocessing_from_dict(preprocessing)
            width = len(transformer.get_feature_names_out())
        except (ValueError, TypeError, KeyError, IndexError) as error:
            raise CLIError(
                f"{path}: damaged preprocessing in the model ({_one_line(error)})"
            ) from None
        if width != estimator.n_features_in_:
            raise CLIError(
                f"{path}: damaged model: its preprocessing makes {width} features but the "
                f"embedder takes {estimator.n_features_in_}"
            )
        return cls(path, estimator, preprocessing, transformer, str(extra.get("target", "")))

    def features(self, frame: pd.DataFrame, source) -> np.ndarray:
        """The preprocessed feature matrix of ``frame``: the embedder's input."""
        prepared = _prepare(
            frame, self.preprocessing["columns"], self.preprocessing["numeric"]["columns"], source
        )
        return _preprocess(self.transformer, prepared, source)

    def describe(self) -> str:
        """One line: the file, the embedder, the embedding's size and metric."""
        est = self.estimator
        return (
            f"{self.path}: {type(est).__name__}, {len(est.get_feature_names_out())}-D "
            f"embedding, metric {est.embedding_metric_}"
        )


def _labels(frame: pd.DataFrame, column: str, source) -> np.ndarray:
    """The class labels in ``column``: present, complete and of at least two classes."""
    if column not in frame.columns:
        raise CLIError(
            f"{source}: no target column {column!r}; the columns are {_names(list(frame.columns))}"
        )
    labels = frame[column]
    if labels.isna().any():
        raise CLIError(
            f"{source}: the target column {column!r} has {int(labels.isna().sum())} missing "
            "value(s)"
        )
    if labels.nunique() < 2:
        raise CLIError(
            f"{source}: the target column {column!r} holds a single class ({labels.iloc[0]!r}); "
            "at least 2 are needed"
        )
    return labels.to_numpy()


# ------------------------------------------------------------------------------ figures
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
    bar = fig.colorbar(mappable, ax=fig.axes, ticks=ticks, label=str(target))
    bar.ax.set_yticklabels([str(classes[i]) for i in ticks])


def _embedding_figure(panels, labels, target, title, n_cols: int = 1):
    """A figure with one 2-D PCA scatter per ``(panel title, embeddings, metric)``, coloured
    by class."""
    from matplotlib.figure import Figure

    classes, codes = np.unique(labels, return_inverse=True)
    colours = _class_colours(len(classes))
    n_rows = math.ceil(len(panels) / n_cols)
    fig = Figure(figsize=(1.5 + 4.6 * n_cols, 0.6 + 4.2 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in axes[len(panels) :]:  # a last row that is not full
        ax.set_axis_off()
    for ax, (panel_title, Z, metric) in zip(axes, panels, strict=False):
        points, ratio = _pca_2d(Z, metric)
        _scatter(ax, points, codes, colours, ratio)
        ax.set_title(panel_title, fontsize="medium")
    _class_key(fig, target, classes, colours)
    fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------- commands
def _demo_data(quick: bool) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The demo's data sets as ``(name, X_train, X_test, y_train, y_test)``: scikit-learn's
    digits and the shipped letter data, split 70/30 (stratified, seed 0) and standardised with
    the training rows' statistics."""
    from sklearn.datasets import load_digits

    from .datasets import load_letter

    digits = load_digits()
    X_letter, y_letter = load_letter()
    if quick:
        X_letter, y_letter = X_letter.iloc[:3000], y_letter.iloc[:3000]
    splits = []
    for name, X, y in [
        ("digits", digits.data, digits.target),
        ("letter", X_letter.to_numpy(np.float64), y_letter.to_numpy()),
    ]:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=0.3, stratify=y, random_state=0
        )
        scaler = StandardScaler().fit(X_train)
        splits.append((name, scaler.transform(X_train), scaler.transform(X_test), y_train, y_test))
    return splits


def _cmd_demo(args) -> None:
    """Train every embedder on digits and letter; print 5-NN accuracies; draw digits."""
    started = time.perf_counter()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    figure_path = _check_output(Path(args.out) / "demo_embedding.png")
    datasets = _demo_data(args.quick)
    for name, X_train, X_test, y_train, _ in datasets:
        print(
            f"{name}: {len(X_train)} train / {len(X_test)} test rows, {X_train.shape[1]} "
            f"features, {len(np.unique(y_train))} classes"
        )
    params = {"random_state": 0, **({"max_epochs": 5} if args.quick else {})}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the table's epochs column says it
        # A throw-away fit first, so that torch's one-time start-up is not charged to the
        # first embedder's fit time.
        _, X_warm, _, y_warm, _ = datasets[0]
        warm_up = make_embedder("triplet", max_epochs=1, batch_size=16, random_state=0)
        warm_up.fit(X_warm[:200], y_warm[:200])
        rows, panels = [], []
        progress = tqdm(total=len(datasets) * len(loss_names()), desc="training", unit="model")
        for name, X_train, X_test, y_train, y_test in datasets:
            knn = KNeighborsClassifier(N_NEIGHBORS).fit(X_train, y_train)
            rows.append(
                (name, "plain 5-NN (standardised features)", "", "", knn.score(X_test, y_test))
            )
            for loss in loss_names():
                estimator = make_embedder(loss, **params)
                model = _model_name(estimator)
                progress.set_postfix_str(f"{name}: {model}")
                tic = time.perf_counter()
                estimator.fit(X_train, y_train)
                fit_time = time.perf_counter() - tic
                Z_train, Z_test = estimator.transform(X_train), estimator.transform(X_test)
                knn = KNeighborsClassifier(N_NEIGHBORS, metric=estimator.embedding_metric_)
                accuracy = knn.fit(Z_train, y_train).score(Z_test, y_test)
                rows.append((name, model, estimator.n_iter_, f"{fit_time:.1f}", accuracy))
                if name == "digits":
                    metric = estimator.embedding_metric_
                    panel = f"{model} ({metric}): 5-NN accuracy {accuracy:.3f}"
                    panels.append((panel, Z_test, metric))
                progress.update()
        progress.close()
    print(f"\n5-NN accuracy on the stratified 30% test split{' (--quick)' * args.quick}:\n")
    header = ("data set", "model", "epochs", "fit time (s)", "5-NN accuracy")
    print(f"{header[0]:<9} {header[1]:<35} {header[2]:>6} {header[3]:>12} {header[4]:>13}")
    for data, model, epochs, fit_time, accuracy in rows:
        print(f"{data:<9} {model:<35} {epochs:>6} {fit_time:>12} {accuracy:>13.4f}")
    digits_test = datasets[0][4]
    title = f"digits test set ({len(digits_test)} rows): 2-D PCA of each learned embedding"
    title += " (--quick: 5 epochs)" * args.quick
    _save_figure(_embedding_figure(panels, digits_test, "digit", title, n_cols=2), figure_path)
    print(f"\nfigure: {figure_path}")
    print(f"total time: {time.perf_counter() - started:.0f} s")


def _model_name(estimator) -> str:
    """A named embedder's class name, else MetricEmbedder(LossClass)."""
    name = type(estimator).__name__
    loss = estimator.get_params().get("loss")
    return name if loss is None else f"{name}({type(loss).__name__})"


def _embedder(args):
    """The embedder that ``fit``'s options describe."""
    accepted = get_loss_class(args.loss)().get_params()
    for name in ("margin", "mining"):
        if getattr(args, name) is not None and name not in accepted:
            raise CLIError(f"--{name} does not apply to --loss {args.loss}")
    chosen = {
        "margin": args.margin,
        "mining": args.mining,
        "max_epochs": args.epochs,
        "n_components": args.n_components,
        "batch_size": args.batch_size,
        "hidden_layer_sizes": args.hidden_layer_sizes and tuple(args.hidden_layer_sizes),
        "checkpoint_dir": args.checkpoint_dir,
    }
    params = {name: value for name, value in chosen.items() if value is not None}
    return make_embedder(
        args.loss, random_state=args.random_state, verbose=int(args.verbose), **params
    )


def _cmd_fit(args) -> None:
    """Preprocess DATA, train an embedder on it and save both to the model file."""
    _check_output(args.output)
    estimator = _embedder(args)
    frame = read_table(args.data)
    labels = _labels(frame, args.target, args.data)
    features = frame.drop(columns=args.target)
    if features.shape[1] == 0:
        raise CLIError(f"{args.data}: no feature columns besides the target {args.target!r}")
    numeric, categorical = _split_columns(features, args.data)
    prepared = _prepare(features, list(features.columns), numeric, args.data)
    transformer = _column_transformer(numeric, categorical)
    with np.errstate(all="ignore"):  # an overflow is reported by _preprocess
        transformer.fit(prepared)
    X = _preprocess(transformer, prepared, args.data)
    tic = time.perf_counter()
    estimator.fit(X, labels)
    fit_time = time.perf_counter() - tic
    extra = {"preprocessing": preprocessing_to_dict(transformer), "target": args.target}
    save(estimator, args.output, extra=extra)
    losses = estimator.loss_curve_  # empty when the first epoch diverged (a warning says so)
    print(
        f"{_model_name(estimator)} trained on {len(X)} rows ({len(numeric)} numeric and "
        f"{len(categorical)} categorical columns -> {X.shape[1]} features) in "
        f"{estimator.n_iter_} epochs, {fit_time:.1f} s"
        + (f"; final loss {losses[-1]:.4g}" if losses else "")
    )
    print(f"saved {args.output}")


def _cmd_transform(args) -> None:
    """Write the embeddings of DATA's rows, columns emb0..emb{d-1}."""
    _table_format(args.output)
    _check_output(args.output)
    model = Model.load(args.model)
    Z = model.estimator.transform(model.features(read_table(args.data), args.data))
    write_table(pd.DataFrame(Z, columns=[f"emb{i}" for i in range(Z.shape[1])]), args.output)
    print(f"wrote {Z.shape[0]} embeddings of dimension {Z.shape[1]} to {args.output}")


def _target_of(args, model: Model) -> str:
    """``--target``, or else the target column the model was trained on."""
    target = args.target or model.target
    if not target:
        raise CLIError(f"{model.path} does not name its target column; give --target")
    return target


def _cmd_evaluate(args) -> None:
    """Print retrieval scores (leave-one-out in DATA, or DATA's rows against REF's) and
    cross-validated 5-NN accuracies of DATA."""
    model = Model.load(args.model)
    frame = read_table(args.data)
    target = _target_of(args, model)
    labels = _labels(frame, target, args.data)
    if len(labels) < 2 * N_FOLDS or np.unique(labels, return_counts=True)[1].max() < N_FOLDS:
        raise CLIError(
            f"{args.data}: {N_FOLDS}-fold cross-validation needs at least {2 * N_FOLDS} rows and "
            f"a class of {N_FOLDS} or more"
        )
    X = model.features(frame, args.data)
    Z = model.estimator.transform(X)
    metric = model.estimator.embedding_metric_
    if args.reference is None:
        retrieval = retrieval_scores(Z, labels, metric=metric, recall_at=RECALL_AT)
        notes = [
            "each row queries all other rows (leave-one-out)",
            "same queries; R = the number of other rows of the query's class",
            "same queries and R",
            f"share of queries with a row of their class among their {RECALL_AT} nearest",
        ]
    else:
        ref_frame = read_table(args.reference)
        ref_labels = _labels(ref_frame, target, args.reference)
        Z_ref = model.estimator.transform(model.features(ref_frame, args.reference))
        known = set(ref_labels.tolist())
        lone = sum(label not in known for label in labels.tolist())
        if lone == len(labels):
            raise CLIError(
                f"{args.reference}: none of the classes of {args.data} in {target!r} occurs in "
                "it; there is nothing to retrieve"
            )
        retrieval = retrieval_scores(
            Z,
            labels,
            reference=Z_ref,
            reference_labels=ref_labels,
            metric=metric,
            recall_at=RECALL_AT,
        )
        notes = [
            "queries: DATA, references: REF",
            "same queries; R = the number of REF rows of the query's class",
            "same queries and R",
            f"share of queries with a REF row of their class among their {RECALL_AT} nearest",
        ]
    folds = StratifiedKFold(N_FOLDS, shuffle=True, random_state=0)
    learned = cross_val_score(
        KNeighborsClassifier(N_NEIGHBORS, metric=metric), Z, labels, cv=folds, error_score="raise"
    )
    plain = cross_val_score(
        KNeighborsClassifier(N_NEIGHBORS), X, labels, cv=folds, error_score="raise"
    )
    names = ["precision@1", "R-precision", "MAP@R", f"recall@{RECALL_AT}"]
    keys = ["precision@1", "r_precision", "map@r", f"recall@{RECALL_AT}"]
    scores = [
        (name, f"{retrieval[key]:.4f}", note)
        for name, key, note in zip(names, keys, notes, strict=True)
    ]
    scores += [
        (f"{N_NEIGHBORS}-NN accuracy", f"{learned.mean():.4f} +/- {learned.std():.4f}",
         f"{N_FOLDS}-fold stratified cross-validation (shuffled, seed 0) of DATA, on the "
         "embeddings"),
        (f"{N_NEIGHBORS}-NN accuracy", f"{plain.mean():.4f} +/- {plain.std():.4f}",
         "same folds, on the preprocessed input features (baseline)"),
    ]  # fmt: skip
    print(f"model  {model.describe()}")
    print(f"data   {args.data}: {len(labels)} rows, {len(np.unique(labels))} classes in {target!r}")
    if args.reference is not None:
        absent = f"; {lone} DATA row(s) of a class absent from REF left out" if lone else ""
        print(
            f"ref    {args.reference}: {len(ref_labels)} rows, {len(np.unique(ref_labels))} "
            f"classes{absent}"
        )
    print()
    for name, value, note in scores:
        print(f"{name:<14} {value:<18} {note}")


def _cmd_plot(args) -> None:
    """Draw the 2-D PCA projection of DATA's embedding coloured by class."""
    _figure_format(args.output)
    _check_output(args.output)
    model = Model.load(args.model)
    frame = read_table(args.data)
    target = _target_of(args, model)
    labels = _labels(frame, target, args.data)
    Z = model.estimator.transform(model.features(frame, args.data))
    metric = model.estimator.embedding_metric_
    title = (
        f"{type(model.estimator).__name__} embedding of {Path(args.data).name}\n"
        f"{len(Z)} rows, {Z.shape[1]}-D, {metric} metric: 2-D PCA"
    )
    _save_figure(_embedding_figure([("", Z, metric)], labels, target, title), args.output)
    print(f"wrote {args.output}")


# ------------------------------------------------------------------------------- parser
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


_positive_int.__name__ = "positive integer"  # how argparse names the type in its errors


def build_parser() -> argparse.ArgumentParser:
    """The ``sk-dml`` argument parser with its five subcommands."""
    parser = _Parser(
        prog=PROG,
        description="Deep metric learning for tabular data: learn an embedding in which rows "
        "of the same class are near each other.",
        epilog="Errors exit with status 2 and one line on stderr; SK_DML_DEBUG=1 shows the "
        "traceback.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="train every embedder on built-in data and compare 5-NN accuracies",
        description=f"Train an embedder with each loss ({', '.join(loss_names())}; "
        "default parameters, random_state=0) on scikit-learn's digits and the shipped letter "
        "data (standardised, stratified 70/30 split, seed 0); print the 5-NN test accuracy in "
        "each learned space next to plain 5-NN, and draw the digits test set's embeddings.",
    )
    demo.add_argument(
        "--quick", action="store_true", help="5 epochs and the first 3000 rows of letter"
    )
    demo.add_argument(
        "--out", default=".", metavar="DIR", help="folder of demo_embedding.png (default: .)"
    )
    demo.set_defaults(handler=_cmd_demo)

    table = "CSV (.csv, .csv.gz) or Parquet (.parquet, .pq) table"
    fit = commands.add_parser(
        "fit",
        help="train an embedder on a table and save it",
        description="Train an embedder on DATA. Numeric columns are standardised and "
        "categorical columns (text, bool, category) one-hot encoded; the fitted preprocessing "
        "is saved in the model file, as data (no pickle).",
    )
    fit.add_argument("data", metavar="DATA", help=table)
    fit.add_argument("--target", required=True, metavar="COL", help="the class column")
    fit.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write")
    fit.add_argument("--loss", choices=loss_names(), default="triplet", help="default: triplet")
    fit.add_argument("--margin", type=float, metavar="M", help="margin of the loss")
    fit.add_argument(
        "--mining", choices=TRIPLET_MINING, help="triplet mining (triplet only; default semihard)"
    )
    fit.add_argument("--epochs", type=_positive_int, metavar="N", help="maximum epochs (60)")
    fit.add_argument(
        "--n-components", type=_positive_int, metavar="N", help="embedding dimension (64)"
    )
    fit.add_argument(
        "--hidden-layer-sizes",
        type=_positive_int,
        nargs="+",
        metavar="N",
        help="widths of the hidden layers (256)",
    )
    fit.add_argument("--batch-size", type=_positive_int, metavar="N", help="a multiple of 4 (256)")
    fit.add_argument("--random-state", type=int, metavar="N", help="seed, for reproducible fits")
    fit.add_argument("--verbose", action="store_true", help="show a progress bar of the epochs")
    fit.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="save the training state there after every epoch; rerunning the same command "
        "after a crash resumes from the last completed epoch",
    )
    fit.set_defaults(handler=_cmd_fit)

    target_help = "the class column (default: the one the model was trained on)"
    transform = commands.add_parser(
        "transform",
        help="embed a table",
        description="Embed the rows of DATA; writes columns emb0..emb{d-1}. DATA needs the "
        "model's feature columns; other columns (the target, say) are ignored.",
    )
    transform.add_argument("model", metavar="MODEL", help="a model file written by 'fit'")
    transform.add_argument("data", metavar="DATA", help=table)
    transform.add_argument("-o", "--output", required=True, metavar="OUT", help=f"output {table}")
    transform.set_defaults(handler=_cmd_transform)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a table in the learned space",
        description="Print precision@1, R-precision, MAP@R and recall@10 of DATA in the "
        "learned space, with the model's embedding metric (every row queries all the others, "
        "or with --reference the rows of REF), and the accuracy of a "
        f"{N_NEIGHBORS}-NN classifier under {N_FOLDS}-fold stratified cross-validation of DATA, "
        "on the embeddings and, as a baseline, on the preprocessed input features.",
    )
    evaluate.add_argument("model", metavar="MODEL", help="a model file written by 'fit'")
    evaluate.add_argument("data", metavar="DATA", help=table)
    evaluate.add_argument("--target", metavar="COL", help=target_help)
    evaluate.add_argument(
        "--reference",
        metavar="REF",
        help=f"a {table} with the same target column: DATA's rows are the queries and REF's "
        "the rows they retrieve (queries of a class absent from REF are left out)",
    )
    evaluate.set_defaults(handler=_cmd_evaluate)

    plot = commands.add_parser(
        "plot",
        help="draw a 2-D PCA scatter of a table's embedding",
        description="Draw the 2-D PCA projection of DATA's embedding, coloured by class "
        "(of the L2-normalised embedding when the model's metric is cosine).",
    )
    plot.add_argument("model", metavar="MODEL", help="a model file written by 'fit'")
    plot.add_argument("data", metavar="DATA", help=table)
    plot.add_argument("--target", metavar="COL", help=target_help)
    plot.add_argument(
        "-o", "--output", required=True, metavar="FIG", help="image file (.png, .pdf, .svg, ...)"
    )
    plot.set_defaults(handler=_cmd_plot)
    return parser


# --------------------------------------------------------------------------------- main
def _warning_printer():
    """A ``warnings.showwarning`` that prints each distinct warning once, as one line."""
    shown = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = _one_line(message)
        if text not in shown:
            shown.add(text)
            print(f"{PROG}: warning: {text}", file=sys.stderr)

    return show


def _message(error: BaseException) -> str:
    """The one-line text of an error (a KeyError's text is its key's repr)."""
    if isinstance(error, KeyError) and error.args:
        return f"missing key {_one_line(error.args[0])!r}"
    return _one_line(error) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Run ``sk-dml`` with the arguments ``argv`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 2 for bad input or usage, 1 for an unexpected error,
        130 when interrupted.
    """
    debug = os.environ.get("SK_DML_DEBUG") == "1"
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer()
            try:
                args = build_parser().parse_args(argv)
            except SystemExit as done:  # --help and --version
                return 0 if done.code is None else int(done.code)
            args.handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (CLIError, *INPUT_ERRORS) as error:
        if debug:
            raise
        print(f"{PROG}: error: {_message(error)}", file=sys.stderr)
        return 2
    except Exception as error:
        if debug:
            raise
        print(
            f"{PROG}: error: unexpected {type(error).__name__}: {_message(error)} "
            "(set SK_DML_DEBUG=1 to see the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0
