"""The environment's AWS Signer profile, asked about before a deploy and named after a destroy.

`mlops destroy` cancels the profile: Terraform deletes an `aws_signer_signing_profile` with
CancelSigningProfile, the only way Signer has. AWS keeps a canceled (or revoked) profile, its name
included, for the signature validity period plus six months (the Signer Developer Guide's "Data
retention"), so a platform stack that asks for the same name again would fail in the middle of
its apply. The deploy asks Signer first and refuses with the one setting that fixes it: the next
`lambda_signing_profile_generation`, which gives the profile a new name (stacks/naming.py).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from stacks.config import Environment
from stacks.naming import Naming

# The statuses of a profile that can sign no more (Signer's SigningProfileStatus: Active,
# Canceled, Revoked).
UNUSABLE = ("Canceled", "Revoked")


class SigningProfileError(RuntimeError):
    """The environment's profile name is held by a profile that can no longer sign."""


def unusable_status(signer: Any, name: str) -> str | None:
    """The status of the profile `name` when it exists and cannot sign, else None (Active, or no
    such profile: the platform stack makes it)."""
    try:
        described = signer.get_signing_profile(profileName=name)
    except ClientError as err:
        error = err.response.get("Error", {})
        if error.get("Code") == "ResourceNotFoundException":
            return None
        raise SigningProfileError(f"AWS Signer could not describe the signing profile {name}: "
                                  f"{error.get('Code')}: {error.get('Message')}") from None
    except BotoCoreError as err:
        raise SigningProfileError(f"AWS Signer could not be asked about {name}: {err}") from None
    status = described.get("status")
    return status if status in UNUSABLE else None


def _next_generation(env: Environment) -> str:
    """The one change that frees the environment from its canceled profile's name."""
    return (f"set lambda_signing_profile_generation: {env.lambda_signing_profile_generation + 1} "
            f"in environments/{env.name}.yaml")


def refusal(env: Environment, status: str) -> str:
    name = Naming.of(env).signing_profile
    return (f"the Lambda signing profile {name} of {env.name} is {status} (`mlops destroy {env.name}` "
            f"cancels it) and AWS keeps its name for years: {_next_generation(env)}, then deploy "
            "again (the functions are signed anew by the new profile)")


def require_usable(env: Environment, signer: Any) -> None:
    """Raises SigningProfileError when the environment signs its Lambda code and its profile's
    name is taken by a canceled or revoked profile."""
    if not env.lambda_code_signing:
        return
    status = unusable_status(signer, Naming.of(env).signing_profile)
    if status is not None:
        raise SigningProfileError(refusal(env, status))


def plan_warning(env: Environment, signer: Any) -> str | None:
    """What `mlops plan` says instead of refusing: a plan only reads, and its identity (the CI
    plan role) may not be allowed to ask Signer; None when the apply would find the name free."""
    try:
        require_usable(env, signer)
    except SigningProfileError as err:
        return f"an apply would be refused: {err}"
    return None


def after_destroy(env: Environment) -> str | None:
    """What a person must know once the platform stack is destroyed, None when nothing."""
    if not env.lambda_code_signing:
        return None
    return (f"the Lambda signing profile {Naming.of(env).signing_profile} is now Canceled and AWS keeps "
            f"its name: before deploying {env.name} again, {_next_generation(env)}")
