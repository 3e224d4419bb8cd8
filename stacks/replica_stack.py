"""The replica stack (`replica-<env>`): the replica side of an environment's cross-region
replication, in `replication.region` (its provider's only region).

Replica key (rotated) -> replica access-log bucket (SSE-S3, S3 delivers access logs only there;
it also receives the source access logs by replication) -> one replica bucket per replicated
platform bucket, with the SecureBucket defaults (versioned, SSE-KMS with the replica key, public
access blocked, ACLs off, TLS only, lifecycle, access logs) and the source's retention; the audit
replica under the same Object Lock. Deployed before the platform stack, whose replication rules
need the replica buckets to exist (mlops/deploy.py).
"""

from __future__ import annotations

from stacks.binding import Construct, cdktf
from stacks.config import Environment
from stacks.constructs.encryption_key import EncryptionKey, EncryptionKeyProps
from stacks.constructs.secure_bucket import (
    AccessLogs,
    ObjectLock,
    SecureBucket,
    SecureBucketProps,
    log_delivery_statement,
)
from stacks.platform_stack import StackPaths, environment_tags
from stacks.provider import configure_backend, configure_provider
from stacks.replication import (
    ACCESS_LOGS,
    LOCKED,
    REPLICA_LOG_PREFIX,
    REPLICATED,
    ReplicaNames,
    replica_stack_name,
)


class ReplicaStack(cdktf.TerraformStack):
    def __init__(self, scope: Construct, env: Environment, paths: StackPaths):
        names = ReplicaNames.of(env)
        if names is None:
            raise ValueError(f"{env.name} does not replicate (no `replication` in its file)")
        name = replica_stack_name(env.name)
        super().__init__(scope, name)
        self.names = names
        configure_provider(self, env, environment_tags(env, name), region=names.region)
        configure_backend(self, env, paths.stack_dir, paths.state_dir)
        protection, retention = env.data_protection, env.retention

        self.key = EncryptionKey(self, "replica_key", EncryptionKeyProps(
            alias=names.key_alias.removeprefix("alias/"),
            description=f"Encrypts the {env.name} MLOps replica buckets in {names.region}",
            account_id=env.account_id,
            region=names.region,
            deletion_window_days=7 if protection.force_destroy else 30,
            # Only S3 uses it here (through the replication role and the readers' own grants).
            allow_cloudwatch_logs=False,
            allow_cloudtrail=False,
            allow_alarm_notifications=False,
        ))
        common = {"noncurrent_version_days": retention.noncurrent_version_days,
                  "force_destroy": protection.force_destroy,
                  "prevent_destroy": protection.prevent_destroy}
        self.access_logs = SecureBucket(self, "access_logs", SecureBucketProps(
            name=names.bucket(ACCESS_LOGS),
            kms_key_arn=None,
            encryption="s3-managed",
            expire_objects_days=retention.audit_days,
            extra_policy_statements=(log_delivery_statement(names.bucket(ACCESS_LOGS),
                                                            env.account_id, names.naming.prefix),),
            **common,
        ))
        self.buckets = {ACCESS_LOGS: self.access_logs}
        for purpose in REPLICATED:
            if purpose == ACCESS_LOGS:
                continue
            self.buckets[purpose] = SecureBucket(self, purpose, SecureBucketProps(
                name=names.bucket(purpose),
                kms_key_arn=self.key.arn,
                # The source's: capture and audit expire, datasets and artifacts are kept.
                expire_objects_days={"capture": retention.capture_days,
                                     "audit": retention.audit_days}.get(purpose),
                access_logs=AccessLogs(self.access_logs, f"{REPLICA_LOG_PREFIX}/{purpose}/"),
                # S3 replicates each version's retention: the replica must be lockable, and keeps
                # a version as long as the source does even where one arrives without retention.
                object_lock=ObjectLock(env.audit_lock_mode, retention.audit_days)
                if purpose == LOCKED else None,
                **common,
            ))
        cdktf.TerraformOutput(self, "region", value=names.region)
        cdktf.TerraformOutput(self, "replica_kms_key_arn", value=self.key.arn)
        for purpose, bucket in self.buckets.items():
            cdktf.TerraformOutput(self, f"{purpose.replace('-', '_')}_replica_bucket",
                                  value=bucket.name)
