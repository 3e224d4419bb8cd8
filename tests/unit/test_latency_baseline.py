"""The latency baseline: measured over a bake, chosen for what the endpoint serves, published a
horizon ahead in requests AWS takes, and divided by in the p95 alarm the stack synthesizes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
import pytest
from botocore.validate import validate_parameters

from lambdas.shared.control import latency_baseline as lb
from lambdas.shared.control.history import Deployment, iso
from local_aws.metric_math import evaluate
from stacks.constructs import endpoint_alarms

CLOUDWATCH = botocore.session.get_session().get_service_model("cloudwatch")
T0 = datetime(2026, 12, 1, 10, 0, 7, tzinfo=UTC)


def valid(operation: str, request: dict[str, Any]) -> None:
    validate_parameters(request, CLOUDWATCH.operation_model(operation).input_shape)


class Recorder:
    """A CloudWatch client that checks each request against botocore's model and answers."""

    def __init__(self, answer: list[dict[str, Any]] | None = None):
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answer = answer or []

    def get_metric_data(self, **request: Any) -> dict[str, Any]:
        valid("GetMetricData", request)
        self.calls.append(("GetMetricData", request))
        return {"MetricDataResults": self.answer}

    def put_metric_data(self, **request: Any) -> dict[str, Any]:
        valid("PutMetricData", request)
        self.calls.append(("PutMetricData", request))
        return {}


def record(config: str, *, known_good: datetime | None, baseline: float | None = None,
           status: str = "SERVING", kind: str = "deploy") -> Deployment:
    start = (known_good or T0) - timedelta(minutes=5)
    return Deployment(endpoint_name="ep", deployment_id=f"{kind}#{config}#{start.isoformat()}", kind=kind,
                      status=status, new_endpoint_config=config, event_time=iso(start), started_at=iso(start),
                      traffic_at=iso(start + timedelta(seconds=30)),
                      known_good_at=iso(known_good) if known_good else None, latency_baseline_us=baseline)


def test_the_bake_is_measured_in_one_period_with_its_invocation_count():
    cw = Recorder([{"Id": "p95", "Values": [4200.0]}, {"Id": "count", "Values": [180.0]}])
    since, until = T0, T0 + timedelta(minutes=3, seconds=20)
    got = lb.measure(cw, "ep", "primary", since, until, min_invocations=100)
    assert (got.p95_us, got.invocations) == (4200.0, 180)
    assert got.as_changes() == {"latency_baseline_us": 4200.0, "latency_baseline_invocations": 180}
    ((_, request),) = cw.calls
    stats = {q["Id"]: q["MetricStat"] for q in request["MetricDataQueries"]}
    assert {s["Stat"] for s in stats.values()} == {"p95", "SampleCount"}
    assert stats["p95"]["Metric"]["MetricName"] == "ModelLatency"
    assert stats["p95"]["Metric"]["Dimensions"] == [{"Name": "EndpointName", "Value": "ep"},
                                                    {"Name": "VariantName", "Value": "primary"}]
    # Floored to the minute, whole minutes, one period spanning the window.
    assert request["StartTime"] == T0.replace(second=0)
    period = stats["p95"]["Period"]
    assert period % 60 == 0 and request["StartTime"] + timedelta(seconds=period) >= until
    assert request["EndTime"] - request["StartTime"] == timedelta(seconds=period)


def test_a_quiet_bake_is_no_baseline():
    cw = Recorder([{"Id": "p95", "Values": [900.0]}, {"Id": "count", "Values": [12.0]}])
    got = lb.measure(cw, "ep", "primary", T0, T0 + timedelta(minutes=1), min_invocations=100)
    assert got.p95_us is None and got.as_changes() == {}
    assert "12 invocations" in got.describe(100) and "fewer than 100" in got.describe(100)
    assert lb.measure(Recorder(), "ep", "primary", T0, T0 + timedelta(minutes=1), 1).p95_us is None


def test_the_bake_window_runs_from_traffic_to_known_good():
    r = record("c1", known_good=T0)
    since, until = lb.bake_window(r)
    assert (since, until) == (T0 - timedelta(minutes=4, seconds=30), T0)
    assert lb.bake_window(record("c1", known_good=None, status="BAKING")) is None


def test_the_baseline_is_the_served_configs_else_the_newest_measured():
    v1 = record("c1", known_good=T0, baseline=3000.0)
    v2 = record("c2", known_good=T0 + timedelta(hours=1), baseline=5000.0)
    quiet = record("c3", known_good=T0 + timedelta(hours=2))  # too few invocations to measure
    failed = record("c4", known_good=T0 + timedelta(hours=3), baseline=1.0, status="FAILED")
    history = [v1, v2, quiet, failed]
    assert lb.baseline_for(history, "c1") is v1  # a rollback to c1 serves c1's baseline
    assert lb.baseline_for(history, "c2") is v2
    assert lb.baseline_for(history, "c3") is v2  # unmeasured: the newest measured one
    assert lb.baseline_for(history, None) is v2
    assert lb.baseline_for([quiet], "c3") is None


@pytest.mark.parametrize("period", [10, 60])
def test_datapoints_cover_every_period_to_the_horizon_on_epoch_aligned_stamps(period):
    data = lb.datapoints("ep", "primary", 4200.0, T0, period, timedelta(minutes=15))
    stamps = [d["Timestamp"] for d in data]
    assert stamps[0] <= T0 < stamps[0] + timedelta(seconds=period)
    assert all(int(s.timestamp()) % period == 0 for s in stamps)
    assert all(b - a == timedelta(seconds=period) for a, b in itertools.pairwise(stamps))
    assert stamps[-1] >= T0 + timedelta(minutes=15) - timedelta(seconds=period)
    assert {d["StorageResolution"] for d in data} == {1 if period < 60 else 60}
    assert {(d["MetricName"], d["Unit"], d["Value"]) for d in data} == {
        ("LatencyBaselineP95", "Microseconds", 4200.0)}
    cw = Recorder()
    assert lb.publish(cw, data) == len(data)
    for _, request in cw.calls:
        assert request["Namespace"] == "MLOps/ControlLoop"
        assert len(request["MetricData"]) <= lb.PUT_MAX_DATUMS


def test_a_baseline_under_the_floor_counts_as_the_floor():
    assert lb.published_value(4200.0, 5.0) == 5000.0
    assert lb.published_value(6300.0, 5.0) == 6300.0


def test_no_datapoint_beyond_what_putmetricdata_takes():
    data = lb.datapoints("ep", "primary", 1.0, T0, 5, timedelta(hours=5))
    assert data[-1]["Timestamp"] < T0 + lb.FUTURE_LIMIT
    cw = Recorder()
    lb.publish(cw, data)
    assert len(cw.calls) == -(-len(data) // lb.PUT_MAX_DATUMS) > 1  # chunked


def test_the_alarm_reads_the_metric_the_handler_publishes():
    # stacks/ may not import lambdas/: the two names are one contract, held here.
    assert (endpoint_alarms.LATENCY_BASELINE_NAMESPACE, endpoint_alarms.LATENCY_BASELINE) == (
        lb.NAMESPACE, lb.METRIC)
    # The horizon outlasts two refresh intervals: one missed refresh leaves no period uncovered.
    assert endpoint_alarms.LATENCY_BASELINE_SCHEDULE == "rate(5 minutes)"
    assert endpoint_alarms.LATENCY_BASELINE_HORIZON_MINUTES >= 2 * 5


def test_the_alarm_expression_divides_by_the_baseline_or_the_configured_one():
    expression = endpoint_alarms.latency_ratio_expression(50_000, 20)
    counts = {"latency_n": {1: 200.0, 2: 200.0}, "latency_p50": {1: 1.0, 2: 1.0}}
    measured = {"latency_p95": {1: 9000.0, 2: 3000.0}, "baseline_p95": {1: 4000.0, 2: 4000.0}, **counts}
    assert evaluate(expression, measured) == {1: 2.25, 2: 0.75}  # 2.25 > 2: ALARM
    unmeasured = {"latency_p95": {1: 90_000.0, 2: 30_000.0}, "baseline_p95": {}, **counts}
    assert evaluate(expression, unmeasured) == {1: 1.8, 2: 0.6}


def test_a_thin_period_is_judged_on_its_median_and_a_handful_not_at_all():
    # A fresh container's first answers are slow; over a few requests the "p95" is the slowest.
    expression = endpoint_alarms.latency_ratio_expression(50_000, 20)
    periods = {"latency_n": {1: 3.0, 2: 10.0, 3: 10.0, 4: 20.0},
               "latency_p95": {1: 400_000.0, 2: 400_000.0, 3: 400_000.0, 4: 400_000.0},
               "latency_p50": {1: 400_000.0, 2: 5_000.0, 3: 300_000.0, 4: 5_000.0}, "baseline_p95": {}}
    assert evaluate(expression, periods) == {
        # 1: three requests, dropped (missing data: not breaching); 2: ten, two of them cold, the
        # median is fast; 3: ten, a slow model, the median is slow; 4: twenty, the p95 counts.
        2: 0.1, 3: 6.0, 4: 8.0}


def test_an_updates_new_fleet_is_read_alone_by_its_config():
    update = record("c2", known_good=T0)
    update = Deployment(**{**update.as_item(), "previous_endpoint_config": "c1"})
    created = record("c1", known_good=T0)  # a first deployment: no previous config
    assert lb.fleet_config(update) == "c2" and lb.fleet_config(created) is None
    cw = Recorder([{"Id": "p95", "Values": [1.0]}, {"Id": "count", "Values": [500.0]}])
    lb.measure(cw, "ep", "primary", T0, T0 + timedelta(minutes=2), 100, lb.fleet_config(update))
    ((_, request),) = cw.calls
    for query in request["MetricDataQueries"]:
        dimensions = query["MetricStat"]["Metric"]["Dimensions"]
        assert dimensions[-1] == {"Name": "EndpointConfigName", "Value": "c2"}


def test_a_bake_is_measured_again_once_its_datapoints_have_arrived():
    baked = record("c1", known_good=T0, baseline=3000.0)
    assert not lb.needs_final_measurement(baked, T0 + timedelta(minutes=1))  # still arriving
    assert lb.needs_final_measurement(baked, T0 + lb.SETTLE)
    final = Deployment(**{**baked.as_item(), "latency_baseline_final": True})
    assert not lb.needs_final_measurement(final, T0 + timedelta(minutes=10))
    assert not lb.needs_final_measurement(baked, T0 + timedelta(days=2))  # too old to revisit
    baking = record("c2", known_good=None, status="BAKING")
    assert not lb.needs_final_measurement(baking, T0 + timedelta(minutes=10))
    quiet = lb.Measurement(p95_us=None, invocations=3, since="a", until="b")
    assert quiet.as_changes(final=True) == {"latency_baseline_final": True}
