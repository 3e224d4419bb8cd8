"""The approval gate: a pure verdict on a candidate model package.

Approve only if every check holds:
- thresholds: each gated metric reaches its threshold (a minimum; a maximum for lower-is-better);
- regression: against the production model (the package the endpoint serves), no gated metric is
  worse by more than `max_regression`, in the metric's own units. No production model (first
  deployment): nothing to regress against;
- fairness: the gap (max - min of the fairness metric across groups) is at most
  `max_fairness_gap`, and the evaluation did not flag it out of bounds;
- latency: p95 single-row latency at evaluation is at most `max_latency_p95_ms`.
Otherwise reject, listing every failed check (not only the first).

Inputs come from the evaluation report (pipelines/steps/evaluate.py: flat `metrics`,
`latency_ms.p95`, `fairness.{gap, max_gap, within_bounds}`) or, when the report cannot be read,
from the package's CustomerMetadataProperties (pipelines/steps/register.py: one key per metric
name, `latency_p95_ms`, `fairness_gap`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from lambdas.shared.control.settings import GateSettings

DESCRIPTION_MAX = 1024  # UpdateModelPackage ApprovalDescription
TRUNCATED = " ...(truncated; the audit record has every reason)"
# Comparisons on six-decimal metrics: a threshold met exactly must pass.
EPSILON = 1e-9


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    latency_p95_ms: float | None = None
    fairness_gap: float | None = None
    fairness_within_bounds: bool | None = None
    source: str = "report"  # "report" | "metadata" | "none" (nothing to measure by)


@dataclass(frozen=True)
class Check:
    name: str  # "threshold:accuracy", "regression:accuracy", "fairness", "latency"
    passed: bool
    value: float | None
    limit: float | None
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    approved: bool
    checks: tuple[Check, ...]
    baseline_package_arn: str | None = None
    reasons: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reasons", tuple(c.reason for c in self.checks if not c.passed))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def evaluation_from_report(report: Mapping[str, Any]) -> Evaluation:
    """From evaluation.json; ValueError when it has no flat `metrics` block."""
    metrics = report.get("metrics")
    if not isinstance(metrics, Mapping):
        raise ValueError("the evaluation report has no 'metrics' object")
    latency = report.get("latency_ms") or {}
    fairness = report.get("fairness") or {}
    within = fairness.get("within_bounds")
    return Evaluation(
        metrics={k: v for k, v in ((k, _number(v)) for k, v in metrics.items()) if v is not None},
        latency_p95_ms=_number(latency.get("p95")) if isinstance(latency, Mapping) else None,
        fairness_gap=_number(fairness.get("gap")) if isinstance(fairness, Mapping) else None,
        fairness_within_bounds=within if isinstance(within, bool) else None,
        source="report",
    )


# What `mlops model promote` records of the evaluation report it copied (its SHA-256).
EVALUATION_SHA256 = "evaluation_sha256"
UNMEASURED = Evaluation(metrics={}, source="none")


def evaluation_from_promoted_report(data: bytes, recorded_sha256: str | None) -> Evaluation:
    """A promoted package's evaluation: the report the promotion copied beside its archive,
    checked against the SHA-256 the package records when it records one. ValueError when it does
    not match or has no `metrics` block."""
    digest = hashlib.sha256(data).hexdigest()
    if recorded_sha256 and digest != recorded_sha256:
        raise ValueError(f"its SHA-256 is {digest}, not the {EVALUATION_SHA256} {recorded_sha256} "
                         "the package records")
    return evaluation_from_report(json.loads(data))


def evaluation_from_metadata(metadata: Mapping[str, str], metric_names: set[str]) -> Evaluation:
    """From CustomerMetadataProperties: `<metric>` as register.py writes it (`metric_<metric>` too)."""
    metrics: dict[str, float] = {}
    for name in metric_names:
        value = _number(metadata.get(f"metric_{name}", metadata.get(name)))
        if value is not None:
            metrics[name] = value
    return Evaluation(
        metrics=metrics,
        latency_p95_ms=_number(metadata.get("latency_p95_ms")),
        fairness_gap=_number(metadata.get("fairness_gap")),
        source="metadata",
    )


def _threshold(name: str, value: float | None, limit: float, lower: bool) -> Check:
    check = f"threshold:{name}"
    if value is None:
        return Check(check, False, None, limit, f"{name}: not in the evaluation")
    passed = value <= limit + EPSILON if lower else value >= limit - EPSILON
    side = "above the maximum" if lower else "below the minimum"
    return Check(check, passed, value, limit, "" if passed else f"{name} {value:g} is {side} {limit:g}")


def _regression(name: str, value: float | None, production: float, allowed: float, lower: bool) -> Check:
    check = f"regression:{name}"
    if value is None:
        return Check(check, False, None, production, f"{name}: not in the evaluation, cannot compare")
    worse_by = (value - production) if lower else (production - value)
    passed = worse_by <= allowed + EPSILON
    reason = (
        ""
        if passed
        else f"{name} {value:g} is {worse_by:.4g} worse than production's {production:g} "
        f"(allowed {allowed:g})"
    )
    return Check(check, passed, value, production, reason)


def decide(
    candidate: Evaluation,
    production: Evaluation | None,
    config: GateSettings,
    production_package_arn: str | None = None,
) -> Verdict:
    checks: list[Check] = []
    for name, limit in sorted(config.thresholds.items()):
        checks.append(_threshold(name, candidate.metrics.get(name), limit, name in config.lower_is_better))
    if production_package_arn is not None and production is None:
        checks.append(
            Check(
                "regression",
                False,
                None,
                None,
                f"cannot compare with the production model {production_package_arn}: "
                "its evaluation is unavailable",
            )
        )
    elif production is not None:
        for name in sorted(config.thresholds):
            if name in production.metrics:
                checks.append(
                    _regression(
                        name,
                        candidate.metrics.get(name),
                        production.metrics[name],
                        config.max_regression,
                        name in config.lower_is_better,
                    )
                )
    if config.max_fairness_gap is not None:
        checks.append(_at_most("fairness", candidate.fairness_gap, config.max_fairness_gap, "fairness gap"))
    if candidate.fairness_within_bounds is False:
        checks.append(
            Check(
                "fairness:evaluation",
                False,
                candidate.fairness_gap,
                None,
                "the evaluation flagged the fairness gap as out of bounds",
            )
        )
    if config.max_latency_p95_ms is not None:
        checks.append(
            _at_most("latency", candidate.latency_p95_ms, config.max_latency_p95_ms, "p95 latency", " ms")
        )
    return Verdict(all(c.passed for c in checks), tuple(checks), production_package_arn)


def untrusted_verdict(reasons: list[str]) -> Verdict:
    """A rejection before any metric is read: the package's origin is not trusted (provenance.py)."""
    return Verdict(False, tuple(Check("provenance", False, None, None, reason) for reason in reasons))


def _at_most(name: str, value: float | None, limit: float, label: str, unit: str = "") -> Check:
    """A ceiling check; a value the evaluation did not measure fails it."""
    if value is None:
        return Check(name, False, None, limit, f"{label} not measured")
    passed = value <= limit + EPSILON
    reason = "" if passed else f"{label} {value:g}{unit} exceeds {limit:g}{unit}"
    return Check(name, passed, value, limit, reason)


def approval_description(verdict: Verdict, limit: int = DESCRIPTION_MAX) -> str:
    if verdict.approved:
        against = (
            f"production model {verdict.baseline_package_arn}"
            if verdict.baseline_package_arn
            else "no production model (first deployment)"
        )
        text = f"gate: approved; {len(verdict.checks)} checks passed, compared with {against}"
    else:
        text = "gate: rejected: " + "; ".join(verdict.reasons)
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED
