"""AWS clients for an environment: the running local AWS for `local`, the standard credential
chain (AWS_PROFILE, ...) in the environment's region for every other one."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

from mlops.project import Project
from stacks.config import Environment

ClientFactory = Callable[[str], Any]
T = TypeVar("T")


def clients_for(checkout: Project, env: Environment) -> ClientFactory:
    """`factory("s3")` -> a boto3 client; LocalAwsError when the local AWS is not running."""
    if env.is_local:
        from mlops.deploy import Deployer

        return Deployer(checkout).local.require().client
    import boto3

    return boto3.session.Session(region_name=env.region).client


def reported(what: str, call: Callable[[], T]) -> T | None:
    """`call()`, or None once its failure is on stderr as one line: the local AWS not running,
    or an AWS error named with `what` (no traceback for a terminal user)."""
    from local_aws.lifecycle import LocalAwsError

    try:
        return call()
    except LocalAwsError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except Exception as exc:
        print(f"error: {what} failed: {exc}", file=sys.stderr)
    return None
