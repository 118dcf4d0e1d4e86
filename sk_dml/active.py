"""Active labelling of pairs: which unlabelled pairs of records to label next.

Entity resolution starts with a table and no labelled pairs. :class:`PairLabeller` proposes
pairs to label, takes the answers and refits a :class:`~sk_dml.PairEmbedder` on them, so that
the next proposals come from the better embedding (uncertainty sampling, Lewis & Gale 1994,
over the candidates of a neighbour graph, as the record-linkage library dedupe does with its
blocking):

- Candidates are the pairs of the k-nearest-neighbour graph of the current embedding
  (:class:`~sk_dml.neighbors.ApproximateKNeighborsTransformer`: exact below its
  ``auto_min_samples`` rows, faiss above when installed): the pairs that could be matches;
  pairs labelled already (unsure included) are left out.
- Before the embedder has been fitted (no labels yet, or labels of one kind only), the
  embedding is the untrained input layer, the start of the residual network
  (:class:`sk_dml.nets.TableInput`: numbers standardised, categories one-hot-scaled, text as
  TF-IDF), compared by the metric the embedder will have; half of the proposals are records'
  nearest neighbours, spread evenly over the range of their distances from the nearest pair
  (likely matches), the other half spread over all the candidates (mostly not): both kinds
  of answer come in, so that the embedder can be fitted.
- Once it has been fitted on labels of both kinds, the proposals are the candidates whose
  distance is nearest the threshold the embedder calibrated on the labelled pairs
  (``-threshold_``: its most uncertain decisions), and a share ``exploration`` of them is
  drawn at random from the candidates, so that its mistakes far from the threshold show too.
- Diversity: a batch names each record at most ``max_per_record`` times.

Each :meth:`PairLabeller.teach` records the answers and refits the embedder on every pair
labelled so far, warm (``warm_start=True`` after the first fit: it continues from the current
network).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.utils import check_random_state

from .neighbors import ApproximateKNeighborsTransformer
from .nets import TableInput
from .tabular import frame_columns, learn_table_schema

__all__ = ["PairLabeller"]


class PairLabeller:
    """Propose pairs of a table's rows to label, learn from the answers, repeat.

    Parameters
    ----------
    embedder : PairEmbedder
        Refitted on the labelled pairs (its ``preprocessor`` is set to the table's feature
        columns; after its first fit, ``warm_start=True``).
    table : DataFrame
        The records.
    key : str, optional
        A column of ``table`` that names the records (each value unique): left out of the
        features, and the pairs :meth:`suggest` returns and :meth:`teach` takes are its
        values. Without it, pairs are 0-based row positions.
    n_neighbors : int, default=10
        Neighbours per record in the candidate graph.
    max_per_record : int, default=1
        The most pairs of one batch that name one record.
    exploration : float in [0, 1], default=0.2
        Share of a batch drawn at random from the candidates once the embedder is fitted.
    warm : bool, default=True
        Refit from the current network (``warm_start=True``) or, False, from the start
        each time.
    random_state : int, RandomState instance or None, default=None
        Seeds the untrained input layer and the exploration draws.

    Attributes
    ----------
    pairs_ : ndarray of shape (n_answers, 2)
        The row positions of the pairs answered, in order.
    labels_ : ndarray of shape (n_answers,)
        Their answers: 1 alike, 0 not alike, -1 unsure (not learned from).
    """

    def __init__(
        self,
        embedder,
        table: pd.DataFrame,
        *,
        key: str | None = None,
        n_neighbors: int = 10,
        max_per_record: int = 1,
        exploration: float = 0.2,
        warm: bool = True,
        random_state=None,
    ):
        if not isinstance(table, pd.DataFrame):
            raise ValueError(f"table must be a pandas DataFrame, got {type(table).__name__}.")
        if key is not None:
            if key not in table.columns:
                raise ValueError(f"key {key!r} is not a column of the table.")
            if table[key].isna().any() or table[key].duplicated().any():
                raise ValueError(f"The key column {key!r} must hold a unique value per row.")
        for name, value in (("n_neighbors", n_neighbors), ("max_per_record", max_per_record)):
            if not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not (isinstance(exploration, Real) and 0 <= exploration <= 1):
            raise ValueError(f"exploration must be in [0, 1], got {exploration!r}.")
        if len(table) <= n_neighbors:
            raise ValueError(
                f"The table has {len(table)} rows; n_neighbors={n_neighbors} needs more."
            )
        self.embedder = embedder
        self.key = key
        self.features = table.drop(columns=[key]) if key is not None else table
        self.ids = table[key].to_numpy() if key is not None else np.arange(len(table))
        self.n_neighbors = n_neighbors
        self.max_per_record = max_per_record
        self.exploration = exploration
        self.warm = bool(warm)
        self.random_state = check_random_state(random_state)
        self.pairs_ = np.empty((0, 2), dtype=np.int64)
        self.labels_ = np.empty(0, dtype=np.int64)
        self._position = pd.Index(self.ids)
        self._start = None

    # -- the current embedding ------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        """Whether the embedder has been fitted on the answers (labels of both kinds)."""
        return hasattr(self.embedder, "threshold_")

    def embedding(self) -> tuple[np.ndarray, str]:
        """The records' current embedding and its metric: the fitted embedder's, else the
        untrained input layer (the TF-IDF start)."""
        if self.fitted:
            return self.embedder.transform(self.features), self.embedder.embedding_metric_
        if self._start is None:
            self._start = self._untrained_inputs()
        metric = "cosine" if self.embedder.get_params()["normalize"] else "euclidean"
        return self._start, metric

    def _untrained_inputs(self) -> np.ndarray:
        schema = learn_table_schema(self.features, self.embedder.get_params(deep=False))
        encoded = schema.encode(frame_columns(self.features, schema.feature_names))
        with torch.random.fork_rng():
            torch.manual_seed(int(self.random_state.randint(2**31 - 1)))
            layer = TableInput.for_schema(schema)
        layer.fit_statistics(encoded)
        with torch.no_grad():
            return layer(torch.as_tensor(encoded)).double().numpy()

    def candidates(self) -> pd.DataFrame:
        """The unanswered pairs of the current k-nearest-neighbour graph: columns ``i`` and
        ``j`` (row positions, ``i < j``), ``distance``, and ``rank`` (0 when one is the
        other's nearest neighbour)."""
        Z, metric = self.embedding()
        graph = ApproximateKNeighborsTransformer(
            n_neighbors=self.n_neighbors, metric=metric, random_state=0
        ).fit_transform(Z)
        graph = graph.tocoo()  # row by row, each row's entries in increasing distance
        other = graph.row != graph.col
        row, col, distance = graph.row[other], graph.col[other], graph.data[other]
        rank = np.arange(len(row)) - np.searchsorted(row, row)
        i, j = np.minimum(row, col), np.maximum(row, col)
        found = pd.DataFrame({"i": i, "j": j, "distance": distance, "rank": rank})
        found = found.sort_values("rank", kind="stable").drop_duplicates(["i", "j"])
        if len(self.pairs_):
            answered = pd.MultiIndex.from_arrays(np.sort(self.pairs_, axis=1).T)
            found = found[~pd.MultiIndex.from_frame(found[["i", "j"]]).isin(answered)]
        return found.reset_index(drop=True)

    # -- the loop -------------------------------------------------------------------------
    def suggest(self, n: int = 10) -> pd.DataFrame:
        """The next ``n`` pairs to label (fewer when fewer candidates remain): columns
        ``left`` and ``right`` (key values, or row positions) and ``distance`` in the current
        embedding, in the order proposed."""
        if not isinstance(n, Integral) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}.")
        found = self.candidates()
        if self.fitted:
            uncertainty = np.abs(found["distance"].to_numpy() + self.embedder.threshold_)
            ranked = found.iloc[np.argsort(uncertainty, kind="stable")]
            n_random = int(round(self.exploration * n))
            random = found.iloc[self.random_state.permutation(len(found))]
            chosen = self._diverse([random, ranked], [n_random, n])
        else:
            # Half from each record's nearest neighbour (likely matches), half over all the
            # candidates (mostly not): both kinds of answer, whatever the table.
            nearest = found[found["rank"] == 0].sort_values("distance", kind="stable")
            everything = found.sort_values("distance", kind="stable")
            half = n - n // 2
            sources = [_spread(nearest, half), _spread(everything, n), found]
            chosen = self._diverse(sources, [half, n, n])
        return pd.DataFrame(
            {
                "left": self.ids[chosen["i"].to_numpy()],
                "right": self.ids[chosen["j"].to_numpy()],
                "distance": chosen["distance"].to_numpy(),
            }
        )

    def _diverse(self, sources: list[pd.DataFrame], quotas: list[int]) -> pd.DataFrame:
        """Pairs from ``sources`` in turn, at most ``quotas[s]`` from the first ones and
        ``quotas[-1]`` in all, each record in at most ``max_per_record`` of them: columns
        ``i``, ``j`` and ``distance``."""
        total = quotas[-1]
        used: dict[int, int] = {}
        taken: set[tuple[int, int]] = set()
        chosen = []
        for source, quota in zip(sources, quotas, strict=True):
            count = 0
            for i, j, d in source[["i", "j", "distance"]].itertuples(index=False):
                if len(chosen) >= total or count >= quota:
                    break
                i, j = int(i), int(j)
                if (i, j) in taken or max(used.get(i, 0), used.get(j, 0)) >= self.max_per_record:
                    continue
                taken.add((i, j))
                used[i], used[j] = used.get(i, 0) + 1, used.get(j, 0) + 1
                chosen.append((i, j, d))
                count += 1
        return pd.DataFrame(chosen, columns=["i", "j", "distance"])

    def positions(self, pairs) -> np.ndarray:
        """The row positions of ``pairs`` (key values, or row positions without a key)."""
        pairs = pairs[["left", "right"]].to_numpy() if isinstance(pairs, pd.DataFrame) else pairs
        pairs = np.asarray(pairs, dtype=object if self.key is not None else None)
        if pairs.ndim != 2 or pairs.shape[1] != 2:
            raise ValueError(f"pairs must have shape (n_pairs, 2), got {pairs.shape}.")
        found = self._position.get_indexer(pairs.ravel())
        if (found < 0).any():
            bad = pairs.ravel()[found < 0][0]
            what = f"a value of the key column {self.key!r}" if self.key else "a row position"
            raise ValueError(f"pairs name {bad!r}, which is not {what} of the table.")
        return found.reshape(-1, 2)

    def teach(self, pairs, labels) -> PairLabeller:
        """Record the answers ``labels`` for ``pairs`` (as :meth:`suggest` names them): 1 or
        True alike, 0, -1 or False not alike, None or NaN unsure; then refit the embedder on
        every pair labelled alike or not so far, when there are both kinds. Returns self."""
        index = self.positions(pairs)
        answers = _answers(labels)
        if len(answers) != len(index):
            raise ValueError(f"{len(index)} pairs but {len(answers)} labels.")
        self.pairs_ = np.concatenate([self.pairs_, index])
        self.labels_ = np.concatenate([self.labels_, answers])
        known = self.labels_ >= 0
        if len(np.unique(self.labels_[known])) == 2:
            self._refit(self.pairs_[known], self.labels_[known])
        return self

    def _refit(self, pairs: np.ndarray, labels: np.ndarray) -> None:
        warm = self.warm and hasattr(self.embedder, "module_")
        self.embedder.set_params(preprocessor=self.features, warm_start=warm)
        self.embedder.fit(pairs, labels)


def _answers(labels) -> np.ndarray:
    """Labels as 1 (alike: 1, True), 0 (not: 0, -1, False) or -1 (unsure: None, NaN)."""
    answers = []
    for label in pd.Series(labels, dtype=object):
        if label is None or (isinstance(label, Real) and np.isnan(label)):
            answers.append(-1)
        elif isinstance(label, bool | np.bool_) or label in (0, 1, -1):
            answers.append(int(label == 1))
        else:
            raise ValueError(
                f"Pair labels must be 1 or True (alike), 0, -1 or False (not alike), or None "
                f"(unsure); got {label!r}."
            )
    return np.asarray(answers, dtype=np.int64)


def _spread(ranked: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` rows of ``ranked`` (sorted by distance) at evenly spaced ranks, the first and the
    last included, then the others in order (to fill in for rows diversity refuses)."""
    if len(ranked) <= n:
        return ranked
    picked = np.unique(np.linspace(0, len(ranked) - 1, n).round().astype(int))
    rest = np.setdiff1d(np.arange(len(ranked)), picked)
    return ranked.iloc[np.concatenate([picked, rest])]
