"""Quality: on every scheduled event, one model-quality check of the project's endpoint.

Event: an SQS batch; each record's body is an EventBridge "Scheduled Event" (any EventBridge event
with a `time` works). The record runs `lambdas.shared.quality.job.run_quality_check` for the
predictions of [time - LABEL_LAG_MINUTES - WINDOW_MINUTES, time - LABEL_LAG_MINUTES): captured
predictions joined with Model Monitor ground-truth labels by inference id, the window's metrics
against the served package's evaluation, report.json in the artifacts bucket, and the
`MLOps/ModelQuality` metrics the accuracy alarm watches (AccuracyDropPercent). Records fail alone
(lambdas/shared/scheduled_shell.py). The same event twice writes the same report key and metric
timestamps.

Environment (read once per cold start; one message names every missing or invalid variable):

| variable | required | meaning |
| --- | --- | --- |
| `PROJECT` | yes | the ML project; reports under `s3://<ARTIFACTS_BUCKET>/<PROJECT>/model-quality/` |
| `ENDPOINT_NAME` | yes | the endpoint checked; the metrics' EndpointName |
| `TASK` | yes | `classification` or `regression`: which metrics |
| `CAPTURE_S3_URI` | yes | the endpoint's data-capture destination, `s3://<capture bucket>/<project>/` |
| `GROUND_TRUTH_S3_URI` | yes | where labels arrive: `s3://<capture bucket>/<project>/ground-truth/` |
| `ARTIFACTS_BUCKET` | yes | bucket of the reports |
| `KMS_KEY_ARN` | no | SSE-KMS key of the report objects |
| `WINDOW_MINUTES` | no: `60` | window length; match the schedule |
| `LABEL_LAG_MINUTES` | no: `60` | how long after a window its labels (and buffered capture) are waited for |
| `MIN_LABELLED_ROWS` | no: `50` | fewer labelled predictions: counts only, no metrics, no drop |
| `METRICS_NAMESPACE` | no: `MLOps/ModelQuality` | CloudWatch namespace |

IAM: s3:ListBucket on the capture bucket (the project's prefix), s3:GetObject on the capture and
ground-truth prefixes, s3:PutObject on `<PROJECT>/model-quality/*` of the artifacts bucket, the
KMS key, sagemaker:DescribeEndpoint/DescribeEndpointConfig/DescribeModel/DescribeModelPackage,
cloudwatch:PutMetricData (namespace condition). No numpy: Powertools is the only dependency.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.shared.quality.job import QualitySettings, run_quality_check
from lambdas.shared.scheduled_shell import Clients, scheduled_handler
from lambdas.shared.scheduled_window import scheduled_event_time

logger = Logger(service="quality")
settings = QualitySettings.from_env(os.environ)
client = Clients()


def check(record: SQSRecord) -> dict[str, Any]:
    started = scheduled_event_time(record.body)
    logger.append_keys(window_end=settings.window_for(started).until.isoformat())
    summary = run_quality_check(settings, started, s3=client("s3"), sagemaker=client("sagemaker"),
                                cloudwatch=client("cloudwatch"))
    logger.info("model-quality check done", extra={"quality": summary})
    return summary


handler = scheduled_handler(logger, "model-quality check", check)
