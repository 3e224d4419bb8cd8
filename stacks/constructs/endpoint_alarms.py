"""CloudWatch alarms and a dashboard for one SageMaker endpoint variant.

Severities as the practice guides define them: critical needs a person within 15 minutes, a
warning within a day.

Critical (-> critical topic, alarm and OK; and, through an EventBridge rule, the rollback queue):
- error rate: 100 * Invocation5XXErrors / Invocations > threshold: server faults (5xx) only.
  InvocationModelErrors is not used: it counts every failed invocation of the container, its 4xx
  included, so the model server's 400 for a malformed request (a caller's mistake) would count,
  and a burst of bad requests alone could roll a good model back. (It also counts the failures
  with no status at all, time-outs and a crashed container, which Invocation5XXErrors misses:
  noted as a follow-up, a separate alarm on them.)
- p95 ModelLatency > multiplier x the latency baseline: the known-good model's p95 measured over
  its bake, which the deploy handler publishes as `MLOps/ControlLoop` `LatencyBaselineP95`; the
  alarm divides by it with metric math (threshold: the multiplier), and falls back to the
  configured `alarms.baseline_latency_ms` until a baseline is measured. A period with fewer than
  `alarms.latency_min_invocations` requests is judged on its median instead (its p95 would be its
  slowest request), and one with fewer than MEDIAN_MIN_INVOCATIONS not at all.
- accuracy drop: `MLOps/ModelQuality` `AccuracyDropPercent` > threshold. It goes to the rollback
  and the retrain queue: both handlers take the same decision (history.accuracy_drop_cause) and
  act on their half of it: a drop that began under the newest deployment is the model's (roll
  back), a drop under a model that was measured healthy is concept drift (retrain).
Errors and latency also guard every blue/green update (SageMaker's auto-rollback alarms).

Warning (-> warning topic; drift also -> the retrain queue, never the rollback queue: input drift
says nothing about the model being worse, and a rollback cannot fix it):
- drift: `MLOps/Drift` `DriftedFeatureShare` >= the share of drifted features configured;
- feature drift: any feature's PSI above the threshold (`MLOps/Drift` `MaxPSI`);
- attribution drift: the served model's feature attributions on its traffic rank the features
  otherwise than on its validation split (`MLOps/Explainability` `FeatureAttributionNDCG` below
  the threshold, Clarify's 0.9 by default): the model leans on other features than it was
  validated with; retrain.
- CPU / memory utilization above the threshold (`/aws/sagemaker/Endpoints`): autoscaling's
  business and a person's, so it only notifies (a retrain cannot lower a model's CPU use).

Missing data never breaches: an idle endpoint, or a drift run that has not happened yet, is not
an incident.

The drift engine's metric contract (namespace `MLOps/Drift`, dimension `EndpointName`, plus
`Feature` for the per-feature metric), one datapoint per drift run:
  MaxPSI               largest PSI over the features
  DriftedFeatureShare  share of features flagged as drifted (0..1)
  PredictionPSI        PSI of the model's predictions
  PredictionDrift      1 if the prediction distribution drifted, else 0
  DriftedFeatures      number of features flagged as drifted
  MalformedRecords     captured records that could not be parsed
  CurrentRows          captured rows compared
  FeaturePSI (+ Feature)  PSI of one feature
(as lambdas/shared/drift/report.py publishes them)
The explainability pipeline (pipelines/steps/explainability.py) publishes `MLOps/Explainability`
`FeatureAttributionNDCG` and `AttributionRows` (dimension `EndpointName`), one datapoint per run.
The model-quality job publishes `MLOps/ModelQuality` `AccuracyDropPercent` (dimension
`EndpointName`): the accuracy lost against the evaluation baseline, in percent of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stacks.binding import Construct, aws
from stacks.policy import Statement, statement
from stacks.project_config import Alarms, Drift, Explainability

SAGEMAKER = "AWS/SageMaker"
INSTANCE_METRICS = "/aws/sagemaker/Endpoints"
DRIFT = "MLOps/Drift"
QUALITY = "MLOps/ModelQuality"
EXPLAINABILITY = "MLOps/Explainability"
ATTRIBUTION_NDCG = "FeatureAttributionNDCG"
DRIFT_METRICS = ("MaxPSI", "DriftedFeatureShare", "DriftedFeatures", "PredictionPSI",
                 "PredictionDrift", "MalformedRecords", "CurrentRows")
FEATURE_PSI = "FeaturePSI"
ACCURACY_DROP = "AccuracyDropPercent"

CRITICAL = ("error-rate", "latency-p95", "accuracy-drop")
WARNING = ("drift", "feature-drift", "attribution-drift", "cpu", "memory")
# The alarms SageMaker watches while it shifts traffic to a new fleet. Only those a deployment
# causes within minutes: drift and accuracy alarms stay in ALARM for hours (until the data or the
# ground truth changes) and would roll back every deployment meant to fix them.
DEPLOYMENT_GUARDRAILS = ("error-rate", "latency-p95")
# A period of fewer requests says nothing about latency: two cold answers out of four are its median.
MEDIAN_MIN_INVOCATIONS = 5
# The alarms a retrain answers.
RETRAIN_TRIGGERS = ("accuracy-drop", "drift", "feature-drift", "attribution-drift")


@dataclass(frozen=True)
class EndpointAlarmsProps:
    endpoint_name: str
    region: str
    critical_topic_arn: str
    warning_topic_arn: str
    variant_name: str = "primary"
    # CPUUtilization is summed over an instance's vCPUs (up to 400% on 4): the threshold scales.
    instance_type: str = "ml.m5.large"
    alarms: Alarms = field(default_factory=Alarms)
    drift: Drift = field(default_factory=Drift)
    explainability: Explainability = field(default_factory=Explainability)
    # p95 latency recorded when the model was evaluated; None: alarms.baseline_latency_ms.
    baseline_latency_ms: float | None = None
    # Quality and drift metrics arrive once per monitoring run, not every minute.
    batch_metric_period_seconds: int = 3600

    def __post_init__(self) -> None:
        if self.baseline_latency_ms is not None and self.baseline_latency_ms <= 0:
            raise ValueError(f"{self.endpoint_name}: baseline_latency_ms must be > 0")
        if self.batch_metric_period_seconds % 60:
            raise ValueError(f"{self.endpoint_name}: batch_metric_period_seconds must be whole minutes")
        vcpus(self.instance_type)  # an unknown size fails here, not at apply time

    @property
    def baseline_ms(self) -> float:
        return self.baseline_latency_ms or self.alarms.baseline_latency_ms

    @property
    def default_baseline_us(self) -> float:
        """The baseline until one is measured (ModelLatency is reported in microseconds)."""
        return round(self.baseline_ms * 1000, 3)

    @property
    def cpu_threshold_percent(self) -> float:
        return self.alarms.utilization_percent * vcpus(self.instance_type)


def vcpus(instance_type: str) -> int:
    """vCPUs of an (ml.)EC2 instance type from its size: medium/large 2, xlarge 4, Nxlarge 4N."""
    size = instance_type.rsplit(".", 1)[-1]
    if size in ("medium", "large"):
        return 2
    match = re.fullmatch(r"(\d*)xlarge", size)
    if not match:
        raise ValueError(f"unknown instance size in {instance_type!r}")
    return 4 * int(match.group(1) or 1)


class EndpointAlarms(Construct):
    def __init__(self, scope: Construct, id_: str, props: EndpointAlarmsProps):
        super().__init__(scope, id_)
        self.props = props
        p, a, d = props, props.alarms, props.drift
        variant = {"EndpointName": p.endpoint_name, "VariantName": p.variant_name}
        endpoint = {"EndpointName": p.endpoint_name}
        batch = {"period": p.batch_metric_period_seconds, "evaluation_periods": 1}
        live = {"period": a.period_seconds, "evaluation_periods": a.evaluation_periods}
        self.alarms: dict[str, aws.cloudwatch_metric_alarm.CloudwatchMetricAlarm] = {}

        self._error_rate(variant)
        self._latency(variant)
        self._alarm(
            "accuracy-drop",
            f"accuracy dropped more than {a.accuracy_drop_percent:g}% against the evaluation "
            "baseline (ground-truth join)",
            namespace=QUALITY, metric_name=ACCURACY_DROP, dimensions=endpoint,
            statistic="Maximum", threshold=a.accuracy_drop_percent, **batch,
        )
        self._alarm(
            "drift",
            f"{d.critical_feature_share:.0%} or more of the features drifted at once",
            namespace=DRIFT, metric_name="DriftedFeatureShare", dimensions=endpoint,
            statistic="Maximum", threshold=d.critical_feature_share,
            comparison_operator="GreaterThanOrEqualToThreshold", **batch,
        )
        self._alarm(
            "feature-drift",
            f"a feature's PSI is above {d.psi_threshold:g}",
            namespace=DRIFT, metric_name="MaxPSI", dimensions=endpoint,
            statistic="Maximum", threshold=d.psi_threshold, **batch,
        )
        self._alarm(
            "attribution-drift",
            f"the served model's feature attributions on its traffic rank the features otherwise than "
            f"on its validation split (nDCG below {props.explainability.ndcg_threshold:g})",
            namespace=EXPLAINABILITY, metric_name=ATTRIBUTION_NDCG, dimensions=endpoint,
            statistic="Minimum", threshold=props.explainability.ndcg_threshold,
            comparison_operator="LessThanThreshold", **batch,
        )
        self._alarm(
            "cpu",
            f"CPU above {a.utilization_percent:g}% of the instance's {vcpus(p.instance_type)} vCPUs",
            namespace=INSTANCE_METRICS, metric_name="CPUUtilization", dimensions=variant,
            statistic="Average", threshold=p.cpu_threshold_percent, **live,
        )
        self._alarm(
            "memory",
            f"memory above {a.utilization_percent:g}%",
            namespace=INSTANCE_METRICS, metric_name="MemoryUtilization", dimensions=variant,
            statistic="Average", threshold=a.utilization_percent, **live,
        )
        self.dashboard = aws.cloudwatch_dashboard.CloudwatchDashboard(
            self, "dashboard", dashboard_name=p.endpoint_name, dashboard_body=self._dashboard()
        )

    # What other constructs and stacks need.
    @property
    def critical_alarm_names(self) -> list[str]:
        return [self.alarms[k].alarm_name for k in CRITICAL]

    @property
    def critical_alarm_arns(self) -> list[str]:
        return [self.alarms[k].arn for k in CRITICAL]

    @property
    def warning_alarm_names(self) -> list[str]:
        return [self.alarms[k].alarm_name for k in WARNING]

    @property
    def deployment_alarm_names(self) -> list[str]:
        """For the endpoint's auto-rollback (see DEPLOYMENT_GUARDRAILS)."""
        return [self.alarms[k].alarm_name for k in DEPLOYMENT_GUARDRAILS]

    @property
    def retrain_alarm_names(self) -> list[str]:
        return [self.alarms[k].alarm_name for k in RETRAIN_TRIGGERS]

    def handler_environment(self) -> dict[str, str]:
        """The alarm names the control-loop handlers act on (lambdas/shared/control/settings.py)."""
        return {
            "ROLLBACK_ALARMS": json.dumps(self.critical_alarm_names, separators=(",", ":")),
            "RETRAIN_ALARMS": json.dumps(self.retrain_alarm_names, separators=(",", ":")),
            # Both handlers tell a model that changed from data that did by these.
            "ACCURACY_ALARM": self.alarms["accuracy-drop"].alarm_name,
            "ACCURACY_DROP_PERCENT": f"{self.props.alarms.accuracy_drop_percent:g}",
            # The deploy handler measures and publishes the latency alarm's baseline.
            "LATENCY_BASELINE_PERIOD_SECONDS": str(self.props.alarms.period_seconds),
            "LATENCY_BASELINE_MIN_INVOCATIONS": str(self.props.alarms.baseline_min_invocations),
            "LATENCY_BASELINE_FLOOR_MS": f"{self.props.alarms.baseline_floor_ms:g}",
            "LATENCY_BASELINE_HORIZON_MINUTES": str(LATENCY_BASELINE_HORIZON_MINUTES),
        }

    def rollback_event_pattern(self) -> dict[str, Any]:
        """EventBridge pattern: one of this endpoint's critical alarms went to ALARM."""
        return alarm_state_pattern(self.critical_alarm_names)

    def retrain_event_pattern(self) -> dict[str, Any]:
        return alarm_state_pattern(self.retrain_alarm_names)

    def describe_statement(self, sid: str) -> Statement:
        """SageMaker checks that whoever updates the endpoint may read its rollback alarms;
        the rollback drill also reads and sets their state."""
        return statement(sid, ["cloudwatch:DescribeAlarms"], [al.arn for al in self.alarms.values()])

    # Alarms.
    def _alarm(self, key: str, description: str, **settings: Any) -> None:
        severity = "critical" if key in CRITICAL else "warning"
        topic = self.props.critical_topic_arn if severity == "critical" else self.props.warning_topic_arn
        self.alarms[key] = aws.cloudwatch_metric_alarm.CloudwatchMetricAlarm(
            self,
            key.replace("-", "_"),
            alarm_name=f"{self.props.endpoint_name}-{severity}-{key}",
            alarm_description=f"{severity.upper()} {self.props.endpoint_name}: {description}",
            comparison_operator=settings.pop("comparison_operator", "GreaterThanThreshold"),
            treat_missing_data="notBreaching",
            alarm_actions=[topic],
            ok_actions=[topic],
            **settings,
        )

    def _error_rate(self, variant: dict[str, str]) -> None:
        a = self.props.alarms
        mq = aws.cloudwatch_metric_alarm

        def metric(id_: str, name: str) -> Any:
            return mq.CloudwatchMetricAlarmMetricQuery(
                id=id_,
                return_data=False,
                metric=mq.CloudwatchMetricAlarmMetricQueryMetric(
                    namespace=SAGEMAKER, metric_name=name, dimensions=variant,
                    period=a.period_seconds, stat="Sum",
                ),
            )

        self._alarm(
            "error-rate",
            f"more than {a.error_rate_percent:g}% of invocations failed with a server fault (5xx)",
            threshold=a.error_rate_percent,
            evaluation_periods=a.evaluation_periods,
            metric_query=[
                mq.CloudwatchMetricAlarmMetricQuery(
                    id="error_rate", expression=ERROR_RATE_EXPRESSION,
                    label="error rate (%)", return_data=True,
                ),
                *[metric(id_, name) for name, id_ in ERROR_RATE_METRICS.items()],
            ],
        )

    def _latency(self, variant: dict[str, str]) -> None:
        """p95 ModelLatency over the known-good model's measured p95, which the deploy handler
        publishes (lambdas/shared/control/latency_baseline.py): the threshold is the multiplier,
        so Terraform owns it and no handler rewrites it. No measured baseline yet (a new
        endpoint, a quiet bake): the configured one, through FILL. Metric math alarms take no
        EvaluateLowSampleCountPercentile, so the expression itself handles thin periods."""
        p, a = self.props, self.props.alarms
        mq = aws.cloudwatch_metric_alarm

        def metric(id_: str, namespace: str, name: str, stat: str) -> Any:
            return mq.CloudwatchMetricAlarmMetricQuery(
                id=id_, return_data=False,
                metric=mq.CloudwatchMetricAlarmMetricQueryMetric(
                    namespace=namespace, metric_name=name, dimensions=variant,
                    period=a.period_seconds, stat=stat),
            )

        thin = (f"; the median in periods of {MEDIAN_MIN_INVOCATIONS} to {a.latency_min_invocations - 1} "
                "requests" if a.latency_min_invocations > MEDIAN_MIN_INVOCATIONS else "")
        self._alarm(
            "latency-p95",
            f"p95 model latency above {a.latency_multiplier:g}x the known-good model's measured p95 "
            f"({LATENCY_BASELINE_NAMESPACE} {LATENCY_BASELINE}; {p.baseline_ms:g} ms until one is measured)"
            f"{thin}",
            threshold=a.latency_multiplier,
            evaluation_periods=a.evaluation_periods,
            metric_query=[
                mq.CloudwatchMetricAlarmMetricQuery(
                    id="latency_ratio",
                    expression=latency_ratio_expression(p.default_baseline_us, a.latency_min_invocations),
                    label="p95 latency / baseline", return_data=True,
                ),
                metric("latency_p95", SAGEMAKER, "ModelLatency", "p95"),
                metric("latency_p50", SAGEMAKER, "ModelLatency", "p50"),
                metric("latency_n", SAGEMAKER, "ModelLatency", "SampleCount"),
                # Maximum: overlapping refreshes share timestamps (see latency_baseline.py).
                metric("baseline_p95", LATENCY_BASELINE_NAMESPACE, LATENCY_BASELINE, "Maximum"),
            ],
        )

    # Dashboard.
    def _dashboard(self) -> str:
        p, a, d = self.props, self.props.alarms, self.props.drift
        ep, var = p.endpoint_name, p.variant_name
        sm = [SAGEMAKER]
        dims = ["EndpointName", ep, "VariantName", var]
        batch = p.batch_metric_period_seconds

        def latency(stat: str) -> list:
            return [*sm, "ModelLatency", *dims, {"stat": stat, "id": stat, "visible": False}]

        baseline = [LATENCY_BASELINE_NAMESPACE, LATENCY_BASELINE, *dims,
                    {"stat": "Maximum", "id": "baseline_p95", "visible": False}]
        widgets = [
            _widget("Model latency (ms)", p.region, [
                latency("p50"), latency("p95"), latency("p99"), baseline,
                *[[{"expression": f"{s}/1000", "label": f"{s} ms", "id": f"{s}_ms"}]
                  for s in ("p50", "p95", "p99")],
                [{"expression": f"{a.latency_multiplier:g}*FILL(baseline_p95,{p.default_baseline_us:g})/1000",
                  "label": "p95 alarm (ms)", "id": "p95_alarm"}],
            ]),
            _widget("Invocations and errors", p.region, [
                [*sm, name, *dims, {"stat": "Sum"}]
                for name in ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors",
                             "InvocationModelErrors")
            ]),
            _widget("Error rate (%)", p.region, [
                *[[*sm, name, *dims, {"stat": "Sum", "id": id_, "visible": False}]
                  for name, id_ in ERROR_RATE_METRICS.items()],
                [{"expression": ERROR_RATE_EXPRESSION, "label": "error rate", "id": "error_rate"}],
            ], annotations=[("alarm", a.error_rate_percent)]),
            _widget("Drift", p.region, [
                [DRIFT, name, "EndpointName", ep, {"stat": "Maximum", "period": batch}]
                for name in DRIFT_METRICS
            ], annotations=[("PSI threshold", d.psi_threshold),
                            ("drifted share alarm", d.critical_feature_share)]),
            _widget("PSI per feature", p.region, [[{
                "expression": f"SEARCH('{{{DRIFT},EndpointName,Feature}} MetricName=\"{FEATURE_PSI}\" "
                f"EndpointName=\"{ep}\"', 'Maximum', {batch})",
                "id": "feature_psi", "label": "",
            }]], annotations=[("PSI threshold", d.psi_threshold)]),
            _widget("Accuracy drop (%)", p.region, [
                [QUALITY, ACCURACY_DROP, "EndpointName", ep, {"stat": "Maximum", "period": batch}],
            ], annotations=[("alarm", a.accuracy_drop_percent)]),
            _widget("Utilization (%)", p.region, [
                [INSTANCE_METRICS, name, *dims, {"stat": "Average"}]
                for name in ("CPUUtilization", "MemoryUtilization", "DiskUtilization")
            ], annotations=[("memory alarm", a.utilization_percent),
                            ("CPU alarm", p.cpu_threshold_percent)]),
            {"type": "alarm", "properties": {
                "title": "Alarms", "alarms": [al.arn for al in self.alarms.values()]}},
        ]
        for i, widget in enumerate(widgets):
            widget.update(x=(i % 2) * 12, y=(i // 2) * 6, width=12, height=6)
        return json.dumps({"widgets": widgets}, separators=(",", ":"))


# The error-rate alarm's metrics, by the ids its expression names.
ERROR_RATE_METRICS = {"Invocation5XXErrors": "errors_5xx", "Invocations": "invocations"}
ERROR_RATE_EXPRESSION = "100*FILL(errors_5xx,0)/invocations"
# The latency baseline's metric (lambdas/shared/control/latency_baseline.py publishes it).
LATENCY_BASELINE_NAMESPACE = "MLOps/ControlLoop"
LATENCY_BASELINE = "LatencyBaselineP95"
# The deploy handler refreshes it on this schedule, each time this far ahead: one missed refresh
# leaves no period uncovered.
LATENCY_BASELINE_SCHEDULE = "rate(5 minutes)"
LATENCY_BASELINE_HORIZON_MINUTES = 15


def latency_ratio_expression(default_baseline_us: float, min_invocations: int) -> str:
    """Observed latency / baseline per period: the p95 where it rests on `min_invocations`
    requests, else the median (a few cold or unlucky answers do not move it, a slow model does,
    so a model slow enough to thin its own traffic cannot hide), and nothing under
    MEDIAN_MIN_INVOCATIONS requests (IF without a false value drops the datapoint, and missing
    data does not breach)."""
    observed = (f"IF(latency_n>={min_invocations},latency_p95,"
                f"IF(latency_n>={MEDIAN_MIN_INVOCATIONS},latency_p50))")
    return f"{observed}/FILL(baseline_p95,{default_baseline_us:g})"


def alarm_state_pattern(alarm_names: list[str]) -> dict[str, Any]:
    """EventBridge pattern: one of these alarms went to ALARM."""
    return {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": list(alarm_names), "state": {"value": ["ALARM"]}},
    }


def _widget(
    title: str, region: str, metrics: list, annotations: Sequence[tuple[str, float]] = ()
) -> dict[str, Any]:
    props: dict[str, Any] = {"title": title, "region": region, "view": "timeSeries",
                             "stat": "Average", "period": 60, "metrics": metrics}
    if annotations:
        props["annotations"] = {"horizontal": [{"label": k, "value": v} for k, v in annotations]}
    return {"type": "metric", "properties": props}
