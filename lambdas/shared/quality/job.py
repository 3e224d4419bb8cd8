"""One model-quality check of an endpoint: the window's captured predictions joined with their
ground-truth labels, compared with the served model's evaluation, reported and published.

Windows. A check that starts at time t (its scheduled event's time) judges the predictions of
[t - lag - window, t - lag): SageMaker buffers capture files and labels arrive later than the
predictions they label, so a window is judged only once `LABEL_LAG_MINUTES` have passed. Labels are
read from the ground-truth hour folders of the previous window's start up to t.

Counted once, never dropped silently (each ground-truth file is read by a few checks; what it
holds is counted by the first after it was written):
- `LabelledRecords`: predictions of the window with a label (the metrics are computed on these);
- `UnlabelledPredictions`: predictions of the window without one (yet);
- `LateLabels`: labels that arrived after their window was judged (the previous window's
  predictions, filed in a later hour than that check could read);
- `UnmatchedLabels`: labels naming no prediction of either window;
- `MalformedLabels`, `MalformedPredictions`: lines that could not be read (by reason in the report).

Baseline: the evaluation of the package the endpoint serves (DescribeEndpoint -> endpoint config
-> model -> ModelPackageName -> its CustomerMetadataProperties, which the register step fills
from evaluation.json). The bootstrap model has no package: the metrics are published, the drop
is not. `AccuracyDropPercent` (what the accuracy alarm watches) is the accuracy lost against
that baseline in percent of it (regression: the MAE gained); only with at least
`MIN_LABELLED_ROWS` labelled predictions.

Metrics (namespace METRICS_NAMESPACE, dimension EndpointName, timestamp the window's end): the
counts above, then Accuracy, Precision, Recall, F1, RocAuc (classification) or MAE, RMSE, R2
(regression), and AccuracyDropPercent. Report: `<PROJECT>/model-quality/<ENDPOINT_NAME>/<window
end>/report.json` in the artifacts bucket, next to the drift reports.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from lambdas.shared.capture_files import Malformed, endpoint_capture_keys, object_lines, parse_s3_uri
from lambdas.shared.checks import (
    check_fields,
    environ_values,
    matching,
    one_of,
    sagemaker_name,
    setting,
    text,
    whole,
)
from lambdas.shared.quality import metrics
from lambdas.shared.quality.labels import Label, ground_truth_objects, parse_label, parse_prediction
from lambdas.shared.reports import put_report
from lambdas.shared.scheduled_window import Window
from lambdas.shared.served_model import NothingServed, served_package

NAMESPACE = "MLOps/ModelQuality"
DROP_METRIC = "AccuracyDropPercent"
METRIC_NAMES = {"accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "f1": "F1",
                "roc_auc": "RocAuc", "mae": "MAE", "rmse": "RMSE", "r2": "R2"}


class QualitySettingsError(ValueError):
    """Settings are missing or invalid; the message names every bad variable."""


def _s3_uri(value: Any) -> str:
    result = text(value)
    parse_s3_uri(result)
    return result


@dataclass(frozen=True)
class QualitySettings:
    """What one endpoint's model-quality check needs. The Lambda reads it from its environment
    (lambdas/quality/handler.py lists the variables); the CLI builds it from the project."""

    project: str = setting("PROJECT", text)
    endpoint_name: str = setting("ENDPOINT_NAME", sagemaker_name)
    task: str = setting("TASK", one_of("classification", "regression"))
    capture_s3_uri: str = setting("CAPTURE_S3_URI", _s3_uri)
    ground_truth_s3_uri: str = setting("GROUND_TRUTH_S3_URI", _s3_uri)
    artifacts_bucket: str = setting("ARTIFACTS_BUCKET", matching(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
                                                                 "an S3 bucket name"))
    kms_key_id: str | None = setting("KMS_KEY_ARN", text, default=None)
    window_minutes: int = setting("WINDOW_MINUTES", whole(1), default=60)
    label_lag_minutes: int = setting("LABEL_LAG_MINUTES", whole(0), default=60)
    min_labelled_rows: int = setting("MIN_LABELLED_ROWS", whole(1), default=50)
    namespace: str = setting("METRICS_NAMESPACE", text, default=NAMESPACE)

    def __post_init__(self) -> None:
        checked = _checked({f.name: getattr(self, f.name) for f in fields(self)})
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> QualitySettings:
        return cls(**_checked(environ_values(cls, environ)))

    def window_for(self, started: datetime) -> Window:
        """The predictions a check started at `started` judges."""
        return Window.ending_at(started - timedelta(minutes=self.label_lag_minutes), self.window_minutes)


def _checked(values: Mapping[str, Any]) -> dict[str, Any]:
    checked, problems = check_fields(QualitySettings, values)
    if problems:
        raise QualitySettingsError("invalid model-quality settings: " + "; ".join(problems))
    return checked


# --------------------------------------------------------------------------------------- reading


def read_predictions(s3: Any, settings: QualitySettings, since: datetime,
                     until: datetime) -> tuple[dict[str, tuple[datetime, float]], Counter, int]:
    """inference id -> (time, prediction) of [since, until); skipped lines by reason; files read."""
    bucket, prefix = parse_s3_uri(settings.capture_s3_uri)
    endpoint_prefix = "/".join(p for p in (prefix, settings.endpoint_name) if p) + "/"
    found: dict[str, tuple[datetime, float]] = {}
    skipped: Counter = Counter()
    keys = endpoint_capture_keys(s3, bucket, endpoint_prefix, since, until)
    for key in keys:
        for line in object_lines(s3, bucket, key):
            try:
                name, at, value = parse_prediction(line)
            except Malformed as exc:
                skipped[exc.reason] += 1
                continue
            if since <= at < until:
                found[name] = (at, value)
    return found, skipped, len(keys)


def read_labels(s3: Any, settings: QualitySettings, since: datetime, until: datetime,
                new_since: datetime | None = None) -> tuple[dict[str, Label], Counter, int]:
    """event id -> Label from the ground-truth hour folders of [since, until]; the newest file wins
    for an id labelled twice (counted as `relabelled`). Lines skipped are counted only in files
    written after `new_since` (each file is read by several checks; it is counted by one)."""
    found: dict[str, Label] = {}
    skipped: Counter = Counter()
    files = 0
    objects = ground_truth_objects(s3, settings.ground_truth_s3_uri, since, until + timedelta(microseconds=1))
    for bucket, key, filed in objects:
        files += 1
        counted = new_since is None or filed > new_since
        for line in object_lines(s3, bucket, key):
            try:
                name, value = parse_label(line)
            except Malformed as exc:
                skipped[exc.reason] += counted
                continue
            if name in found:
                skipped["relabelled"] += counted
            found[name] = Label(value, key, filed)
    return found, skipped, files


def served_baseline(sagemaker: Any, endpoint: str) -> tuple[str | None, dict[str, float]]:
    """(package ARN, its evaluation metrics) of what the endpoint serves; (None, {}) for a model
    without a package (the bootstrap model)."""
    try:
        package = served_package(sagemaker, endpoint)
    except NothingServed:
        return None, {}
    properties = package.get("CustomerMetadataProperties") or {}
    baseline = {}
    for name in METRIC_NAMES:
        try:
            value = float(properties[name])
        except (KeyError, ValueError):
            continue
        if math.isfinite(value):
            baseline[name] = value
    return package["ModelPackageArn"], baseline


# --------------------------------------------------------------------------------------- joining


@dataclass(frozen=True)
class Joined:
    pairs: list[tuple[float, float]]  # (label, prediction) of the window's labelled predictions
    unlabelled: int
    late: int
    unmatched: int


def join(current: Mapping[str, tuple[datetime, float]], previous: Mapping[str, tuple[datetime, float]],
         labels: Mapping[str, Label], previous_deadline: datetime,
         pending: Mapping[str, Any] | None = None, new_since: datetime | None = None) -> Joined:
    """The window's predictions with their labels. A label of the previous window's predictions
    filed after that window was judged (`previous_deadline`: its check's start) is late. Labels
    of predictions not judged yet (`pending`: after the window) wait for their check; a label
    naming no prediction is counted once, by the check after which its file was written
    (`new_since`: the previous check's start)."""
    pairs, late, unmatched = [], 0, 0
    for name, label in labels.items():
        if name in current:
            pairs.append((label.value, current[name][1]))
        elif name in previous:
            late += label.filed_at > previous_deadline
        elif name not in (pending or {}) and (new_since is None or label.filed_at > new_since):
            unmatched += 1
    return Joined(pairs, sum(1 for n in current if n not in labels), late, unmatched)


def window_metrics(task: str, pairs: list[tuple[float, float]]) -> dict[str, float | None]:
    labels = [y for y, _ in pairs]
    predictions = [p for _, p in pairs]
    if task == "classification":
        return metrics.classification([1 if y >= 0.5 else 0 for y in labels], predictions)
    return metrics.regression(labels, predictions)


# --------------------------------------------------------------------------------------- the check


def run_quality_check(settings: QualitySettings, started: datetime, *, s3: Any, sagemaker: Any,
                      cloudwatch: Any) -> dict[str, Any]:
    """One check started at `started`: read, join, compare, report, publish. Its summary."""
    window = settings.window_for(started)
    previous = Window.ending_at(window.since, settings.window_minutes)
    read, bad_predictions, capture_files = read_predictions(s3, settings, previous.since, started)
    earlier = {n: v for n, v in read.items() if v[0] < window.since}
    current = {n: v for n, v in read.items() if window.since <= v[0] < window.until}
    pending = {n: v for n, v in read.items() if v[0] >= window.until}
    last_check = started - timedelta(minutes=settings.window_minutes)
    labels, bad_labels, label_files = read_labels(s3, settings, previous.since, started, new_since=last_check)
    joined = join(current, earlier, labels, window.since + timedelta(minutes=settings.label_lag_minutes),
                  pending, new_since=last_check)
    package, baseline = served_baseline(sagemaker, settings.endpoint_name)
    enough = len(joined.pairs) >= settings.min_labelled_rows
    values = window_metrics(settings.task, joined.pairs) if enough else {}
    drop = metrics.quality_drop_percent(settings.task, values, baseline) if enough else None
    counts = {"LabelledRecords": len(joined.pairs), "UnlabelledPredictions": joined.unlabelled,
              "LateLabels": joined.late, "UnmatchedLabels": joined.unmatched,
              "MalformedLabels": sum(v for k, v in bad_labels.items() if k != "relabelled"),
              "MalformedPredictions": sum(bad_predictions.values())}
    status = "ok" if enough else "insufficient_labels"
    if enough and not baseline:
        status = "no_baseline"
    summary: dict[str, Any] = {
        "endpoint": settings.endpoint_name, "task": settings.task, "window": window.as_dict(),
        "status": status, "model_package_arn": package, "baseline": baseline,
        "metrics": values, "drop_percent": drop, "counts": counts,
        "skipped": {"labels": dict(bad_labels), "predictions": dict(bad_predictions)},
        "files": {"capture": capture_files, "ground_truth": label_files},
        "min_labelled_rows": settings.min_labelled_rows,
    }
    key = f"{settings.project}/model-quality/{settings.endpoint_name}/{window.label}/report.json"
    summary["report"] = put_report(s3, settings.artifacts_bucket, key,
                                   json.dumps(summary, indent=2, default=str).encode(), "application/json",
                                   settings.kms_key_id)
    datums = [*counts.items(), *((METRIC_NAMES[k], v) for k, v in values.items() if v is not None)]
    if drop is not None:
        datums.append((DROP_METRIC, drop))
    dimensions = [{"Name": "EndpointName", "Value": settings.endpoint_name}]
    cloudwatch.put_metric_data(Namespace=settings.namespace, MetricData=[
        {"MetricName": name, "Dimensions": dimensions, "Timestamp": window.until, "Value": float(value),
         "Unit": "Percent" if name == DROP_METRIC else "None"}
        for name, value in datums])
    summary["metrics_published"] = len(datums)
    return summary
