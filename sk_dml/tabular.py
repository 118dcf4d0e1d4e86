"""A table's schema: which columns are numeric and which categorical, learned from the training
rows, and the encoding of a table into the one float32 matrix the network reads.

An embedder learns a :class:`TableSchema` at ``fit`` and keeps it: the columns (names or
positions) and their dtypes, each categorical column's vocabulary and embedding width, and
which numeric columns had missing values. ``transform`` encodes any later table with it,
matching columns by name. The encoded matrix has one column per numeric input column (its raw
value, NaN where missing) followed by one per categorical column (the level's code, stored as
a float32 integer), then, per text column, ``max_ngrams`` columns of hashed character n-gram
ids (see "Text columns" below). The network's input layer (:class:`sk_dml.nets.TableInput`)
then standardises, fills and flags the numbers, looks the codes up in embedding tables, so a
column with a million levels costs one (levels x width) table, never a one-hot matrix, and
sums each text cell's n-gram vectors (an ``nn.EmbeddingBag``), started as TF-IDF: the schema
keeps each text column's document frequencies (:meth:`TableSchema.text_idf`).

What a string column becomes: under ``categorical_features="from_dtype"``, a string (object)
column is text when more than ``TEXT_RARE_SHARE`` of its non-missing cells hold a level seen
fewer than ``max(min_frequency, 2)`` times at fit, else categorical (:func:`learn_schema`);
:meth:`TableSchema.describe` reports each column's reading and why.

Versions (``TableSchema.version``): 1 is every schema written before versions existed (text
as the mean of random n-gram vectors, raw 0/1 missing indicators); 2 (``SCHEMA_VERSION``)
adds the TF-IDF start and standardised indicators. A stored schema keeps its version, so an
old model file embeds as it did.

Codes: 0 is "missing", 1 is "rare or not seen at fit time" (levels seen fewer than
``min_frequency`` times at fit share it with levels first seen later), 2, 3, ... are the
levels kept, in sorted order. A level is identified by its text: ``1``, ``1.0`` and ``"1"`` are
one level, ``True`` is ``"True"``.

Text columns (``text_features``): a cell is read as text (a number as its text, ``1.0`` as
``"1"``), lower-cased and cut into character n-grams within words (scikit-learn's
``HashingVectorizer(analyzer="char_wb", ngram_range=TEXT_NGRAM_RANGE)``, words padded with a
space), each hashed into one of ``TEXT_N_BUCKETS`` buckets, as fastText's subword embeddings
do (Bojanowski et al. 2017): similar strings share most n-grams. The encoding holds bucket
id + 1 for each n-gram occurrence (an id repeated as often as its n-gram occurs), in
increasing id order, then 0s ("padding"); a missing cell is all padding. Its width,
``max_ngrams``, is learned at fit: the most n-gram occurrences of a training cell, at most
``MAX_NGRAMS``. A longer cell keeps its ``max_ngrams`` occurrences of smallest bucket ids:
a deterministic sample that, ids being hashes, is the same for the n-grams two similar long
strings share (as MinHash's bottom-k sketch).

The schema is plain data (:meth:`TableSchema.to_dict`), stored in model files as JSON.
"""

from __future__ import annotations

import numbers
from dataclasses import MISSING, asdict, dataclass, field, fields

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import HashingVectorizer

from ._cells import (
    _as_float,
    _check_text_column,
    _factorize,
    _finite_numbers,
    _is_bool,
    _is_missing,
    _is_numeric_dtype,
    _is_textual,
    _key,
    _ngram_counts,
    _ngram_ids,
    _rare_share,
    text_hasher,
)
from ._frames import frame_columns, has_string_names, is_dataframe
from ._training import warn_user

__all__ = [
    "MAX_NGRAMS",
    "SCHEMA_VERSION",
    "MISSING_CODE",
    "RARE_CODE",
    "SCHEMA_PARAMETERS",
    "TEXT_NGRAM_RANGE",
    "TEXT_N_BUCKETS",
    "TEXT_RARE_SHARE",
    "TableSchema",
    "categorical_positions",
    "default_embedding_dim",
    "frame_columns",
    "has_string_names",
    "is_dataframe",
    "learn_schema",
    "learn_table_schema",
    "schema_options",
]

MISSING_CODE = 0
RARE_CODE = 1
_FIRST_LEVEL = 2
# Codes travel as float32, which holds every integer up to 2**24 exactly.
MAX_LEVELS = 2**24 - _FIRST_LEVEL
# The widest embedding the "auto" rule gives a categorical column.
MAX_AUTO_DIM = 32
# Text columns: the character n-grams read, the buckets they are hashed into (ids + 1 must
# stay below 2**24, float32's exact integers), and the most n-gram occurrences kept per cell.
TEXT_NGRAM_RANGE = (2, 4)
TEXT_N_BUCKETS = 2**16
MAX_NGRAMS = 64
# The width "auto" gives a text column's embedding (see TEXT_EMBEDDING_DIM in the docstring).
TEXT_EMBEDDING_DIM = 32
# "from_dtype" reads a string column as text when more than this share of its non-missing
# cells hold a level seen fewer than max(min_frequency, 2) times (see "What a string column
# becomes").
TEXT_RARE_SHARE = 0.05
# learn_schema warns when a categorical column keeps less than this share of its non-missing
# cells as named levels (the rest "rare"): most of what it says is lost.
NAMED_SHARE_WARNING = 0.1
# Version 1: text cells as the mean of random n-gram vectors, missing indicators as raw 0/1
# (every schema written before versions existed). Version 2: text cells as TF-IDF (inverse
# document frequencies learned at fit), standardised missing indicators.
SCHEMA_VERSION = 2


def default_embedding_dim(n_rows: int) -> int:
    """The "auto" width of a categorical column's embedding table of ``n_rows`` rows (its
    levels plus "missing" and "rare"): ``min(32, round(1.6 * n_rows ** 0.56))``, the rule of
    thumb of fastai (Howard & Gugger 2020) with a lower cap, since the whole embedding here is
    small (64 by default)."""
    return max(1, min(MAX_AUTO_DIM, round(1.6 * n_rows**0.56)))


@dataclass
class TableSchema:
    """The columns a model was fitted on, and how each is encoded.

    Attributes
    ----------
    n_features : int
        Input columns.
    feature_names : list of str or None
        Their names when the training table had string column names (then ``transform``
        matches columns by name), else None (matched by position).
    dtypes : list of str
        Each column's dtype at fit, for messages.
    numeric : list of int
        Positions of the numeric columns, in encoded order.
    categorical : list of int
        Positions of the categorical columns, in encoded order (after the numeric ones).
    levels : list of list of str
        Each categorical column's levels kept at fit (codes 2, 3, ...), sorted.
    embedding_dims : list of int
        Each categorical column's embedding width.
    missing_indicators : list of int
        Indices into ``numeric`` of the columns that had missing values at fit: those get a
        missing-indicator feature.
    text : list of int
        Positions of the text columns, in encoded order (after the categorical ones).
    text_ngram_range : list of int
        The (min, max) length of the character n-grams read from text cells.
    text_n_buckets : int
        The buckets n-grams are hashed into.
    max_ngrams : list of int
        Each text column's width in the encoding: the n-gram occurrences kept per cell.
    text_embedding_dims : list of int
        Each text column's embedding width.
    version : int
        How the network reads this table (:data:`SCHEMA_VERSION`): 1 for every schema written
        before versions existed (text cells as the mean of random n-gram vectors, missing
        indicators as raw 0/1), 2 for the TF-IDF start (see :meth:`text_idf`) and
        standardised missing indicators. A schema read from a model file keeps its version,
        so old model files embed as they did.
    text_buckets : list of list of int
        Version 2: per text column, the n-gram buckets seen at fit, in increasing order.
    text_document_counts : list of list of int
        Version 2: per text column, in how many training cells each of those buckets occurs
        (its document frequency).
    text_n_documents : list of int
        Version 2: per text column, its non-missing training cells (the documents).
    reasons : list of str
        Why each input column is read as it is (:meth:`describe`); empty in schemas written
        before this was recorded.
    """

    n_features: int
    feature_names: list[str] | None
    dtypes: list[str]
    numeric: list[int]
    categorical: list[int]
    levels: list[list[str]]
    embedding_dims: list[int]
    missing_indicators: list[int]
    text: list[int] = field(default_factory=list)
    text_ngram_range: list[int] = field(default_factory=lambda: list(TEXT_NGRAM_RANGE))
    text_n_buckets: int = TEXT_N_BUCKETS
    max_ngrams: list[int] = field(default_factory=list)
    text_embedding_dims: list[int] = field(default_factory=list)
    version: int = 1
    text_buckets: list[list[int]] = field(default_factory=list)
    text_document_counts: list[list[int]] = field(default_factory=list)
    text_n_documents: list[int] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def __setstate__(self, state: dict) -> None:
        """Unpickle, giving a schema pickled before text columns (or versions) existed the
        defaults: no text columns, version 1."""
        for spec in fields(self):
            if spec.name not in state:
                factory = spec.default_factory
                state[spec.name] = factory() if factory is not MISSING else spec.default
        self.__dict__.update(state)

    # -- what the network reads ------------------------------------------------------------
    @property
    def table_sizes(self) -> list[int]:
        """Rows of each categorical column's embedding table (levels + missing + rare)."""
        return [len(levels) + _FIRST_LEVEL for levels in self.levels]

    @property
    def n_encoded(self) -> int:
        """Columns of :meth:`encode`'s output."""
        return len(self.numeric) + len(self.categorical) + sum(self.max_ngrams)

    def column_name(self, position: int) -> str:
        """How messages name the column at ``position``."""
        if self.feature_names is not None:
            return repr(self.feature_names[position])
        return f"at position {position}"

    # -- encoding ------------------------------------------------------------------------------
    def encode(self, columns: list) -> np.ndarray:
        """The (n_rows, n_encoded) float32 matrix of ``columns`` (one 1-D array or pandas
        Series per input column, in fit order): numeric values (NaN where missing), then the
        categorical codes, then each text column's ``max_ngrams`` n-gram ids + 1 (0: padding)."""
        n_rows = len(columns[0]) if columns else 0
        encoded = np.empty((n_rows, self.n_encoded), dtype=np.float32)
        for j, position in enumerate(self.numeric):
            encoded[:, j] = self._numbers(columns[position], position)
        offset = len(self.numeric)
        for j, position in enumerate(self.categorical):
            codes = _level_codes(columns[position], self.levels[j])
            encoded[:, offset + j] = codes
        offset += len(self.categorical)
        hasher = self.text_hasher()
        for j, position in enumerate(self.text):
            width = self.max_ngrams[j]
            encoded[:, offset : offset + width] = _ngram_ids(columns[position], hasher, width)
            offset += width
        return encoded

    def text_hasher(self) -> HashingVectorizer:
        """The n-gram hasher of the text columns: counts per bucket, lower-cased."""
        return text_hasher(tuple(self.text_ngram_range), self.text_n_buckets)

    def _numbers(self, column, position: int) -> np.ndarray:
        """A numeric column as float64 (NaN where missing); a clear error for text or inf."""
        if isinstance(column, pd.Series) and not _is_numeric_dtype(column.dtype):
            texts = column.dropna()
            texts = texts[texts.map(lambda v: isinstance(v, str | bytes))]
            if len(texts) or not (
                pd.api.types.is_object_dtype(column.dtype) or _is_bool(column.dtype)
            ):
                example = f", e.g. {texts.iloc[0]!r}" if len(texts) else ""
                raise ValueError(
                    f"Column {self.column_name(position)} was numeric at fit "
                    f"({self.dtypes[position]}) but now has dtype {column.dtype}{example}; "
                    "convert it to numbers (pd.to_numeric)."
                )
        return _finite_numbers(_as_float(column), self.column_name(position))

    # -- what a column is ------------------------------------------------------------------------
    def kind(self, position: int) -> str:
        """How the column at ``position`` is read: "numeric", "categorical" or "text"."""
        if position in self.text:
            return "text"
        return "categorical" if position in self.categorical else "numeric"

    def describe(self) -> list[dict]:
        """One dict per input column, in input order: ``column`` (its name, or position),
        ``dtype``, ``kind`` ("numeric", "categorical" or "text") and ``reason`` (why: the
        dtype, an option, or for a string column under "from_dtype" its share of rare cells),
        and ``size``: a categorical column's levels kept, a text column's n-gram buckets seen
        at fit (None for a numeric column, or an old schema's text column)."""
        rows = []
        for position in range(self.n_features):
            kind = self.kind(position)
            if kind == "categorical":
                size = len(self.levels[self.categorical.index(position)])
            elif kind == "text" and self.text_buckets:
                size = len(self.text_buckets[self.text.index(position)])
            else:
                size = None
            rows.append(
                {
                    "column": position
                    if self.feature_names is None
                    else self.feature_names[position],
                    "dtype": self.dtypes[position],
                    "kind": kind,
                    "reason": self.reasons[position] if self.reasons else "",
                    "size": size,
                }
            )
        return rows

    # -- TF-IDF ----------------------------------------------------------------------------------
    def text_idf(self, j: int) -> np.ndarray:
        """The inverse document frequency of each n-gram bucket of the ``j``-th text column
        (version 2), as scikit-learn's ``TfidfVectorizer(smooth_idf=True)`` computes it:
        ``ln((1 + n) / (1 + df)) + 1`` for the ``n`` training cells and a bucket's document
        frequency ``df``; 0 for the buckets never seen at fit (they carry no weight, as an
        n-gram outside a fitted vocabulary). A (text_n_buckets,) float64 array."""
        if self.version < 2:
            raise ValueError(
                "this schema (version 1) reads text as the mean of random n-gram vectors; it "
                "has no inverse document frequencies"
            )
        idf = np.zeros(self.text_n_buckets)
        counts = np.asarray(self.text_document_counts[j], dtype=np.float64)
        n = self.text_n_documents[j]
        idf[np.asarray(self.text_buckets[j], dtype=np.int64)] = np.log((1 + n) / (1 + counts)) + 1
        return idf

    def text_tfidf(self, column, j: int):
        """The exact TF-IDF matrix of ``column`` read as the ``j``-th text column: hashed
        n-gram counts times :meth:`text_idf`, each row scaled to unit Euclidean norm (a
        missing cell, or one of n-grams unseen at fit, is a row of zeros). A (n_rows,
        text_n_buckets) CSR matrix: what the untrained network's text embedding approximates
        (see :class:`sk_dml.nets.TableInput`)."""
        from sklearn.preprocessing import normalize

        values = pd.Series(column, copy=False).to_numpy(dtype=object)
        texts = ["" if _is_missing(v) else _key(v) for v in values]  # "": no n-gram, zeros
        counts = self.text_hasher().transform(texts)
        return normalize(counts.multiply(self.text_idf(j)).tocsr())

    # -- as data -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TableSchema:
        known = {spec.name for spec in fields(cls)}
        unknown = sorted(set(data) - known)
        version = data.get("version", 1)
        if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION or unknown:
            raise ValueError(
                f"the table schema has version {version!r}"
                + (f" and fields {unknown}" if unknown else "")
                + f"; this sk_dml reads schema versions 1 to {SCHEMA_VERSION}. Load the model "
                "with the sk_dml that wrote it, or fit it again."
            )
        schema = cls(**data)
        positions = schema.numeric + schema.categorical + schema.text
        n_text = len(schema.text)
        if not (
            len(schema.levels) == len(schema.categorical) == len(schema.embedding_dims)
            and sorted(positions) == list(range(schema.n_features))
            and all(0 <= i < len(schema.numeric) for i in schema.missing_indicators)
            and n_text == len(schema.max_ngrams) == len(schema.text_embedding_dims)
            and all(n >= 1 for n in schema.max_ngrams)
            and 1 <= schema.text_n_buckets < 2**24
            and len(schema.text_ngram_range) == 2
            and len(schema.reasons) in (0, schema.n_features)
            and (schema.version < 2 or schema._consistent_idf())
        ):
            raise ValueError("the table schema is inconsistent")
        return schema

    def _consistent_idf(self) -> bool:
        """Version 2's document frequencies: one table per text column, bucket ids in range
        and increasing, counts between 1 and the number of documents."""
        n_text = len(self.text)
        if not (
            len(self.text_buckets) == len(self.text_document_counts) == n_text
            and len(self.text_n_documents) == n_text
        ):
            return False
        for buckets, counts, n in zip(
            self.text_buckets, self.text_document_counts, self.text_n_documents, strict=True
        ):
            b, c = np.asarray(buckets), np.asarray(counts)
            if not (
                len(b) == len(c)
                and (len(b) == 0 or (b.min() >= 0 and b.max() < self.text_n_buckets))
                and np.all(np.diff(b) > 0)
                and np.all((c >= 1) & (c <= n))
            ):
                return False
        return True

    # -- a DataFrame against the schema, and the encoding's layout -----------------------------
    def check(self, table: pd.DataFrame) -> None:
        """Raise the ValueError that :meth:`encode_table` would raise for the DataFrame
        ``table``, without encoding it: its columns must be the schema's (matched by name when
        both have names, else by position), each numeric one holding numbers (NaN where
        missing) that are finite and within float32's range. Categorical and text columns take
        any value (a level not seen at fit is "rare or unseen")."""
        columns = self._table_columns(table)
        for position in self.numeric:
            self._numbers(columns[position], position)

    def encode_table(self, table: pd.DataFrame) -> np.ndarray:
        """:meth:`encode` of the DataFrame ``table``, its columns matched to the schema's as
        :meth:`check` says: what an embedder's ``transform`` gives its network."""
        return self.encode(self._table_columns(table))

    def _table_columns(self, table: pd.DataFrame) -> list[pd.Series]:
        by_name = self.feature_names is not None and has_string_names(table)
        columns = frame_columns(table, self.feature_names if by_name else None)
        if len(columns) != self.n_features:
            raise ValueError(
                f"X has {len(columns)} features, but the table schema is expecting "
                f"{self.n_features} features as input."
            )
        return columns

    @property
    def numeric_slice(self) -> slice:
        """The columns of :meth:`encode`'s output that hold the numeric columns' values."""
        return slice(0, len(self.numeric))

    @property
    def categorical_slice(self) -> slice:
        """The columns of :meth:`encode`'s output that hold the categorical columns' codes."""
        start = len(self.numeric)
        return slice(start, start + len(self.categorical))

    @property
    def text_slices(self) -> list[slice]:
        """For each text column, the columns of :meth:`encode`'s output that hold its n-gram
        ids + 1 (``max_ngrams`` of them)."""
        starts = len(self.numeric) + len(self.categorical) + np.cumsum([0, *self.max_ngrams])
        return [slice(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:], strict=True)]


def learn_schema(
    columns: list,
    feature_names: list[str] | None,
    *,
    categorical_features,
    min_frequency: int,
    embedding_dim,
    text_features=None,
) -> TableSchema:
    """The schema of the training table ``columns`` (one 1-D array or Series per column).

    ``categorical_features`` follows HistGradientBoostingClassifier: "from_dtype", None, names,
    indices or a boolean mask. "from_dtype" takes category and bool columns as categories, and
    decides each string (object) column from its data: text (character n-grams) when more
    than ``TEXT_RARE_SHARE`` (5%) of its non-missing cells hold a level seen fewer than
    ``max(min_frequency, 2)`` times at fit (free text, names, IDs, postcodes, dates: a
    category would lump those cells into "rare", and a typo into "unseen"), else a category
    (short codes whose levels repeat). ``text_features`` names or indexes columns read as
    text whatever their dtype; an explicit ``categorical_features`` list is taken as given.
    A categorical column whose kept levels name fewer than ``NAMED_SHARE_WARNING`` (10%) of
    its non-missing cells is named in a UserWarning (a category or bool dtype, or a listed
    column: a string column left to the data is text long before).
    ``embedding_dim`` is "auto" (:func:`default_embedding_dim`; ``TEXT_EMBEDDING_DIM`` for a
    text column), an int for every column, or a dict from column name (or position) to int,
    "auto" for the others.
    """
    n_features = len(columns)
    if n_features == 0:
        raise ValueError("Found array with 0 feature(s) while a minimum of 1 is required.")
    if len(columns[0]) == 0:
        raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
    names = feature_names
    label = (lambda p: repr(names[p])) if names is not None else (lambda p: f"at position {p}")
    dtypes = [str(getattr(c, "dtype", np.asarray(c).dtype)) for c in columns]
    text = sorted(_categorical_positions(columns, names, text_features, "text_features"))
    chosen = _categorical_positions(columns, names, categorical_features, exclude=set(text))
    both = sorted(chosen & set(text))
    if both:
        raise ValueError(
            f"Column {label(both[0])} is listed in both categorical_features and "
            "text_features; a column is read one way."
        )
    reasons = ["numeric dtype"] * n_features
    for p in text:
        reasons[p] = "text_features"
    for p in chosen:
        reasons[p] = "categorical_features"
    if isinstance(categorical_features, str):  # "from_dtype": the data decide string columns
        for p in sorted(chosen):
            dtype = getattr(columns[p], "dtype", None)
            if not _is_textual(dtype):
                kind = "category" if isinstance(dtype, pd.CategoricalDtype) else "bool"
                reasons[p] = f"{kind} dtype"
                continue
            share, n_levels = _rare_share(columns[p], max(min_frequency, 2))
            reasons[p] = (
                f"string column, {n_levels} levels, {share:.0%} of its cells rare (seen fewer "
                f"than {max(min_frequency, 2)} times)"
            )
            if share > TEXT_RARE_SHARE:
                chosen.discard(p)
                text.append(p)
        text.sort()
    numeric = [p for p in range(n_features) if p not in chosen and p not in text]
    categorical = sorted(chosen)
    for p in numeric:
        dtype = getattr(columns[p], "dtype", None)
        if dtype is not None and not (_is_numeric_dtype(dtype) or _is_bool(dtype)):
            raise ValueError(
                f"Column {label(p)} has dtype {dtype}, which is neither numeric nor one of the "
                f"categorical columns (categorical_features={categorical_features!r}); "
                + (
                    "convert it to numbers or to a category."
                    if not _is_textual(dtype)
                    else "list it in categorical_features or text_features, or convert it to "
                    "numbers."
                )
            )
    missing_indicators = []
    for j, p in enumerate(numeric):
        missing = np.isnan(_finite_numbers(_as_float(columns[p]), label(p)))
        if missing.all():
            raise ValueError(f"Column {label(p)} has no value at all (every row is missing).")
        if missing.any():
            missing_indicators.append(j)
    levels, dims = [], []
    for p in categorical:
        codes, keys = _factorize(columns[p])
        if (codes < 0).all():
            raise ValueError(f"Column {label(p)} has no value at all (every row is missing).")
        counts = pd.Series(np.bincount(codes[codes >= 0], minlength=len(keys)), index=keys)
        counts = counts.groupby(level=0).sum()  # 1, 1.0 and "1" are one level
        kept = sorted(counts.index[counts.to_numpy() >= min_frequency])
        if len(kept) > MAX_LEVELS:
            raise ValueError(
                f"Column {label(p)} has {len(kept)} levels; at most {MAX_LEVELS} are supported."
            )
        key = p if names is None else names[p]  # as text_features would name it
        _warn_if_mostly_rare(counts, len(kept), min_frequency, label(p), key)
        levels.append([str(k) for k in kept])
        dims.append(_embedding_dim(embedding_dim, p, names, len(kept) + _FIRST_LEVEL))
    hasher = text_hasher(TEXT_NGRAM_RANGE, TEXT_N_BUCKETS)
    max_ngrams, text_dims, buckets, document_counts, n_documents = [], [], [], [], []
    for p in text:
        _check_text_column(columns[p], label(p))
        counts = _ngram_counts(columns[p], hasher)
        if counts is None:
            raise ValueError(f"Column {label(p)} has no value at all (every row is missing).")
        if counts.nnz == 0:
            raise ValueError(
                f"Column {label(p)} has no text at all: every cell is missing, empty or "
                "blank, so it has no character n-gram to read; drop it."
            )
        longest = int(counts.sum(axis=1).max())
        max_ngrams.append(max(1, min(MAX_NGRAMS, longest)))
        text_dims.append(_embedding_dim(embedding_dim, p, names, None))
        frequency = np.bincount(counts.indices, minlength=TEXT_N_BUCKETS)  # sorted, no repeats
        seen = np.flatnonzero(frequency)
        buckets.append(seen.tolist())
        document_counts.append(frequency[seen].tolist())
        n_documents.append(int(counts.shape[0]))
    return TableSchema(
        n_features=n_features,
        feature_names=None if names is None else [str(n) for n in names],
        dtypes=dtypes,
        numeric=numeric,
        categorical=categorical,
        levels=levels,
        embedding_dims=dims,
        missing_indicators=missing_indicators,
        text=text,
        text_ngram_range=list(TEXT_NGRAM_RANGE),
        text_n_buckets=TEXT_N_BUCKETS,
        max_ngrams=max_ngrams,
        text_embedding_dims=text_dims,
        version=SCHEMA_VERSION,
        text_buckets=buckets,
        text_document_counts=document_counts,
        text_n_documents=n_documents,
        reasons=reasons,
    )


def _warn_if_mostly_rare(counts: pd.Series, n_kept: int, min_frequency, label, key) -> None:
    """Warn when the levels kept (``n_kept`` of ``counts``'s, each level's number of cells)
    name less than ``NAMED_SHARE_WARNING`` of the column's non-missing cells: a column of
    identifiers (or dates) whose values each repeat a few times is then almost all "rare"."""
    present = int(counts.sum())
    rare = present - int(counts[counts >= min_frequency].sum())
    if present - rare >= NAMED_SHARE_WARNING * present:
        return
    others = (
        f"each appears fewer than min_frequency={min_frequency} times"
        if n_kept == 0
        else f"the other {len(counts) - n_kept:,} appear fewer than min_frequency="
        f"{min_frequency} times each"
    )
    warn_user(
        f"Column {label} keeps {n_kept:,} of its {len(counts):,} distinct values as categories "
        f"({others}): {rare:,} of its {present:,} non-missing rows ({rare / present:.0%}) read "
        f"as 'rare'. If it identifies records, pass it in text_features=[{key!r}] to compare "
        "its characters, or lower min_frequency.",
        UserWarning,
    )


def _categorical_positions(
    columns, names, categorical_features, parameter="categorical_features", exclude=frozenset()
) -> set[int]:
    """The positions ``categorical_features`` designates (HistGradientBoosting's semantics);
    "from_dtype" skips the positions in ``exclude`` (the text columns). ``parameter`` names
    the option in messages."""
    n_features = len(columns)
    if categorical_features is None:
        return set()
    if isinstance(categorical_features, str):
        if categorical_features != "from_dtype":  # the constraint refused it for categories
            raise ValueError(
                f"{parameter} must be a list of column names or indices, not the string "
                f"{categorical_features!r}."
            )
        return {
            p
            for p, column in enumerate(columns)
            if p not in exclude
            and (dtype := getattr(column, "dtype", None)) is not None
            and (_is_textual(dtype) or _is_bool(dtype) or isinstance(dtype, pd.CategoricalDtype))
        }
    given = np.asarray(categorical_features)
    if given.ndim != 1:
        raise ValueError(
            f"{parameter} must be 'from_dtype', None or a 1-D list of column names, "
            f"indices or booleans; got shape {given.shape}."
        )
    if given.size == 0:
        return set()
    if given.dtype.kind == "b":
        if len(given) != n_features:
            raise ValueError(
                f"{parameter} as a boolean mask must have one entry per column "
                f"(n_features={n_features}), got {len(given)}."
            )
        return set(np.flatnonzero(given).tolist())
    if given.dtype.kind in "iu":
        bad = [int(i) for i in given if not -n_features <= i < n_features]
        if bad:
            raise ValueError(
                f"{parameter} has index {bad[0]}, outside the {n_features} columns of X."
            )
        return {int(i) % n_features for i in given}
    if given.dtype.kind in "UO":
        if names is None:
            raise ValueError(
                f"{parameter} names columns, but X has no column names; pass a "
                "pandas DataFrame or give positions."
            )
        position = {name: p for p, name in enumerate(names)}
        unknown = [str(n) for n in given if n not in position]
        if unknown:
            raise ValueError(f"{parameter} names {unknown[0]!r}, which is not a column of X.")
        return {position[n] for n in given}
    raise ValueError(
        f"{parameter} must hold column names, indices or booleans; got values of "
        f"dtype {given.dtype}."
    )


def _embedding_dim(embedding_dim, position: int, names, n_rows: int | None) -> int:
    """A column's width from ``category_embedding_dim``; "auto" is :func:`default_embedding_dim`
    of its ``n_rows`` table rows, or ``TEXT_EMBEDDING_DIM`` for a text column (None)."""
    if isinstance(embedding_dim, dict):
        key = names[position] if names is not None else position
        embedding_dim = embedding_dim.get(key, embedding_dim.get(position, "auto"))
    if isinstance(embedding_dim, str):
        return TEXT_EMBEDDING_DIM if n_rows is None else default_embedding_dim(n_rows)
    if not (isinstance(embedding_dim, numbers.Integral) and embedding_dim >= 1):
        raise ValueError(
            f"category_embedding_dim must be 'auto', a positive int or a dict of them; got "
            f"{embedding_dim!r}."
        )
    return int(embedding_dim)


def _level_codes(column, levels: list[str]) -> np.ndarray:
    """Each row's code: 0 when missing, 1 when rare or unseen, else 2 + the level's index."""
    codes, keys = _factorize(column)
    if not keys:  # every row missing (or no rows)
        return np.full(len(codes), MISSING_CODE)
    lookup = pd.Index(levels).get_indexer(pd.Index(keys, dtype=object))
    by_key = np.where(lookup >= 0, lookup + _FIRST_LEVEL, RARE_CODE)
    return np.where(codes >= 0, by_key[np.maximum(codes, 0)], MISSING_CODE)


# ------------------------------------------------------------------ an embedder's table
#: The embedder parameters that decide the schema it learns at fit, by the keyword of
#: :func:`learn_schema` each sets.
SCHEMA_PARAMETERS = {
    "categorical_features": "categorical_features",
    "min_frequency": "min_frequency",
    "embedding_dim": "category_embedding_dim",
    "text_features": "text_features",
}


def schema_options(params: dict) -> dict:
    """:func:`learn_schema`'s keyword arguments from an embedder's parameters ``params`` (its
    ``get_params()``)."""
    return {keyword: params[name] for keyword, name in SCHEMA_PARAMETERS.items()}


def learn_table_schema(table: pd.DataFrame, params: dict) -> TableSchema:
    """The schema that an embedder with the parameters ``params`` (its ``get_params()``)
    learns at fit from the DataFrame ``table``, whose string column names are kept. Raises
    the ValueError that fit raises for a table it refuses (a column of an unsupported type,
    infinite values, a column with no value, ...): a table can be checked before a fit."""
    names = [str(c) for c in table.columns] if has_string_names(table) else None
    return learn_schema(frame_columns(table), names, **schema_options(params))


def categorical_positions(
    columns: list, names=None, categorical_features="from_dtype", *, exclude=()
) -> list[int]:
    """The positions, sorted, of the ``columns`` (one 1-D array or Series per column, named
    ``names`` or None) that ``categorical_features`` makes categorical, as in
    :func:`learn_schema`: "from_dtype" (category, string/object and bool columns, but not those
    at the positions in ``exclude``, the text columns), None, names, indices or a boolean
    mask."""
    chosen = _categorical_positions(columns, names, categorical_features, exclude=set(exclude))
    return sorted(chosen)
