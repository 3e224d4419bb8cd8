"""The shadow report: a shadow variant's answers against production's over one window.

What SageMaker records for a shadowed request (and the local endpoint runtime too): the request
and production's answer under `{capture}/{endpoint}/{production variant}/yyyy/mm/dd/hh/`, the
same request and the shadow's answer under `{capture}/{endpoint}/{shadow variant}/...`, both
with the request's inferenceId (when the caller sent one) and eventId. The two are joined on
inferenceId, else eventId (`quality.labels.parse_prediction`'s id); `ModelLatency` is read per
VariantName from CloudWatch (AWS/SageMaker, p95 over the window).

The numbers (`compare`): joined rows; agreement rate (classification: the same class at the
decision threshold, a score above it being the positive class as the inference code labels it;
regression: |shadow - production| <= tolerance); the score distributions' distance with the
drift engine's own statistics (the two-sample KS statistic and p-value, the Jensen-Shannon
distance on production's decile bins); each variant's p95 ModelLatency and their ratio.

The pass/fail contract (`verdict`, which `mlops model promote` is to call on a report):
passed iff
  - rows >= min_rows (fewer joined rows: no verdict can pass), and
  - agreement_rate >= min_agreement, and
  - both p95 latencies were measured and shadow_p95 / production_p95 <= max_p95_ratio.
The distance is reported, not judged: a better model may well score differently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from lambdas.shared.capture_files import Malformed, endpoint_capture_keys, object_lines, parse_s3_uri
from lambdas.shared.control.shadow import SHADOW_VARIANT
from lambdas.shared.drift.numeric import compare_numeric, prepare_numeric
from lambdas.shared.drift.statistics import jensen_shannon_distance
from lambdas.shared.quality.labels import parse_prediction
from lambdas.shared.quality.metrics import POSITIVE_ABOVE
from lambdas.shared.scheduled_window import Window

REPORT_VERSION = 1


@dataclass(frozen=True)
class Thresholds:
    """What a shadow report must show to pass (project config: serving.shadow_*)."""

    min_agreement: float = 0.95  # share of joined requests on which the shadow agrees
    max_p95_ratio: float = 1.5  # shadow p95 ModelLatency / production's
    min_rows: int = 100  # joined requests needed for a passing verdict
    tolerance: float = 0.01  # regression: answers this close agree
    decision_threshold: float = POSITIVE_ABOVE  # classification: a score above it is positive


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: list[str]


def verdict(report: Mapping[str, Any], thresholds: Thresholds) -> Verdict:
    """Pass or fail of a report (`compare`'s keys); every reason it fails, or why it passed."""
    rows, agreement = report["rows"], report["agreement_rate"]
    latency = report["latency_p95_ms"]
    ratio = latency.get("ratio")
    failed = []
    if rows < thresholds.min_rows:
        failed.append(f"{rows} joined requests, fewer than the {thresholds.min_rows} a verdict needs")
    if agreement is None or agreement < thresholds.min_agreement:
        shown = "none" if agreement is None else f"{agreement:.4f}"
        failed.append(f"agreement {shown} is below {thresholds.min_agreement}")
    if ratio is None:
        failed.append("the p95 latency of a variant was not measured")
    elif ratio > thresholds.max_p95_ratio:
        failed.append(f"shadow p95 latency is {ratio:.2f}x production's, over {thresholds.max_p95_ratio}x")
    if failed:
        return Verdict(False, failed)
    return Verdict(True, [f"agreement {agreement:.4f} >= {thresholds.min_agreement} over {rows} requests; "
                          f"p95 latency ratio {ratio:.2f} <= {thresholds.max_p95_ratio}"])


def agrees(production: np.ndarray, shadow: np.ndarray, task: Literal["classification", "regression"],
           thresholds: Thresholds) -> np.ndarray:
    if task == "classification":
        cut = thresholds.decision_threshold
        return (production > cut) == (shadow > cut)
    return np.abs(shadow - production) <= thresholds.tolerance


def compare(production: Mapping[str, float], shadow: Mapping[str, float],
            task: Literal["classification", "regression"], thresholds: Thresholds,
            p95_us: Mapping[str, float | None]) -> dict[str, Any]:
    """The report's numbers from each variant's answers by request id and p95 ModelLatency
    (microseconds, by "production"/"shadow"; None: not measured)."""
    joined = sorted(set(production) & set(shadow))
    prod = np.array([production[i] for i in joined], dtype=np.float64)
    shad = np.array([shadow[i] for i in joined], dtype=np.float64)
    distance: dict[str, float | None] = {"ks": None, "ks_p_value": None, "js": None}
    if joined:
        reference = prepare_numeric(prod)
        comparison = compare_numeric(reference, shad)
        distance = {"ks": comparison.ks, "ks_p_value": comparison.p_value,
                    "js": jensen_shannon_distance(reference.bins.ref_counts, comparison.cur_bin_counts)}
    prod_ms, shadow_ms = (None if p95_us.get(v) is None else float(p95_us[v]) / 1000
                          for v in ("production", "shadow"))
    ratio = shadow_ms / prod_ms if prod_ms and shadow_ms is not None else None
    return {
        "rows": len(joined),
        "production_only": len(set(production) - set(shadow)),
        "shadow_only": len(set(shadow) - set(production)),
        "agreement_rate": float(agrees(prod, shad, task, thresholds).mean()) if joined else None,
        "mean_abs_difference": float(np.abs(shad - prod).mean()) if joined else None,
        "score_distance": distance,
        "latency_p95_ms": {"production": prod_ms, "shadow": shadow_ms, "ratio": ratio},
    }


@dataclass(frozen=True)
class ShadowSettings:
    project: str
    endpoint_name: str
    task: Literal["classification", "regression"]
    capture_s3_uri: str
    artifacts_bucket: str
    production_variant: str = "primary"
    shadow_variant: str = SHADOW_VARIANT
    thresholds: Thresholds = Thresholds()


def read_answers(s3: Any, settings: ShadowSettings, variant: str,
                 window: Window) -> tuple[dict[str, float], int]:
    """({request id: answer} of `variant`'s captures in the window, malformed records)."""
    bucket, prefix = parse_s3_uri(settings.capture_s3_uri)
    endpoint_prefix = "/".join(p for p in (prefix, settings.endpoint_name) if p) + "/"
    answers: dict[str, float] = {}
    malformed = 0
    keys = endpoint_capture_keys(s3, bucket, endpoint_prefix, window.since, window.until, variant=variant)
    for key in keys:
        for line in object_lines(s3, bucket, key):
            try:
                name, at, value = parse_prediction(line)
            except Malformed:
                malformed += 1
                continue
            if window.since <= at < window.until:
                answers[name] = value
    return answers, malformed


def p95_latency_us(cloudwatch: Any, endpoint: str, variant: str, window: Window) -> float | None:
    """p95 of AWS/SageMaker ModelLatency (microseconds) of `variant` over the window; None when
    no datapoint."""
    seconds = max(60, int((window.until - window.since).total_seconds()))
    got = cloudwatch.get_metric_data(
        MetricDataQueries=[{"Id": "p95", "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": "AWS/SageMaker", "MetricName": "ModelLatency",
                       "Dimensions": [{"Name": "EndpointName", "Value": endpoint},
                                      {"Name": "VariantName", "Value": variant}]},
            "Period": -(-seconds // 60) * 60, "Stat": "p95"}}],
        StartTime=window.since, EndTime=window.until)
    values = [v for r in got["MetricDataResults"] for v in r.get("Values", [])]
    return max(values) if values else None


def report_key(settings: ShadowSettings, window: Window) -> str:
    """Beside the drift report: <project>/shadow/<endpoint>/<window end>/report.json."""
    return f"{settings.project}/shadow/{settings.endpoint_name}/{window.label}/report.json"


def run_shadow_report(settings: ShadowSettings, window: Window, *, s3: Any, cloudwatch: Any,
                      now: datetime | None = None,
                      packages: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """Reads both variants' captures and latencies of the window, writes the report to the
    artifacts bucket and returns it (with `report`, its s3:// URI). `packages`: the package each
    variant serves (served_model.variant_packages), kept in the report so `mlops model promote`
    knows which package a passing report tested."""
    production, bad_production = read_answers(s3, settings, settings.production_variant, window)
    shadow, bad_shadow = read_answers(s3, settings, settings.shadow_variant, window)
    p95 = {role: p95_latency_us(cloudwatch, settings.endpoint_name, variant, window)
           for role, variant in (("production", settings.production_variant),
                                 ("shadow", settings.shadow_variant))}
    numbers = compare(production, shadow, settings.task, settings.thresholds, p95)
    judged = verdict(numbers, settings.thresholds)
    key = report_key(settings, window)
    report = {
        "version": REPORT_VERSION,
        "project": settings.project,
        "endpoint": settings.endpoint_name,
        "variants": {"production": settings.production_variant, "shadow": settings.shadow_variant},
        "packages": dict(packages or {}),
        "task": settings.task,
        "window": window.as_dict(),
        "computed_at": (now or datetime.now(UTC)).isoformat(),
        **numbers,
        "captured": {"production": len(production), "shadow": len(shadow)},
        "malformed_records": {"production": bad_production, "shadow": bad_shadow},
        "thresholds": asdict(settings.thresholds),
        "passed": judged.passed,
        "reasons": judged.reasons,
        "report": f"s3://{settings.artifacts_bucket}/{key}",
    }
    s3.put_object(Bucket=settings.artifacts_bucket, Key=key, ContentType="application/json",
                  Body=(json.dumps(report, indent=2, default=str) + "\n").encode())
    return report

