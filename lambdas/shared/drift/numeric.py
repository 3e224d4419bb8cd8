"""Numeric features: a reference prepared once, compared against many current windows.

The two-sample KS statistic is max |F_ref(x) - F_cur(x)| over the pooled sample. scipy computes it
by sorting both samples and running two binary searches of the pooled sample (2 n log n per
column). With the reference already sorted we need, for each current window, one sort of the
current sample plus one merge-like pass:

* F_ref - F_cur reaches its maximum at a reference value (between two reference values F_ref is
  flat and F_cur can only grow), and its minimum at a current value. So we evaluate the difference
  at every reference position and every current position, no more.
* r[j] = #ref <= cur[j] for the sorted current sample comes from `np.interp` on the sorted
  reference: it remembers where the previous key landed, so sorted keys cost O(1) each instead of
  a binary search (1.5-2.5x faster than `np.searchsorted` on 10^6 values). Its float answer is then verified
  against the reference and any key it got wrong goes through `np.searchsorted`, so the counts
  are exact whatever the data (ties, infinities).
* #cur <= ref[i] for every reference position is a cumulative histogram of l[j] = #ref < cur[j].

Each difference is formed as scipy forms it, i1 / n1 - i2 / n2 in float64, from the same pair of
integer counts that scipy meets at that point, so the statistic is bit-for-bit scipy's. Positions
inside a run of ties see a smaller F_ref (reference) or a smaller F_cur (current) than the run's
end, which can never win the max (min), so no tie detection is needed.

Columns are processed one at a time from contiguous 1-D arrays: numpy's SIMD sort is fastest on
contiguous data, and the per-column Python overhead is microseconds against tens of milliseconds
of C work, so stacking columns into a 2-D array would only add a strided copy.

PSI and Jensen-Shannon bins are reference quantiles that are reference values, so the current
window's bin counts are read off the same cumulative histogram at no extra cost.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from lambdas.shared.drift.statistics import ks_p_value

DEFAULT_QUANTILES = tuple(np.round(np.arange(1, 10) / 10, 10))  # deciles -> 10 bins


@dataclass(frozen=True)
class NumericBins:
    """Right-closed bins (-inf, e1], (e1, e2], ..., (ek, inf) on the reference's quantiles."""

    edges: np.ndarray  # distinct reference values, increasing
    edge_positions: np.ndarray  # index of each edge's last occurrence in the sorted reference
    ref_counts: np.ndarray  # len(edges) + 1 counts

    def labels(self) -> list[str]:
        e = [f"{v:.6g}" for v in self.edges]
        if not e:
            return ["all"]
        return [f"<= {e[0]}"] + [f"({a}, {b}]" for a, b in itertools.pairwise(e)] + [f"> {e[-1]}"]


@dataclass(frozen=True)
class NumericReference:
    """A numeric reference sample prepared for repeated comparison (not for serialisation)."""

    values: np.ndarray  # sorted, finite-or-infinite float64, no NaN
    bins: NumericBins
    # [NaN, values..., +inf]: padded[r] is ref[r - 1] and padded[r + 1] is ref[r] for every
    # count r in 0..n, with sentinels that make the bounds tests need no special cases.
    padded: np.ndarray = field(repr=False)
    # first[k] = index of the first reference value equal to values[k - 1] (padded like `padded`);
    # None when the reference has no ties, where it would be the identity.
    first_of_run: np.ndarray | None = field(repr=False)
    # arange(n) as float (np.interp's answer is a position) and the reference ECDF at its own
    # points, (i + 1) / n; shared between features of equal size through `Ramps`.
    positions: np.ndarray = field(repr=False)
    ecdf: np.ndarray = field(repr=False)

    @property
    def n(self) -> int:
        return int(self.values.size)


def quantile_bins(sorted_values: np.ndarray, quantiles: tuple[float, ...] = DEFAULT_QUANTILES) -> NumericBins:
    """Bin edges at the reference's quantiles, taken as sample values (numpy's 'inverted_cdf'
    quantile, the smallest value whose ECDF reaches q) so that counts need no interpolation.
    Repeated edges (discrete data) collapse into one, so a constant feature gets two bins."""
    n = sorted_values.size
    positions = np.clip(np.ceil(np.asarray(quantiles) * n).astype(np.int64) - 1, 0, n - 1)
    edges = np.unique(sorted_values[positions])
    edges = edges[np.isfinite(edges)]  # an infinite edge would make an always-empty bin
    le = np.searchsorted(sorted_values, edges, side="right")
    ref_counts = np.diff(np.concatenate([[0], le, [n]]))
    return NumericBins(edges=edges, edge_positions=le - 1, ref_counts=ref_counts)


def prepare_numeric(
    values: np.ndarray, quantiles: tuple[float, ...] = DEFAULT_QUANTILES, ramps: Ramps | None = None
) -> NumericReference:
    """Sort the reference (NaN must already be gone) and precompute what `compare_numeric` reads."""
    ramps = ramps or Ramps()
    v = np.sort(np.asarray(values, dtype=np.float64))
    if v.size == 0:
        raise ValueError("a numeric reference needs at least one value")
    if np.isnan(v[-1]):
        raise ValueError("a numeric reference must not contain NaN")
    padded = np.concatenate([[np.nan], v, [np.inf]])
    first = None
    if v.size > 1 and np.any(v[1:] == v[:-1]):
        starts = np.concatenate([[True], v[1:] != v[:-1]])
        first = np.concatenate([[0], np.maximum.accumulate(np.where(starts, np.arange(v.size), 0))])
    return NumericReference(
        values=v,
        bins=quantile_bins(v, quantiles),
        padded=padded,
        first_of_run=first,
        positions=ramps.positions(v.size),
        ecdf=ramps.ecdf(v.size),
    )


@dataclass(frozen=True)
class NumericComparison:
    ks: float  # as scipy.stats.ks_2samp reports it
    p_value: float
    n_ref: int
    n_cur: int
    n_missing: int  # NaN values dropped from the current column
    cur_bin_counts: np.ndarray


class Ramps:
    """Cached float arrays arange(n) and arange(1, n + 1) / n, shared by columns of equal length.
    One instance lives with a prepared reference (its sizes never change); `compare` uses a
    short-lived one for the current window so a warm Lambda does not accumulate arrays."""

    def __init__(self) -> None:
        self._positions: dict[int, np.ndarray] = {}
        self._ecdf: dict[int, np.ndarray] = {}

    def positions(self, n: int) -> np.ndarray:
        if n not in self._positions:
            self._positions[n] = np.arange(n, dtype=np.float64)
        return self._positions[n]

    def ecdf(self, n: int) -> np.ndarray:
        # (i + 1) / n computed exactly as scipy's searchsorted(...) / n: an integer over n.
        if n not in self._ecdf:
            self._ecdf[n] = np.arange(1, n + 1, dtype=np.int64) / n
        return self._ecdf[n]


def _count_le(ref: NumericReference, cur_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(#ref <= x, x == ref[#ref <= x - 1]) for every x of the sorted current sample, exact."""
    n1 = ref.n
    with np.errstate(all="ignore"):
        guess = np.interp(cur_sorted, ref.values, ref.positions, left=-1.0)
        r = guess.astype(np.int64)
    r += 1
    np.clip(r, 0, n1, out=r)
    below = np.take(ref.padded, r, out=guess, mode="clip")  # ref[r - 1], NaN for r == 0
    equal = below == cur_sorted
    # r is right iff ref[r - 1] <= x < ref[r]; NaN compares False, +inf closes the top.
    ok = below > cur_sorted
    np.logical_not(ok, out=ok)
    ok &= cur_sorted < np.take(ref.padded[1:], r, out=below, mode="clip")
    if not ok.all():
        bad = np.flatnonzero(~ok)
        r[bad] = np.searchsorted(ref.values, cur_sorted[bad], side="right")
        equal[bad] = ref.padded[r[bad]] == cur_sorted[bad]
    return r, equal


def compare_numeric(
    ref: NumericReference, values: np.ndarray, ramps: Ramps | None = None
) -> NumericComparison:
    """KS statistic and p-value (== scipy.stats.ks_2samp on ref.values and values without NaN)
    and the current window's counts on the reference bins."""
    ramps = ramps or Ramps()
    cur = np.sort(np.asarray(values, dtype=np.float64))
    n_valid = int(np.searchsorted(cur, np.nan, side="left"))  # sort puts NaN last
    n_missing = cur.size - n_valid
    cur = cur[:n_valid]
    n1, n2 = ref.n, n_valid
    if n2 == 0:
        empty = np.zeros(ref.bins.ref_counts.size, dtype=np.int64)
        return NumericComparison(math.nan, math.nan, n1, 0, n_missing, empty)

    # #cur <= each bin edge (a reference value), before `cur` is reused below
    at_edges = np.searchsorted(cur, ref.bins.edges, side="right")
    le, equal = _count_le(ref, cur)  # #ref <= cur[j], and whether cur[j] is a reference value
    ecdf = ramps.ecdf(n2)
    # min over current points of F_ref - F_cur, as scipy forms it: le / n1 - (j + 1) / n2
    diff = np.divide(le, n1, out=cur)  # the sorted values are no longer needed
    diff -= ecdf
    min_s = float(np.clip(-diff.min(), 0, 1))
    # #ref < cur[j]: a value present in the reference starts its run of ties there
    if ref.first_of_run is None:
        lt = np.subtract(le, equal, out=le)
    else:
        lt = np.where(equal, ref.first_of_run[le], le)
    # max over reference points of F_ref - F_cur. Between two current values c[j] <= x < c[j + 1]
    # F_cur is (j + 1) / n2 at most and F_ref grows, so the maximum over the reference points of
    # that gap sits at its last one, where F_ref = #ref < c[j + 1] / n1: lt[j + 1] / n1 - (j + 1) / n2,
    # the very pair of integers scipy meets there. A gap without reference points gives a value
    # no larger than one that is attained (the last reference point before it), so it cannot win.
    # Before the first current value F_cur is 0; after the last, F_ref - F_cur is 1 - 1.
    diff = np.divide(lt[1:], n1, out=diff[: n2 - 1])
    diff -= ecdf[: n2 - 1]
    max_s = lt[0] / n1 - 0.0
    if n2 > 1:
        max_s = max(max_s, float(diff.max()))
    if lt[-1] < n1:
        max_s = max(max_s, 0.0)
    d = min_s if min_s > max_s else max_s
    d, p = ks_p_value(d, n1, n2)
    cur_bins = np.diff(np.concatenate([[0], at_edges, [n2]]))
    return NumericComparison(d, p, n1, n2, n_missing, cur_bins)


@dataclass(frozen=True)
class NumericCounts:
    """A current sample reduced to what `compare_numeric` reads of it, as counts that add up
    across shards of a window (so a sharded batch job gets the one-pass result, bit for bit).

    The KS statistic needs F_cur at every reference point (max side) and, at every current point,
    F_ref together with the current sample's own rank (min side). Between two consecutive reference
    values F_ref is flat, so of the current points sharing a count k = #ref <= x only the last one
    (largest rank, i.e. #cur with #ref <= x at most k) can attain the minimum. Hence
    `le[k]` = #{x : #ref <= x == k} gives the min side exactly, and `lt[k]` = #{x : #ref < x == k}
    gives #cur <= ref[i] as its cumulative sum (max side and the bin counts). Both have n_ref + 1
    entries whatever the window's size."""

    le: np.ndarray  # int64[n_ref + 1]
    lt: np.ndarray  # int64[n_ref + 1]
    n_missing: int

    def __add__(self, other: NumericCounts) -> NumericCounts:
        if self.le.shape != other.le.shape:
            raise ValueError("numeric counts against references of different sizes cannot be merged")
        return NumericCounts(self.le + other.le, self.lt + other.lt, self.n_missing + other.n_missing)


def count_numeric(ref: NumericReference, values: np.ndarray) -> NumericCounts:
    """The window's (or one shard's) `NumericCounts` against the reference; NaN is counted missing."""
    cur = np.asarray(values, dtype=np.float64)
    valid = cur[~np.isnan(cur)]
    size = ref.n + 1
    le = np.bincount(np.searchsorted(ref.values, valid, side="right"), minlength=size)
    lt = np.bincount(np.searchsorted(ref.values, valid, side="left"), minlength=size)
    return NumericCounts(le.astype(np.int64), lt.astype(np.int64), int(cur.size - valid.size))


def compare_numeric_counts(ref: NumericReference, counts: NumericCounts) -> NumericComparison:
    """`compare_numeric` of the sample the counts describe: the same integers meet the same float
    operations, so every field equals the one-pass result bit for bit."""
    n1 = ref.n
    n2 = int(counts.le.sum())
    if n2 == 0:
        empty = np.zeros(ref.bins.ref_counts.size, dtype=np.int64)
        return NumericComparison(math.nan, math.nan, n1, 0, counts.n_missing, empty)
    present = np.flatnonzero(counts.le)
    ranks = np.cumsum(counts.le)[present]  # #cur <= the last current point of each run: its j + 1
    diff = np.divide(present, n1)
    diff -= np.divide(ranks, n2)
    min_s = float(np.clip(-diff.min(), 0, 1))
    cur_le_ref = np.cumsum(counts.lt[:n1])
    diff = np.divide(cur_le_ref, n2)
    np.subtract(ref.ecdf, diff, out=diff)
    max_s = float(diff.max())
    d = min_s if min_s > max_s else max_s
    d, p = ks_p_value(d, n1, n2)
    at_edges = cur_le_ref[ref.bins.edge_positions]
    cur_bins = np.diff(np.concatenate([[0], at_edges, [n2]]))
    return NumericComparison(d, p, n1, n2, counts.n_missing, cur_bins)


def ks_two_sample(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """One-off convenience: (statistic, p-value) of scipy.stats.ks_2samp, NaN dropped from both."""
    ref = np.asarray(reference, dtype=np.float64)
    result = compare_numeric(prepare_numeric(ref[~np.isnan(ref)]), current)
    return result.ks, result.p_value
