"""Character n-grams within words, hashed: scikit-learn's
``HashingVectorizer(analyzer="char_wb", alternate_sign=False, norm=None)`` counts, computed with
NumPy for ASCII text.

scikit-learn builds each n-gram as a Python string and hashes it one at a time, which costs
about 2 microseconds per n-gram: a million names take tens of seconds. Here the n-grams of all
the ASCII texts are cut from one byte array and hashed together (MurmurHash3, x86 32-bit, seed
0: the hash scikit-learn uses), giving the same bucket counts. Texts with other characters
(their n-grams are UTF-8 strings of varying byte lengths) go through scikit-learn.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# Python's str.split() splits at these ASCII characters (\t \n \v \f \r, \x1c-\x1f, space).
_WHITESPACE = np.zeros(256, bool)
_WHITESPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_SPACE = ord(" ")

_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _fmix(h: np.ndarray) -> np.ndarray:
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def murmurhash3_32(keys: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Signed 32-bit MurmurHash3 (seed 0) of keys of at most 4 bytes: ``keys`` holds each
    key's bytes little-endian in a uint32, ``lengths`` their byte counts (1 to 4)."""
    keys, lengths = keys.astype(np.uint32), lengths.astype(np.uint32)
    h = np.zeros(len(keys), np.uint32)
    full = lengths == 4
    with np.errstate(over="ignore"):
        k = keys * _C1
        k = _rotl(k, 15) * _C2
        # A 4-byte key is one block (mixed into h, then h rotated, scaled and offset); a
        # shorter one is the tail (mixed in without the rest).
        block = _rotl(h ^ k, 13) * np.uint32(5) + np.uint32(0xE6546B64)
        h = np.where(full, block, h ^ k)
        h ^= lengths
        h = _fmix(h)
    return h.view(np.int32)


def _bucket(signed: np.ndarray, n_buckets: int) -> np.ndarray:
    """scikit-learn's bucket of a signed hash: abs(h) mod n (its wrap-around for -2**31)."""
    h = signed.astype(np.int64)
    index = np.abs(h) % n_buckets
    lowest = h == -(2**31)
    index[lowest] = (2**31 - 1 - (n_buckets - 1)) % n_buckets
    return index


def _ascii_counts(texts: list[str], ngram_range, n_buckets: int) -> sp.csr_matrix:
    """The (texts, buckets) counts of the char_wb n-grams of lower-cased ASCII texts."""
    data = "\x00".join(texts).lower().encode("ascii")
    raw = np.frombuffer(data, np.uint8)
    text_of_byte = np.cumsum(np.concatenate([[0], raw[:-1] == 0]))
    word_byte = ~_WHITESPACE[raw] & (raw != 0)
    # Words: maximal runs of non-whitespace bytes within a text.
    edges = np.diff(np.concatenate([[0], word_byte.view(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    word_text = text_of_byte[starts]
    padded_length = ends - starts + 2  # " " + word + " "
    # Each padded word laid out in one buffer: position 0 and the last are spaces.
    offsets = np.concatenate([[0], np.cumsum(padded_length)[:-1]])
    buffer = np.full(int(padded_length.sum()) + 4, _SPACE, np.uint8)
    inner = np.repeat(offsets + 1 - starts, ends - starts) + np.flatnonzero(word_byte)
    buffer[inner] = raw[word_byte]
    rows, buckets = [], []
    low, high = ngram_range
    for n in range(low, high + 1):
        # Offsets 0 .. max(0, L - n) of each padded word of length L; a word with L <= n gives
        # one n-gram, itself, and none for larger n (scikit-learn counts a short word once).
        keep = padded_length >= n if n > low else np.ones(len(padded_length), bool)
        count = np.maximum(padded_length[keep] - n + 1, 1)
        first = offsets[keep]
        position = np.repeat(first - np.cumsum(np.concatenate([[0], count[:-1]])), count)
        position += np.arange(int(count.sum()))
        length = np.minimum(np.repeat(padded_length[keep], count), n).astype(np.uint32)
        key = np.zeros(len(position), np.uint32)
        for i in range(n):
            byte = buffer[position + i].astype(np.uint32)
            key |= np.where(i < length, byte, 0) << np.uint32(8 * i)
        buckets.append(_bucket(murmurhash3_32(key, length), n_buckets))
        rows.append(np.repeat(word_text[keep], count))
    row, bucket = np.concatenate(rows), np.concatenate(buckets)
    counts = sp.csr_matrix(
        (np.ones(len(row)), (row, bucket)), shape=(len(texts), n_buckets), dtype=np.float64
    )
    counts.sum_duplicates()
    return counts


def ngram_counts(texts: list[str], hasher) -> sp.csr_matrix:
    """``hasher.transform(texts)`` (a scikit-learn char_wb HashingVectorizer without signs or
    norm, lower-casing), with the ASCII texts counted by NumPy."""
    ascii_rows = np.fromiter((t.isascii() and "\x00" not in t for t in texts), bool, len(texts))
    if len(texts) == 0:
        return sp.csr_matrix((0, hasher.n_features), dtype=np.float64)
    if not ascii_rows.any():
        return hasher.transform(texts)
    ascii_texts = [t for t, a in zip(texts, ascii_rows, strict=True) if a]
    counts = _ascii_counts(ascii_texts, hasher.ngram_range, hasher.n_features)
    if ascii_rows.all():
        return counts
    others = hasher.transform([t for t, a in zip(texts, ascii_rows, strict=True) if not a])
    order = np.argsort(np.concatenate([np.flatnonzero(ascii_rows), np.flatnonzero(~ascii_rows)]))
    return sp.vstack([counts, others], format="csr")[order]
