"""Explainability check: the served model's feature attributions on served traffic against the
attributions it had on its validation split (SageMaker Clarify's feature-attribution drift).

    python3 explainability.py --endpoint NAME --capture-uri S3_URI --reports-uri S3_URI
        [--window-end ISO] [--window-minutes 60] [--lag-minutes 10] [--min-rows 100]
        [--max-rows 500] [--threshold 0.9] [--namespace MLOps/Explainability] [--kms-key-arn ARN]
        --output DIR

The one step of the project's explainability pipeline, which an EventBridge schedule starts. It
walks what the endpoint serves (DescribeEndpoint -> config -> model -> package), loads that
package's model.tar.gz with the serving code (inference.py), reads the requests captured in
[end - lag - window, end - lag) (end: --window-end, else the job's start; the lag waits for the
capture files SageMaker buffers), estimates their SHAP values against the reference's baseline
row and compares the global attributions with the model's explainability_reference.json by
nDCG (attribution.py). Every captured CSV row counts (requests need no inference id here). It
writes the window's analysis.json to `<reports-uri>/<endpoint>/<end as %Y-%m-%dT%H-%M-%SZ>/`
(and OUTPUT/analysis.json) and publishes, timestamped `until`, in `--namespace` with dimension
EndpointName:
  FeatureAttributionNDCG  nDCG of the window's ranking against the reference's (1.0: unchanged)
  AttributionRows         captured rows the attributions were computed on
The warning alarm watches FeatureAttributionNDCG < threshold and starts a retrain: the model now
leans on other features than it was validated with. A window with fewer than --min-rows rows
publishes AttributionRows only (no verdict on too little data). Nothing served, a bootstrap
model, or a model trained before the reference existed: the report says so, no metric, exit 0
(the next model brings a reference; failing would only retry). The same --window-end twice
writes the same report key and metric timestamps; without one the window ends when the job
starts, so an hourly schedule's windows may overlap or leave a gap of the start's jitter
(minutes). The report is written before the metrics, so a datapoint CloudWatch refuses (older
than two weeks: a re-check of an old window) loses no analysis; the report says what was
published. The serving code that scores is the bundle's inference.py, the same module the
train step copies into every artifact.
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import StepFailure, argument_parser, ensure_dir, log, run, write_json
from attribution import explain, ndcg, read_global
from dataset_version import captured_inputs
from inference import REFERENCE_FILE, BadRequest, as_features, input_fn, model_fn, predict_scores

from lambdas.shared.capture_files import parse_s3_uri, parse_time
from lambdas.shared.served_model import NothingServed, served_package

NDCG_METRIC, ROWS_METRIC = "FeatureAttributionNDCG", "AttributionRows"
SAMPLE_SEED = 0
# CloudWatch takes a datapoint's timestamp up to two weeks back and two hours ahead
# (PutMetricData, MetricDatum.Timestamp): a re-check of an older window writes its report only.
METRIC_MAX_AGE, METRIC_MAX_AHEAD = timedelta(days=14), timedelta(hours=2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--endpoint", required=True, help="the endpoint whose traffic is explained")
    parser.add_argument("--capture-uri", required=True, help="s3:// data capture of the endpoint")
    parser.add_argument("--reports-uri", required=True, help="s3:// prefix of the reports")
    parser.add_argument("--window-end", default="", help="ISO-8601 end of the window (default: now)")
    parser.add_argument("--window-minutes", type=int, default=60)
    parser.add_argument("--lag-minutes", type=int, default=10)
    parser.add_argument("--min-rows", type=int, default=100)
    parser.add_argument("--max-rows", type=int, default=500)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--namespace", default="MLOps/Explainability")
    parser.add_argument("--kms-key-arn", default="")
    parser.add_argument("--output", default="/opt/ml/processing/output/report")
    args = parser.parse_args(argv)
    for name in ("window_minutes", "min_rows", "max_rows"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.lag_minutes < 0:
        parser.error(f"--lag-minutes must not be negative, got {args.lag_minutes}")
    if not 0.0 < args.threshold <= 1.0:
        parser.error(f"--threshold is an nDCG in (0, 1], got {args.threshold}")
    return args


def window(end_text: str, window_minutes: int, lag_minutes: int) -> tuple[datetime, datetime, datetime]:
    """(end, since, until): the requests of [since, until) are explained; end names the report."""
    # Whole seconds, as the capture's inferenceTime: not whole minutes, which would leave out the
    # newest requests of a window checked without a lag (the local AWS's capture files are final
    # at once).
    end = (parse_time(end_text) if end_text else datetime.now(UTC)).replace(microsecond=0)
    until = end - timedelta(minutes=lag_minutes)
    return end, until - timedelta(minutes=window_minutes), until


def feature_frame(rows: list[str], model: Any, skipped: dict[str, int]) -> pd.DataFrame:
    """The captured CSV rows as the model's features; a row the model cannot take is counted."""
    try:
        return as_features(input_fn("\n".join(rows), "text/csv"), model)
    except BadRequest:
        pass
    frames = []
    for row in rows:  # one bad row must not hide the others
        try:
            frames.append(as_features(input_fn(row, "text/csv"), model))
        except BadRequest:
            skipped["unscoreable_row"] = skipped.get("unscoreable_row", 0) + 1
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=model.features)


def sample(frame: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    if len(frame) <= max_rows:
        return frame
    picked = np.sort(np.random.default_rng(SAMPLE_SEED).choice(len(frame), max_rows, replace=False))
    return frame.iloc[picked].reset_index(drop=True)


def compare(reference: dict[str, Any], current: dict[str, Any], threshold: float) -> dict[str, Any]:
    before = read_global(reference, REFERENCE_FILE)
    after = read_global(current, "the window's attributions")
    score = round(ndcg(before, after), 6)  # the report and the alarm judge the same number

    def top(values: dict[str, float]) -> list[str]:
        return sorted(values, key=lambda k: (-values[k], k))[:5]

    return {"ndcg": score, "threshold": threshold, "drifted": score < threshold,
            "reference_top": top(before), "current_top": top(after)}


def load_served_model(s3: Any, package: dict[str, Any], scratch: Path) -> tuple[Any, dict[str, Any] | None]:
    url = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    bucket, key = parse_s3_uri(url)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        archive.extractall(scratch, filter="data")
    model = model_fn(str(scratch))
    reference = scratch / REFERENCE_FILE
    return model, (json.loads(reference.read_text(encoding="utf-8")) if reference.is_file() else None)


def check(args: argparse.Namespace, s3: Any, sagemaker: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The window's report and the metric datapoints it publishes (none when nothing is served)."""
    end, since, until = window(args.window_end, args.window_minutes, args.lag_minutes)
    report: dict[str, Any] = {"endpoint": args.endpoint, "window": {
        "end": end.isoformat(), "since": since.isoformat(), "until": until.isoformat()}}
    try:
        package = served_package(sagemaker, args.endpoint)
    except NothingServed as exc:
        return {**report, "status": "nothing_served", "reason": str(exc)}, []
    report["model_package_arn"] = package["ModelPackageArn"]
    with tempfile.TemporaryDirectory(prefix="served-model-") as scratch:
        model, reference = load_served_model(s3, package, Path(scratch))
    if reference is None:
        return {**report, "status": "no_reference",
                "reason": f"the served model.tar.gz has no {REFERENCE_FILE} (trained before attributions "
                          "were recorded): the next model brings one"}, []
    if not isinstance(reference.get("baseline"), dict):
        raise ValueError(f"{REFERENCE_FILE} of {report['model_package_arn']} has no baseline row")
    skipped: dict[str, int] = {}
    requests = list(captured_inputs(s3, args.capture_uri, since, until, skipped))
    rows = [row for _, lines in requests for row in lines]
    frame = sample(feature_frame(rows, model, skipped), args.max_rows)
    report.update(requests=len(requests), captured_rows=len(rows), rows=len(frame), skipped=skipped)
    metrics = [{"MetricName": ROWS_METRIC, "Value": float(len(frame)), "Unit": "Count"}]
    if len(frame) < args.min_rows:
        report.update(status="too_few_rows",
                      reason=f"{len(frame)} rows in the window, the check needs {args.min_rows}")
    else:
        method = reference.get("method") or {}
        current = explain(lambda x: predict_scores(model.estimator, x, model.meta["task"]), frame,
                          reference["baseline"], int(method.get("permutations", 8)),
                          int(method.get("seed", 0)), source="captured traffic")
        report.update(status="checked", analysis=current, **compare(reference, current, args.threshold))
        metrics.append({"MetricName": NDCG_METRIC, "Value": report["ndcg"], "Unit": "None"})
    dimensions = [{"Name": "EndpointName", "Value": args.endpoint}]
    return report, [{**m, "Dimensions": dimensions, "Timestamp": until} for m in metrics]


def publish(cloudwatch: Any, namespace: str, report: dict[str, Any], datums: list[dict[str, Any]]) -> None:
    if not datums:
        return
    at, now = datums[0]["Timestamp"], datetime.now(UTC)
    if not now - METRIC_MAX_AGE < at < now + METRIC_MAX_AHEAD:
        report["metrics"] = (f"not published: CloudWatch takes timestamps from two weeks ago to two hours "
                             f"ahead, the window ended {at.isoformat()}")
        return
    cloudwatch.put_metric_data(Namespace=namespace, MetricData=datums)
    report["metrics"] = [d["MetricName"] for d in datums]


def put_report(s3: Any, reports_uri: str, report: dict[str, Any], kms_key_arn: str) -> str:
    bucket, prefix = parse_s3_uri(reports_uri)
    stamp = parse_time(report["window"]["end"]).strftime("%Y-%m-%dT%H-%M-%SZ")  # as the drift reports
    key = f"{prefix.rstrip('/')}/{report['endpoint']}/{stamp}/analysis.json".lstrip("/")
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_arn} if kms_key_arn else {}
    s3.put_object(Bucket=bucket, Key=key, Body=(json.dumps(report, indent=2, default=str) + "\n").encode(),
                  ContentType="application/json", **extra)
    return f"s3://{bucket}/{key}"


def main() -> None:
    args = parse_args()
    import boto3

    s3 = boto3.client("s3")
    try:
        report, datums = check(args, s3, boto3.client("sagemaker"))
    except ValueError as exc:  # a reference or window that cannot be compared
        raise StepFailure(f"explainability check of {args.endpoint}: {exc}") from exc
    # The report first: a metric CloudWatch refuses must not lose the analysis.
    report["report_uri"] = put_report(s3, args.reports_uri, report, args.kms_key_arn)
    write_json(ensure_dir(args.output) / "analysis.json", report)
    publish(boto3.client("cloudwatch"), args.namespace, report, datums)
    put_report(s3, args.reports_uri, report, args.kms_key_arn)  # with what was published
    write_json(Path(args.output) / "analysis.json", report)
    verdict = f"nDCG {report['ndcg']} (threshold {args.threshold})" if "ndcg" in report else report["reason"]
    log(f"{args.endpoint}: {report['status']}: {verdict}; {report['report_uri']}")


if __name__ == "__main__":
    run(main)
