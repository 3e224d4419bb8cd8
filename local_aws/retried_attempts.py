"""A retried attempt of a request the local server already answered gets that answer again.

The AWS SDKs mark every attempt of one call: `amz-sdk-invocation-id` is the call's, and
`amz-sdk-request: attempt=N; max=M` counts the attempts. A client that did not get an answer
(the connection broke after the server had written it) sends the same request again as attempt
2. On a loaded 2-core machine the local server sometimes loses answers this way: once the AWS
provider's CreateEndpoint reached it twice, a second apart, both answered 200. SageMaker answers
a second CreateEndpoint with "Cannot create already existing endpoint", which would fail the
apply over a local transport glitch, where in AWS the first answer would have arrived.

So a completed 2xx answer to a request that can change something (not GET or HEAD) is kept,
keyed by invocation id, and a later attempt of the same invocation is answered with it. The
request is not run twice. Errors are not kept: the SDK retries a throttled or failed attempt to
have it run again. Nothing here changes what AWS would answer to distinct calls.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

KEPT = 4096  # answers kept, newest first out last: a retry follows its attempt within seconds
MAX_BODY = 1 << 20  # larger answers (none of a create or an update) are not kept
_ATTEMPT = re.compile(r"(?:^|;)\s*attempt=(\d+)")

WsgiApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class _Answer:
    status: str
    headers: list[tuple[str, str]]
    body: bytes


def attempt_of(environ: dict) -> int:
    """The attempt number the SDK sent (1 when it sent none)."""
    match = _ATTEMPT.search(environ.get("HTTP_AMZ_SDK_REQUEST", ""))
    return int(match.group(1)) if match else 1


class RetriedAttempts:
    """WSGI middleware around the local AWS's application."""

    def __init__(self, app: WsgiApp, kept: int = KEPT):
        self.app, self.kept = app, kept
        self._answers: OrderedDict[str, _Answer] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        invocation = environ.get("HTTP_AMZ_SDK_INVOCATION_ID")
        if not invocation or environ.get("REQUEST_METHOD", "GET") in ("GET", "HEAD"):
            return self.app(environ, start_response)
        if attempt_of(environ) > 1:
            with self._lock:
                answer = self._answers.get(invocation)
            if answer is not None:
                log.warning("attempt %d of %s %s (invocation %s, %s): answered again as the earlier "
                            "attempt was, which the client did not receive", attempt_of(environ),
                            environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), invocation,
                            environ.get("HTTP_X_AMZ_TARGET", "no X-Amz-Target"))
                start_response(answer.status, answer.headers)
                return [answer.body]
        seen: dict[str, Any] = {}

        def recording(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen.update(status=status, headers=list(headers))
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        chunks = self.app(environ, recording)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if str(seen.get("status", "")).startswith("2") and len(body) <= MAX_BODY:
            with self._lock:
                self._answers[invocation] = _Answer(seen["status"], seen["headers"], body)
                self._answers.move_to_end(invocation)
                while len(self._answers) > self.kept:
                    self._answers.popitem(last=False)
        return [body]
