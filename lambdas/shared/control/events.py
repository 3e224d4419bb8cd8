"""The events the control loop consumes, as Powertools Parser models (EventBridge envelope).

Each SQS record's body is one EventBridge event, as the rule delivered it. Only the fields the
handlers use are required; everything else the services add is kept (`extra="allow"`) so the
audit record can carry it.

- "SageMaker Model Package State Change" (source aws.sagemaker): detail holds the package as
  DescribeModelPackage returns it (ModelPackageGroupName, ModelPackageArn, ModelPackageVersion,
  ModelApprovalStatus, CreationTime and LastModifiedTime in epoch milliseconds, ...).
- "CloudWatch Alarm State Change" (source aws.cloudwatch): detail.alarmName, detail.state
  {value, reason, timestamp}, detail.previousState, detail.configuration.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from aws_lambda_powertools.utilities.parser.models.event_bridge import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lambdas.shared.control.errors import MalformedEventError

ApprovalStatus = Literal["PendingManualApproval", "Approved", "Rejected"]
AlarmStateValue = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]


def to_datetime(value: datetime | float | str) -> datetime:
    """SageMaker sends epoch milliseconds, CloudWatch '2019-10-02T17:04:40.985+0000': one UTC time."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float):
        moment = datetime.fromtimestamp(value / 1000.0, tz=UTC)
    else:
        moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ModelPackageDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    ModelPackageGroupName: str
    ModelPackageArn: str
    ModelPackageVersion: int | None = None
    ModelApprovalStatus: ApprovalStatus
    CreationTime: datetime | float | None = None
    LastModifiedTime: datetime | float | None = None


class ModelPackageStateChange(EventBridgeModel):
    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker Model Package State Change"] = Field(alias="detail-type")  # type: ignore[assignment]
    detail: ModelPackageDetail  # type: ignore[assignment]

    @property
    def changed_at(self) -> datetime:
        """When the package reached this state: duplicates of one change share it, a later
        re-approval does not."""
        d = self.detail
        return to_datetime(d.LastModifiedTime or d.CreationTime or self.time)


class AlarmState(BaseModel):
    model_config = ConfigDict(extra="allow")

    value: AlarmStateValue
    reason: str = ""
    # Kept as sent: with the alarm name it identifies one transition (the idempotency key).
    timestamp: str

    @field_validator("timestamp")
    @classmethod
    def _readable(cls, value: str) -> str:
        to_datetime(value)  # raises ValueError: reported as a malformed event
        return value


class AlarmDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    alarmName: str
    state: AlarmState
    previousState: AlarmState | None = None
    configuration: dict[str, Any] = {}


class AlarmStateChange(EventBridgeModel):
    source: Literal["aws.cloudwatch"]
    detail_type: Literal["CloudWatch Alarm State Change"] = Field(alias="detail-type")  # type: ignore[assignment]
    detail: AlarmDetail  # type: ignore[assignment]

    @property
    def changed_at(self) -> datetime:
        return to_datetime(self.detail.state.timestamp)


Event = TypeVar("Event", bound=EventBridgeModel)


def parse_body(message_id: str, body: str | None, model: type[Event]) -> Event:
    """The record's EventBridge event, or MalformedEventError naming the message and the fields."""
    try:
        data = json.loads(body or "")
    except json.JSONDecodeError as exc:
        raise MalformedEventError(f"SQS message {message_id}: body is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MalformedEventError(
            f"SQS message {message_id}: body is JSON {type(data).__name__}, not an EventBridge event"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors()
        )
        raise MalformedEventError(
            f"SQS message {message_id}: not a valid {model.__name__} event: {problems}"
        ) from None


def package_event(
    message_id: str, body: str | None, group: str, status: ApprovalStatus
) -> ModelPackageStateChange | None:
    """The package state change if it is `status` in our group; None for everyone else's events."""
    event = parse_body(message_id, body, ModelPackageStateChange)
    detail = event.detail
    return event if detail.ModelPackageGroupName == group and detail.ModelApprovalStatus == status else None


def alarm_event(message_id: str, body: str | None, alarm_names: frozenset[str]) -> AlarmStateChange | None:
    """The alarm state change if one of `alarm_names` went to ALARM; None otherwise."""
    event = parse_body(message_id, body, AlarmStateChange)
    detail = event.detail
    return event if detail.alarmName in alarm_names and detail.state.value == "ALARM" else None


def package_identity(event: ModelPackageStateChange) -> dict[str, str]:
    # The state change, not the delivery: SageMaker may emit several events for one change.
    d = event.detail
    return {
        "package": d.ModelPackageArn,
        "status": d.ModelApprovalStatus,
        "changed_at": event.changed_at.isoformat(),
    }


def alarm_identity(event: AlarmStateChange) -> dict[str, str]:
    # One incident = one transition to ALARM: the alarm's name and that transition's timestamp.
    d = event.detail
    return {"alarm": d.alarmName, "state": d.state.value, "timestamp": d.state.timestamp}
