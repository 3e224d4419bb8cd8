"""Cross-region replication of an environment's buckets (`replication.region` in its file): the
names of the replica side and the replication role's least-privilege statements (AWS S3 guide,
"Setting up permissions for live replication" and "Replicating encrypted objects").

Light (no cdktf): the replica stack makes the replica key and buckets under these names, the
platform stack the rules and the role, the permissions boundary and the deployer policy scope by
them, so every side agrees without a cross-stack reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stacks.config import Environment
from stacks.naming import Naming
from stacks.personas import AUDIT_OBJECT_CHANGES
from stacks.policy import Statement, statement

# The platform's buckets whose data matters, by purpose (the bucket is Naming.bucket(purpose)):
# every one of them, so a lost region loses nothing written since replication began (objects
# written before the rules replicate only by a one-off S3 Batch Replication job: README). The server access
# logs replicate into the replica region's own access-log bucket, which also takes the replica
# buckets' access logs (under REPLICA_LOG_PREFIX).
REPLICATED = ("datasets", "artifacts", "capture", "audit", "access-logs")
ACCESS_LOGS = "access-logs"
# The one replicated bucket under S3 Object Lock: its replica locks as it does, and the role reads
# each version's retention and legal hold (S3 replicates both).
LOCKED = "audit"
# Where the replica buckets' own server access logs land in the replica access-log bucket, apart
# from the replicated source logs (whose keys start with the source purpose).
REPLICA_LOG_PREFIX = "replica"


@dataclass(frozen=True)
class ReplicaNames:
    """The replica side of an environment: names and ARN patterns, derived from its prefix."""

    naming: Naming
    region: str

    @classmethod
    def of(cls, env: Environment) -> ReplicaNames | None:
        """None where the environment does not replicate (`replication` unset)."""
        if env.replication is None:
            return None
        return cls(Naming.of(env), env.replication.region)

    def bucket(self, purpose: str) -> str:
        """The replica of the platform bucket `purpose` (inside the environment's prefix, so the
        boundary's and the deployer's bucket scopes cover it)."""
        return self.naming.bucket(f"{purpose}-replica")

    def bucket_arn(self, purpose: str) -> str:
        return f"arn:aws:s3:::{self.bucket(purpose)}"

    @property
    def key_alias(self) -> str:
        return f"alias/{self.naming.name('replica')}"

    @property
    def key_alias_arn(self) -> str:
        """What the replication rules name as the replica key: its ARN is made in the replica
        stack, and S3 takes a key's alias ARN (EncryptionConfiguration.ReplicaKmsKeyID; the alias
        resolves in this same account)."""
        return f"arn:aws:kms:{self.region}:{self.naming.account_id}:{self.key_alias}"

    @property
    def keys_arn_pattern(self) -> str:
        """Every key of the replica region: IAM scopes key use by ARN, unknown until the key
        exists, so a statement on it is narrowed to the replica key by its alias
        (`key_condition`)."""
        return f"arn:aws:kms:{self.region}:{self.naming.account_id}:key/*"

    @property
    def key_condition(self) -> dict[str, dict[str, str]]:
        return {"ForAnyValue:StringEquals": {"kms:ResourceAliases": self.key_alias}}

    @property
    def role_name(self) -> str:
        return self.naming.name("replication")


@dataclass(frozen=True)
class StateReplicaNames:
    """The replica side of an account's Terraform state bucket (the bootstrap stack's), in the
    replica region of the account's environments."""

    state_bucket: str
    region: str

    @property
    def bucket(self) -> str:
        return f"{self.state_bucket}-replica"

    @property
    def access_logs(self) -> str:
        """Receives the state's access logs by replication and the replica's own (under
        REPLICA_LOG_PREFIX)."""
        return state_replica_logs(self.state_bucket)

    @property
    def key_alias(self) -> str:  # without "alias/"
        return f"{self.state_bucket}-replica-key"


def state_replica_logs(state_bucket: str) -> str:
    return f"{state_bucket}-replica-logs"


def replica_stack_name(env_name: str) -> str:
    return f"replica-{env_name}"


def encrypted(purpose: str) -> bool:
    """SSE-KMS (every bucket but the access logs, which S3 delivers only into SSE-S3 buckets)."""
    return purpose != ACCESS_LOGS


def _context(bucket_arns: list[str]) -> list[str]:
    # With an S3 Bucket Key (every KMS bucket here) the encryption context is the bucket's ARN;
    # objects written before it was enabled carry their own ARN.
    return [arn for b in bucket_arns for arn in (b, f"{b}/*")]


@dataclass(frozen=True)
class ReplicaPair:
    """One source bucket and its replica, by ARN. encrypted: SSE-KMS (else SSE-S3, no key)."""

    source_arn: str
    replica_arn: str
    encrypted: bool
    locked: bool = False  # under S3 Object Lock: its retention and legal hold replicate too


@dataclass(frozen=True)
class ReplicaKey:
    """The replica key as IAM names it: its ARN (or a pattern, narrowed by `conditions`)."""

    arn: str
    region: str
    conditions: dict[str, dict[str, str]] = field(default_factory=dict)


def live_replication_statements(pairs: list[ReplicaPair], source_region: str,
                                source_key_arn: str, replica_key: ReplicaKey) -> list[Statement]:
    """A replication role's permissions, and nothing more: read what to replicate from the
    sources (versions, their ACLs, tags and, where locked, Object Lock state), write replicas and
    their tags into the replica buckets, decrypt with the source key and encrypt with the replica
    key, each only through S3 in its region and only for these buckets. No s3:ReplicateDelete:
    the rules do not replicate delete markers (stacks/constructs/bucket_replication.py)."""
    sources = [p.source_arn for p in pairs]
    locked = [f"{p.source_arn}/*" for p in pairs if p.locked]
    return [
        statement("ReadReplicationSources", ["s3:GetReplicationConfiguration", "s3:ListBucket"],
                  sources),
        statement("ReadSourceVersions",
                  ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl",
                   "s3:GetObjectVersionTagging"],
                  [f"{s}/*" for s in sources]),
        *([statement("ReadSourceObjectLock", ["s3:GetObjectRetention", "s3:GetObjectLegalHold"],
                     locked)] if locked else []),
        statement("WriteReplicas", ["s3:ReplicateObject", "s3:ReplicateTags"],
                  [f"{p.replica_arn}/*" for p in pairs]),
        statement("DecryptSources", ["kms:Decrypt"], [source_key_arn], conditions={
            "StringEquals": {"kms:ViaService": f"s3.{source_region}.amazonaws.com"},
            "StringLike": {"kms:EncryptionContext:aws:s3:arn":
                           _context([p.source_arn for p in pairs if p.encrypted])},
        }),
        # A replica bucket with a Bucket Key asks KMS for a data key (GenerateDataKey) and checks
        # the bucket key with Decrypt (S3 guide, "Replicating encrypted objects": S3 Bucket Keys
        # and replication); one without encrypts each object's key (Encrypt).
        statement("EncryptReplicas", ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                  [replica_key.arn], conditions={
                      "StringEquals": {"kms:ViaService": f"s3.{replica_key.region}.amazonaws.com"},
                      "StringLike": {"kms:EncryptionContext:aws:s3:arn":
                                     _context([p.replica_arn for p in pairs if p.encrypted])},
                      **replica_key.conditions,
                  }),
    ]


def replication_statements(names: ReplicaNames, source_key_arn: str) -> list[Statement]:
    """The platform's replication role: every REPLICATED bucket into its replica, the replica
    key named by its alias (made in the replica stack)."""
    n = names.naming
    pairs = [ReplicaPair(f"arn:aws:s3:::{n.bucket(p)}", names.bucket_arn(p), encrypted(p),
                         locked=p == LOCKED) for p in REPLICATED]
    return live_replication_statements(
        pairs, n.region, source_key_arn,
        ReplicaKey(names.keys_arn_pattern, names.region, names.key_condition))


def boundary_statements(names: ReplicaNames | None) -> list[Statement]:
    """The permissions boundary's allowance for the replica key (its own key statement names the
    platform key only); the replica buckets are inside its bucket scope by name already."""
    if names is None:
        return []
    replicas = [names.bucket_arn(p) for p in REPLICATED]
    return [statement("AllowReplicaKeyUse",
                      ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                      [names.keys_arn_pattern], conditions=names.key_condition),
            # The replicas are the copy that survives a mistaken or malicious change in the
            # region: no bounded role (a persona included) writes, deletes, unlocks or loosens
            # them (the audit evidence's list of such changes). S3 writes them with
            # s3:ReplicateObject, which stays allowed.
            statement("DenyReplicaChanges", ["s3:PutObject", *AUDIT_OBJECT_CHANGES],
                      [*replicas, *(f"{r}/*" for r in replicas)], effect="Deny")]
