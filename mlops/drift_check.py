"""`mlops drift check --env ENV --project P [--since ISO|30m|2h|1d] [--until ...] [--json]`.

Runs the drift Lambda's own check (lambdas/shared/drift/job.py) from a terminal: the project's
endpoint, its newest Approved model package as the reference, the captured requests of the
window, reports in the artifacts bucket, metrics in CloudWatch (so the drift alarms see a manual
check too; `--no-metrics` leaves them out). Locally it talks to the running local AWS and also
downloads the HTML report under .mlops/local/drift/ to open in a browser; elsewhere it uses the
default AWS credential chain.

The window defaults to the one the schedule checks: it ends now and is as long as the project's
`drift.schedule` rate (cron schedules: an hour).

Exit codes: 0 the check ran (drift or not), 1 it could not run (local AWS down, no reference,
project not deployed, AWS errors), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops.project import Project
from stacks.config import Environment
from stacks.naming import Naming, ProjectNames

if TYPE_CHECKING:
    # The engine (numpy, scipy) loads only when a check runs: every `mlops` command builds
    # this parser.
    from lambdas.shared.drift.job import DriftSettings, Progress

RELATIVE = re.compile(r"^(\d+)([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}
PROGRESS_SECONDS = 1.0


class DriftCheckError(RuntimeError):
    """The check could not run; the message says why and what to do."""


def parse_when(text: str, now: datetime) -> datetime:
    """`--since` / `--until`: ISO-8601 (naive = UTC) or `<n>m|h|d` before `now`."""
    from lambdas.shared.drift.job import parse_utc

    value = text.strip()
    relative = RELATIVE.match(value.lower())
    if relative:
        amount = int(relative.group(1))
        if amount == 0:
            raise ValueError(f"{text!r}: a relative time must be at least 1{relative.group(2)}")
        return now - timedelta(**{UNITS[relative.group(2)]: amount})
    try:
        return parse_utc(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO-8601 time (e.g. 2026-11-23T10:00:00Z) "
            "nor a relative time such as 30m, 2h or 1d"
        ) from None


def endpoint_name(names: ProjectNames) -> str:
    # The project stack names the real-time endpoint after the project (<prefix>-<project>).
    return names.base


def _settings(
    checkout: Project, env_name: str, project_name: str, reference_uri: str | None
) -> tuple[Environment, DriftSettings]:
    from lambdas.shared.drift.job import DriftSettings

    env = checkout.environments([env_name])[env_name]
    config = checkout.project(project_name, env_name)
    names = ProjectNames(Naming.of(env), project_name)
    settings = DriftSettings(
        project=project_name,
        endpoint_name=endpoint_name(names),
        capture_s3_uri=names.capture_uri,
        artifacts_bucket=names.artifacts_bucket,
        model_package_group=names.model_package_group,
        reference_uri=reference_uri,
        # None: the artifacts bucket's default encryption (the platform key) applies.
        kms_key_id=None,
        psi_threshold=config.drift.psi_threshold,
        p_value=config.drift.p_value,
        window_minutes=config.drift.window_minutes,
        min_rows=config.drift.min_rows,
        capture_lag_minutes=config.drift.capture_lag_minutes,
    )
    return env, settings


def _clients(checkout: Project, env: Environment) -> tuple[dict[str, Any], Any]:
    """(clients by service, the local server record or None)."""
    if env.is_local:
        from local_aws.lifecycle import LocalAwsError
        from mlops.deploy import Deployer

        try:
            server = Deployer(checkout).local.require()
        except LocalAwsError as exc:
            raise DriftCheckError(str(exc)) from None
        return {s: server.client(s) for s in ("s3", "sagemaker", "cloudwatch")}, server
    import boto3

    session = boto3.session.Session(region_name=env.region)
    return {s: session.client(s) for s in ("s3", "sagemaker", "cloudwatch")}, None


def run_check(
    checkout: Project,
    env_name: str,
    project_name: str,
    since: datetime | None,
    until: datetime | None,
    progress: Callable[[Progress], None] | None = None,
    *,
    reference_uri: str | None = None,
    publish_metrics: bool = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One drift check of the project's endpoint in `env_name`; the job's summary plus
    `report_html_local` (local environment: the downloaded HTML report)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from lambdas.shared.capture_files import parse_s3_uri
    from lambdas.shared.drift.job import ReferenceUnavailableError, Window, run_drift_check

    now = (now or datetime.now(UTC)).astimezone(UTC)
    env, settings = _settings(checkout, env_name, project_name, reference_uri)
    end = until or now - timedelta(minutes=settings.capture_lag_minutes)  # as the schedule's check
    window = Window(since or end - timedelta(minutes=settings.window_minutes), end)
    clients, server = _clients(checkout, env)
    try:
        summary = run_drift_check(
            settings, window, **clients, progress=progress, publish=publish_metrics, now=now
        )
    except ReferenceUnavailableError as exc:
        raise DriftCheckError(f"no reference to compare against: {exc}") from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        hint = (
            f" (is project {project_name} deployed to {env_name}? `mlops deploy {env_name}`)"
            if code in ("NoSuchBucket", "ResourceNotFound", "ValidationException")
            else ""
        )
        raise DriftCheckError(f"{exc}{hint}") from None
    except BotoCoreError as exc:  # no credentials, no connection
        raise DriftCheckError(str(exc)) from None
    if server is not None:
        bucket, key = parse_s3_uri(summary["report_html"])
        local = checkout.local_dir / "drift" / settings.endpoint_name / window.label / "report.html"
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(clients["s3"].get_object(Bucket=bucket, Key=key)["Body"].read())
        summary["report_html_local"] = str(local)
    return summary


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, metavar="ENV")
    parser.add_argument("--project", required=True, help="a project in environments/projects/")
    parser.add_argument(
        "--since",
        metavar="WHEN",
        help="window start: ISO-8601 (UTC unless it has an offset) or 30m, 2h, 1d ago "
        "(default: one schedule interval before --until)",
    )
    parser.add_argument("--until", metavar="WHEN", help="window end, same forms (default: now)")
    parser.add_argument(
        "--reference",
        metavar="S3_URI",
        help="compare against this model.tar.gz or reference_stats.json instead of "
        "the newest Approved model package",
    )
    parser.add_argument(
        "--no-metrics",
        action="store_true",
        help="write the reports but publish no CloudWatch metrics (no alarm sees it)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _human(summary: dict[str, Any]) -> str:
    s, w = summary["summary"], summary["window"]

    def num(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}"

    prediction = {None: "not tested", True: "DRIFTED", False: "no drift"}[s["prediction_drift"]]
    lines = [
        f"endpoint {summary['endpoint']}, window {w['since']} -> {w['until']}",
        f"rows: {summary['n_rows']} current ({summary['n_objects']} capture files, "
        f"{summary['malformed_records']} malformed records skipped), {s['n_ref_rows']} reference",
    ]
    if summary["status"] != "ok":
        lines.append("verdict: insufficient data (no feature had enough rows to test)")
    else:
        drifted = ", ".join(summary["drifted_features"]) or "none"
        lines += [
            f"verdict: {'DRIFT' if summary['drifted'] else 'no drift'}; drifted features "
            f"{s['n_drifted']} of {s['n_tested']} ({drifted})",
            f"max PSI {num(s['max_psi'])} ({s['max_psi_feature'] or '-'}); prediction PSI "
            f"{num(s['prediction_psi'])}, prediction {prediction}",
        ]
    lines.append(f"report: {summary['report_html']}")
    if summary.get("report_html_local"):
        lines.append(f"open:   {summary['report_html_local']}")
    if summary.get("metrics_skipped"):
        lines.append(f"metrics: none published ({summary['metrics_skipped']})")
    return "\n".join(lines)


def run_check_command(args: argparse.Namespace, checkout: Project) -> int:
    from lambdas.shared.drift.job import DriftSettingsError, throttled

    now = datetime.now(UTC)
    try:
        since = parse_when(args.since, now) if args.since else None
        until = parse_when(args.until, now) if args.until else None
    except ValueError as exc:
        _say(f"error: --since/--until: {exc}")
        return 2
    if since is not None and since >= (until or now):
        _say(f"error: --since {args.since} is not before --until {args.until or '(now)'}")
        return 2

    def show(event: Progress) -> None:
        # Stage changes as headings, the running capture counts indented under them.
        counting = event.stage == "capture" and event.records > 0
        _say(f"{'    ' if counting else '==> '}{event.message}")

    try:
        summary = run_check(
            checkout,
            args.env,
            args.project,
            since,
            until,
            throttled(show, PROGRESS_SECONDS),
            reference_uri=args.reference,
            publish_metrics=not args.no_metrics,
            now=now,
        )
    except DriftSettingsError as exc:  # only --reference can make them invalid
        _say(f"error: --reference: {exc}")
        return 2
    except DriftCheckError as exc:
        _say(f"error: {exc}")
        return 1
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(_human(summary))
    return 0
