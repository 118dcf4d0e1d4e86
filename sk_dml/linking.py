"""Record linkage and deduplication: two tables and some known links in, a table of candidate
matches with calibrated probabilities out.

The workflow of recordlinkage and splink, with a learned distance in place of hand-written
comparisons and blocking rules::

    linker = Linker(key="id").fit(left, right, links)      # links: pairs of ids
    matches = linker.match(left, right, k=10, threshold=0.5)

``fit`` stacks the two tables, turns the known links into labelled pairs of rows (each link a
match; ``negatives_per_link`` random pairs of linked records that are not linked to each other
as non-matches) and trains a :class:`~sk_dml.PairEmbedder` on them. A share of
the links (``calibration_fraction``) is kept out of training. After each epoch, the held-out
left records' partners are searched among their nearest candidates: the epoch that retrieves
them best is kept (the untrained network, a TF-IDF-like start, is a candidate too). Their
candidates, labelled by the links, then fit the map from distance to match probability (Platt
scaling: a logistic regression on the distance), so the probabilities are those of records the
network never trained on. ``match`` embeds both tables and finds each left record's ``k``
nearest right records with :class:`~sk_dml.ApproximateKNeighborsTransformer` (exact
search for small tables, a faiss inverted-file index for large ones): the candidate set that
blocking rules would give, without writing any. Deduplication of one table is the same calls
with ``right=None``.

The column statistics (standardisation, category levels, text n-gram weights) are learned
from every row of both tables, the records to be matched included: they are unsupervised, as
a TF-IDF vectoriser is fitted on the whole corpus, and they see no link.

Known links are read as one-to-one for calibration: a linked record's other candidates are
taken as non-matches. Links are an equivalence (their connected components are the entities).
"""

from __future__ import annotations

import copy
from numbers import Integral, Real

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils import check_random_state, metadata_routing
from sklearn.utils.validation import check_is_fitted

from ._sklearn_compat import Interval, StrOptions, _fit_context
from .neighbors import ApproximateKNeighborsTransformer
from .tuple_embedders import PairEmbedder

__all__ = ["Linker", "MATCH_COLUMNS", "RECORD_COLUMN"]

#: The columns of :meth:`Linker.match`'s table.
MATCH_COLUMNS = ("left_id", "right_id", "distance", "probability", "rank")

#: The column :class:`Linker` adds with ``record_text``: the record's text fields joined.
RECORD_COLUMN = "__record_text__"

# Rows embedded per call of the embedder in match: bounds the memory of the encoded table.
_EMBED_CHUNK = 65_536


def default_embedder() -> PairEmbedder:
    """The embedder a :class:`Linker` trains when given none: a wide embedding (256
    components, the whole TF-IDF start kept) compared by cosine, as TF-IDF is; the Linker
    chooses its epochs on held-out links."""
    return PairEmbedder(n_components=256, normalize=True, early_stopping=False)


class Linker(BaseEstimator):
    """Link the records of two tables (or deduplicate one) with a learned distance.

    Parameters
    ----------
    embedder : PairEmbedder or None, default=None
        The embedder to train (cloned; its ``preprocessor`` is set to the stacked tables).
        None: ``PairEmbedder(n_components=256, normalize=True, early_stopping=False)``. It is
        trained an epoch at a time (``partial_fit``, at its ``learning_rate``), for at most
        its ``max_epochs``, and the Linker keeps the epoch whose held-out links are best
        retrieved, stopping after ``n_iter_no_change`` epochs without a gain above ``tol``
        (the embedder's own ``early_stopping`` is not used).
    key : str or None, default=None
        The column holding each record's id, left out of the features. None: the tables'
        index labels are the ids.
    record_text : bool, default=True
        Add a text column holding each record's string fields joined: its character
        n-grams match a record whose fields are swapped or split differently, as a TF-IDF of
        the whole record does, while the network still reads each column on its own.
    n_neighbors : int, default=10
        Candidates per left record in :meth:`match` (its ``k`` when not given), and the
        candidates scored per held-out record for calibration.
    negatives_per_link : int, default=4
        Non-matching pairs drawn per link for training: a record of one link with a record of
        another (in the other table when linking two), never linked to it.
    calibration_fraction : float in (0, 1), default=0.2
        The share of the links kept out of training to calibrate the match probability (at
        least 2 links stay on each side).
    backend : {"auto", "faiss", "exact"}, default="auto"
        The neighbour search of :meth:`match`
        (:class:`~sk_dml.ApproximateKNeighborsTransformer`'s): "auto" takes faiss for
        50,000 right records or more when it is installed.
    n_probe : int, default=32
        Cells of the faiss index each query scans (recall against speed).
    random_state : int, RandomState instance or None, default=None
        Seeds the split of the links, the non-matching pairs, and the embedder when its own
        ``random_state`` is None.

    Attributes
    ----------
    embedder_ : PairEmbedder
        The trained embedder (its ``preprocessor`` is the stacked tables of ``fit``).
    calibrator_ : LogisticRegression
        Match probability from the distance, fitted on the held-out links' candidates.
    n_links_ : int
        Distinct links given to ``fit``; ``n_train_links_`` of them trained the embedder.
    calibration_links_ : DataFrame
        The links kept out of training (``left_id``, ``right_id``) to calibrate.
    deduplicating_ : bool
        Whether ``fit`` was given one table.
    validation_scores_ : list of float
        The held-out links' mean reciprocal rank among their candidates before training and
        after each epoch; ``best_epoch_`` is the epoch kept (0: the untrained network) and
        ``n_epochs_`` the epochs trained.

    Examples
    --------
    >>> from sk_dml.datasets import make_linkage_tables
    >>> left, right, links = make_linkage_tables(2_000, random_state=0)
    >>> linker = Linker(key="id", random_state=0).fit(left, right, links[:500])
    >>> linker.match(left, right, k=5).head()  # doctest: +SKIP
    """

    _parameter_constraints: dict = {
        "embedder": [None, PairEmbedder],
        "key": [None, str],
        "record_text": ["boolean"],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "negatives_per_link": [Interval(Integral, 1, None, closed="left")],
        "calibration_fraction": [Interval(Real, 0, 1, closed="neither")],
        "backend": [StrOptions({"auto", "faiss", "exact"})],
        "n_probe": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    # The tables and links of fit and transform are data, not metadata for scikit-learn's
    # routing (so no set_fit_request or set_transform_request method is made for them).
    __metadata_request__fit = {name: metadata_routing.UNUSED for name in ("left", "right", "links")}
    __metadata_request__transform = {"table": metadata_routing.UNUSED}

    def __init__(
        self,
        embedder=None,
        *,
        key=None,
        record_text=True,
        n_neighbors=10,
        negatives_per_link=4,
        calibration_fraction=0.2,
        backend="auto",
        n_probe=32,
        random_state=None,
    ):
        self.embedder = embedder
        self.key = key
        self.record_text = record_text
        self.n_neighbors = n_neighbors
        self.negatives_per_link = negatives_per_link
        self.calibration_fraction = calibration_fraction
        self.backend = backend
        self.n_probe = n_probe
        self.random_state = random_state

    # ------------------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, left, right=None, links=None):
        """Train on the known ``links`` between ``left`` and ``right`` (or within ``left``).

        Parameters
        ----------
        left, right : DataFrame
            The two tables, with the same feature columns (in any order). ``right=None``:
            deduplicate ``left``.
        links : DataFrame or array-like of shape (n_links, 2)
            Pairs of ids (``key`` values, or index labels) of records that match: a left id
            then a right id. A DataFrame's first two columns are read.

        Returns the fitted linker.
        """
        rng = check_random_state(self.random_state)
        self.deduplicating_ = right is None
        left_ids, left_rows = self._read_table(left, "left")
        if self.deduplicating_:
            right_ids, right_rows = left_ids, left_rows
        else:
            right_ids, right_rows = self._read_table(right, "right")
            right_rows = _same_columns(left_rows, right_rows)
        self.columns_ = list(left_rows.columns)
        pairs = self._read_links(links, left_ids, right_ids)
        offset = 0 if self.deduplicating_ else len(left_rows)
        stacked = left_rows if self.deduplicating_ else pd.concat([left_rows, right_rows])
        stacked = self._features(stacked.reset_index(drop=True))
        pairs[:, 1] += offset

        n_calibration = int(round(self.calibration_fraction * len(pairs)))
        n_calibration = min(max(n_calibration, 2), len(pairs) - 2)
        order = rng.permutation(len(pairs))
        held_out, trained = pairs[order[:n_calibration]], pairs[order[n_calibration:]]
        self.n_links_, self.n_train_links_ = len(pairs), len(trained)
        self.calibration_links_ = pd.DataFrame(
            {"left_id": left_ids[held_out[:, 0]], "right_id": right_ids[held_out[:, 1] - offset]}
        )

        negatives = _non_links(trained, pairs, self.negatives_per_link, rng)
        X = np.concatenate([trained, negatives])
        y = np.repeat([1, 0], [len(trained), len(negatives)])
        embedder = clone(self.embedder) if self.embedder is not None else default_embedder()
        if embedder.random_state is None:
            embedder.set_params(random_state=rng.randint(np.iinfo(np.int32).max))
        self.embedder_ = embedder.set_params(preprocessor=stacked)
        self._train(X, y, stacked, offset, held_out, pairs)
        self._fit_calibrator(stacked, offset, held_out, pairs)
        return self

    def _train(self, X, y, stacked, offset: int, held_out, pairs) -> None:
        """Train the embedder an epoch at a time (``partial_fit``) and keep the network whose
        held-out links are best retrieved (the mean reciprocal rank of each held-out left
        record's partner among its ``n_neighbors`` candidates), the untrained one included;
        stop after ``n_iter_no_change`` epochs without a gain above ``tol``."""
        embedder = self.embedder_
        rate = embedder.learning_rate
        # A first epoch at a negligible rate builds the untrained network: the start is a
        # candidate, so the fit never ends below it on the held-out links.
        embedder.set_params(learning_rate=1e-30).partial_fit(X, y)
        embedder.set_params(learning_rate=rate)
        best = self._retrieval_score(stacked, offset, held_out, pairs)
        self.validation_scores_ = [best]
        best_state, best_epoch, epoch = copy.deepcopy(embedder.module_.state_dict()), 0, 0
        for epoch in range(1, embedder.max_epochs + 1):
            embedder.partial_fit(X, y)
            score = self._retrieval_score(stacked, offset, held_out, pairs)
            self.validation_scores_.append(score)
            if score > best + embedder.tol:
                best, best_epoch = score, epoch
                best_state = copy.deepcopy(embedder.module_.state_dict())
            elif epoch - best_epoch >= embedder.n_iter_no_change:
                break
        embedder.module_.load_state_dict(best_state)
        embedder.calibrate_threshold(X, y)  # the kept network's, on the training pairs
        self.best_epoch_, self.n_epochs_ = best_epoch, epoch

    def _candidates(self, Z, offset: int, queries):
        """The ``n_neighbors`` nearest right rows of the left rows ``queries`` in the stacked
        embeddings ``Z`` (right rows from ``offset``): distances and stacked positions."""
        left, right = (Z, Z) if self.deduplicating_ else (Z[:offset], Z[offset:])
        k = min(self.n_neighbors, len(right) - self.deduplicating_)
        exclude = queries if self.deduplicating_ else None
        distance, candidate = self._search(right, left[queries], k, exclude=exclude)
        return distance, candidate + offset

    def _retrieval_score(self, stacked, offset: int, held_out, pairs) -> float:
        """Mean reciprocal rank of the held-out links among their left records' candidates
        (0 where not among them)."""
        queries = held_out[:, 0]
        _, candidate = self._candidates(self.embedder_.transform(stacked), offset, queries)
        linked = _entity_pairs(pairs, len(stacked))(
            np.broadcast_to(queries[:, None], candidate.shape), candidate
        )
        rank = np.where(linked.any(axis=1), linked.argmax(axis=1) + 1, np.inf)
        return float(np.mean(1 / rank))

    def _read_table(self, table, name: str) -> tuple[pd.Index, pd.DataFrame]:
        """The ids (``key``'s column or the index) and the feature columns of a table (with
        the record's text, when ``record_text``)."""
        if not isinstance(table, pd.DataFrame):
            raise TypeError(f"{name} must be a pandas DataFrame, got {type(table).__name__}.")
        if len(table) == 0:
            raise ValueError(f"{name} has no rows.")
        if self.key is None:
            ids, rows = table.index, table
        else:
            if self.key not in table.columns:
                raise ValueError(
                    f"The key column {self.key!r} is not in {name}, whose columns are "
                    f"{list(map(str, table.columns))}."
                )
            ids, rows = pd.Index(table[self.key]), table.drop(columns=self.key)
            if ids.hasnans:
                raise ValueError(
                    f"The key column {self.key!r} of {name} has {int(ids.isna().sum())} missing "
                    f"values (rows {np.flatnonzero(ids.isna())[:5].tolist()}...); every record "
                    "needs an id."
                )
        if not ids.is_unique:
            repeated = ids[ids.duplicated()].unique()[:5].tolist()
            where = f"key column {self.key!r}" if self.key is not None else "index"
            raise ValueError(
                f"The {where} of {name} repeats ids (e.g. {repeated}); each record needs its "
                "own id."
            )
        if rows.shape[1] == 0:
            raise ValueError(f"{name} has no feature column besides its key.")
        return ids, rows

    def _read_links(self, links, left_ids: pd.Index, right_ids: pd.Index) -> np.ndarray:
        """The links as (left row, right row) positions, int64 of shape (n_links, 2)."""
        if links is None:
            raise ValueError("fit needs links: pairs of ids of matching records.")
        frame = links if isinstance(links, pd.DataFrame) else pd.DataFrame(_pairs_array(links))
        if frame.shape[1] < 2 or len(frame) == 0:
            raise ValueError(
                f"links must hold pairs of ids, shape (n_links, 2); got shape {frame.shape}."
            )
        positions = []
        for column, ids, side in ((0, left_ids, "left"), (1, right_ids, "right")):
            values = frame.iloc[:, column]
            found = ids.get_indexer(values)
            if (found < 0).any():
                absent = pd.unique(values[found < 0])
                raise ValueError(
                    f"{len(absent)} ids of the links' {side} column are not ids of the {side} "
                    f"table, e.g. {absent[:5].tolist()}."
                )
            positions.append(found)
        pairs = np.column_stack(positions).astype(np.int64)
        if self.deduplicating_:
            self_links = pairs[:, 0] == pairs[:, 1]
            if self_links.any():
                raise ValueError(
                    f"{int(self_links.sum())} links pair a record with itself, e.g. id "
                    f"{left_ids[pairs[self_links][0, 0]]!r}."
                )
        pairs = np.unique(np.sort(pairs, axis=1) if self.deduplicating_ else pairs, axis=0)
        if len(pairs) < 4:
            raise ValueError(
                f"fit needs at least 4 distinct links (2 to train, 2 to calibrate); got "
                f"{len(pairs)}."
            )
        return pairs

    def _fit_calibrator(self, stacked, offset: int, held_out, pairs) -> None:
        """Platt scaling on the held-out links' records: their ``n_neighbors`` nearest
        candidates, a match where linked, else not (links read as one-to-one)."""
        queries = held_out[:, 0]
        distance, candidate = self._candidates(self.embedder_.transform(stacked), offset, queries)
        linked = _entity_pairs(pairs, len(stacked))
        label = linked(np.broadcast_to(queries[:, None], candidate.shape), candidate)
        distance, label = distance.ravel(), label.ravel()
        if label.all() or not label.any():
            # Candidates of one kind only: one pseudo-observation of the other kind (a match
            # at distance 0, or a non-match at twice the largest distance) keeps the map
            # monotone and finite.
            distance = np.append(distance, 0.0 if not label.any() else 2 * distance.max() + 1)
            label = np.append(label, not label.any())
        self.calibrator_ = LogisticRegression(C=1e4).fit(distance[:, None], label)

    # ----------------------------------------------------------------------------- match
    def match(self, left, right=None, *, k=None, threshold=None) -> pd.DataFrame:
        """The candidate matches of each left record among the right ones (or, with
        ``right=None``, among the other records of ``left``).

        Parameters
        ----------
        left, right : DataFrame
            Tables with the feature columns of ``fit`` (and ``key``'s column).
        k : int or None
            Candidates per left record (``n_neighbors`` when None).
        threshold : float in [0, 1] or None
            Keep only the candidates whose match probability is at least this.

        Returns
        -------
        matches : DataFrame
            Columns ``left_id``, ``right_id``, ``distance`` (learned), ``probability`` (of a
            match, calibrated) and ``rank`` (1 for the nearest candidate of the left record),
            sorted by left record then rank. Deduplicating, each pair of records appears once,
            with the smaller rank of the two directions.
        """
        check_is_fitted(self)
        k = self.n_neighbors if k is None else k
        if not isinstance(k, Integral) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        if threshold is not None and not (isinstance(threshold, Real) and 0 <= threshold <= 1):
            raise ValueError(
                f"threshold must be a probability in [0, 1] or None, got {threshold!r}."
            )
        left_ids, left_rows = self._read_table(left, "left")
        deduplicating = right is None
        if deduplicating:
            right_ids, right_rows = left_ids, left_rows
        else:
            right_ids, right_rows = self._read_table(right, "right")
        Z_left = self._embed(left_rows)
        Z_right = Z_left if deduplicating else self._embed(right_rows)
        k = min(k, len(Z_right) - deduplicating)
        if k < 1:
            raise ValueError("The right table has no record to match.")
        exclude = np.arange(len(Z_left)) if deduplicating else None
        distance, candidate = self._search(Z_right, Z_left, k, exclude=exclude)
        query = np.repeat(np.arange(len(Z_left)), k)
        rank = np.tile(np.arange(1, k + 1), len(Z_left))
        distance, candidate = distance.ravel(), candidate.ravel()
        if deduplicating:
            query, candidate, distance, rank = _one_per_pair(query, candidate, distance, rank)
        probability = self.calibrator_.predict_proba(distance[:, None])[:, 1]
        keep = slice(None) if threshold is None else probability >= threshold
        return pd.DataFrame(
            {
                "left_id": left_ids[query[keep]],
                "right_id": right_ids[candidate[keep]],
                "distance": distance[keep],
                "probability": probability[keep],
                "rank": rank[keep],
            }
        ).reset_index(drop=True)

    def transform(self, table) -> np.ndarray:
        """The embeddings of a table's records, as :meth:`match` compares them (float32, one
        row per record; ``embedder_.embedding_metric_`` is their distance)."""
        check_is_fitted(self)
        return self._embed(self._read_table(table, "table")[1])

    def _features(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The rows as the embedder reads them: with ``record_text``, one more column holding
        the record's text fields joined (a text column: its n-grams ignore which field a
        word is in, as a TF-IDF of the whole record does)."""
        if not self.record_text:
            return rows
        texts = [c for c in rows.columns if _is_text_like(rows[c])]
        if not texts:
            return rows
        parts = [rows[c].astype("string") for c in texts]
        # Missing fields join as "" (the extra spaces split no word differently).
        joined = parts[0].str.cat(parts[1:], sep=" ", na_rep="").str.strip()
        return rows.assign(**{RECORD_COLUMN: joined.replace("", pd.NA)})

    def _embed(self, rows: pd.DataFrame) -> np.ndarray:
        """Embeddings of the rows, a chunk at a time (the encoded table stays small)."""
        missing = [c for c in self.columns_ if c not in rows.columns]
        if missing:
            raise ValueError(f"The table lacks the columns {missing} that fit saw.")
        rows = self._features(rows[self.columns_])
        return np.concatenate(
            [
                self.embedder_.transform(rows.iloc[start : start + _EMBED_CHUNK])
                for start in range(0, len(rows), _EMBED_CHUNK)
            ]
        )

    def _search(self, Z_right, Z_query, k: int, exclude=None):
        """Distances and positions of each query's ``k`` nearest right rows, nearest first;
        ``exclude[i]`` (a right position) is never query i's candidate."""
        extra = exclude is not None
        width = k + extra
        search = ApproximateKNeighborsTransformer(
            n_neighbors=max(width - 1, 1),  # the transformer returns n_neighbors + 1 per row
            metric=self.embedder_.embedding_metric_,
            backend=self.backend,
            n_probe=self.n_probe,
            random_state=0,
        ).fit(Z_right)
        graph = search.transform(Z_query)
        distance = graph.data.reshape(len(Z_query), -1)[:, :width]
        candidate = graph.indices.reshape(len(Z_query), -1)[:, :width]
        if not extra:
            return distance, candidate
        # Drop the excluded row where it was found, else the farthest candidate.
        drop = candidate == np.asarray(exclude)[:, None]
        drop[~drop.any(axis=1), -1] = True
        keep = ~drop
        return distance[keep].reshape(-1, k), candidate[keep].reshape(-1, k)


# ------------------------------------------------------------------------- model files
# sk_dml.save stores a fitted Linker as its embedder's file with this JSON in the file's extra.
MODEL_FILE_KEY = "linker"


def linker_state(linker: Linker) -> dict:
    """What a model file keeps of a fitted linker besides its embedder: its parameters (but
    the embedder, and a random state that is not an int) and what ``match`` needs."""
    check_is_fitted(linker)
    params = linker.get_params(deep=False)
    params.pop("embedder")
    if not isinstance(params["random_state"], Integral):
        params["random_state"] = None
    calibrator = linker.calibrator_
    return {
        "params": params,
        "columns": [str(c) for c in linker.columns_],
        "deduplicating": bool(linker.deduplicating_),
        "n_links": int(linker.n_links_),
        "n_train_links": int(linker.n_train_links_),
        "calibration": [float(calibrator.coef_[0, 0]), float(calibrator.intercept_[0])],
    }


def linker_from_state(embedder: PairEmbedder, state: dict) -> Linker:
    """The fitted linker :func:`linker_state` describes, around the loaded ``embedder``
    (``calibration_links_`` is not kept)."""
    linker = Linker(clone(embedder), **state["params"])
    linker.embedder_ = embedder
    linker.columns_ = list(state["columns"])
    linker.deduplicating_ = bool(state["deduplicating"])
    linker.n_links_, linker.n_train_links_ = int(state["n_links"]), int(state["n_train_links"])
    slope, intercept = state["calibration"]
    calibrator = LogisticRegression(C=1e4)
    calibrator.classes_ = np.array([False, True])
    calibrator.coef_, calibrator.intercept_ = np.array([[slope]]), np.array([intercept])
    calibrator.n_features_in_, calibrator.n_iter_ = 1, np.array([0])
    linker.calibrator_ = calibrator
    return linker


def _is_text_like(column: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(column) or pd.api.types.is_object_dtype(column)


def _pairs_array(links) -> np.ndarray:
    array = np.asarray(links, dtype=object)
    if array.ndim != 2:
        raise ValueError(
            f"links must hold pairs of ids, shape (n_links, 2); got shape {array.shape}."
        )
    return array


def _same_columns(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """``right``'s columns in ``left``'s order; an error naming those that differ."""
    only_left = [c for c in left.columns if c not in right.columns]
    only_right = [c for c in right.columns if c not in left.columns]
    if only_left or only_right:
        raise ValueError(
            f"left and right need the same feature columns; only in left: {only_left}, only in "
            f"right: {only_right}."
        )
    return right[list(left.columns)]


def _entity_pairs(pairs: np.ndarray, n_rows: int):
    """A function telling whether rows a and b (arrays) are linked, directly or through other
    links (the connected components of the link graph)."""
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), (n_rows, n_rows))
    _, entity = connected_components(graph, directed=False)
    return lambda a, b: entity[a] == entity[b]


def _non_links(trained: np.ndarray, pairs: np.ndarray, per_link: int, rng) -> np.ndarray:
    """``per_link`` pairs per trained link of a first record of one link and a second record
    of another, not linked to each other (directly or not); drawn uniformly, distinct."""
    n_rows = int(pairs.max()) + 1
    linked = _entity_pairs(pairs, n_rows)
    firsts, seconds = np.unique(trained[:, 0]), np.unique(trained[:, 1])
    wanted = per_link * len(trained)
    found = np.empty((0, 2), np.int64)
    for _ in range(20):  # rejection sampling; tiny tables may hold fewer distinct non-links
        a = firsts[rng.randint(len(firsts), size=2 * wanted)]
        b = seconds[rng.randint(len(seconds), size=2 * wanted)]
        keep = (a != b) & ~linked(a, b)
        found = np.unique(np.concatenate([found, np.column_stack([a, b])[keep]]), axis=0)
        if len(found) >= wanted:
            break
    if len(found) == 0:
        raise ValueError(
            "The links leave no pair of records to use as a non-match (every linked record is "
            "linked to every other); give more links."
        )
    return found[rng.permutation(len(found))[:wanted]]


def _one_per_pair(query, candidate, distance, rank):
    """Deduplication's candidates with each unordered pair once (the smaller rank)."""
    a, b = np.minimum(query, candidate), np.maximum(query, candidate)
    order = np.lexsort((rank, b, a))
    a, b, distance, rank = a[order], b[order], distance[order], rank[order]
    first = np.ones(len(a), bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    a, b, distance, rank = a[first], b[first], distance[first], rank[first]
    order = np.lexsort((rank, a))
    return a[order], b[order], distance[order], rank[order]
