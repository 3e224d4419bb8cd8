"""Role sessions: code that runs in AWS as a session of a role runs locally as one too.

In AWS a Lambda function calls with its role's credentials (a session named after the function)
and a SageMaker job with its RoleArn's (a session named "SageMaker"), so what they do is recorded
under that session: a model package's CreatedBy and LastModifiedBy, which the deploy handler
checks before it serves a package (lambdas/shared/control/provenance.py). Locally each gets STS
AssumeRole credentials from the local AWS, renewed well before they expire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

SESSION_SECONDS = 3600
RENEW_AFTER_SECONDS = 45 * 60
# What SageMaker names the session of a job's execution role.
SAGEMAKER_SESSION = "SageMaker"


class RoleSessions:
    """Credentials of sessions of roles, one per (role, session name), from STS AssumeRole.

    sts: makes an STS client of the local AWS (called when a session is first needed)."""

    def __init__(self, sts: Callable[[], Any], clock: Callable[[], float] = time.monotonic):
        self._sts, self._clock = sts, clock
        self._sessions: dict[tuple[str, str, str | None], tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def credentials(self, role_arn: str, session_name: str,
                    source_identity: str | None = None) -> dict[str, str]:
        """The session's AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.

        source_identity: the person behind a person's session (STS SourceIdentity), which the
        services it calls record with its identity; a workload's session has none."""
        key = (role_arn, session_name[:64], source_identity)
        with self._lock:
            issued = self._sessions.get(key)
            if issued is None or self._clock() - issued[0] > RENEW_AFTER_SECONDS:
                person = {"SourceIdentity": source_identity} if source_identity else {}
                answer = self._sts().assume_role(RoleArn=role_arn, RoleSessionName=key[1],
                                                 DurationSeconds=SESSION_SECONDS, **person)["Credentials"]
                issued = self._clock(), {"AWS_ACCESS_KEY_ID": answer["AccessKeyId"],
                                         "AWS_SECRET_ACCESS_KEY": answer["SecretAccessKey"],
                                         "AWS_SESSION_TOKEN": answer["SessionToken"]}
                self._sessions[key] = issued
            return dict(issued[1])
