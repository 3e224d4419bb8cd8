"""AWS clients for an environment: the running local AWS for a local one (in the environment's
account of it), the standard credential chain (AWS_PROFILE, ...) in the environment's region for
every other one."""

from __future__ import annotations

import getpass
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from mlops.project import Project
from stacks.config import Environment

ClientFactory = Callable[[str], Any]
T = TypeVar("T")


def clients_for(checkout: Project, env: Environment, persona: str | None = None) -> ClientFactory:
    """`factory("s3")` -> a boto3 client; LocalAwsError when the local AWS is not running.

    persona (`ml_engineer`, ...): locally, the clients call as a session of that persona's role,
    as its people would (what they register and approve is recorded as theirs). Elsewhere the
    credential chain is already someone's: run the command as that persona."""
    if env.is_local:
        from mlops.deploy import Deployer
        from stacks.naming import Naming

        server = Deployer(checkout).local.require()
        if persona is None:  # the deployer, in the environment's account of the local AWS
            return lambda service: server.account_client(service, env.account_id)
        return server.session_client_factory(Naming.of(env).persona_role_arn(persona), f"mlops-{persona}",
                                             source_identity=source_identity())
    import boto3

    return boto3.session.Session(region_name=env.region).client


def source_identity() -> str:
    r"""The person a local persona session stands for (its STS SourceIdentity, which the registry
    records and production's four eyes compare): MLOPS_SOURCE_IDENTITY, else the local user's
    name, made to fit SourceIdentity's [\w+=,.@-]{2,64}. In AWS the identity provider (or the
    person assuming the role) sets it."""
    name = os.environ.get("MLOPS_SOURCE_IDENTITY") or getpass.getuser()
    fitted = re.sub(r"[^\w+=,.@-]", "-", name)[:64]
    return fitted if len(fitted) >= 2 else f"{fitted}--"[:2]


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
