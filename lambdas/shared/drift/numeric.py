"""Numeric features: a reference prepared once, compared against many current windows.

The two-sample KS statistic is max |F_ref(x) - F_cur(x)| over the pooled sample. scipy computes it
by sorting both samples and running two binary searches of the pooled sample (2 n log n per
column). With the reference already sorted we need, for each current window, one sort of the
current sample and counts at only a few of its positions:

* F_ref - F_cur reaches its maximum at a reference value (between two reference values F_ref is
  flat and F_cur can only grow), and its minimum at a current value. So the difference is needed
  at reference and current positions only, each as scipy forms it: i1 / n1 - i2 / n2 in float64,
  from the same pair of integer counts that scipy meets at that point, so the statistic is
  bit-for-bit scipy's. Positions inside a run of ties see a smaller F_ref (reference) or a
  smaller F_cur (current) than the run's end, which can never win the max (min), so no tie
  detection is needed.
* Both extremes are found without counting at every position (`_ks_extremes`): bounds on the
  counts at every 64th current value, read off every 16th reference value (a small array that
  stays in cache), bound the difference on each block of 64 positions. Only the blocks whose
  bound could beat the best value known are counted exactly (`np.searchsorted`), usually a few
  thousand positions of a million. Sorting the window is then most of the work.
* When nearly every block may hold the extremum (a window almost identical to the reference),
  the dense pass counts every position: #ref <= cur[j] from `np.interp` on the sorted reference
  (it remembers where the previous key landed, so sorted keys cost O(1) each), verified against
  the reference, with `np.searchsorted` for any key it got wrong, so the counts are exact
  whatever the data (ties, infinities).

Columns are processed one at a time from contiguous 1-D arrays: numpy's SIMD sort is fastest on
contiguous data, and the per-column Python overhead is microseconds against milliseconds of C
work, so stacking columns into a 2-D array would only add a strided copy.

PSI and Jensen-Shannon bins are reference quantiles that are reference values, so the current
window's bin counts are a few binary searches in the sorted window (and, for a sharded window,
read off the same cumulative counts as the KS statistic).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from lambdas.shared.drift.statistics import ks_p_value

DEFAULT_QUANTILES = tuple(np.round(np.arange(1, 10) / 10, 10))  # deciles -> 10 bins
# The bounds of `_ks_extremes`: every COARSE_MARK_STEP-th current value, then every MARK_STEP-th
# one in the blocks that may hold an extremum (a few percent of them on real data), is located
# among every REF_STEP-th reference value (a small array that stays in cache). The bounds are
# loose by about (MARK_STEP + 2 REF_STEP) / n, far below any KS statistic that matters, so few
# positions need an exact count. Measured on the benchmark's 40 columns (1M values each):
# 256/32 took 27 ms, one level of 64 took 49 ms; 128, 512 and three levels were no better.
COARSE_MARK_STEP = 256
MARK_STEP = 32
REF_STEP = 16
# More candidate positions than this share of the window (a window nearly identical to the
# reference, where any block may hold the extremum): the dense pass is cheaper.
_DENSE_SHARE = 0.125
# A kept block whose counts may range over more reference values than this (a run of ties) is
# searched in a view of the reference instead of a gathered copy (`_count_blocks`).
_WIDE_SPAN = 2048


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
    # values[REF_STEP - 1 :: REF_STEP], the last value of each full block: small enough to stay in
    # cache, it brackets any count to one block (`_count_bounds`)
    coarse: np.ndarray = field(repr=False)

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
        coarse=np.ascontiguousarray(v[REF_STEP - 1 :: REF_STEP]),
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
    """Cached arrays arange(n), arange(1, n + 1) / n and the marks of `_ks_extremes`, shared by
    columns of equal length.
    One instance lives with a prepared reference (its sizes never change); `compare` uses a
    short-lived one for the current window so a warm Lambda does not accumulate arrays."""

    def __init__(self) -> None:
        self._positions: dict[int, np.ndarray] = {}
        self._ecdf: dict[int, np.ndarray] = {}
        self._marks: dict[int, np.ndarray] = {}

    def positions(self, n: int) -> np.ndarray:
        if n not in self._positions:
            self._positions[n] = np.arange(n, dtype=np.float64)
        return self._positions[n]

    def marks(self, n: int) -> np.ndarray:
        """Every COARSE_MARK_STEP-th position of a sorted window of n values and its last one
        (the first level of `_ks_extremes`)."""
        if n not in self._marks:
            marks = np.arange(0, n, COARSE_MARK_STEP)
            if marks[-1] != n - 1:
                marks = np.append(marks, n - 1)
            self._marks[n] = marks
        return self._marks[n]

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


def _count_lt(
    ref: NumericReference, le: np.ndarray, equal: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """#ref < x from `_count_le`'s answer for x: a value present in the reference starts its run
    of ties there."""
    if ref.first_of_run is None:
        return np.subtract(le, equal, out=out)
    return np.where(equal, ref.first_of_run[le], le)


def _dense_extremes(ref: NumericReference, cur: np.ndarray, ramps: Ramps) -> tuple[float, float]:
    """(min over current points, max over reference points) of F_ref - F_cur, from the counts at
    every current position (see `compare_numeric`)."""
    n1, n2 = ref.n, cur.size
    le, equal = _count_le(ref, cur)  # #ref <= cur[j], and whether cur[j] is a reference value
    diff = np.divide(le, n1)
    diff -= ramps.ecdf(n2)
    lowest = float(diff.min())
    lt = _count_lt(ref, le, equal, out=le)
    diff = np.divide(lt, n1, out=diff)
    diff -= np.divide(np.arange(n2), n2)
    return lowest, float(diff.max())


def _concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """starts[i], starts[i] + 1, ..., starts[i] + lengths[i] - 1 for each i, concatenated."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))


def _count_blocks(
    ref: NumericReference, cur: np.ndarray, marks: np.ndarray, blocks: np.ndarray, bounds: tuple, side: str
) -> tuple[np.ndarray, np.ndarray]:
    """(positions, counts): every position from marks[b] to marks[b + 1] for b in `blocks`, and
    np.searchsorted(ref.values, cur[position], side) there, exact.

    The bounds (lo, hi) at the marks confine each block's counts to lo[b]..hi[b + 1], so only
    those reference values (and the one before, see below) are searched: a few cache lines per
    block instead of a binary search through the whole reference, which is cold in cache when
    the window's column comes in. Narrow blocks are searched together: with `covered` the
    increasing reference indices kept, a count c means indices < c are on the left of the key,
    so the search in ref.values[covered] finds p = #covered indices < c; index c - 1 is covered
    whenever c >= 1, hence c = covered[p - 1] + 1. A block whose range spans a long run of tied
    reference values (discrete data) is searched on its own in a view of that range, which
    copies nothing, instead of gathering the run into `covered`."""
    lo, hi = bounds
    starts = marks[blocks]
    stops = marks[blocks + 1] + 1
    first = lo[blocks]
    last = hi[blocks + 1]
    wide = last - first > _WIDE_SPAN
    parts = []
    for b in np.flatnonzero(wide).tolist():
        a, z, f = int(starts[b]), int(stops[b]), int(first[b])
        counts = np.searchsorted(ref.values[f : int(last[b])], cur[a:z], side=side)  # type: ignore[call-overload]
        parts.append((np.arange(a, z), counts + f))
    if not wide.all():
        narrow = ~wide
        starts, stops, last = starts[narrow], stops[narrow], last[narrow] - 1
        first = np.maximum(first[narrow] - 1, 0)
        first[1:] = np.maximum(first[1:], last[:-1] + 1)  # adjacent blocks: each index once, in order
        covered = _concat_ranges(first, np.maximum(last - first + 1, 0))
        positions = _concat_ranges(starts, stops - starts)
        p = np.searchsorted(ref.values[covered], cur[positions], side=side)  # type: ignore[call-overload]
        parts.append((positions, np.concatenate([[-1], covered])[p] + 1))
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([q for q, _ in parts]), np.concatenate([c for _, c in parts])


def _count_bounds(ref: NumericReference, keys: np.ndarray) -> tuple[tuple, tuple]:
    """Bounds (lo, hi) on #ref < key and on #ref <= key for each key, from the coarse reference:
    with b full blocks of REF_STEP values wholly on the left of a key, the count is at least
    b * REF_STEP and less than the end of the next block. One search serves both sides: they
    differ only for a key equal to a coarse value, searched again."""
    lt = np.searchsorted(ref.coarse, keys, side="left")
    le = lt.copy()
    tied = np.flatnonzero(np.take(ref.coarse, lt, mode="clip") == keys) if ref.coarse.size else lt[:0]
    if tied.size:
        le[tied] = np.searchsorted(ref.coarse, keys[tied], side="right")
    lt *= REF_STEP
    le *= REF_STEP
    return (lt, np.minimum(lt + (REF_STEP - 1), ref.n)), (le, np.minimum(le + (REF_STEP - 1), ref.n))


def _candidate_blocks(
    n1: int, n2: int, marks: np.ndarray, bounds: tuple[tuple, tuple], valid: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(below, above): the blocks between consecutive marks that may hold the minimum of f and
    the maximum of g (`_ks_extremes`), of those `valid` (all when None).

    Min side, f(j) = le[j] / n1 - (j + 1) / n2: on the block from mark a to mark b, le[j] >= le[a]
    and j <= b, so f(j) >= lo(le[a]) / n1 - (b + 1) / n2, also in float64 (rounding is monotone);
    and the minimum is at most hi(le[a]) / n1 - (a + 1) / n2 for any mark a. A block whose lower
    bound exceeds that cannot hold the minimum. Max side, g(k) = lt[k] / n1 - k / n2, likewise
    mirrored."""
    (lt_lo, lt_hi), (le_lo, le_hi) = bounds
    f_after = (marks + 1) / n2  # F_cur at the mark, as `Ramps.ecdf` forms it
    f_before = marks / n2  # and just before it
    ceiling = float((le_hi / n1 - f_after).min())
    below = le_lo[:-1] / n1 - f_after[1:] <= ceiling
    floor = float((lt_lo / n1 - f_before).max())
    above = lt_hi[1:] / n1 - f_before[:-1] >= floor
    if valid is not None:
        below &= valid
        above &= valid
    return np.flatnonzero(below), np.flatnonzero(above)


def _finer_marks(marks: np.ndarray, blocks: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(marks, valid): every step-th position of each block (from its first mark up to its last,
    both included), concatenated, and which pairs of consecutive marks lie in one block."""
    starts = marks[blocks]
    ends = marks[blocks + 1]
    per_block = (ends - starts + step - 1) // step + 1
    offsets = np.cumsum(per_block) - per_block
    within = np.arange(int(per_block.sum())) - np.repeat(offsets, per_block)
    finer = np.minimum(np.repeat(starts, per_block) + within * step, np.repeat(ends, per_block))
    valid = np.ones(finer.size - 1, dtype=bool)
    valid[(offsets + per_block - 1)[:-1]] = False  # from one block's last mark to the next's first
    return finer, valid


def _ks_extremes(ref: NumericReference, cur: np.ndarray, ramps: Ramps) -> tuple[float, float]:
    """`_dense_extremes` without counting at every position. Marks every COARSE_MARK_STEP-th
    position split the window into blocks; bounds on the counts at the marks bound both functions
    on each block (`_candidate_blocks`). The blocks that may hold an extremum are split again at
    every MARK_STEP-th position and bounded the same way, and only the small blocks left are
    counted exactly, so the extremes are the dense pass's, bit for bit. Two levels locate a few
    thousand marks per million values instead of every MARK_STEP-th: the gather of a mark misses
    the cache, and most coarse blocks are far from either extremum."""
    n1, n2 = ref.n, cur.size
    if n2 < 4 * COARSE_MARK_STEP:
        return _dense_extremes(ref, cur, ramps)
    marks = ramps.marks(n2)
    bounds = _count_bounds(ref, np.take(cur, marks))  # np.take: half the time of fancy indexing
    below, above = _candidate_blocks(n1, n2, marks, bounds, None)
    marks, valid = _finer_marks(marks, np.union1d(below, above), MARK_STEP)
    bounds = _count_bounds(ref, np.take(cur, marks))
    below, above = _candidate_blocks(n1, n2, marks, bounds, valid)
    if (below.size + above.size) * MARK_STEP > _DENSE_SHARE * n2:
        return _dense_extremes(ref, cur, ramps)
    lt_bounds, le_bounds = bounds
    j, le = _count_blocks(ref, cur, marks, below, le_bounds, "right")
    k, lt = _count_blocks(ref, cur, marks, above, lt_bounds, "left")
    return float((le / n1 - (j + 1) / n2).min()), float((lt / n1 - k / n2).max())


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

    # #cur <= each bin edge (a reference value)
    at_edges = np.searchsorted(cur, ref.bins.edges, side="right")
    # The min of F_ref - F_cur over current points: le[j] / n1 - (j + 1) / n2, le[j] = #ref <= cur[j],
    # as scipy forms it. The max over reference points: between two current values
    # c[k - 1] <= x < c[k], F_cur is k / n2 and F_ref grows, so the maximum over the reference
    # points of that gap sits at its last one, where F_ref = #ref < c[k] / n1: lt[k] / n1 - k / n2,
    # the very pair of integers scipy meets there. A gap without reference points gives a value
    # no larger than one that is attained (the last reference point before it), so it cannot win.
    # k = 0 is the gap before the first current value (F_cur = 0); after the last one,
    # F_ref - F_cur is 1 - 1 = 0, never above the value at k = 0 (F_ref >= 0 there).
    lowest, max_s = _ks_extremes(ref, cur, ramps)
    min_s = float(np.clip(-lowest, 0, 1))
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
    """The window's (or one shard's) `NumericCounts` against the reference; NaN is counted missing.

    The shard is sorted first (numpy's SIMD sort), so that its counts come from `_count_le`, which
    walks the reference once, instead of two binary searches through the whole reference per
    value, each missing the cache at every level."""
    cur = np.sort(np.asarray(values, dtype=np.float64))
    n_valid = int(np.searchsorted(cur, np.nan, side="left"))  # sort puts NaN last
    size = ref.n + 1
    le, equal = _count_le(ref, cur[:n_valid])
    lt = _count_lt(ref, le, equal)
    return NumericCounts(
        np.bincount(le, minlength=size).astype(np.int64),
        np.bincount(lt, minlength=size).astype(np.int64),
        int(cur.size - n_valid),
    )


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
