"""What a drift comparison becomes: a JSON report, CloudWatch metric datums, an HTML page.

All three are pure functions of a `DriftResult` (plus what the caller knows: the window, the
malformed-record counts), so the drift Lambda, the CLI and the tests produce the same documents.
The HTML report lives in html_report.py and is re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from lambdas.shared.drift.engine import DriftResult, DriftSummary, FeatureDrift
from lambdas.shared.drift.html_report import render_html

__all__ = [
    "MAX_DATUMS_PER_REQUEST",
    "chunk_datums",
    "feature_block",
    "json_report",
    "metric_datums",
    "put_metric_data_requests",
    "render_html",
    "summary_block",
]

MAX_DATUMS_PER_REQUEST = 1000  # PutMetricData accepts at most 1,000 datums per call
_MAX_DIMENSION_VALUE = 1024


def _num(value: float | None) -> float | None:
    """A plain float for JSON; NaN and infinities (not JSON) become null."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def feature_block(f: FeatureDrift) -> dict[str, Any]:
    block: dict[str, Any] = {
        "kind": f.kind,
        "status": f.status,
        "ks": _num(f.ks),
        "chi2": _num(f.chi2),
        "p_value": _num(f.p_value),
        "p_adjusted": _num(f.p_adjusted),
        "psi": _num(f.psi),
        "js": _num(f.js),
        "drifted": bool(f.drifted),
        "n_ref": int(f.n_ref),
        "n_cur": int(f.n_cur),
        "nan_count": int(f.n_missing),
    }
    if f.kind == "categorical":
        block["dof"] = f.dof
        block["unseen_categories"] = list(f.unseen_categories)
    return block


def summary_block(s: DriftSummary, malformed_records: int = 0) -> dict[str, Any]:
    return {
        "status": s.status,
        "n_ref_rows": s.n_ref_rows,
        "n_cur_rows": s.n_cur_rows,
        "n_features": s.n_features,
        "n_tested": s.n_tested,
        "n_drifted": s.n_drifted,
        "drifted_share": _num(s.drifted_share),
        "max_psi": _num(s.max_psi),
        "max_psi_feature": s.max_psi_feature,
        "prediction_psi": _num(s.prediction_psi),
        "prediction_drift": s.prediction_drift,
        "malformed_records": int(malformed_records),
        "alpha": s.alpha,
        "min_psi": s.min_psi,
    }


def json_report(
    result: DriftResult,
    *,
    window: Mapping[str, Any] | None = None,
    malformed: Mapping[str, int] | None = None,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """The drift report as a JSON-ready dict (plain floats; NaN -> null)."""
    malformed = dict(malformed or {})
    return {
        "generated_at": (generated_at or datetime.now(UTC)).isoformat(),
        "window": dict(window or {}),
        "summary": summary_block(result.summary, sum(malformed.values())),
        "features": {name: feature_block(f) for name, f in result.features.items()},
        "prediction": feature_block(result.prediction) if result.prediction is not None else None,
        "malformed": malformed,
        "ignored_columns": list(result.ignored_columns),
    }


# ------------------------------------------------------------------------------------ metrics


def _dims(dimensions: Mapping[str, str], **extra: str) -> list[dict[str, str]]:
    merged = {**dimensions, **extra}
    return [{"Name": k, "Value": str(v)[:_MAX_DIMENSION_VALUE]} for k, v in merged.items()]


def metric_datums(
    result: DriftResult,
    dimensions: Mapping[str, str],
    *,
    malformed_records: int = 0,
    timestamp: datetime | None = None,
) -> list[dict[str, Any]]:
    """CloudWatch MetricData for one comparison (the namespace is the caller's).

    Per feature: `FeaturePSI` with dimension Feature=<name> plus `dimensions` (e.g.
    EndpointName). Summary, with `dimensions` only: `MaxPSI`, `DriftedFeatureShare`,
    `DriftedFeatures`, `PredictionPSI` and `PredictionDrift` (0/1, when predictions were
    tested), `MalformedRecords`, `CurrentRows`. Values CloudWatch would reject (NaN) are left out,
    so an insufficient-data window publishes only its row and malformed counts."""
    base: dict[str, Any] = {"Unit": "None"}
    if timestamp is not None:
        base["Timestamp"] = timestamp
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, dims: list[dict[str, str]], unit: str = "None") -> None:
        v = _num(value)
        if v is not None:
            out.append({**base, "MetricName": name, "Dimensions": dims, "Value": v, "Unit": unit})

    for name, f in result.features.items():
        add("FeaturePSI", f.psi, _dims(dimensions, Feature=name))
    dims = _dims(dimensions)
    s = result.summary
    add("MaxPSI", s.max_psi, dims)
    if s.n_tested:
        add("DriftedFeatureShare", s.drifted_share, dims)
        add("DriftedFeatures", float(s.n_drifted), dims, "Count")
    add("PredictionPSI", s.prediction_psi, dims)
    if s.prediction_drift is not None:
        add("PredictionDrift", 1.0 if s.prediction_drift else 0.0, dims)
    add("MalformedRecords", float(malformed_records), dims, "Count")
    add("CurrentRows", float(s.n_cur_rows), dims, "Count")
    return out


def chunk_datums(datums: Sequence[dict[str, Any]], size: int = MAX_DATUMS_PER_REQUEST) -> list[list[dict]]:
    if size < 1:
        raise ValueError("chunk size must be positive")
    return [list(datums[i : i + size]) for i in range(0, len(datums), size)]


def put_metric_data_requests(namespace: str, datums: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keyword arguments for each `cloudwatch.put_metric_data(**request)` call."""
    return [{"Namespace": namespace, "MetricData": chunk} for chunk in chunk_datums(datums)]
