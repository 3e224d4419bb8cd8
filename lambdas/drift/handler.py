"""Drift: on every scheduled event, one drift check of the project's endpoint over the past window.

Event: an SQS batch; each record's body is an EventBridge "Scheduled Event" (any EventBridge event
with a `time` works, e.g. one sent by hand to re-check a window). Window: [time - lag -
WINDOW_MINUTES, time - lag), lag = CAPTURE_LAG_MINUTES. Each record runs
`lambdas.shared.drift.job.run_drift_check`: the reference of the model package the endpoint
serves (cached by URI while the Lambda stays warm), the captured requests of the window, the
comparison, report.json and report.html in the artifacts bucket, and the metrics the drift alarms
watch (namespace METRICS_NAMESPACE, dimension EndpointName, + Feature for FeaturePSI:
MaxPSI, DriftedFeatureShare, DriftedFeatures, PredictionPSI, PredictionDrift, MalformedRecords,
CurrentRows), sent with PutMetricData.

Records fail alone (Powertools BatchProcessor, partial batch response): a body that is not an
event, or an AWS error, returns that record to the queue (and after maxReceiveCount to the DLQ).
No reference to compare against (no endpoint, its bootstrap model, or a package without
reference_stats.json) is logged as a warning and the record succeeds: retrying cannot help, and
the next scheduled run picks up a newly approved package. The same event twice writes the same
report keys and metric timestamps.

Environment (read once per cold start; a missing or invalid variable fails the cold start with
one message naming every bad variable):

| variable | required | meaning |
| --- | --- | --- |
| `PROJECT` | yes | the ML project; the reports go under `s3://<ARTIFACTS_BUCKET>/<PROJECT>/drift/` |
| `ENDPOINT_NAME` | yes | the endpoint whose captured data is checked; the metrics' EndpointName |
| `CAPTURE_S3_URI` | yes | the endpoint's data-capture destination, `s3://<capture bucket>/<project>/` |
| `ARTIFACTS_BUCKET` | yes | bucket for `<PROJECT>/drift/<ENDPOINT_NAME>/<window end>/report.json|html` |
| `MODEL_PACKAGE_GROUP` | no | the project's group (informational: the served package is the reference) |
| `REFERENCE_URI` | no | pins the reference: an `s3://` model.tar.gz or reference_stats.json |
| `KMS_KEY_ARN` | no | SSE-KMS key of the report objects (unset: the bucket's default encryption) |
| `DRIFT_PSI_THRESHOLD` | yes | minimum PSI of a "drifted" verdict (the project's `drift.psi_threshold`) |
| `DRIFT_P_VALUE` | yes | false discovery rate of the BH-adjusted p-values (`drift.p_value`) |
| `WINDOW_MINUTES` | no: `60` | window length; match the schedule (`job.window_minutes_for_schedule`) |
| `CAPTURE_LAG_MINUTES` | no: `0` | the window ends this long before the event (capture files come late) |
| `METRICS_NAMESPACE` | no: `MLOps/Drift` | CloudWatch namespace of the metrics |
| `DRIFT_MIN_ROWS` | no: `200` | fewer current values than this: the feature has insufficient data |
| `POWERTOOLS_SERVICE_NAME`, `POWERTOOLS_LOG_LEVEL`, ... | no | as documented by Powertools |


IAM: s3:GetObject on the capture prefix and the model artifacts, s3:ListBucket on the capture
bucket, s3:PutObject on `<PROJECT>/drift/*` of the artifacts bucket, kms:GenerateDataKey and
kms:Decrypt on the key, sagemaker:DescribeEndpoint, DescribeEndpointConfig, DescribeModel and
DescribeModelPackage (the served package),
cloudwatch:PutMetricData (condition cloudwatch:namespace = METRICS_NAMESPACE). Runtime: numpy and
scipy (a layer) besides Powertools; memory sized to the window (values are held as float64).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.shared.drift.job import (
    DriftSettings,
    Progress,
    ReferenceCache,
    ReferenceUnavailableError,
    run_drift_check,
    scheduled_event_time,
    throttled,
)
from lambdas.shared.scheduled_shell import Clients, scheduled_handler

PROGRESS_LOG_SECONDS = 30.0

logger = Logger(service="drift")
settings = DriftSettings.from_env(os.environ)
# Lives as long as the container: a warm Lambda prepares each reference once.
references = ReferenceCache()
client = Clients()


def _log_progress(event: Progress) -> None:
    logger.info(event.message, extra={"stage": event.stage, "files": event.files, "records": event.records})


def check(record: SQSRecord) -> dict[str, Any]:
    """One record: the window ending at its event's time, checked."""
    window = settings.window_for(scheduled_event_time(record.body))
    logger.append_keys(window_end=window.until.isoformat())
    try:
        summary = run_drift_check(
            settings,
            window,
            s3=client("s3"),
            sagemaker=client("sagemaker"),
            cloudwatch=client("cloudwatch"),
            cache=references,
            progress=throttled(_log_progress, PROGRESS_LOG_SECONDS),
        )
    except ReferenceUnavailableError as exc:
        logger.warning(f"drift check skipped: {exc}")
        return {"status": "skipped", "reason": str(exc), "window": window.as_dict()}
    logger.info("drift check done", extra={"drift": summary})
    return summary


handler = scheduled_handler(logger, "drift check", check)
