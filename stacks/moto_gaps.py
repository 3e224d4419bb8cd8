"""Every place the local AWS (a moto server) differs from AWS, handled here and nowhere else.

Only the local environment uses this module. Each entry says what moto does differently and what
we do about it, so the day moto closes a gap the entry can be deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

# Where AWS would answer a request moto does not implement with a 500, the provider retries for
# over ten minutes before failing (seen with Application Auto Scaling's ListTagsForResource). A low
# retry count makes such a gap fail in seconds with moto's error instead of hanging a deploy.
# Not lower than 5, for moto's transient 500s. (The local AWS serves through gunicorn, not moto's
# werkzeug development server, whose dropped kept-alive connections made the provider repeat
# non-idempotent creates: local_aws/http_server.py.)
PROVIDER_MAX_RETRIES = 5

# moto accepts any access key unless IAM enforcement is switched on (INITIAL_NO_AUTH_ACTION_COUNT);
# these are placeholders, not secrets, and are the same on every machine.
PROVIDER_CREDENTIALS = {"access_key": "test", "secret_key": "test"}

# The local AWS holds many accounts (moto keeps every service's state per account). The placeholder
# key acts in moto's default account; a local environment in another account (environments/
# localprod.yaml) is reached as an AWS Organizations member account is from the management
# account: a session of the member account's OrganizationAccountAccessRole, assumed with STS.
# Terraform's provider assumes it (stacks/provider.py), and so do the local control plane, the
# Lambda code fetch and `mlops local credentials --env` (local_aws/accounts.py). moto issues such a
# session although the role does not exist (Organizations creates it in AWS), and the session acts
# in the role's account; with IAM enforced it is that account's administrator, as the role is in
# AWS (local_aws/iam_enforcement.py).
DEFAULT_ACCOUNT = "123456789012"
ACCOUNT_ACCESS_ROLE = "OrganizationAccountAccessRole"


def account_access_role(account_id: str) -> str | None:
    """The role a local deployer assumes to act in the account; None for the default account."""
    if account_id == DEFAULT_ACCOUNT:
        return None
    return f"arn:aws:iam::{account_id}:role/{ACCOUNT_ACCESS_ROLE}"


# The services the platform's stacks call, all answered by the one moto endpoint.
SERVICES = (
    "appautoscaling", "budgets", "cloudtrail", "cloudwatch", "dynamodb", "ec2", "ecr", "eks", "events",
    "iam", "kms", "lambda", "logs", "s3", "sagemaker", "secretsmanager", "sns", "sqs", "sts",
)

# Terraform skips the calls that only exist to discover a real account (STS/metadata), because
# moto's answers would be fixed fakes anyway.
PROVIDER_FLAGS = {
    "skip_credentials_validation": True,
    "skip_requesting_account_id": True,
    "skip_metadata_api_check": "true",
    # moto serves every bucket on one host, so virtual-host-style addressing cannot work.
    "s3_use_path_style": True,
}

# moto 5.2 evaluates bucket-policy conditions wrongly for object requests (no `Bool` operator, no
# aws:SecureTransport in the request context, an unmet condition counted as a Deny), so every
# TLS-only bucket would refuse every object read and write. The local server is moto's own with
# those three points fixed, in local_aws/moto_server.py, and serves HTTPS (local_aws/tls.py): the
# bucket policies stay exactly as in AWS, and a plain-HTTP object request is refused as in AWS.

# moto evaluates identity policies without the request's condition keys (a condition on a key
# the request lacks holds), knows StringEquals only (other operators hold), pairs a block's values
# by position and counts any statement whose condition fails as a Deny. With IAM enforced,
# local_aws/iam_conditions.py judges conditions as IAM does (an absent key makes a condition
# false, a statement whose condition fails does not apply) and local_aws/iam_enforcement.py fills
# the request context: the request's keys (`cloudwatch:namespace` of PutMetricData, an action
# scoped by its namespace alone, `s3:prefix`, `aws:SecureTransport`, an object write's
# `s3:if-none-match`/`s3:if-match`/`s3:ObjectCreationOperation`, which the promoted copies'
# create-only statements judge, ...) and the caller's. (moto honours If-None-Match on PutObject
# and CompleteMultipartUpload itself.)

# moto 5.2 ignores AssumeRole's SourceIdentity (no answer, not kept with the session, nothing in
# a model package's IamIdentity) and checks a trust policy for sts:AssumeRole only:
# local_aws/source_identity.py keeps it with the session (inherited and fixed on role chaining),
# local_aws/moto_server.py records it in CreatedBy/LastModifiedBy, and with IAM enforced
# local_aws/iam_enforcement.py fills sts:SourceIdentity and aws:SourceIdentity and checks
# sts:SetSourceIdentity against the caller's policies and the trust policy, as AWS does.

# moto evaluates no CloudWatch alarm, emits no AWS service event (alarm state change, model
# package state change), fires no EventBridge schedule and runs no Lambda without Docker: the local
# control plane (local_aws/control_plane.py) does those jobs. Inside the server
# (local_aws/moto_server.py): UpdateEndpoint (moto has none), percentiles and metric math in
# GetMetricData, no Lambda invocations from SQS by moto itself, schedule rules that match no
# PutEvents event, the `account` field kept in delivered events, DynamoDB's not-found error
# worded as AWS words it (Terraform ignores a retried DeleteTable's not-found only then), Signer's
# ResourceNotFoundException for a profile that does not exist (moto: a 500), EC2's
# InvalidLaunchTemplateId.NotFound for a retried DeleteLaunchTemplate (the AWS provider's "already
# deleted"; moto's name-not-found code failed a destroy now and then), and S3
# listings read from one snapshot (moto's ListObjectVersions failed with a 500 when a parallel
# delete removed a key it was listing). moto hands out no location for a zip function's package
# (GetFunction) and `s3://` for a layer's (GetLayerVersion): the server answers URLs of its own that
# serve the stored bytes (local_aws/lambda_code_urls.py), so the control plane runs the package and
# layers Terraform deployed (local_aws/lambda_code.py), not this checkout. CreateEndpoint of a
# name in use is refused as SageMaker refuses it (moto replaced the endpoint, orphaning the one
# served and leaving an apply waiting on the new one), and an SDK's retried attempt of a call the
# server already answered gets that answer (local_aws/retried_attempts.py).

# moto serves no model: its endpoints are InService at once and InvokeEndpoint answers canned
# data. The local AWS's endpoint runtime (local_aws/endpoint_runtime.py) backs every endpoint with
# the inference image's own `serve` entry, one process per production variant started from the
# model archive in the local S3 (Creating -> InService or Failed; Updating through the blue/green
# deployment guardrails, alarms watched, rolled back on one; endpoint and deployment state change
# events), answers InvokeEndpoint through it (a container's 4xx/5xx as ModelError), writes
# data capture as SageMaker does and publishes the AWS/SageMaker invocation metrics. moto stores
# every metric datapoint in one list and scans it whole per query: local_aws/metric_store.py
# indexes them per metric and time.

# moto's CreateModelPackage ignores ModelCard (and ClientToken): the card the register step sends
# is not stored, so locally it is checked from the step's own model_card.json instead of from
# DescribeModelPackage (tests/unit/test_pipeline_steps.py). Everything else round-trips.

# moto implements no DeleteModelPackageGroup (NotImplementedError -> HTTP 500), so `terraform
# destroy` of the local environment would fail on the model registry. Before a local destroy these
# resources are dropped from the state instead; the moto server is stopped right after anyway.
UNDELETABLE_RESOURCE_TYPES = ("aws_sagemaker_model_package_group",)


def undeletable(addresses: list[str]) -> list[str]:
    """The state addresses a local destroy must forget instead of deleting."""
    return [a for a in addresses if a.split(".", 1)[0] in UNDELETABLE_RESOURCE_TYPES]


# Attributes moto does not read back the way AWS does, per resource type. After the first apply
# Terraform would plan a change on every plan (most of these force a replacement), so the local
# environment ignores changes to exactly these attributes. Seen with moto 5.2.5:
UNREAD_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    # DescribeModel omits EnableNetworkIsolation (reads false) and returns an empty VpcConfig.
    "aws_sagemaker_model": ("enable_network_isolation", "vpc_config"),
    # DescribeEndpoint omits DeploymentConfig (blue/green policy and auto-rollback alarms).
    "aws_sagemaker_endpoint": ("deployment_config",),
    # GetQueueAttributes returns RedrivePolicy re-serialized with spaces, and the provider compares
    # the string against its compact form of the configuration: a whitespace diff on every plan.
    "aws_sqs_queue": ("redrive_policy",),
    # DescribeCluster omits accessConfig.
    "aws_eks_cluster": ("access_config",),
    # DescribeNodegroup omits updateConfig and invents a remoteAccess block (ssh key "eksKeypair").
    "aws_eks_node_group": ("remote_access", "update_config"),
    # DescribeLaunchTemplateVersions returns the template's own tags as a tag specification
    # (resource type "launch-template") that was never part of the template data.
    "aws_launch_template": ("tag_specifications",),
    # The provider reads the trail's SNS topic back as a name only when the topic's ARN holds its
    # own account id; the local provider never learns one (skip_requesting_account_id), so it
    # reads the ARN and would plan name -> ARN on every plan. (moto returns what AWS returns.)
    "aws_cloudtrail": ("sns_topic_name",),
}


@dataclass(frozen=True)
class MotoGaps:
    """What a construct does differently on the local AWS. Constructs take one as a prop, default
    `AWS` (no gaps), and the stacks pass `for_environment(env.is_local)`."""

    local: bool = False

    def ignore_changes(self, resource_type: str, *always: str) -> list[str] | None:
        """The lifecycle `ignore_changes` of a resource: `always` (ignored in AWS too, for reasons
        of the construct's own) plus, locally, the attributes moto does not read back."""
        ignored = [*always, *(UNREAD_ATTRIBUTES.get(resource_type, ()) if self.local else ())]
        return ignored or None

    @property
    def autoscaling(self) -> bool:
        """moto's Application Auto Scaling lacks ListTagsForResource, which the provider calls
        right after creating a scalable target, so the create fails (HTTP 500). The local
        environment has no autoscaling of endpoint variants; nothing there sends traffic anyway."""
        return not self.local

    @property
    def studio(self) -> bool:
        """moto has CreateDomain, DescribeDomain and DeleteDomain but no CreateUserProfile (nor
        spaces, apps or CreatePresignedDomainUrl): a local domain would serve no one, and its
        private network (VPC, subnets, endpoints, security groups) would add a dozen resources to
        every `mlops local up` for nothing the local loop uses. The local environment has no
        Studio: data scientists start runs there with `mlops pipeline run`."""
        return not self.local

    @property
    def model_package_group_policy(self) -> bool:
        """moto 5.2 implements no Put/Get/DeleteModelPackageGroupPolicy (a model package group's
        resource policy), so the provider's create fails. A local promotion source's groups carry
        no policy: moto's enforcement checks no SageMaker resource policy anyway, and the
        promoter's identity statements (the other half of the cross-account grant) are the same
        as in AWS. The bucket, key and repository policies are applied locally as in AWS."""
        return not self.local

    @property
    def aws_managed_policies(self) -> bool:
        """moto knows AWS managed policies (arn:aws:iam::aws:policy/...) only when the server runs
        with MOTO_IAM_LOAD_MANAGED_POLICIES=true; otherwise attaching one fails with NoSuchEntity.
        The local environment skips those attachments (the EKS service roles'); nothing runs
        under those roles locally."""
        return not self.local

    @property
    def code_signing(self) -> bool:
        """moto 5.2's Signer has signing profiles (Put/Get/CancelSigningProfile, tags) but no
        signing jobs (StartSigningJob, DescribeSigningJob); its Lambda has no CreateCodeSigningConfig
        (GetFunctionCodeSigningConfig only echoes the ARN a function was created with) and checks
        no signature. A local environment cannot sign: local.yaml and localprod.yaml set
        `lambda_code_signing: false` (stacks/config.py refuses true there) and their functions and
        layers deploy the unsigned zips; checkov's CKV_AWS_272 is skipped for those stacks only
        (.checkov.yaml). Every AWS environment signs and enforces
        (stacks/constructs/code_signing.py)."""
        return not self.local


AWS = MotoGaps(local=False)
LOCAL = MotoGaps(local=True)


def for_environment(is_local: bool) -> MotoGaps:
    return LOCAL if is_local else AWS
