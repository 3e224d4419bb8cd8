"""One drift check: one endpoint, one time window, as plain functions over boto3 clients.

    reference  the model package's reference_stats.json: from an explicit URI (a model.tar.gz or
               the JSON itself), else from the package the endpoint serves (DescribeEndpoint ->
               config -> model -> package: InferenceSpecification.Containers[0].ModelDataUrl),
               never merely the newest approved one, which may not be served. The tarball is read as
               a stream up to that member, never unpacked to disk; prepared references are
               cached by URI (`ReferenceCache`, kept across invocations of a warm Lambda).
    capture    read_capture_window over s3://<capture bucket>/<prefix>/<endpoint>/<variant>/
               yyyy/mm/dd/hh/*.jsonl, every variant, records filtered by inferenceTime.
    compare    engine.compare with alpha = p_value and min_psi = psi_threshold.
    reports    s3://<artifacts>/<project>/drift/<endpoint>/<window end>/report.json|report.html
               (window end in UTC, e.g. 2026-11-23T10-00-00Z), SSE-KMS with the given key.
    metrics    PutMetricData in chunks: namespace MLOps/Drift, dimension EndpointName (+ Feature
               for FeaturePSI), timestamped at the window's end.

The drift Lambda (lambdas/drift/handler.py) and `mlops drift check` (mlops/drift_check.py) both
call `run_drift_check`, so a person sees the numbers the alarm saw. The same event yields the same
report keys and metric timestamps: a redelivered event overwrites, it does not add.
"""

from __future__ import annotations

import gzip
import json
import math
import tarfile
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath
from typing import IO, Any, Literal

from botocore.exceptions import ClientError

from lambdas.shared.capture_files import parse_s3_uri
from lambdas.shared.checks import (
    check_fields,
    environ_values,
    matching,
    open_fraction,
    positive,
    sagemaker_name,
    setting,
    text,
    whole,
)
from lambdas.shared.drift.capture import CaptureSchema, CaptureWindow, read_capture_window
from lambdas.shared.drift.engine import DriftConfig, DriftResult, compare
from lambdas.shared.drift.reference import (
    InvalidReferenceError,
    PreparedReference,
    load_reference_json,
    prepare_reference,
)
from lambdas.shared.drift.report import (
    json_report,
    metric_datums,
    put_metric_data_requests,
    render_html,
    summary_block,
)
from lambdas.shared.reports import put_report
from lambdas.shared.scheduled_window import (  # noqa: F401  (the drift handler imports them from here)
    LABEL_FORMAT,
    MalformedEventError,
    Window,
    parse_utc,
    scheduled_event_time,
)
from lambdas.shared.served_model import NothingServed, served_package

REFERENCE_FILE = "reference_stats.json"
DEFAULT_NAMESPACE = "MLOps/Drift"
DEFAULT_WINDOW_MINUTES = 60
# Below this many current values a feature is "insufficient_data": PSI on a handful of rows is
# noise, and the MaxPSI alarm would page someone for an idle endpoint.
DEFAULT_MIN_ROWS = 200  # the project default: benchmarks/drift_false_alarms.py
# CloudWatch refuses datapoints older than two weeks; a back-filled window older than that gets
# its reports but no metrics.
METRICS_MAX_AGE = timedelta(days=14)
_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}


class DriftJobError(Exception):
    """Base of the errors a drift check raises on purpose."""


class DriftSettingsError(DriftJobError, ValueError):
    """Settings are missing or invalid; the message names every bad variable."""


class ReferenceUnavailableError(DriftJobError):
    """No usable reference: no endpoint, an endpoint serving a model without a package (its
    bootstrap model), or an artifact without reference_stats.json
    (e.g. the endpoint's bootstrap model). Retrying the same event does not help."""


# ------------------------------------------------------------------------------------ settings


def _s3_uri(value: Any) -> str:
    result = text(value)
    parse_s3_uri(result)
    return result


_bucket = matching(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "an S3 bucket name")


@dataclass(frozen=True)
class DriftSettings:
    """What one endpoint's drift check needs. The Lambda reads it from its environment
    (`from_env`, variables in lambdas/drift/handler.py); the CLI builds it from the project's
    configuration. Either way every value passes the same checks, and a problem is named by its
    environment variable."""

    project: str = setting("PROJECT", text)
    endpoint_name: str = setting("ENDPOINT_NAME", sagemaker_name)
    capture_s3_uri: str = setting("CAPTURE_S3_URI", _s3_uri)
    artifacts_bucket: str = setting("ARTIFACTS_BUCKET", _bucket)
    psi_threshold: float = setting("DRIFT_PSI_THRESHOLD", positive)
    p_value: float = setting("DRIFT_P_VALUE", open_fraction)
    model_package_group: str | None = setting("MODEL_PACKAGE_GROUP", text, default=None)
    reference_uri: str | None = setting("REFERENCE_URI", _s3_uri, default=None)
    kms_key_id: str | None = setting("KMS_KEY_ARN", text, default=None)
    window_minutes: int = setting("WINDOW_MINUTES", whole(1), default=DEFAULT_WINDOW_MINUTES)
    namespace: str = setting("METRICS_NAMESPACE", text, default=DEFAULT_NAMESPACE)
    min_rows: int = setting("DRIFT_MIN_ROWS", whole(1), default=DEFAULT_MIN_ROWS)
    # SageMaker buffers capture and writes its files minutes late: a window is checked this long
    # after it ends, so its last files are there.
    capture_lag_minutes: int = setting("CAPTURE_LAG_MINUTES", whole(0), default=0)

    def __post_init__(self) -> None:
        checked = _checked({f.name: getattr(self, f.name) for f in fields(self)})
        for name, value in checked.items():  # "60" from the environment becomes 60
            object.__setattr__(self, name, value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DriftSettings:
        """Settings from environment variables (empty counts as unset); one DriftSettingsError
        names every missing or invalid variable."""
        return cls(**_checked(environ_values(cls, environ)))

    def window_for(self, started: datetime) -> Window:
        """The window a check started at `started` (its scheduled event's time) covers."""
        return Window.ending_at(started - timedelta(minutes=self.capture_lag_minutes), self.window_minutes)

    def drift_config(self) -> DriftConfig:
        return DriftConfig(alpha=self.p_value, min_psi=self.psi_threshold, min_rows=self.min_rows)


def _checked(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` (field name -> raw or typed value, None = unset) checked and converted."""
    checked, problems = check_fields(DriftSettings, values)
    if problems:
        raise DriftSettingsError("invalid drift settings: " + "; ".join(problems))
    return checked


# -------------------------------------------------------------------------------------- window


# ------------------------------------------------------------------------------------ progress


@dataclass(frozen=True)
class Progress:
    """What a long check is doing; `files`, `records` (capture lines) and `bytes` count the
    capture objects read so far."""

    stage: Literal["reference", "capture", "compare", "report", "metrics", "done"]
    message: str
    files: int = 0
    records: int = 0
    bytes: int = 0


ProgressCallback = Callable[[Progress], None]
PROGRESS_EVERY_RECORDS = 20_000


def throttled(
    callback: ProgressCallback, seconds: float, clock: Callable[[], float] = time.monotonic
) -> ProgressCallback:
    """`callback` for every event, except that capture counts (one per file read) pass at most
    once per `seconds`; the first event of the capture stage always passes."""
    last_at, last_stage = -math.inf, ""

    def emit(event: Progress) -> None:
        nonlocal last_at, last_stage
        now = clock()
        if event.stage != "capture" or last_stage != "capture" or now - last_at >= seconds:
            last_at, last_stage = now, event.stage
            callback(event)

    return emit


class _CountingBody:
    """A StreamingBody whose lines are counted as read_capture_window consumes them."""

    def __init__(self, body: Any, reader: _ProgressS3):
        self._body, self._reader = body, reader

    def iter_lines(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        r = self._reader
        for line in self._body.iter_lines(*args, **kwargs):
            r.records += 1
            r.bytes += len(line) + 1
            if r.records % PROGRESS_EVERY_RECORDS == 0:
                r.report()
            yield line
        r.files += 1
        r.report()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._body, name)


class _ProgressS3:
    """An S3 client that reports the capture objects read through it (everything else passes)."""

    def __init__(self, client: Any, progress: ProgressCallback):
        self._client, self._progress = client, progress
        self.files = self.records = self.bytes = 0

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        response = self._client.get_object(**kwargs)
        return {**response, "Body": _CountingBody(response["Body"], self)}

    def report(self) -> None:
        self._progress(
            Progress(
                "capture",
                f"read {self.files} capture file(s), {self.records} records",
                self.files,
                self.records,
                self.bytes,
            )
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _ignore(_: Progress) -> None:
    pass


# ----------------------------------------------------------------------------------- reference


@dataclass(frozen=True)
class ReferenceSource:
    uri: str  # the model.tar.gz (or reference_stats.json) the reference was read from
    model_package_arn: str | None = None


def _is_reference_member(name: str) -> bool:
    parts = [p for p in PurePosixPath(name).parts if p not in (".", "")]
    return parts == [REFERENCE_FILE]


def reference_from_tar(stream: IO[bytes], source: str = "model artifact") -> dict[str, Any]:
    """The validated reference document inside a model.tar.gz read from `stream` front to back
    (tar streaming mode: nothing is extracted, nothing seeks, reading stops at the member)."""
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                if member.isfile() and _is_reference_member(member.name):
                    handle = tar.extractfile(member)
                    if handle is None:
                        break
                    return load_reference_json(handle.read())
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ReferenceUnavailableError(f"{source}: not a readable tar archive ({exc})") from None
    except InvalidReferenceError as exc:
        raise ReferenceUnavailableError(f"{source}: {REFERENCE_FILE} is invalid: {exc}") from None
    raise ReferenceUnavailableError(
        f"{source} has no {REFERENCE_FILE} at its top level (a model trained without a drift "
        "reference, e.g. the endpoint's bootstrap model)"
    )


def load_reference(s3: Any, uri: str) -> dict[str, Any]:
    """The reference document at `uri`: a model.tar.gz, or the reference JSON itself."""
    bucket, key = parse_s3_uri(uri)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
            raise ReferenceUnavailableError(f"{uri}: no such object") from None
        raise
    try:
        if key.endswith(".json"):
            try:
                return load_reference_json(body.read())
            except InvalidReferenceError as exc:
                raise ReferenceUnavailableError(f"{uri}: {exc}") from None
        return reference_from_tar(body, uri)
    finally:
        body.close()


def served_reference(sagemaker: Any, endpoint: str) -> ReferenceSource:
    """The model artifact of the package the endpoint serves (it holds reference_stats.json)."""
    try:
        package = served_package(sagemaker, endpoint)
    except NothingServed as exc:
        raise ReferenceUnavailableError(str(exc)) from None
    arn = package["ModelPackageArn"]
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    url = containers[0].get("ModelDataUrl")
    if not url:
        raise ReferenceUnavailableError(f"{arn} has no InferenceSpecification.Containers[0].ModelDataUrl")
    return ReferenceSource(uri=url, model_package_arn=arn)


class ReferenceCache:
    """Prepared references by URI, least recently used first out. A model artifact never changes
    under its URI (each training run writes a new one), and preparing a large reference (sorting,
    bins) costs more than most windows. Not thread-safe: one Lambda invocation at a time."""

    def __init__(self, max_entries: int = 4):
        self.max_entries = max_entries
        self._entries: OrderedDict[str, PreparedReference] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, uri: str, load: Callable[[], PreparedReference]) -> PreparedReference:
        if uri in self._entries:
            self.hits += 1
            self._entries.move_to_end(uri)
            return self._entries[uri]
        self.misses += 1
        prepared = load()
        self._entries[uri] = prepared
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return prepared


def find_reference(
    settings: DriftSettings, s3: Any, sagemaker: Any, cache: ReferenceCache | None = None
) -> tuple[ReferenceSource, PreparedReference]:
    if settings.reference_uri:
        source = ReferenceSource(settings.reference_uri)
    else:
        source = served_reference(sagemaker, settings.endpoint_name)

    def load() -> PreparedReference:
        return prepare_reference(load_reference(s3, source.uri))

    prepared = cache.get(source.uri, load) if cache is not None else load()
    return source, prepared


# ------------------------------------------------------------------------------ reports, metrics


def report_keys(settings: DriftSettings, window: Window) -> tuple[str, str]:
    """(report.json key, report.html key) in the artifacts bucket."""
    prefix = f"{settings.project}/drift/{settings.endpoint_name}/{window.label}"
    return f"{prefix}/report.json", f"{prefix}/report.html"


def publish_metrics(cloudwatch: Any, namespace: str, datums: list[dict[str, Any]]) -> int:
    """PutMetricData in requests of at most 1,000 datums; the number of datums sent."""
    for request in put_metric_data_requests(namespace, datums):
        cloudwatch.put_metric_data(**request)
    return len(datums)


def _title(settings: DriftSettings, window: Window, result: DriftResult) -> str:
    title = (
        f"Drift: {settings.endpoint_name}, {window.since:%Y-%m-%d %H:%M} to {window.until:%Y-%m-%d %H:%M} UTC"
    )
    if result.summary.status != "ok":
        title += (
            f" (insufficient data: {result.summary.n_cur_rows} rows, {settings.min_rows} needed per feature)"
        )
    return title


def is_drifted(result: DriftResult) -> bool:
    return bool(result.summary.n_drifted) or bool(result.summary.prediction_drift)


# ---------------------------------------------------------------------------------------- check


def run_drift_check(
    settings: DriftSettings,
    window: Window,
    *,
    s3: Any,
    sagemaker: Any,
    cloudwatch: Any,
    cache: ReferenceCache | None = None,
    progress: ProgressCallback | None = None,
    publish: bool = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Reference -> capture window -> comparison -> reports in S3 -> metrics in CloudWatch.

    An empty window is a result, not an error: its reports say insufficient data and it
    publishes CurrentRows=0 and MalformedRecords. Raises ReferenceUnavailableError when there is
    nothing to compare against; AWS errors propagate (the caller retries)."""
    emit = progress or _ignore
    now = (now or datetime.now(UTC)).astimezone(UTC)

    emit(Progress("reference", "finding the reference"))
    source, prepared = find_reference(settings, s3, sagemaker, cache)
    emit(
        Progress(
            "reference",
            f"reference {source.uri}: {prepared.n_rows} training rows, {len(prepared.features)} features",
        )
    )

    bucket, prefix = parse_s3_uri(settings.capture_s3_uri)
    emit(Progress("capture", f"reading capture of {settings.endpoint_name} from {settings.capture_s3_uri}"))
    capture: CaptureWindow = read_capture_window(
        bucket,
        prefix,
        settings.endpoint_name,
        CaptureSchema.from_reference(prepared),
        window.since,
        window.until,
        s3_client=_ProgressS3(s3, emit) if progress else s3,
    )

    emit(
        Progress(
            "compare",
            f"comparing {capture.n_rows} rows ({capture.n_malformed} malformed skipped)",
            capture.n_objects,
            capture.n_records,
        )
    )
    result = compare(prepared, capture.columns, capture.prediction, settings.drift_config())
    return report_and_publish(settings, window, source, capture, result, s3=s3, cloudwatch=cloudwatch,
                              emit=emit, publish=publish, now=now)


def report_and_publish(
    settings: DriftSettings,
    window: Window,
    source: ReferenceSource,
    capture: CaptureWindow,
    result: DriftResult,
    *,
    s3: Any,
    cloudwatch: Any,
    emit: ProgressCallback = _ignore,
    publish: bool = True,
    now: datetime,
) -> dict[str, Any]:
    """Reports in S3 and metrics in CloudWatch for one compared window (the one-pass check and
    the sharded batch job's merge write the same), and the check's summary."""
    context = {
        **window.as_dict(),
        "endpoint": settings.endpoint_name,
        "reference": source.uri,
        "model_package_arn": source.model_package_arn,
    }
    report = json_report(result, window=context, malformed=capture.malformed, generated_at=now)
    report.update(
        project=settings.project,
        endpoint=settings.endpoint_name,
        drifted=is_drifted(result),
        capture={
            "uri": settings.capture_s3_uri,
            "objects": capture.n_objects,
            "records": capture.n_records,
            "rows": capture.n_rows,
            "out_of_window": capture.n_out_of_window,
            "first_inference_time": capture.first_inference_time,
            "last_inference_time": capture.last_inference_time,
        },
    )
    html = render_html(
        result,
        title=_title(settings, window, result),
        window=context,
        malformed=capture.malformed,
        generated_at=now,
    )
    json_key, html_key = report_keys(settings, window)
    emit(
        Progress(
            "report", f"writing reports to s3://{settings.artifacts_bucket}/{json_key.rsplit('/', 1)[0]}/"
        )
    )
    kms = settings.kms_key_id
    report_json = put_report(
        s3,
        settings.artifacts_bucket,
        json_key,
        json.dumps(report, indent=1, allow_nan=False).encode(),
        "application/json",
        kms,
    )
    report_html = put_report(
        s3, settings.artifacts_bucket, html_key, html.encode(), "text/html; charset=utf-8", kms
    )

    published, skipped_reason = 0, None
    if not publish:
        skipped_reason = "metrics not requested"
    elif window.until < now - METRICS_MAX_AGE:
        skipped_reason = "the window ended more than 14 days ago (CloudWatch refuses older datapoints)"
    else:
        datums = metric_datums(
            result,
            {"EndpointName": settings.endpoint_name},
            malformed_records=capture.n_malformed,
            timestamp=min(window.until, now),  # CloudWatch also refuses the far future
        )
        emit(Progress("metrics", f"publishing {len(datums)} datapoints to {settings.namespace}"))
        published = publish_metrics(cloudwatch, settings.namespace, datums)

    summary = {
        "status": result.summary.status,
        "drifted": is_drifted(result),
        "project": settings.project,
        "endpoint": settings.endpoint_name,
        "window": window.as_dict(),
        "reference": {"uri": source.uri, "model_package_arn": source.model_package_arn},
        "report_json": report_json,
        "report_html": report_html,
        "summary": summary_block(result.summary, capture.n_malformed),
        "drifted_features": result.drifted_features,
        "n_rows": capture.n_rows,
        "n_records": capture.n_records,
        "n_objects": capture.n_objects,
        "malformed_records": capture.n_malformed,
        "malformed": capture.malformed,
        "metrics_published": published,
    }
    if skipped_reason:
        summary["metrics_skipped"] = skipped_reason
    emit(
        Progress(
            "done",
            f"{'DRIFT' if summary['drifted'] else 'no drift'}: {report_html}",
            capture.n_objects,
            capture.n_records,
        )
    )
    return summary
