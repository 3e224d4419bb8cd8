"""A retried attempt of a call the local server answered, or is answering, gets that answer.

The AWS SDKs mark every attempt of one call: `amz-sdk-invocation-id` is the call's, and
`amz-sdk-request: attempt=N; max=M` counts the attempts. A client that did not get an answer in
time (a slow answer past the client's timeout, or a connection that broke after the server had
written it) sends the same request again as attempt 2. On a loaded 2-core machine the local
server meets both: once the AWS provider's CreateEndpoint reached it twice, a second apart, both
answered 200. SageMaker answers a second CreateEndpoint with "Cannot create already existing
endpoint", which would fail the apply over a local slowness, where in AWS the first answer would
have arrived in time.

So a 2xx answer to a request other than GET or HEAD is kept, keyed by invocation id, and a later
attempt of the same invocation is answered with it; an attempt that arrives while an earlier one
is still running waits for it (up to WAIT_S) instead of running the call a second time. The JSON
and query APIs send their reads as POST too (DescribeEndpoint, ReceiveMessage): those are kept
alike, and replaying a read the client missed is what it asked for. Errors are not kept: the SDK
retries a throttled or failed attempt to have it run again. Distinct calls are never affected.
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

KEPT = 4096  # answers kept, oldest out first: a retry follows its attempt within seconds
KEPT_BYTES = 64 << 20  # and at most this much of them
MAX_BODY = 256 << 10  # larger answers (none of a create or an update) are not kept
WAIT_S = 60.0  # an attempt waits this long for an earlier one still running, then runs itself
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

    def __init__(self, app: WsgiApp, kept: int = KEPT, kept_bytes: int = KEPT_BYTES, wait_s: float = WAIT_S):
        self.app, self.kept, self.kept_bytes, self.wait_s = app, kept, kept_bytes, wait_s
        self._answers: OrderedDict[str, _Answer] = OrderedDict()
        self._bytes = 0
        self._running: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        invocation = environ.get("HTTP_AMZ_SDK_INVOCATION_ID")
        if not invocation or environ.get("REQUEST_METHOD", "GET") in ("GET", "HEAD"):
            return self.app(environ, start_response)
        attempt = attempt_of(environ)
        if attempt > 1:
            answer = self._earlier_answer(invocation)
            if answer is not None:
                log.warning("attempt %d of %s %s (invocation %s, %s): answered as the earlier attempt "
                            "was, which the client did not receive", attempt,
                            environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), invocation,
                            environ.get("HTTP_X_AMZ_TARGET", "no X-Amz-Target"))
                start_response(answer.status, list(answer.headers))
                return [answer.body]
        done = threading.Event()
        with self._lock:
            mine = self._running.setdefault(invocation, done) is done
        try:
            return [self._run(invocation, environ, start_response)]
        finally:
            if mine:
                with self._lock:
                    del self._running[invocation]
            done.set()

    def _earlier_answer(self, invocation: str) -> _Answer | None:
        with self._lock:
            running = self._running.get(invocation)
        if running is not None:
            running.wait(self.wait_s)
        with self._lock:
            return self._answers.get(invocation)

    def _run(self, invocation: str, environ: dict, start_response: Callable[..., Any]) -> bytes:
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
            self._keep(invocation, _Answer(seen["status"], seen["headers"], body))
        return body

    def _keep(self, invocation: str, answer: _Answer) -> None:
        with self._lock:
            old = self._answers.pop(invocation, None)
            self._bytes += len(answer.body) - (len(old.body) if old else 0)
            self._answers[invocation] = answer
            while len(self._answers) > self.kept or self._bytes > self.kept_bytes:
                _, dropped = self._answers.popitem(last=False)
                self._bytes -= len(dropped.body)
