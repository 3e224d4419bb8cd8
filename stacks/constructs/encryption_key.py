"""A customer-managed KMS key with rotation, and the key policy the platform's services need."""

from __future__ import annotations

from dataclasses import dataclass, field

from stacks.binding import Construct, aws
from stacks.policy import Statement, document, statement


@dataclass(frozen=True)
class EncryptionKeyProps:
    alias: str  # without the "alias/" prefix
    description: str
    account_id: str
    region: str
    # 7 days for throwaway environments; 30 (the maximum) elsewhere, to survive a mistaken delete.
    deletion_window_days: int = 30
    # Services that encrypt on the account's behalf and so must appear in the key policy.
    allow_cloudwatch_logs: bool = True
    allow_cloudtrail: bool = True
    allow_alarm_notifications: bool = True
    # Statements for principals of other accounts (a promotion target's decrypts via S3).
    extra_statements: tuple[Statement, ...] = field(default=())


class EncryptionKey(Construct):
    def __init__(self, scope: Construct, id_: str, props: EncryptionKeyProps):
        super().__init__(scope, id_)
        self.props = props
        self.key = aws.kms_key.KmsKey(
            self,
            "key",
            description=props.description,
            enable_key_rotation=True,
            deletion_window_in_days=props.deletion_window_days,
            policy=document(self._key_policy()),
        )
        self.alias = aws.kms_alias.KmsAlias(
            self, "alias", name=f"alias/{props.alias}", target_key_id=self.key.key_id
        )

    @property
    def arn(self) -> str:
        return self.key.arn

    def use_statement(self, sid: str) -> Statement:
        """Encrypt and decrypt with this key (what a reader/writer of encrypted data needs)."""
        return statement(
            sid,
            ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            [self.key.arn],
        )

    def _key_policy(self) -> list[Statement]:
        p = self.props
        account_root = f"arn:aws:iam::{p.account_id}:root"
        stmts = [
            # Delegates access control to IAM policies in this account (the AWS default statement);
            # without it no role could be granted the key.
            statement("EnableIamPolicies", ["kms:*"], ["*"], principals={"AWS": account_root}),
        ]
        if p.allow_cloudwatch_logs:
            stmts.append(
                statement(
                    "AllowCloudWatchLogs",
                    ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                     "kms:Describe*"],
                    ["*"],
                    principals={"Service": f"logs.{p.region}.amazonaws.com"},
                    conditions={"ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn":
                            f"arn:aws:logs:{p.region}:{p.account_id}:*"}},
                )
            )
        if p.allow_cloudtrail:
            stmts.append(
                statement(
                    "AllowCloudTrailEncrypt",
                    ["kms:GenerateDataKey*", "kms:DescribeKey"],
                    ["*"],
                    principals={"Service": "cloudtrail.amazonaws.com"},
                    conditions={"StringLike": {
                        "kms:EncryptionContext:aws:cloudtrail:arn":
                            f"arn:aws:cloudtrail:*:{p.account_id}:trail/*"}},
                )
            )
        if p.allow_alarm_notifications:
            # CloudWatch alarms, EventBridge and AWS Budgets publish to the KMS-encrypted SNS
            # topics, and CloudTrail its log-file deliveries (AuditTrail's topic).
            stmts.append(
                statement(
                    "AllowAlarmNotifications",
                    ["kms:Decrypt", "kms:GenerateDataKey*"],
                    ["*"],
                    principals={"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com",
                                            "budgets.amazonaws.com", "cloudtrail.amazonaws.com"]},
                    conditions={"StringEquals": {"aws:SourceAccount": p.account_id}},
                )
            )
        return [*stmts, *p.extra_statements]
