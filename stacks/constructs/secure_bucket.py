"""An S3 bucket with the platform's secure defaults.

Versioned, SSE-KMS with a bucket key, all public access blocked, ACLs disabled, a bucket policy
that refuses plain-HTTP requests, lifecycle rules for old versions, server access logs, and
optionally S3 Object Lock (the audit bucket).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from stacks.binding import Construct, aws, cdktf
from stacks.policy import Statement, deny_insecure_transport, document, statement

S3 = aws.s3_bucket_lifecycle_configuration


@dataclass(frozen=True)
class AccessLogs:
    """Where a bucket's server access logs go: a log-destination SecureBucket and a key prefix."""

    target: SecureBucket
    prefix: str


@dataclass(frozen=True)
class ObjectLock:
    """S3 Object Lock: every new object version kept `days` in `mode` (no delete, no overwrite of
    that version). Set through the bucket's Object Lock configuration, which S3 also takes on
    an existing versioned bucket, so adding it never replaces a bucket."""

    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    days: int

    def __post_init__(self) -> None:
        if not 1 <= self.days <= 36500:
            raise ValueError(f"object lock retention must be 1..36500 days, got {self.days}")


@dataclass(frozen=True)
class SecureBucketProps:
    name: str
    kms_key_arn: str | None
    noncurrent_version_days: int
    # "kms" everywhere. "s3-managed" exists only for a server-access-log destination: S3 cannot
    # deliver access logs into a bucket whose default encryption is SSE-KMS.
    encryption: Literal["kms", "s3-managed"] = "kms"
    access_logs: AccessLogs | None = None
    expire_objects_days: int | None = None
    force_destroy: bool = False
    prevent_destroy: bool = False
    extra_policy_statements: tuple[Statement, ...] = field(default=())
    object_lock: ObjectLock | None = None

    def __post_init__(self) -> None:
        if self.encryption == "kms" and not self.kms_key_arn:
            raise ValueError(f"bucket {self.name}: kms encryption needs kms_key_arn")
        if self.prevent_destroy and self.force_destroy:
            raise ValueError(f"bucket {self.name}: prevent_destroy and force_destroy conflict")


def log_delivery_statement(bucket_name: str, account_id: str, source_prefix: str = "",
                           source_bucket: str = "") -> Statement:
    """An access-log bucket's grant to S3's log delivery: only logs of this account's buckets
    whose names start with `source_prefix` (the environment's), or of the one `source_bucket`."""
    if bool(source_prefix) == bool(source_bucket):
        raise ValueError(f"bucket {bucket_name}: log delivery from a prefix or a bucket, one of them")
    return statement(
        "AllowServerAccessLogDelivery",
        ["s3:PutObject"],
        [f"arn:aws:s3:::{bucket_name}/*"],
        principals={"Service": "logging.s3.amazonaws.com"},
        conditions={
            "StringEquals": {"aws:SourceAccount": account_id},
            "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{source_bucket or source_prefix + '-*'}"},
        },
    )


class SecureBucket(Construct):
    def __init__(self, scope: Construct, id_: str, props: SecureBucketProps):
        super().__init__(scope, id_)
        self.props = props
        self.name = props.name
        self.arn = f"arn:aws:s3:::{props.name}"
        lifecycle = (
            cdktf.TerraformResourceLifecycle(prevent_destroy=True) if props.prevent_destroy else None
        )
        self.bucket = aws.s3_bucket.S3Bucket(
            self, "bucket", bucket=props.name, force_destroy=props.force_destroy, lifecycle=lifecycle
        )
        bucket_id = self.bucket.id
        self.versioning = versioning = aws.s3_bucket_versioning.S3BucketVersioningA(
            self,
            "versioning",
            bucket=bucket_id,
            versioning_configuration=aws.s3_bucket_versioning.S3BucketVersioningVersioningConfiguration(
                status="Enabled"
            ),
        )
        if props.object_lock:
            lock = aws.s3_bucket_object_lock_configuration
            lock.S3BucketObjectLockConfigurationA(
                self, "object_lock", bucket=bucket_id, object_lock_enabled="Enabled",
                rule=lock.S3BucketObjectLockConfigurationRuleA(
                    default_retention=lock.S3BucketObjectLockConfigurationRuleDefaultRetentionA(
                        mode=props.object_lock.mode, days=props.object_lock.days)),
                depends_on=[versioning],  # S3 locks only versioned buckets
            )
        sse = aws.s3_bucket_server_side_encryption_configuration
        by_default = (
            sse.S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                sse_algorithm="aws:kms", kms_master_key_id=props.kms_key_arn
            )
            if props.encryption == "kms"
            else sse.S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                sse_algorithm="AES256"
            )
        )
        aws.s3_bucket_server_side_encryption_configuration.S3BucketServerSideEncryptionConfigurationA(
            self,
            "encryption",
            bucket=bucket_id,
            rule=[
                sse.S3BucketServerSideEncryptionConfigurationRuleA(
                    apply_server_side_encryption_by_default=by_default,
                    bucket_key_enabled=props.encryption == "kms",
                )
            ],
        )
        self.public_access_block = aws.s3_bucket_public_access_block.S3BucketPublicAccessBlock(
            self,
            "public_access_block",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
        )
        aws.s3_bucket_ownership_controls.S3BucketOwnershipControls(
            self,
            "ownership",
            bucket=bucket_id,
            rule=aws.s3_bucket_ownership_controls.S3BucketOwnershipControlsRule(
                object_ownership="BucketOwnerEnforced"
            ),
        )
        self.policy = aws.s3_bucket_policy.S3BucketPolicy(
            self,
            "policy",
            bucket=bucket_id,
            policy=document([deny_insecure_transport(self.arn), *props.extra_policy_statements]),
            # S3 refuses a policy while the public access block is still being written.
            depends_on=[self.public_access_block],
        )
        aws.s3_bucket_lifecycle_configuration.S3BucketLifecycleConfiguration(
            self, "lifecycle", bucket=bucket_id, rule=self._lifecycle_rules()
        )
        if props.access_logs:
            aws.s3_bucket_logging.S3BucketLoggingA(
                self,
                "access_logs",
                bucket=bucket_id,
                target_bucket=props.access_logs.target.name,
                target_prefix=props.access_logs.prefix,
                # S3 refuses the logging setting until the target's policy grants log delivery.
                depends_on=[props.access_logs.target.policy],
            )

    def _lifecycle_rules(self) -> list[S3.S3BucketLifecycleConfigurationRule]:
        p = self.props
        rules = [
            S3.S3BucketLifecycleConfigurationRule(
                id="expire-noncurrent-versions",
                status="Enabled",
                filter=[S3.S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                noncurrent_version_expiration=[
                    S3.S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(
                        noncurrent_days=p.noncurrent_version_days
                    )
                ],
                abort_incomplete_multipart_upload=[
                    S3.S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(
                        days_after_initiation=7
                    )
                ],
            )
        ]
        if p.expire_objects_days is not None:
            rules.append(
                S3.S3BucketLifecycleConfigurationRule(
                    id="expire-objects",
                    status="Enabled",
                    filter=[S3.S3BucketLifecycleConfigurationRuleFilter(prefix="")],
                    expiration=[
                        S3.S3BucketLifecycleConfigurationRuleExpiration(days=p.expire_objects_days)
                    ],
                )
            )
        return rules

    # Grants, so IAM is derived from the bucket rather than hand-copied.
    def read_statement(self, sid: str, prefix: str = "") -> Statement:
        return statement(
            sid,
            ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:GetBucketLocation"],
            [self.arn, f"{self.arn}/{prefix}*"],
        )

    def write_statement(self, sid: str, prefix: str = "") -> Statement:
        return statement(
            sid,
            ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject",
             "s3:ListBucket", "s3:GetBucketLocation", "s3:AbortMultipartUpload"],
            [self.arn, f"{self.arn}/{prefix}*"],
        )
