"""The steps of the project's drift batch pipeline (<prefix>-<project>-drift), for windows too
large for the drift Lambda (lambdas/shared/drift/batch.py explains the three steps):

    python3 drift_batch.py list  --window-end ISO|"" --started ISO --output DIR --output-uri S3_URI
    python3 drift_batch.py shard --window-end ISO|"" --started ISO --input DIR --output DIR
                                 [--resource-config /opt/ml/config/resourceconfig.json]
    python3 drift_batch.py merge --window-end ISO|"" --started ISO --partials DIR --listing DIR

Settings are the drift Lambda's environment variables (PROJECT, ENDPOINT_NAME, CAPTURE_S3_URI,
ARTIFACTS_BUCKET, DRIFT_PSI_THRESHOLD, DRIFT_P_VALUE, WINDOW_MINUTES, ...), which the pipeline's
steps carry as their Environment. `merge` writes the window's report.json and report.html
where the Lambda writes them and publishes the same MLOps/Drift metrics.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from _common import StepFailure, argument_parser, log, run

from lambdas.shared.drift.batch import (
    batch_window,
    capture_files,
    count_shard,
    current_host,
    list_window,
    merge_shards,
)
from lambdas.shared.drift.job import DriftJobError, DriftSettings
from lambdas.shared.drift.partial import PartialFormatError

RESOURCE_CONFIG = "/opt/ml/config/resourceconfig.json"


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("stage", choices=["list", "shard", "merge"])
    parser.add_argument("--window-end", default="", help="ISO-8601 end of the window (empty: the schedule's)")
    parser.add_argument("--started", required=True, help="the pipeline execution's start, ISO-8601")
    parser.add_argument("--output", help="list, shard: the folder the job uploads")
    parser.add_argument("--output-uri", help="list: the S3 URI of --output")
    parser.add_argument("--input", help="shard: the folder holding this instance's capture files")
    parser.add_argument("--resource-config", default=RESOURCE_CONFIG)
    parser.add_argument("--partials", help="merge: the folder of the shards' partials")
    parser.add_argument("--listing", help="merge: the folder of the list step's output")
    args = parser.parse_args()
    needed = {"list": ("output", "output_uri"), "shard": ("input", "output"),
              "merge": ("partials", "listing")}
    missing = [f"--{a.replace('_', '-')}" for a in needed[args.stage] if not getattr(args, a)]
    if missing:
        parser.error(f"{args.stage} needs {', '.join(missing)}")
    import boto3

    try:
        settings = DriftSettings.from_env(os.environ)
        window = batch_window(settings, args.window_end, args.started)
        s3 = boto3.client("s3")
        if args.stage == "list":
            listing = list_window(s3, settings, window, Path(args.output), args.output_uri)
            log(f"{settings.endpoint_name}: {listing['objects']} capture file(s) in [{listing['since']}, "
                f"{listing['until']})")
        elif args.stage == "shard":
            host = current_host(Path(args.resource_config))
            files = capture_files(Path(args.input))
            target = count_shard(s3, boto3.client("sagemaker"), settings, window, files,
                                 Path(args.output), host)
            log(f"{host}: {len(files)} capture file(s) -> {target.name}")
        else:
            summary = merge_shards(s3, boto3.client("sagemaker"), boto3.client("cloudwatch"), settings,
                                   window, Path(args.partials), Path(args.listing), now=datetime.now(UTC))
            log(f"{settings.endpoint_name}: {summary['shards']} shard(s), {summary['n_rows']} rows, "
                f"{'DRIFT' if summary['drifted'] else 'no drift'}: {summary['report_json']}")
    except (DriftJobError, PartialFormatError, ValueError) as exc:
        raise StepFailure(f"drift {args.stage}: {exc}") from exc


if __name__ == "__main__":
    run(main)
