"""`mlops drill rollback`: what it pushes to trip and to calm the error-rate alarm, and what it
refuses before touching anything."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from local_aws.metric_math import evaluate
from mlops.cli import main
from mlops.drill import DrillError, breach_data, healthy_data

DIMS = [{"Name": "EndpointName", "Value": "ep"}, {"Name": "VariantName", "Value": "primary"}]
EXPRESSION = "100*MAX([FILL(errors_5xx,0),FILL(model_errors,0)])/invocations"


def query(id_: str, name: str) -> dict:
    return {"Id": id_, "ReturnData": False, "MetricStat": {
        "Metric": {"Namespace": "AWS/SageMaker", "MetricName": name, "Dimensions": DIMS},
        "Period": 60, "Stat": "Sum"}}


ALARM = {
    "AlarmName": "ep-critical-error-rate", "EvaluationPeriods": 3, "Threshold": 5.0,
    "ComparisonOperator": "GreaterThanThreshold",
    "Metrics": [{"Id": "error_rate", "Expression": EXPRESSION, "ReturnData": True},
                query("errors_5xx", "Invocation5XXErrors"), query("model_errors", "InvocationModelErrors"),
                query("invocations", "Invocations")],
}


def rate_per_period(*pushes: list) -> dict:
    """The alarm's expression over what the drill pushed, per period (timestamps are distinct)."""
    series: dict[str, dict] = {"errors_5xx": {}, "model_errors": {}, "invocations": {}}
    ids = {"Invocation5XXErrors": "errors_5xx", "InvocationModelErrors": "model_errors",
           "Invocations": "invocations"}
    for push in pushes:
        for _, data in push:
            for d in data:
                bucket = series[ids[d["MetricName"]]]
                bucket[d["Timestamp"]] = bucket.get(d["Timestamp"], 0.0) + d["Value"]
    return evaluate(EXPRESSION, series)


def test_breach_fails_every_evaluated_period_and_healthy_traffic_brings_it_under_half():
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    breach = breach_data(ALARM, now)
    ((namespace, data),) = breach
    assert namespace == "AWS/SageMaker" and all(d["Dimensions"] == DIMS for d in data)
    stamps = sorted({d["Timestamp"] for d in data})
    assert len(stamps) == 3 and (now - stamps[0]).total_seconds() == 121  # one in each period
    assert set(rate_per_period(breach).values()) == {100.0}
    after = rate_per_period(breach, healthy_data(ALARM, now))
    assert len(after) == 3 and all(rate <= ALARM["Threshold"] / 2 for rate in after.values())


def test_metric_way_refuses_an_alarm_it_does_not_know():
    latency = {**ALARM, "Metrics": [query("m", "ModelLatency")]}
    with pytest.raises(DrillError, match="use --via state") as raised:
        breach_data(latency, datetime.now(UTC))
    assert raised.value.exit_code == 2


def test_prod_needs_yes_prod_and_aws_needs_state(capsys):
    assert main(["drill", "rollback", "--env", "prod", "--project", "demo", "--json"]) == 2
    assert "--yes-prod" in capsys.readouterr().err
    assert main(["drill", "rollback", "--env", "dev", "--project", "demo", "--via", "metric"]) == 2
    assert "use --via state" in capsys.readouterr().err
    assert main(["drill", "rollback", "--env", "dev", "--project", "nope"]) == 2
    assert "no such project" in capsys.readouterr().err
    assert main(["drill", "rollback", "--env", "local", "--project", "demo", "--timeout", "0"]) == 2
