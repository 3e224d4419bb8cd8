"""Scalar statistics of the drift engine, each equal to its scipy counterpart.

The expensive part of the Kolmogorov-Smirnov test (the statistic over two large samples) lives in
`numeric.py`; this module turns a statistic into scipy's p-value and holds the small, per-feature
computations on bin or category counts (chi-squared, PSI, Jensen-Shannon) and the
Benjamini-Hochberg adjustment.

Exactness is the contract: every function here replicates the floating-point operations of the
scipy function it names (scipy 1.17), so results agree to the last bit or within 1e-12. scipy.stats
is imported lazily because importing it costs about a second, which a Lambda pays only when a
p-value is actually needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from lambdas.shared.drift.kolmogorov import kstwo_sf

# scipy.stats.ks_2samp(method="auto") attempts the exact distribution up to this sample size.
KS_MAX_EXACT_N = 10_000
# Floor for an empty bin's share in PSI: log(0) is undefined, and without a floor one empty bin
# would make PSI infinite. 1e-4 is the customary choice; a bin empty on one side then contributes
# at most about (share) * ln(share / 1e-4), i.e. a large but finite, comparable number.
PSI_EPSILON = 1e-4


def ks_p_value(statistic: float, n1: int, n2: int) -> tuple[float, float]:
    """(statistic, p-value) exactly as `scipy.stats.ks_2samp(x, y)` reports them (two-sided, auto).

    `statistic` is max |F1 - F2| computed as scipy does (i1/n1 - i2/n2 in float64). scipy's 'auto'
    tries the exact distribution when both samples have at most 10,000 values; that path also
    rounds the statistic to a multiple of 1/lcm(n1, n2), which is why the statistic is returned too.
    When the exact computation fails (overflow), scipy falls back to the asymptotic form with the
    rounded statistic, and so do we. The asymptotic form is `kstwo.sf`, through `kstwo_sf`, which
    replaces scipy's O(n) scalar loop in one band of large samples (see kolmogorov.py).
    """
    if n1 <= 0 or n2 <= 0:
        raise ValueError("the KS test needs at least one value in each sample")

    d = float(statistic)
    if max(n1, n2) <= KS_MAX_EXACT_N:
        # scipy's own exact helper: the lattice-path counting is subtle and not worth re-deriving.
        from scipy.stats._stats_py import _attempt_exact_2kssamp

        success, d, prob = _attempt_exact_2kssamp(n1, n2, math.gcd(n1, n2), d, "two-sided")
        if success:
            return float(d), float(np.clip(prob, 0, 1))
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    prob = kstwo_sf(d, float(np.round(en)))
    return float(d), float(np.clip(prob, 0, 1))


@dataclass(frozen=True)
class Chi2Result:
    statistic: float
    p_value: float
    dof: int


def chi2_two_by_k(ref_counts: np.ndarray, cur_counts: np.ndarray, correction: bool = True) -> Chi2Result:
    """Chi-squared test of independence on the 2 x k table [ref_counts; cur_counts].

    Equals `scipy.stats.chi2_contingency(table, correction=correction)`, including its Yates
    continuity correction, which scipy applies only when the table has one degree of freedom
    (2 x 2, i.e. exactly two categories). We match scipy's default (`correction=True`) so that the
    engine and a person checking it with scipy get the same numbers; with drift-sized samples the
    correction changes the statistic by well under one percent.

    Categories that are zero in both rows must be dropped by the caller (scipy raises on them);
    a category seen only in the current window is a column [0, c] and is fine.
    """
    observed = np.vstack([ref_counts, cur_counts]).astype(np.float64)
    if observed.shape[1] == 0:
        raise ValueError("the chi-squared test needs at least one category")
    row_sums = observed.sum(axis=1, keepdims=True)
    col_sums = observed.sum(axis=0, keepdims=True)
    expected = row_sums * col_sums / observed.sum()
    if np.any(expected == 0):
        raise ValueError("a category or a sample has no observations (zero expected frequency)")
    dof = expected.size - sum(expected.shape) + expected.ndim - 1
    if dof == 0:
        # One category: observed == expected, so scipy reports chi2 = 0, p = 1.
        return Chi2Result(0.0, 1.0, 0)
    if dof == 1 and correction:
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    stat = float(np.sum((observed - expected) ** 2 / expected))
    return Chi2Result(stat, float(special.chdtrc(float(dof), stat)), int(dof))


def population_stability_index(
    ref_counts: np.ndarray, cur_counts: np.ndarray, epsilon: float = PSI_EPSILON
) -> float:
    """PSI = sum((q - p) * ln(q / p)) over bins, p and q the reference and current shares.

    Shares below `epsilon` (empty bins) are raised to `epsilon`, without renormalising, so that PSI
    stays finite; see PSI_EPSILON.
    """
    ref = np.asarray(ref_counts, dtype=np.float64)
    cur = np.asarray(cur_counts, dtype=np.float64)
    ref_total, cur_total = ref.sum(), cur.sum()
    if ref_total <= 0 or cur_total <= 0:
        return math.nan
    p = np.maximum(ref / ref_total, epsilon)
    q = np.maximum(cur / cur_total, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon_distance(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]); equals `scipy.spatial.distance.jensenshannon(
    ref_counts, cur_counts, base=2)`. Unlike PSI it needs no epsilon: empty bins are well defined."""
    p = np.asarray(ref_counts, dtype=np.float64)
    q = np.asarray(cur_counts, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return math.nan
    p = p / np.sum(p)
    q = q / np.sum(q)
    m = (p + q) / 2.0
    js = np.sum(special.rel_entr(p, m)) + np.sum(special.rel_entr(q, m))
    js /= np.log(2.0)
    return float(np.sqrt(js / 2.0))


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), equal to
    `scipy.stats.false_discovery_control(p, method="bh")` on the finite entries.

    NaN p-values (features without enough data) are not hypotheses: they stay NaN and do not count
    in the number of tests m.
    """
    ps = np.asarray(p_values, dtype=np.float64)
    out = np.full(ps.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(ps))
    m = valid.size
    if m == 0:
        return out
    if m == 1:
        out[valid] = ps[valid]
        return out
    sub = ps[valid]
    order = np.argsort(sub)
    adjusted = sub[order] * (m / np.arange(1, m + 1, dtype=np.float64))
    adjusted = np.minimum.accumulate(adjusted[::-1])[::-1]
    restored = np.empty(m)
    restored[order] = adjusted
    out[valid] = np.clip(restored, 0, 1)
    return out
