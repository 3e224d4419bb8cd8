"""AWS clients for an environment: the running local AWS for `local`, the standard credential
chain (AWS_PROFILE, ...) in the environment's region for every other one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlops.project import Project
from stacks.config import Environment

ClientFactory = Callable[[str], Any]


def clients_for(checkout: Project, env: Environment) -> ClientFactory:
    """`factory("s3")` -> a boto3 client; LocalAwsError when the local AWS is not running."""
    if env.is_local:
        from mlops.deploy import Deployer

        return Deployer(checkout).local.require().client
    import boto3

    return boto3.session.Session(region_name=env.region).client
