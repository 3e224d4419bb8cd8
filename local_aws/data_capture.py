"""Endpoint data capture, written as SageMaker writes it.

For every sampled request SageMaker appends one JSON line to an object under

    {DestinationS3Uri}/{endpoint}/{variant}/yyyy/mm/dd/hh/{mm}-{ss}-{ms}-{uuid}.jsonl

    {"captureData": {"endpointInput":  {"observedContentType": ..., "mode": "INPUT",
                                        "data": ..., "encoding": "CSV" | "JSON" | "BASE64"},
                     "endpointOutput": {"observedContentType": ..., "mode": "OUTPUT", ...}},
     "eventMetadata": {"eventId": <uuid>, "inferenceId": <if the caller gave one>,
                       "inferenceTime": "2026-12-01T10:00:00Z"},
     "eventVersion": "0"}

A content type listed in the config's CaptureContentTypeHeader (CsvContentTypes /
JsonContentTypes) is captured as text with that encoding; any other is base64-encoded, as it is
with no header configuration at all. Sampling (InitialSamplingPercentage), the modes
(CaptureOptions) and the KMS key (KmsKeyId) come from the endpoint config. SageMaker buffers
records and writes an object every so often; here records are buffered for `flush_seconds` and
each flush writes one new object per endpoint, variant and hour.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

EVENT_VERSION = "0"
log = logging.getLogger("local_aws.data_capture")
# (account, bucket, key, body, kms key id or None)
PutObject = Callable[[str, str, str, bytes, str | None], None]


@dataclass(frozen=True)
class CaptureConfig:
    bucket: str
    prefix: str
    sampling_percent: float
    kms_key_id: str | None
    capture_input: bool
    capture_output: bool
    csv_types: frozenset[str]
    json_types: frozenset[str]

    @classmethod
    def from_api(cls, config: dict[str, Any] | None) -> CaptureConfig | None:
        """From an endpoint config's DataCaptureConfig; None when capture is off."""
        if not config or not config.get("EnableCapture", True) or not config.get("DestinationS3Uri"):
            return None
        destination = config["DestinationS3Uri"]
        if not destination.startswith("s3://"):
            return None
        bucket, _, prefix = destination[len("s3://"):].partition("/")
        modes = {o.get("CaptureMode") for o in config.get("CaptureOptions") or []}
        headers = config.get("CaptureContentTypeHeader") or {}
        return cls(
            bucket=bucket, prefix=prefix.strip("/"),
            sampling_percent=float(config.get("InitialSamplingPercentage", 100)),
            kms_key_id=config.get("KmsKeyId") or None,
            capture_input=bool(modes & {"Input", "InputAndOutput"}) or not modes,
            capture_output=bool(modes & {"Output", "InputAndOutput"}) or not modes,
            csv_types=frozenset(_media(t) for t in headers.get("CsvContentTypes") or []),
            json_types=frozenset(_media(t) for t in headers.get("JsonContentTypes") or []),
        )

    def sampled(self) -> bool:
        return self.sampling_percent >= 100 or random.uniform(0, 100) < self.sampling_percent

    def payload(self, content_type: str | None, data: bytes, mode: str) -> dict[str, str]:
        media = _media(content_type)
        encoding = "CSV" if media in self.csv_types else "JSON" if media in self.json_types else "BASE64"
        text: str | None = None
        if encoding != "BASE64":
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                encoding = "BASE64"
        if text is None:
            text = base64.b64encode(data).decode("ascii")
        return {"observedContentType": content_type or "", "mode": mode, "data": text, "encoding": encoding}


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def capture_record(config: CaptureConfig, *, request_type: str | None, request: bytes,
                   response_type: str | None, response: bytes | None, inference_id: str | None,
                   at: datetime, event_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if config.capture_input:
        data["endpointInput"] = config.payload(request_type, request, "INPUT")
    if config.capture_output and response is not None:
        data["endpointOutput"] = config.payload(response_type, response, "OUTPUT")
    metadata = {"eventId": event_id or str(uuid.uuid4()), "inferenceTime": at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if inference_id:
        metadata["inferenceId"] = inference_id
    return {"captureData": data, "eventMetadata": metadata, "eventVersion": EVENT_VERSION}


class CaptureWriter:
    """Buffers capture lines and writes them as .jsonl objects on flush()."""

    def __init__(self, put: PutObject):
        self.put = put
        self._lock = threading.Lock()
        # (account, bucket, folder key, kms key) -> lines; folder = prefix/endpoint/variant/yyyy/mm/dd/hh
        self._pending: dict[tuple[str, str, str, str | None], list[str]] = {}
        self.dropped = 0

    def add(self, config: CaptureConfig, account: str, endpoint: str, variant: str,
            record: dict[str, Any], at: datetime) -> None:
        folder = "/".join(p for p in (config.prefix, endpoint, variant, at.strftime("%Y/%m/%d/%H")) if p)
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            self._pending.setdefault((account, config.bucket, folder, config.kms_key_id), []).append(line)

    def flush(self, now: datetime) -> list[str]:
        """Writes what is buffered; returns the keys written. A write that fails (no such bucket,
        a key the writer may not use) is logged with its reason and the records counted in
        `dropped`, as SageMaker logs a capture it cannot deliver: serving goes on."""
        with self._lock:
            pending, self._pending = self._pending, {}
        written = []
        for (account, bucket, folder, kms_key), lines in pending.items():
            name = f"{now:%M-%S}-{now.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
            key = f"{folder}/{name}"
            try:
                self.put(account, bucket, key, ("\n".join(lines) + "\n").encode(), kms_key)
                written.append(f"s3://{bucket}/{key}")
            except Exception as exc:
                self.dropped += len(lines)
                log.warning("data capture: %d records for s3://%s/%s not written: %s", len(lines), bucket,
                            folder, exc)
        return written
