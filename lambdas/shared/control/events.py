"""The events the control loop consumes, as Powertools event source data classes.

Each SQS record's body is one EventBridge event, as the rule delivered it: an `EventBridgeEvent`
whose detail is read through a typed view (Powertools' `CloudWatchAlarmData` for alarms, ours
for model packages). Before a handler sees an event, the fields it uses are checked
(`REQUIRED` of each class) and every problem is named at once; everything else the services add
is kept as sent, so the audit record can carry it.

- "SageMaker Model Package State Change" (source aws.sagemaker): detail holds the package as
  DescribeModelPackage returns it (ModelPackageGroupName, ModelPackageArn, ModelPackageVersion,
  ModelApprovalStatus, CreationTime and LastModifiedTime in epoch milliseconds, ...).
- "CloudWatch Alarm State Change" (source aws.cloudwatch): detail.alarmName, detail.state
  {value, reason, timestamp}, detail.previousState, detail.configuration.
- "SageMaker Endpoint State Change" (source aws.sagemaker): detail holds the endpoint as
  DescribeEndpoint returns it (EndpointName, EndpointConfigName, EndpointStatus in capitals:
  IN_SERVICE, UPDATING, FAILED, ...; FailureReason; times in epoch milliseconds).
- "Scheduled Event" (source aws.events): a schedule rule's firing; only `time` and `resources`
  (the rule's ARN) are read.
- "SageMaker Endpoint Deployment State Change" (source aws.sagemaker): the same, plus
  PendingDeploymentSummary {EndpointConfigName, ProductionVariants[].VariantStatus[{Status:
  Creating | Updating | Deleting | ActivatingTraffic | Baking, StatusMessage, StartTime}]}.

The data classes are the ones the Powertools Batch utility loads anyway; the Parser's pydantic
models would add about half an `import boto3` to every cold start (benchmarks/handlers.py).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.data_classes.cloud_watch_alarm_event import CloudWatchAlarmData
from aws_lambda_powertools.utilities.data_classes.common import DictWrapper

from lambdas.shared.checks import Check, check_paths, matching, one_of, optional, string, text, whole
from lambdas.shared.control.errors import MalformedEventError
from lambdas.shared.control.history import EndpointChange

ApprovalStatus = Literal["PendingManualApproval", "Approved", "Rejected"]


def to_datetime(value: datetime | float | str) -> datetime:
    """SageMaker sends epoch milliseconds, CloudWatch '2019-10-02T17:04:40.985+0000': one UTC time."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float):
        moment = datetime.fromtimestamp(value / 1000.0, tz=UTC)
    elif value.strip().isdigit():  # epoch milliseconds as text (the endpoint event sample's "time")
        moment = datetime.fromtimestamp(int(value) / 1000.0, tz=UTC)
    else:
        moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def moment(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a time: {value!r}")
    try:
        to_datetime(value)
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"not a time: {value!r}") from None
    return value


def resources(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of ARNs")
    return value


# What every EventBridge event carries (the envelope).
ENVELOPE: dict[str, Check] = {
    "version": text,
    "id": text,
    "account": matching(r"\d{12}", "a 12-digit account id"),
    "time": moment,
    "region": text,
    "resources": resources,
}


class ModelPackage(DictWrapper):
    """The detail of a model package state change: the package as DescribeModelPackage returns it."""

    @property
    def group_name(self) -> str:
        return self["ModelPackageGroupName"]

    @property
    def arn(self) -> str:
        return self["ModelPackageArn"]

    @property
    def version(self) -> int | None:
        return self.get("ModelPackageVersion")

    @property
    def approval_status(self) -> ApprovalStatus:
        return self["ModelApprovalStatus"]

    @property
    def creation_time(self) -> float | str | None:
        return self.get("CreationTime")

    @property
    def last_modified_time(self) -> float | str | None:
        return self.get("LastModifiedTime")


class ModelPackageStateChange(EventBridgeEvent):
    REQUIRED: ClassVar[dict[str, Check]] = {
        **ENVELOPE,
        "source": one_of("aws.sagemaker"),
        "detail-type": one_of("SageMaker Model Package State Change"),
        "detail.ModelPackageGroupName": text,
        "detail.ModelPackageArn": text,
        "detail.ModelPackageVersion": optional(whole(1)),
        "detail.ModelApprovalStatus": one_of("PendingManualApproval", "Approved", "Rejected"),
        "detail.CreationTime": optional(moment),
        "detail.LastModifiedTime": optional(moment),
    }

    @property
    def package(self) -> ModelPackage:
        return ModelPackage(self["detail"])

    @property
    def changed_at(self) -> datetime:
        """When the package reached this state: duplicates of one change share it, a later
        re-approval does not."""
        p = self.package
        return to_datetime(p.last_modified_time or p.creation_time or self.time)


class AlarmStateChange(EventBridgeEvent):
    REQUIRED: ClassVar[dict[str, Check]] = {
        **ENVELOPE,
        "source": one_of("aws.cloudwatch"),
        "detail-type": one_of("CloudWatch Alarm State Change"),
        "detail.alarmName": text,
        "detail.state.value": one_of("OK", "ALARM", "INSUFFICIENT_DATA"),
        # Kept as sent: with the alarm name it identifies one transition (the idempotency key).
        "detail.state.timestamp": moment,
        "detail.state.reason": string,
        "detail.previousState.value": optional(one_of("OK", "ALARM", "INSUFFICIENT_DATA")),
    }

    @property
    def alarm(self) -> CloudWatchAlarmData:
        return CloudWatchAlarmData(self["detail"])

    @property
    def changed_at(self) -> datetime:
        return to_datetime(self.alarm.state.timestamp)


class ScheduledEvent(EventBridgeEvent):
    """An EventBridge schedule rule's event (source aws.events, empty detail)."""

    DETAIL_TYPE: ClassVar[str] = "Scheduled Event"
    REQUIRED: ClassVar[dict[str, Check]] = {
        **ENVELOPE,
        "source": one_of("aws.events"),
        "detail-type": one_of(DETAIL_TYPE),
    }

    @property
    def changed_at(self) -> datetime:
        return to_datetime(self.time)


def pending_deployment(value: Any) -> dict[str, Any]:
    """PendingDeploymentSummary: the config deployed and (optional in SageMaker's model, as
    each variant's VariantStatus is) its variants' stages."""
    if not isinstance(value, dict):
        raise ValueError("must be an object")
    text(value.get("EndpointConfigName") or "")
    variants = value.get("ProductionVariants") or []
    if not isinstance(variants, list):
        raise ValueError("ProductionVariants must be a list")
    for i, variant in enumerate(variants):
        statuses = variant.get("VariantStatus", []) if isinstance(variant, dict) else None
        if not isinstance(statuses, list) or not all(
            isinstance(st, dict) and isinstance(st.get("Status"), str) for st in statuses
        ):
            raise ValueError(f"ProductionVariants[{i}].VariantStatus must be a list of {{Status, ...}}")
    return value


def endpoint_status(value: Any) -> str:
    """EndpointStatus in the events' form: IN_SERVICE (DescribeEndpoint's InService accepted too)."""
    result = text(value)
    return result if result.isupper() else re.sub(r"(?<!^)(?=[A-Z])", "_", result).upper()


ENDPOINT_FIELDS: dict[str, Check] = {
    **ENVELOPE,
    "source": one_of("aws.sagemaker"),
    "detail.EndpointName": text,
    "detail.EndpointConfigName": optional(text),  # optional in SageMaker's model
    "detail.EndpointStatus": text,
    "detail.LastModifiedTime": optional(moment),
    "detail.FailureReason": optional(string),
}


class EndpointStateChange(EventBridgeEvent):
    """The endpoint reached a status: InService after a create or an update (on the new config,
    or on the old one when the update rolled back), Failed, ..."""

    DETAIL_TYPE: ClassVar[str] = "SageMaker Endpoint State Change"
    REQUIRED: ClassVar[dict[str, Check]] = {**ENDPOINT_FIELDS, "detail-type": one_of(DETAIL_TYPE)}

    @property
    def endpoint_name(self) -> str:
        return self["detail"]["EndpointName"]

    @property
    def changed_at(self) -> datetime:
        return to_datetime(self["detail"].get("LastModifiedTime") or self.time)

    def change(self, at: str) -> EndpointChange:
        d = self["detail"]
        return EndpointChange(at=at, status=endpoint_status(d["EndpointStatus"]),
                              config=d.get("EndpointConfigName"), failure_reason=d.get("FailureReason"))


class EndpointDeploymentStateChange(EndpointStateChange):
    """A stage of a blue/green deployment: the new fleet's variants (PendingDeploymentSummary)
    Creating, Baking (with a share of the traffic, then all of it), Deleting (a rollback), ...
    Without PendingDeploymentSummary it is a capacity change of the served config (autoscaling):
    no deployment, nothing to follow."""

    DETAIL_TYPE: ClassVar[str] = "SageMaker Endpoint Deployment State Change"
    REQUIRED: ClassVar[dict[str, Check]] = {
        **ENDPOINT_FIELDS,
        "detail-type": one_of(DETAIL_TYPE),
        "detail.PendingDeploymentSummary": optional(pending_deployment),
    }

    @property
    def pending(self) -> dict[str, Any] | None:
        return self["detail"].get("PendingDeploymentSummary")

    @property
    def stage(self) -> tuple[str | None, str, Any]:
        """The newest VariantStatus of the pending variants (by StartTime; without times, the
        first): (Status, StatusMessage, StartTime); (None, "", None) when none is given."""
        statuses = [st for v in (self.pending or {}).get("ProductionVariants") or []
                    for st in v.get("VariantStatus") or []]
        if not statuses:
            return None, "", None

        def started(status: dict[str, Any]) -> float:
            try:
                return to_datetime(moment(status.get("StartTime"))).timestamp()
            except ValueError:
                return float("-inf")

        status = max(statuses, key=started) if any(st.get("StartTime") for st in statuses) else statuses[0]
        return status["Status"], status.get("StatusMessage", ""), status.get("StartTime")

    @property
    def changed_at(self) -> datetime:
        try:
            return to_datetime(moment(self.stage[2]))
        except ValueError:  # no (or an unreadable) StartTime: when EventBridge got the event
            return to_datetime(self.time)

    def change(self, at: str) -> EndpointChange:
        d = self["detail"]
        if self.pending is None:  # a capacity change: says nothing about a deployment
            return EndpointChange(at=at, status=None, config=d.get("EndpointConfigName"))
        return EndpointChange(at=at, status=endpoint_status(d["EndpointStatus"]),
                              config=d.get("EndpointConfigName"),
                              pending_config=self.pending["EndpointConfigName"],
                              stage=self.stage[0], failure_reason=d.get("FailureReason"))


Event = TypeVar("Event", ModelPackageStateChange, AlarmStateChange, EndpointStateChange)


def _peek(message_id: str, body: str | None) -> dict[str, Any]:
    try:
        data = json.loads(body or "")
    except json.JSONDecodeError as exc:
        raise MalformedEventError(f"SQS message {message_id}: body is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MalformedEventError(
            f"SQS message {message_id}: body is JSON {type(data).__name__}, not an EventBridge event"
        )
    return data


def parse_body(message_id: str, body: str | None, kind: type[Event]) -> Event:
    """The record's EventBridge event, or MalformedEventError naming the message and every bad field."""
    data = _peek(message_id, body)
    problems = check_paths(data, kind.REQUIRED)
    if problems:
        raise MalformedEventError(
            f"SQS message {message_id}: not a valid {kind.__name__} event: {'; '.join(problems)}"
        )
    return kind(data)


def package_event(
    message_id: str, body: str | None, group: str, status: ApprovalStatus
) -> ModelPackageStateChange | None:
    """The package state change if it is `status` in our group; None for everyone else's events."""
    event = parse_body(message_id, body, ModelPackageStateChange)
    package = event.package
    return event if package.group_name == group and package.approval_status == status else None


def alarm_event(message_id: str, body: str | None, alarm_names: frozenset[str]) -> AlarmStateChange | None:
    """The alarm state change if one of `alarm_names` went to ALARM; None otherwise."""
    event = parse_body(message_id, body, AlarmStateChange)
    alarm = event.alarm
    return event if alarm.alarm_name in alarm_names and alarm.state.value == "ALARM" else None


ENDPOINT_EVENTS = (EndpointStateChange.DETAIL_TYPE, EndpointDeploymentStateChange.DETAIL_TYPE)


def detail_type(message_id: str, body: str | None) -> Any:
    """The event's detail-type, to pick the class that checks it (MalformedEventError if not JSON)."""
    return _peek(message_id, body).get("detail-type")


def endpoint_event(
    message_id: str, body: str | None, endpoint_name: str
) -> EndpointStateChange | EndpointDeploymentStateChange | None:
    """Either endpoint event of `endpoint_name` (the detail-type picks the class); None for others."""
    kind = (EndpointDeploymentStateChange
            if detail_type(message_id, body) == EndpointDeploymentStateChange.DETAIL_TYPE
            else EndpointStateChange)
    event = parse_body(message_id, body, kind)
    return event if event.endpoint_name == endpoint_name else None


def scheduled_event(message_id: str, body: str | None) -> ScheduledEvent:
    return parse_body(message_id, body, ScheduledEvent)


def scheduled_identity(event: ScheduledEvent) -> dict[str, str]:
    # One firing of one rule.
    return {"rule": ",".join(event.resources), "time": event.changed_at.isoformat()}


def endpoint_identity(event: EndpointStateChange) -> dict[str, str]:
    # One stage of one deployment: SageMaker may send each more than once.
    change = event.change(event.changed_at.isoformat())
    return {
        "endpoint": event.endpoint_name,
        "event": event.detail_type,
        "status": change.status or "",
        "config": change.config or "",
        "pending": change.pending_config or "",
        "stage": change.stage or "",
        "changed_at": change.at,
    }


def package_identity(event: ModelPackageStateChange) -> dict[str, str]:
    # The state change, not the delivery: SageMaker may emit several events for one change.
    package = event.package
    return {
        "package": package.arn,
        "status": package.approval_status,
        "changed_at": event.changed_at.isoformat(),
    }


def alarm_identity(event: AlarmStateChange) -> dict[str, str]:
    # One incident = one transition to ALARM: the alarm's name and that transition's timestamp.
    alarm = event.alarm
    return {"alarm": alarm.alarm_name, "state": alarm.state.value, "timestamp": alarm.state.timestamp}
