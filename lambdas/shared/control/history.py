"""Deployment history and the pure decisions taken on it: what to deploy, what to roll back to.

The history (DEPLOYMENTS table) has one record per deployment or rollback of an endpoint. What
the endpoint serves is DescribeEndpoint's EndpointConfigName, never the table: a blue/green
update that SageMaker rolled back by itself leaves a deployment record whose config was never
served, and the decisions below look at both.

Ordering: records are ordered by the time of the state change that caused them (`event_time`:
the package's approval time, the alarm's transition time), then by when the handler started.
That order, not delivery order, decides what is newest, so a late or redelivered event cannot
undo a later decision.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

NAME_MAX = 63  # SageMaker model and endpoint config names
# Record statuses: written before any SageMaker call, then the call's outcome.
STARTING, UPDATING, CREATING, FAILED = "STARTING", "UPDATING", "CREATING", "FAILED"


@dataclass(frozen=True, kw_only=True)
class Deployment:
    endpoint_name: str
    deployment_id: str
    kind: Literal["deploy", "rollback"]
    status: str
    new_endpoint_config: str
    event_time: str  # ISO-8601 UTC of the state change that caused it
    started_at: str  # ISO-8601 UTC
    model_package_arn: str | None = None  # the package new_endpoint_config serves
    model_package_version: int | None = None
    previous_endpoint_config: str | None = None  # what the endpoint served before (None: no endpoint)
    previous_model_package_arn: str | None = None
    bad_model_package_arn: str | None = None  # rollbacks: the package rolled back from

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Deployment:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in item.items() if k in names})

    def as_item(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def digest(*parts: object, length: int = 8) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:length]


def resource_name(endpoint_name: str, package_arn: str, version: int | None) -> str:
    """The model and endpoint config name for a package on an endpoint: `<endpoint>-v<N>-<hash>`.

    Deterministic, so a redelivered event (or a rebuild by the rollback handler) finds what an
    earlier attempt created instead of creating a second one. Starts with the endpoint name, which
    the handlers' IAM policy is scoped to (`<endpoint>-*`)."""
    suffix = f"-v{version if version is not None else 0}-{digest(package_arn, length=6)}"
    return (endpoint_name[: NAME_MAX - len(suffix)] + suffix).strip("-")


def iso(moment: datetime) -> str:
    """One sortable text form for every time the history compares."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def deployment_id(kind: str, name: str, changed_at: datetime) -> str:
    # One id per state change: duplicates collide on it, a later re-approval gets a new one.
    return f"{kind}#{changed_at.astimezone(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}#{name}"


def _order(record: Deployment) -> tuple[str, str]:
    return (record.event_time, record.started_at)


def live(history: Iterable[Deployment]) -> list[Deployment]:
    """Records that did reach SageMaker (not FAILED), newest first."""
    return sorted((r for r in history if r.status != FAILED), key=_order, reverse=True)


def serving_deployment(history: Iterable[Deployment], current_config: str | None) -> Deployment | None:
    """The newest record whose config the endpoint serves now: the production model."""
    if current_config is None:
        return None
    return next((r for r in live(history) if r.new_endpoint_config == current_config), None)


@dataclass(frozen=True)
class DeployDecision:
    action: Literal["deploy", "already-deployed", "superseded"]
    reason: str
    existing: Deployment | None = None  # the record of this very change, from an earlier attempt


def deploy_decision(
    history: Sequence[Deployment],
    record_id: str,
    new_config: str,
    changed_at_iso: str,
    current_config: str | None,
    pending_config: str | None,
) -> DeployDecision:
    """Deploy an approved package, unless the endpoint already serves (or is switching to) it, or
    a newer state change (a later approval, a rollback) already decided what it serves."""
    existing = next((r for r in history if r.deployment_id == record_id), None)
    if new_config in (current_config, pending_config):
        return DeployDecision("already-deployed", f"the endpoint already serves {new_config}", existing)
    newer = [r for r in live(history) if r.deployment_id != record_id and r.event_time > changed_at_iso]
    if newer:
        latest = newer[0]
        return DeployDecision(
            "superseded",
            f"a newer {latest.kind} ({latest.deployment_id}, state change at {latest.event_time}) "
            f"decided what the endpoint serves; this approval is from {changed_at_iso}",
        )
    return DeployDecision("deploy", f"switch the endpoint from {current_config} to {new_config}", existing)


@dataclass(frozen=True)
class RollbackDecision:
    action: Literal["rollback", "rebuild", "already-restored", "nothing-deployed"]
    reason: str
    bad: Deployment | None = None
    target_config: str | None = None  # the known-good config; None: rebuild one
    target_package_arn: str | None = None


def rollback_decision(history: Sequence[Deployment], current_config: str | None) -> RollbackDecision:
    """Where a critical alarm sends the endpoint: back to the config the newest deployment
    replaced (its known-good predecessor). Never more than one step: after a rollback, a new alarm
    on the restored model is reported, not followed by another rollback."""
    records = live(history)
    if not records:
        return RollbackDecision("nothing-deployed", "no deployment of this endpoint is recorded")
    latest = records[0]
    if latest.kind == "rollback":
        if current_config == latest.new_endpoint_config:
            return RollbackDecision(
                "already-restored",
                f"rollback {latest.deployment_id} already restored {latest.new_endpoint_config}",
                target_config=latest.new_endpoint_config,
                target_package_arn=latest.model_package_arn,
            )
        # Someone changed the endpoint after the rollback without the loop: restore again.
        return RollbackDecision(
            "rollback",
            f"the endpoint serves {current_config}, not the restored {latest.new_endpoint_config}",
            target_config=latest.new_endpoint_config,
            target_package_arn=latest.model_package_arn,
        )
    if latest.previous_endpoint_config is None:
        return RollbackDecision(
            "rebuild", f"deployment {latest.deployment_id} recorded no previous config", bad=latest
        )
    if current_config == latest.previous_endpoint_config:
        return RollbackDecision(
            "already-restored",
            f"the endpoint already serves the known-good {current_config} "
            f"(deployment {latest.deployment_id} is not live)",
            bad=latest,
            target_config=current_config,
            target_package_arn=latest.previous_model_package_arn,
        )
    return RollbackDecision(
        "rollback",
        f"deployment {latest.deployment_id} ({latest.model_package_arn}) replaced "
        f"{latest.previous_endpoint_config}",
        bad=latest,
        target_config=latest.previous_endpoint_config,
        target_package_arn=latest.previous_model_package_arn,
    )


def rebuild_package(
    bad_package_arn: str | None, preferred_arn: str | None, approved: Sequence[tuple[str, int]]
) -> str | None:
    """The package to rebuild a known-good config from when the recorded one is gone: the package
    that config served, if still approved, else the newest approved package other than the bad
    one. `approved`: (arn, version) of the group's Approved packages."""
    candidates = [(arn, version) for arn, version in approved if arn != bad_package_arn]
    if preferred_arn and any(arn == preferred_arn for arn, _ in candidates):
        return preferred_arn
    return max(candidates, key=lambda c: c[1])[0] if candidates else None
