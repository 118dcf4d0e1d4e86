"""Real tabular data sets shipped with the package (UCI, via KEEL; CC BY 4.0).

Each loader returns ``(X, y)``: a pandas DataFrame of features and a Series of class labels.
See ``sk_dml/data/README.md`` for provenance. :func:`make_linkage_tables` makes two synthetic
tables of people to link.
"""

from __future__ import annotations

from importlib import resources
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

__all__ = ["load_letter", "load_nursery", "load_segment", "make_linkage_tables"]


def _load(name: str) -> tuple[pd.DataFrame, pd.Series]:
    with resources.files("sk_dml").joinpath("data", f"{name}.csv.gz").open("rb") as f:
        frame = pd.read_csv(f, compression="gzip")
    return frame.drop(columns="target"), frame["target"]


def load_letter() -> tuple[pd.DataFrame, pd.Series]:
    """UCI Letter Recognition: 20,000 rows, 16 integer features, 26 letters."""
    return _load("letter")


def load_nursery() -> tuple[pd.DataFrame, pd.Series]:
    """UCI Nursery: 12,960 rows, 8 categorical features, 5 classes (one has 2 rows)."""
    return _load("nursery")


def load_segment() -> tuple[pd.DataFrame, pd.Series]:
    """UCI Image Segmentation: 2,310 rows, 19 numeric features, 7 classes."""
    return _load("segment")


# -- synthetic record linkage ------------------------------------------------------------------
_ONSETS = list("bdfghjklmnprstvz") + ["br", "ch", "dr", "gr", "kl", "sh", "st", "th", "tr"]
_NUCLEI = ["a", "e", "i", "o", "u", "ai", "ea", "ie", "ou"]
_CODAS = ["", "", "", "n", "r", "s", "l", "m", "nd", "rt", "ck"]
_STREET_KINDS = {"Street": "St", "Road": "Rd", "Avenue": "Ave", "Lane": "Ln", "Drive": "Dr"}
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _words(rng, n: int, syllables: tuple[int, int]) -> np.ndarray:
    """``n`` distinct capitalised made-up words."""
    found: dict[str, None] = {}
    while len(found) < n:
        size = int(rng.integers(syllables[0], syllables[1] + 1))
        parts = (
            _ONSETS[rng.integers(len(_ONSETS))]
            + _NUCLEI[rng.integers(len(_NUCLEI))]
            + _CODAS[rng.integers(len(_CODAS))]
            for _ in range(size)
        )
        found["".join(parts).capitalize()] = None
    return np.array(list(found), dtype=object)


def _skewed(rng, words: np.ndarray, size: int) -> np.ndarray:
    """Draws from ``words`` with Zipf-like frequencies (a few common names, a long tail)."""
    weights = 1.0 / np.arange(1, len(words) + 1) ** 0.9
    return words[rng.choice(len(words), size=size, p=weights / weights.sum())]


def _people(rng, n: int) -> pd.DataFrame:
    first, last = _words(rng, 400, (2, 2)), _words(rng, 3_000, (2, 3))
    streets, cities = _words(rng, 600, (2, 3)), _words(rng, 120, (2, 3))
    kinds = np.array(list(_STREET_KINDS), dtype=object)
    born = np.datetime64("1940-01-01") + rng.integers(0, 65 * 365, n).astype("timedelta64[D]")
    return pd.DataFrame(
        {
            "first_name": _skewed(rng, first, n),
            "last_name": _skewed(rng, last, n),
            "date_of_birth": np.datetime_as_string(born, unit="D").astype(object),
            "street": rng.integers(1, 400, n).astype(str).astype(object)
            + " "
            + streets[rng.integers(len(streets), size=n)]
            + " "
            + kinds[rng.integers(len(kinds), size=n)],
            "city": _skewed(rng, cities, n),
            "postcode": rng.integers(10_000, 99_999, n).astype(str).astype(object),
        }
    )


def _typo(text: str, rng, alphabet: str) -> str:
    """``text`` with one character inserted, deleted, replaced, or two swapped."""
    i = int(rng.integers(len(text)))
    c = alphabet[rng.integers(len(alphabet))]
    edit = int(rng.integers(4)) if len(text) > 1 else 0
    if edit == 0:
        return text[:i] + c + text[i:]
    if edit == 1:
        return text[:i] + text[i + 1 :]
    if edit == 2:
        return text[:i] + c + text[i + 1 :]
    i = min(i, len(text) - 2)
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def _noisy(people: pd.DataFrame, rng, rate: float) -> pd.DataFrame:
    """A copy of ``people`` with typos (each field with probability ``rate``), missing
    fields, swapped names, abbreviated street kinds and a shifted day of birth."""
    noisy = people.copy()
    n = len(noisy)
    for column in noisy.columns:
        alphabet = "0123456789" if column in ("postcode", "date_of_birth") else _LETTERS
        values = noisy[column].to_numpy(copy=True)
        for i in np.flatnonzero(rng.random(n) < rate):
            values[i] = _typo(values[i], rng, alphabet)
        noisy[column] = values
    swap = rng.random(n) < rate / 4
    noisy.loc[swap, ["first_name", "last_name"]] = noisy.loc[
        swap, ["last_name", "first_name"]
    ].to_numpy()
    short = rng.random(n) < rate
    noisy.loc[short, "street"] = noisy.loc[short, "street"].replace(
        {f" {k}$": f" {v}" for k, v in _STREET_KINDS.items()}, regex=True
    )
    for column in noisy.columns:
        noisy.loc[rng.random(n) < rate / 3, column] = None
    return noisy.astype("string")


def make_linkage_tables(
    n_records: int = 10_000, *, overlap: float = 0.8, noise: float = 0.2, random_state=None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Two synthetic tables of people with typos and gaps, and the links between them.

    Each table has ``n_records`` rows: an ``id`` column ("L00012", "R00345": unrelated
    numbers) and the string columns first_name, last_name, date_of_birth, street, city and
    postcode. A share ``overlap`` of the left table's people also appear in the right table;
    the other records of each table are people of their own. Both copies are corrupted: a
    field gets a typo with probability ``noise / 2`` on the left and ``noise`` on the right,
    and is missing with a third of that; names are sometimes swapped and street kinds
    abbreviated. Names follow Zipf-like frequencies, so many people share a first name or a
    surname. Made-up words only: no real person.

    Returns ``(left, right, links)``; ``links`` has the columns ``left_id`` and ``right_id``,
    one row per person in both tables, in random order.
    """
    if not (isinstance(n_records, Integral) and n_records >= 1):
        raise ValueError(f"n_records must be a positive integer, got {n_records!r}.")
    for name, value in (("overlap", overlap), ("noise", noise)):
        if not (isinstance(value, Real) and 0 <= value <= 1):
            raise ValueError(f"{name} must be in [0, 1], got {value!r}.")
    rng = np.random.default_rng(check_random_state(random_state).randint(2**31))
    n_shared = int(round(overlap * n_records))
    people = _people(rng, 2 * n_records - n_shared)
    in_left = np.arange(n_records)
    in_right = np.concatenate([np.arange(n_shared), np.arange(n_records, len(people))])
    left = _noisy(people.iloc[in_left].reset_index(drop=True), rng, noise / 2)
    right = _noisy(people.iloc[in_right].reset_index(drop=True), rng, noise)
    for prefix, table in (("L", left), ("R", right)):
        numbers = rng.permutation(10 * n_records)[:n_records].astype(str)
        ids = np.char.add(prefix, np.char.zfill(numbers, len(str(10 * n_records - 1))))
        table.insert(0, "id", pd.array(ids, dtype="string"))
    right_order = rng.permutation(n_records)
    right = right.iloc[right_order].reset_index(drop=True)
    position_in_right = np.argsort(right_order)
    order = rng.permutation(n_shared)
    links = pd.DataFrame(
        {
            "left_id": left["id"].to_numpy()[order],
            "right_id": right["id"].to_numpy()[position_in_right[order]],
        }
    )
    return left, right, links
