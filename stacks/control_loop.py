"""The control loop of one project in one environment: tables, handlers and their event wiring.

    model package registered  --rule--> gate queue     --> gate handler     (approve / reject)
    model package approved    --rule--> deploy queue   --> deploy handler   (guarded update)
    endpoint (deployment) state change --^                                  (known-good, rolled back)
    critical alarm -> ALARM   --rule--> rollback queue --> rollback handler (last known-good)
    drift/accuracy -> ALARM   --rule--> retrain queue  --> retrain handler  (one run per cooldown)
    baseline schedule         --rule--^                                     (latency baseline metric)
    drift schedule            --rule--> drift queue    --> drift handler    (reports + metrics)
    quality schedule          --rule--> quality queue  --> quality handler  (ground-truth join, metrics)

Every queue has a DLQ (a poison message lands there after max receives, nothing else is lost)
and a warning alarm on it. The handlers' code is lambdas/<name>/handler.py; their settings are
the variables of lambdas/shared/control/settings.py, built here from the project config and
the endpoint and alarm constructs, so Terraform and the handlers read one source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from stacks import moto_gaps
from stacks.binding import Construct, aws
from stacks.config import Environment
from stacks.constructs.code_signing import CodeSigning, CodeSigningProps
from stacks.constructs.endpoint_alarms import LATENCY_BASELINE_SCHEDULE, QUALITY, EndpointAlarms
from stacks.constructs.event_queue import EventQueue, EventQueueProps, EventRule
from stacks.constructs.lambda_function import LambdaFunction, LambdaFunctionProps
from stacks.constructs.lambda_layer import LambdaLayer, LambdaLayerProps
from stacks.constructs.model_endpoint import ModelEndpoint
from stacks.control_tables import TABLES
from stacks.layers import LayerSpec, built_layer, layers_for
from stacks.naming import Naming, ProjectNames
from stacks.policy import Statement, statement
from stacks.project_config import LOWER_IS_BETTER, ProjectConfig

HANDLER_TIMEOUT_SECONDS = 120
DRIFT_NAMESPACE = "MLOps/Drift"
CONTROL_LOOP_NAMESPACE = "MLOps/ControlLoop"  # lambdas/shared/control/latency_baseline.py NAMESPACE

QUEUE_MAX_RECEIVES = 5


@dataclass(frozen=True)
class ControlLoopProps:
    env: Environment
    project: ProjectConfig
    names: ProjectNames
    key_arn: str
    boundary_arn: str
    stack_dir: Any  # Path of the stack's Terraform folder (the Lambda zips go there)
    endpoint: ModelEndpoint
    alarms: EndpointAlarms
    pipeline_arn: str
    # Production only: the environment its packages are promoted from (env.promotion.source).
    promotion_source: Environment | None = None


def check_environment(project: ProjectConfig, n: ProjectNames, key_arn: str) -> dict[str, str]:
    """What every scheduled check of the served model is told (lambdas/shared/checks.py)."""
    return {"PROJECT": project.name, "ENDPOINT_NAME": n.endpoint, "CAPTURE_S3_URI": n.capture_uri,
            "ARTIFACTS_BUCKET": n.artifacts_bucket, "KMS_KEY_ARN": key_arn}


def drift_environment(project: ProjectConfig, n: ProjectNames, key_arn: str) -> dict[str, str]:
    """The drift check's settings (lambdas/shared/drift/job.py DriftSettings): the function's
    environment, and the drift batch pipeline's steps'."""
    return {
        **check_environment(project, n, key_arn),
        "MODEL_PACKAGE_GROUP": n.model_package_group,
        "DRIFT_PSI_THRESHOLD": str(project.drift.psi_threshold),
        "DRIFT_P_VALUE": str(project.drift.p_value),
        "WINDOW_MINUTES": str(project.drift.window_minutes),
        "DRIFT_MIN_ROWS": str(project.drift.min_rows),
        "CAPTURE_LAG_MINUTES": str(project.drift.capture_lag_minutes),
        "METRICS_NAMESPACE": DRIFT_NAMESPACE,
    }


def promotion_source_group_arn(p: ControlLoopProps) -> str:
    """The project's model package group in the environment a production environment promotes
    from, in that environment's account and region."""
    wanted = p.env.promotion.source if p.env.promotion else None
    if p.promotion_source is None or p.promotion_source.name != wanted:
        raise ValueError(f"{p.env.name}: the project stack needs its promotion source environment "
                         f"({wanted}), got {p.promotion_source.name if p.promotion_source else None}")
    return ProjectNames(Naming.of(p.promotion_source), p.project.name).model_package_group_arn


class ControlLoop(Construct):
    def __init__(self, scope: Construct, id_: str, props: ControlLoopProps):
        super().__init__(scope, id_)
        self.props = props
        n, env = props.names, props.env
        self.gaps = moto_gaps.for_environment(env.is_local)
        self._layers: dict[str, LambdaLayer] = {}
        # Every function and layer of the project signed by the environment's profile, enforced.
        self.code_signing = CodeSigning(self, "code_signing", CodeSigningProps(
            profile_name=n.naming.signing_profile, description=f"Signed code only ({n.base})",
            bucket=n.artifacts_bucket, upload_prefix=f"{props.project.name}/lambda-functions",
            signed_prefix=f"{props.project.name}/lambda-signed/", kms_key_arn=props.key_arn,
        )) if env.lambda_code_signing else None
        self.tables = {
            setting: self._table(setting.removesuffix("_table"), schema)
            for setting, schema in TABLES.items()
        }
        environment = self._environment()
        packages = n.package_arn("*")
        # Only what the handlers' code calls (stacks/permission_table.py, checked against it).
        read_packages = statement("ReadModelPackages", ["sagemaker:DescribeModelPackage"], [packages])
        judge_packages = statement("JudgeModelPackages", ["sagemaker:UpdateModelPackage"], [packages])
        operate = [*props.endpoint.deploy_statements(), props.alarms.describe_statement("ReadAlarms"),
                   # CreateEndpoint sends the cost-allocation Tags: SageMaker authorizes them as
                   # sagemaker:AddTags on the new endpoint.
                   statement("CreateEndpoint", ["sagemaker:CreateEndpoint", "sagemaker:AddTags"],
                             [n.naming.sagemaker_arn("endpoint", n.endpoint),
                              n.naming.sagemaker_arn("endpoint-config", f"{n.endpoint}-*")])]
        # The gate reads a package's evaluation only where its pipeline execution wrote it.
        reports = statement("ReadEvaluationReports", ["s3:GetObject"],
                            [f"arn:aws:s3:::{n.artifacts_bucket}/{props.project.name}/runs/*/evaluation/*"])
        start = statement("StartTrainingPipeline", ["sagemaker:StartPipelineExecution"],
                          [props.pipeline_arn])
        # The served package (endpoint -> config -> model): a retrain's data starts from its data.
        describe_models = statement("DescribeServedModel",
                                    ["sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"],
                                    [n.naming.sagemaker_arn("endpoint-config", f"{n.endpoint}-*"),
                                     n.naming.sagemaker_arn("model", f"{n.endpoint}-*")])
        # The accuracy-drop datapoints, a bake's latency (no resource-level permissions for
        # GetMetricData).
        quality = statement("ReadModelQuality", ["cloudwatch:GetMetricData"], ["*"])
        latency = statement("ReadBakeLatency", ["cloudwatch:GetMetricData"], ["*"])
        # The latency alarm's baseline (latency_baseline.py); PutMetricData has no resource type.
        baseline = statement("PublishLatencyBaseline", ["cloudwatch:PutMetricData"], ["*"],
                             conditions={"StringEquals": {"cloudwatch:namespace": CONTROL_LOOP_NAMESPACE}})
        package_events = {"source": ["aws.sagemaker"],
                          "detail-type": ["SageMaker Model Package State Change"]}

        def on_packages(status: str) -> dict:
            return {**package_events, "detail": {"ModelPackageGroupName": [n.model_package_group],
                                                 "ModelApprovalStatus": [status]}}

        # The deployment records follow the endpoint through SageMaker's own events.
        endpoint_events = {"source": ["aws.sagemaker"],
                           "detail-type": ["SageMaker Endpoint Deployment State Change",
                                           "SageMaker Endpoint State Change"],
                           "detail": {"EndpointName": [n.endpoint]}}
        handlers = {
            # name: (what it does, its rules (name suffix: pattern), what it touches beyond the common part)
            "gate": ("judge a newly registered model package", {"": on_packages("PendingManualApproval")},
                     [read_packages, judge_packages, reports]),
            # The schedule refreshes the latency alarm's baseline (latency_baseline.py).
            "deploy": ("deploy an approved model package with the guardrails and follow it",
                       {"": on_packages("Approved"), "-endpoint": endpoint_events,
                        "-baseline": LATENCY_BASELINE_SCHEDULE},
                       [read_packages, judge_packages, latency, baseline, *operate]),
            "rollback": ("restore the newest known-good deployment on a critical alarm",
                         {"": props.alarms.rollback_event_pattern()},
                         [read_packages, judge_packages, quality, *operate]),
            "retrain": ("start the training pipeline on a drift or accuracy alarm",
                        {"": props.alarms.retrain_event_pattern()},
                        [read_packages, start, quality, describe_models]),
        }
        self.functions: dict[str, LambdaFunction] = {}
        self.queues: dict[str, EventQueue] = {}
        for name, (purpose, patterns, statements) in handlers.items():
            function = self._function(name, purpose, environment, [*self._common(), *statements])
            self.functions[name] = function
            self.queues[name] = EventQueue(self, f"{name}_queue", EventQueueProps(
                name=f"{n.base}-{name}", kms_key_arn=props.key_arn,
                alarm_topic_arn=n.topic_arn("warning"), account_id=env.account_id, region=env.region,
                rules=tuple(_rule(f"{n.base}-{name}{suffix}", f"{purpose} ({n.base})", pattern)
                            for suffix, pattern in patterns.items()),
                max_receive_count=QUEUE_MAX_RECEIVES,
                # One message at a time per endpoint decision keeps leases short and retries cheap.
                batch_size=1 if name in ("deploy", "rollback") else 10,
                gaps=self.gaps,
            ), function)
        self._drift()
        self._quality()

    def _drift(self) -> None:
        """The scheduled drift check: capture window vs the served model's reference, reports to
        the artifacts bucket, metrics that the drift alarms watch."""
        p = self.props
        project = p.project
        # With the batch job on, its pipeline runs on the drift schedule (project_stack.py) and
        # the function's rule is kept disabled: one check per window, one set of datapoints.
        self._scheduled("drift", "check the endpoint's captured data for drift", project.drift.schedule,
                        drift_environment(project, p.names, p.key_arn), DRIFT_NAMESPACE, timeout=900,
                        memory=2048, enabled=not project.drift.batch.enabled)

    def _quality(self) -> None:
        """The scheduled model-quality check: captured predictions joined with the ground-truth
        labels, the served model's evaluation as the baseline, the metrics the accuracy alarm
        watches."""
        p, n = self.props, self.props.names
        project = p.project
        environment = {
            **self._check_environment(),
            "TASK": project.task,
            "GROUND_TRUTH_S3_URI": n.ground_truth_uri,
            "WINDOW_MINUTES": str(project.quality.window_minutes),
            "LABEL_LAG_MINUTES": str(project.quality.label_lag_minutes),
            "MIN_LABELLED_ROWS": str(project.quality.min_labelled_rows),
            "METRICS_NAMESPACE": QUALITY,
        }
        self._scheduled("quality", "join the endpoint's predictions with ground truth",
                        project.quality.schedule, environment, QUALITY, timeout=300, memory=512)

    def _check_environment(self) -> dict[str, str]:
        return check_environment(self.props.project, self.props.names, self.props.key_arn)

    def _scheduled(self, name: str, purpose: str, schedule: str, environment: dict[str, str], namespace: str,
                   *, timeout: int, memory: int, enabled: bool = True) -> None:
        """A scheduled check of the served model: reads the project's capture prefix and what the
        endpoint serves, writes `<project>/<name folder>/*` reports, publishes to `namespace`;
        schedule -> queue -> function."""
        p, n, env = self.props, self.props.names, self.props.env
        served = [n.naming.sagemaker_arn("endpoint", n.endpoint),
                  n.naming.sagemaker_arn("endpoint-config", f"{n.endpoint}-*"),
                  n.naming.sagemaker_arn("model", f"{n.endpoint}-*"),
                  n.package_arn("*")]
        project, capture = p.project.name, f"arn:aws:s3:::{n.capture_bucket}"
        folder = {"drift": "drift", "quality": "model-quality"}[name]
        common = [
            statement("ListCapture", ["s3:ListBucket"], [capture],
                      conditions={"StringLike": {"s3:prefix": [f"{project}/*"]}}),
            statement("ReadCaptureAndModels", ["s3:GetObject"],
                      [f"{capture}/{project}/*", f"arn:aws:s3:::{n.artifacts_bucket}/{project}/*"]),
            statement("WriteReports", ["s3:PutObject"],
                      [f"arn:aws:s3:::{n.artifacts_bucket}/{project}/{folder}/*"]),
            statement("UsePlatformKey", ["kms:Decrypt", "kms:GenerateDataKey"], [p.key_arn]),
            statement("PublishCheckMetrics", ["cloudwatch:PutMetricData"], ["*"],
                      conditions={"StringEquals": {"cloudwatch:namespace": namespace}}),
            statement("FindServedModel",
                      ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig",
                       "sagemaker:DescribeModel", "sagemaker:DescribeModelPackage"], served),
        ]
        function = self._function(name, purpose, environment, common,
                                  timeout=timeout, memory=memory)
        self.functions[name] = function
        self.queues[name] = EventQueue(self, f"{name}_queue", EventQueueProps(
            name=f"{n.base}-{name}", kms_key_arn=p.key_arn, alarm_topic_arn=n.topic_arn("warning"),
            account_id=env.account_id, region=env.region, max_receive_count=3, batch_size=1,
            rules=(EventRule(name=f"{n.base}-{name}", description=f"scheduled {purpose} ({n.base})",
                             schedule=schedule, enabled=enabled),),
            gaps=self.gaps,
        ), function)

    def _table(self, purpose: str, schema: dict[str, Any]) -> aws.dynamodb_table.DynamodbTable:
        n = self.props.names
        t = aws.dynamodb_table
        keys = {k["KeyType"]: k["AttributeName"] for k in schema["KeySchema"]}
        ttl = schema.get("TimeToLive")
        return t.DynamodbTable(
            self, f"{purpose}_table",
            name=f"{n.base}-{purpose}",
            billing_mode="PAY_PER_REQUEST",
            hash_key=keys["HASH"],
            range_key=keys.get("RANGE"),
            attribute=[t.DynamodbTableAttribute(name=a["AttributeName"], type=a["AttributeType"])
                       for a in schema["AttributeDefinitions"]],
            global_secondary_index=[
                t.DynamodbTableGlobalSecondaryIndex(
                    name=g["IndexName"], hash_key=g["KeySchema"][0]["AttributeName"],
                    range_key=g["KeySchema"][1]["AttributeName"],
                    projection_type=g["Projection"]["ProjectionType"])
                for g in schema.get("GlobalSecondaryIndexes", [])
            ] or None,
            server_side_encryption=t.DynamodbTableServerSideEncryption(
                enabled=True, kms_key_arn=self.props.key_arn),
            # The deployment history and the audit trail are evidence: recoverable to the second.
            point_in_time_recovery=t.DynamodbTablePointInTimeRecovery(enabled=True),
            ttl=t.DynamodbTableTtl(attribute_name=ttl, enabled=True) if ttl else None,
            deletion_protection_enabled=self.props.env.data_protection.prevent_destroy,
        )

    def _environment(self) -> dict[str, str]:
        p, n = self.props, self.props.names
        project = p.project
        gate = {
            "thresholds": dict(project.gate.thresholds),
            "lower_is_better": sorted(set(project.gate.thresholds) & set(LOWER_IS_BETTER)),
            "max_regression": project.gate.max_regression,
            "max_fairness_gap": project.fairness.max_gap if project.fairness else None,
            "max_latency_p95_ms": project.gate.max_latency_p95_ms,
        }
        environment = {
            "PROJECT": project.name,
            "TEAM": project.team,
            "ENVIRONMENT": p.env.name,
            "PRODUCTION": "true" if p.env.production else "false",
            "MODEL_PACKAGE_GROUP": n.model_package_group,
            **p.endpoint.handler_environment(),
            **p.alarms.handler_environment(),
            "GATE_CONFIG": json.dumps(gate, sort_keys=True, separators=(",", ":")),
            **{setting.upper(): table.name for setting, table in self.tables.items()},
            "CRITICAL_TOPIC_ARN": n.topic_arn("critical"),
            "WARNING_TOPIC_ARN": n.topic_arn("warning"),
            "PIPELINE_NAME": n.pipeline,
            # Whose packages and approvals the deploy handler trusts (provenance.py).
            "PIPELINE_ROLE_ARN": n.role_arn,
            "PIPELINE_RUNS_URI": f"s3://{n.artifacts_bucket}/{project.name}/runs/",
            "GATE_ROLE_ARN": n.function_role_arn("gate"),
            "APPROVER_ROLE_ARN": n.naming.persona_role_arn("ml_engineer"),
            "RETRAIN_COOLDOWN_MINUTES": str(project.retrain.cooldown_minutes),
            "QUALITY_WINDOW_MINUTES": str(project.quality.window_minutes),
        }
        if p.env.production:
            # Production deploys only packages promoted from the source environment's group (its
            # ARN: a same-named group elsewhere does not count) and approved by the ML engineers.
            environment["PROMOTION_SOURCE_GROUP"] = promotion_source_group_arn(p)
        return environment

    def _common(self) -> list[Statement]:
        p, n = self.props, self.props.names
        def arns(*settings: str) -> list[str]:
            tables = [self.tables[s].arn for s in settings]
            return [*tables, *(f"{t}/index/*" for t in tables)]

        read = ["dynamodb:GetItem", "dynamodb:Query"]
        return [
            # Leases are released and failed idempotency records removed.
            statement("UseControlTables",
                      [*read, "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                      arns("locks_table", "idempotency_table")),
            # The deployment history and the audit trail are evidence: records are added (and a
            # deployment's status moves on), never deleted; audit records never change.
            statement("RecordDeployments", [*read, "dynamodb:PutItem", "dynamodb:UpdateItem"],
                      arns("deployments_table")),
            statement("AppendAuditRecords", [*read, "dynamodb:PutItem"], arns("audit_table")),
            statement("NotifyAlerts", ["sns:Publish"], [n.topic_arn("critical"), n.topic_arn("warning")]),
            # S3 reads and SNS publishes of KMS-encrypted objects and topics.
            statement("UsePlatformKey", ["kms:Decrypt", "kms:GenerateDataKey"], [p.key_arn]),
            statement("DescribeEndpoint", ["sagemaker:DescribeEndpoint"],
                      [n.naming.sagemaker_arn("endpoint", n.endpoint)]),
        ]

    def _function(self, name: str, purpose: str, environment: dict[str, str],
                  statements: list[Statement], timeout: int = HANDLER_TIMEOUT_SECONDS,
                  memory: int = 256) -> LambdaFunction:
        p, n = self.props, self.props.names
        layers = [self._layer(spec) for spec in layers_for(name)]
        function = LambdaFunction(self, f"{name}_function", LambdaFunctionProps(
            name=n.function_name(name), handler=name, description=f"{purpose} ({n.base})",
            stack_dir=p.stack_dir, kms_key_arn=p.key_arn, role_path=n.naming.role_path,
            boundary_arn=p.boundary_arn, statements=tuple(_unique_sids(statements)),
            environment=environment, timeout_seconds=timeout, memory_mb=memory,
            log_retention_days=p.env.retention.log_days,
            # Third-party libraries only from the project's own layers (stacks/layers.py).
            layers=tuple(layer.arn for layer in layers),
            layer_bytes=sum(layer.unzipped_bytes for layer in layers),
            signing=self.code_signing,
        ))
        return function

    def _layer(self, spec: LayerSpec) -> LambdaLayer:
        """One layer version per project stack and layer, shared by its functions."""
        if spec.name not in self._layers:
            p, n = self.props, self.props.names
            self._layers[spec.name] = LambdaLayer(self, f"{spec.name}_layer", LambdaLayerProps(
                name=f"{n.base}-{spec.name}", description=spec.description, zip_path=built_layer(spec),
                stack_dir=p.stack_dir, bucket=n.artifacts_bucket,
                key_prefix=f"{p.project.name}/lambda-layers", kms_key_arn=p.key_arn,
                signing=self.code_signing))
        return self._layers[spec.name]


def _rule(name: str, description: str, pattern: dict[str, Any] | str) -> EventRule:
    """An event pattern (a dict) or a schedule expression (a string)."""
    if isinstance(pattern, str):
        return EventRule(name=name, description=description, schedule=pattern)
    return EventRule(name=name, description=description, event_pattern=pattern)


def _unique_sids(statements: list[Statement]) -> list[Statement]:
    """Statements from several sources may share a Sid; one policy needs them unique."""
    seen: dict[str, int] = {}
    out = []
    for st in statements:
        sid = st["Sid"]
        seen[sid] = seen.get(sid, 0) + 1
        out.append(st if seen[sid] == 1 else {**st, "Sid": f"{sid}{seen[sid]}"})
    return out
