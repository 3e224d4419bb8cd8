"""S3 cross-region replication of a set of SecureBuckets into their replicas: one replication
configuration per source bucket and the role S3 replicates as.

Each rule replicates every new object version (SSE-KMS ones included, re-encrypted with the
replica key), its tags and its Object Lock retention. Delete markers are not replicated: the
replica is the copy that survives a mistaken or malicious delete in the source region (and S3
never replicates the deletion of a version, nor the delete markers of a lifecycle expiry: each
replica bucket expires by its own lifecycle rules).
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.binding import Construct, aws
from stacks.constructs.scoped_role import ScopedRole, ScopedRoleProps
from stacks.constructs.secure_bucket import SecureBucket
from stacks.replication import ReplicaNames, encrypted, replication_statements

R = aws.s3_bucket_replication_configuration


@dataclass(frozen=True)
class BucketReplicationProps:
    names: ReplicaNames
    # purpose -> the source bucket (stacks/replication.py REPLICATED, in that order)
    sources: dict[str, SecureBucket]
    source_key_arn: str
    role_path: str
    boundary_arn: str

    def __post_init__(self) -> None:
        for purpose, bucket in self.sources.items():
            if encrypted(purpose) != (bucket.props.encryption == "kms"):
                raise ValueError(f"bucket {bucket.name}: its encryption is not what replicating "
                                 f"{purpose} expects")


class BucketReplication(Construct):
    def __init__(self, scope: Construct, id_: str, props: BucketReplicationProps):
        super().__init__(scope, id_)
        self.names = names = props.names
        self.role = ScopedRole(self, "role", ScopedRoleProps(
            name=names.role_name,
            description=f"S3 replicates the environment's buckets into {names.region} as this role",
            path=props.role_path,
            boundary_arn=props.boundary_arn,
            statements=tuple(replication_statements(names, props.source_key_arn)),
            # The trust policy the S3 User Guide gives ("Setting up permissions for live
            # replication", step 2): no aws:SourceArn/SourceAccount condition, which it does not
            # document S3 sending when it assumes a replication role (a condition on a key S3
            # never sends would stop every replication). No confused deputy either way: a
            # replication configuration names a role its writer may pass (iam:PassRole), and only
            # this account's identities may pass this role.
            assumed_by_service="s3.amazonaws.com",
        ))
        self.configurations = {
            purpose: R.S3BucketReplicationConfigurationA(
                self, purpose.replace("-", "_"),
                bucket=source.bucket.id,
                role=self.role.arn,
                rule=[self._rule(purpose)],
                # S3 refuses a replication configuration on a bucket not yet versioned; and a
                # rule in force before its role may act fails each write of that window for good.
                depends_on=[source.versioning, self.role.policy],
            )
            for purpose, source in props.sources.items()
        }

    def _rule(self, purpose: str) -> R.S3BucketReplicationConfigurationRule:
        names = self.names
        kms = encrypted(purpose)
        return R.S3BucketReplicationConfigurationRule(
            id=f"replicate-to-{names.region}",
            status="Enabled",
            priority=1,
            filter=R.S3BucketReplicationConfigurationRuleFilter(prefix=""),
            delete_marker_replication=R.S3BucketReplicationConfigurationRuleDeleteMarkerReplication(
                status="Disabled"),
            source_selection_criteria=R.S3BucketReplicationConfigurationRuleSourceSelectionCriteria(
                sse_kms_encrypted_objects=R.S3BucketReplicationConfigurationRuleSourceSelectionCriteriaSseKmsEncryptedObjects(
                    status="Enabled")) if kms else None,
            destination=R.S3BucketReplicationConfigurationRuleDestination(
                bucket=names.bucket_arn(purpose),
                storage_class="STANDARD",
                encryption_configuration=R.S3BucketReplicationConfigurationRuleDestinationEncryptionConfiguration(
                    replica_kms_key_id=names.key_alias_arn) if kms else None,
            ),
        )
