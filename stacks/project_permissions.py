"""What one ML project's SageMaker execution role may do: its own prefixes, jobs and registry.

Pure functions of names (no cdktf), so the scoping is unit-tested without synthesizing. Where the
platform's execution role covers the whole environment, a project's role reaches only
`<bucket>/<project>/*`, jobs named `<project>-*` and its own model package group: one team's
pipeline cannot read another team's data or register into its registry.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.naming import Naming
from stacks.policy import Statement, statement

# The explainability step's metrics (pipelines/definition.py EXPLAINABILITY_NAMESPACE, the
# attribution alarm's namespace).
EXPLAINABILITY_NAMESPACE = "MLOps/Explainability"


@dataclass(frozen=True)
class ProjectRefs:
    naming: Naming
    project: str
    key_arn: str
    datasets_bucket: str
    artifacts_bucket: str
    capture_bucket: str
    repository_arns: tuple[str, ...]
    model_package_group: str
    role_arn: str
    mlflow_tracking_server_arn: str | None
    endpoint_name: str = ""  # the project's endpoint, whose served model the explainability job reads
    # The drift batch pipeline runs as this role and publishes the drift function's metrics
    # (drift.batch.enabled; stacks/control_loop.py DRIFT_NAMESPACE).
    drift_namespace: str | None = None


def _prefix_objects(bucket: str, project: str) -> str:
    return f"arn:aws:s3:::{bucket}/{project}/*"


def _list_prefix(sid: str, buckets: tuple[str, ...], project: str) -> Statement:
    return statement(
        sid, ["s3:ListBucket", "s3:GetBucketLocation"],
        [f"arn:aws:s3:::{b}" for b in buckets],
        conditions={"StringLike": {"s3:prefix": [project, f"{project}/*"]}},
    )


def execution_statements(r: ProjectRefs) -> list[Statement]:
    n, p = r.naming, r.project
    group_arn = n.sagemaker_arn("model-package-group", r.model_package_group)
    group = [group_arn, n.sagemaker_arn("model-package", f"{r.model_package_group}/*")]
    statements = [
        _list_prefix("ListProjectPrefixes", (r.datasets_bucket, r.artifacts_bucket, r.capture_bucket), p),
        statement(
            "ReadProjectData",
            ["s3:GetObject"],
            [_prefix_objects(r.datasets_bucket, p), _prefix_objects(r.capture_bucket, p)],
        ),
        # The endpoint writes its data capture (inputs and outputs) as this role.
        statement(
            "WriteDataCapture",
            ["s3:PutObject", "s3:AbortMultipartUpload"],
            [_prefix_objects(r.capture_bucket, p)],
        ),
        statement(
            "WriteProjectArtifacts",
            ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            [_prefix_objects(r.artifacts_bucket, p)],
        ),
        statement(
            "UsePlatformKey",
            ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            [r.key_arn],
        ),
        statement(
            "PullImages",
            ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            list(r.repository_arns),
        ),
        # Registry-wide by design: the token is per registry, not per repository.
        statement("EcrLogin", ["ecr:GetAuthorizationToken"], ["*"]),
        statement(
            "WriteJobLogs",
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
             "logs:DescribeLogStreams"],
            [n.arn("logs", "log-group:/aws/sagemaker/*")],
        ),
        statement(
            "PublishMetrics",
            ["cloudwatch:PutMetricData"],
            ["*"],
            # PutMetricData has no resource type; the namespace is its scope: the jobs' own
            # (SageMaker publishes training metrics as the role), the explainability step's and,
            # with the drift batch pipeline, the drift check's.
            conditions={"StringLike": {"cloudwatch:namespace": [
                "/aws/sagemaker/*", EXPLAINABILITY_NAMESPACE,
                *([r.drift_namespace] if r.drift_namespace else [])]}},
        ),
        # The pipeline service starts the steps' jobs with this same role.
        statement(
            "RunProjectJobs",
            ["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob",
             "sagemaker:StopProcessingJob", "sagemaker:CreateTrainingJob",
             "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob", "sagemaker:AddTags"],
            [n.sagemaker_arn("processing-job", f"{p}-*"), n.sagemaker_arn("training-job", f"{p}-*"),
             n.sagemaker_arn("processing-job", "pipelines-*"),
             n.sagemaker_arn("training-job", "pipelines-*")],
        ),
        statement(
            "PassOwnRoleToSageMaker",
            ["iam:PassRole"],
            [r.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        ),
        # Only into the project's own group, and only pending: approving is the gate's or the
        # approver's (the register step sends PendingManualApproval explicitly; a request
        # without a status matches no StringEquals and is refused).
        statement(
            "RegisterIntoProjectGroupPending",
            ["sagemaker:CreateModelPackage"],
            group,
            conditions={"StringEquals": {"sagemaker:ModelApprovalStatus": "PendingManualApproval"}},
        ),
        statement(
            "ReadProjectGroup",
            ["sagemaker:DescribeModelPackage"],
            group,
        ),
        # A retried register step looks for its own earlier package; listing has no resource scope.
        statement("ListModelPackages", ["sagemaker:ListModelPackages"], ["*"]),
    ]
    if r.endpoint_name:
        # The explainability job walks endpoint -> config -> model -> package (served_model.py).
        statements.append(statement(
            "FindServedModel",
            ["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel"],
            [n.sagemaker_arn("endpoint", r.endpoint_name),
             n.sagemaker_arn("endpoint-config", f"{r.endpoint_name}-*"),
             n.sagemaker_arn("model", f"{r.endpoint_name}-*")],
        ))
    if r.mlflow_tracking_server_arn:
        statements.append(statement(
            "TrackExperiments",
            ["sagemaker-mlflow:*", "sagemaker:DescribeMlflowTrackingServer"],
            [r.mlflow_tracking_server_arn],
        ))
    return statements
