"""The AWS provider and state backend of a stack, per environment."""

from __future__ import annotations

import os
from pathlib import Path

from stacks import moto_gaps
from stacks.binding import Construct, aws, cdktf
from stacks.config import Environment, S3State

# The moto server's port is chosen when it starts, so the local stacks read the endpoint from a
# variable (written to terraform.tfvars.json by `mlops local up`), keeping the JSON port-free.
ENDPOINT_VARIABLE = "local_endpoint_url"
DEFAULT_LOCAL_ENDPOINT = "https://127.0.0.1:5000"
# The local AWS serves HTTPS with its own certificate (local_aws/tls.py): its path, per machine.
CA_BUNDLE_VARIABLE = "local_ca_bundle"


def configure_provider(stack: cdktf.TerraformStack, env: Environment, tags: dict[str, str],
                       region: str | None = None, alias: str | None = None) -> aws.provider.AwsProvider:
    """region: another region than the environment's (the replica stack's, in AWS only).
    alias: a second provider of the stack (the bootstrap stack's replica region, in AWS only);
    its resources name it (`in_provider`)."""
    default_tags = [aws.provider.AwsProviderDefaultTags(tags=tags)]
    if not env.is_local:
        return aws.provider.AwsProvider(
            stack,
            f"aws_{alias}" if alias else "aws",
            alias=alias,
            region=region or env.region,
            # Refuse to run against any other account: a wrong profile cannot touch prod.
            allowed_account_ids=[env.account_id],
            default_tags=default_tags,
        )
    if alias is not None:
        raise ValueError(f"{env.name}: the local AWS has one region ({env.region}): no second "
                         f"provider ({alias})")
    if region is not None and region != env.region:
        raise ValueError(f"{env.name}: the local AWS has one region ({env.region}), not {region}")
    endpoint = cdktf.TerraformVariable(
        stack,
        ENDPOINT_VARIABLE,
        type="string",
        default=DEFAULT_LOCAL_ENDPOINT,
        description="URL of the local AWS (moto server) on 127.0.0.1",
    )
    ca_bundle = cdktf.TerraformVariable(
        stack,
        CA_BUNDLE_VARIABLE,
        type="string",
        default="",
        description="Certificate of the local AWS (empty: the system's trust store)",
    )
    return aws.provider.AwsProvider(
        stack,
        "aws",
        region=env.region,
        default_tags=default_tags,
        custom_ca_bundle=ca_bundle.string_value,
        endpoints=[
            aws.provider.AwsProviderEndpoints(
                # The binding spells `lambda` as `lambda_` (a Python keyword).
                **{_py(service): endpoint.string_value for service in moto_gaps.SERVICES}
            )
        ],
        max_retries=moto_gaps.PROVIDER_MAX_RETRIES,
        assume_role=_account_access(env),
        **moto_gaps.PROVIDER_CREDENTIALS,
        **moto_gaps.PROVIDER_FLAGS,
    )


def in_provider(construct: Construct, provider: cdktf.TerraformProvider) -> None:
    """Every resource under `construct` is made by `provider` (a stack's second region): the
    constructs stay region-agnostic."""
    for child in construct.node.find_all():
        if isinstance(child, cdktf.TerraformResource):
            child.provider = provider


def _account_access(env: Environment) -> list[aws.provider.AwsProviderAssumeRole] | None:
    """A local environment in another account of the local AWS is deployed as a member account
    is: the deployer's session assumes the account's access role (stacks/moto_gaps.py)."""
    role_arn = moto_gaps.account_access_role(env.account_id)
    if role_arn is None:
        return None
    return [aws.provider.AwsProviderAssumeRole(role_arn=role_arn, session_name=f"mlops-deploy-{env.name}")]


def configure_backend(
    stack: cdktf.TerraformStack, env: Environment | None, stack_dir: Path, state_dir: Path
) -> None:
    """Local state under state_dir (outside cdktf.out, which a re-synth may wipe), or S3.

    env None means a bootstrap stack: it creates the state bucket, so it cannot keep its own
    state there."""
    name = stack.node.id
    if env is None or not isinstance(env.state, S3State):
        rel = os.path.relpath(state_dir / f"{name}.tfstate", stack_dir)
        cdktf.LocalBackend(stack, path=rel)
        return
    backend = cdktf.S3Backend(
        stack,
        bucket=env.state.bucket,
        key=f"{env.state.key_prefix}/{env.name}/{name}.tfstate",
        region=env.state_region,
        encrypt=True,
    )
    # Terraform >= 1.10 locks with a lock object next to the state; no DynamoDB table needed.
    # cdktf 0.21's S3Backend predates the setting, hence the override.
    backend.add_override("use_lockfile", True)


def _py(name: str) -> str:
    return f"{name}_" if name == "lambda" else name
