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

from stacks.binding import Construct, aws, cdktf
from stacks.constructs.scoped_role import ScopedRole, ScopedRoleProps
from stacks.constructs.secure_bucket import SecureBucket
from stacks.policy import Statement
from stacks.replication import ReplicaNames, encrypted, replication_statements

R = aws.s3_bucket_replication_configuration


@dataclass(frozen=True)
class Replica:
    """Where one source bucket replicates: the replica bucket's ARN, and the replica key (an ARN
    or a same-account alias ARN) for an SSE-KMS source; None for an SSE-S3 one (access logs)."""

    source: SecureBucket
    bucket_arn: str
    kms_key_id: str | None
    # The replica bucket's versioning where the same stack makes it: S3 refuses a rule into a
    # bucket that is not yet versioned (the platform's replicas are another stack's, made first).
    replica_versioning: cdktf.TerraformResource | None = None

    def __post_init__(self) -> None:
        if (self.kms_key_id is not None) != (self.source.props.encryption == "kms"):
            raise ValueError(f"bucket {self.source.name}: a replica key exactly for an SSE-KMS "
                             "source")


@dataclass(frozen=True)
class BucketReplicationProps:
    role_name: str
    role_description: str
    region: str  # the replica region
    replicas: dict[str, Replica]  # construct id -> the source and its replica
    statements: tuple[Statement, ...]  # stacks/replication.py live_replication_statements
    role_path: str
    # None only for a role made before the boundary exists (the bootstrap stack's).
    boundary_arn: str | None


def platform_replication(names: ReplicaNames, sources: dict[str, SecureBucket],
                         source_key_arn: str, role_path: str,
                         boundary_arn: str) -> BucketReplicationProps:
    """An environment's platform buckets (purpose -> source, stacks/replication.py REPLICATED)
    into the replica stack's buckets."""
    for purpose, bucket in sources.items():
        if encrypted(purpose) != (bucket.props.encryption == "kms"):
            raise ValueError(f"bucket {bucket.name}: its encryption is not what replicating "
                             f"{purpose} expects")
    return BucketReplicationProps(
        role_name=names.role_name,
        role_description=f"S3 replicates the environment's buckets into {names.region} as this role",
        region=names.region,
        replicas={purpose.replace("-", "_"): Replica(
            source, names.bucket_arn(purpose), names.key_alias_arn if encrypted(purpose) else None)
            for purpose, source in sources.items()},
        statements=tuple(replication_statements(names, source_key_arn)),
        role_path=role_path, boundary_arn=boundary_arn)


class BucketReplication(Construct):
    def __init__(self, scope: Construct, id_: str, props: BucketReplicationProps):
        super().__init__(scope, id_)
        self.props = props
        self.role = ScopedRole(self, "role", ScopedRoleProps(
            name=props.role_name,
            description=props.role_description,
            path=props.role_path,
            boundary_arn=props.boundary_arn,
            statements=props.statements,
            # The trust policy the S3 User Guide gives ("Setting up permissions for live
            # replication", step 2): no aws:SourceArn/SourceAccount condition, which it does not
            # document S3 sending when it assumes a replication role (a condition on a key S3
            # never sends would stop every replication). No confused deputy either way: a
            # replication configuration names a role its writer may pass (iam:PassRole), and only
            # this account's identities may pass this role.
            assumed_by_service="s3.amazonaws.com",
        ))
        self.configurations = {
            rid: R.S3BucketReplicationConfigurationA(
                self, rid,
                bucket=replica.source.bucket.id,
                role=self.role.arn,
                rule=[self._rule(replica)],
                # S3 refuses a replication configuration on a bucket not yet versioned; and a
                # rule in force before its role may act fails each write of that window for good.
                depends_on=[replica.source.versioning, self.role.policy,
                            *([replica.replica_versioning] if replica.replica_versioning else [])],
            )
            for rid, replica in props.replicas.items()
        }

    def _rule(self, replica: Replica) -> R.S3BucketReplicationConfigurationRule:
        kms = replica.kms_key_id is not None
        return R.S3BucketReplicationConfigurationRule(
            id=f"replicate-to-{self.props.region}",
            status="Enabled",
            priority=1,
            filter=R.S3BucketReplicationConfigurationRuleFilter(prefix=""),
            delete_marker_replication=R.S3BucketReplicationConfigurationRuleDeleteMarkerReplication(
                status="Disabled"),
            source_selection_criteria=R.S3BucketReplicationConfigurationRuleSourceSelectionCriteria(
                sse_kms_encrypted_objects=R.S3BucketReplicationConfigurationRuleSourceSelectionCriteriaSseKmsEncryptedObjects(
                    status="Enabled")) if kms else None,
            destination=R.S3BucketReplicationConfigurationRuleDestination(
                bucket=replica.bucket_arn,
                storage_class="STANDARD",
                encryption_configuration=R.S3BucketReplicationConfigurationRuleDestinationEncryptionConfiguration(
                    replica_kms_key_id=replica.kms_key_id) if kms else None,
            ),
        )
