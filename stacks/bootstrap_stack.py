"""Bootstrap stack: the remote-state bucket of one AWS account, made before any other stack, and
the way GitHub Actions reaches the account's environments (OIDC provider, CI roles).

Run once per account (`mlops bootstrap ENV`). It keeps its own state locally (it creates the
bucket everything else keeps state in); the state file holds no secrets and can be committed to
a private ops repository or migrated into the bucket afterwards with `terraform init -migrate-state`.
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.binding import Construct, aws, cdktf
from stacks.config import Environment, S3State
from stacks.constructs.encryption_key import EncryptionKey, EncryptionKeyProps
from stacks.constructs.github_ci_roles import (
    GITHUB_AUDIENCE,
    GITHUB_OIDC_HOST,
    GITHUB_THUMBPRINTS,
    GithubCiRoles,
    GithubCiRolesProps,
)
from stacks.constructs.secure_bucket import AccessLogs, SecureBucket, SecureBucketProps
from stacks.naming import Naming
from stacks.platform_stack import StackPaths, environment_tags
from stacks.provider import configure_backend, configure_provider


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
        logs = SecureBucket(
            self,
            "state_access_logs",
            SecureBucketProps(
                name=f"{account.bucket}-logs",
                kms_key_arn=None,
                encryption="s3-managed",  # S3 cannot deliver access logs into an SSE-KMS bucket
                noncurrent_version_days=90,
                expire_objects_days=365,
                prevent_destroy=True,
            ),
        )
        self.state_bucket = SecureBucket(
            self,
            "state",
            SecureBucketProps(
                name=account.bucket,
                kms_key_arn=key.arn,
                noncurrent_version_days=90,  # old state versions are the undo button
                access_logs=AccessLogs(logs, "state/"),
                prevent_destroy=True,
            ),
        )
        cdktf.TerraformOutput(self, "state_bucket", value=self.state_bucket.name)
        cdktf.TerraformOutput(self, "state_key_arn", value=key.arn)
        self._ci_roles(account, key.arn)

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
