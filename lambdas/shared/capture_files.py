"""SageMaker capture files without numpy: the record layout, payload decoding, the S3 layout.

Shared by the drift engine (lambdas/shared/drift/capture.py, which adds the numpy columns) and
the model-quality check (lambdas/shared/quality/), which needs only the captured predictions and
their inference ids. The layouts are SageMaker's:

    s3://<bucket>/<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<uuid>.jsonl       data capture
    s3://<bucket>/<prefix>/ground-truth/yyyy/mm/dd/hh/<name>.jsonl               Model Monitor ground truth
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any


class Malformed(Exception):
    """A record or payload that cannot be read; `reason` is one of the drift engine's
    MALFORMED_REASONS."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode(block: Mapping[str, Any]) -> tuple[str, str]:
    """(payload text, content kind 'csv' | 'json' | 'jsonlines') of a captureData block."""
    data = block.get("data") if isinstance(block, Mapping) else None
    if not isinstance(data, str):
        raise Malformed("missing_keys")
    encoding = str(block.get("encoding", "")).upper()
    ctype = str(block.get("observedContentType", "")).lower()
    if encoding == "BASE64":
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise Malformed("invalid_base64") from None
    elif encoding not in ("CSV", "JSON"):
        raise Malformed("unsupported_encoding")
    if "jsonlines" in ctype or "x-ndjson" in ctype:
        return data, "jsonlines"
    if "json" in ctype:
        return data, "json"
    if "csv" in ctype or (encoding == "CSV" and not ctype):
        return data, "csv"
    if encoding == "JSON":
        return data, "json"
    raise Malformed("unsupported_content_type")


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise Malformed("invalid_json_payload") from None


_OUTPUT_ITEM_KEYS = ("score", "predicted_label", "label", "prediction")


def _output_item(item: Any) -> Any:
    if isinstance(item, Mapping):
        for key in _OUTPUT_ITEM_KEYS:
            if key in item:
                return item[key]
        raise Malformed("bad_output")
    if isinstance(item, list):
        if len(item) != 1:
            raise Malformed("bad_output")
        return item[0]
    return item


def output_values(block: Mapping[str, Any], n_rows: int) -> list[Any]:
    text, kind = decode(block)
    if kind == "csv":
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) == 1 and n_rows > 1:
            values: list[Any] = [v.strip() for v in lines[0].split(",")]
        else:
            values = [ln.strip() for ln in lines]
    else:
        doc = parse_json(text) if kind == "json" else [parse_json(x) for x in text.splitlines() if x.strip()]
        if isinstance(doc, Mapping):
            doc = next((doc[k] for k in ("predictions", "scores", "outputs") if k in doc), doc)
        values = doc if isinstance(doc, list) else [doc]
        values = [_output_item(v) for v in values]
    if len(values) != n_rows:
        raise Malformed("bad_output")
    return values



# ------------------------------------------------------------------------------------ records


def parse_time(text: str) -> datetime:
    """An inferenceTime ('2026-11-23T10:00:00Z', optionally with fractional seconds) as UTC."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


# ----------------------------------------------------------------------------------------- S3


def _floor_hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_prefixes(
    base: str, since: datetime, until: datetime, lookback: timedelta = timedelta(hours=1)
) -> list[str]:
    """The yyyy/mm/dd/hh/ prefixes under `base` that can hold records of [since, until).

    A capture file lives under the hour it was opened in and can collect records for a while
    after, so the hour(s) before `since` (`lookback`) are listed too; records are filtered by
    their own inferenceTime afterwards."""
    if until <= since:
        return []
    base = base.strip("/")
    t = _floor_hour(since - lookback)
    last = _floor_hour(until - timedelta(microseconds=1))
    out = []
    while t <= last:
        out.append(f"{base}/{t:%Y/%m/%d/%H}/" if base else f"{t:%Y/%m/%d/%H}/")
        t += timedelta(hours=1)
    return out


# The variant name the deploy handler gives a shadow (lambdas/shared/control/shadow.py): its
# answers are a candidate model's, captured beside production's with the same ids and never
# returned to a caller.
SHADOW_VARIANT = "shadow"


def list_variants(s3: Any, bucket: str, endpoint_prefix: str) -> list[str]:
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=endpoint_prefix, Delimiter="/"
    ):
        out.extend(p["Prefix"].rstrip("/").rsplit("/", 1)[-1] for p in page.get("CommonPrefixes", []))
    return sorted(out)


def endpoint_capture_keys(
    s3: Any, bucket: str, endpoint_prefix: str, since: datetime, until: datetime, *,
    variant: str | None = None, lookback: timedelta = timedelta(hours=1),
) -> list[str]:
    """The capture files of an endpoint (every production variant, or `variant`) that can hold
    records of [since, until). A shadow variant's files are read only when named (the shadow
    report): what callers were served, what drifts and what the labels judge is production's."""
    variants = [variant] if variant else [
        v for v in list_variants(s3, bucket, endpoint_prefix) if v != SHADOW_VARIANT]
    return list(capture_objects(s3, bucket, endpoint_prefix, variants, since, until, lookback))


def object_lines(s3: Any, bucket: str, key: str) -> Iterator[bytes]:
    """The non-empty lines of an object, streamed (never read whole)."""
    for line in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_lines():
        if line.strip():
            yield line


def capture_objects(
    s3: Any, bucket: str, endpoint_prefix: str, variants: list[str], since: datetime, until: datetime,
    lookback: timedelta = timedelta(hours=1),
) -> Iterator[str]:
    """The keys of the capture files that can hold records of [since, until), variant by variant."""
    for v in variants:
        for hour in hour_prefixes(endpoint_prefix + v, since, until, lookback):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=hour):
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith(".jsonl"):
                        yield obj["Key"]


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """('bucket', 'key/prefix') of an s3:// URI."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return bucket, key.strip("/")
