"""Categorical features: counting categories fast and comparing counts with the reference.

Category values are compared as strings (the reference document stores counts keyed by string,
and CSV capture payloads are text). `category_key` is the one rule that turns a value into its
key, so that 1, 1.0, np.int64(1) and "1" are the same category. Missing values (None, NaN, "")
are not a category: they are counted separately, like NaN in numeric features.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from lambdas.shared.drift.statistics import Chi2Result, chi2_two_by_k


@dataclass(frozen=True)
class CategoricalCodes:
    """A categorical column as integer codes into `categories`, -1 for a missing value.

    This is what the capture reader accumulates: an int32 per row instead of a Python string,
    and counting becomes one `np.bincount`."""

    codes: np.ndarray
    categories: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.codes.size)


def category_key(value: object) -> str | None:
    """The string key of one category value, None when the value is missing."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))  # 1.0 and 1 are one category
    return str(value)


def count_categories(
    values: np.ndarray | CategoricalCodes, known: np.ndarray | None = None
) -> tuple[dict[str, int], int]:
    """(counts per category key, number of missing values) of one column.

    `known` (sorted unicode array of the reference's categories) enables the fast path for
    fixed-width string arrays: a vectorised binary search against the few known categories
    instead of sorting the whole column; values not found are counted the slow way.
    """
    if isinstance(values, CategoricalCodes):
        codes = np.asarray(values.codes)
        valid = codes >= 0
        counts = np.bincount(codes[valid], minlength=len(values.categories))
        out: dict[str, int] = {}
        missing = int(codes.size - np.count_nonzero(valid))
        for name, c in zip(values.categories, counts.tolist(), strict=False):
            if c:
                key = category_key(name)
                if key is None:
                    missing += c
                else:
                    out[key] = out.get(key, 0) + c
        return out, missing

    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError("a categorical column must be one-dimensional")
    if arr.dtype.kind == "S":
        arr = np.char.decode(arr, "utf-8", errors="replace")
    if arr.dtype.kind == "U":
        return _count_unicode(arr, known)
    if arr.dtype.kind in "biuf":
        if arr.dtype.kind == "f":
            missing = int(np.count_nonzero(np.isnan(arr)))
            arr = arr[~np.isnan(arr)]
        else:
            missing = 0
        uniq, counts = np.unique(arr, return_counts=True)
        out = {}
        for v, c in zip(uniq.tolist(), counts.tolist(), strict=True):
            key = category_key(v)
            if key is not None:
                out[key] = out.get(key, 0) + c
        return out, missing
    return _count_objects(arr.tolist())


def _count_objects(items: list) -> tuple[dict[str, int], int]:
    out: dict[str, int] = {}
    missing = 0
    for v, c in Counter(items).items():
        key = category_key(v)
        if key is None:
            missing += c
        else:
            out[key] = out.get(key, 0) + c
    return out, missing


def _packed_latin1_keys(arr: np.ndarray) -> np.ndarray | None:
    """An exact integer key per string when every string fits 8 latin-1 characters, else None.

    numpy stores 'U' strings as fixed-width UTF-32 padded with NUL; when all code points are
    below 256 each one is a byte, and the w bytes of a string, read as one little-endian uint32
    (w <= 4) or uint64 (w <= 8), identify it exactly. Counting integers is ~10x faster than
    sorting or binary-searching strings, and most category values are short codes. The bytes
    are laid end to end (one narrowing copy) and read through an overlapping view with a stride
    of w bytes, the bytes of the next string masked off: two passes over the column."""
    width = arr.dtype.itemsize // 4
    if width == 0 or width > 8 or arr.size == 0:
        return None
    points = arr.view(np.uint32).reshape(arr.size, width)
    if int(points.max()) > 255:
        return None
    kind = np.dtype(np.uint32 if width <= 4 else np.uint64)
    packed = np.zeros(arr.size * width + kind.itemsize, dtype=np.uint8)  # room for the last read
    packed[: arr.size * width] = points.ravel()
    keys = np.ndarray((arr.size,), dtype=kind.newbyteorder("<"), buffer=packed, strides=(width,))
    if width == kind.itemsize:
        return keys.astype(kind)
    return keys & kind.type((1 << (8 * width)) - 1)


def _unpack_latin1(key: int) -> str:
    return int(key).to_bytes(8, "little").rstrip(b"\0").decode("latin-1")


def _runs(ordered: np.ndarray, most: int = 64) -> list[tuple[int, int]]:
    """(value, count) of each run of equal values of a sorted array, by a binary search for the
    end of one run after another: a few dozen searches for a categorical column instead of a
    pass over every row (np.unique's); past `most` runs, that pass."""
    runs: list[tuple[int, int]] = []
    start = 0
    while start < ordered.size:
        if len(runs) == most:
            rest = ordered[start:]
            ends = np.append(np.flatnonzero(rest[1:] != rest[:-1]), rest.size - 1)
            counts = np.diff(np.concatenate([[-1], ends]))
            return runs + list(zip(rest[ends].tolist(), counts.tolist(), strict=True))
        value = ordered[start]
        end = int(np.searchsorted(ordered, value, side="right"))
        runs.append((int(value), end - start))
        start = end
    return runs


def _count_unicode(arr: np.ndarray, known: np.ndarray | None) -> tuple[dict[str, int], int]:
    arr = np.ascontiguousarray(arr)  # the code-point views below need contiguous memory
    out: dict[str, int] = {}
    missing = 0
    keys = _packed_latin1_keys(arr)
    if keys is not None:
        keys.sort()
        for k, c in _runs(keys):
            name = _unpack_latin1(k)
            if name:
                out[name] = c
            else:
                missing += c
        return out, missing
    # Long or non-latin-1 values. "" is the missing value: its first code point is NUL.
    width = max(arr.dtype.itemsize // 4, 1)
    empty = arr.view(np.uint32).reshape(arr.size, width)[:, 0] == 0 if arr.dtype.itemsize else None
    missing = int(np.count_nonzero(empty)) if empty is not None else arr.size
    rest = arr[~empty] if empty is not None else arr[:0]
    if known is not None and known.size and rest.size:
        # Binary search against the few reference categories; a value is one of them iff the
        # left and right insertion points differ (no gather of the strings needed).
        lo = np.searchsorted(known, rest, side="left")
        hit = np.searchsorted(known, rest, side="right") > lo
        counts = np.bincount(lo[hit], minlength=known.size)
        out = {k: c for k, c in zip(known.tolist(), counts.tolist(), strict=True) if c}
        rest = rest[~hit]
    if rest.size:
        uniq, counts = np.unique(rest, return_counts=True)
        for v, c in zip(uniq.tolist(), counts.tolist(), strict=True):
            out[v] = out.get(v, 0) + c
    return out, missing


@dataclass(frozen=True)
class CategoricalReference:
    categories: tuple[str, ...]  # reference order
    counts: np.ndarray  # int64, aligned with categories
    sorted_keys: np.ndarray  # unicode array of the categories, sorted: the fast counting path

    @property
    def n(self) -> int:
        return int(self.counts.sum())


def prepare_categorical(counts: Mapping[str, int]) -> CategoricalReference:
    cats = tuple(counts)
    return CategoricalReference(
        categories=cats,
        counts=np.array([int(counts[c]) for c in cats], dtype=np.int64),
        sorted_keys=np.array(sorted(cats), dtype=str),
    )


@dataclass(frozen=True)
class CategoricalComparison:
    chi2: Chi2Result | None  # None when the current window has no values
    n_ref: int
    n_cur: int
    n_missing: int
    labels: tuple[str, ...]  # reference categories, then unseen ones (sorted)
    ref_counts: np.ndarray
    cur_counts: np.ndarray
    unseen: tuple[str, ...]


def compare_categorical(
    ref: CategoricalReference, values: np.ndarray | CategoricalCodes, correction: bool = True
) -> CategoricalComparison:
    """Counts of the current window against the reference and the chi-squared test on them.

    A category the reference never saw becomes an extra column (reference count 0), which is how
    `chi2_contingency` sees it too; categories absent from both sides are left out of the test
    (scipy refuses zero expected frequencies) but kept in the labels for reports."""
    cur, n_missing = count_categories(values, ref.sorted_keys)
    return categorical_comparison(ref, cur, n_missing, correction)


def categorical_comparison(
    ref: CategoricalReference, cur: Mapping[str, int], n_missing: int, correction: bool = True
) -> CategoricalComparison:
    """`compare_categorical` from the window's counts per category key (`count_categories`),
    which add up across shards of a window."""
    known = set(ref.categories)
    unseen = tuple(sorted(k for k in cur if k not in known and cur[k]))
    labels = ref.categories + unseen
    ref_counts = np.concatenate([ref.counts, np.zeros(len(unseen), dtype=np.int64)])
    cur_counts = np.array([cur.get(k, 0) for k in labels], dtype=np.int64)
    n_cur = int(cur_counts.sum())
    chi2 = None
    if n_cur > 0:
        present = (ref_counts + cur_counts) > 0
        chi2 = chi2_two_by_k(ref_counts[present], cur_counts[present], correction=correction)
    return CategoricalComparison(chi2, ref.n, n_cur, n_missing, labels, ref_counts, cur_counts, unseen)
