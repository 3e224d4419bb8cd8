"""SageMaker Model Monitor's ground-truth files and the captured predictions they label.

Ground truth (merged by Model Monitor's model-quality jobs, and here) lives under

    s3://<bucket>/<prefix>/ground-truth/yyyy/mm/dd/hh/<name>.jsonl

(the hour the labels were collected), one JSON object per line:

    {"groundTruthData": {"data": "1", "encoding": "CSV"},
     "eventMetadata": {"eventId": "<the inference id of the prediction it labels>"},
     "eventVersion": "0"}

`data` is the label as text (CSV) or JSON text (JSON). A prediction is named by the inference
id its caller gave InvokeEndpoint (data capture's eventMetadata.inferenceId), else by the capture
record's eventId; a record with more than one prediction cannot be labelled by one id and is
counted, not guessed at. Nothing unreadable stops a check: each skipped line is counted under a
reason.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lambdas.shared.capture_files import Malformed, hour_prefixes, output_values, parse_s3_uri, parse_time

LABEL_REASONS = ("invalid_json", "missing_keys", "unsupported_encoding", "not_a_label")
PREDICTION_REASONS = ("invalid_json", "missing_keys", "no_time", "not_one_prediction", "not_a_number")


@dataclass(frozen=True)
class Label:
    value: float
    key: str  # the ground-truth object it came from
    filed_at: datetime  # when its file was written (S3 LastModified)


@dataclass
class Read:
    """What a set of lines held: id -> value, and the lines skipped by reason."""

    values: dict[str, Any] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)
    duplicates: int = 0


def ground_truth_objects(s3: Any, uri: str, since: datetime, until: datetime
                         ) -> Iterator[tuple[str, str, datetime]]:
    """(bucket, key, when it was written) of the ground-truth files under the hour folders of
    [since, until), each folder's oldest first (so a later label of an id wins)."""
    bucket, prefix = parse_s3_uri(uri)
    for folder in hour_prefixes(prefix, since, until, lookback=timedelta(0)):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
            for obj in sorted(page.get("Contents", []), key=lambda o: o["LastModified"]):
                if obj["Key"].endswith(".jsonl"):
                    yield bucket, obj["Key"], obj["LastModified"].astimezone(UTC)


def _mapping(record: Any, key: str) -> dict[str, Any]:
    """record[key] when both are JSON objects, else {} (the caller names what is missing)."""
    value = record.get(key) if isinstance(record, dict) else None
    return value if isinstance(value, dict) else {}


def parse_label(line: bytes | str) -> tuple[str, float]:
    """(event id, label) of one ground-truth line; Malformed(reason) otherwise."""
    try:
        record = json.loads(line)
    except ValueError:
        raise Malformed("invalid_json") from None
    data = _mapping(record, "groundTruthData")
    event_id = _mapping(record, "eventMetadata").get("eventId")
    if not isinstance(data.get("data"), str) or not isinstance(event_id, str) or not event_id.strip():
        raise Malformed("missing_keys")
    encoding = str(data.get("encoding", "CSV")).upper()
    if encoding not in ("CSV", "JSON"):
        raise Malformed("unsupported_encoding")
    text = data["data"].strip()
    try:
        value = json.loads(text) if encoding == "JSON" else text
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, bool) or not math.isfinite(float(value)):
            raise ValueError
        return str(event_id), float(value)
    except (TypeError, ValueError, OverflowError):
        raise Malformed("not_a_label") from None


def parse_prediction(line: bytes | str) -> tuple[str, datetime, float]:
    """(inference id, inference time, predicted value) of one capture line; Malformed otherwise."""
    try:
        record = json.loads(line)
    except ValueError:
        raise Malformed("invalid_json") from None
    meta = _mapping(record, "eventMetadata")
    output = _mapping(record, "captureData").get("endpointOutput")
    name = meta.get("inferenceId") or meta.get("eventId")
    if not isinstance(output, dict) or not isinstance(name, str):
        raise Malformed("missing_keys")
    if not isinstance(meta.get("inferenceTime"), str):
        raise Malformed("no_time")
    try:
        at = parse_time(meta["inferenceTime"])
    except ValueError:
        raise Malformed("no_time") from None
    try:
        (value,) = output_values(output, 1)
    except Malformed:
        raise Malformed("not_one_prediction") from None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Malformed("not_a_number") from None
    if not math.isfinite(number):  # CloudWatch takes no NaN or infinity, nor does a metric
        raise Malformed("not_a_number")
    return str(name), at, number
