"""Every AWS call a role's code makes -> the statement (Sid) of the role's policy that allows it.

One table per role that runs code of this repository: each control-loop function, the project's
SageMaker execution role (the pipeline steps) and the personas (the CLI commands they run). A
role's `calls` are what its code calls (tests/unit/test_permission_table.py reads them from the
source with mlops/aws_calls.py and checks this table lists each one, and nothing more); `also`
holds what is made as the role but not by a boto3 call in its code (a library, the Lambda
service, an authorization a call implies), each with who makes it. The synthesized policies must
allow every row by the named statement and allow nothing this table does not list.

Rendered into docs/permissions.md (`python -m stacks.permission_table > docs/permissions.md`; a
test checks the copy is current).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from stacks import personas
from stacks.config import Environment


@dataclass(frozen=True)
class Environments:
    """A kind of environment, told by its settings (never by its name: environments are any
    environments/<name>.yaml). `env in PRODUCTION`."""

    label: str
    holds: Callable[[Environment], bool]

    def __contains__(self, env: object) -> bool:
        return isinstance(env, Environment) and self.holds(env)


PRODUCTION = Environments("production environments", lambda env: env.production)
# The local AWS has no Studio and no managed MLflow (stacks/moto_gaps.py: `studio`).
LOCAL = Environments("local environments", lambda env: env.local)
# Only an environment promoted from another reads that one's packages (stacks/promotion_grants.py).
NOT_PROMOTED = Environments("environments without `promotion.source`", lambda env: env.promotion is None)


@dataclass(frozen=True)
class Also:
    sid: str
    why: str  # who makes the call as the role, or which call implies it


@dataclass(frozen=True)
class RoleTable:
    role: str  # how the role is named in the stacks: <base>-<function>, <base>-execution, <prefix>-<persona>
    runs: tuple[str, ...]  # the entry files whose code runs as the role (`file::function`: one command)
    within: tuple[str, ...]  # the packages whose modules, imported from there, run as it too
    calls: Mapping[str, str]  # IAM action the code calls -> Sid
    also: Mapping[str, Also] = field(default_factory=dict)
    # Statements whose wildcard actions are granted on purpose (Sid -> why): no table can list
    # what a client outside boto3 calls.
    wildcards: Mapping[str, str] = field(default_factory=dict)
    # Rows the role may not make in these environments (its policy denies them there).
    denied_in: Mapping[str, Environments] = field(default_factory=dict)
    # Rows whose statement these environments do not have (its policy must not allow them there).
    absent_in: Mapping[str, Environments] = field(default_factory=dict)

    @property
    def actions(self) -> dict[str, str]:
        return {**self.calls, **{a: g.sid for a, g in self.also.items()}}


def _function(name: str, calls: Mapping[str, str], also: Mapping[str, Also]) -> RoleTable:
    # An action the code calls itself is listed once, as a call.
    also = {a: g for a, g in {**_LAMBDA_SERVICE, **also}.items() if a not in calls}
    return RoleTable(f"<base>-{name}", (f"lambdas/{name}/handler.py",), ("lambdas/",), calls, also)


# What Lambda does as every function's role: poll and delete the queue's messages (the event
# source mapping), write the logs, send the traces.
_LAMBDA_SERVICE = {
    "sqs:ReceiveMessage": Also("ConsumeQueue", "Lambda's event source mapping polls the queue"),
    "sqs:DeleteMessage": Also("ConsumeQueue", "Lambda's event source mapping deletes handled messages"),
    "sqs:GetQueueAttributes": Also("ConsumeQueue", "Lambda's event source mapping reads the queue"),
    "logs:CreateLogStream": Also("WriteOwnLogs", "the Lambda runtime writes the function's logs"),
    "logs:PutLogEvents": Also("WriteOwnLogs", "the Lambda runtime writes the function's logs"),
    "xray:PutTraceSegments": Also("SendTraces", "active tracing"),
    "xray:PutTelemetryRecords": Also("SendTraces", "active tracing"),
}
# The control-loop shell (lambdas/shared/control/shell.py) of gate, deploy, rollback, retrain.
_SHELL_ALSO = {
    "kms:Decrypt": Also("DecryptMessages", "Lambda reads the KMS-encrypted queue's messages"),
    "kms:GenerateDataKey": Also("UsePlatformKey", "sns:Publish to the KMS-encrypted alert topics"),
    **{f"dynamodb:{op}": Also("UseControlTables", "Powertools idempotency (DynamoDBPersistenceLayer) "
                                                  "keeps its records")
       for op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")},
}
_SHELL = {
    "dynamodb:PutItem": "AppendAuditRecords",
    "dynamodb:Query": "RecordDeployments",
    "sns:Publish": "NotifyAlerts",
    "sagemaker:DescribeEndpoint": "DescribeEndpoint",
    "sagemaker:DescribeModelPackage": "ReadModelPackages",
}
# The endpoint's lease (dynamo.py Leases).
_LEASE = {"dynamodb:GetItem": "UseControlTables", "dynamodb:DeleteItem": "UseControlTables"}
# Changing what the endpoint serves (serving.py: build and switch).
_SERVE = {
    **_SHELL,
    **_LEASE,
    "dynamodb:UpdateItem": "RecordDeployments",
    "sagemaker:DescribeEndpointConfig": "ManageEndpointModelsAndConfigs",
    "sagemaker:DescribeModel": "ManageEndpointModelsAndConfigs",
    "sagemaker:CreateModel": "ManageEndpointModelsAndConfigs",
    "sagemaker:CreateEndpointConfig": "ManageEndpointModelsAndConfigs",
    "sagemaker:CreateEndpoint": "CreateEndpoint",
    "sagemaker:UpdateEndpoint": "UpdateEndpoint",
    "sagemaker:UpdateModelPackage": "JudgeModelPackages",
}
_SERVE_ALSO = {
    **_SHELL_ALSO,
    "sagemaker:AddTags": Also("ManageEndpointModelsAndConfigs",
                              "CreateModel, CreateEndpointConfig and CreateEndpoint send Tags "
                              "(CreateEndpoint's: statement CreateEndpoint)"),
    "iam:PassRole": Also("PassExecutionRole", "CreateModel passes the execution role"),
    "kms:CreateGrant": Also("GrantKeyToEndpointVolumes", "CreateEndpointConfig with KmsKeyId"),
    "kms:DescribeKey": Also("DescribeKey", "CreateEndpointConfig with KmsKeyId"),
    "cloudwatch:DescribeAlarms": Also("ReadAlarms", "UpdateEndpoint with auto-rollback alarms"),
}
# The scheduled checks (drift, quality): served model, capture window, reports, metrics.
_CHECK = {
    "s3:ListBucket": "ListCapture",
    "s3:GetObject": "ReadCaptureAndModels",
    "s3:PutObject": "WriteReports",
    "cloudwatch:PutMetricData": "PublishCheckMetrics",
    "sagemaker:DescribeEndpoint": "FindServedModel",
    "sagemaker:DescribeEndpointConfig": "FindServedModel",
    "sagemaker:DescribeModel": "FindServedModel",
    "sagemaker:DescribeModelPackage": "FindServedModel",
}
_CHECK_ALSO = {
    "kms:Decrypt": Also("UsePlatformKey", "s3:GetObject of SSE-KMS objects; Lambda reads the queue"),
    "kms:GenerateDataKey": Also("UsePlatformKey", "s3:PutObject of SSE-KMS reports"),
}

FUNCTIONS: dict[str, RoleTable] = {
    "gate": _function("gate", {
        **_SHELL,
        "s3:GetObject": "ReadEvaluationReports",
        "sagemaker:UpdateModelPackage": "JudgeModelPackages",
    }, {**_SHELL_ALSO, "kms:Decrypt": Also("UsePlatformKey",
                                           "s3:GetObject of SSE-KMS reports; Lambda reads the queue")}),
    "deploy": _function("deploy", {
        **_SERVE,
        "cloudwatch:GetMetricData": "ReadBakeLatency",
        "cloudwatch:PutMetricData": "PublishLatencyBaseline",
    }, _SERVE_ALSO),
    "rollback": _function("rollback", {
        **_SERVE,
        "cloudwatch:GetMetricData": "ReadModelQuality",
    }, _SERVE_ALSO),
    "retrain": _function("retrain", {
        **_SHELL,
        **_LEASE,
        "sagemaker:DescribeEndpointConfig": "DescribeServedModel",
        "sagemaker:DescribeModel": "DescribeServedModel",
        "sagemaker:StartPipelineExecution": "StartTrainingPipeline",
        "cloudwatch:GetMetricData": "ReadModelQuality",
    }, _SHELL_ALSO),
    "drift": _function("drift", _CHECK, _CHECK_ALSO),
    "quality": _function("quality", _CHECK, _CHECK_ALSO),
}

# The project's SageMaker execution role: the pipeline steps' code, and what SageMaker does as it.
_JOBS = "SageMaker Pipelines starts, follows and stops the steps' jobs as the pipeline's role"
_SERVICE_S3 = "SageMaker reads job inputs and writes job outputs and the endpoint's data capture"
EXECUTION = RoleTable(
    "<base>-execution",
    ("pipelines/steps/dataset_version.py", "pipelines/steps/validate.py", "pipelines/steps/preprocess.py",
     "pipelines/steps/train.py", "pipelines/steps/evaluate.py", "pipelines/steps/register.py",
     "pipelines/steps/explainability.py", "pipelines/steps/inference.py", "pipelines/steps/drift_batch.py"),
    ("pipelines/", "lambdas/shared/"),
    {
        "s3:GetObject": "ReadProjectData",
        "s3:ListBucket": "ListProjectPrefixes",
        "s3:PutObject": "WriteProjectArtifacts",
        "cloudwatch:PutMetricData": "PublishMetrics",
        "sagemaker:CreateModelPackage": "RegisterIntoProjectGroupPending",
        "sagemaker:DescribeModelPackage": "ReadProjectGroup",
        "sagemaker:ListModelPackages": "ListModelPackages",
        "sagemaker:DescribeEndpoint": "FindServedModel",
        "sagemaker:DescribeEndpointConfig": "FindServedModel",
        "sagemaker:DescribeModel": "FindServedModel",
    },
    {
        "s3:AbortMultipartUpload": Also("WriteProjectArtifacts", _SERVICE_S3 + " (multipart)"),
        "s3:GetBucketLocation": Also("ListProjectPrefixes", _SERVICE_S3),
        **{f"kms:{op}": Also("UsePlatformKey", "SSE-KMS objects, and the jobs' volumes and outputs "
                                               "encrypted with the platform key")
           for op in ("Decrypt", "Encrypt", "GenerateDataKey", "DescribeKey")},
        **{f"ecr:{op}": Also("PullImages", "SageMaker pulls the jobs' and the endpoint's images")
           for op in ("BatchGetImage", "GetDownloadUrlForLayer", "BatchCheckLayerAvailability")},
        "ecr:GetAuthorizationToken": Also("EcrLogin", "SageMaker pulls the jobs' and the endpoint's images"),
        **{f"logs:{op}": Also("WriteJobLogs", "SageMaker writes the jobs' and the endpoint's logs")
           for op in ("CreateLogGroup", "CreateLogStream", "PutLogEvents", "DescribeLogStreams")},
        **{f"sagemaker:{op}": Also("RunProjectJobs", _JOBS)
           for op in ("CreateProcessingJob", "DescribeProcessingJob", "StopProcessingJob",
                      "CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob", "AddTags")},
        "iam:PassRole": Also("PassOwnRoleToSageMaker", "SageMaker Pipelines passes the role to the jobs"),
    },
    {"TrackExperiments": "the MLflow client (steps' _tracking.py) calls the managed tracking server's "
                         "REST API, not boto3: sagemaker-mlflow:* on this one server"},
)

# People: the CLI commands each persona runs (their calls), and what the README's RBAC table lets
# them do by hand besides (console, Studio, notebooks, the SDK): listed, each with its statement.
_BROWSE = "people browse SageMaker (console, Studio): no table can list a person's reads"
_BY_HAND = "people, by hand (console, Studio, notebooks): the README's RBAC table"
_KEY = {f"kms:{op}": Also("UsePlatformKey", "SSE-KMS objects people read and write")
        for op in ("Decrypt", "Encrypt", "GenerateDataKey", "DescribeKey")}
_PIPELINES = {f"sagemaker:{op}": Also("RunPipelines", _BY_HAND)
              for op in ("StopPipelineExecution", "RetryPipelineExecution",
                         "SendPipelineExecutionStepSuccess", "SendPipelineExecutionStepFailure")}


def _by_hand(sid: str, *actions: str) -> dict[str, Also]:
    return {a: Also(sid, _BY_HAND) for a in actions}


# Studio and the managed MLflow UI (stacks/personas.py `studio`, `read_experiments`), by hand: open
# one's own profile, read the domain, read what the pipelines tracked; all but the auditor also run
# apps in their own private spaces. The local AWS has neither (stacks/moto_gaps.py: `studio`; no
# managed MLflow server), so its personas have none of these statements.
_STUDIO_READ = {
    "sagemaker:CreatePresignedDomainUrl": "OpenOwnStudioProfile",
    **{f"sagemaker:{op}": "DescribeStudio"
       for op in ("DescribeDomain", "DescribeUserProfile", "DescribeSpace", "DescribeApp", "ListTags")},
    **{a: "ReadExperiments" for a in ("sagemaker:CreatePresignedMlflowTrackingServerUrl",
                                      *personas.MLFLOW_READ_ACTIONS)},
}
_STUDIO_APPS = {
    **{f"sagemaker:{op}": "OwnPrivateSpaces" for op in ("CreateSpace", "UpdateSpace", "DeleteSpace")},
    **{f"sagemaker:{op}": "AppsInOwnPrivateSpaces" for op in ("CreateApp", "DeleteApp")},
}
_NO_STUDIO = LOCAL
# `mlops model promote` (mlops/promotion.py), as the target environment's ML engineer: reads of the
# source environment's packages, archives and image, checked against the target's image
# (stacks/promotion_grants.py); the writes into the target are statements the ML engineer has
# anyway (ReadWriteArtifacts, UsePlatformKey, RegisterDrillPackages).
_PROMOTE = "`mlops model promote`, into an environment from its `promotion.source`"
_PROMOTION = {
    "sagemaker:DescribeModelPackageGroup": "ReadSourceModelPackages",
}


def _studio(why: str, rows: Mapping[str, str]) -> dict[str, Also]:
    return {a: Also(sid, why) for a, sid in rows.items()}


ML_ENGINEER = RoleTable(
    "<prefix>-ml-engineer",
    ("mlops/drill.py::run_drill_command", "mlops/traffic.py::run_traffic_command",
     "mlops/traffic.py::run_invoke_command", "mlops/quality_check.py::run_quality_command",
     "mlops/drift_check.py::run_check_command", "mlops/promotion.py::run_promote_command"),
    ("lambdas/shared/", "mlops/drill", "mlops/traffic", "mlops/quality_check", "mlops/drift_check",
     "mlops/endpoint_wait", "mlops/promotion", "mlops/create_only"),
    {
        "cloudwatch:DescribeAlarms": "ReadMonitoring",
        "cloudwatch:SetAlarmState": "RunDrills",
        "cloudwatch:PutMetricData": "PublishCheckMetrics",
        "dynamodb:Query": "ReadControlLoopRecords",
        "s3:GetObject": "ReadPlatformData",
        "s3:ListBucket": "ReadPlatformData",
        "s3:PutObject": "WriteGroundTruth",
        "sagemaker:CreateModelPackage": "RegisterDrillPackages",
        "sagemaker:DescribeEndpoint": "DescribeSageMakerResources",
        "sagemaker:DescribeEndpointConfig": "DescribeSageMakerResources",
        "sagemaker:DescribeModel": "DescribeSageMakerResources",
        "sagemaker:DescribeModelPackage": "DescribeSageMakerResources",
        "sagemaker:InvokeEndpoint": "ApproveModelsAndOperateEndpoints",
        "sagemaker:UpdateEndpoint": "ApproveModelsAndOperateEndpoints",
        "sagemaker:UpdateModelPackage": "ApproveModelsAndOperateEndpoints",
        "sagemaker:ListModelPackages": "ListSageMakerResources",
        "s3:AbortMultipartUpload": "ReadWriteArtifacts",
        "ecr:DescribeImages": "FindInferenceImages",
    },
    {
        **_KEY, **_PIPELINES,
        **_by_hand("ReadPlatformData", "s3:GetObjectVersion", "s3:GetBucketLocation"),
        **_by_hand("ReadWriteArtifacts", "s3:DeleteObject"),
        **_by_hand("RunPipelines", "sagemaker:StartPipelineExecution"),
        **_by_hand("ApproveModelsAndOperateEndpoints", "sagemaker:CreateEndpoint", "sagemaker:DeleteEndpoint",
                   "sagemaker:CreateEndpointConfig", "sagemaker:DeleteEndpointConfig",
                   "sagemaker:UpdateEndpointWeightsAndCapacities", "sagemaker:CreateModel",
                   "sagemaker:DeleteModel", "sagemaker:AddTags"),
        **_by_hand("PassExecutionRoleToSageMaker", "iam:PassRole"),
        **_by_hand("ReadMonitoring", "cloudwatch:GetMetricData", "cloudwatch:ListMetrics",
                   "cloudwatch:GetDashboard"),
        **_by_hand("ReadControlLoopRecords", "dynamodb:GetItem", "dynamodb:DescribeTable"),
        **_studio(_BY_HAND, {**_STUDIO_READ, **_STUDIO_APPS}),
        **{a: Also(sid, _PROMOTE) for a, sid in _PROMOTION.items()},
    },
    {"DescribeSageMakerResources": _BROWSE, "ListSageMakerResources": _BROWSE},
    absent_in={**dict.fromkeys({**_STUDIO_READ, **_STUDIO_APPS}, _NO_STUDIO),
               **dict.fromkeys([*_PROMOTION, "ecr:DescribeImages"], NOT_PROMOTED)},
)

DATA_SCIENTIST = RoleTable(
    "<prefix>-data-scientist",
    ("mlops/pipeline_run.py::_run_in_aws", "mlops/traffic.py::run_invoke_command"),
    ("mlops/pipeline_run", "mlops/traffic"),
    {
        "sagemaker:StartPipelineExecution": "RunPipelines",
        "sagemaker:DescribePipelineExecution": "DescribeSageMakerResources",
        "sagemaker:ListPipelineExecutionSteps": "ListSageMakerResources",
        "sagemaker:ListModelPackages": "ListSageMakerResources",
        "sagemaker:DescribeModelPackage": "DescribeSageMakerResources",
        "sagemaker:InvokeEndpoint": "InvokeEndpoints",
    },
    {
        **_KEY, **_PIPELINES,
        **_by_hand("ReadWriteDatasets", "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject",
                   "s3:DeleteObject", "s3:ListBucket", "s3:GetBucketLocation", "s3:AbortMultipartUpload"),
        **_by_hand("RunJobs", "sagemaker:CreateTrainingJob", "sagemaker:CreateProcessingJob",
                   "sagemaker:StopTrainingJob", "sagemaker:StopProcessingJob", "sagemaker:CreateExperiment",
                   "sagemaker:CreateTrial", "sagemaker:CreateTrialComponent", "sagemaker:AddTags"),
        **_by_hand("PassExecutionRoleToSageMaker", "iam:PassRole"),
        **_by_hand("PullImages", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                   "ecr:BatchCheckLayerAvailability", "ecr:DescribeImages"),
        **_by_hand("EcrLogin", "ecr:GetAuthorizationToken"),
        **_by_hand("ReadJobLogs", "logs:GetLogEvents", "logs:FilterLogEvents", "logs:DescribeLogStreams"),
        **_studio(_BY_HAND, {**_STUDIO_READ, **_STUDIO_APPS}),
    },
    {"DescribeSageMakerResources": _BROWSE, "ListSageMakerResources": _BROWSE},
    # Production: data scientists never invoke an endpoint (NeverApproveOrDeploy denies it).
    denied_in={"sagemaker:InvokeEndpoint": PRODUCTION},
    absent_in=dict.fromkeys({**_STUDIO_READ, **_STUDIO_APPS}, _NO_STUDIO),
)

# The auditor runs no command of this repository: everything is by hand, read-only.
_READ = "the auditor, by hand (console, CLI): reads what the README's RBAC table lets them"
AUDITOR = RoleTable(
    "<prefix>-auditor", (), (), {},
    {
        **{a: Also("ReadAuditLogs", _READ) for a in ("s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket",
                                                     "s3:GetBucketLocation")},
        **{f"kms:{op}": Also("DecryptAuditLogs", _READ)
           for op in ("Decrypt", "DescribeKey", "GetKeyPolicy", "GetKeyRotationStatus")},
        **{f"s3:{op}": Also("ReadBucketSettings", _READ)
           for op in ("GetBucketPolicy", "GetBucketVersioning", "GetEncryptionConfiguration",
                      "GetBucketPublicAccessBlock", "GetLifecycleConfiguration", "GetBucketLogging",
                      "GetBucketOwnershipControls")},
        # Read-only in Studio too: opens their own profile, runs no app (no space of their own).
        **_studio(_READ, _STUDIO_READ),
    },
    {"DescribeSageMakerResources": _BROWSE, "ListSageMakerResources": _BROWSE,
     "ReadTrailAndConfiguration": "reads of the trail, IAM and CloudWatch configuration (Get*, List*, "
                                  "Describe*): an auditor's reads are not a list",
     "ReadLogs": "reads of every log group (Describe*, Get*): an auditor's reads are not a list"},
    absent_in=dict.fromkeys(_STUDIO_READ, _NO_STUDIO),
)

# The explainability schedule's role: EventBridge starts the one-step pipeline as it (no code).
EXPLAINABILITY_SCHEDULE = RoleTable(
    "<base>-explainability-schedule", (), (), {},
    {"sagemaker:StartPipelineExecution": Also(
        "StartScheduledPipeline", "EventBridge starts the explainability pipeline on its schedule")},
)

@dataclass(frozen=True)
class Duty:
    """Something a person does in a production environment, as the authorizations it takes
    (stacks/promotion_grants.py `<requests>_requests`), and the personas who may.
    tests/unit/test_promotion_grants.py makes every request against each persona's synthesized
    policies, its boundary and the source's resource policies: a persona listed passes them all,
    any other is refused at least one."""

    what: str
    requests: str  # promote | approve
    personas: tuple[str, ...]


PRODUCTION_DUTIES = (
    Duty("promote a source package into this environment (`mlops model promote`)", "promote",
         ("ml_engineer",)),
    Duty("approve a promoted package (what the deploy handler serves)", "approve", ("ml_engineer",)),
)

TABLES: dict[str, RoleTable] = {
    **{f"function {name}": table for name, table in FUNCTIONS.items()},
    "project execution role": EXECUTION,
    "explainability schedule": EXPLAINABILITY_SCHEDULE,
    "persona ml_engineer": ML_ENGINEER,
    "persona data_scientist": DATA_SCIENTIST,
    "persona auditor": AUDITOR,
}


def markdown() -> str:
    """The tables as the README's linked document shows them."""
    lines = ["# Permissions derived from the calls", "",
             "Generated from stacks/permission_table.py (`python -m stacks.permission_table > "
             "docs/permissions.md`); tests/unit/test_permission_table.py checks that each role's code "
             "makes exactly the calls listed, that its synthesized policy allows each one by the "
             "statement named, and that it allows nothing else.", ""]
    for title, table in TABLES.items():
        code = ("Code: " + ", ".join(f"`{r}`" for r in table.runs)
                + (f" and what it imports from `{'`, `'.join(table.within)}`" if table.within else "")
                if table.runs else "Code: none of this repository's (the service acts as the role)")
        lines += [f"## {title} (`{table.role}`)", "", code,
                  "", "| AWS call (IAM action) | Statement | Made by |", "|---|---|---|"]
        for action in sorted(table.actions):
            made = table.also[action].why if action in table.also else "the code"
            if action in table.denied_in:
                made += f" (denied in {table.denied_in[action].label})"
            if action in table.absent_in:
                made += f" (not in {table.absent_in[action].label})"
            lines.append(f"| `{action}` | `{table.actions[action]}` | {made} |")
        for sid, why in table.wildcards.items():
            lines.append(f"| (wildcard) | `{sid}` | {why} |")
        lines.append("")
    names = list(personas.PERSONAS)
    lines += ["## Production duties", "",
              "In every production environment (`production: true`, promoted from `promotion.source`): "
              "who may do what, each checked request by request against the synthesized policies.", "",
              "| duty | " + " | ".join(p.replace("_", " ") for p in names) + " |",
              "|---|" + "---|" * len(names)]
    for duty in PRODUCTION_DUTIES:
        lines.append(f"| {duty.what} | " + " | ".join("yes" if p in duty.personas else "no" for p in names)
                     + " |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
