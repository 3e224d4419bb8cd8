"""The shell every control-loop handler shares: SQS batch -> parse -> idempotent act -> audit.

    loop = ControlLoop("gate", load_settings())
    handler = loop.lambda_handler(accept=..., identity=..., act=...)

- Batch: Powertools BatchProcessor over the SQS records with partial batch responses: a record
  that raises is reported in `batchItemFailures` and only it returns to the queue (and to the
  DLQ after maxReceiveCount); its neighbours are deleted as processed.
- Parse: `accept(message_id, body)` turns the body into an event data class or raises
  MalformedEventError (nothing else has happened yet: no idempotency record, no lease, no
  call), or returns None for an event this handler does not act on (other group, other state).
- Idempotency: Powertools idempotency on DynamoDB around `act`, keyed by `identity(event)` (the
  state change the event reports, not the delivery): a duplicate gets the first result back
  without acting; a concurrent duplicate finds the key in progress and fails its record, so SQS
  delivers it again later, when the first result is stored. A failed `act` stores nothing, so
  the retry acts again.
- Logs: Powertools Logger (JSON, with the Lambda context); metrics: Powertools Metrics (EMF,
  namespace MLOps/ControlLoop, dimensions service/project/environment).
- Decisions: `decide()` writes the audit record, publishes it to SNS (a failed publish is
  logged and counted, not retried: the audit record is the evidence) and logs it.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from botocore.config import Config

from lambdas.shared.capture_files import parse_time
from lambdas.shared.control import history
from lambdas.shared.control.dynamo import AuditLog, DeploymentHistory, Leases
from lambdas.shared.control.errors import MalformedEventError, RetryLaterError
from lambdas.shared.control.quality_metrics import healthy_windows
from lambdas.shared.control.serving import SageMaker
from lambdas.shared.control.settings import Settings

NAMESPACE = "MLOps/ControlLoop"
# Longer than an SQS message can live (4 days) plus a DLQ redrive window (14 days): a duplicate
# within that time returns the first result; beyond it, the handlers' own state checks apply.
IDEMPOTENCY_SECONDS = 18 * 24 * 3600
BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
EVALUATION_MAX_BYTES = 10 * 1024 * 1024
# A lease outlives the invocation holding it by this much, so a crashed holder frees it soon after.
LEASE_MARGIN_SECONDS = 30
# How far back a healthy accuracy window of the served model is looked for.
QUALITY_LOOKBACK = timedelta(days=14)
# Powertools keeps one metric set per process; in AWS one invocation runs at a time, but the
# local control plane and the tests run invocations in threads.
_METRICS_LOCK = threading.Lock()

Event = TypeVar("Event")


@dataclass(frozen=True)
class Invocation:
    message_id: str
    lambda_context: Any

    def seconds_left(self) -> int:
        return max(1, int(self.lambda_context.get_remaining_time_in_millis() // 1000))


class ControlLoop:
    def __init__(self, name: str, settings: Settings):
        self.name, self.settings = name, settings
        self.logger = Logger(service=name)
        self.metrics = Metrics(namespace=NAMESPACE, service=name)
        self.metrics.set_default_dimensions(project=settings.project, environment=settings.environment)
        self.idempotency = IdempotencyConfig(expires_after_seconds=IDEMPOTENCY_SECONDS)
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._idempotent_act: Callable[..., dict[str, Any]] | None = None
        # One boto3 session for every client of this handler (it caches the service models);
        # None: made on first use. Tests running several handlers in one process share one.
        self.session: Any = None

    # Clients are made on first use, not at import: a cold start pays only for what it calls.
    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                if self.session is None:
                    import boto3

                    self.session = boto3.session.Session()
                self._clients[service] = self.session.client(service, config=BOTO_CONFIG)
            return self._clients[service]

    @property
    def sagemaker(self) -> SageMaker:
        return SageMaker(self.client("sagemaker"), self.settings)

    @property
    def history(self) -> DeploymentHistory:
        return DeploymentHistory(self.client("dynamodb"), self.settings.deployments_table)

    @property
    def leases(self) -> Leases:
        return Leases(self.client("dynamodb"), self.settings.locks_table)

    def endpoint_lease(self, invocation: Invocation, purpose: str) -> AbstractContextManager[None]:
        """The endpoint's lease: deploy and rollback for one endpoint never run concurrently."""
        owner = f"{self.name}-{invocation.message_id}-{uuid.uuid4().hex[:8]}"
        return self.leases.held(f"endpoint#{self.settings.endpoint_name}", owner,
                                invocation.seconds_left() + LEASE_MARGIN_SECONDS, purpose)

    def accuracy_drop_cause(self, alarm_at: datetime) -> history.DropCause:
        """The accuracy alarm's transition at `alarm_at`: the model's doing or the world's. The
        rollback and the retrain handler both ask, each acts on its own answer."""
        s, at = self.settings, history.iso(alarm_at)
        records = self.history.list(s.endpoint_name)
        served = history.served_at(records, at)
        since = parse_time(served.traffic_at or served.started_at) if served else alarm_at
        healthy = healthy_windows(self.client("cloudwatch"), s.endpoint_name,
                                  max(since, alarm_at - QUALITY_LOOKBACK), alarm_at + timedelta(seconds=1),
                                  s.accuracy_drop_percent)
        return history.accuracy_drop_cause(records, at, healthy, s.quality_window_minutes)

    def count(self, name: str, value: float = 1) -> None:
        with _METRICS_LOCK:
            self.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def read_bytes(self, s3_uri: str) -> bytes:
        """A report's bytes (at most EVALUATION_MAX_BYTES)."""
        if not s3_uri.startswith("s3://") or "/" not in s3_uri[5:]:
            raise ValueError(f"not an s3://bucket/key URI: {s3_uri}")
        bucket, key = s3_uri[5:].split("/", 1)
        body = self.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
        data = body.read(EVALUATION_MAX_BYTES + 1)
        if len(data) > EVALUATION_MAX_BYTES:
            raise ValueError(f"{s3_uri} is larger than {EVALUATION_MAX_BYTES} bytes")
        return data

    def read_json(self, s3_uri: str) -> Any:
        return json.loads(self.read_bytes(s3_uri))

    def decide(
        self,
        *,
        action: str,
        subject: str,
        decision: str,
        summary: str,
        reasons: list[str],
        inputs: dict[str, Any],
        changed_at: datetime,
        identity: dict[str, Any],
        topic: str | None,
    ) -> dict[str, Any]:
        """Record a decision: audit record (always), SNS message (when `topic`), log, metric."""
        s = self.settings
        record = AuditLog(self.client("dynamodb"), s.audit_table).write(
            subject=subject,
            action=action,
            decision=decision,
            reasons=reasons,
            inputs=inputs,
            event_time=changed_at,
            identity=json.dumps(identity, sort_keys=True),
            context={
                "project": s.project,
                "environment": s.environment,
                "handler": self.name,
                "summary": summary,
            },
        )
        if topic:
            self._notify(
                topic, f"[{s.environment}/{s.project}] {action}: {decision}", {**record, "inputs": inputs}
            )
        self.logger.info(
            summary,
            extra={
                "action": action,
                "decision": decision,
                "subject": subject,
                "reasons": reasons,
                "audit_id": record["audit_id"],
            },
        )
        self.count("".join(part.capitalize() for part in f"{action}-{decision}".split("-")))
        return {
            "action": action,
            "decision": decision,
            "subject": subject,
            "summary": summary,
            "audit_id": record["audit_id"],
        }

    def _notify(self, topic: str, subject: str, message: dict[str, Any]) -> None:
        # The decision is taken and audited by now: a failed notification must not fail the
        # record, whose retry would find the work done and only record that instead.
        try:
            self.client("sns").publish(
                TopicArn=topic,
                Subject=subject.encode("ascii", "replace").decode()[:100],
                Message=json.dumps(message, default=str, indent=1),
            )
        except Exception:
            self.logger.exception("notification failed", extra={"topic": topic, "subject": subject})
            self.count("NotificationFailures")

    def _act_once(self, act: Callable[[Any, Invocation], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        # Built on first use: the persistence layer needs a DynamoDB client.
        dynamodb = self.client("dynamodb")
        with self._lock:
            if self._idempotent_act is None:

                def run(key: dict[str, Any], event: Any, invocation: Invocation) -> dict[str, Any]:
                    return act(event, invocation)

                run.__qualname__ = f"{self.name}.act"
                self._idempotent_act = idempotent_function(
                    run,
                    data_keyword_argument="key",
                    persistence_store=DynamoDBPersistenceLayer(
                        table_name=self.settings.idempotency_table, boto3_client=dynamodb
                    ),
                    config=self.idempotency,
                    key_prefix=f"{self.settings.project}-{self.settings.environment}-{self.name}",
                )
            return self._idempotent_act

    def lambda_handler(
        self,
        accept: Callable[[str, str | None], Event | None],
        identity: Callable[[Event], dict[str, Any]],
        act: Callable[[Event, Invocation], dict[str, Any]],
    ) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        """The Lambda entry point for an SQS queue of EventBridge events."""
        runner = _Records(self, accept, identity, act)

        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            self.idempotency.register_lambda_context(context)
            # One processor per invocation: it keeps the batch's state.
            processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
            try:
                return process_partial_response(
                    event=event, record_handler=runner.record, processor=processor, context=context
                )
            finally:
                with _METRICS_LOCK:
                    if self.metrics.metric_set:  # nothing decided (all ignored): no empty EMF line
                        self.metrics.flush_metrics(raise_on_empty_metrics=False)

        return self.logger.inject_lambda_context(handler)


class _Records(Generic[Event]):
    """One SQS record: parse, act once, log why it failed (the processor reports it)."""

    def __init__(
        self,
        loop: ControlLoop,
        accept: Callable[[str, str | None], Event | None],
        identity: Callable[[Event], dict[str, Any]],
        act: Callable[[Event, Invocation], dict[str, Any]],
    ):
        self.loop, self.accept, self.identity, self.act = loop, accept, identity, act

    def record(self, record: SQSRecord, lambda_context: Any) -> dict[str, Any]:
        loop, message_id = self.loop, record.message_id
        try:
            event = self.accept(message_id, record.body)
            if event is None:
                loop.count("IgnoredEvents")
                return {"ignored": True}
            key = self.identity(event)
            result = loop._act_once(self.act)(
                key=key, event=event, invocation=Invocation(message_id, lambda_context)
            )
            loop.logger.info(
                "record processed", extra={"message_id": message_id, "key": key, "result": result}
            )
            return result
        except MalformedEventError as exc:
            loop.logger.error(str(exc), extra={"message_id": message_id})
            loop.count("MalformedEvents")
            raise
        except (RetryLaterError, IdempotencyAlreadyInProgressError) as exc:
            loop.logger.warning(f"retry later: {exc}", extra={"message_id": message_id})
            loop.count("RetriedRecords")
            raise
        except Exception:
            loop.logger.exception("record failed", extra={"message_id": message_id})
            loop.count("FailedRecords")
            raise
