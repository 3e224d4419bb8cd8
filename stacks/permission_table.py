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

from stacks import moto_gaps, personas
from stacks.config import Environment
from stacks.deployer_policy import DATA_SOURCE_ACTIONS, RESOURCE_ACTIONS
from stacks.project_config import ProjectConfig


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
# Where the roles of optional parts exist: the bootstrap stack (CI roles) only in an AWS account,
# the EKS cluster and its roles where `eks.enabled`, the Studio network where there is a domain.
IN_AWS = Environments("environments in an AWS account (not `local`)", lambda env: not env.local)
WITH_EKS = Environments("environments with `eks.enabled`", lambda env: env.eks.enabled)
WITH_STUDIO = Environments("environments with a Studio domain",
                           lambda env: env.studio.enabled and moto_gaps.for_environment(env.local).studio)


@dataclass(frozen=True)
class Projects:
    """A kind of project (in one environment), told by its settings."""

    label: str
    holds: Callable[[ProjectConfig], bool]


DRIFT_BATCH = Projects("projects with `drift.batch.enabled`", lambda project: project.drift.batch.enabled)


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
    # The role's Deny statements (Sid -> what it keeps the role from): exactly these.
    denies: Mapping[str, str] = field(default_factory=dict)
    # AWS managed policies the role attaches (name -> why): AWS writes their actions, so no table
    # lists them; the role attaches exactly these.
    managed: Mapping[str, str] = field(default_factory=dict)
    # Which stack makes it: platform (<prefix>), project (<base>) or bootstrap (the CI roles).
    stack: str = ""
    bounded: bool = True  # carries the environment's permissions boundary
    present_in: Environments | None = None  # where the role exists (None: every environment)
    present_for: Projects | None = None  # a project role: for which projects (None: every one)
    actor: str = "the service"  # who acts as the role when no code of this repository does

    @property
    def actions(self) -> dict[str, str]:
        return {**self.calls, **{a: g.sid for a, g in self.also.items()}}

    @property
    def stack_kind(self) -> str:
        return self.stack or ("platform" if self.role.startswith("<prefix>") else "project")


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


_NO_PIPELINE_OUTPUTS = ("writing or deleting what pipelines run and wrote (`<project>/pipeline/`, `runs/`, "
                        "`cache/`): the stacks' and the pipeline role's alone")


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
    denies={"NeverWritePipelineOutputs": _NO_PIPELINE_OUTPUTS,
            "NoCaptureBesideGroundTruth": "writing under an endpoint's capture prefix (a deeper "
                                          "`ground-truth/` would read as a variant's capture)",
            "PromotedCopiesAreCreateOnly": "replacing a promoted copy: writes under `promoted/` "
                                           "only with If-None-Match (create-only)",
            "NeverDeletePromotedCopies": "deleting a promoted copy or one of its versions"},
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
    denies={"NeverApproveOrDeploy": "approving a model package or changing what an endpoint serves "
                                    "(and, in production, invoking one), whatever else is granted"},
)

# The auditor runs no command of this repository: everything is by hand, read-only.
_READ = "the auditor, by hand (console, CLI): reads what the README's RBAC table lets them"
AUDITOR = RoleTable(
    "<prefix>-auditor", (), (), {}, actor="a person (console, CLI, Studio)", also=
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
    wildcards={
        "DescribeSageMakerResources": _BROWSE, "ListSageMakerResources": _BROWSE,
        "ReadTrailAndConfiguration": "reads of the trail, IAM and CloudWatch configuration (Get*, List*, "
                                     "Describe*): an auditor's reads are not a list",
        "ReadLogs": "reads of every log group (Describe*, Get*): an auditor's reads are not a list"},
    absent_in=dict.fromkeys(_STUDIO_READ, _NO_STUDIO),
)

# A pipeline EventBridge starts on a schedule (stacks/constructs/scheduled_pipeline.py): the role
# EventBridge assumes to start it, trusted for that one rule (aws:SourceArn).
def _schedule(name: str, what: str, present_for: Projects | None = None) -> RoleTable:
    return RoleTable(
        f"<base>-{name}-schedule", (), (), {},
        {"sagemaker:StartPipelineExecution": Also(
            "StartScheduledPipeline", f"EventBridge starts the {what} pipeline on its schedule")},
        present_for=present_for, actor="EventBridge")


EXPLAINABILITY_SCHEDULE = _schedule("explainability", "explainability")
# Its own rule and role (`<base>-drift-batch`), where the project runs the drift check as a job.
DRIFT_BATCH_SCHEDULE = _schedule("drift-batch", "drift batch", DRIFT_BATCH)

# The platform admin runs no command of this repository: a console role that operates the
# environment's own resources by hand (`<service>:*` on names of the environment), reads every
# configuration, and is denied what comes through the stacks, the deploy identity and the loop.
_OPERATE = "the platform admin, by hand (console, CLI): operates the environment's resources"
_SERVICE_WILDCARD = ("`{}:*` on the environment's own {} (the ARNs the statement names): an operator's "
                     "calls are not a list; the denies below take out what is not the admin's")
PLATFORM_ADMIN = RoleTable(
    "<prefix>-platform-admin", (), (), {}, actor="a person (console, CLI, Studio)", also=
    {
        # Read the key, its policy and rotation; use it for the SSE-KMS objects and secrets.
        **{f"kms:{op}": Also("ReadAndUseKey", _OPERATE)
           for op in ("DescribeKey", "GetKeyPolicy", "GetKeyRotationStatus", "Decrypt", "Encrypt",
                      "GenerateDataKey")},
        # Alarms are read (their actions re-enabled after an incident), never set, changed or muted
        # (NeverForgeControlLoopSignals); dashboards are the admin's.
        **{f"cloudwatch:{op}": Also("ManageAlarmsAndDashboards", _OPERATE)
           for op in ("DescribeAlarms", "DescribeAlarmHistory", "DescribeAlarmContributors",
                      "EnableAlarmActions", "GetDashboard", "PutDashboard", "DeleteDashboards",
                      "ListTagsForResource", "TagResource", "UntagResource")},
        **_studio(_OPERATE, {**_STUDIO_READ, **_STUDIO_APPS}),
        "sagemaker:AddTags": Also("TagStudioResourcesOnCreate", "Studio tags the spaces and apps the "
                                                                "admin creates (CreateSpace, CreateApp)"),
    },
    wildcards={
        **{f"Manage{service.title().replace('-', '')}": _SERVICE_WILDCARD.format(service, what)
           for service, what in (("sagemaker", "SageMaker resources"),
                                 ("sns", "topics"), ("sqs", "queues"), ("lambda", "functions"),
                                 ("dynamodb", "tables"), ("events", "rules"),
                                 ("logs", "log groups"), ("ecr", "image repositories"),
                                 ("secretsmanager", "secrets"))},
        "ManageBuckets": _SERVICE_WILDCARD.format("s3", "buckets and objects"),
        "ReadIdentity": "reads of IAM (Get*, List*): an administrator's reads are not a list",
        "ReadEverything": "reads of CloudWatch, the trail and SageMaker's lists (Describe*, Get*, List*): "
                          "an administrator's reads are not a list",
    },
    absent_in={**dict.fromkeys({**_STUDIO_READ, **_STUDIO_APPS}, _NO_STUDIO),
               "sagemaker:AddTags": _NO_STUDIO},
    denies={
        "NeverRewriteControlLoopRecords": "writing, deleting or dropping the control-loop tables (audit, "
                                          "deployments, idempotency, locks): evidence and state",
        "NeverForgeControlLoopSignals": "sending to the control-loop queues, putting events, rules or "
                                        "targets, setting, changing or muting alarms",
        "NeverReplaceImagesOrOpenBuckets": "pushing, deleting or retagging images; changing a bucket's "
                                           "policy, ACLs, replication, encryption, versioning or lifecycle",
        "NeverChangeCodeOrApprove": "changing a function's code or configuration, registering or approving a "
                                    "model package, creating or updating a pipeline, model or endpoint",
        "NeverTouchAuditObjects": "writing, deleting or unlocking an audit object, loosening the audit "
                                  "bucket",
        "NeverWritePipelineOutputs": _NO_PIPELINE_OUTPUTS + "; and the promoted archives, the promoter's",
    },
)

# The environment's shared SageMaker execution role (`<prefix>-sagemaker-execution`): data
# scientists pass it to their own training and processing jobs, the managed MLflow server writes
# its artifacts as it. What SageMaker does as it is the service's documented execution-role needs
# (SageMaker Developer Guide, "How to use SageMaker AI execution roles": CreateTrainingJob and
# CreateProcessingJob role permissions); what the people's job code does is by hand.
_JOB_SERVICE = "SageMaker, for a job the role was passed to"
_JOB_CODE = "people's job code, by hand (the README's RBAC table: data scientists' ad-hoc jobs)"
_MLFLOW = "the managed MLflow server writes and deletes run artifacts under `mlflow/`"
SAGEMAKER_EXECUTION = RoleTable(
    "<prefix>-sagemaker-execution", (), (), {},
    actor="SageMaker (the jobs it was passed to, the managed MLflow server), with people's job code",
    also=
    {
        "s3:GetObject": Also("ReadDatasetsCaptureAndArtifacts", _JOB_SERVICE + ": downloads the inputs"),
        "s3:ListBucket": Also("ReadDatasetsCaptureAndArtifacts", _JOB_SERVICE + ": lists an input prefix"),
        "s3:GetBucketLocation": Also("ReadDatasetsCaptureAndArtifacts", _JOB_SERVICE + ": locates buckets"),
        "s3:GetObjectVersion": Also("ReadDatasetsCaptureAndArtifacts",
                                    _JOB_CODE + ": reads a pinned version of a versioned dataset"),
        "s3:PutObject": Also("WriteWorkspace", _JOB_SERVICE + ": uploads the outputs under `workspace/`; "
                                               + _MLFLOW),
        "s3:AbortMultipartUpload": Also("WriteWorkspace",
                                        _JOB_SERVICE + ": multipart uploads of the outputs"),
        "s3:DeleteObject": Also("WriteWorkspace", _MLFLOW + "; " + _JOB_CODE),
        **{f"kms:{op}": Also("UsePlatformKey", _JOB_SERVICE + ": SSE-KMS inputs and outputs, and the job's "
                                                              "volume, encrypted with the platform key")
           for op in ("Decrypt", "Encrypt", "GenerateDataKey", "DescribeKey")},
        **{f"ecr:{op}": Also("PullImages", _JOB_SERVICE + ": pulls the job's image")
           for op in ("BatchGetImage", "GetDownloadUrlForLayer", "BatchCheckLayerAvailability")},
        "ecr:GetAuthorizationToken": Also("EcrLogin", _JOB_SERVICE + ": pulls the job's image"),
        **{f"logs:{op}": Also("WriteJobLogs", _JOB_SERVICE + ": writes the job's logs (/aws/sagemaker/*)")
           for op in ("CreateLogGroup", "CreateLogStream", "PutLogEvents", "DescribeLogStreams")},
        "cloudwatch:PutMetricData": Also("PublishMetrics", _JOB_SERVICE + ": publishes the training job's "
                                                           "metrics (/aws/sagemaker/TrainingJobs)"),
    },
)

# AWS services writing logs as a role of the environment (no code of this repository).
AUDIT_TO_LOGS = RoleTable(
    "<prefix>-audit-to-logs", (), (), {}, actor="CloudTrail", also=
    {f"logs:{op}": Also("WriteTrailEvents", "CloudTrail delivers the trail's events to its log group "
                                            "(CloudTrail User Guide: the role for CloudWatch Logs)")
     for op in ("CreateLogStream", "PutLogEvents")},
)
# S3 replicating prod's buckets into the replica region (stacks/replication.py): S3 acts as the
# role, so its rows are what live replication reads and writes (S3 User Guide: "Setting up
# permissions for live replication"; Object Lock state for the locked audit bucket).
_REPLICATES = "S3 live replication into the replica region"
REPLICATES = Environments("environments with `replication.region`",
                          lambda env: env.replication is not None)


def _replication(role: str, locked: bool, stack: str = "", bounded: bool = True) -> RoleTable:
    return RoleTable(
        role, (), (), {}, actor="S3 replication", also={
            **{f"s3:{op}": Also("ReadReplicationSources", _REPLICATES + ": reads each source's rules")
               for op in ("GetReplicationConfiguration", "ListBucket")},
            **{f"s3:{op}": Also("ReadSourceVersions", _REPLICATES + ": reads each new object version")
               for op in ("GetObjectVersionForReplication", "GetObjectVersionAcl",
                          "GetObjectVersionTagging")},
            **({f"s3:{op}": Also("ReadSourceObjectLock", _REPLICATES + ": copies the audit objects' "
                                                                       "retention and legal hold")
                for op in ("GetObjectRetention", "GetObjectLegalHold")} if locked else {}),
            **{f"s3:{op}": Also("WriteReplicas", _REPLICATES + ": writes the replica and its tags")
               for op in ("ReplicateObject", "ReplicateTags")},
            "kms:Decrypt": Also("DecryptSources", "S3 decrypts SSE-KMS source objects (via S3 only; "
                                                  "EncryptReplicas allows it on the replica key too, "
                                                  "where S3 checks the replica bucket's Bucket Key)"),
            **{f"kms:{op}": Also("EncryptReplicas", "S3 encrypts replicas with the replica key (via "
                                                    "S3 in the replica region only)")
               for op in ("Encrypt", "GenerateDataKey")},
        },
        present_in=REPLICATES, stack=stack, bounded=bounded)


REPLICATION = _replication("<prefix>-replication", locked=True)
# The account's Terraform state bucket and its access logs, replicated by the bootstrap stack
# into the same region (stacks/bootstrap_stack.py). No boundary: the platform stack makes it,
# after the bootstrap (an administrator's, like the CI roles); the role sits outside every
# environment's role path.
STATE_REPLICATION = _replication("<prefix>-state-replication", locked=False, stack="bootstrap",
                                 bounded=False)
_FLOW_LOGS = ("VPC Flow Logs publishes the network's flow logs to its log group (VPC User Guide: IAM "
              "role for publishing flow logs; the stack creates the group, so no logs:CreateLogGroup)")


def _flow_logs(network: str, present_in: Environments) -> RoleTable:
    return RoleTable(
        f"<prefix>-{network}-flow-logs", (), (), {}, actor="VPC Flow Logs", also=
        {**{f"logs:{op}": Also("WriteFlowLogs", _FLOW_LOGS)
            for op in ("CreateLogStream", "PutLogEvents", "DescribeLogStreams")},
         "logs:DescribeLogGroups": Also("FindLogGroups", _FLOW_LOGS)},
        present_in=present_in)


SERVING_FLOW_LOGS = _flow_logs("serving", WITH_EKS)
STUDIO_FLOW_LOGS = _flow_logs("studio", WITH_STUDIO)

# EKS's two service roles (stacks/constructs/eks_serving.py): EKS and EC2 call AWS as them, with
# the managed policies the EKS User Guide prescribes, and nothing else (no inline policy; no
# boundary: EKS needs them without one, and the deploy identity may attach only these).
EKS_CLUSTER = RoleTable(
    "<prefix>-serving-cluster", (), (), {},
    managed={"AmazonEKSClusterPolicy": "the EKS control plane manages the cluster's network "
                                       "interfaces, security groups and load balancers (EKS User "
                                       "Guide: cluster IAM role)"},
    bounded=False, present_in=WITH_EKS, actor="EKS")
EKS_NODE = RoleTable(
    "<prefix>-serving-node", (), (), {},
    managed={
        "AmazonEKSWorkerNodePolicy": "the kubelet joins the cluster and describes its instance "
                                     "(EKS User Guide: node IAM role)",
        "AmazonEKS_CNI_Policy": "the VPC CNI plugin assigns the pods' addresses from the subnets",
        "AmazonEC2ContainerRegistryReadOnly": "the kubelet pulls the model server's image from ECR",
    },
    bounded=False, present_in=WITH_EKS, actor="the nodes' kubelet and VPC CNI plugin")
# The project's model server on EKS, by IRSA: its init container fetches the served archive.
EKS_SERVING = RoleTable(
    "<base>-eks-serving",
    ("pipelines/model_server/fetch_model.py",), ("pipelines/model_server/",),
    {"s3:GetObject": "ReadModelArtifacts"},
    {"kms:Decrypt": Also("DecryptModelArtifacts", "S3 decrypts the SSE-KMS archive for GetObject "
                                                   "(kms:ViaService s3 only)")},
    present_in=WITH_EKS,
)

# GitHub Actions' two roles (stacks/constructs/github_ci_roles.py), in the bootstrap stack. The
# code that runs as them is Terraform (hashicorp/aws 5.100.0) and `mlops image push`; an AWS
# managed policy covers what it calls beyond IAM, the inline statements add what it needs of IAM
# and the state, and the denies take back what a plan or a deploy must never do.
_STATE = "Terraform's S3 backend: the environment's state objects and their lock file (`.tflock`)"
CI_PLAN = RoleTable(
    "<prefix>-github-plan", (), (), {}, actor="Terraform (`terraform plan`, in GitHub Actions)", also=
    {
        "s3:ListBucket": Also("ListState", _STATE),
        "s3:GetObject": Also("ReadState", _STATE),
        "s3:PutObject": Also("LockState", _STATE + ": a plan takes the lock"),
        "s3:DeleteObject": Also("LockState", _STATE + ": a plan releases the lock"),
        "kms:Decrypt": Also("UseStateKey", _STATE + ", SSE-KMS with the state key"),
        "kms:GenerateDataKey": Also("UseStateKey", _STATE + ", SSE-KMS with the state key"),
    },
    managed={"ReadOnlyAccess": "`terraform plan` refreshes every resource of the environment's stacks "
                               "(their Describe, Get and List calls)"},
    denies={
        "NoDataReads": "reading data rather than configuration: secret values, table items, log events, "
                       "image layers; invoking an endpoint or a function",
        "NoObjectReads": "reading the capture, audit and access-log objects (and their replicas)",
        "NoDecryptButState": "decrypting with any key but the state key (the platform's data is "
                             "encrypted with the platform key)",
    },
    stack="bootstrap", bounded=False, present_in=IN_AWS,
)
# The deploy role's IAM rows are Terraform's calls for the IAM resource types the stacks hold
# (stacks/deployer_policy.py RESOURCE_ACTIONS, the map `mlops deployer-policy` is made from).
_DEPLOY_SIDS = {"roles": "ManageEnvironmentRoles", "policies": "ManageEnvironmentPolicies",
                "managed_policies": "ReadManagedPolicies", "oidc_providers": "EksOidcProvider",
                "notebooks_role": "ServiceLinkedRoles", "autoscaling_role": "ServiceLinkedRoles"}


def _terraform_iam_calls() -> dict[str, Also]:
    types: dict[str, dict[str, None]] = {}
    sids: dict[str, str] = {}
    every = {**RESOURCE_ACTIONS, **{f"data.{t}": n for t, n in DATA_SOURCE_ACTIONS.items()}}
    # Sorted: a policy's own GetPolicy (aws_iam_policy) before the attachments' managed ones.
    for resource_type, needs in sorted(every.items()):
        for need in needs:
            for action in need.actions:
                if action.startswith("iam:"):
                    types.setdefault(action, {})[resource_type] = None
                    sids.setdefault(action, _DEPLOY_SIDS[need.scope])
    return {a: Also(sids[a], "Terraform, for " + ", ".join(f"`{t}`" for t in types[a]))
            for a in sorted(types)}


CI_DEPLOY = RoleTable(
    "<prefix>-github-deploy", (), (), {}, _terraform_iam_calls(),
    actor="Terraform (`mlops deploy`, in GitHub Actions), and `mlops image push`, whose ECR calls "
          "PowerUserAccess covers",
    managed={"PowerUserAccess": "`terraform apply` of every resource but IAM's, and `mlops image push` "
                                "(everything but IAM, Organizations and Account)"},
    denies={
        "RolesCarryTheBoundary": "making or changing a role without the environment's permissions boundary "
                                 "(but EKS's two service roles)",
        "EksRolesGetOnlyEksPolicies": "attaching any policy but EKS's managed ones to EKS's service roles",
        "EksRolesGetNoInlinePolicy": "an inline policy on EKS's service roles",
        "BoundaryStays": "removing a role's permissions boundary",
        "BoundaryChangesAreAnAdministrators": "changing or deleting the boundary policy itself",
        "AssumesNoRole": "assuming any role (a role it made is never a way to more permissions)",
    },
    stack="bootstrap", bounded=False, present_in=IN_AWS,
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
    "drift batch schedule": DRIFT_BATCH_SCHEDULE,
    "EKS serving (IRSA)": EKS_SERVING,
    "persona ml_engineer": ML_ENGINEER,
    "persona data_scientist": DATA_SCIENTIST,
    "persona platform_admin": PLATFORM_ADMIN,
    "persona auditor": AUDITOR,
    "shared SageMaker execution role": SAGEMAKER_EXECUTION,
    "CloudTrail to CloudWatch Logs": AUDIT_TO_LOGS,
    "S3 replication": REPLICATION,
    "S3 replication of the Terraform state": STATE_REPLICATION,
    "EKS network flow logs": SERVING_FLOW_LOGS,
    "Studio network flow logs": STUDIO_FLOW_LOGS,
    "EKS cluster": EKS_CLUSTER,
    "EKS nodes": EKS_NODE,
    "GitHub CI plan": CI_PLAN,
    "GitHub CI deploy": CI_DEPLOY,
}


# Roles and identities outside the synthesized stacks' `aws_iam_role`s, and why no table lists them.
NOT_TABLED = (
    "AWS's service-linked roles the deploy identity lets AWS create (`iam:CreateServiceLinkedRole`: "
    "SageMaker's notebooks role for Studio, Application Auto Scaling's for endpoint scaling): AWS "
    "writes and owns their policies, which no account can change.",
    "The local personas' IAM users (`mlops local credentials`, the local AWS only): each may assume "
    "its persona's role and nothing else, so its calls are the persona's table.",
    "Whoever applies the bootstrap stack (an account administrator, once per account) and whoever "
    "deploys without CI (`mlops deployer-policy` prints that identity's policy, derived from the "
    "synthesized resource types): people outside the platform's roles.",
)


def markdown() -> str:
    """The tables as the README's linked document shows them."""
    lines = ["# Permissions derived from the calls", "",
             "Generated from stacks/permission_table.py (`python -m stacks.permission_table > "
             "docs/permissions.md`); tests/unit/test_permission_table.py checks that each role's code "
             "makes exactly the calls listed, that its synthesized policy allows each one by the "
             "statement named, and that it allows nothing else; that its Deny statements, its AWS "
             "managed policies and its permissions boundary are the ones listed; and that every role "
             "of the synthesized stacks has a table.", ""]
    for title, table in TABLES.items():
        code = ("Code: " + ", ".join(f"`{r}`" for r in table.runs)
                + (f" and what it imports from `{'`, `'.join(table.within)}`" if table.within else "")
                if table.runs else f"Code: none of this repository's. Acting as the role: {table.actor}")
        where = [w.label for w in (table.present_in, table.present_for) if w is not None]
        lines += [f"## {title} (`{table.role}`)", "", code + ".",
                  "", f"Stack: {table.stack_kind}{'; only in ' + ' and '.join(where) if where else ''}; "
                      f"{'under' if table.bounded else 'without'} the environment's permissions boundary.",
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
        for name, why in table.managed.items():
            lines.append(f"| (AWS managed policy) | `{name}` | {why} |")
        for sid, why in table.denies.items():
            lines.append(f"| (denied) | `{sid}` | {why} |")
        lines.append("")
    lines += ["## Roles not tabled", ""] + [f"- {r}" for r in NOT_TABLED] + [""]
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
