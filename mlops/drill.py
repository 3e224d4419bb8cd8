"""`mlops drill rollback --env ENV --project P [--via fault|outage|state] [--json]`: a game day.

- `--via fault` (the default): a real fault through the normal path, nothing written by hand. The
  drill registers a copy of the served model package whose model server fails a share of its
  requests (mlops/drill_fault.py: the server's MLOPS_FAULT_ERROR_PERCENT), the gate approves it
  (same evaluation), the deploy handler deploys it with the project's blue/green policy; the drill
  then sends held-out traffic while CloudWatch evaluates the error-rate alarm on the AWS/SageMaker
  metrics that traffic produced. The deployment guardrails (while the canary bakes) or the
  rollback handler (after it) put the known-good config back; the drill reports the seconds from
  the alarm's transition to restored traffic, waits under its traffic for the alarm to return to
  OK as the faulty datapoints age out of its evaluation window, then stops its traffic. The fault
  share is chosen so that canary share x fault share is twice the alarm's threshold, and the
  output says so.
- `--via outage` (the local AWS only): the model already serving, past its bake, starts failing
  its requests as an instance whose dependency broke would (the local endpoint runtime answers a
  share of them with a 500 from the container: local_aws/endpoint_runtime.py, inject_outage);
  held-out traffic finds out through the error-rate alarm on the AWS/SageMaker metrics, and the
  rollback handler restores the newest known-good deployment before the served one. The share
  is twice the alarm's threshold. AWS has no switch that breaks a SageMaker endpoint's
  instances, so elsewhere it is refused (use --via fault or --via state).
- `--via state`: SetAlarmState ALARM, as the CloudWatch docs suggest for testing alarm actions;
  no fault, so it proves the alarm -> event -> rollback handler path only; the rollback handler
  then restores the newest known-good deployment before the served one (none: it changes
  nothing and says `no-known-good`). The alarm is set back to OK afterwards.

Either way the rollback is real: the rolled-back deployment's package is marked Rejected (the
drill's own package, with --via fault). It needs a model deployed by the loop: an endpoint still
serving its bootstrap model has no known-good model to return to (exit 2).

The drill acts as the ML engineer persona, the approver: a package it registers counts as the
approver's (lambdas/shared/control/provenance.py), so the gate reviews it and the deploy handler
serves it. Locally it calls as a session of that persona's role; in AWS run it as that role.

Locally the local control plane runs while the drill waits (alarm evaluation, events, the
handlers). Prod needs `--yes-prod`. Exit codes: 0 restored; 1 the rollback path is broken (the
message names the step: gate, deploy, alarm, handler, endpoint); 2 bad input (refused prod,
unknown project, nothing deployed).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from lambdas.shared.control import history
from lambdas.shared.control.dynamo import DeploymentHistory, from_item
from lambdas.shared.control.events import to_datetime
from mlops.drill_fault import BackgroundTraffic, FaultPlan, fault_plan, fault_share, faulty_copy_request
from mlops.project import Project
from stacks.config import Environment
from stacks.naming import Naming, ProjectNames
from stacks.project_config import ProjectConfig

ERROR_RATE_ALARM = "{endpoint}-critical-error-rate"
# Who runs a game day: the approver, the one persona whose own packages the loop serves.
DRILL_PERSONA = "ml_engineer"
DRILL_REASON = "mlops drill rollback: game-day test of the rollback path"
POLL_SECONDS = {"local": 0.2, "aws": 5.0}
DEFAULT_TIMEOUT = {"local": 180.0, "aws": 1800.0}
TRAFFIC_RATE = {"local": 20.0, "aws": 5.0}  # requests per second while the drill runs


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
    production: bool = False

    @classmethod
    def of(cls, env: Environment, project: str) -> DrillTarget:
        names = ProjectNames(Naming.of(env), project)
        return cls(env.name, project, names.endpoint, ERROR_RATE_ALARM.format(endpoint=names.endpoint),
                   f"{names.base}-deployments", f"{names.base}-audit", env.is_local,
                   production=env.production)


@dataclass(frozen=True)
class Deployed:
    config: str
    model_package_arn: str


class Drill:
    def __init__(self, target: DrillTarget, client: Callable[[str], Any], *, via: str,
                 timeout_s: float, control_plane: Any = None,
                 report: Callable[[str], None] = lambda _: None,
                 config: ProjectConfig | None = None, rows: Any = None, rate: float = 5.0,
                 outage: Callable[[float], str] | None = None):
        self.target, self.client, self.via = target, client, via
        self.outage, self.outage_percent = outage, 0.0
        self.timeout_s, self.control_plane, self.report = timeout_s, control_plane, report
        self.config, self.rows, self.rate = config, rows, rate
        self.fault: FaultPlan | None = None
        self.created_arn: str | None = None
        self.poll = POLL_SECONDS["local" if target.local else "aws"]

    def _settle(self) -> None:
        if self.control_plane is not None:
            self.control_plane.run_until_idle()

    def _tick(self) -> None:
        if self.control_plane is not None:
            self.control_plane.tick()

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

    def _served(self, config: str) -> Deployed:
        """The model package behind `config`: the drill needs one the loop deployed."""
        sagemaker = self.client("sagemaker")
        variants = sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]
        container = sagemaker.describe_model(ModelName=variants[0]["ModelName"]).get("PrimaryContainer") or {}
        arn = container.get("ModelPackageName")
        if not arn:
            raise DrillError(f"{self.target.endpoint} serves {config}, its bootstrap model: deploy a model "
                             f"first (mlops pipeline run --env {self.target.environment} --project "
                             f"{self.target.project}); a rollback needs a known-good model to return to", 2)
        return Deployed(config, arn)

    def _incident(self, since: datetime) -> dict[str, Any] | None:
        """The rollback handler's audit record of an incident on the drill's alarm since `since`
        (only the records written since then are read: the audit table only grows)."""
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.target.audit_table, "IndexName": "by_action", "ScanIndexForward": False,
            "KeyConditionExpression": "#a = :a AND #r >= :since",
            "ExpressionAttributeNames": {"#a": "action", "#r": "recorded_at"},
            "ExpressionAttributeValues": {":a": {"S": "rollback"}, ":since": {"S": history.iso(since)}}}
        while True:
            page = self.client("dynamodb").query(**kwargs)
            found += page["Items"]
            if not page.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        records = []
        for item in map(from_item, found):
            inputs = json.loads(item.get("inputs") or "{}")
            when = to_datetime(item["event_time"].replace("Z", "+00:00"))
            if inputs.get("alarm") == self.target.alarm and when >= since:
                records.append({**item, "inputs": inputs})
        return max(records, key=lambda r: r["recorded_at"]) if records else None

    # --- --via fault: deploy the faulty copy through the gate and the deploy handler -------------
    def _deploy_fault(self, served: Deployed) -> tuple[Deployed, datetime | None]:
        """The faulty copy through the gate and the deploy handler, under traffic. Returns it once
        it serves all traffic, with None; or, when the deployment guardrails rolled it back while
        the canary baked, with the moment the endpoint was back on the known-good config."""
        sagemaker = self.client("sagemaker")
        package = sagemaker.describe_model_package(ModelPackageName=served.model_package_arn)
        assert self.fault is not None
        self.report(self.fault.explain())
        arn = sagemaker.create_model_package(**faulty_copy_request(package, self.fault))["ModelPackageArn"]
        self.created_arn = arn
        if self.target.production:
            self.report("prod: the gate only reviews; the approver persona must approve the "
                        "drill's package")
        self.report(f"registered the faulty copy {arn} (PendingManualApproval): gate, then deploy")
        version = sagemaker.describe_model_package(ModelPackageName=arn)["ModelPackageVersion"]
        config = history.resource_name(self.target.endpoint, arn, version)
        deadline, updating = time.monotonic() + self.timeout_s, False
        while time.monotonic() < deadline:
            self._tick()
            described = sagemaker.describe_model_package(ModelPackageName=arn)
            endpoint = self._endpoint()
            pending = (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
            updating |= pending == config
            if endpoint["EndpointStatus"] == "InService" and endpoint["EndpointConfigName"] == config:
                self.report(f"{self.target.endpoint} serves the faulty copy ({config})")
                return Deployed(config, arn), None
            if updating and endpoint["EndpointStatus"] == "InService" and \
                    endpoint["EndpointConfigName"] == served.config:
                self.report(f"the deployment guardrails rolled {config} back while it baked: "
                            f"{endpoint.get('FailureReason', '')}")
                return Deployed(config, arn), datetime.now(UTC)
            if described["ModelApprovalStatus"] == "Rejected" and not updating:
                raise DrillError(f"gate: the drill's package was rejected: "
                                 f"{described.get('ApprovalDescription')}")
            time.sleep(self.poll)
        raise DrillError(f"deploy: after {self.timeout_s:.0f} s {self.target.endpoint} does not serve "
                         f"{config} (gate or deploy handler; see their logs)")

    def _clean_up(self, served: Deployed) -> None:
        """After a drill that did not end restored: the drill's package is rejected and the
        known-good config put back at once, so no faulty model is left serving."""
        sagemaker = self.client("sagemaker")
        if self.created_arn:
            with contextlib.suppress(Exception):
                sagemaker.update_model_package(
                    ModelPackageArn=self.created_arn, ModelApprovalStatus="Rejected",
                    ApprovalDescription="mlops drill rollback: cleanup after a failed drill")
        endpoint = self._endpoint()
        if endpoint["EndpointConfigName"] != served.config and endpoint["EndpointStatus"] == "InService":
            self.report(f"cleanup: putting {served.config} back on {self.target.endpoint}")
            sagemaker.update_endpoint(EndpointName=self.target.endpoint, EndpointConfigName=served.config,
                                      RetainAllVariantProperties=True)

    def _traffic(self) -> BackgroundTraffic:
        self.report(f"sending held-out traffic at {self.rate:g} requests/s")
        return BackgroundTraffic(self.client("sagemaker-runtime"), self.target.endpoint, self.rows,
                                 self.rate).start()

    def _break_serving_fleet(self, threshold_percent: float) -> None:
        if self.outage is None:
            raise DrillError("--via outage breaks the serving instances, which only the local AWS can do "
                             "(AWS has no such switch for SageMaker endpoints): use --via fault or --via "
                             "state", exit_code=2)
        self.outage_percent = float(fault_share(threshold_percent))  # the whole fleet fails, undiluted
        config = self.outage(self.outage_percent)
        self.report(f"outage: {self.outage_percent:g}% of {config}'s requests now fail (a 500 from the "
                    f"container), twice the alarm's {threshold_percent:g}% threshold")

    def _set_alarm(self) -> None:
        self.client("cloudwatch").set_alarm_state(
            AlarmName=self.target.alarm, StateValue="ALARM", StateReason=DRILL_REASON)
        self.report(f"set {self.target.alarm} to ALARM")

    def _restore(self, alarm: dict[str, Any]) -> bool:
        """The alarm out of ALARM again; True when it is."""
        if self.via == "state":
            self.client("cloudwatch").set_alarm_state(
                AlarmName=self.target.alarm, StateValue="OK", StateReason="mlops drill rollback: drill over")
            self._settle()
        else:
            # The faulty datapoints leave the alarm's window as it moves on; CloudWatch then
            # returns it to OK by itself (missing data does not breach).
            from local_aws.control_plane import alarm_period

            window = alarm_period(alarm) * int(alarm["EvaluationPeriods"])
            self.report(f"waiting for {self.target.alarm} to leave ALARM (its window: {window} s)")
            deadline = time.monotonic() + window + 90
            while time.monotonic() < deadline and self._alarm()["StateValue"] == "ALARM":
                self._tick()
                time.sleep(max(self.poll, 1.0))
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
        served = self._served(endpoint["EndpointConfigName"])
        started = datetime.now(UTC) - timedelta(seconds=1)
        traffic, guarded_at, result = None, None, None
        try:
            if self.via == "fault":
                if self.config is None or self.rows is None:
                    raise ValueError("--via fault needs the project's config and held-out rows")
                self.fault = fault_plan(self.config, float(alarm["Threshold"]))
                # Traffic first: the canary must bake under load for the guardrails to see it.
                traffic = self._traffic()
                deployed, guarded_at = self._deploy_fault(served)
            elif self.via == "outage":
                traffic = self._traffic()
                deployed = served
                self._break_serving_fleet(float(alarm["Threshold"]))
            else:
                deployed = served
                self._set_alarm()
            if guarded_at is not None:
                result = self._guardrails_outcome(served, deployed, guarded_at)
            else:
                result = self._await_rollback(deployed, started)
            if result["restored"] and traffic is not None:
                # Under the traffic that goes on, as production's would: with none, the window's
                # last requests are the fault's, and a ratio alarm on a handful of them flaps.
                result["alarm_restored"] = self._restore(alarm)
        finally:
            sent = traffic.stop() if traffic is not None else None
            if self.outage is not None and self.outage_percent:
                # Whatever serves now is left healthy; a failure here must not hide the drill's.
                with contextlib.suppress(Exception):
                    self.outage(0.0)
            if result is None or not result["restored"]:
                self._clean_up(served)
        if "alarm_restored" not in result:
            result["alarm_restored"] = self._restore(alarm)
        if self.via == "outage":
            result.update(outage={"percent": self.outage_percent, "config": served.config}, traffic=sent,
                          known_good_config=result.get("to_config"))
        if self.via == "fault":
            result.update(fault=self.fault.describe() if self.fault else None, traffic=sent,
                          drill_model_package_arn=deployed.model_package_arn,
                          known_good_config=served.config)
        return result

    def _await_rollback(self, deployed: Deployed, started: datetime) -> dict[str, Any]:
        """The rollback handler's decision on the incident, and the endpoint serving its choice."""
        t, before = self.target, deployed.config
        plan = history.rollback_decision(
            DeploymentHistory(self.client("dynamodb"), t.deployments_table).list(t.endpoint), before,
            history.iso(datetime.now(UTC)))
        self.report(f"{t.endpoint} serves {before}; the rollback handler should: {plan.action} "
                    f"({plan.reason})")
        incident, serving, deadline = None, self._endpoint(), time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            self._tick()
            incident = incident or self._incident(started)
            if incident is not None:
                serving = self._endpoint()
                if serving["EndpointStatus"] == "InService" and \
                        serving["EndpointConfigName"] == _restored_config(incident, before):
                    break
            time.sleep(self.poll)
        return self._outcome(plan, before, incident, serving, datetime.now(UTC))

    def _guardrails_outcome(self, served: Deployed, deployed: Deployed,
                            restored_at: datetime) -> dict[str, Any]:
        """SageMaker's own auto-rollback ended the incident before the rollback handler could."""
        t = self.target
        alarm = self._alarm()
        changed = alarm.get("StateUpdatedTimestamp")
        seconds = (restored_at - changed).total_seconds() if isinstance(changed, datetime) else None
        return {"environment": t.environment, "project": t.project, "endpoint": t.endpoint,
                "alarm": t.alarm, "via": self.via, "from_config": deployed.config,
                "to_config": served.config, "serving": self._endpoint()["EndpointConfigName"],
                "restored": True, "decision": "guardrails-rolled-back",
                "seconds": round(seconds, 3) if seconds is not None and seconds >= 0 else None}

    def _outcome(self, plan: history.RollbackDecision, before: str, incident: dict[str, Any] | None,
                 serving: dict[str, Any], restored_at: datetime) -> dict[str, Any]:
        t = self.target
        base = {"environment": t.environment, "project": t.project, "endpoint": t.endpoint,
                "alarm": t.alarm, "via": self.via, "from_config": before}
        if incident is None:
            alarm_state = self._alarm()["StateValue"]
            where = ("the alarm never went to ALARM" if self.via != "state" and alarm_state != "ALARM"
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
    # any other decision (already-restored, no-known-good, ...): the endpoint keeps what it served.
    return inputs.get("endpoint_config") or before


def add_drill_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, metavar="ENV")
    parser.add_argument("--project", required=True, help="a project in environments/projects/")
    parser.add_argument("--via", choices=("fault", "outage", "state"), default="fault",
                        help="deploy a copy of the served model that fails a share of its requests "
                        "and send traffic (default); locally, make the serving instances fail a share "
                        "of the traffic (outage); or only SetAlarmState ALARM (state)")
    parser.add_argument("--rate", type=float, help="requests per second of the drill's traffic "
                        f"(default: {TRAFFIC_RATE['local']:g} locally, {TRAFFIC_RATE['aws']:g} in AWS)")
    local, aws = DEFAULT_TIMEOUT["local"], DEFAULT_TIMEOUT["aws"]
    parser.add_argument("--timeout", type=float, help="seconds to wait for the rollback "
                        f"(default: {local:.0f} locally, {aws:.0f} in AWS)")
    parser.add_argument("--yes-prod", action="store_true",
                        help="allow the drill in a production environment (`production: true`)")
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_drill_command(args: argparse.Namespace, checkout: Project) -> int:
    env = checkout.environment(args.env)
    if env.production and not args.yes_prod:
        _say(f"error: {env.name} is a production environment: the drill rolls back its endpoint for real; "
             "repeat with --yes-prod to confirm")
        return 2
    if args.timeout is not None and args.timeout <= 0:
        _say(f"error: --timeout must be > 0 seconds, got {args.timeout:g}")
        return 2
    if args.via == "outage" and not env.is_local:
        _say("error: --via outage breaks the serving instances, which only the local AWS can do (AWS has "
             "no such switch for SageMaker endpoints): use --via fault or --via state")
        return 2
    config = checkout.project(args.project, args.env)  # an unknown project: ConfigError, exit 2
    target = DrillTarget.of(env, args.project)
    kind = "local" if env.is_local else "aws"
    if args.rate is not None and args.rate <= 0:
        _say(f"error: --rate must be > 0 requests per second, got {args.rate:g}")
        return 2
    from local_aws.lifecycle import LocalAwsError
    from mlops.aws_clients import clients_for

    try:
        client = clients_for(checkout, env, persona=DRILL_PERSONA)
    except LocalAwsError as exc:
        _say(f"error: {exc}")
        return 1
    control_plane, outage = None, None
    if env.is_local:
        from local_aws.control_plane import LocalControlPlane
        from mlops.deploy import Deployer

        server = Deployer(checkout).local.require()
        control_plane = LocalControlPlane.for_server(server, checkout.local_dir, report=_say)
        outage = functools.partial(server.endpoint_outage, env.account_id, target.endpoint)
    rows = None
    if args.via in ("fault", "outage"):
        from mlops.traffic import dataset, held_out_rows

        rows = held_out_rows(config, dataset(config, client))
    drill = Drill(target, client, via=args.via, timeout_s=args.timeout or DEFAULT_TIMEOUT[kind],
                  control_plane=control_plane, report=_say, config=config, rows=rows,
                  rate=args.rate or TRAFFIC_RATE[kind], outage=outage)
    _say(f"==> rollback drill on {target.endpoint} ({args.env}) via {args.via}")
    try:
        if control_plane is None:
            result = drill.run()
        else:
            from local_aws.control_plane import stepping

            # The local AWS's background plane pauses: the drill steps it and times each step.
            with stepping(checkout.local_dir), control_plane:
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
