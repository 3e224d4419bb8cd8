"""Waiting for an endpoint to finish what SageMaker is doing to it (Creating, Updating), with a
line of progress per status change: commands that deploy return only once the update is done."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

SETTLING = ("Creating", "Updating", "SystemUpdating", "RollingBack")


class EndpointWaitError(RuntimeError):
    pass


def wait_until_settled(sagemaker: Any, name: str, *, timeout_s: float = 600.0, poll_s: float = 0.5,
                       report: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """DescribeEndpoint once the endpoint is no longer changing (InService, Failed, ...)."""
    deadline, last = time.monotonic() + timeout_s, None
    while True:
        described = sagemaker.describe_endpoint(EndpointName=name)
        status = described["EndpointStatus"]
        if status != last:
            pending = (described.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
            report(f"endpoint {name}: {status} (serving {described.get('EndpointConfigName')}"
                   + (f", deploying {pending})" if pending else ")"))
            last = status
        if status not in SETTLING:
            return described
        if time.monotonic() > deadline:
            raise EndpointWaitError(f"endpoint {name} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)
