"""`mlops drill rollback --env ENV --project P [--via metric|state] [--json]`: a game day.

It drives the project's endpoint error-rate alarm (the critical alarm a bad deployment trips
first) to ALARM, waits for the rollback handler to act on that incident, checks that the
endpoint serves the known-good config again (InService), and reports the seconds from the
alarm's transition to restored traffic. Then it puts the alarm back.

- `--via state` (the default in AWS): SetAlarmState ALARM, as the CloudWatch docs suggest for
  testing alarm actions; CloudWatch's next evaluation returns it to its real state. Metrics of
  the AWS/ namespaces cannot be written with PutMetricData, so this is the way in AWS.
- `--via metric` (the default locally): PutMetricData of failing invocations over the alarm's
  evaluation periods, so the whole path runs, alarm evaluation included; afterwards healthy
  invocations are added to the same periods until the rate is back under half the threshold.

The rollback is real: the endpoint goes back to the config the newest deployment replaced and
that deployment's package is marked Rejected (re-approve it to deploy it again). When nothing was
deployed over the endpoint's first config the handler has nothing to restore, the endpoint keeps
serving that config, and the drill says so (`decision`: `nothing-to-restore`).

Locally the local control plane runs while the drill waits (alarm evaluation, events, the
handlers). Prod needs `--yes-prod`. Exit codes: 0 restored; 1 the rollback path is broken (the
message names the step: alarm, handler, endpoint); 2 bad input (refused prod, unknown project,
not deployed).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lambdas.shared.control import history
from lambdas.shared.control.dynamo import DeploymentHistory, from_item
from lambdas.shared.control.events import to_datetime
from mlops.project import Project
from stacks.config import ENVIRONMENT_NAMES, Environment
from stacks.naming import Naming, ProjectNames

ERROR_RATE_ALARM = "{endpoint}-critical-error-rate"
DRILL_REASON = "mlops drill rollback: game-day test of the rollback path"
FAILING_INVOCATIONS = 100.0
POLL_SECONDS = {"local": 0.2, "aws": 5.0}
DEFAULT_TIMEOUT = {"local": 120.0, "aws": 900.0}


class DrillError(RuntimeError):
    """The drill could not run or the rollback path is broken; the message says which step."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class DrillTarget:
    environment: str
    project: str
    endpoint: str
    alarm: str
    deployments_table: str
    audit_table: str
    local: bool

    @classmethod
    def of(cls, env: Environment, project: str) -> DrillTarget:
        names = ProjectNames(Naming.of(env), project)
        return cls(env.name, project, names.endpoint, ERROR_RATE_ALARM.format(endpoint=names.endpoint),
                   f"{names.base}-deployments", f"{names.base}-audit", env.is_local)


def breach_data(alarm: dict[str, Any], now: datetime) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, MetricData) that put every evaluated period of the error-rate alarm at 100%
    errors; DrillError when the alarm is not the shape `--via metric` knows."""
    queries = [q["MetricStat"] for q in alarm.get("Metrics") or [] if q.get("MetricStat")]
    names = {q["Metric"]["MetricName"] for q in queries}
    if "Invocations" not in names or not any(n.endswith("Errors") for n in names):
        raise DrillError(f"alarm {alarm['AlarmName']} is not an error-rate alarm on Invocations and "
                         "*Errors metrics: use --via state", exit_code=2)
    return _datapoints(queries, alarm, now, lambda name: FAILING_INVOCATIONS)


def healthy_data(alarm: dict[str, Any], now: datetime) -> list[tuple[str, list[dict[str, Any]]]]:
    """Healthy invocations (no errors) for the same periods: the rate drops under half the
    threshold."""
    queries = [q["MetricStat"] for q in alarm.get("Metrics") or [] if q.get("MetricStat")]
    needed = math.ceil(100.0 * FAILING_INVOCATIONS / (float(alarm["Threshold"]) / 2))
    extra = max(0.0, needed - FAILING_INVOCATIONS)
    return _datapoints([q for q in queries if q["Metric"]["MetricName"] == "Invocations"], alarm, now,
                       lambda name: extra)


def _datapoints(queries: list[dict[str, Any]], alarm: dict[str, Any], now: datetime,
                value: Callable[[str], float]) -> list[tuple[str, list[dict[str, Any]]]]:
    from local_aws.control_plane import alarm_period

    period, periods = alarm_period(alarm), int(alarm["EvaluationPeriods"])
    # One datapoint a second inside each of the last `periods` periods (counted back from now).
    stamps = [now - timedelta(seconds=period * i + 1) for i in range(periods)]
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for q in queries:
        metric = q["Metric"]
        by_namespace.setdefault(metric["Namespace"], []).extend(
            {"MetricName": metric["MetricName"], "Dimensions": metric.get("Dimensions", []),
             "Value": value(metric["MetricName"]), "Unit": "Count", "Timestamp": stamp}
            for stamp in stamps)
    return list(by_namespace.items())


class Drill:
    def __init__(self, target: DrillTarget, client: Callable[[str], Any], *, via: str,
                 timeout_s: float, control_plane: Any = None,
                 report: Callable[[str], None] = lambda _: None):
        self.target, self.client, self.via = target, client, via
        self.timeout_s, self.control_plane, self.report = timeout_s, control_plane, report
        self.poll = POLL_SECONDS["local" if target.local else "aws"]

    def _settle(self) -> None:
        if self.control_plane is not None:
            self.control_plane.run_until_idle()

    def _alarm(self) -> dict[str, Any]:
        found = self.client("cloudwatch").describe_alarms(AlarmNames=[self.target.alarm])["MetricAlarms"]
        if not found:
            raise DrillError(f"alarm {self.target.alarm} not found: is project {self.target.project} "
                             f"deployed in {self.target.environment}?", exit_code=2)
        return found[0]

    def _endpoint(self) -> dict[str, Any]:
        try:
            return self.client("sagemaker").describe_endpoint(EndpointName=self.target.endpoint)
        except Exception as exc:
            raise DrillError(f"endpoint {self.target.endpoint}: {exc}", exit_code=2) from exc

    def _put(self, data: list[tuple[str, list[dict[str, Any]]]]) -> None:
        cloudwatch = self.client("cloudwatch")
        for namespace, items in data:
            for start in range(0, len(items), 20):
                cloudwatch.put_metric_data(Namespace=namespace, MetricData=items[start:start + 20])

    def _incident(self, since: datetime) -> dict[str, Any] | None:
        """The rollback handler's audit record of an incident on the drill's alarm since `since`."""
        found = self.client("dynamodb").query(
            TableName=self.target.audit_table, IndexName="by_action",
            KeyConditionExpression="#a = :a", ExpressionAttributeNames={"#a": "action"},
            ExpressionAttributeValues={":a": {"S": "rollback"}})["Items"]
        records = []
        for item in map(from_item, found):
            inputs = json.loads(item.get("inputs") or "{}")
            when = to_datetime(item["event_time"].replace("Z", "+00:00"))
            if inputs.get("alarm") == self.target.alarm and when >= since:
                records.append({**item, "inputs": inputs})
        return max(records, key=lambda r: r["recorded_at"]) if records else None

    def _trigger(self, alarm: dict[str, Any]) -> None:
        if self.via == "metric":
            self._put(breach_data(alarm, datetime.now(UTC)))
            self.report(f"pushed failing invocations into {alarm['EvaluationPeriods']} period(s) of "
                        f"{self.target.alarm}")
        else:
            self.client("cloudwatch").set_alarm_state(
                AlarmName=self.target.alarm, StateValue="ALARM", StateReason=DRILL_REASON)
            self.report(f"set {self.target.alarm} to ALARM")

    def _restore(self, alarm: dict[str, Any]) -> bool:
        """Put the alarm back; True when it is out of ALARM."""
        if self.via == "metric":
            self._put(healthy_data(alarm, datetime.now(UTC)))
        else:
            self.client("cloudwatch").set_alarm_state(
                AlarmName=self.target.alarm, StateValue="OK", StateReason="mlops drill rollback: drill over")
        self._settle()
        state = self._alarm()["StateValue"]
        self.report(f"{self.target.alarm} is {state} again")
        return state != "ALARM"

    def run(self) -> dict[str, Any]:
        t = self.target
        self._settle()  # work already queued (a deployment after a pipeline run) finishes first
        alarm = self._alarm()
        if alarm["StateValue"] == "ALARM":
            raise DrillError(f"alarm {t.alarm} is already in ALARM: a real incident? Not drilling on top")
        endpoint = self._endpoint()
        if endpoint["EndpointStatus"] != "InService":
            raise DrillError(f"endpoint {t.endpoint} is {endpoint['EndpointStatus']}, not InService", 2)
        before = endpoint["EndpointConfigName"]
        plan = history.rollback_decision(
            DeploymentHistory(self.client("dynamodb"), t.deployments_table).list(t.endpoint), before)
        self.report(f"{t.endpoint} serves {before}; the rollback handler should: {plan.action} "
                    f"({plan.reason})")
        started = datetime.now(UTC) - timedelta(seconds=1)
        self._trigger(alarm)
        incident, serving, deadline = None, endpoint, time.monotonic() + self.timeout_s
        try:
            while time.monotonic() < deadline:
                if self.control_plane is not None:
                    self.control_plane.tick()
                incident = incident or self._incident(started)
                if incident is not None:
                    serving = self._endpoint()
                    if serving["EndpointStatus"] == "InService" and \
                            serving["EndpointConfigName"] == _restored_config(incident, before):
                        break
                time.sleep(self.poll)
            restored_at = datetime.now(UTC)
        finally:
            alarm_restored = self._restore(alarm)
        return self._outcome(plan, before, incident, serving, restored_at, alarm_restored)

    def _outcome(self, plan: history.RollbackDecision, before: str, incident: dict[str, Any] | None,
                 serving: dict[str, Any], restored_at: datetime, alarm_restored: bool) -> dict[str, Any]:
        t = self.target
        base = {"environment": t.environment, "project": t.project, "endpoint": t.endpoint,
                "alarm": t.alarm, "via": self.via, "from_config": before, "alarm_restored": alarm_restored}
        if incident is None:
            alarm_state = self._alarm()["StateValue"]
            where = ("the alarm never went to ALARM" if self.via == "metric" and alarm_state != "ALARM"
                     else "no rollback decision was recorded for the incident (event rule, queue or "
                     "rollback handler)")
            return {**base, "restored": False, "seconds": None, "decision": None,
                    "error": f"after {self.timeout_s:.0f} s: {where}"}
        target = _restored_config(incident, before)
        restored = serving["EndpointConfigName"] == target and serving["EndpointStatus"] == "InService"
        alarm_time = to_datetime(incident["event_time"].replace("Z", "+00:00"))
        result = {**base, "restored": restored,
                  "seconds": round((restored_at - alarm_time).total_seconds(), 3) if restored else None,
                  "decision": incident["decision"], "to_config": target,
                  "serving": serving["EndpointConfigName"], "audit_id": incident["audit_id"],
                  "expected": plan.action}
        if incident["decision"] in ("rolled-back",):
            result["rejected_model_package_arn"] = incident["inputs"].get("bad_model_package_arn")
        if not restored:
            result["error"] = (f"the rollback handler decided {incident['decision']} but the endpoint "
                               f"serves {serving['EndpointConfigName']} ({serving['EndpointStatus']}), "
                               f"not {target}")
        return result


def _restored_config(incident: dict[str, Any], before: str) -> str:
    """The config the endpoint must serve after the handler's decision."""
    inputs = incident["inputs"]
    if incident["decision"] == "rolled-back":
        return inputs.get("restored_config") or inputs.get("known_good_config") or ""
    # already-restored / nothing-to-restore: the endpoint keeps what it served.
    return inputs.get("endpoint_config") or before


def add_drill_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, choices=ENVIRONMENT_NAMES)
    parser.add_argument("--project", required=True, help="a project in environments/projects/")
    parser.add_argument("--via", choices=("metric", "state"),
                        help="drive the alarm with failing-invocation metrics (local default) or "
                        "SetAlarmState (AWS default)")
    local, aws = DEFAULT_TIMEOUT["local"], DEFAULT_TIMEOUT["aws"]
    parser.add_argument("--timeout", type=float, help="seconds to wait for the rollback "
                        f"(default: {local:.0f} locally, {aws:.0f} in AWS)")
    parser.add_argument("--yes-prod", action="store_true", help="allow the drill in prod")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_drill_command(args: argparse.Namespace, checkout: Project) -> int:
    if args.env == "prod" and not args.yes_prod:
        _say("error: the drill rolls back the prod endpoint for real; repeat with --yes-prod to confirm")
        return 2
    if args.timeout is not None and args.timeout <= 0:
        _say(f"error: --timeout must be > 0 seconds, got {args.timeout:g}")
        return 2
    env = checkout.environments([args.env])[args.env]
    checkout.project(args.project, args.env)  # an unknown project: ConfigError, exit 2
    target = DrillTarget.of(env, args.project)
    kind = "local" if env.is_local else "aws"
    via = args.via or ("metric" if env.is_local else "state")
    if via == "metric" and not env.is_local:
        _say("error: --via metric writes AWS/SageMaker metrics, which only the local AWS accepts; "
             "use --via state")
        return 2
    control_plane = None
    if env.is_local:
        from local_aws.control_plane import LocalControlPlane
        from local_aws.lifecycle import LocalAwsError
        from mlops.deploy import Deployer

        try:
            server = Deployer(checkout).local.require()
        except LocalAwsError as exc:
            _say(f"error: {exc}")
            return 1
        control_plane = LocalControlPlane.for_server(server, checkout.local_dir, report=_say)
        client: Callable[[str], Any] = server.client
    else:
        import boto3

        session = boto3.session.Session(region_name=env.region)
        client = session.client
    drill = Drill(target, client, via=via, timeout_s=args.timeout or DEFAULT_TIMEOUT[kind],
                  control_plane=control_plane, report=_say)
    _say(f"==> rollback drill on {target.endpoint} ({args.env}) via {via}")
    try:
        result = drill.run()
    except DrillError as exc:
        _say(f"error: {exc}")
        if args.json:
            print(json.dumps({"restored": False, "seconds": None, "error": str(exc)}, indent=2))
        return exc.exit_code
    if args.json:
        print(json.dumps(result, indent=2))
    if not result["restored"]:
        _say(f"error: rollback drill failed: {result['error']}")
        return 1
    if result["decision"] == "rolled-back":
        human = (f"restored {result['to_config']} on {target.endpoint} {result['seconds']:.1f} s after "
                 f"the alarm (was {result['from_config']}; {result.get('rejected_model_package_arn')} "
                 "marked Rejected)")
    else:
        human = (f"the rollback handler ran ({result['decision']}): {target.endpoint} serves the "
                 f"known-good {result['to_config']} ({result['seconds']:.1f} s after the alarm)")
    if not args.json:
        print(human)
    else:
        _say(human)
    return 0
