"""The permissions boundary every role of an environment carries.

A boundary caps what any role can ever be granted, whatever its own policy says: here, only the
services the platform uses, and never the actions that would let a role escape the boundary,
blind the audit trail or destroy the encryption key.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.binding import Construct, aws
from stacks.naming import Naming
from stacks.policy import document, statement

PLATFORM_SERVICES = (
    "s3", "sagemaker", "ecr", "logs", "cloudwatch", "sns", "sqs", "events", "lambda", "dynamodb",
    "secretsmanager", "application-autoscaling", "cloudtrail", "eks",
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


class PermissionBoundary(Construct):
    def __init__(self, scope: Construct, id_: str, props: PermissionBoundaryProps):
        super().__init__(scope, id_)
        self.arn = f"arn:aws:iam::{props.account_id}:policy{props.path}{props.name}"
        this_boundary = {"iam:PermissionsBoundary": self.arn}
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
                        "AllowKeyUse",
                        ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*",
                         "kms:DescribeKey", "kms:CreateGrant", "kms:GetKeyPolicy",
                         "kms:GetKeyRotationStatus", "kms:ListAliases", "kms:ListKeys"],
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
                        "DenyKeyDestruction",
                        ["kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:PutKeyPolicy"],
                        ["*"],
                        effect="Deny",
                    ),
                ]
            ),
        )
