"""Compare one current window against a prepared reference: per-feature tests, multiple-testing
correction, verdicts and a summary.

The verdict rule. With hundreds of thousands of rows even a negligible shift is "significant",
and with 40 features one in twenty would be flagged by chance at alpha = 0.05. So a feature is
`drifted` only when both hold:

* its Benjamini-Hochberg adjusted p-value (false discovery rate over the features of this
  comparison) is below `alpha` (default 0.05): the shift is real, not one of many coin flips;
* its PSI is at least `min_psi` (default 0.1, the customary "moderate shift" threshold): the
  shift is large enough to matter, whatever the sample size.

The model's predictions get the same test and rule, as one separate hypothesis (its p-value is
not part of the feature family, it answers a different question). Features whose current window
holds fewer than `min_rows` values get status "insufficient_data", no p-value and no verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from lambdas.shared.drift.categorical import CategoricalCodes, CategoricalComparison, compare_categorical
from lambdas.shared.drift.numeric import NumericComparison, NumericReference, Ramps, compare_numeric
from lambdas.shared.drift.reference import FeatureReference, PreparedReference
from lambdas.shared.drift.statistics import (
    PSI_EPSILON,
    benjamini_hochberg,
    jensen_shannon_distance,
    population_stability_index,
)

Status = Literal["ok", "insufficient_data"]
Column = np.ndarray | CategoricalCodes


class DriftInputError(ValueError):
    """The current window does not fit the reference (missing columns, ragged lengths)."""


@dataclass(frozen=True)
class DriftConfig:
    alpha: float = 0.05  # false discovery rate for the BH-adjusted p-values
    min_psi: float = 0.1  # minimum effect size for a "drifted" verdict
    yates_correction: bool = True  # as scipy.stats.chi2_contingency's default (2 categories only)
    psi_epsilon: float = PSI_EPSILON  # share assumed for an empty bin in PSI
    min_rows: int = 1  # fewer current values than this: "insufficient_data"
    # Threads for the numeric features (numpy releases the GIL while sorting and counting).
    # 1 keeps the comparison single-threaded; 2 suits a 2-vCPU Lambda (>= 1,769 MB).
    workers: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError("alpha must lie strictly between 0 and 1")
        if self.min_psi < 0 or self.psi_epsilon <= 0 or self.min_rows < 1 or self.workers < 1:
            raise ValueError("min_psi >= 0, psi_epsilon > 0, min_rows >= 1 and workers >= 1 are required")


@dataclass(frozen=True)
class Histogram:
    """Reference and current counts on the same bins (numeric) or categories (categorical)."""

    labels: tuple[str, ...]
    ref_counts: tuple[int, ...]
    cur_counts: tuple[int, ...]


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: Literal["numeric", "categorical"]
    status: Status
    p_value: float
    p_adjusted: float
    psi: float
    js: float
    drifted: bool
    n_ref: int
    n_cur: int
    n_missing: int  # NaN / missing values in the current window (dropped before testing)
    histogram: Histogram
    ks: float | None = None  # numeric
    chi2: float | None = None  # categorical
    dof: int | None = None  # categorical
    unseen_categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class DriftSummary:
    status: Status
    n_ref_rows: int
    n_cur_rows: int
    n_features: int
    n_tested: int
    n_drifted: int
    drifted_share: float  # of the tested features
    max_psi: float
    max_psi_feature: str | None
    prediction_psi: float | None
    prediction_drift: bool | None  # None when there is no prediction to test
    alpha: float
    min_psi: float


@dataclass(frozen=True)
class DriftResult:
    features: dict[str, FeatureDrift]
    prediction: FeatureDrift | None
    summary: DriftSummary
    ignored_columns: tuple[str, ...] = field(default=())

    @property
    def drifted_features(self) -> list[str]:
        return [n for n, f in self.features.items() if f.drifted]


def as_numeric_column(name: str, values: Column) -> np.ndarray:
    if isinstance(values, CategoricalCodes):
        raise DriftInputError(f"{name}: numeric in the reference, but the current column is categorical")
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            msg = f"{name}: numeric in the reference, current values are not numbers"
            raise DriftInputError(msg) from None
    return arr


def _raw_numeric(name: str, ref: NumericReference, res: NumericComparison, cfg: DriftConfig) -> dict:
    hist = Histogram(
        ref.bins.labels(), tuple(ref.bins.ref_counts.tolist()), tuple(res.cur_bin_counts.tolist())
    )
    ok = res.n_cur >= cfg.min_rows
    return {
        "name": name,
        "kind": "numeric",
        "ok": ok,
        "ks": res.ks if ok else math.nan,
        "p_value": res.p_value if ok else math.nan,
        "n_ref": res.n_ref,
        "n_cur": res.n_cur,
        "n_missing": res.n_missing,
        "histogram": hist,
    }


def _raw_categorical(name: str, res: CategoricalComparison, cfg: DriftConfig) -> dict:
    ok = res.n_cur >= cfg.min_rows and res.chi2 is not None
    hist = Histogram(res.labels, tuple(res.ref_counts.tolist()), tuple(res.cur_counts.tolist()))
    return {
        "name": name,
        "kind": "categorical",
        "ok": ok,
        "chi2": res.chi2.statistic if ok and res.chi2 else math.nan,
        "dof": res.chi2.dof if ok and res.chi2 else None,
        "p_value": res.chi2.p_value if ok and res.chi2 else math.nan,
        "n_ref": res.n_ref,
        "n_cur": res.n_cur,
        "n_missing": res.n_missing,
        "histogram": hist,
        "unseen_categories": res.unseen,
    }


Comparison = NumericComparison | CategoricalComparison


def _raw_from(name: str, ref: FeatureReference, res: Comparison, cfg: DriftConfig) -> dict:
    if isinstance(ref, NumericReference) and isinstance(res, NumericComparison):
        return _raw_numeric(name, ref, res, cfg)
    if not isinstance(ref, NumericReference) and isinstance(res, CategoricalComparison):
        return _raw_categorical(name, res, cfg)
    raise DriftInputError(f"{name}: its comparison is of another kind than its reference")


def _raw(name: str, ref: FeatureReference, values: Column, ramps: Ramps, cfg: DriftConfig) -> dict:
    if isinstance(ref, NumericReference):
        return _raw_numeric(name, ref, compare_numeric(ref, as_numeric_column(name, values), ramps), cfg)
    return _raw_categorical(name, compare_categorical(ref, values, correction=cfg.yates_correction), cfg)


def _finish(raw: dict, p_adjusted: float, cfg: DriftConfig) -> FeatureDrift:
    hist: Histogram = raw["histogram"]
    ok = raw["ok"]
    psi = population_stability_index(hist.ref_counts, hist.cur_counts, cfg.psi_epsilon) if ok else math.nan
    js = jensen_shannon_distance(hist.ref_counts, hist.cur_counts) if ok else math.nan
    drifted = bool(ok and p_adjusted < cfg.alpha and psi >= cfg.min_psi)
    return FeatureDrift(
        name=raw["name"],
        kind=raw["kind"],
        status="ok" if ok else "insufficient_data",
        p_value=raw["p_value"],
        p_adjusted=p_adjusted if ok else math.nan,
        psi=psi,
        js=js,
        drifted=drifted,
        n_ref=raw["n_ref"],
        n_cur=raw["n_cur"],
        n_missing=raw["n_missing"],
        histogram=hist,
        ks=raw.get("ks"),
        chi2=raw.get("chi2"),
        dof=raw.get("dof"),
        unseen_categories=tuple(raw.get("unseen_categories", ())),
    )


def _length(values: Any) -> int:
    return len(values) if isinstance(values, CategoricalCodes) else int(np.asarray(values).shape[0])


def compare(
    prepared: PreparedReference,
    current_columns: Mapping[str, Column],
    prediction: Column | None = None,
    config: DriftConfig | None = None,
) -> DriftResult:
    """Drift of one current window (column name -> 1-D array or CategoricalCodes) against the
    reference. Every reference feature must be present; other columns are ignored and listed.
    An empty window is not an error: every feature reports "insufficient_data"."""
    cfg = config or DriftConfig()
    missing = [n for n in prepared.features if n not in current_columns]
    if missing:
        raise DriftInputError(f"current window lacks reference features: {', '.join(missing)}")
    lengths = {n: _length(current_columns[n]) for n in prepared.features}
    if len(set(lengths.values())) > 1:
        raise DriftInputError(f"current columns have different lengths: {lengths}")
    n_cur_rows = next(iter(lengths.values()), 0)
    ramps = Ramps()  # arrays sized by the current window: live for this call only

    names = list(prepared.features)
    work = [(n, prepared.features[n], current_columns[n]) for n in names]
    if cfg.workers > 1 and len(work) > 1:
        with ThreadPoolExecutor(max_workers=cfg.workers) as pool:
            raws = list(pool.map(lambda w: _raw(w[0], w[1], w[2], ramps, cfg), work))
    else:
        raws = [_raw(n, ref, values, ramps, cfg) for n, ref, values in work]

    pred_raw = None
    if prediction is not None and prepared.prediction is not None:
        pred_raw = _raw("prediction", prepared.prediction, prediction, ramps, cfg)
    ignored = tuple(n for n in current_columns if n not in prepared.features)
    return _result(prepared, raws, pred_raw, n_cur_rows, ignored, cfg)


def compare_counts(
    prepared: PreparedReference,
    features: Mapping[str, Comparison],
    prediction: Comparison | None,
    n_cur_rows: int,
    config: DriftConfig | None = None,
) -> DriftResult:
    """The same result as `compare`, from each feature's comparison already computed (the
    batch job merges shards' counts into them: partial.py). `features` holds every reference
    feature; `prediction` is None when the window has no prediction column."""
    cfg = config or DriftConfig()
    missing = [n for n in prepared.features if n not in features]
    if missing:
        raise DriftInputError(f"counts lack reference features: {', '.join(missing)}")
    raws = [_raw_from(n, ref, features[n], cfg) for n, ref in prepared.features.items()]
    pred_raw = None
    if prediction is not None and prepared.prediction is not None:
        pred_raw = _raw_from("prediction", prepared.prediction, prediction, cfg)
    return _result(prepared, raws, pred_raw, n_cur_rows, (), cfg)


def _result(
    prepared: PreparedReference,
    raws: list[dict],
    pred_raw: dict | None,
    n_cur_rows: int,
    ignored: tuple[str, ...],
    cfg: DriftConfig,
) -> DriftResult:
    adjusted = benjamini_hochberg(np.array([r["p_value"] for r in raws], dtype=np.float64))
    features = {r["name"]: _finish(r, float(q), cfg) for r, q in zip(raws, adjusted, strict=True)}

    # one hypothesis: nothing to adjust
    pred = _finish(pred_raw, pred_raw["p_value"], cfg) if pred_raw is not None else None

    tested = [f for f in features.values() if f.status == "ok"]
    psis = [(f.psi, f.name) for f in tested if not math.isnan(f.psi)]
    max_psi, max_name = max(psis) if psis else (math.nan, None)
    n_drifted = sum(f.drifted for f in tested)
    summary = DriftSummary(
        status="ok" if tested else "insufficient_data",
        n_ref_rows=prepared.n_rows,
        n_cur_rows=n_cur_rows,
        n_features=len(features),
        n_tested=len(tested),
        n_drifted=n_drifted,
        drifted_share=n_drifted / len(tested) if tested else 0.0,
        max_psi=max_psi,
        max_psi_feature=max_name,
        prediction_psi=pred.psi if pred is not None else None,
        prediction_drift=pred.drifted if pred is not None and pred.status == "ok" else None,
        alpha=cfg.alpha,
        min_psi=cfg.min_psi,
    )
    return DriftResult(features=features, prediction=pred, summary=summary, ignored_columns=ignored)
