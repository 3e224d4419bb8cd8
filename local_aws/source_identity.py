"""STS source identity, which moto 5.2 ignores: AssumeRole's `SourceIdentity` kept with the session.

AWS ("Monitor and control actions taken with assumed roles", IAM User Guide): a caller (or the
identity provider) sets `SourceIdentity` when assuming a role; it sticks to the session, and a
session assumed from that session (role chaining) carries it on, unchangeable. AssumeRole answers
it (`SourceIdentity`), a trust policy sees it as `sts:SourceIdentity` (and must allow
`sts:SetSourceIdentity`), the session's requests as `aws:SourceIdentity`, and SageMaker records it
in a model package's `CreatedBy`/`LastModifiedBy.IamIdentity.SourceIdentity`: what the deploy
handler's four-eyes check compares in production (lambdas/shared/control/provenance.py).

Here: the session's source identity is kept on moto's session record (AssumedRole), inherited on
chaining, a different one on a chained session refused; the IAM enforcement reads it for its
condition keys (iam_enforcement.py), the registry for IamIdentity (moto_server.py).
"""

from __future__ import annotations

import re
from typing import Any

from moto.sts import responses as sts_responses
from moto.sts.exceptions import STSValidationError
from moto.sts.models import sts_backends

# AssumeRole's SourceIdentity (STS API reference): 2 to 64 of [\w+=,.@-].
PATTERN = re.compile(r"^[\w+=,.@-]{2,64}$")
ATTRIBUTE = "source_identity"


def of_session(account_id: str, partition: str, access_key_id: str | None) -> str | None:
    """The source identity of the session holding the access key; None for a session without
    one or a key that is no session's."""
    if not access_key_id:
        return None
    session = sts_backends[account_id][partition].get_assumed_role_from_access_key(access_key_id)
    return getattr(session, ATTRIBUTE, None) if session is not None else None


def requested(response: Any) -> str | None:
    """What an AssumeRole request's session will carry: the caller session's source identity
    (role chaining) or else the one the request sets. ValidationError for a malformed one or for
    a chained session told another one."""
    asked = response._get_param("SourceIdentity")
    if asked is not None and not PATTERN.match(asked):
        raise STSValidationError(f"SourceIdentity {asked!r} must be 2 to 64 of the characters "
                                 "[A-Za-z0-9_+=,.@-]")
    inherited = of_session(response.current_account, response.partition, response.get_access_key())
    if inherited and asked and asked != inherited:
        raise STSValidationError(f"the caller's session has the source identity {inherited!r}; a "
                                 f"chained session cannot set another ({asked!r})")
    return inherited or asked


def patch() -> None:
    original = sts_responses.TokenResponse.assume_role

    def assume_role(self: Any) -> Any:
        identity = requested(self)
        result = original(self)
        if identity:
            session = result.result["Credentials"]  # moto's AssumedRole
            setattr(session, ATTRIBUTE, identity)
            result.result["SourceIdentity"] = identity
        return result

    sts_responses.TokenResponse.assume_role = assume_role
