"""The permissions boundary every role of an environment carries.

A boundary caps what any role can ever be granted, whatever its own policy says: here, only the
services the platform uses, and never the actions that would let a role escape the boundary,
blind the audit trail or destroy the encryption key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stacks.binding import Construct, aws
from stacks.naming import Naming
from stacks.personas import AUDIT_OBJECT_CHANGES
from stacks.policy import Statement, document, statement

# Allowed on any resource; data (s3), secrets, functions and keys only on the environment's own
# resources (PermissionBoundaryProps).
PLATFORM_SERVICES = (
    "sagemaker", "ecr", "logs", "cloudwatch", "sns", "sqs", "events", "dynamodb",
    "application-autoscaling", "cloudtrail", "eks",
    # The managed MLflow tracking server's API (experiment tracking from pipeline steps).
    "sagemaker-mlflow",
    # Lambda functions trace with X-Ray (tracing mode Active).
    "xray",
)


@dataclass(frozen=True)
class PermissionBoundaryProps:
    name: str
    path: str
    account_id: str
    trail_arn: str
    # The control loops' audit tables (`<prefix>-<project>-audit`): records are only ever added.
    audit_table_arn_pattern: str
    # The environment's own data, secrets, functions and key: the only ones a bounded role reaches.
    bucket_arn_pattern: str  # arn:aws:s3:::<prefix>-*
    secret_arn_pattern: str  # arn:aws:secretsmanager:<region>:<account>:secret:<prefix>/*
    function_arn_patterns: tuple[str, ...]  # <prefix>-* functions and layers
    key_arn: str
    audit_bucket_arn: str  # CloudTrail's, under Object Lock: nobody deletes or unlocks its objects
    # Reads beyond the environment (a promotion target's of its source's model archives).
    extra_statements: tuple[Statement, ...] = field(default=())

    @classmethod
    def of(cls, naming: Naming, name: str, trail_arn: str, key_arn: str, audit_bucket_arn: str,
           extra_statements: tuple[Statement, ...] = ()) -> PermissionBoundaryProps:
        """The boundary of the environment `naming` names: its own resources, by prefix."""
        n = naming
        return cls(
            name=name, path=n.role_path, account_id=n.account_id, trail_arn=trail_arn,
            audit_table_arn_pattern=n.arn("dynamodb", f"table/{n.prefix}-*-audit"),
            bucket_arn_pattern=n.all_buckets_arn, secret_arn_pattern=n.secrets_arn_pattern,
            function_arn_patterns=(n.arn("lambda", f"function:{n.prefix}-*"),
                                   n.arn("lambda", f"layer:{n.prefix}-*")),
            key_arn=key_arn, audit_bucket_arn=audit_bucket_arn, extra_statements=extra_statements,
        )


class PermissionBoundary(Construct):
    def __init__(self, scope: Construct, id_: str, props: PermissionBoundaryProps):
        super().__init__(scope, id_)
        self.arn = f"arn:aws:iam::{props.account_id}:policy{props.path}{props.name}"
        this_boundary = {"iam:PermissionsBoundary": self.arn}
        environment_buckets = [props.bucket_arn_pattern, f"{props.bucket_arn_pattern}/*"]
        self.policy = aws.iam_policy.IamPolicy(
            self,
            "policy",
            name=props.name,
            path=props.path,
            description="Caps every role of this environment: platform services only.",
            policy=document(
                [
                    statement(
                        "AllowPlatformServices",
                        [f"{service}:*" for service in PLATFORM_SERVICES],
                        ["*"],
                    ),
                    statement(
                        "AllowEnvironmentData",
                        ["s3:*"],
                        environment_buckets,
                    ),
                    statement(
                        # Bucket names are global: a bucket named like the environment's may be
                        # another account's (made before ours, or to catch what a role writes).
                        # No bounded role touches one. IfExists: a request without the key
                        # (CreateBucket, whose bucket has no owner yet) is left to the allows.
                        "DenyOtherAccountsBuckets",
                        ["s3:*"],
                        environment_buckets,
                        effect="Deny",
                        conditions={"StringNotEqualsIfExists": {"s3:ResourceAccount": props.account_id}},
                    ),
                    *props.extra_statements,
                    statement("AllowEnvironmentSecrets", ["secretsmanager:*"], [props.secret_arn_pattern]),
                    statement("AllowEnvironmentFunctions", ["lambda:*"], list(props.function_arn_patterns)),
                    statement(
                        "AllowEnvironmentKeyUse",
                        ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*",
                         "kms:DescribeKey", "kms:CreateGrant", "kms:GetKeyPolicy",
                         "kms:GetKeyRotationStatus"],
                        [props.key_arn],
                    ),
                    # These have no resource type: "*" is the only way to grant them.
                    statement(
                        "AllowListingWithoutResources",
                        ["s3:ListAllMyBuckets", "secretsmanager:ListSecrets",
                         "lambda:ListFunctions", "lambda:ListLayers",
                         "lambda:GetAccountSettings", "kms:ListAliases", "kms:ListKeys"],
                        ["*"],
                    ),
                    statement(
                        "AllowIdentityRead",
                        ["iam:Get*", "iam:List*", "sts:GetCallerIdentity", "ec2:Describe*"],
                        ["*"],
                    ),
                    statement(
                        # Only the environment's own roles (its role path): never the CI roles
                        # (/ci/) nor anything else of the account.
                        "AllowRoleHandOffInTheEnvironment",
                        ["iam:PassRole", "iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy",
                         "iam:TagRole", "iam:PutRolePermissionsBoundary"],
                        [f"arn:aws:iam::{props.account_id}:role{props.path}*"],
                    ),
                    statement(
                        "DenyCiRoles",
                        ["iam:*"],
                        [f"arn:aws:iam::{props.account_id}:role{Naming.CI_ROLE_PATH}*"],
                        effect="Deny",
                    ),
                    statement(
                        "DenyRolesWithoutThisBoundary",
                        ["iam:CreateRole", "iam:PutRolePermissionsBoundary"],
                        ["*"],
                        effect="Deny",
                        conditions={"StringNotEquals": this_boundary},
                    ),
                    statement(
                        "DenyBoundaryEscape",
                        ["iam:DeleteRolePermissionsBoundary", "iam:CreatePolicyVersion",
                         "iam:DeletePolicy", "iam:DeletePolicyVersion",
                         "iam:SetDefaultPolicyVersion"],
                        [self.arn, f"arn:aws:iam::{props.account_id}:role/*"],
                        effect="Deny",
                    ),
                    statement(
                        "DenyAuditTampering",
                        ["cloudtrail:StopLogging", "cloudtrail:DeleteTrail",
                         "cloudtrail:UpdateTrail", "cloudtrail:PutEventSelectors"],
                        [props.trail_arn],
                        effect="Deny",
                    ),
                    statement(
                        # Audit records are evidence: the handlers add them with a conditional
                        # put, and no role changes or deletes one (DynamoDB has no IAM condition
                        # on a put's own condition, so overwriting puts are the personas' deny).
                        # Nor turns off what keeps the table (deletion protection, point-in-time
                        # recovery, its backups), nor opens it to another account's principals,
                        # whom this boundary would not bind.
                        "DenyAuditRecordChanges",
                        ["dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem",
                         "dynamodb:PartiQLDelete", "dynamodb:PartiQLUpdate", "dynamodb:DeleteTable",
                         "dynamodb:UpdateTable", "dynamodb:UpdateContinuousBackups",
                         "dynamodb:UpdateTimeToLive", "dynamodb:DeleteBackup",
                         "dynamodb:PutResourcePolicy", "dynamodb:DeleteResourcePolicy"],
                        [props.audit_table_arn_pattern],
                        effect="Deny",
                    ),
                    statement(
                        # CloudTrail (a service principal, not bound here) writes them; no role
                        # deletes, unlocks or rewrites the evidence, nor loosens its bucket.
                        "DenyAuditObjectChanges",
                        list(AUDIT_OBJECT_CHANGES),
                        [props.audit_bucket_arn, f"{props.audit_bucket_arn}/*"],
                        effect="Deny",
                    ),
                    statement(
                        "DenyKeyDestruction",
                        ["kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:PutKeyPolicy"],
                        ["*"],
                        effect="Deny",
                    ),
                ]
            ),
        )
