"""The control-loop handlers' configuration: environment variables set by the project stack.

Parsed once per cold start (`load_settings()` at module level in each handler); a missing or
invalid variable stops the cold start with one message naming every bad variable, so a broken
deployment fails on its first event instead of half-acting on it. All four handlers (gate,
deploy, rollback, retrain) take the same set, so the stack builds one environment for them.

| variable | required | meaning |
| --- | --- | --- |
| `PROJECT` | yes | the ML project (`demo`): a metric dimension and a field of every audit record |
| `ENVIRONMENT` | yes | `local`, `dev`, `staging` or `prod` (`prod`: promotion rule, no gate approval) |
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
| `GATE_CONFIG` | yes | JSON: the gate's thresholds and bounds (2) |
| `DEPLOYMENTS_TABLE` | yes | DynamoDB deployment history (schema: `tables.DEPLOYMENTS`) |
| `AUDIT_TABLE` | yes | DynamoDB audit records of every decision (schema: `tables.AUDIT`) |
| `IDEMPOTENCY_TABLE` | yes | DynamoDB Powertools idempotency records (schema: `tables.IDEMPOTENCY`) |
| `LOCKS_TABLE` | yes | DynamoDB endpoint leases and retrain cooldown (schema: `tables.LOCKS`) |
| `CRITICAL_TOPIC_ARN` | yes | SNS topic: rollbacks, failed rollbacks, refused prod deployments |
| `WARNING_TOPIC_ARN` | yes | SNS topic: gate verdicts, deployments, retrain starts |
| `PIPELINE_NAME` | yes | the SageMaker pipeline the retrain handler starts |
| `RETRAIN_COOLDOWN_MINUTES` | yes | after a retrain start, retrain alarms start nothing this long (>= 0) |
| `ROLLBACK_ALARMS` | yes | JSON list: the critical alarm names that roll the endpoint back |
| `RETRAIN_ALARMS` | yes | JSON list: the drift/accuracy alarm names that start a retrain |
| `APPROVER_ROLE_ARN` | in prod | the IAM role whose sessions may approve prod packages |
| `PROMOTION_SOURCE_GROUP` | in prod | the staging model package group prod packages are promoted from |
| `POWERTOOLS_SERVICE_NAME` | no | not used: logs and metrics name the handler (gate, deploy, ...) |
| `POWERTOOLS_LOG_LEVEL`, ... | no | as documented by Powertools for AWS Lambda |

(1) `BlueGreenUpdatePolicy` (TrafficRoutingConfiguration CANARY or LINEAR, wait, sizes) and
    `AutoRollbackConfiguration.Alarms` (`[{"AlarmName": ...}]`), exactly as the API takes it.
(2) `{"thresholds": {metric: value}, "lower_is_better": [metric], "max_regression": x,
    "max_fairness_gap": x | null, "max_latency_p95_ms": x | null}`; null turns that check off.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Json, ValidationError, model_validator

from lambdas.shared.control.errors import ConfigurationError

Name = Annotated[str, Field(min_length=1, max_length=256)]
Arn = Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:")]


class GateSettings(BaseModel):
    """GATE_CONFIG: what a model package must reach to be approved."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    thresholds: dict[str, float] = Field(min_length=1)
    lower_is_better: frozenset[str] = frozenset()
    # Largest allowed drop against the production model, in the metric's own units.
    max_regression: float = Field(ge=0.0)
    max_fairness_gap: float | None = Field(default=None, ge=0.0)
    max_latency_p95_ms: float | None = Field(default=None, gt=0.0)

    @model_validator(mode="after")
    def _lower_is_better_are_gated(self) -> GateSettings:
        unknown = sorted(self.lower_is_better - set(self.thresholds))
        if unknown:
            raise ValueError(f"lower_is_better names metrics without a threshold: {unknown}")
        return self


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    project: Name = Field(alias="PROJECT")
    environment: Literal["local", "dev", "staging", "prod"] = Field(alias="ENVIRONMENT")
    model_package_group: Name = Field(alias="MODEL_PACKAGE_GROUP")
    endpoint_name: str = Field(alias="ENDPOINT_NAME", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    variant_name: Name = Field(default="primary", alias="VARIANT_NAME")
    execution_role_arn: Arn = Field(alias="EXECUTION_ROLE_ARN")
    instance_type: str = Field(alias="INSTANCE_TYPE", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    initial_instance_count: int = Field(alias="INITIAL_INSTANCE_COUNT", ge=1)
    capture_s3_uri: str = Field(alias="CAPTURE_S3_URI", pattern=r"^s3://[^/]+(/.*)?$")
    capture_sampling_percent: int = Field(alias="CAPTURE_SAMPLING_PERCENT", ge=0, le=100)
    kms_key_arn: Name = Field(alias="KMS_KEY_ARN")
    network_isolation: bool = Field(default=True, alias="NETWORK_ISOLATION")
    deployment_config: Json[dict[str, Any]] = Field(alias="DEPLOYMENT_CONFIG")
    gate: Json[GateSettings] = Field(alias="GATE_CONFIG")
    deployments_table: Name = Field(alias="DEPLOYMENTS_TABLE")
    audit_table: Name = Field(alias="AUDIT_TABLE")
    idempotency_table: Name = Field(alias="IDEMPOTENCY_TABLE")
    locks_table: Name = Field(alias="LOCKS_TABLE")
    critical_topic_arn: Arn = Field(alias="CRITICAL_TOPIC_ARN")
    warning_topic_arn: Arn = Field(alias="WARNING_TOPIC_ARN")
    pipeline_name: Name = Field(alias="PIPELINE_NAME")
    retrain_cooldown_minutes: int = Field(alias="RETRAIN_COOLDOWN_MINUTES", ge=0)
    rollback_alarms: Json[frozenset[Name]] = Field(alias="ROLLBACK_ALARMS")
    retrain_alarms: Json[frozenset[Name]] = Field(alias="RETRAIN_ALARMS")
    approver_role_arn: Arn | None = Field(default=None, alias="APPROVER_ROLE_ARN")
    promotion_source_group: Name | None = Field(default=None, alias="PROMOTION_SOURCE_GROUP")

    @model_validator(mode="after")
    def _prod_promotion_is_configured(self) -> Settings:
        if self.environment == "prod":
            missing = [
                alias
                for alias, value in (
                    ("APPROVER_ROLE_ARN", self.approver_role_arn),
                    ("PROMOTION_SOURCE_GROUP", self.promotion_source_group),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"{', '.join(missing)} required when ENVIRONMENT is prod")
        auto_rollback = self.deployment_config.get("AutoRollbackConfiguration", {}).get("Alarms", [])
        if not all(isinstance(a, dict) and a.get("AlarmName") for a in auto_rollback):
            raise ValueError("DEPLOYMENT_CONFIG: every AutoRollbackConfiguration alarm needs an AlarmName")
        return self


def variable_names() -> list[str]:
    return [field.alias for field in Settings.model_fields.values() if field.alias]


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment; ConfigurationError names every missing or invalid variable."""
    env = os.environ if environ is None else environ
    values = {name: env[name] for name in variable_names() if env.get(name, "") != ""}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = [str(part) for part in error["loc"]]
            variable = where[0] if where else "environment"
            inner = ".".join(where[1:])
            detail = "missing" if error["type"] == "missing" else error["msg"]
            problems.append(f"{variable}{': ' + inner if inner else ''}: {detail}")
        raise ConfigurationError("invalid control-loop configuration: " + "; ".join(problems)) from None


def dummy_environment(**overrides: str) -> dict[str, str]:
    """A complete, valid environment with placeholder values (benchmarks and tests)."""
    account, region = "123456789012", "us-east-1"
    values = {
        "PROJECT": "demo",
        "ENVIRONMENT": "dev",
        "MODEL_PACKAGE_GROUP": "mlops-dev-demo",
        "ENDPOINT_NAME": "mlops-dev-demo",
        "EXECUTION_ROLE_ARN": f"arn:aws:iam::{account}:role/mlops-dev/mlops-dev-demo-execution",
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
        "ROLLBACK_ALARMS": json.dumps(["mlops-dev-demo-errors", "mlops-dev-demo-latency"]),
        "RETRAIN_ALARMS": json.dumps(["mlops-dev-demo-drift", "mlops-dev-demo-accuracy"]),
    }
    values.update(overrides)
    return values
