"""The shell of the scheduled checks (drift, model quality): an SQS batch of EventBridge
"Scheduled Event"s, one check per record, records failing alone.

    logger = Logger(service="drift")
    clients = Clients()
    handler = scheduled_handler(logger, "drift check", check)   # check(record) -> summary

Powertools BatchProcessor with partial batch responses: a record that raises (not an event, an
AWS error) returns to the queue, and after maxReceiveCount goes to the DLQ; the log says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from botocore.config import Config

BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)


class Clients:
    """boto3 clients made on first use, not at import: a cold start pays only for what it calls."""

    def __init__(self) -> None:
        self._made: dict[str, Any] = {}

    def __call__(self, service: str) -> Any:
        if service not in self._made:
            import boto3

            self._made[service] = boto3.client(service, config=BOTO_CONFIG)
        return self._made[service]


def scheduled_handler(logger: Logger, what: str, check: Callable[[SQSRecord], dict[str, Any]]
                      ) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    # Powertools calls the record handler with the keyword `record`.
    def one(record: SQSRecord) -> dict[str, Any]:
        logger.append_keys(message_id=record.message_id)
        try:
            return check(record)
        except Exception:
            # The processor reports the record as failed; the log says why.
            logger.exception(f"{what} failed", extra={"message_id": record.message_id})
            raise
        finally:
            logger.remove_keys(["message_id", "window_end"])

    @logger.inject_lambda_context
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # One processor per invocation: it holds the batch's state.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        return process_partial_response(event=event, record_handler=one, processor=processor,
                                        context=context)

    return handler
