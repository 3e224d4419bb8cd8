"""The drift check as a batch job, for windows too large for a Lambda (15 minutes, 10 GB):

    python -m lambdas.shared.drift [--since ISO] [--until ISO] [--output DIR] [--no-metrics]

The same `run_drift_check` the drift Lambda and `mlops drift check` run, configured by the same
environment variables as the Lambda (lambdas/drift/handler.py: PROJECT, ENDPOINT_NAME,
CAPTURE_S3_URI, ARTIFACTS_BUCKET, MODEL_PACKAGE_GROUP or REFERENCE_URI, DRIFT_PSI_THRESHOLD,
DRIFT_P_VALUE, ...), with the default AWS credential chain. As a SageMaker Processing job: the
drift function's zip as the code input, any image with Python 3.11, numpy and scipy (the
scikit-learn processing image), the variables as the job's Environment, the entrypoint
`python3 -m lambdas.shared.drift --since ... --until ...` and /opt/ml/processing/output as
`--output` (summary.json). The window defaults to WINDOW_MINUTES ending now. For a window one
instance cannot read in time, the project's drift batch pipeline (drift.batch.enabled) shards it
over several instances and merges their counts exactly (batch.py).

Progress goes to stderr. Exit 0 when the check ran (drift or not), 1 when it could not (reason in
/opt/ml/output/message, where a Processing job shows it, and on stderr), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lambdas.shared.drift.job import (
    DriftJobError,
    DriftSettings,
    Progress,
    Window,
    parse_utc,
    run_drift_check,
    throttled,
)

PROGRESS_SECONDS = 10.0
MESSAGE_FILE = Path("/opt/ml/output/message")


def _say(text: str) -> None:
    print(f"[drift-job] {text}", file=sys.stderr, flush=True)


def _fail(reason: str) -> int:
    try:  # where a Processing job shows its ExitMessage; absent on a laptop
        MESSAGE_FILE.parent.mkdir(parents=True, exist_ok=True)
        MESSAGE_FILE.write_text(reason + "\n", encoding="utf-8")
    except OSError:
        pass
    _say(f"error: {reason}")
    return 1


def _progress(event: Progress) -> None:
    counts = f" ({event.files} files, {event.records} records)" if event.stage == "capture" else ""
    _say(f"{event.stage}: {event.message}{counts}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambdas.shared.drift",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--since", type=parse_utc, help="window start, ISO-8601 UTC")
    parser.add_argument("--until", type=parse_utc, help="window end, ISO-8601 UTC (default: now)")
    parser.add_argument("--output", type=Path, help="folder for summary.json")
    parser.add_argument("--no-metrics", action="store_true", help="do not publish CloudWatch metrics")
    args = parser.parse_args(argv)
    try:
        settings = DriftSettings.from_env(os.environ)
    except DriftJobError as exc:
        return _fail(str(exc))
    until = args.until or datetime.now(UTC)
    since = args.since or until - timedelta(minutes=settings.window_minutes)
    if since >= until:
        parser.error(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
    import boto3

    session = boto3.session.Session()
    _say(f"checking {settings.endpoint_name} from {since.isoformat()} to {until.isoformat()}")
    try:
        summary = run_drift_check(
            settings, Window(since, until), s3=session.client("s3"), sagemaker=session.client("sagemaker"),
            cloudwatch=session.client("cloudwatch"), progress=throttled(_progress, PROGRESS_SECONDS),
            publish=not args.no_metrics,
        )
    except DriftJobError as exc:
        return _fail(str(exc))
    except Exception as exc:  # AWS errors: the job fails with the reason, the scheduler retries
        return _fail(f"{type(exc).__name__}: {exc}")
    text = json.dumps(summary, indent=2, default=str)
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "summary.json").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
