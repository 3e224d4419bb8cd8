"""What each persona may do in one environment: plain statements, derived from the platform's ARNs.

Pure functions of the resources' names and ARNs (no cdktf), so the RBAC rules read in one place and
are unit-tested without synthesizing anything.

- data scientist: works with data and runs pipelines; never approves a model or changes an
  endpoint (deployments are the control loop's job); in protected environments cannot even
  invoke one.
- ML engineer: the approver: approves or rejects model packages, operates endpoints, runs drills,
  writes the ground-truth labels the model-quality check joins (`<project>/ground-truth/`).
- platform admin: operates this environment's resources; writes no IAM, no function code, no
  registry decision, no audit object and no pipeline output (those come through the stacks and
  the control loop).
- auditor: read-only, including the audit trail.
- SageMaker execution role: what pipeline steps and endpoints need at run time.

Where the environment has a Studio domain, every persona also opens its own Studio user profiles
(`studio`): its apps run as the persona role, so Studio gives a person exactly the persona's rights.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.naming import Naming
from stacks.policy import Statement, policy_variable, statement

# What a person may register a package as (approving it is another call, the gate's or an
# approver's: a package created Approved would skip both).
NOT_APPROVED = ("PendingManualApproval", "Rejected")
# Approving a model package and changing what an endpoint serves.
APPROVE_AND_DEPLOY_ACTIONS = (
    "sagemaker:UpdateModelPackage",
    "sagemaker:CreateEndpoint",
    "sagemaker:UpdateEndpoint",
    "sagemaker:DeleteEndpoint",
    "sagemaker:CreateEndpointConfig",
    "sagemaker:DeleteEndpointConfig",
    "sagemaker:UpdateEndpointWeightsAndCapacities",
)

# Ground-truth labels: <project>/ground-truth/yyyy/mm/dd/hh/*.jsonl in the capture bucket, and no
# deeper `ground-truth/` folder (one under an endpoint's prefix would read as its capture).
GROUND_TRUTH_KEYS = "*/ground-truth/*"
NOT_GROUND_TRUTH_KEYS = "*/*/ground-truth/*"

# What would rewrite, delete or unlock the audit bucket's evidence, or loosen the bucket: denied
# to every bounded role by the boundary, and to the personas again here.
AUDIT_OBJECT_CHANGES = (
    "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention", "s3:PutObjectRetention",
    "s3:PutObjectLegalHold", "s3:PutBucketObjectLockConfiguration", "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy", "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration", "s3:DeleteBucket",
)
# Where the shared execution role writes in the artifacts bucket: ad-hoc jobs' outputs and the
# MLflow server's artifacts (platform_stack: `s3://<artifacts>/mlflow`).
WORKSPACE_PREFIXES = ("workspace", "mlflow")
# What pipelines run and wrote: the step code bundle (pipelines/bundle.py, uploaded by the
# stacks) and the outputs (pipelines/definition.py run_uri and cached_uri), the gate's evidence.
# Whoever writes the code runs it as the pipeline's role.
PIPELINE_KEYS = ("*/pipeline/*", "*/runs/*", "*/cache/*")
# What `mlops model promote` copied in (mlops/promotion.py): the archives a production endpoint
# serves. The ML engineer writes them (the promoter), create-only; no other person writes there.
PROMOTED_KEYS = ("*/promoted/*",)
# The images the stacks reference by tag come from the deploy identity (`mlops image push`, CI):
# a person who could replace one would run code as the pipeline or an endpoint.
IMAGE_CHANGES = (
    "ecr:PutImage", "ecr:BatchDeleteImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload", "ecr:PutImageTagMutability", "ecr:SetRepositoryPolicy",
    "ecr:DeleteRepositoryPolicy", "ecr:DeleteRepository", "ecr:PutLifecyclePolicy",
    "ecr:DeleteLifecyclePolicy",
)
# What would open a bucket to another principal or let its objects go: the stacks' settings.
BUCKET_SETTING_CHANGES = (
    "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketAcl", "s3:PutObjectAcl",
    "s3:PutReplicationConfiguration", "s3:PutBucketOwnershipControls", "s3:PutBucketPublicAccessBlock",
    "s3:PutEncryptionConfiguration", "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration",
    "s3:DeleteBucket",
)
# The control loop's inputs and records besides the registry: a forged record or event, or an
# alarm muted or set by hand, would make it serve, keep or restore what no gate saw.
CONTROL_LOOP_CHANGES = (
    "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete", "dynamodb:DeleteTable",
    "dynamodb:UpdateTable", "dynamodb:UpdateContinuousBackups", "dynamodb:DeleteBackup",
    "dynamodb:PutResourcePolicy", "dynamodb:DeleteResourcePolicy",
)
CONTROL_LOOP_TABLES = ("audit", "deployments", "idempotency", "locks")
CONTROL_LOOP_SIGNALS = (
    "sqs:SendMessage", "sqs:PurgeQueue", "sqs:SetQueueAttributes", "events:PutEvents", "events:PutRule",
    "events:PutTargets", "events:RemoveTargets", "events:DisableRule", "events:DeleteRule",
    "cloudwatch:SetAlarmState", "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms",
    "cloudwatch:DisableAlarmActions",
)

# The scheduled checks' namespaces (control_loop.DRIFT_NAMESPACE, endpoint_alarms.QUALITY), which
# the ML engineer publishes to when running a check by hand.
CHECK_NAMESPACES = ("MLOps/Drift", "MLOps/ModelQuality")
# The session tag a person sets when assuming a persona role to open Studio: the persona role opens
# only the user profile tagged with the same value, and each principal may set only its own
# profile's name (the role's trust policy), AWS's `studiouserid` pattern for IAM-mode domains.
STUDIO_USER_TAG = "studiouserid"
READ_ONLY_PERSONAS = ("auditor",)

# SageMaker's List and Search actions cannot be scoped to resources.
SAGEMAKER_LIST_ACTIONS = ("sagemaker:List*", "sagemaker:Search")


@dataclass(frozen=True)
class BucketRefs:
    datasets: str
    artifacts: str
    capture: str
    audit: str
    access_logs: str


@dataclass(frozen=True)
class PlatformRefs:
    naming: Naming
    key_arn: str
    buckets: BucketRefs  # bucket ARNs
    repository_arns: tuple[str, ...]
    execution_role_arn: str
    secret_arn_pattern: str
    protected: bool  # `production`: personas other than the approver cannot touch endpoints
    studio_domain_id: str | None = None  # the environment's Studio domain, where it has one
    mlflow_tracking_server_arn: str | None = None  # the managed MLflow server (none locally)


def _objects(bucket_arn: str) -> str:
    return f"{bucket_arn}/*"


def _read(sid: str, *bucket_arns: str) -> Statement:
    return statement(
        sid,
        ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:GetBucketLocation"],
        [r for arn in bucket_arns for r in (arn, _objects(arn))],
    )


def _write(sid: str, *bucket_arns: str) -> Statement:
    return statement(
        sid,
        ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket",
         "s3:GetBucketLocation", "s3:AbortMultipartUpload"],
        [r for arn in bucket_arns for r in (arn, _objects(arn))],
    )


def _key_use(refs: PlatformRefs) -> Statement:
    return statement(
        "UsePlatformKey",
        ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
        [refs.key_arn],
    )


def _sagemaker_read(refs: PlatformRefs) -> list[Statement]:
    n = refs.naming
    return [
        statement(
            "DescribeSageMakerResources",
            ["sagemaker:Describe*", "sagemaker:Get*"],
            [n.sagemaker_arn(kind) for kind in (
                "training-job", "processing-job", "pipeline", "model-package-group",
                "model-package", "model", "endpoint", "endpoint-config", "experiment",
                "experiment-trial", "experiment-trial-component", "mlflow-tracking-server",
            )] + [n.sagemaker_arn("model-package", f"{n.prefix}-*/*")],
        ),
        statement("ListSageMakerResources", list(SAGEMAKER_LIST_ACTIONS), ["*"]),
    ]


def _pipelines(refs: PlatformRefs) -> Statement:
    n = refs.naming
    return statement(
        "RunPipelines",
        ["sagemaker:StartPipelineExecution", "sagemaker:StopPipelineExecution",
         "sagemaker:RetryPipelineExecution", "sagemaker:SendPipelineExecutionStepSuccess",
         "sagemaker:SendPipelineExecutionStepFailure"],
        [n.sagemaker_arn("pipeline"), n.sagemaker_arn("pipeline", f"{n.prefix}-*/*")],
    )


def _pass_execution_role(refs: PlatformRefs) -> Statement:
    return statement(
        "PassExecutionRoleToSageMaker",
        ["iam:PassRole"],
        [refs.execution_role_arn],
        conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
    )


def _pull_images(refs: PlatformRefs, *, describe: bool = True) -> list[Statement]:
    """`describe`: people also look images up (DescribeImages); SageMaker only pulls them."""
    return [
        statement(
            "PullImages",
            ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability",
             *(["ecr:DescribeImages"] if describe else [])],
            list(refs.repository_arns),
        ),
        # Registry-wide by design: the token is per registry, not per repository.
        statement("EcrLogin", ["ecr:GetAuthorizationToken"], ["*"]),
    ]


def studio(refs: PlatformRefs, persona: str) -> list[Statement]:
    """A persona in the environment's Studio domain (none without one): open the persona's own
    user profile (the one tagged with the caller's `studiouserid` session tag) and read the
    domain; every persona but the read-only auditor also runs apps (JupyterLab, Code Editor) in
    private spaces owned by the persona's profiles, which Studio tags as it creates them. AWS's
    documented policy for private spaces, narrowed from the account to this domain and the
    persona's profiles (no shared or ownerless spaces)."""
    domain = refs.studio_domain_id
    if domain is None:
        return []
    n = refs.naming
    own_profiles = n.sagemaker_arn("user-profile", f"{domain}/{n.studio_profile_prefix(persona)}*")
    in_domain = [n.sagemaker_arn(kind, f"{domain}/*") for kind in ("space", "app")]
    owned_private = {
        "ArnLike": {"sagemaker:OwnerUserProfileArn": own_profiles},
        "StringEquals": {"sagemaker:SpaceSharingType": "Private"},
    }
    callers_profile = policy_variable(f"aws:PrincipalTag/{STUDIO_USER_TAG}")
    browse = [
        statement(
            "OpenOwnStudioProfile", ["sagemaker:CreatePresignedDomainUrl"], [own_profiles],
            conditions={"StringEquals": {f"sagemaker:ResourceTag/{STUDIO_USER_TAG}": callers_profile}},
        ),
        statement(
            "DescribeStudio",
            ["sagemaker:DescribeDomain", "sagemaker:DescribeUserProfile", "sagemaker:DescribeSpace",
             "sagemaker:DescribeApp", "sagemaker:ListTags"],
            [n.sagemaker_arn("domain", domain), n.sagemaker_arn("user-profile", f"{domain}/*"), *in_domain],
        ),
    ]
    if persona in READ_ONLY_PERSONAS:
        return browse
    return [
        *browse,
        statement("OwnPrivateSpaces", ["sagemaker:CreateSpace", "sagemaker:UpdateSpace",
                                       "sagemaker:DeleteSpace"], [in_domain[0]], conditions=owned_private),
        statement("AppsInOwnPrivateSpaces", ["sagemaker:CreateApp", "sagemaker:DeleteApp"],
                  [in_domain[1]], conditions=owned_private),
        statement("TagStudioResourcesOnCreate", ["sagemaker:AddTags"], in_domain,
                  conditions={"Null": {"sagemaker:TaggingAction": "false"}}),
    ]


# What the MLflow UI reads (experiments, runs, their metrics and artifacts, registered models), named
# one by one from the Service Authorization Reference ("Amazon SageMaker with MLflow"): botocore has
# no model of sagemaker-mlflow, so `Get*`/`Search*`/`List*` could be checked against nothing, and
# would grow with every read AWS adds (traces, logged models).
MLFLOW_READ_ACTIONS = tuple(f"sagemaker-mlflow:{op}" for op in (
    "AccessUI", "GetExperiment", "GetExperimentByName", "SearchExperiments", "GetRun", "SearchRuns",
    "GetMetricHistory", "ListArtifacts", "GetRegisteredModel", "SearchRegisteredModels",
    "GetModelVersion", "SearchModelVersions", "GetLatestModelVersions"))


def read_experiments(refs: PlatformRefs) -> list[Statement]:
    """Open the environment's MLflow UI (in Studio or by a presigned URL) and read what runs
    logged there; logging itself is the pipelines' (their execution roles)."""
    server = refs.mlflow_tracking_server_arn
    if server is None:
        return []
    return [statement(
        "ReadExperiments",
        ["sagemaker:CreatePresignedMlflowTrackingServerUrl", *MLFLOW_READ_ACTIONS],
        [server],
    )]


def data_scientist(refs: PlatformRefs) -> list[Statement]:
    n, b = refs.naming, refs.buckets
    denied = list(APPROVE_AND_DEPLOY_ACTIONS)
    if refs.protected:
        # Production serves only promoted packages: registering one is the promoter's (the ML
        # engineer's `mlops model promote`), never a data scientist's.
        denied += ["sagemaker:InvokeEndpoint", "sagemaker:CreateModelPackage"]
    # Trying a served model outside prod (`mlops endpoint invoke`, a notebook).
    invoke = [] if refs.protected else [
        statement("InvokeEndpoints", ["sagemaker:InvokeEndpoint"], [n.sagemaker_arn("endpoint")])]
    return [
        _write("ReadWriteDatasets", b.datasets),
        *invoke,
        _read("ReadArtifactsAndCapture", b.artifacts, b.capture),
        _key_use(refs),
        *_sagemaker_read(refs),
        _pipelines(refs),
        statement(
            "RunJobs",
            ["sagemaker:CreateTrainingJob", "sagemaker:CreateProcessingJob",
             "sagemaker:StopTrainingJob", "sagemaker:StopProcessingJob",
             "sagemaker:CreateExperiment", "sagemaker:CreateTrial",
             "sagemaker:CreateTrialComponent", "sagemaker:AddTags"],
            [n.sagemaker_arn(kind) for kind in (
                "training-job", "processing-job", "experiment", "experiment-trial",
                "experiment-trial-component")],
        ),
        _pass_execution_role(refs),
        *_pull_images(refs),
        statement(
            "ReadJobLogs",
            ["logs:GetLogEvents", "logs:FilterLogEvents", "logs:DescribeLogStreams"],
            [n.arn("logs", "log-group:/aws/sagemaker/*")],
        ),
        # Explicit deny: no other grant (now or later) can let a data scientist approve a model
        # or change what an endpoint serves.
        statement("NeverApproveOrDeploy", denied, ["*"], effect="Deny"),
    ]


def ml_engineer(refs: PlatformRefs) -> list[Statement]:
    n, b = refs.naming, refs.buckets
    return [
        _read("ReadPlatformData", b.datasets, b.capture),
        # Labels for the model-quality check (Model Monitor's layout, <project>/ground-truth/):
        # the only writes into the capture bucket a person may make; capture itself stays the
        # endpoints' own (a data scientist only reads it).
        statement("WriteGroundTruth", ["s3:PutObject"], [f"{b.capture}/{GROUND_TRUTH_KEYS}"]),
        # IAM's * spans slashes: without this, <project>/<endpoint>/ground-truth/... would be
        # writable too, which the capture readers would take for an endpoint variant's capture.
        statement("NoCaptureBesideGroundTruth", ["s3:PutObject"], [f"{b.capture}/{NOT_GROUND_TRUTH_KEYS}"],
                  effect="Deny"),
        _write("ReadWriteArtifacts", b.artifacts),
        _never_write_pipeline_outputs(refs),
        *_promoted_copies_create_only(refs),
        _key_use(refs),
        *_sagemaker_read(refs),
        _pipelines(refs),
        statement(
            "ApproveModelsAndOperateEndpoints",
            [*APPROVE_AND_DEPLOY_ACTIONS, "sagemaker:InvokeEndpoint", "sagemaker:CreateModel",
             "sagemaker:DeleteModel", "sagemaker:AddTags"],
            [n.sagemaker_arn(kind) for kind in (
                "model-package", "endpoint", "endpoint-config", "model")]
            + [n.sagemaker_arn("model-package", f"{n.prefix}-*/*")],
        ),
        _pass_execution_role(refs),
        # `mlops drill rollback`: a faulty copy of a served package for the gate and the deploy
        # handler to take through the normal path (--via fault), or an alarm set by hand
        # (--via state). The drill writes no metrics (AWS/ ones cannot be).
        statement(
            "RunDrills",
            ["cloudwatch:SetAlarmState"],
            [n.arn("cloudwatch", f"alarm:{n.prefix}-*")],
        ),
        # The drill's faulty copy and the promoted package are registered PendingManualApproval
        # (the gate reviews, an approver decides); `mlops rbac check`'s probe Rejected. Never
        # Approved: that would skip the gate and the four eyes. (Every project group of the
        # environment: a drill or a promotion may concern any of its projects.)
        statement(
            "RegisterDrillPackages",
            ["sagemaker:CreateModelPackage"],
            [n.sagemaker_arn("model-package-group"), n.sagemaker_arn("model-package", f"{n.prefix}-*/*")],
            conditions={"StringEquals": {"sagemaker:ModelApprovalStatus": list(NOT_APPROVED)}},
        ),
        statement(
            "ReadMonitoring",
            ["cloudwatch:DescribeAlarms", "cloudwatch:GetMetricData", "cloudwatch:ListMetrics",
             "cloudwatch:GetDashboard"],
            ["*"],
        ),
        # `mlops drift check` and `mlops quality check` run the scheduled checks by hand and publish
        # what the drift and accuracy alarms watch. PutMetricData has no resource type: the
        # namespace is its scope.
        statement(
            "PublishCheckMetrics",
            ["cloudwatch:PutMetricData"],
            ["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": list(CHECK_NAMESPACES)}},
        ),
        # The control loops' deployment history and decisions: what a drill compares against.
        statement(
            "ReadControlLoopRecords",
            ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:DescribeTable"],
            [n.arn("dynamodb", f"table/{n.prefix}-*-{table}{index}")
             for table in ("deployments", "audit") for index in ("", "/index/*")],
        ),
    ]


def _never_touch_audit_objects(refs: PlatformRefs) -> Statement:
    """The audit bucket's objects are CloudTrail's and locked (Object Lock): no person rewrites,
    deletes or unlocks them, or loosens the bucket that keeps them."""
    audit = refs.buckets.audit
    return statement(
        "NeverTouchAuditObjects",
        ["s3:PutObject", *AUDIT_OBJECT_CHANGES], [audit, _objects(audit)], effect="Deny")


def _never_write_pipeline_outputs(refs: PlatformRefs, *, promoted_too: bool = False) -> Statement:
    """The pipeline's code and outputs (evaluation reports, models) are the stacks' and the
    pipeline role's alone; `promoted_too`: and the promoted copies, the promoter's."""
    keys = (*PIPELINE_KEYS, *(PROMOTED_KEYS if promoted_too else ()))
    return statement(
        "NeverWritePipelineOutputs", ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
        [f"{refs.buckets.artifacts}/{k}" for k in keys], effect="Deny")


def _promoted_copies_create_only(refs: PlatformRefs) -> list[Statement]:
    """The promoter writes the promoted copies (`mlops model promote`), once: a PutObject or
    CompleteMultipartUpload must carry `If-None-Match` (S3 then refuses it where the key exists),
    and nothing there is deleted, so what an approver approved is what the endpoint serves. AWS's
    "Enforce conditional writes": CreateMultipartUpload and UploadPart take no conditional header
    (s3:ObjectCreationOperation false); a request that does not say is held to the header."""
    promoted = [f"{refs.buckets.artifacts}/{k}" for k in PROMOTED_KEYS]
    return [
        statement("PromotedCopiesAreCreateOnly", ["s3:PutObject"], promoted, effect="Deny",
                  conditions={"Null": {"s3:if-none-match": "true"},
                              "BoolIfExists": {"s3:ObjectCreationOperation": "true"}}),
        statement("NeverDeletePromotedCopies", ["s3:DeleteObject", "s3:DeleteObjectVersion"], promoted,
                  effect="Deny"),
    ]


def platform_admin(refs: PlatformRefs) -> list[Statement]:
    n = refs.naming
    region_scoped = [
        ("sagemaker", [n.sagemaker_arn("*")]),
        ("sns", [n.arn("sns", f"{n.prefix}-*")]),
        ("sqs", [n.arn("sqs", f"{n.prefix}-*")]),
        ("lambda", [n.arn("lambda", f"function:{n.prefix}-*")]),
        ("dynamodb", [n.arn("dynamodb", f"table/{n.prefix}-*")]),
        ("events", [n.arn("events", f"rule/{n.prefix}-*")]),
        ("logs", [n.arn("logs", f"log-group:/{n.prefix}/*"),
                  n.arn("logs", "log-group:/aws/sagemaker/*"),
                  n.arn("logs", f"log-group:/aws/lambda/{n.prefix}-*")]),
        ("ecr", list(refs.repository_arns)),
        ("secretsmanager", [refs.secret_arn_pattern]),
    ]
    return [
        statement("ManageBuckets", ["s3:*"], [n.all_buckets_arn, f"{n.all_buckets_arn}/*"]),
        # The control loops' audit records are evidence, also against the admin: read them, never
        # rewrite (a plain put overwrites), delete or drop them.
        # The control loops' records are evidence and state, also against the admin: read them,
        # never rewrite (a plain put overwrites), delete or drop them.
        statement("NeverRewriteControlLoopRecords", list(CONTROL_LOOP_CHANGES),
                  [n.arn("dynamodb", f"table/{n.prefix}-*-{table}") for table in CONTROL_LOOP_TABLES],
                  effect="Deny"),
        statement("NeverForgeControlLoopSignals", list(CONTROL_LOOP_SIGNALS), ["*"], effect="Deny"),
        statement("NeverReplaceImagesOrOpenBuckets", [*IMAGE_CHANGES, *BUCKET_SETTING_CHANGES], ["*"],
                  effect="Deny"),
        *[
            statement(f"Manage{service.title().replace('-', '')}", [f"{service}:*"], arns)
            for service, arns in region_scoped
        ],
        # What has an alarm or dashboard resource type (not `cloudwatch:*`, nor DescribeAlarm* or
        # *Dashboard*: PutMetricData, DescribeAlarmsForMetric, ListDashboards and the other
        # resource-less actions would read as scoped to these ARNs, and mean nothing; the lists
        # are ReadEverything's).
        statement(
            "ManageAlarmsAndDashboards",
            ["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory",
             "cloudwatch:DescribeAlarmContributors", "cloudwatch:EnableAlarmActions",
             "cloudwatch:GetDashboard", "cloudwatch:PutDashboard", "cloudwatch:DeleteDashboards",
             "cloudwatch:ListTagsForResource", "cloudwatch:TagResource", "cloudwatch:UntagResource"],
            [n.arn("cloudwatch", f"alarm:{n.prefix}-*"),
             n.arn("cloudwatch", f"dashboard/{n.prefix}-*", region=False)],
        ),
        statement(
            "ReadAndUseKey",
            # What the permissions boundary lets through (AllowEnvironmentKeyUse): reading the key,
            # its policy and rotation (the stacks keep rotation on), and using it for the SSE-KMS
            # objects and secrets the admin reads and writes. Key administration (tags, grants,
            # rotation, policy) is the stacks' and the key policy's, not a persona's.
            ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:Decrypt",
             "kms:Encrypt", "kms:GenerateDataKey"],
            [refs.key_arn],
        ),
        # Roles, the code that runs as them, the registry's decisions and what endpoints serve come
        # through the stacks and the control loop, never by hand: an admin who could write a role
        # policy, change a handler's code, approve a package or point an endpoint at a model of
        # their own could serve what no gate saw and grant themselves anything the loop can do.
        statement(
            "NeverChangeCodeOrApprove",
            ["lambda:CreateFunction", "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration",
             "lambda:PublishLayerVersion", "lambda:AddPermission", "lambda:CreateEventSourceMapping",
             "lambda:UpdateEventSourceMapping",
             # Lambda code signing (AWS environments): loosening or detaching the Enforce config
             # would let unsigned code in through the next deploy.
             "lambda:PutFunctionCodeSigningConfig", "lambda:DeleteFunctionCodeSigningConfig",
             "lambda:UpdateCodeSigningConfig", "lambda:DeleteCodeSigningConfig",
             "sagemaker:CreateModelPackage",
             "sagemaker:CreatePipeline", "sagemaker:UpdatePipeline", "sagemaker:CreateModel",
             *APPROVE_AND_DEPLOY_ACTIONS],
            ["*"], effect="Deny"),
        _never_touch_audit_objects(refs),
        _never_write_pipeline_outputs(refs, promoted_too=True),
        statement("ReadIdentity", ["iam:Get*", "iam:List*"], ["*"]),
        statement(
            "ReadEverything",
            ["cloudwatch:Describe*", "cloudwatch:Get*", "cloudwatch:List*",
             "cloudtrail:DescribeTrails", "cloudtrail:GetTrailStatus", "cloudtrail:LookupEvents",
             *SAGEMAKER_LIST_ACTIONS, "s3:ListAllMyBuckets"],
            ["*"],
        ),
    ]


def auditor(refs: PlatformRefs) -> list[Statement]:
    n, b = refs.naming, refs.buckets
    every_bucket = [b.datasets, b.artifacts, b.capture, b.audit, b.access_logs]
    return [
        _read("ReadAuditLogs", b.audit, b.access_logs),
        statement("DecryptAuditLogs", ["kms:Decrypt", "kms:DescribeKey", "kms:GetKeyPolicy",
                                       "kms:GetKeyRotationStatus"], [refs.key_arn]),
        statement(
            "ReadBucketSettings",
            ["s3:GetBucketPolicy", "s3:GetBucketVersioning", "s3:GetEncryptionConfiguration",
             "s3:GetBucketPublicAccessBlock", "s3:GetLifecycleConfiguration",
             "s3:GetBucketLogging", "s3:GetBucketOwnershipControls", "s3:ListBucket"],
            every_bucket,
        ),
        *_sagemaker_read(refs),
        statement(
            "ReadTrailAndConfiguration",
            ["cloudtrail:LookupEvents", "cloudtrail:DescribeTrails", "cloudtrail:GetTrailStatus",
             "cloudtrail:GetEventSelectors", "iam:Get*", "iam:List*", "cloudwatch:Describe*",
             "cloudwatch:Get*", "cloudwatch:List*", "s3:ListAllMyBuckets"],
            ["*"],
        ),
        statement(
            "ReadLogs",
            ["logs:Describe*", "logs:Get*", "logs:FilterLogEvents"],
            [n.arn("logs", "log-group:*")],
        ),
    ]


def sagemaker_execution(refs: PlatformRefs) -> list[Statement]:
    """The environment's shared execution role: data scientists pass it to their own jobs, and
    the MLflow server writes its artifacts as it. It registers no model and writes nothing a
    pipeline wrote (`<project>/runs/`, `<project>/cache/`): only WORKSPACE_PREFIXES."""
    n, b = refs.naming, refs.buckets
    return [
        _read("ReadDatasetsCaptureAndArtifacts", b.datasets, b.capture, b.artifacts),
        statement("WriteWorkspace", ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                  [f"{b.artifacts}/{prefix}/*" for prefix in WORKSPACE_PREFIXES]),
        _key_use(refs),
        *_pull_images(refs, describe=False),
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
            # PutMetricData has no resource type; the namespace is its scope: SageMaker's own
            # (training metrics, published as the job's role). Not MLOps/*: any job a data
            # scientist starts runs as this role, and MLOps/ holds what the alarms judge.
            conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*"]}},
        ),
    ]


PERSONAS = {
    "data_scientist": data_scientist,
    "ml_engineer": ml_engineer,
    "platform_admin": platform_admin,
    "auditor": auditor,
}
