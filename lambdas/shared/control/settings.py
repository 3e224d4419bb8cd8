"""The control-loop handlers' configuration: environment variables set by the project stack.

Parsed once per cold start (`load_settings()` at module level in each handler); a missing or
invalid variable stops the cold start with one message naming every bad variable, so a broken
deployment fails on its first event instead of half-acting on it. All four handlers (gate,
deploy, rollback, retrain) take the same set, so the stack builds one environment for them.

| variable | required | meaning |
| --- | --- | --- |
| `PROJECT` | yes | the ML project (`demo`): a metric dimension and a field of every audit record |
| `TEAM` | no | the owning team: a cost-allocation tag on what the handlers create |
| `ENVIRONMENT` | yes | the environment's name (`staging`): a metric dimension, an audit field |
| `PRODUCTION` | yes | `true`: production rules (the gate only reviews; approver only; promoted) (3) |
| `PIPELINE_ROLE_ARN` | yes | the pipeline jobs' role: only its sessions register packages (3) |
| `PIPELINE_RUNS_URI` | yes | `s3://` prefix of the executions' outputs (`<this>/<execution id>/...`) |
| `GATE_ROLE_ARN` | yes | the gate function's role: its sessions' approvals count outside production (3) |
| `APPROVER_ROLE_ARN` | yes | the approver persona's role: its sessions' approvals count everywhere (3) |
| `MODEL_PACKAGE_GROUP` | yes | the project's model package group; other groups' events are ignored |
| `ENDPOINT_NAME` | yes | the real-time endpoint the loop deploys to and rolls back |
| `VARIANT_NAME` | no: `primary` | production variant: the endpoint construct's (autoscaling, alarms) |
| `EXECUTION_ROLE_ARN` | yes | the SageMaker execution role of every model the loop creates |
| `INSTANCE_TYPE` | yes | `ml.*` instance type of the production variant |
| `INITIAL_INSTANCE_COUNT` | yes | instances of the production variant (>= 1) |
| `CAPTURE_S3_URI` | yes | `s3://` destination of data capture (inputs and outputs) |
| `CAPTURE_SAMPLING_PERCENT` | yes | data-capture sampling, 0..100 |
| `KMS_KEY_ARN` | yes | encrypts captured data and the endpoint's storage volumes |
| `NETWORK_ISOLATION` | no: `true` | models run without network access (as the construct's bootstrap model) |
| `DEPLOYMENT_CONFIG` | yes | JSON: SageMaker's `DeploymentConfig` for UpdateEndpoint (1) |
| `SHADOW_SAMPLING_PERCENT` | no: `0` | approved packages go to the shadow variant (shadow.py) |
| `BAKE_SECONDS` | no: `0` | a first deployment (CreateEndpoint) is known-good this long after InService |
| `GATE_CONFIG` | yes | JSON: the gate's thresholds and bounds (2) |
| `DEPLOYMENTS_TABLE` | yes | DynamoDB deployment history (schema: `tables.DEPLOYMENTS`) |
| `AUDIT_TABLE` | yes | DynamoDB audit records of every decision (schema: `tables.AUDIT`) |
| `IDEMPOTENCY_TABLE` | yes | DynamoDB Powertools idempotency records (schema: `tables.IDEMPOTENCY`) |
| `LOCKS_TABLE` | yes | DynamoDB endpoint leases and retrain cooldown (schema: `tables.LOCKS`) |
| `CRITICAL_TOPIC_ARN` | yes | SNS topic: rollbacks, failed rollbacks, refused deployments |
| `WARNING_TOPIC_ARN` | yes | SNS topic: gate verdicts, deployments, retrain starts |
| `PIPELINE_NAME` | yes | the SageMaker pipeline the retrain handler starts |
| `RETRAIN_COOLDOWN_MINUTES` | yes | after a retrain start, retrain alarms start nothing this long (>= 0) |
| `ROLLBACK_ALARMS` | yes | JSON list: the critical alarm names that roll the endpoint back |
| `RETRAIN_ALARMS` | yes | JSON list: the drift/accuracy alarm names that start a retrain |
| `ACCURACY_ALARM` | no | the accuracy-drop alarm (both lists): the model changed -> rollback, else retrain |
| `ACCURACY_DROP_PERCENT` | no: `10` | its threshold: a window at or under it was healthy |
| `QUALITY_WINDOW_MINUTES` | no: `60` | the quality check's window (a healthy one lies after a deployment) |
| `LATENCY_BASELINE_PERIOD_SECONDS` | no: `60` | the latency alarm's period: a baseline datapoint each |
| `LATENCY_BASELINE_MIN_INVOCATIONS` | no: `100` | a bake's p95 counts over this many invocations |
| `LATENCY_BASELINE_FLOOR_MS` | no: `5` | a measured baseline below this counts as this |
| `LATENCY_BASELINE_HORIZON_MINUTES` | no: `15` | each refresh publishes this far ahead (<= 110) |
| `PROMOTION_SOURCE_GROUP` | in production | ARN of the source environment's model package group (3) |
| `POWERTOOLS_SERVICE_NAME` | no | not used: logs and metrics name the handler (gate, deploy, ...) |
| `POWERTOOLS_LOG_LEVEL`, ... | no | as documented by Powertools for AWS Lambda |

(1) `BlueGreenUpdatePolicy` (TrafficRoutingConfiguration CANARY or LINEAR, wait, sizes) and
    `AutoRollbackConfiguration.Alarms` (`[{"AlarmName": ...}]`), exactly as the API takes it.
(2) `{"thresholds": {metric: value}, "lower_is_better": [metric], "max_regression": x,
    "max_fairness_gap": x | null, "max_latency_p95_ms": x | null}`; null turns that check off.
(3) What the deploy handler trusts (provenance.py): a package created by a pipeline execution (or
    the approver persona), approved by the gate or the approver (in production: the approver only,
    and promoted from a package of PROMOTION_SOURCE_GROUP).

`PRODUCTION` has no default: a deployment made before it existed fails its cold start instead of
serving with the production rules relaxed. Nothing is decided by the environment's name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lambdas.shared.checks import (
    at_least,
    boolean,
    bounded,
    build,
    environ_values,
    json_document,
    json_object,
    mapping_of,
    matching,
    number,
    optional,
    positive,
    record,
    sagemaker_name,
    set_of,
    setting,
    source_names,
    whole,
)
from lambdas.shared.control.errors import ConfigurationError
from lambdas.shared.control.provenance import GROUP_ARN, Trust

name = bounded(256)
arn = matching(r"arn:aws[a-z-]*:.+", "an ARN")
role_arn = matching(r"arn:aws[a-z-]*:iam::\d{12}:role/.+", "an IAM role ARN")
s3_uri = matching(r"s3://[^/]+(/.*)?", "an s3:// URI")
# stacks/config.py EnvironmentName: any environments/<name>.yaml.
ENVIRONMENT_NAME = r"[a-z][a-z0-9]{1,15}"
environment_name = matching(ENVIRONMENT_NAME, "an environment name")


@dataclass(frozen=True)
class GateSettings:
    """GATE_CONFIG: what a model package must reach to be approved."""

    thresholds: dict[str, float] = setting("thresholds", mapping_of(number, min_items=1))
    # Largest allowed drop against the production model, in the metric's own units.
    max_regression: float = setting("max_regression", at_least(0.0))
    lower_is_better: frozenset[str] = setting("lower_is_better", set_of(name), default=frozenset())
    max_fairness_gap: float | None = setting("max_fairness_gap", optional(at_least(0.0)), default=None)
    max_latency_p95_ms: float | None = setting("max_latency_p95_ms", optional(positive), default=None)

    @classmethod
    def from_json(cls, value: Any) -> GateSettings:
        """From the decoded GATE_CONFIG object; ValueError names every bad key."""
        return record(cls)(value)

    def validate(self) -> list[str]:
        unknown = sorted(self.lower_is_better - set(self.thresholds))
        return [f"lower_is_better names metrics without a threshold: {unknown}"] if unknown else []

    def as_json(self) -> dict[str, Any]:
        return {
            "thresholds": dict(self.thresholds),
            "lower_is_better": sorted(self.lower_is_better),
            "max_regression": self.max_regression,
            "max_fairness_gap": self.max_fairness_gap,
            "max_latency_p95_ms": self.max_latency_p95_ms,
        }


@dataclass(frozen=True)
class Settings:
    project: str = setting("PROJECT", name)
    environment: str = setting("ENVIRONMENT", environment_name)
    production: bool = setting("PRODUCTION", boolean)
    model_package_group: str = setting("MODEL_PACKAGE_GROUP", name)
    endpoint_name: str = setting("ENDPOINT_NAME", sagemaker_name)
    execution_role_arn: str = setting("EXECUTION_ROLE_ARN", arn)
    instance_type: str = setting(
        "INSTANCE_TYPE", matching(r"ml\.[a-z0-9]+\.[a-z0-9]+", "an ml.* instance type")
    )
    initial_instance_count: int = setting("INITIAL_INSTANCE_COUNT", whole(1))
    capture_s3_uri: str = setting("CAPTURE_S3_URI", s3_uri)
    capture_sampling_percent: int = setting("CAPTURE_SAMPLING_PERCENT", whole(0, 100))
    kms_key_arn: str = setting("KMS_KEY_ARN", name)
    deployment_config: dict[str, Any] = setting("DEPLOYMENT_CONFIG", json_document(json_object))
    gate: GateSettings = setting("GATE_CONFIG", json_document(GateSettings.from_json))
    deployments_table: str = setting("DEPLOYMENTS_TABLE", name)
    audit_table: str = setting("AUDIT_TABLE", name)
    idempotency_table: str = setting("IDEMPOTENCY_TABLE", name)
    locks_table: str = setting("LOCKS_TABLE", name)
    critical_topic_arn: str = setting("CRITICAL_TOPIC_ARN", arn)
    warning_topic_arn: str = setting("WARNING_TOPIC_ARN", arn)
    pipeline_name: str = setting("PIPELINE_NAME", name)
    retrain_cooldown_minutes: int = setting("RETRAIN_COOLDOWN_MINUTES", whole(0))
    rollback_alarms: frozenset[str] = setting("ROLLBACK_ALARMS", json_document(set_of(name)))
    retrain_alarms: frozenset[str] = setting("RETRAIN_ALARMS", json_document(set_of(name)))
    pipeline_role_arn: str = setting("PIPELINE_ROLE_ARN", role_arn)
    pipeline_runs_uri: str = setting("PIPELINE_RUNS_URI", s3_uri)
    gate_role_arn: str = setting("GATE_ROLE_ARN", role_arn)
    approver_role_arn: str = setting("APPROVER_ROLE_ARN", role_arn)
    variant_name: str = setting("VARIANT_NAME", name, default="primary")
    bake_seconds: int = setting("BAKE_SECONDS", whole(0), default=0)
    shadow_sampling_percent: int = setting("SHADOW_SAMPLING_PERCENT", whole(0, 100), default=0)
    accuracy_alarm: str | None = setting("ACCURACY_ALARM", name, default=None)
    accuracy_drop_percent: float = setting("ACCURACY_DROP_PERCENT", positive, default=10.0)
    quality_window_minutes: int = setting("QUALITY_WINDOW_MINUTES", whole(1), default=60)
    network_isolation: bool = setting("NETWORK_ISOLATION", boolean, default=True)
    latency_baseline_period_seconds: int = setting("LATENCY_BASELINE_PERIOD_SECONDS", whole(1, 3600),
                                                   default=60)
    latency_baseline_min_invocations: int = setting("LATENCY_BASELINE_MIN_INVOCATIONS", whole(1), default=100)
    latency_baseline_floor_ms: float = setting("LATENCY_BASELINE_FLOOR_MS", positive, default=5.0)
    latency_baseline_horizon_minutes: int = setting("LATENCY_BASELINE_HORIZON_MINUTES", whole(1, 110),
                                                    default=15)
    promotion_source_group: str | None = setting(
        "PROMOTION_SOURCE_GROUP", matching(GROUP_ARN.pattern, "a model package group ARN"), default=None)
    team: str | None = setting("TEAM", name, default=None)

    def validate(self) -> list[str]:
        """The problems between variables."""
        problems = []
        if self.production and not self.promotion_source_group:
            problems.append("PROMOTION_SOURCE_GROUP required when PRODUCTION is true")
        auto_rollback = self.deployment_config.get("AutoRollbackConfiguration", {}).get("Alarms", [])
        if not all(isinstance(a, dict) and a.get("AlarmName") for a in auto_rollback):
            problems.append("DEPLOYMENT_CONFIG: every AutoRollbackConfiguration alarm needs an AlarmName")
        return problems

    @property
    def trust(self) -> Trust:
        return Trust(self.pipeline_role_arn, self.gate_role_arn, self.approver_role_arn,
                     self.pipeline_runs_uri)


def variable_names() -> list[str]:
    return source_names(Settings)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment; ConfigurationError names every missing or invalid variable."""
    env = os.environ if environ is None else environ
    try:
        return build(Settings, environ_values(Settings, env))
    except ValueError as exc:
        raise ConfigurationError(f"invalid control-loop configuration: {exc}") from None


def dummy_environment(**overrides: str) -> dict[str, str]:
    """A complete, valid environment with placeholder values (benchmarks and tests)."""
    account, region = "123456789012", "us-east-1"
    values = {
        "PROJECT": "demo",
        "TEAM": "ml-research",
        "ENVIRONMENT": "dev",
        "PRODUCTION": "false",
        "MODEL_PACKAGE_GROUP": "mlops-dev-demo",
        "ENDPOINT_NAME": "mlops-dev-demo",
        "EXECUTION_ROLE_ARN": f"arn:aws:iam::{account}:role/mlops-dev/mlops-dev-demo-execution",
        "PIPELINE_ROLE_ARN": f"arn:aws:iam::{account}:role/mlops-dev/mlops-dev-demo-execution",
        "PIPELINE_RUNS_URI": f"s3://mlops-dev-artifacts-{account}/demo/runs/",
        "GATE_ROLE_ARN": f"arn:aws:iam::{account}:role/mlops-dev/mlops-dev-demo-gate",
        "APPROVER_ROLE_ARN": f"arn:aws:iam::{account}:role/mlops-dev/mlops-dev-ml-engineer",
        "INSTANCE_TYPE": "ml.m5.large",
        "INITIAL_INSTANCE_COUNT": "1",
        "CAPTURE_S3_URI": f"s3://mlops-dev-capture-{account}/datacapture/",
        "CAPTURE_SAMPLING_PERCENT": "100",
        "KMS_KEY_ARN": f"arn:aws:kms:{region}:{account}:key/00000000-0000-0000-0000-000000000000",
        "DEPLOYMENT_CONFIG": json.dumps(
            {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY",
                        "WaitIntervalInSeconds": 300,
                        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                    }
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "mlops-dev-demo-errors"}]},
            }
        ),
        "GATE_CONFIG": json.dumps(
            {
                "thresholds": {"accuracy": 0.9, "recall": 0.9, "f1": 0.88, "roc_auc": 0.95},
                "lower_is_better": [],
                "max_regression": 0.02,
                "max_fairness_gap": 0.25,
                "max_latency_p95_ms": 50,
            }
        ),
        "DEPLOYMENTS_TABLE": "mlops-dev-demo-deployments",
        "AUDIT_TABLE": "mlops-dev-demo-audit",
        "IDEMPOTENCY_TABLE": "mlops-dev-demo-idempotency",
        "LOCKS_TABLE": "mlops-dev-demo-locks",
        "CRITICAL_TOPIC_ARN": f"arn:aws:sns:{region}:{account}:mlops-dev-alerts-critical",
        "WARNING_TOPIC_ARN": f"arn:aws:sns:{region}:{account}:mlops-dev-alerts-warning",
        "PIPELINE_NAME": "mlops-dev-demo-training",
        "RETRAIN_COOLDOWN_MINUTES": "360",
        "ROLLBACK_ALARMS": json.dumps(
            ["mlops-dev-demo-errors", "mlops-dev-demo-latency", "mlops-dev-demo-accuracy"]
        ),
        "RETRAIN_ALARMS": json.dumps(["mlops-dev-demo-drift", "mlops-dev-demo-accuracy"]),
        "ACCURACY_ALARM": "mlops-dev-demo-accuracy",
    }
    values.update(overrides)
    return values
