"""Feature attributions of a model, and how far two rankings of them differ (as SageMaker Clarify
measures feature-attribution drift).

Attributions are SHAP values against one baseline row (Clarify's `SHAPConfig.baseline`): here the
training split's medians (numeric) and modes (categorical), stored with the reference. They are
estimated by permutation sampling (Strumbelj and Kononenko, 2014): for each of a fixed set of
feature orders, the row's features are switched from the baseline to their own values one at a
time and each feature is credited with the change of the score it causes. Every order's credits
add up to f(row) - f(baseline) exactly, and their average over orders converges to the Shapley
values Clarify's kernel method estimates. The orders come from a fixed seed, so the reference and
every monitored window are measured with the same orders: a difference between them is the data's
or the model's, not the sampler's.

The global attribution of a feature is the mean absolute SHAP value over the rows
(Clarify's `agg_method: mean_abs`), written in Clarify's analysis.json layout:
    {"version": "1.0", "explanations": {"kernel_shap": {"label0": {"global_shap_values": {...},
     "expected_value": f(baseline)}}}, "baseline": {...}, "method": {...}}

Drift between two global attributions is Clarify's normalized discounted cumulative gain: with F
the features ranked by the reference's attributions a(), and F' ranked by the current window's,
    nDCG = sum_i a(F'_i) / log2(i + 1)  /  sum_i a(F_i) / log2(i + 1)
1.0 when the ranking is unchanged; Clarify's monitor alarms below 0.90.

numpy and pandas only: the serving container's dependencies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

FORMAT_VERSION = "1.0"
METHOD = "kernel_shap"  # the key Clarify's analysis.json files global SHAP values under
LABEL = "label0"
DEFAULT_PERMUTATIONS = 8
DEFAULT_SEED = 0
MAX_CELLS = 2_000_000  # cells of one scored block: rows x (features + 1) x features

Score = Callable[[pd.DataFrame], np.ndarray]


def baseline_row(x: pd.DataFrame, categorical: list[str]) -> dict[str, Any]:
    """One row standing for "no information": medians of numeric features, modes of categorical."""
    row: dict[str, Any] = {}
    for name in x.columns:
        column = x[name].dropna()
        if column.empty:
            raise ValueError(f"feature {name!r} has no values to take a baseline from")
        if name in categorical:
            row[name] = column.astype(str).mode().iloc[0]
        else:
            row[name] = float(np.median(column.to_numpy(dtype=float)))
    return row


def feature_orders(n_features: int, permutations: int, seed: int) -> np.ndarray:
    """`permutations` orders of the features; each order's reverse follows it (antithetic pairs
    halve the estimator's variance at no cost)."""
    if permutations < 1:
        raise ValueError("permutations must be at least 1")
    rng = np.random.default_rng(seed)
    orders = []
    while len(orders) < permutations:
        order = rng.permutation(n_features)
        orders.append(order)
        if len(orders) < permutations:
            orders.append(order[::-1])
    return np.asarray(orders)


def _typed(cells: np.ndarray, columns: list[str], baseline: Mapping[str, Any]) -> pd.DataFrame:
    """Rows typed as the serving path types requests (inference.as_features): numeric features
    as floats, categorical ones (a string baseline) as they are."""
    frame = pd.DataFrame(cells, columns=columns)
    numeric = [c for c in columns if not isinstance(baseline[c], str)]
    if numeric:
        frame[numeric] = frame[numeric].astype(float)
    return frame


def shap_values(score: Score, x: pd.DataFrame, baseline: Mapping[str, Any],
                permutations: int = DEFAULT_PERMUTATIONS, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(rows, features) SHAP estimates of `score` on `x` against `baseline` (see the module doc).
    `x` is typed as the serving path types requests (numeric float, categorical str). Rows go in
    chunks of at most MAX_CELLS cells per call of `score`, so memory stays bounded whatever the
    window."""
    columns = list(x.columns)
    missing = [c for c in columns if c not in baseline]
    if missing:
        raise ValueError(f"the baseline lacks the features {missing}")
    n, d = x.shape
    values = np.zeros((n, d))
    if n == 0:
        return values
    own = x.to_numpy(dtype=object)
    base = np.array([baseline[c] for c in columns], dtype=object)
    chunk = max(1, MAX_CELLS // ((d + 1) * d))
    for order in feature_orders(d, permutations, seed):
        # Step k of the walk has the order's first k features switched to the row's own values.
        switched = np.zeros((d + 1, d), dtype=bool)
        for k in range(1, d + 1):
            switched[k] = switched[k - 1]
            switched[k, order[k - 1]] = True
        for start in range(0, n, chunk):
            rows = own[start:start + chunk]
            cells = np.where(switched[None, :, :], rows[:, None, :], base[None, None, :])
            scores = np.asarray(score(_typed(cells.reshape(-1, d), columns, baseline)), dtype=float)
            values[start:start + len(rows), order] += np.diff(scores.reshape(len(rows), d + 1), axis=1)
    return values / permutations


def global_attributions(values: np.ndarray, columns: list[str]) -> dict[str, float]:
    """Mean absolute SHAP value per feature (Clarify's mean_abs aggregation)."""
    if values.shape[0] == 0:
        return {c: 0.0 for c in columns}
    return {c: float(v) for c, v in zip(columns, np.abs(values).mean(axis=0), strict=True)}


def ndcg(reference: Mapping[str, float], current: Mapping[str, float]) -> float:
    """Clarify's nDCG of the current ranking against the reference's (see the module doc).
    Features only one side knows are left out; ties rank by name, so equal input, equal output."""
    shared = sorted(set(reference) & set(current))
    if not shared:
        raise ValueError("the two attributions share no feature")

    def ranked(values: Mapping[str, float]) -> list[str]:
        return sorted(shared, key=lambda name: (-values[name], name))

    discount = 1.0 / np.log2(np.arange(2, len(shared) + 2))
    ideal = float(np.dot([reference[f] for f in ranked(reference)], discount))
    if ideal <= 0.0:
        return 1.0  # the reference attributes nothing to any feature: no ranking to lose
    return float(np.dot([reference[f] for f in ranked(current)], discount)) / ideal


def analysis(global_values: Mapping[str, float], expected_value: float, baseline: Mapping[str, Any],
             rows: int, permutations: int, seed: int, **extra: Any) -> dict[str, Any]:
    """Clarify's analysis.json layout for global SHAP values, plus how they were computed."""
    return {
        "version": FORMAT_VERSION,
        "explanations": {METHOD: {LABEL: {
            "global_shap_values": {k: round(float(v), 8) for k, v in global_values.items()},
            "expected_value": round(float(expected_value), 8),
        }}},
        "baseline": dict(baseline),
        "method": {"estimator": "permutation sampling", "permutations": permutations, "seed": seed,
                   "agg_method": "mean_abs", "rows": rows},
        **extra,
    }


def read_global(document: Mapping[str, Any], where: str) -> dict[str, float]:
    """The global SHAP values of an analysis.json document; ValueError names what is missing."""
    try:
        values = document["explanations"][METHOD][LABEL]["global_shap_values"]
    except (KeyError, TypeError):
        raise ValueError(f"{where}: no explanations.{METHOD}.{LABEL}.global_shap_values") from None
    if not isinstance(values, Mapping) or not values:
        raise ValueError(f"{where}: global_shap_values is not a non-empty object")
    try:
        return {str(k): float(v) for k, v in values.items()}
    except (TypeError, ValueError):
        raise ValueError(f"{where}: a global SHAP value is not a number") from None


def explain(score: Score, x: pd.DataFrame, baseline: Mapping[str, Any],
            permutations: int = DEFAULT_PERMUTATIONS, seed: int = DEFAULT_SEED,
            **extra: Any) -> dict[str, Any]:
    """analysis.json for `score` on the rows of `x`."""
    values = shap_values(score, x, baseline, permutations, seed)
    columns = list(x.columns)
    row = np.array([[baseline[c] for c in columns]], dtype=object)
    expected = float(np.asarray(score(_typed(row, columns, baseline)), dtype=float)[0])
    return analysis(global_attributions(values, list(x.columns)), expected, baseline, len(x),
                    permutations, seed, **extra)
