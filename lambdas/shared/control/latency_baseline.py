"""The latency baseline: the known-good model's measured p95, published as a metric the p95
alarm divides by, so the alarm's threshold (a multiplier) stays Terraform's and no handler
rewrites it.

Measured: when a deployment becomes known-good (SERVING), the p95 of its fleet's ModelLatency
over its bake, from the moment that fleet took traffic to the moment it became known-good, and
how many invocations that p95 rests on. An update's new fleet is read by its EndpointConfigName
dimension, which SageMaker publishes for it from its first traffic on (the deployment guardrails
guide's "new fleet" alarms), so the old fleet's answers during a canary never count; a first
deployment (CreateEndpoint) has one fleet, read by EndpointName and VariantName. Fewer
invocations than the configured minimum: no measurement (a p95 of a handful of requests is
noise). SageMaker's metrics arrive a minute or two late, so the measurement taken at SERVING is
provisional: the schedule's refresh measures again once SETTLE has passed and marks it final.
The evaluation's in-process p95 is not used: it excludes the
container's HTTP and serialization, which ModelLatency includes, so twice it would trip on a
healthy model.

Published: `MLOps/ControlLoop` `LatencyBaselineP95` (Microseconds, as ModelLatency;
dimensions EndpointName, VariantName), one datapoint per alarm period from now to `horizon`
ahead. CloudWatch takes timestamps up to two hours in the future (PutMetricData), so a refresh
every few minutes keeps every period covered, and one missed refresh costs nothing. Periods align
to the epoch, as CloudWatch's do, so overlapping refreshes land on the same timestamps; the alarm
reads them with Maximum: when a faster model replaces a slower one, the slower one's baseline
holds until its points run out (the alarm is less sensitive for at most `horizon`, never more).
With no measurement at all the alarm falls back to the configured baseline (its FILL value). A
measurement under the floor (`alarms.baseline_floor_ms`) is published as the floor: below a few
milliseconds a p95 measures the scheduler more than the model.

Which measurement: the newest of the config the endpoint serves (a rollback serves a config
measured when it first baked), else the newest of any config (a model too quiet to measure is
compared with the last one that was measured), else none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lambdas.shared.capture_files import parse_time
from lambdas.shared.control.history import FAILED, SERVING, Deployment

NAMESPACE = "MLOps/ControlLoop"
METRIC = "LatencyBaselineP95"
SAGEMAKER = "AWS/SageMaker"
PUT_MAX_DATUMS = 1000  # PutMetricData: at most 1,000 metrics a request
FUTURE_LIMIT = timedelta(hours=2)  # PutMetricData: timestamps at most two hours ahead
SETTLE = timedelta(minutes=3)  # after it, a bake's datapoints have all arrived
REMEASURE_WITHIN = timedelta(days=1)  # older provisional measurements stay as they are


@dataclass(frozen=True)
class Measurement:
    p95_us: float | None  # None: too few invocations to say
    invocations: int
    since: str
    until: str

    def as_changes(self, final: bool = False) -> dict[str, Any]:
        """The deployment record's fields for it (only a usable one is stored)."""
        done = {"latency_baseline_final": True} if final else {}
        if self.p95_us is None:
            return done
        return {"latency_baseline_us": round(self.p95_us, 3),
                "latency_baseline_invocations": self.invocations, **done}

    def describe(self, min_invocations: int) -> str:
        if self.p95_us is None:
            return (f"latency baseline not measured: {self.invocations} invocations between {self.since} and "
                    f"{self.until}, fewer than {min_invocations}")
        return (f"latency baseline p95 {self.p95_us / 1000:.3f} ms over {self.invocations} invocations "
                f"({self.since} .. {self.until})")


def bake_window(record: Deployment) -> tuple[datetime, datetime] | None:
    """From when the deployment's fleet took traffic to when it became known-good."""
    until = record.known_good_at
    since = record.traffic_at or record.started_at
    if until is None:
        return None
    start, end = parse_time(since), parse_time(until)
    return (start, end) if end > start else None


def dimensions(endpoint: str, variant: str, config: str | None = None) -> list[dict[str, str]]:
    """The variant's metric dimensions; with `config`, that fleet's alone (fleet_config)."""
    found = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    return [*found, {"Name": "EndpointConfigName", "Value": config}] if config else found


def fleet_config(record: Deployment) -> str | None:
    """The EndpointConfigName its fleet's metrics carry: an update's (deploy or rollback); None
    for a first deployment, whose only fleet the endpoint's metrics describe."""
    return record.new_endpoint_config if record.previous_endpoint_config else None


def needs_final_measurement(record: Deployment, now: datetime) -> bool:
    if record.status != SERVING or not record.known_good_at or record.latency_baseline_final:
        return False
    age = now - parse_time(record.known_good_at)
    return SETTLE <= age <= REMEASURE_WITHIN


def measure(cloudwatch: Any, endpoint: str, variant: str, since: datetime, until: datetime,
            min_invocations: int, config: str | None = None) -> Measurement:
    """The fleet's p95 ModelLatency and its invocation count over [since, until): one period
    that spans the window (start floored to the minute, length whole minutes, as GetMetricData
    wants for standard-resolution data). `config`: read that fleet alone (fleet_config)."""
    start = since.astimezone(UTC).replace(second=0, microsecond=0)
    period = max(60, math.ceil((until - start).total_seconds() / 60) * 60)
    metric = {"Namespace": SAGEMAKER, "MetricName": "ModelLatency",
              "Dimensions": dimensions(endpoint, variant, config)}
    got = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {"Id": "p95", "MetricStat": {"Metric": metric, "Period": period, "Stat": "p95"}},
            {"Id": "count", "MetricStat": {"Metric": metric, "Period": period, "Stat": "SampleCount"}},
        ],
        StartTime=start, EndTime=start + timedelta(seconds=period),
    )["MetricDataResults"]
    values = {r["Id"]: r.get("Values") or [] for r in got}
    invocations = int(sum(values.get("count", [])))
    p95 = values.get("p95", [])
    usable = invocations >= min_invocations and bool(p95)
    return Measurement(p95_us=float(p95[0]) if usable else None, invocations=invocations,
                       since=_iso(since), until=_iso(until))


def baseline_for(history: Iterable[Deployment], current_config: str | None) -> Deployment | None:
    """The record whose measurement is the baseline now (see the module's rule)."""
    measured = sorted(
        (r for r in history if r.status != FAILED and r.latency_baseline_us),
        key=lambda r: (r.known_good_at or "", r.started_at), reverse=True,
    )
    same = next((r for r in measured if current_config and r.new_endpoint_config == current_config), None)
    return same or (measured[0] if measured else None)


def published_value(measured_us: float, floor_ms: float) -> float:
    """What the alarm divides by: the measurement, never below the floor."""
    return max(measured_us, floor_ms * 1000)


def datapoints(endpoint: str, variant: str, value_us: float, now: datetime, period_seconds: int,
               horizon: timedelta) -> list[dict[str, Any]]:
    """PutMetricData MetricData: one datum per period from the current one to `horizon` ahead."""
    if period_seconds <= 0:
        raise ValueError("period_seconds must be > 0")
    horizon = min(horizon, FUTURE_LIMIT - timedelta(seconds=period_seconds))
    epoch = now.astimezone(UTC).timestamp()
    first = int(epoch // period_seconds) * period_seconds
    last = epoch + horizon.total_seconds()
    # Sub-minute periods need high-resolution storage, or CloudWatch keeps one point a minute.
    resolution = 1 if period_seconds < 60 else 60
    return [
        {"MetricName": METRIC, "Dimensions": dimensions(endpoint, variant), "Value": value_us,
         "Unit": "Microseconds", "StorageResolution": resolution,
         "Timestamp": datetime.fromtimestamp(stamp, tz=UTC)}
        for stamp in range(first, int(last) + 1, period_seconds)
    ]


def publish(cloudwatch: Any, data: Sequence[dict[str, Any]]) -> int:
    for at in range(0, len(data), PUT_MAX_DATUMS):
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=list(data[at:at + PUT_MAX_DATUMS]))
    return len(data)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
