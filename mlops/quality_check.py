"""`mlops quality check --env ENV --project P [--at ISO|30m|2h] [--json]`.

Runs the quality Lambda's own check (lambdas/shared/quality/job.py) from a terminal, as if its
schedule fired at `--at` (default: now): the predictions of the window that check judges (it ends
`quality.label_lag_minutes` before, and is as long as the `quality.schedule` rate), joined with
the ground-truth labels by inference id, compared with the served package's evaluation; the
report goes to the artifacts bucket and the `MLOps/ModelQuality` metrics to CloudWatch, so the
accuracy alarm sees a manual check too. Locally it talks to the running local AWS.

Exit codes: 0 the check ran (whatever it found), 1 it could not (local AWS down, project not
deployed, AWS errors), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from mlops.drift_check import parse_when
from mlops.project import Project
from stacks.naming import Naming, ProjectNames


def settings_for(checkout: Project, env_name: str, project: str) -> Any:
    """The settings the project stack gives the quality function, from the project's config."""
    from lambdas.shared.quality.job import QualitySettings

    env = checkout.environments([env_name])[env_name]
    config = checkout.project(project, env_name)
    names = ProjectNames(Naming.of(env), project)
    return QualitySettings(
        project=project, endpoint_name=names.endpoint, task=config.task,
        capture_s3_uri=names.capture_uri, ground_truth_s3_uri=names.ground_truth_uri,
        artifacts_bucket=names.artifacts_bucket, window_minutes=config.quality.window_minutes,
        label_lag_minutes=config.quality.label_lag_minutes,
        min_labelled_rows=config.quality.min_labelled_rows)


def add_quality_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, metavar="ENV")
    parser.add_argument("--project", required=True, help="a project in environments/projects/")
    parser.add_argument("--at", help="run as if the schedule fired then: ISO-8601, or <n>m|h|d ago "
                        "(default: now)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")


def _human(summary: dict[str, Any]) -> str:
    counts, window = summary["counts"], summary["window"]
    values = ", ".join(f"{k} {v:.3f}" for k, v in summary["metrics"].items() if v is not None)
    drop = summary["drop_percent"]
    return (f"{summary['endpoint']} {window['since']} .. {window['until']}: {summary['status']}; "
            f"{counts['LabelledRecords']} labelled, {counts['UnlabelledPredictions']} unlabelled, "
            f"{counts['LateLabels']} late, {counts['UnmatchedLabels']} unmatched labels"
            + (f"; {values}" if values else "")
            + (f"; accuracy drop {drop:.1f}% against {summary['model_package_arn']}"
               if drop is not None else "")
            + f"\n    report: {summary['report']}")


def run_quality_command(args: argparse.Namespace, checkout: Project) -> int:
    from mlops.aws_clients import clients_for, reported

    now = datetime.now(UTC)
    try:
        at = parse_when(args.at, now) if args.at else now
    except ValueError as exc:
        print(f"error: --at: {exc}", file=sys.stderr)
        return 2
    from lambdas.shared.quality.job import run_quality_check

    settings = settings_for(checkout, args.env, args.project)

    def check() -> dict[str, Any]:
        client = clients_for(checkout, checkout.environments([args.env])[args.env])
        return run_quality_check(settings, at, s3=client("s3"), sagemaker=client("sagemaker"),
                                 cloudwatch=client("cloudwatch"))

    summary = reported(f"the model-quality check of {settings.endpoint_name}", check)
    if summary is None:
        return 1
    print(json.dumps(summary, indent=2, default=str) if args.json else _human(summary))
    return 0
