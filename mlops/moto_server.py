"""The local AWS server: moto's own server, with the gaps that need code inside it closed.

Run as `python -m mlops.moto_server [moto.server's arguments]`. Listed in stacks/moto_gaps.py.

moto 5.2 evaluates bucket-policy conditions wrongly for object requests, which makes every
platform bucket (TLS-only policy: Deny s3:* when aws:SecureTransport is false) refuse every
object read and write, over HTTP and HTTPS alike:
- it does not know the `Bool` condition operator and treats an unknown operator as satisfied;
- it gives the policy no request context (aws:SecureTransport is never set);
- a statement whose condition does not hold counts as an explicit Deny instead of not applying.
Here `Bool` is added, aws:SecureTransport is set from the request's scheme, and a statement whose
condition does not hold is neutral, as in AWS. The TLS-only policy then does what it does in AWS:
the local AWS serves HTTPS (mlops/local_tls.py), and a plain-HTTP object request is refused.
"""

from __future__ import annotations

import contextvars
import sys
from typing import Any

from moto import server as moto_server
from moto.iam import access_control, policy_conditions
from moto.s3 import models as s3_models

_secure_transport: contextvars.ContextVar[str] = contextvars.ContextVar("secure_transport",
                                                                         default="false")


def _bool_equals(expected: list[str] | str, actual: str) -> bool:
    values = [expected] if isinstance(expected, str | bool) else expected
    return any(str(v).lower() == str(actual).lower() for v in values)


def _statement_applies_only_when_its_condition_holds() -> None:
    original = access_control.IAMPolicyStatement.is_action_permitted

    def is_action_permitted(self, action: str, resource: str = "*", principal: str | None = None,
                            incoming_condition_values: dict[str, str] | None = None):
        if self._statement.get("Condition") and not self._check_conditions(incoming_condition_values):
            return access_control.PermissionResult.NEUTRAL
        return original(self, action, resource, principal, incoming_condition_values)

    access_control.IAMPolicyStatement.is_action_permitted = is_action_permitted


def _bucket_policy_sees_the_transport() -> None:
    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return access_control.PermissionResult.NEUTRAL
        policy = access_control.IAMPolicy(self.policy.decode())
        return policy.is_action_permitted(
            action, resource, incoming_condition_values={"aws:SecureTransport": _secure_transport.get()}
        )

    s3_models.FakeBucket.get_permission = get_permission


class _TransportAwareApp(moto_server.DomainDispatcherApplication):
    def __call__(self, environ: dict, start_response: Any) -> Any:
        https = environ.get("wsgi.url_scheme") == "https"
        token = _secure_transport.set("true" if https else "false")
        try:
            return super().__call__(environ, start_response)
        finally:
            _secure_transport.reset(token)


def patch() -> None:
    policy_conditions.CONDITION_OPERATIONS["Bool"] = _bool_equals
    _statement_applies_only_when_its_condition_holds()
    _bucket_policy_sees_the_transport()
    moto_server.DomainDispatcherApplication = _TransportAwareApp


def main(argv: list[str] | None = None) -> None:
    patch()
    moto_server.main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
