"""The WSGI application: /ping and /invocations, as SageMaker calls a serving container.

Plain WSGI rather than a web framework: a one-row request spends its time in the model, not in
routing (the serving benchmark's target is at most 1 ms over the in-process path).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from .handler import InferenceHandler
from .settings import MAX_PAYLOAD_BYTES, Faults

INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"
_INFERENCE_ID_ENV = "HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID"
log = logging.getLogger("model_server")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            406: "Not Acceptable", 411: "Length Required", 413: "Payload Too Large",
            415: "Unsupported Media Type", 500: "Internal Server Error"}


class FaultInjector:
    """Every n-th request fails so that the share is exact per worker (see settings.Faults)."""

    def __init__(self, faults: Faults):
        self.faults = faults
        self.seen = 0

    def before_request(self) -> bool:
        """Sleeps the injected latency; True when this request is to fail."""
        if self.faults.latency_ms:
            time.sleep(self.faults.latency_ms / 1000)
        if not self.faults.error_percent:
            return False
        # In hundredths of a percent, whole numbers: 29% is exactly 29 of every 100 requests.
        share = round(self.faults.error_percent * 100)
        before, self.seen = self.seen, self.seen + 1
        return self.seen * share // 10_000 > before * share // 10_000


class ModelApp:
    def __init__(self, handler: InferenceHandler, faults: Faults | None = None):
        self.handler = handler
        self.faults = FaultInjector(faults or Faults())

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/ping":
            if method not in ("GET", "HEAD"):
                return _reply(start_response, 405, "use GET /ping")
            return _reply(start_response, 200, b"", content_type=None)
        if path == "/invocations":
            if method != "POST":
                return _reply(start_response, 405, "use POST /invocations")
            return self._invoke(environ, start_response)
        return _reply(start_response, 404, f"no route {path!r}: the container serves /ping and /invocations")

    def _invoke(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        inference_id = environ.get(_INFERENCE_ID_ENV)
        extra = [(INFERENCE_ID, inference_id)] if inference_id else []
        raw_length = environ.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            return _reply(start_response, 400, f"Content-Length {raw_length!r} is not a number", extra)
        if length > MAX_PAYLOAD_BYTES:
            return _reply(start_response, 413, f"payload of {length} bytes is over the "
                                               f"{MAX_PAYLOAD_BYTES} bytes SageMaker accepts", extra)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        if self.faults.before_request():
            log.warning("injected fault (%s), inference id %s", self.faults.faults.describe(), inference_id)
            return _reply(start_response, 500, f"injected fault ({self.faults.faults.describe()})", extra)
        try:
            output, content_type = self.handler(body, environ.get("CONTENT_TYPE"), environ.get("HTTP_ACCEPT"))
        except self.handler.bad_request as exc:
            return _reply(start_response, self.handler.status_of(exc), _one_line(exc), extra)
        except Exception as exc:
            log.exception("inference failed, inference id %s", inference_id)
            return _reply(start_response, 500, f"model error: {type(exc).__name__}: {_one_line(exc)}", extra)
        return _reply(start_response, 200, output, extra, content_type=content_type)


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text[:1000] or type(error).__name__


def _reply(start_response: StartResponse, status: int, body: str | bytes,
           extra: list[tuple[str, str]] | None = None,
           content_type: str | None = "text/plain; charset=utf-8") -> list[bytes]:
    data = body.encode("utf-8") if isinstance(body, str) else body
    if status >= 400:
        data += b"\n"
    headers = [("Content-Length", str(len(data))), *(extra or [])]
    if content_type:
        headers.append(("Content-Type", content_type))
    start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
    return [data]
