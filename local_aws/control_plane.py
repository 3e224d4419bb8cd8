"""The local control plane: what AWS does around the control loop that moto does not.

Used only by the local environment (the `mlops` commands with `--env local`, `mlops local loop`)
and by the tests. Each `tick()` does, against the local AWS, what these AWS services do by
themselves:

- CloudWatch: evaluates every metric alarm on the metrics in the local AWS (GetMetricData over
  the alarm's last EvaluationPeriods periods, DatapointsToAlarm, TreatMissingData), moves its
  state (SetAlarmState), publishes to its alarm/OK action topics, and sends the "CloudWatch Alarm
  State Change" event to EventBridge.
- SageMaker: sends "SageMaker Model Package State Change" to EventBridge for every model package
  that is new or whose approval status changed since the last tick (the event's detail is the
  package as DescribeModelPackage returns it, times in epoch milliseconds, as SageMaker sends it).
- EventBridge: moto routes PutEvents to the rules' SQS targets itself, but fires no schedule:
  `rate(...)` rules fire here when due (`cron(...)` ones only through `fire_schedule`), to their
  SQS targets (the "Scheduled Event") and their SageMaker pipeline targets (StartPipelineExecution
  with the target's SageMakerPipelineParameters, which the local AWS's pipeline runner executes).
- Lambda: for every SQS event source mapping, receives a batch and invokes the function in its
  own process (local_aws/lambda_runtime.py: the package and layers Terraform deployed, as the
  local Lambda hands them out, with the function's environment variables), as the Lambda service
  does: the records the handler reports failed (partial batch response) are left to SQS, visible
  again after the queue's visibility timeout, in the DLQ after maxReceiveCount (moto applies the
  queue's redrive policy); the rest are deleted. Output goes to <state dir>/logs/<function>.log.

It acts in every account the local AWS holds state in (a local environment in a second
account, environments/localprod.yaml): the default account with the deployer's key, another as a
session of that account's access role (stacks/moto_gaps.account_access_role), as a service acts in
each account on its own. Each alarm, rule, package and mapping is acted on in its own account (the
one its ARN names), and its events go to that account's default bus.

The local AWS ticks a plane of its own in the background (local_aws/background.py); `stepping()`
pauses it while a command steps one itself, and `tick()` holds a file lock so ticks never overlap.

What it remembers between ticks (the alarm states and package statuses it last saw, the last
firing of each schedule) is in <state dir>/control-plane.json.

UpdateEndpoint, percentiles and metric math in GetMetricData are closed inside the moto server
(local_aws/moto_server.py): the handlers and this module make the same calls as in AWS.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from local_aws.lambda_code import DeployedCode
from local_aws.lambda_runtime import LambdaProcesses
from local_aws.role_sessions import RoleSessions
from stacks import moto_gaps

ROOT = Path(__file__).resolve().parents[1]
STATE_FILE = "control-plane.json"
PAUSE_DIR = "control-plane.paused"  # a token per command stepping the plane itself
LOCK_FILE = "control-plane.lock"
ALARM_EVENT = ("aws.cloudwatch", "CloudWatch Alarm State Change")
PACKAGE_EVENT = ("aws.sagemaker", "SageMaker Model Package State Change")
SCHEDULE_EVENT = ("aws.events", "Scheduled Event")
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
# The session the control plane acts in another account with (CloudTrail would name it).
SESSION_NAME = "mlops-local-control-plane"
# How many rounds `run_until_idle` may take; each round is quick, so this only stops a loop
# that keeps producing work (a handler failing forever ends in the DLQ well before).
MAX_ROUNDS = 200

Report = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# --- CloudWatch alarm evaluation (pure) ---------------------------------------------------------

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}
_WORDS = {
    "GreaterThanThreshold": "greater than",
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}


@dataclass(frozen=True)
class Verdict:
    state: str  # OK | ALARM | INSUFFICIENT_DATA; None-like "keep" is expressed by state == current
    reason: str
    values: tuple[float | None, ...]  # newest last, one per evaluated period


def judge(alarm: dict[str, Any], values: Sequence[float | None]) -> Verdict:
    """CloudWatch's verdict for `alarm` (DescribeAlarms shape) on the values of its last
    EvaluationPeriods periods, oldest first (None: no datapoint in that period)."""
    n = int(alarm["EvaluationPeriods"])
    m = int(alarm.get("DatapointsToAlarm") or n)
    operator, threshold = alarm["ComparisonOperator"], float(alarm["Threshold"])
    if operator not in _COMPARE:
        raise ValueError(f"alarm {alarm['AlarmName']}: comparison {operator} is not evaluated locally")
    missing = alarm.get("TreatMissingData") or "missing"
    window = list(values)[-n:]
    present = [v for v in window if v is not None and not math.isnan(v)]
    breaching = sum(_COMPARE[operator](v, threshold) for v in present)
    if missing == "breaching":
        breaching += len(window) - len(present)
    shown = ", ".join("-" if v is None else f"{v:g}" for v in window)
    if breaching >= m:
        state = "ALARM"
        how = "were" if breaching > 1 else "was"
        reason = (f"Threshold Crossed: {breaching} out of the last {n} datapoints [{shown}] {how} "
                  f"{_WORDS[operator]} the threshold ({threshold:g}) (minimum {m} datapoint(s) for "
                  "OK -> ALARM transition).")
    elif not present and missing in ("missing", "ignore"):
        state = alarm.get("StateValue", "INSUFFICIENT_DATA") if missing == "ignore" else "INSUFFICIENT_DATA"
        reason = (f"Insufficient Data: no datapoints in the last {n} period(s) "
                  f"(treat missing data: {missing}).")
    else:
        state = "OK"
        reason = (f"Threshold Crossed: {breaching} out of the last {n} datapoints [{shown}] breached "
                  f"the threshold ({threshold:g}) (minimum {m} datapoint(s) for OK -> ALARM transition).")
    return Verdict(state, reason, tuple(window))


def metric_queries(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """GetMetricData queries for an alarm: its own metric math queries, or one for its metric."""
    if alarm.get("Metrics"):
        return [{k: v for k, v in q.items() if v is not None} for q in alarm["Metrics"]]
    stat = alarm.get("ExtendedStatistic") or alarm.get("Statistic")
    metric = {"Namespace": alarm["Namespace"], "MetricName": alarm["MetricName"],
              "Dimensions": alarm.get("Dimensions", [])}
    query = {"Metric": metric, "Period": int(alarm["Period"]), "Stat": stat}
    if alarm.get("Unit"):
        query["Unit"] = alarm["Unit"]
    return [{"Id": "m", "MetricStat": query, "ReturnData": True}]


def alarm_period(alarm: dict[str, Any]) -> int:
    if alarm.get("Period"):
        return int(alarm["Period"])
    periods = [q["MetricStat"]["Period"] for q in alarm.get("Metrics", []) if q.get("MetricStat")]
    periods += [q["Period"] for q in alarm.get("Metrics", []) if q.get("Period")]
    if not periods:
        raise ValueError(f"alarm {alarm['AlarmName']} has no period")
    return int(max(periods))


def cloudwatch_time(moment: datetime) -> str:
    """CloudWatch's timestamp form in alarm events: 2026-03-02T11:04:40.985+0000."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _epoch_ms(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: _epoch_ms(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_epoch_ms(v) for v in value]
    return value


def package_event_detail(described: dict[str, Any]) -> dict[str, Any]:
    """The detail of SageMaker's model package state change event: the package as described."""
    return _epoch_ms({k: v for k, v in described.items() if k != "ResponseMetadata"})


def alarm_event_detail(alarm: dict[str, Any], new: Verdict, moment: datetime) -> dict[str, Any]:
    configuration: dict[str, Any] = {"description": alarm.get("AlarmDescription", "")}
    if alarm.get("Metrics"):
        configuration["metrics"] = alarm["Metrics"]
    else:
        configuration["metrics"] = [{"id": "m", "metricStat": {
            "metric": {"namespace": alarm.get("Namespace"), "name": alarm.get("MetricName"),
                       "dimensions": {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}},
            "period": alarm.get("Period"),
            "stat": alarm.get("ExtendedStatistic") or alarm.get("Statistic")}, "returnData": True}]
    previous_time = alarm.get("StateUpdatedTimestamp")
    return _epoch_ms({
        "alarmName": alarm["AlarmName"],
        "state": {"value": new.state, "reason": new.reason,
                  "reasonData": json.dumps({"version": "1.0", "recentDatapoints": [
                      v for v in new.values if v is not None], "threshold": alarm["Threshold"]}),
                  "timestamp": cloudwatch_time(moment)},
        "previousState": {"value": alarm.get("StateValue", "INSUFFICIENT_DATA"),
                          "reason": alarm.get("StateReason", ""),
                          "timestamp": cloudwatch_time(previous_time) if isinstance(previous_time, datetime)
                          else cloudwatch_time(moment)},
        "configuration": configuration,
    })


def rate_seconds(expression: str) -> int | None:
    match = _RATE.match(expression.strip())
    if not match:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


# --- the control plane --------------------------------------------------------------------------


@dataclass
class TickResult:
    alarm_changes: list[str] = field(default_factory=list)  # "name: OK -> ALARM"
    events: list[str] = field(default_factory=list)
    deliveries: list[str] = field(default_factory=list)  # "function: n ok, m failed"
    failures: list[str] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return bool(self.alarm_changes or self.events or self.deliveries)

    def merge(self, other: TickResult) -> None:
        for name in ("alarm_changes", "events", "deliveries", "failures"):
            getattr(self, name).extend(getattr(other, name))


class LocalControlPlane:
    """clients(service, credentials=None): a client of the local AWS, with the deployer's key or
    the given session's; accounts(): the accounts it holds state in."""

    def __init__(self, clients: Callable[..., Any], client_env: dict[str, str], region: str,
                 state_dir: Path, report: Report = _quiet, server_id: str = "",
                 accounts: Callable[[], list[str]] = lambda: [moto_gaps.DEFAULT_ACCOUNT]):
        self.clients, self.region, self.state_dir, self.report = clients, region, state_dir, report
        self.accounts = accounts
        self.sessions = RoleSessions(lambda: self.client("sts"))
        # What the state file remembers is about one server's world: a new server starts afresh.
        self.server_id = server_id
        self.state_file = state_dir / STATE_FILE
        # Each function runs the package and layers Terraform deployed, fetched from the local
        # Lambda as AWS hands them out (local_aws/lambda_code.py), never this checkout's modules.
        code = DeployedCode(lambda account: self.client("lambda", account), state_dir / "lambda",
                            client_env.get("AWS_CA_BUNDLE"))
        self.lambdas = LambdaProcesses(client_env, region, state_dir / "logs", code=code,
                                       sessions=self.sessions)
        self._made: dict[tuple[str, str, str], Any] = {}
        self._queue_urls: dict[str, str] = {}  # queue ARN -> URL: asked once, not every round
        self.failed_targets: list[str] = []  # targets a schedule could not start, until reported

    def close(self) -> None:
        """Stops the functions' execution environments (by pid)."""
        self.lambdas.close()

    def __enter__(self) -> LocalControlPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def for_server(cls, server: Any, state_dir: Path, report: Report = _quiet) -> LocalControlPlane:
        """For a running local AWS (local_aws.lifecycle.ServerRecord)."""
        return cls(server.client, server.client_env(), server.region, state_dir, report,
                   server_id=f"{server.pid}@{server.started_at}", accounts=server.accounts)

    def client(self, service: str, account: str = moto_gaps.DEFAULT_ACCOUNT) -> Any:
        """A client acting in the account (made again when its session is renewed)."""
        role_arn = moto_gaps.account_access_role(account)
        credentials = self.sessions.credentials(role_arn, SESSION_NAME) if role_arn else None
        key = (service, account, (credentials or {}).get("AWS_ACCESS_KEY_ID", ""))
        if key not in self._made:
            self._made[key] = self.clients(service, credentials=credentials) if credentials \
                else self.clients(service)
        return self._made[key]

    def queue_url(self, queue_arn: str) -> str:
        if queue_arn not in self._queue_urls:
            name = queue_arn.rsplit(":", 1)[-1]
            sqs = self.client("sqs", _account(queue_arn))
            self._queue_urls[queue_arn] = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        return self._queue_urls[queue_arn]

    # state between commands
    def _load(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            state = {}
        if state.get("server") != self.server_id:
            state = {}
        kept = {k: state.get(k, {}) for k in ("alarms", "packages", "schedules")}
        return {"server": self.server_id, **kept}

    def _save(self, state: dict[str, Any]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
        tmp.replace(self.state_file)

    # CloudWatch
    def alarms(self) -> list[dict[str, Any]]:
        """Every account's metric alarms."""
        return [a for account in self.accounts()
                for page in self.client("cloudwatch", account).get_paginator("describe_alarms")
                .paginate(AlarmTypes=["MetricAlarm"])
                for a in page.get("MetricAlarms", [])]

    def values(self, alarm: dict[str, Any], now: datetime) -> list[float | None]:
        """The alarm's value in each of its last EvaluationPeriods periods, oldest first."""
        period, n = alarm_period(alarm), int(alarm["EvaluationPeriods"])
        end = now.replace(microsecond=0)
        start = end - timedelta(seconds=period * n)
        queries = metric_queries(alarm)
        got = self.client("cloudwatch", _account(alarm["AlarmArn"])).get_metric_data(
            MetricDataQueries=queries, StartTime=start, EndTime=end)["MetricDataResults"]
        returned = {q["Id"] for q in queries if q.get("ReturnData", True)}
        result = next((r for r in got if r["Id"] in returned), None)
        values: list[float | None] = [None] * n
        for stamp, value in zip(result["Timestamps"], result["Values"], strict=True) if result else ():
            index = int((stamp - start).total_seconds() // period)
            if 0 <= index < n:
                values[index] = value
        return values

    def evaluate_alarms(self, state: dict[str, Any], now: datetime | None = None) -> TickResult:
        """Evaluate every alarm; a state change (ours, or one set by SetAlarmState since the last
        tick) goes to the alarm's action topics and to EventBridge, as CloudWatch sends it."""
        result = TickResult()
        known: dict[str, str] = state["alarms"]  # by ARN: alarm names are per account
        for alarm in self.alarms():
            name, moment = alarm["AlarmName"], now or datetime.now(UTC)
            arn, current = alarm["AlarmArn"], alarm.get("StateValue", "INSUFFICIENT_DATA")
            if arn in known and known[arn] != current:  # SetAlarmState by someone else
                set_by_hand = Verdict(current, alarm.get("StateReason", ""), ())
                self._changed(result, {**alarm, "StateValue": known[arn]}, set_by_hand, moment)
            known[arn] = current
            try:
                verdict = judge(alarm, self.values(alarm, moment))
            except Exception as exc:  # one alarm the evaluator cannot read must not stop the rest
                result.failures.append(f"alarm {name}: not evaluated: {exc}")
                continue
            if verdict.state == current:
                continue
            reason_data = json.dumps({"version": "1.0", "recentDatapoints":
                                      [v for v in verdict.values if v is not None]})
            self.client("cloudwatch", _account(arn)).set_alarm_state(
                AlarmName=name, StateValue=verdict.state, StateReason=verdict.reason[:1023],
                StateReasonData=reason_data)
            known[arn] = verdict.state
            self._changed(result, alarm, verdict, moment)
        return result

    def _changed(self, result: TickResult, alarm: dict[str, Any], verdict: Verdict, moment: datetime) -> None:
        change = f"alarm {alarm['AlarmName']}: {alarm.get('StateValue')} -> {verdict.state}"
        result.alarm_changes.append(change)
        self.report(change)
        self._alarm_actions(alarm, verdict, moment)
        self._put_event(_account(alarm["AlarmArn"]), ALARM_EVENT, [alarm["AlarmArn"]],
                        alarm_event_detail(alarm, verdict, moment))
        result.events.append(f"{ALARM_EVENT[1]}: {alarm['AlarmName']} {verdict.state}")

    def _alarm_actions(self, alarm: dict[str, Any], verdict: Verdict, moment: datetime) -> None:
        actions = {"ALARM": "AlarmActions", "OK": "OKActions",
                   "INSUFFICIENT_DATA": "InsufficientDataActions"}[verdict.state]
        if not alarm.get("ActionsEnabled", True):
            return
        message = {"AlarmName": alarm["AlarmName"], "AlarmDescription": alarm.get("AlarmDescription"),
                   "NewStateValue": verdict.state, "NewStateReason": verdict.reason,
                   "OldStateValue": alarm.get("StateValue"), "StateChangeTime": cloudwatch_time(moment),
                   "Region": self.region, "AlarmArn": alarm["AlarmArn"]}
        for topic in alarm.get(actions, []):
            if ":sns:" in topic:
                self.client("sns", _account(topic)).publish(
                    TopicArn=topic, Subject=f"{verdict.state}: \"{alarm['AlarmName']}\""[:100],
                    Message=json.dumps(message))

    def _put_event(self, account: str, kind: tuple[str, str], resources: list[str],
                   detail: dict[str, Any]) -> None:
        """The service's event, on the default bus of the account it happened in."""
        entry = {"Source": kind[0], "DetailType": kind[1], "Resources": resources,
                 "Detail": json.dumps(detail, default=str)}
        answer = self.client("events", account).put_events(Entries=[entry])
        if answer.get("FailedEntryCount"):
            raise RuntimeError(f"PutEvents refused a {kind[1]} event: {answer['Entries']}")

    # SageMaker
    def package_events(self, state: dict[str, Any]) -> TickResult:
        result = TickResult()
        for account in self.accounts():
            result.merge(self._package_events(account, state["packages"]))
        return result

    def _package_events(self, account: str, seen: dict[str, list[Any]]) -> TickResult:
        result = TickResult()
        sagemaker = self.client("sagemaker", account)
        groups = [g["ModelPackageGroupName"] for page in
                  sagemaker.get_paginator("list_model_package_groups").paginate()
                  for g in page["ModelPackageGroupSummaryList"]]
        for group in groups:
            for page in sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=group):
                for summary in page["ModelPackageSummaryList"]:
                    arn, status = summary["ModelPackageArn"], summary.get("ModelApprovalStatus")
                    if seen.get(arn, [None])[0] == status:
                        continue
                    described = sagemaker.describe_model_package(ModelPackageName=arn)
                    self._put_event(account, PACKAGE_EVENT, [arn], package_event_detail(described))
                    seen[arn] = [described.get("ModelApprovalStatus"), str(described.get("LastModifiedTime"))]
                    note = f"{PACKAGE_EVENT[1]}: {arn.rsplit('/', 2)[-2]}/{arn.rsplit('/', 1)[-1]} {status}"
                    result.events.append(note)
                    self.report(note)
        return result

    # EventBridge schedules
    def schedules(self) -> list[dict[str, Any]]:
        """Every account's schedule rules."""
        return [r for account in self.accounts()
                for page in self.client("events", account).get_paginator("list_rules").paginate()
                for r in page["Rules"] if r.get("ScheduleExpression")]

    def fire_schedule(self, rule: dict[str, Any], moment: datetime) -> list[str]:
        """Send the rule's "Scheduled Event" to its SQS targets and start its SageMaker pipeline
        targets, as EventBridge does; returns the pipeline execution ARNs it started."""
        event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": SCHEDULE_EVENT[1],
                 "source": SCHEDULE_EVENT[0], "account": rule["Arn"].split(":")[4],
                 "time": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": self.region,
                 "resources": [rule["Arn"]], "detail": {}}
        started, account = [], _account(rule["Arn"])
        targets = self.client("events", account).list_targets_by_rule(Rule=rule["Name"])["Targets"]
        for target in targets:
            if ":sqs:" in target["Arn"]:
                url = self.queue_url(target["Arn"])
                self.client("sqs", _account(target["Arn"])).send_message(QueueUrl=url,
                                                                         MessageBody=json.dumps(event))
            elif ":sagemaker:" in target["Arn"] and ":pipeline/" in target["Arn"]:
                try:
                    started.append(self.start_pipeline_target(target, event))
                except ClientError as exc:
                    # EventBridge keeps a target's failure to that target (FailedInvocations); the
                    # rule's other targets, and the tick, go on.
                    self.failed_targets.append(f"rule {rule['Name']}: pipeline target {target['Arn']}: {exc}")
        return started

    def start_pipeline_target(self, target: dict[str, Any], event: dict[str, Any]) -> str:
        """StartPipelineExecution as EventBridge makes it for a pipeline target: the pipeline by
        its name (the ARN's last part), the target's static parameters; the event id as the
        idempotency token, so a redelivered event starts one execution."""
        parameters = (target.get("SageMakerPipelineParameters") or {}).get("PipelineParameterList") or []
        request: dict[str, Any] = {"PipelineName": target["Arn"].rsplit("/", 1)[-1],
                                   "ClientRequestToken": event["id"][:128]}
        if parameters:
            request["PipelineParameters"] = parameters
        sagemaker = self.client("sagemaker", _account(target["Arn"]))
        return sagemaker.start_pipeline_execution(**request)["PipelineExecutionArn"]

    def due_schedules(self, state: dict[str, Any], moment: datetime) -> TickResult:
        result = TickResult()
        fired: dict[str, float] = state["schedules"]
        for rule in self.schedules():
            every = rate_seconds(rule["ScheduleExpression"])
            if every is None or rule.get("State") == "DISABLED":
                continue
            last = fired.setdefault(rule["Arn"], moment.timestamp())  # first seen: starts counting
            if moment.timestamp() - last >= every:
                started = self.fire_schedule(rule, moment)
                fired[rule["Arn"]] = moment.timestamp()
                result.events.append(f"{SCHEDULE_EVENT[1]}: {rule['Name']}")
                result.events += [f"StartPipelineExecution: {arn}" for arn in started]
                result.failures += self.failed_targets
                for failure in self.failed_targets:
                    self.report(f"error: {failure}")
                self.failed_targets.clear()
                self.report(f"schedule {rule['Name']} fired")
        return result

    # Lambda event source mappings
    def mappings(self) -> list[dict[str, Any]]:
        """Every account's enabled SQS event source mappings."""
        pages = (page for account in self.accounts() for page in
                 self.client("lambda", account).get_paginator("list_event_source_mappings").paginate())
        return [m for page in pages for m in page["EventSourceMappings"]
                if ":sqs:" in m.get("EventSourceArn", "") and m.get("State", "Enabled") != "Disabled"]

    def deliver(self) -> TickResult:
        """One round: one batch from each mapped queue to its function."""
        result = TickResult()
        for mapping in self.mappings():
            queue_arn = mapping["EventSourceArn"]
            sqs = self.client("sqs", _account(queue_arn))
            lam = self.client("lambda", _account(mapping["FunctionArn"]))
            url = self.queue_url(queue_arn)
            batch = min(int(mapping.get("BatchSize") or 10), 10)
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=batch,
                                      AttributeNames=["All"], MessageAttributeNames=["All"])
            messages = got.get("Messages", [])
            if not messages:
                continue
            configuration = lam.get_function_configuration(FunctionName=mapping["FunctionArn"])
            event = {"Records": [_sqs_record(m, queue_arn, self.region) for m in messages]}
            try:
                response = self.lambdas.invoke(configuration, event)
                reports_failures = "ReportBatchItemFailures" in (mapping.get("FunctionResponseTypes") or [])
                failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])} \
                    if reports_failures else set()
            except RuntimeError as exc:
                failed = {m["MessageId"] for m in messages}
                result.failures.append(str(exc))
                self.report(f"error: {exc}")
            for message in messages:
                # A failed record is left alone, as the Lambda service leaves it: SQS makes it
                # visible again after the queue's visibility timeout, and moves it to the DLQ
                # after maxReceiveCount receives.
                if message["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            name = configuration["FunctionName"]
            line = f"{name}: {len(messages) - len(failed)} processed, {len(failed)} failed"
            result.deliveries.append(line)
            self.report(line)
        return result

    # the loop
    def tick(self, now: datetime | None = None) -> TickResult:
        with _exclusive(self.state_dir):  # one tick at a time: the background's or a command's
            return self._tick(now)

    def _tick(self, now: datetime | None) -> TickResult:
        moment = now or datetime.now(UTC)
        state = self._load()
        result = self.evaluate_alarms(state, now)
        result.merge(self.package_events(state))
        result.merge(self.due_schedules(state, moment))
        self._save(state)
        result.merge(self.deliver())
        return result

    def run_until_idle(self, timeout_s: float = 120.0) -> TickResult:
        """Ticks until one finds nothing to do: every event delivered, every alarm settled."""
        total, deadline = TickResult(), time.monotonic() + timeout_s
        for _ in range(MAX_ROUNDS):
            result = self.tick()
            total.merge(result)
            if not result.busy or time.monotonic() > deadline:
                break
        return total


@contextlib.contextmanager
def _exclusive(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def stepping(state_dir: Path) -> Iterator[None]:
    """The background control plane of the local AWS pauses while a command (or a test) steps
    the plane itself and counts what it did: `mlops local loop`, `pipeline run`, `drill`.
    Pauses nest: each holds a token file of its own, named by its pid, until it ends."""
    tokens = state_dir / PAUSE_DIR
    tokens.mkdir(parents=True, exist_ok=True)
    token = tokens / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    token.touch()
    with _exclusive(state_dir):  # a background tick under way finishes first
        pass
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            token.unlink()


def background_paused(state_dir: Path) -> bool:
    """True while a live process holds a pause (a crashed command's token does not count)."""
    for token in (state_dir / PAUSE_DIR).glob("*-*"):
        try:
            os.kill(int(token.name.split("-", 1)[0]), 0)
        except (ValueError, ProcessLookupError):
            continue
        except PermissionError:
            pass
        return True
    return False


def _account(arn: str) -> str:
    """The account an ARN names (arn:partition:service:region:account:resource)."""
    return arn.split(":")[4] or moto_gaps.DEFAULT_ACCOUNT


def _sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A received SQS message as the Lambda service passes it to a function."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
