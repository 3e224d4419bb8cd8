"""SageMaker data capture -> the current window's columns.

SageMaker writes captured requests as JSON lines under

    s3://<bucket>/<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<uuid>.jsonl

one object per request:

    {"captureData": {"endpointInput":  {"observedContentType": "text/csv", "mode": "INPUT",
                                        "data": "17.99,10.38,...", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv; charset=utf-8",
                                        "mode": "OUTPUT", "data": "0.93", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "...", "inferenceTime": "2026-11-23T10:00:00Z"},
     "eventVersion": "0"}

`encoding` is CSV, JSON or BASE64 (then `observedContentType` says whether the decoded bytes are
CSV or JSON). Payload shapes understood (each yields one or more rows):

* CSV (text/csv): one row per line, no header, columns in the model's input order. Quoted
  fields are honoured. An empty field is a missing value (NaN / missing category).
* JSON (application/json): {"instances": [...]} or {"inputs": [...]}, a list of rows, or one
  row. A row is a list in input order, {"features": [...]} (SageMaker's JSON row form), or an
  object of named features (extra names ignored, a tracked feature missing is malformed).
* JSON lines (application/jsonlines): one such row per line.
* Output: CSV values one per row (one per line, or comma-separated on one line), or JSON
  {"predictions": [...]}, a list, or a scalar; an item may be {"score": x} / {"predicted_label":
  y} / {"label": y} / {"prediction": y} or a one-element list.

Nothing malformed stops the read: each skipped line or row is counted under one reason
(MALFORMED_REASONS) and the counts travel with the result, to be published as a metric. A record
whose output cannot be matched to its input rows keeps its rows (the features are fine) and loses
only its predictions (reason "bad_output").

Memory: values go straight into fixed-size numpy chunks (float64 per numeric feature, int32
category codes per categorical feature), so a window costs its numeric data, not its JSON text.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np

from lambdas.shared.capture_files import (
    Malformed,
    decode,
    endpoint_capture_keys,
    output_values,
    parse_json,
    parse_time,
)
from lambdas.shared.drift.categorical import CategoricalCodes, category_key
from lambdas.shared.drift.reference import PreparedReference

MALFORMED_REASONS = (
    "invalid_json",  # the capture line is not JSON
    "missing_keys",  # no captureData.endpointInput.data (or not an object)
    "missing_inference_time",  # a time window was asked for and the record has no time
    "invalid_inference_time",
    "unsupported_encoding",  # not CSV / JSON / BASE64
    "invalid_base64",
    "unsupported_content_type",
    "invalid_json_payload",  # encoding says JSON, payload does not parse
    "unsupported_json_shape",
    "empty_payload",  # the input holds no rows at all
    "wrong_column_count",  # positional row with a different number of values than columns
    "missing_feature",  # named row without a tracked feature
    "non_numeric_value",  # a numeric feature's value is not a number
    "bad_output",  # output unreadable or not one value per input row (rows kept)
)
CHUNK_ROWS = 8192
Column = np.ndarray | CategoricalCodes


@dataclass(frozen=True)
class CaptureSchema:
    """What to extract: the model's input order and which columns are tracked, of which kind."""

    columns: tuple[str, ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    prediction_kind: Literal["numeric", "categorical"] | None = None

    def __post_init__(self) -> None:
        unknown = [c for c in (*self.numeric, *self.categorical) if c not in self.columns]
        if unknown:
            raise ValueError(f"tracked columns not in the input columns: {', '.join(unknown)}")
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            raise ValueError(f"columns both numeric and categorical: {', '.join(both)}")

    @classmethod
    def from_reference(cls, prepared: PreparedReference) -> CaptureSchema:
        return cls(prepared.columns, prepared.numeric, prepared.categorical, prepared.prediction_kind)


@dataclass
class CaptureWindow:
    """The parsed window: columns ready for `engine.compare`, and what was skipped and why."""

    columns: dict[str, Column]
    prediction: Column | None
    n_rows: int
    n_records: int  # capture lines that contributed rows
    malformed: dict[str, int]
    n_out_of_window: int = 0
    n_objects: int = 0
    first_inference_time: str | None = None
    last_inference_time: str | None = None
    keys: list[str] = field(default_factory=list)

    @property
    def n_malformed(self) -> int:
        return sum(self.malformed.values())


class _Codes:
    """Category -> int32 code, assigned on first sight."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def code(self, value: object) -> int:
        key = category_key(value)
        if key is None:
            return -1
        code = self.index.get(key)
        if code is None:
            code = self.index[key] = len(self.index)
        return code

    def categories(self) -> tuple[str, ...]:
        return tuple(self.index)


class CaptureAccumulator:
    """Rows in, columns out: chunked numpy buffers, one float64 row per numeric feature and one
    int32 row per categorical feature (column-major, so each column ends up contiguous)."""

    def __init__(self, schema: CaptureSchema, chunk_rows: int = CHUNK_ROWS) -> None:
        self.schema = schema
        self.chunk_rows = chunk_rows
        pos = {c: i for i, c in enumerate(schema.columns)}
        self._num_pos = [pos[c] for c in schema.numeric]
        self._cat_pos = [pos[c] for c in schema.categorical]
        self._codes = [_Codes() for _ in schema.categorical]
        self._pred_codes = _Codes()
        self._num_chunks: list[np.ndarray] = []
        self._cat_chunks: list[np.ndarray] = []
        self._pred_chunks: list[np.ndarray] = []
        self._fill = 0
        self.n_rows = 0
        self._new_chunk()

    def _new_chunk(self) -> None:
        n = self.chunk_rows
        self._num = np.empty((len(self._num_pos), n), dtype=np.float64)
        self._cat = np.empty((len(self._cat_pos), n), dtype=np.int32)
        pred_dtype = np.int32 if self.schema.prediction_kind == "categorical" else np.float64
        self._pred = np.empty(n, dtype=pred_dtype)
        self._num_chunks.append(self._num)
        self._cat_chunks.append(self._cat)
        self._pred_chunks.append(self._pred)
        self._fill = 0

    def convert_positional(self, row: list[Any]) -> tuple[list[float], list[int]]:
        """Tracked values of a row given in input order; raises Malformed."""
        if len(row) != len(self.schema.columns):
            raise Malformed("wrong_column_count")
        return [_to_float(row[i]) for i in self._num_pos], [
            c.code(row[i]) for c, i in zip(self._codes, self._cat_pos, strict=True)
        ]

    def convert_named(self, row: Mapping[str, Any]) -> tuple[list[float], list[int]]:
        try:
            nums = [_to_float(row[c]) for c in self.schema.numeric]
            cats = [c.code(row[n]) for c, n in zip(self._codes, self.schema.categorical, strict=True)]
        except KeyError:
            raise Malformed("missing_feature") from None
        return nums, cats

    def add(self, nums: list[float], cats: list[int], prediction: Any = None) -> None:
        if self._fill == self.chunk_rows:
            self._new_chunk()
        i = self._fill
        if nums:
            self._num[:, i] = nums
        if cats:
            self._cat[:, i] = cats
        if self.schema.prediction_kind == "categorical":
            self._pred[i] = self._pred_codes.code(prediction)
        elif self.schema.prediction_kind == "numeric":
            self._pred[i] = math.nan if prediction is None else prediction
        self._fill += 1
        self.n_rows += 1

    def columns(self) -> tuple[dict[str, Column], Column | None]:
        def joined(chunks: list[np.ndarray]) -> np.ndarray:
            return np.concatenate([*chunks[:-1], chunks[-1][..., : self._fill]], axis=-1)

        num = joined(self._num_chunks)
        cat = joined(self._cat_chunks)
        out: dict[str, Column] = {n: num[k] for k, n in enumerate(self.schema.numeric)}
        for k, name in enumerate(self.schema.categorical):
            out[name] = CategoricalCodes(cat[k], self._codes[k].categories())
        pred: Column | None = None
        if self.schema.prediction_kind == "numeric":
            pred = joined(self._pred_chunks)
        elif self.schema.prediction_kind == "categorical":
            pred = CategoricalCodes(joined(self._pred_chunks), self._pred_codes.categories())
        return out, pred


def _to_float(value: Any) -> float:
    if value is None or value == "":
        return math.nan
    if isinstance(value, bool):
        raise Malformed("non_numeric_value")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise Malformed("non_numeric_value") from None


# ----------------------------------------------------------------------------------- payloads


def _csv_rows(text: str) -> Iterator[list[str]]:
    for line in text.splitlines():
        if not line.strip():
            continue
        if '"' in line:
            yield next(csv.reader([line]))
        else:
            yield line.split(",")


def _json_rows(value: Any) -> list[Any]:
    """Rows of a JSON input payload (see the module docstring for the shapes)."""
    if isinstance(value, Mapping):
        for key in ("instances", "inputs"):
            if key in value:
                return _json_rows(value[key])
        return [value]
    if isinstance(value, list):
        if not value:
            return []
        if isinstance(value[0], list | Mapping):
            return value
        return [value]  # one positional row
    raise Malformed("unsupported_json_shape")


def _input_rows(text: str, kind: str) -> list[Any]:
    if kind == "csv":
        return list(_csv_rows(text))
    if kind == "jsonlines":
        return [parse_json(line) for line in text.splitlines() if line.strip()]
    return _json_rows(parse_json(text))


def _prediction(value: Any, kind: str) -> Any:
    if kind == "numeric":
        return _to_float(value)
    return value


# ------------------------------------------------------------------------------------ records


class CaptureParser:
    """Feeds capture lines into an accumulator, counting what it skips."""

    def __init__(
        self, schema: CaptureSchema, since: datetime | None = None, until: datetime | None = None
    ) -> None:
        self.schema = schema
        self.since = since
        self.until = until
        self.acc = CaptureAccumulator(schema)
        self.malformed: Counter[str] = Counter()
        self.n_records = 0
        self.n_out_of_window = 0
        self.first: datetime | None = None
        self.last: datetime | None = None

    def feed(self, line: bytes | str) -> None:
        if isinstance(line, bytes):
            line = line.decode("utf-8", errors="replace")
        if not line.strip():
            return
        try:
            self._record(line)
        except Malformed as bad:
            self.malformed[bad.reason] += 1

    def _in_window(self, record: Mapping[str, Any]) -> bool:
        windowed = self.since is not None or self.until is not None
        meta = record.get("eventMetadata")
        text = meta.get("inferenceTime") if isinstance(meta, Mapping) else None
        if not isinstance(text, str):
            if windowed:
                raise Malformed("missing_inference_time")
            return True
        try:
            t = parse_time(text)
        except ValueError:
            if windowed:
                raise Malformed("invalid_inference_time") from None
            return True
        if (self.since is not None and t < self.since) or (self.until is not None and t >= self.until):
            self.n_out_of_window += 1
            return False
        self.first = t if self.first is None or t < self.first else self.first
        self.last = t if self.last is None or t > self.last else self.last
        return True

    def _record(self, line: str) -> None:
        try:
            record = json.loads(line)
        except ValueError:
            raise Malformed("invalid_json") from None
        try:
            capture = record["captureData"]
            block = capture["endpointInput"]
            if not isinstance(block, Mapping) or "data" not in block:
                raise KeyError("data")
        except (KeyError, TypeError):
            raise Malformed("missing_keys") from None
        if not self._in_window(record):
            return
        text, kind = decode(block)
        rows = _input_rows(text, kind)
        if not rows:
            raise Malformed("empty_payload")
        converted = []
        for row in rows:
            try:
                converted.append(self._convert(row))
            except Malformed as bad:
                self.malformed[bad.reason] += 1
        if not converted:
            return
        predictions: list[Any] = [None] * len(converted)
        out_block = capture.get("endpointOutput") if isinstance(capture, Mapping) else None
        if self.schema.prediction_kind is not None and isinstance(out_block, Mapping):
            try:
                values = output_values(out_block, len(converted))
                predictions = [_prediction(v, self.schema.prediction_kind) for v in values]
            except (Malformed, KeyError, TypeError):
                self.malformed["bad_output"] += 1
                predictions = [None] * len(converted)
        for (nums, cats), pred in zip(converted, predictions, strict=True):
            self.acc.add(nums, cats, pred)
        self.n_records += 1

    def _convert(self, row: Any) -> tuple[list[float], list[int]]:
        if isinstance(row, Mapping):
            if "features" in row and isinstance(row["features"], list):
                return self.acc.convert_positional(row["features"])
            return self.acc.convert_named(row)
        if isinstance(row, list):
            return self.acc.convert_positional(row)
        raise Malformed("unsupported_json_shape")

    def result(self, n_objects: int = 0, keys: list[str] | None = None) -> CaptureWindow:
        columns, prediction = self.acc.columns()
        return CaptureWindow(
            columns=columns,
            prediction=prediction,
            n_rows=self.acc.n_rows,
            n_records=self.n_records,
            malformed=dict(sorted(self.malformed.items())),
            n_out_of_window=self.n_out_of_window,
            n_objects=n_objects,
            first_inference_time=self.first.isoformat() if self.first else None,
            last_inference_time=self.last.isoformat() if self.last else None,
            keys=list(keys or []),
        )


def parse_capture_lines(
    lines: Iterable[bytes | str],
    schema: CaptureSchema,
    since: datetime | None = None,
    until: datetime | None = None,
) -> CaptureWindow:
    """Parse capture JSON lines (no S3 involved); records outside [since, until) are skipped."""
    parser = CaptureParser(schema, since, until)
    for line in lines:
        parser.feed(line)
    return parser.result()


# ----------------------------------------------------------------------------------------- S3


def read_capture_window(
    bucket: str,
    prefix: str,
    endpoint: str,
    schema: CaptureSchema,
    since: datetime,
    until: datetime,
    *,
    variant: str | None = None,
    s3_client: Any = None,
    lookback: timedelta = timedelta(hours=1),
) -> CaptureWindow:
    """Stream the capture objects of [since, until) from S3 into columns.

    `prefix` is the capture destination's key prefix (the part after the bucket in
    DestinationS3Uri); `variant=None` reads every variant of the endpoint. Objects are read line
    by line (`iter_lines`), never whole."""
    if s3_client is None:
        import boto3  # only here: the rest of the library runs without it

        s3_client = boto3.client("s3")
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    endpoint_prefix = "/".join(p for p in (prefix.strip("/"), endpoint) if p) + "/"
    parser = CaptureParser(schema, since, until)
    keys = endpoint_capture_keys(s3_client, bucket, endpoint_prefix, since, until, variant=variant,
                                 lookback=lookback)
    for key in keys:
        for line in s3_client.get_object(Bucket=bucket, Key=key)["Body"].iter_lines():
            parser.feed(line)
    return parser.result(n_objects=len(keys), keys=keys)


