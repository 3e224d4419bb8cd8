"""The local control plane's pure parts: CloudWatch metric math and the alarm verdict."""

from __future__ import annotations

import math
import re

import pytest

from local_aws.control_plane import alarm_period, judge, metric_queries, rate_seconds
from local_aws.metric_math import MetricMathError, evaluate, evaluate_results

ERROR_RATE = "100*MAX([FILL(errors_5xx,0),FILL(model_errors,0)])/invocations"


def test_error_rate_expression_fills_missing_errors_and_skips_division_by_zero():
    series = {
        "errors_5xx": {1: 5.0, 3: 1.0},
        "model_errors": {1: 2.0, 2: 8.0},
        "invocations": {1: 100.0, 2: 40.0, 3: 0.0},
    }
    # t1: max(5, 2) / 100; t2: max(0 filled, 8) / 40; t3: division by zero -> no datapoint.
    assert evaluate(ERROR_RATE, series) == {1: 5.0, 2: 20.0}


def test_precedence_unary_minus_and_aggregates():
    series = {"a": {1: 2.0, 2: 4.0}, "b": {1: 1.0, 2: 3.0}}
    assert evaluate("a + b * 2", series) == {1: 4.0, 2: 10.0}
    assert evaluate("(a + b) * 2", series) == {1: 6.0, 2: 14.0}
    assert evaluate("-a + 10", series) == {1: 8.0, 2: 6.0}
    assert evaluate("SUM([a, b])", series) == {1: 3.0, 2: 7.0}
    assert evaluate("AVG([a, b])", series) == {1: 1.5, 2: 3.5}
    assert evaluate("MAX(a)", series) == 4.0  # one series: one number over the range
    assert evaluate("ABS(b - a)", series) == {1: 1.0, 2: 1.0}
    assert evaluate("2 * 3 + 1", {}) == 7.0


# The CloudWatch User Guide's own examples ("Comparison and logical operators", "Using IF
# expressions"); None marks a timestamp a series lacks.
def _series(*values: float | None) -> dict[int, float]:
    return {t: v for t, v in enumerate(values, 1) if v is not None}


def test_comparisons_and_logical_operators_as_the_user_guide_shows_them():
    series = {"metric1": _series(30, 20, 0, 0), "metric2": _series(20, None, 20, None)}
    assert evaluate("(metric1 < metric2)", series) == _series(0, 0, 1, 0)
    assert evaluate("(metric1 >= 30)", series) == _series(1, 0, 0, 0)
    assert evaluate("(metric1 > 15 AND metric2 > 15)", series) == _series(1, 0, 0, 0)

    # Not in the guide, our reading of it: a series against a number keeps the series' own
    # timestamps (metric2 lacks t2, so "metric2 != 20" has no t2), and OR then reads it as 0.
    assert evaluate("metric1 == 0 || metric2 != 20", series) == _series(0, 0, 1, 1)
    assert evaluate("2 <= 3 && 1 > 2", {}) == 0.0
    # The guide states no precedence between AND and OR: AND binds tighter, as in C.
    assert evaluate("1 OR 0 AND 0", {}) == evaluate("1 || 1 && 0", {}) == 1.0
    assert evaluate("(1 || 1) && 0", {}) == 0.0


def test_if_as_the_user_guide_shows_it():
    series = {"metric1": _series(1, 1, 0, 0, None), "metric2": _series(30, None, 0, 0, 30),
              "metric3": _series(0, 0, 20, None, 20)}
    assert evaluate("IF(metric1, metric2, metric3)", series) == _series(30, 0, 20)
    assert evaluate("IF(metric1, 5, metric3)", series) == _series(5, 5, 20)
    assert evaluate("IF(metric1, metric2, 5)", series) == _series(30, 0, 5, 5)
    assert evaluate("IF(metric1, metric2)", series) == _series(30, 0)  # false and no falseValue: dropped
    assert evaluate("IF(metric2 < 10, metric2)", series) == {3: 0.0, 4: 0.0}
    assert evaluate("IF(1, metric3, metric2)", series) == series["metric3"]
    assert evaluate("IF(0, metric3)", series) == {}


def test_series_combine_on_shared_timestamps_only():
    assert evaluate("a / b", {"a": {1: 1.0, 2: 2.0}, "b": {2: 4.0}}) == {2: 0.5}


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("a +", "position 3"),
        ("nope * 2", "unknown query id 'nope'"),
        ("a % 2", "unexpected '%' at position 2"),
        ("a = 2", "unexpected '=' at position 2"),
        ("IF(a)", "IF() with 1 argument(s) is not supported"),
        ("a and 1", "unexpected 'and'"),
        ("ANOMALY_DETECTION_BAND(a, 2)", "not supported locally"),
        ("[a, a]", "aggregate it"),
        ("MAX([a, a)", "expected ']', found ')'"),
    ],
)
def test_what_is_not_understood_is_named(expression, message):
    with pytest.raises(MetricMathError, match=re.escape(message)):
        evaluate(expression, {"a": {1: 1.0}})


def test_moto_results_in_moto_results_out():
    results = [
        {"id": "errors_5xx", "values": [10.0], "timestamps": ["t1"]},
        {"id": "model_errors", "values": [], "timestamps": []},
        {"id": "invocations", "values": [100.0, 50.0], "timestamps": ["t1", "t2"]},
    ]
    assert evaluate_results(ERROR_RATE, results) == ([10.0, 0.0], ["t1", "t2"])


def alarm(**overrides):
    return {
        "AlarmName": "ep-critical-error-rate",
        "EvaluationPeriods": 3,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 5.0,
        "TreatMissingData": "notBreaching",
        "StateValue": "OK",
        **overrides,
    }


def test_every_evaluated_period_must_breach_unless_datapoints_to_alarm_says_fewer():
    assert judge(alarm(), [6.0, 7.0, 50.0]).state == "ALARM"
    assert judge(alarm(), [6.0, 1.0, 50.0]).state == "OK"
    assert judge(alarm(DatapointsToAlarm=2), [6.0, 1.0, 50.0]).state == "ALARM"
    assert judge(alarm(ComparisonOperator="GreaterThanOrEqualToThreshold"), [5.0] * 3).state == "ALARM"
    assert judge(alarm(ComparisonOperator="LessThanThreshold"), [1.0] * 3).state == "ALARM"
    verdict = judge(alarm(), [6.0, 7.0, 50.0])
    assert "3 out of the last 3 datapoints [6, 7, 50]" in verdict.reason
    assert "greater than the threshold (5)" in verdict.reason


def test_missing_data_as_configured():
    quiet = [None, None, None]
    assert judge(alarm(), quiet).state == "OK"  # notBreaching: an idle endpoint is no incident
    assert judge(alarm(TreatMissingData="breaching"), quiet).state == "ALARM"
    assert judge(alarm(TreatMissingData="missing"), quiet).state == "INSUFFICIENT_DATA"
    assert judge(alarm(TreatMissingData="ignore", StateValue="ALARM"), quiet).state == "ALARM"
    assert judge(alarm(), [None, 9.0, math.nan]).state == "OK"
    assert judge(alarm(TreatMissingData="breaching"), [None, 9.0, None]).state == "ALARM"


def test_unknown_comparison_is_refused_with_the_alarm_named():
    with pytest.raises(ValueError, match="ep-critical-error-rate: comparison"):
        judge(alarm(ComparisonOperator="LessThanLowerOrGreaterThanUpperThreshold"), [1.0] * 3)


def test_queries_and_period_of_simple_and_math_alarms():
    simple = alarm(Namespace="AWS/SageMaker", MetricName="ModelLatency", Period=60, ExtendedStatistic="p95",
                   Dimensions=[{"Name": "EndpointName", "Value": "ep"}])
    (query,) = metric_queries(simple)
    assert query["MetricStat"]["Stat"] == "p95" and query["MetricStat"]["Period"] == 60
    assert alarm_period(simple) == 60
    math_alarm = alarm(Metrics=[
        {"Id": "rate", "Expression": "100*e/i", "ReturnData": True, "Label": None},
        {"Id": "e", "ReturnData": False, "MetricStat": {"Metric": {}, "Period": 300, "Stat": "Sum"}},
    ])
    assert metric_queries(math_alarm)[0] == {"Id": "rate", "Expression": "100*e/i", "ReturnData": True}
    assert alarm_period(math_alarm) == 300


def test_rate_schedules():
    assert rate_seconds("rate(1 hour)") == 3600
    assert rate_seconds("rate(15 minutes)") == 900
    assert rate_seconds("rate(2 days)") == 172800
    assert rate_seconds("cron(0 * * * ? *)") is None
