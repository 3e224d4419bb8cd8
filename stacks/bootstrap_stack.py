"""Bootstrap stack: the remote-state bucket of one AWS account, made before any other stack, and
the way GitHub Actions reaches the account's environments (OIDC provider, CI roles). Where an
environment of the account replicates (`replication.region`), the state bucket and its access
logs replicate into that region too (a second provider, alias `replica`).

Run once per account (`mlops bootstrap ENV`). It keeps its own state locally (it creates the
bucket everything else keeps state in); the state file holds no secrets and can be committed to
a private ops repository or migrated into the bucket afterwards with `terraform init -migrate-state`.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.binding import Construct, aws, cdktf
from stacks.config import Environment, S3State
from stacks.constructs.bucket_replication import BucketReplication, BucketReplicationProps, Replica
from stacks.constructs.encryption_key import EncryptionKey, EncryptionKeyProps
from stacks.constructs.github_ci_roles import (
    GITHUB_AUDIENCE,
    GITHUB_OIDC_HOST,
    GITHUB_THUMBPRINTS,
    GithubCiRoles,
    GithubCiRolesProps,
)
from stacks.constructs.secure_bucket import (
    AccessLogs,
    SecureBucket,
    SecureBucketProps,
    log_delivery_statement,
)
from stacks.naming import Naming
from stacks.platform_stack import StackPaths, environment_tags
from stacks.provider import configure_backend, configure_provider, in_provider
from stacks.replication import (
    REPLICA_LOG_PREFIX,
    ReplicaKey,
    ReplicaPair,
    StateReplicaNames,
    live_replication_statements,
)

# The state replication role's path: outside every environment's role path, the only one a
# bounded role or the CI deploy role may change (the boundary, stacks/deployer_policy.py).
STATE_ROLE_PATH = "/bootstrap/"
# The state's settings, on both sides: old state versions are the undo button; access logs kept a
# year.
STATE_VERSION_DAYS = 90
STATE_LOG_DAYS = 365


@dataclass(frozen=True)
class StateAccount:
    """The environments that keep their state in one bucket of one account."""

    environments: tuple[Environment, ...]

    @property
    def name(self) -> str:
        return "bootstrap-" + "-".join(e.name for e in self.environments)

    @property
    def primary(self) -> Environment:
        return self.environments[0]

    @property
    def bucket(self) -> str:
        assert isinstance(self.primary.state, S3State)
        return self.primary.state.bucket

    @property
    def replica(self) -> StateReplicaNames | None:
        """Where the state replicates: the replica region of the account's environments that
        replicate; None where none does."""
        regions = sorted({e.replication.region for e in self.environments if e.replication})
        if len(regions) > 1:
            raise ValueError(f"{self.name}: its environments replicate into {regions}; the state "
                             "bucket replicates into one region")
        if not regions:
            return None
        if regions[0] == self.primary.state_region:
            raise ValueError(f"{self.name}: the state bucket is in {regions[0]} already: "
                             "cross-region replication needs another region")
        return StateReplicaNames(self.bucket, regions[0])


def state_accounts(envs: list[Environment]) -> list[StateAccount]:
    groups: dict[tuple[str, str], list[Environment]] = {}
    for env in envs:
        if isinstance(env.state, S3State):
            groups.setdefault((env.account_id, env.state.bucket), []).append(env)
    return [StateAccount(tuple(g)) for g in groups.values()]


class BootstrapStack(cdktf.TerraformStack):
    def __init__(self, scope: Construct, account: StateAccount, paths: StackPaths):
        super().__init__(scope, account.name)
        env = account.primary
        configure_provider(self, env, environment_tags(env, account.name))
        configure_backend(self, None, paths.stack_dir, paths.state_dir)
        key = EncryptionKey(
            self,
            "state_key",
            EncryptionKeyProps(
                alias=f"{account.bucket}-key",
                description="Encrypts Terraform state of the MLOps platform",
                account_id=env.account_id,
                region=env.state_region,
                allow_cloudwatch_logs=False,
                allow_cloudtrail=False,
                allow_alarm_notifications=False,
            ),
        )
        logs_name = f"{account.bucket}-logs"
        logs = SecureBucket(
            self,
            "state_access_logs",
            SecureBucketProps(
                name=logs_name,
                kms_key_arn=None,
                encryption="s3-managed",  # S3 cannot deliver access logs into an SSE-KMS bucket
                noncurrent_version_days=STATE_VERSION_DAYS,
                expire_objects_days=STATE_LOG_DAYS,
                prevent_destroy=True,
                # With ACLs off (BucketOwnerEnforced) S3 delivers access logs only where the
                # bucket policy grants its logging service.
                extra_policy_statements=(log_delivery_statement(
                    logs_name, env.account_id, source_bucket=account.bucket),),
            ),
        )
        self.state_bucket = SecureBucket(
            self,
            "state",
            SecureBucketProps(
                name=account.bucket,
                kms_key_arn=key.arn,
                noncurrent_version_days=STATE_VERSION_DAYS,
                access_logs=AccessLogs(logs, "state/"),
                prevent_destroy=True,
            ),
        )
        cdktf.TerraformOutput(self, "state_bucket", value=self.state_bucket.name)
        cdktf.TerraformOutput(self, "state_key_arn", value=key.arn)
        self.replication: BucketReplication | None = None
        if account.replica is not None:
            self._replicate_state(account, account.replica, key, logs)
        self._ci_roles(account, key.arn)

    def _replicate_state(self, account: StateAccount, names: StateReplicaNames,
                         key: EncryptionKey, logs: SecureBucket) -> None:
        """The state bucket and its access logs, replicated into the replica region: a lost region
        keeps every stack's state and who read it. The replica side (key, buckets) is made by the
        `replica` provider, with the state's settings; the rules and the role by the default one.
        The role carries no permissions boundary: the boundary is the platform stack's, made after
        this stack (as the CI roles, it is an administrator's, out of every bounded role's reach)."""
        env = account.primary
        provider = configure_provider(self, env, environment_tags(env, account.name),
                                      region=names.region, alias="replica")
        side = Construct(self, "state_replica")
        replica_key = EncryptionKey(side, "key", EncryptionKeyProps(
            alias=names.key_alias,
            description=f"Encrypts the replica of the MLOps platform's Terraform state in {names.region}",
            account_id=env.account_id,
            region=names.region,
            allow_cloudwatch_logs=False,
            allow_cloudtrail=False,
            allow_alarm_notifications=False,
        ))
        replica_logs = SecureBucket(side, "access_logs", SecureBucketProps(
            name=names.access_logs,
            kms_key_arn=None,
            encryption="s3-managed",  # S3 delivers access logs only into SSE-S3 buckets
            noncurrent_version_days=STATE_VERSION_DAYS,
            expire_objects_days=STATE_LOG_DAYS,
            prevent_destroy=True,
            # The replica's own logs (S3 log delivery); the state's arrive by replication.
            extra_policy_statements=(log_delivery_statement(names.access_logs, env.account_id,
                                                            source_bucket=names.bucket),),
        ))
        replica = SecureBucket(side, "state", SecureBucketProps(
            name=names.bucket,
            kms_key_arn=replica_key.arn,
            noncurrent_version_days=STATE_VERSION_DAYS,
            access_logs=AccessLogs(replica_logs, f"{REPLICA_LOG_PREFIX}/state/"),
            prevent_destroy=True,
        ))
        in_provider(side, provider)
        pairs = [ReplicaPair(self.state_bucket.arn, replica.arn, encrypted=True),
                 ReplicaPair(logs.arn, replica_logs.arn, encrypted=False)]
        self.replication = BucketReplication(self, "state_replication", BucketReplicationProps(
            role_name=Naming.of(env).name("state-replication"),
            role_description=f"S3 replicates the Terraform state bucket and its access logs into "
                             f"{names.region} as this role",
            region=names.region,
            replicas={"state": Replica(self.state_bucket, replica.arn, replica_key.arn,
                                       replica.versioning),
                      "state_access_logs": Replica(logs, replica_logs.arn, None,
                                                   replica_logs.versioning)},
            statements=tuple(live_replication_statements(
                pairs, env.state_region, key.arn, ReplicaKey(replica_key.arn, names.region))),
            role_path=STATE_ROLE_PATH,
            boundary_arn=None,
        ))
        cdktf.TerraformOutput(self, "state_replica_bucket", value=replica.name)
        cdktf.TerraformOutput(self, "state_replica_key_arn", value=replica_key.arn)

    def _ci_roles(self, account: StateAccount, state_key_arn: str) -> None:
        """GitHub Actions' OIDC provider (one per account, so here) and each environment's CI
        roles, for the environments whose config names their repository."""
        reached = [e for e in account.environments if e.ci is not None]
        if not reached:
            return
        existing = next((e.ci.existing_oidc_provider_arn for e in reached
                         if e.ci is not None and e.ci.existing_oidc_provider_arn), None)
        if existing is None:
            existing = aws.iam_openid_connect_provider.IamOpenidConnectProvider(
                self, "github_oidc", url=f"https://{GITHUB_OIDC_HOST}", client_id_list=[GITHUB_AUDIENCE],
                thumbprint_list=list(GITHUB_THUMBPRINTS)).arn
        for env in reached:
            assert env.ci is not None and isinstance(env.state, S3State)
            roles = GithubCiRoles(self, f"ci_{env.name}", GithubCiRolesProps(
                naming=Naming.of(env), environment=env.name, repository=env.ci.github_repository,
                provider_arn=existing, state_bucket=account.bucket,
                state_key_prefix=env.state.key_prefix, state_key_arn=state_key_arn))
            cdktf.TerraformOutput(self, f"{env.name}_plan_role_arn", value=roles.plan.arn)
            cdktf.TerraformOutput(self, f"{env.name}_deploy_role_arn", value=roles.deploy.arn)
