"""Retrain requests and the cooldown that turns a storm of alarms into one pipeline run.

The cooldown is one item in the LOCKS table per pipeline, written with a condition that holds
only when no item exists or the existing one has expired (dynamo.Leases.acquire): of any number
of concurrent writers exactly one succeeds, and only that one starts the pipeline.
`cooldown_active` states the same rule in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lambdas.shared.control.history import digest

DISPLAY_NAME_MAX = 82  # StartPipelineExecution PipelineExecutionDisplayName
DESCRIPTION_MAX = 3072


def cooldown_lock_id(pipeline_name: str) -> str:
    return f"retrain-cooldown#{pipeline_name}"


def cooldown_active(existing_expires_at: float | None, now: float) -> bool:
    return existing_expires_at is not None and existing_expires_at > now


def cooldown_expires_at(now: float, cooldown_minutes: int) -> int:
    # At least a minute: with a zero cooldown the lock still absorbs one burst of duplicates.
    return int(now) + max(60, cooldown_minutes * 60)


@dataclass(frozen=True)
class RetrainRequest:
    display_name: str
    description: str
    client_token: str


def retrain_request(alarm_name: str, state_timestamp: str, reason: str) -> RetrainRequest:
    """StartPipelineExecution arguments that say why; the token makes SageMaker itself drop a
    repeated start for the same alarm transition."""
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", alarm_name).strip("-") or "alarm"
    name = f"retrain-{slug}"[:DISPLAY_NAME_MAX].rstrip("-")
    description = (
        f"Started by the retrain handler: alarm {alarm_name} went to ALARM at {state_timestamp}: {reason}"
    )
    return RetrainRequest(
        display_name=name,
        description=description[:DESCRIPTION_MAX],
        client_token=digest("retrain", alarm_name, state_timestamp, length=32),
    )


def retrain_parameters(served: dict[str, Any] | None) -> list[dict[str, str]]:
    """StartPipelineExecution PipelineParameters of a retrain that can learn something: the data
    the served model was trained on (its package's `data_uri`) plus the production records labelled
    since that data ends (`data_until`; else since the package was registered), which the
    pipeline's DatasetVersion step joins. Nothing served by a package (the bootstrap model): the
    pipeline's defaults."""
    if not served:
        return []
    metadata = served.get("CustomerMetadataProperties") or {}
    created = served.get("CreationTime")
    # Where its data's production records ended (a version's `until`); older packages: when
    # they were registered.
    if metadata.get("data_until"):
        since = metadata["data_until"]
    elif isinstance(created, datetime):
        since = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        since = str(created or "")
    parameters = [{"Name": "ProductionDataSince", "Value": since}] if since else []
    data_uri = metadata.get("data_uri", "")
    if data_uri.startswith("s3://"):
        parameters.insert(0, {"Name": "InputDataUri", "Value": data_uri})
    return parameters
