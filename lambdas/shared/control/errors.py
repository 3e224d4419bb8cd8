"""Why a record failed. Every one of these fails its SQS record only (partial batch response).

A failed record returns to the queue after its visibility timeout and lands in the DLQ after the
queue's maxReceiveCount; its batch neighbours are unaffected.
"""

from __future__ import annotations


class ControlLoopError(Exception):
    """Base of the errors a handler raises on purpose."""


class MalformedEventError(ControlLoopError):
    """The record's body is not the event the handler expects. Retrying will not help: after
    maxReceiveCount it is in the DLQ, where a person can look at it."""


class RetryLaterError(ControlLoopError):
    """The world is not ready (endpoint updating, lease held by another invocation): SQS delivers
    the record again after its visibility timeout."""


class LeaseHeldError(RetryLaterError):
    """Another invocation deploys to or rolls back the same endpoint right now."""


class ConfigurationError(ControlLoopError):
    """An environment variable is missing or invalid (raised at cold start)."""
