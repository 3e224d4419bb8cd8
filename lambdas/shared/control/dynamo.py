"""The handlers' DynamoDB tables: leases, deployment history, audit log (the schemas the stack
provisions: stacks/control_tables.py).

Plain boto3 client calls (no boto3.resource, which costs import and init time for nothing here).
Numbers are written as DynamoDB numbers from their text form, so floats need no Decimal.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from lambdas.shared.control.errors import LeaseHeldError
from lambdas.shared.control.history import FAILED, Deployment, digest, iso


def to_attribute(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {str(k): to_attribute(v) for k, v in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def from_attribute(attribute: dict[str, Any]) -> Any:
    ((kind, value),) = attribute.items()
    if kind == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if kind == "L":
        return [from_attribute(v) for v in value]
    if kind == "M":
        return {k: from_attribute(v) for k, v in value.items()}
    if kind == "NULL":
        return None
    return value  # S, BOOL


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: to_attribute(v) for k, v in values.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: from_attribute(v) for k, v in item.items()}


def _condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class Leases:
    """Expiring leases in the LOCKS table, taken with a conditional write.

    A lease is free when no item exists or its `expires_at` has passed, so a holder that died
    blocks others only until its lease runs out. Acquiring never waits: a held lease raises
    LeaseHeldError, which fails the SQS record and lets SQS deliver it again later."""

    def __init__(self, client: Any, table: str):
        self.client, self.table = client, table

    def acquire(self, lock_id: str, owner: str, expires_at: int, purpose: str, **extra: Any) -> None:
        now = int(time.time())
        try:
            self.client.put_item(
                TableName=self.table,
                Item=to_item(
                    {
                        "lock_id": lock_id,
                        "owner": owner,
                        "expires_at": expires_at,
                        "purpose": purpose,
                        "acquired_at": now,
                        **extra,
                    }
                ),
                ConditionExpression="attribute_not_exists(#id) OR #exp <= :now",
                ExpressionAttributeNames={"#id": "lock_id", "#exp": "expires_at"},
                ExpressionAttributeValues={":now": {"N": str(now)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            holder = from_item(exc.response.get("Item") or {})
            raise LeaseHeldError(
                f"{lock_id} is held by {holder.get('owner', 'another invocation')} "
                f"({holder.get('purpose', '?')}) until {holder.get('expires_at', '?')}",
            ) from None

    def release(self, lock_id: str, owner: str) -> None:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={"lock_id": {"S": lock_id}},
                ConditionExpression="#owner = :owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":owner": {"S": owner}},
            )
        except ClientError as exc:
            if not _condition_failed(exc):  # expired and taken by another: not ours to delete
                raise

    def get(self, lock_id: str) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.table, Key={"lock_id": {"S": lock_id}}, ConsistentRead=True
        ).get("Item")
        return from_item(item) if item else None

    @contextmanager
    def held(self, lock_id: str, owner: str, seconds: int, purpose: str) -> Iterator[None]:
        self.acquire(lock_id, owner, int(time.time()) + seconds, purpose)
        try:
            yield
        finally:
            self.release(lock_id, owner)


class DeploymentHistory:
    def __init__(self, client: Any, table: str):
        self.client, self.table = client, table

    def list(self, endpoint_name: str) -> list[Deployment]:
        records: list[Deployment] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "endpoint_name = :e",
            "ExpressionAttributeValues": {":e": {"S": endpoint_name}},
            "ConsistentRead": True,
        }
        while True:
            page = self.client.query(**kwargs)
            records.extend(Deployment.from_item(from_item(i)) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return records
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def create(self, record: Deployment) -> bool:
        """Write the record unless it exists (a redelivery of the same change). True if written."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=to_item({**record.as_item(), "updated_at": iso(datetime.now(UTC))}),
                ConditionExpression="attribute_not_exists(deployment_id)",
            )
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def set_status(
        self, endpoint_name: str, record_id: str, status: str, *, expected: str | None = None, **extra: Any
    ) -> bool:
        """Set the record's status (and `extra` fields); with `expected`, only if its status is
        still that (a concurrent event moved it on: False, nothing written)."""
        values = {"status": status, "updated_at": iso(datetime.now(UTC)), **extra}
        names = {f"#a{i}": k for i, k in enumerate(values)}
        attributes = {f":v{i}": to_attribute(v) for i, v in enumerate(values.values())}
        condition: dict[str, Any] = {}
        if expected is not None:
            names["#status"] = "status"
            attributes[":expected"] = to_attribute(expected)
            condition["ConditionExpression"] = "#status = :expected"
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"endpoint_name": {"S": endpoint_name}, "deployment_id": {"S": record_id}},
                UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=attributes,
                **condition,
            )
        except ClientError as exc:
            if expected is not None and _condition_failed(exc):
                return False
            raise
        return True

    def track(self, record: Deployment, step: Callable[[], str]) -> str:
        """Run the SageMaker step of a recorded deployment or rollback; its outcome (or FAILED
        with the error, which is raised on) goes on the record, unless SageMaker's events have
        already moved the record on (an endpoint can report Baking before the call returns)."""
        try:
            outcome = step()
        except Exception as exc:
            self.set_status(record.endpoint_name, record.deployment_id, FAILED, error=str(exc)[:1000])
            raise
        self.set_status(record.endpoint_name, record.deployment_id, outcome, expected=record.status)
        return outcome


class AuditLog:
    """Decision records, only ever added. The key comes from the decision's identity (event time,
    action, the idempotency key, the decision), so a retried decision finds its record already
    written and leaves it as it was (the first is the evidence), and a different decision on the
    same event (e.g. a redelivery after the idempotency record expired, finding the world
    changed) adds its own."""

    def __init__(self, client: Any, table: str):
        self.client, self.table = client, table

    def write(
        self,
        *,
        subject: str,
        action: str,
        decision: str,
        reasons: list[str],
        inputs: dict[str, Any],
        event_time: datetime,
        identity: str,
        context: dict[str, Any],
    ) -> dict[str, Any]:
        record = {
            "subject": subject,
            "audit_id": f"{iso(event_time)}#{action}#{digest(identity, decision, length=12)}",
            "action": action,
            "decision": decision,
            "reasons": reasons,
            # One JSON document: inputs hold floats and nesting DynamoDB maps would only obscure.
            "inputs": json.dumps(inputs, sort_keys=True, default=str),
            "event_time": iso(event_time),
            "recorded_at": iso(datetime.now(UTC)),
            **context,
        }
        try:
            self.client.put_item(TableName=self.table, Item=to_item(record),
                                 ConditionExpression="attribute_not_exists(audit_id)")
        except ClientError as exc:
            if not _condition_failed(exc):
                raise
            return {**record, "already_recorded": True}
        return record
