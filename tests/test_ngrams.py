"""The NumPy n-gram counts equal scikit-learn's HashingVectorizer's, byte for byte."""

import numpy as np
import pytest

from sk_dml._cells import text_hasher
from sk_dml._ngrams import murmurhash3_32, ngram_counts

EDGE_CASES = [
    "",
    " ",
    "\t\n",
    "a",
    "ab",
    "abc",
    "abcd",
    "a b",
    "  a  bc d ",
    "\x1c\x1dx\x1f",
    "MiXeD CaSe",
    "ÉCOLE née",
    "a\x00b",
    "日本 語",
    "x" * 300,
    "12-34 56.7",
]


def random_texts(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(seed)
    alphabet = list("abcXYZ019 -.'\t\n\x0b\x1c") + ["é", "ß", "日", "\u00a0"]
    return ["".join(rng.choice(alphabet, size=rng.integers(0, 30))) for _ in range(n)]


@pytest.mark.parametrize("ngram_range", [(2, 4), (1, 3), (3, 3), (1, 1)])
@pytest.mark.parametrize("n_buckets", [2**16, 1000, 7])
def test_counts_equal_scikit_learns(ngram_range, n_buckets):
    hasher = text_hasher(ngram_range, n_buckets)
    texts = EDGE_CASES + random_texts(0, 1500)
    expected = hasher.transform(texts)
    found = ngram_counts(texts, hasher)
    assert found.shape == expected.shape
    assert (found != expected).nnz == 0


def test_murmurhash_equals_scikit_learns_on_every_key_length():
    from sklearn.utils import murmurhash3_32 as reference

    rng = np.random.default_rng(1)
    for length in (1, 2, 3, 4):
        raw = rng.integers(32, 127, size=(500, length)).astype(np.uint32)
        keys = sum(raw[:, i] << np.uint32(8 * i) for i in range(length))
        expected = [reference(bytes(row.astype(np.uint8)), seed=0) for row in raw]
        found = murmurhash3_32(keys, np.full(500, length))
        np.testing.assert_array_equal(found, expected)


def test_all_other_texts_go_through_scikit_learn():
    hasher = text_hasher((2, 4), 2**16)
    texts = ["日本", "ÉCOLE", "a\x00b"]
    assert (ngram_counts(texts, hasher) != hasher.transform(texts)).nnz == 0
    assert ngram_counts([], hasher).shape == (0, 2**16)
