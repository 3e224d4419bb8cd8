"""The time window a scheduled check covers, from the EventBridge "Scheduled Event" that starts it.

Shared by the drift check and the model-quality check (no numpy here: the quality handler loads
none). A window is [since, until) in UTC; its label (the end, without colons) names its reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

LABEL_FORMAT = "%Y-%m-%dT%H-%M-%SZ"  # no colons: S3 keys people copy into shells and URLs


class MalformedEventError(ValueError):
    """The queued message is not an EventBridge event with a `time`."""


@dataclass(frozen=True)
class Window:
    """[since, until), both UTC."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.until.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        object.__setattr__(self, "since", self.since.astimezone(UTC))
        object.__setattr__(self, "until", self.until.astimezone(UTC))
        if self.since >= self.until:
            raise ValueError(
                f"window start {self.since.isoformat()} is not before its end {self.until.isoformat()}"
            )

    @classmethod
    def ending_at(cls, end: datetime, minutes: int) -> Window:
        return cls(end - timedelta(minutes=minutes), end)

    @property
    def label(self) -> str:
        """The window's end as an S3-key-friendly UTC time, e.g. 2026-11-23T10-00-00Z."""
        return self.until.strftime(LABEL_FORMAT)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "minutes": round((self.until - self.since).total_seconds() / 60, 3),
        }


def parse_utc(text: str) -> datetime:
    """An ISO-8601 time ('2026-11-23T10:00:00Z', '+02:00' offsets, or naive = UTC) in UTC."""
    t = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def scheduled_event_time(body: str) -> datetime:
    """The `time` of an EventBridge event (a "Scheduled Event" delivered through SQS)."""
    try:
        event = json.loads(body)
    except (TypeError, ValueError):
        raise MalformedEventError("the message body is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("time"), str):
        raise MalformedEventError("the message body is not an EventBridge event with a 'time'")
    try:
        return parse_utc(event["time"])
    except ValueError:
        raise MalformedEventError(f"the event time {event['time']!r} is not ISO-8601") from None


