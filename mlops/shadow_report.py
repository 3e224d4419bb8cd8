"""`mlops shadow report --env ENV --project P [--since WHEN] [--until WHEN] [--require-pass] [--json]`.

Compares the shadow variant of a project's endpoint with production over a window
(lambdas/shared/shadow/report.py): both variants' captured answers joined by inference id (else
event id), the agreement rate, the score distributions' distance (the drift engine's KS and
Jensen-Shannon), each variant's p95 ModelLatency; judged against the project's
`serving.shadow_*` thresholds and written to
s3://<artifacts>/<project>/shadow/<endpoint>/<window end>/report.json. Locally it talks to the
running local AWS.

The window defaults to the drift check's: it ends now and is as long as `drift.schedule`'s rate.

Exit codes: 0 the report was made (pass or fail; with --require-pass only a pass), 1 it could not
be made (local AWS down, project not deployed, AWS errors) or --require-pass and it failed,
2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops.drift_check import endpoint_name, parse_when
from mlops.project import Project
from stacks.naming import Naming, ProjectNames


def settings_for(checkout: Project, env_name: str, project: str) -> Any:
    """The report's settings from the project's config (its endpoint, capture, thresholds)."""
    from lambdas.shared.shadow.report import ShadowSettings, Thresholds

    env = checkout.environments([env_name])[env_name]
    config = checkout.project(project, env_name)
    names = ProjectNames(Naming.of(env), project)
    serving = config.serving
    return ShadowSettings(
        project=project, endpoint_name=endpoint_name(names), task=config.task,
        capture_s3_uri=names.capture_uri, artifacts_bucket=names.artifacts_bucket,
        thresholds=Thresholds(min_agreement=serving.shadow_min_agreement,
                              max_p95_ratio=serving.shadow_max_p95_ratio,
                              min_rows=serving.shadow_min_rows, tolerance=serving.shadow_tolerance))


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, metavar="ENV")
    parser.add_argument("--project", required=True, help="a project in environments/projects/")
    parser.add_argument("--since", metavar="WHEN", help="window start: ISO-8601 or 30m, 2h, 1d ago "
                        "(default: one drift schedule interval before --until)")
    parser.add_argument("--until", metavar="WHEN", help="window end, same forms (default: now)")
    parser.add_argument("--require-pass", action="store_true",
                        help="exit 1 when the shadow does not pass (default: 0 either way)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")


def _human(report: dict[str, Any]) -> str:
    def num(value: Any, fmt: str = ".4f") -> str:
        return "-" if value is None else format(value, fmt)

    w, d, lat = report["window"], report["score_distance"], report["latency_p95_ms"]
    return "\n".join([
        f"endpoint {report['endpoint']}: {report['variants']['shadow']} against "
        f"{report['variants']['production']}, window {w['since']} -> {w['until']}",
        f"rows: {report['rows']} joined ({report['production_only']} production only, "
        f"{report['shadow_only']} shadow only)",
        f"agreement {num(report['agreement_rate'])}; score distance KS {num(d['ks'])} "
        f"(p {num(d['ks_p_value'])}), JS {num(d['js'])}",
        f"p95 latency: production {num(lat['production'], '.1f')} ms, shadow {num(lat['shadow'], '.1f')} ms "
        f"(ratio {num(lat['ratio'], '.2f')})",
        f"verdict: {'PASS' if report['passed'] else 'FAIL'}: {'; '.join(report['reasons'])}",
        f"report: {report['report']}",
    ])


def run_report_command(args: argparse.Namespace, checkout: Project) -> int:
    from lambdas.shared.scheduled_window import Window
    from lambdas.shared.served_model import variant_packages
    from lambdas.shared.shadow.report import run_shadow_report
    from mlops.aws_clients import clients_for, reported

    now = datetime.now(UTC)
    settings = settings_for(checkout, args.env, args.project)  # a bad project: ConfigError, exit 2
    window_minutes = checkout.project(args.project, args.env).drift.window_minutes
    try:
        until = parse_when(args.until, now) if args.until else now
        since = parse_when(args.since, now) if args.since else until - timedelta(minutes=window_minutes)
        window = Window(since, until)
    except ValueError as exc:
        print(f"error: --since/--until: {exc}", file=sys.stderr)
        return 2

    def make() -> dict[str, Any]:
        client = clients_for(checkout, checkout.environments([args.env])[args.env])
        print(f"==> reading the captures of {settings.endpoint_name} from {window.since.isoformat()} "
              f"to {window.until.isoformat()}", file=sys.stderr, flush=True)
        packages = variant_packages(client("sagemaker"), settings.endpoint_name)
        return run_shadow_report(settings, window, s3=client("s3"), cloudwatch=client("cloudwatch"), now=now,
                                 packages=packages)

    report = reported(f"the shadow report of {settings.endpoint_name}", make)
    if report is None:
        return 1
    print(json.dumps(report, indent=2, default=str) if args.json else _human(report))
    return 1 if args.require_pass and not report["passed"] else 0
