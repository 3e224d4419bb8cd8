"""Deployment history and the pure decisions taken on it: what to deploy, what to roll back to.

The history (DEPLOYMENTS table) has one record per deployment or rollback of an endpoint. What
the endpoint serves is DescribeEndpoint's EndpointConfigName, never the table: the decisions
below look at both.

A record follows its deployment through SageMaker's endpoint events (`track_decision`):

    STARTING -> UPDATING (blue/green) | CREATING (no endpoint yet)   the handler's call
             -> BAKING       the new fleet took traffic (canary step, or InService after a create)
             -> SERVING      known-good: it served all traffic through its bake with no critical
                             alarm (blue/green: the termination wait ended and SageMaker made it
                             the endpoint's config; a create: BAKE_SECONDS passed)
             -> ROLLED_BACK  SageMaker put the old fleet back (its auto-rollback, or a new fleet
                             that never became healthy), or the rollback handler blamed it for
                             a critical alarm
             -> FAILED       the call failed, or the endpoint went Failed
Known-good deployments are the only rollback targets: the bootstrap model that Terraform starts
an endpoint on has no record at all, so it is never one.

Ordering: records are ordered by the time of the state change that caused them (`event_time`:
the package's approval time, the alarm's transition time), then by when the handler started.
That order, not delivery order, decides what is newest, so a late or redelivered event cannot
undo a later decision.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from lambdas.shared.capture_files import parse_time

NAME_MAX = 63  # SageMaker model and endpoint config names
# Record statuses: written before any SageMaker call, then the call's outcome, then the events'.
STARTING, UPDATING, CREATING, FAILED = "STARTING", "UPDATING", "CREATING", "FAILED"
BAKING, SERVING, ROLLED_BACK = "BAKING", "SERVING", "ROLLED_BACK"
IN_FLIGHT = (STARTING, UPDATING, CREATING, BAKING)  # waiting for SageMaker's events


@dataclass(frozen=True, kw_only=True)
class Deployment:
    endpoint_name: str
    deployment_id: str
    kind: Literal["deploy", "rollback", "shadow"]  # shadow: a shadow test (control/shadow.py)
    status: str
    new_endpoint_config: str
    event_time: str  # ISO-8601 UTC of the state change that caused it
    started_at: str  # ISO-8601 UTC
    model_package_arn: str | None = None  # the package new_endpoint_config serves
    model_package_version: int | None = None
    previous_endpoint_config: str | None = None  # what the endpoint served before (None: no endpoint)
    previous_model_package_arn: str | None = None
    bad_model_package_arn: str | None = None  # rollbacks: the package rolled back from
    traffic_at: str | None = None  # ISO-8601 UTC: the new fleet first took traffic
    bake_until: str | None = None  # ISO-8601 UTC: known-good from then on (creates: BAKE_SECONDS)
    known_good_at: str | None = None  # ISO-8601 UTC: became SERVING
    outcome: str | None = None  # why it ended ROLLED_BACK or FAILED (SageMaker's FailureReason, the alarm)
    ended_at: str | None = None  # ISO-8601 UTC: when it stopped serving (ROLLED_BACK, FAILED)
    # Its p95 ModelLatency over the bake and the invocations it rests on (latency_baseline.py).
    latency_baseline_us: float | None = None
    latency_baseline_invocations: int | None = None
    latency_baseline_final: bool | None = None  # measured once all its datapoints had arrived

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


def known_good(record: Deployment, at: str) -> bool:
    """Whether `record` had served all traffic through its bake by `at` (ISO) unblamed."""
    if record.status == SERVING:
        return (record.known_good_at or record.started_at) <= at
    return record.status == BAKING and record.bake_until is not None and record.bake_until <= at


def live(history: Iterable[Deployment]) -> list[Deployment]:
    """Records that did reach SageMaker (not FAILED), newest first."""
    return sorted((r for r in history if r.status != FAILED), key=_order, reverse=True)


def serving_deployment(history: Iterable[Deployment], current_config: str | None) -> Deployment | None:
    """The newest record whose config the endpoint serves now: the production model."""
    if current_config is None:
        return None
    return next(
        (r for r in live(history) if r.new_endpoint_config == current_config and r.status != ROLLED_BACK),
        None,
    )


def production_behind(records: Sequence[Deployment], served: Deployment | None) -> Deployment | None:
    """What production serves: `served`, or, when it is a shadow test, the record whose model the
    test keeps as production (the production variant's alarms are about that model, never the
    shadow's)."""
    seen: set[str] = set()
    while served is not None and served.kind == "shadow" and served.deployment_id not in seen:
        seen.add(served.deployment_id)
        behind = served.previous_endpoint_config
        served = next((r for r in records if r.new_endpoint_config == behind and r.status != ROLLED_BACK),
                      None)
    return served


def took_traffic(record: Deployment) -> str | None:
    """When the record's fleet took traffic (ISO); None while an update has not shifted any yet.
    A rollback switches all at once: from its start. A known-good record written without events
    (before this field existed): from its start."""
    if record.traffic_at:
        return record.traffic_at
    if record.kind == "rollback" and record.status != STARTING:
        return record.started_at
    return record.started_at if record.status == SERVING else None


def served_at(history: Iterable[Deployment], at: str) -> Deployment | None:
    """The deployment that served at `at`: the newest to take traffic by then and not ended by
    then (an update still launching its fleet serves nothing yet). Records written after `at` (a
    rollback answering the alarm) do not change the answer, so two handlers deciding on one alarm
    at different moments decide alike."""
    serving = [
        r for r in history
        if r.status != FAILED and (took_traffic(r) or "~") <= at and not (r.ended_at and r.ended_at <= at)
    ]
    return max(serving, key=lambda r: (took_traffic(r) or "", r.started_at), default=None)


def update_underway(records: Sequence[Deployment], at: str, served: Deployment | None,
                    current_config: str | None) -> Deployment | None:
    """The blue/green update of another config that had started by `at` and had not become
    known-good or ended by then (newer than what the endpoint serves now): still in flight, or
    ended by SageMaker since (ROLLED_BACK, with its end after `at`)."""
    def underway(r: Deployment) -> bool:
        if r.kind not in ("deploy", "shadow") or r.new_endpoint_config == current_config or r.started_at > at:
            return False
        if served is not None and r.started_at <= served.started_at:
            return False
        if r.known_good_at and r.known_good_at <= at:
            return False
        if r.status in IN_FLIGHT:
            return True
        return r.status == ROLLED_BACK and r.ended_at is not None and r.ended_at >= at

    return max((r for r in records if underway(r)), key=lambda r: r.started_at, default=None)


@dataclass(frozen=True)
class DropCause:
    cause: Literal["model-changed", "concept-drift"]
    reason: str
    deployment: Deployment | None


def accuracy_drop_cause(history: Sequence[Deployment], alarm_at: str, healthy_at: Sequence[str],
                        window_minutes: int = 60) -> DropCause:
    """Why the accuracy alarm went to ALARM at `alarm_at`: the model changed (the drop began under
    the newest deployment: no window of it was measured healthy) -> roll back; or the world did
    (concept drift: the served model was measured healthy after it took traffic, or it is a
    known-good model restored by a rollback) -> retrain. `healthy_at`: the times (ISO, each a
    window's end) of the accuracy-drop datapoints at or under the alarm's threshold; a window
    counts only if it began after the deployment took traffic (all of it was that model's)."""
    served = production_behind(live(history), served_at(history, alarm_at))
    if served is None:
        return DropCause("concept-drift", "no deployment of the loop served when the drop began", None)
    took = took_traffic(served) or served.started_at
    if served.kind == "rollback":
        return DropCause("concept-drift", f"the served model is the known-good one restored by "
                                          f"{served.deployment_id}: the data changed, not the model", served)
    healthy = sorted(t for t in healthy_at
                     if took <= iso(parse_time(t) - timedelta(minutes=window_minutes)) and t <= alarm_at)
    if healthy:
        return DropCause("concept-drift", f"{served.deployment_id} was measured healthy at {healthy[-1]}, "
                                          f"after it took traffic at {took}: the data changed", served)
    return DropCause("model-changed", f"the drop began under {served.deployment_id} (traffic since {took}; "
                                      "no healthy accuracy window since)", served)


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
    action: Literal["rollback", "already-restored", "left-to-guardrails", "not-blamed", "keep-known-good",
                    "no-known-good"]
    reason: str
    bad: Deployment | None = None  # the deployment blamed: it took traffic before the alarm
    target: Deployment | None = None  # the newest known-good deployment before it

    @property
    def target_config(self) -> str | None:
        return self.target.new_endpoint_config if self.target else None

    @property
    def target_package_arn(self) -> str | None:
        return self.target.model_package_arn if self.target else None


def rollback_decision(
    history: Sequence[Deployment], current_config: str | None, alarm_at: str, now: str | None = None,
    guarded: bool = True,
) -> RollbackDecision:
    """Where a critical alarm that went to ALARM at `alarm_at` (ISO, `iso()`) sends the endpoint.

    Blamed: the deployment serving `current_config`, and only if it took traffic before the alarm's
    transition (an alarm raised under the model before it says nothing about this one). Target: the
    newest known-good deployment other than the blamed one (`known_good`): never a model that did
    not bake with all traffic, so never the bootstrap model Terraform starts the endpoint on. None
    -> nothing changes. After a rollback, a new alarm on the restored known-good model is reported,
    not followed by another step back: a model that baked clean is rarely the cause twice.
    `guarded`: SageMaker's deployment guardrails watch this alarm (DEPLOYMENT_CONFIG's
    AutoRollbackConfiguration); an update in flight is theirs to answer only then."""
    now = now or iso(datetime.now(UTC))
    records = live(history)
    served = production_behind(records, serving_deployment(records, current_config))
    underway = update_underway(records, alarm_at, served, current_config)
    if underway is not None:
        # A blue/green update was under way when the alarm fired: during its bakes SageMaker's
        # deployment guardrails answer the alarm (they roll the new fleet back). What served
        # before it is not blamed for an alarm raised while the new fleet took traffic.
        if underway.status in IN_FLIGHT and guarded:
            return RollbackDecision(
                "left-to-guardrails",
                f"deployment {underway.deployment_id} ({underway.new_endpoint_config}) was under way when "
                f"the alarm fired ({underway.status}): SageMaker's deployment guardrails answer it",
                bad=underway,
            )
        if underway.status not in IN_FLIGHT:
            return RollbackDecision(
                "already-restored",
                f"deployment {underway.deployment_id} was under way when the alarm fired and ended "
                f"{underway.status} at {underway.ended_at}; the endpoint serves {current_config}",
            )
        # An alarm the guardrails do not watch (the accuracy drop): the endpoint no longer
        # updates (the handler waits for that), so what serves now is judged as below.
    at_alarm = served_at(records, alarm_at)
    if (at_alarm is not None and served is not None and at_alarm.kind == "deploy"
            and at_alarm.new_endpoint_config != current_config and at_alarm.started_at > served.started_at):
        # What served when the alarm fired is no longer served: SageMaker's auto-rollback (or an
        # earlier decision) already answered it. Blaming what serves now would punish the
        # known-good model it restored.
        return RollbackDecision(
            "already-restored",
            f"deployment {at_alarm.deployment_id} served when the alarm fired and no longer does "
            f"({at_alarm.status}); the endpoint serves {current_config}",
        )
    if served is not None and served.kind == "rollback":
        if (served.traffic_at or served.started_at) >= alarm_at:
            return RollbackDecision(
                "already-restored",
                f"rollback {served.deployment_id} restored {served.new_endpoint_config} after the alarm",
            )
        return RollbackDecision(
            "keep-known-good",
            f"the endpoint serves the known-good {served.new_endpoint_config} restored by "
            f"{served.deployment_id}; an alarm on it is not rolled back further (a person decides)",
        )
    if served is not None and (served.traffic_at or served.started_at) > alarm_at:
        return RollbackDecision(
            "not-blamed",
            f"deployment {served.deployment_id} took traffic at {served.traffic_at or served.started_at}, "
            f"after the alarm's transition at {alarm_at}: the alarm is not about it",
        )
    bad_package = served.model_package_arn if served else None
    candidates = [
        r
        for r in records
        if r.kind == "deploy"
        and known_good(r, alarm_at)
        and r.new_endpoint_config != current_config
        and r.model_package_arn != bad_package
    ]
    if not candidates:
        what = (f"deployment {served.deployment_id}" if served
                else f"{current_config} (no deployment of the loop)")
        return RollbackDecision(
            "no-known-good",
            f"no known-good deployment to restore instead of {what}: none served all traffic "
            "through its bake",
            bad=served,
        )
    target = candidates[0]
    why = (
        f"deployment {served.deployment_id} ({served.model_package_arn}) took traffic at "
        f"{served.traffic_at or served.started_at}, before the alarm"
        if served
        else f"the endpoint serves {current_config}, which the loop did not deploy"
    )
    return RollbackDecision(
        "rollback",
        f"{why}; the newest known-good is {target.deployment_id} ({target.new_endpoint_config})",
        bad=served,
        target=target,
    )


@dataclass(frozen=True)
class EndpointChange:
    """What one SageMaker endpoint event says (events.EndpointStateChange / EndpointDeploymentStateChange)."""

    at: str  # ISO-8601 UTC of the change (the endpoint's LastModifiedTime, else the event's time)
    status: str | None  # EndpointStatus as the events send it (IN_SERVICE, ...); None: a capacity change
    config: str | None  # EndpointConfigName: the config the endpoint serves
    pending_config: str | None = None  # deployment events: the config being deployed
    stage: str | None = None  # deployment events: the variants' VariantStatus (Creating, Baking, ...)
    failure_reason: str | None = None


@dataclass(frozen=True)
class Transition:
    record: Deployment
    status: str
    changes: dict[str, Any]  # the record's fields to set with the status
    reason: str


def track_decision(
    history: Sequence[Deployment], change: EndpointChange, bake_seconds: int
) -> Transition | None:
    """The record an endpoint event moves on, and where to; None if it moves none (a duplicate, an
    event older than the deployment, a stage that changes nothing). Only forward: a late Baking
    event never takes a SERVING record back."""
    waiting = [r for r in live(history) if r.status in IN_FLIGHT and r.started_at <= change.at]
    if change.pending_config is not None:
        record = next((r for r in waiting if r.new_endpoint_config == change.pending_config), None)
        if record is None or change.stage != "Baking" or record.status not in (STARTING, UPDATING):
            return _baked(waiting, change)
        return Transition(record, BAKING, {"traffic_at": change.at},
                          f"{record.new_endpoint_config} took traffic at {change.at}")
    if change.status == "FAILED":
        record = next((r for r in waiting if r.new_endpoint_config == change.config), None)
        why = change.failure_reason or "the endpoint went Failed"
        return Transition(record, FAILED, {"outcome": why, "ended_at": change.at}, why) if record else None
    if change.status != "IN_SERVICE":
        return _baked(waiting, change)
    # A create's bake ends by time, not by an event: it never matches one.
    timed = [r for r in waiting if r.status == BAKING and r.bake_until]
    record = next((r for r in waiting if r.new_endpoint_config == change.config and r not in timed), None)
    if record is not None:
        if record.status == CREATING and bake_seconds > 0:
            until = iso(parse_time(change.at) + timedelta(seconds=bake_seconds))
            return Transition(record, BAKING, {"traffic_at": change.at, "bake_until": until},
                              f"{record.new_endpoint_config} serves all traffic; known-good after "
                              f"{bake_seconds} s (BAKE_SECONDS) at {until}")
        # A blue/green update ends InService on the new config only after its termination wait:
        # all traffic, baked, no auto-rollback alarm.
        done = ("its shadow test runs" if record.kind == "shadow"
                else "served all traffic through its bake: known-good")
        return Transition(record, SERVING,
                          {"traffic_at": record.traffic_at or change.at, "known_good_at": change.at},
                          f"{record.new_endpoint_config} {done}")
    record = next(
        (r for r in waiting if r.kind == "deploy" and r.previous_endpoint_config == change.config
         and r.status in (UPDATING, BAKING)),
        None,
    )
    if record is None:
        return _baked(waiting, change)
    # SageMaker put the old fleet back: its auto-rollback, or a new fleet that never became
    # healthy. Events may come out of order (a late Baking event), so both end ROLLED_BACK; the
    # reason (SageMaker's FailureReason) tells them apart.
    why = change.failure_reason or (
        f"SageMaker put {change.config} back instead of {record.new_endpoint_config}")
    took = "" if record.status == BAKING else " (no Baking event seen: it may never have taken traffic)"
    return Transition(record, ROLLED_BACK, {"outcome": why, "ended_at": change.at},
                      f"SageMaker rolled {record.new_endpoint_config} back{took}: {why}")


def _baked(waiting: Sequence[Deployment], change: EndpointChange) -> Transition | None:
    """A create whose bake ended before this event, written SERVING on the way (the event itself
    moves nothing else); None if there is none."""
    done = next((r for r in waiting if r.status == BAKING and r.bake_until and r.bake_until <= change.at),
                None)
    if done is None:
        return None
    return Transition(done, SERVING, {"known_good_at": done.bake_until},
                      f"{done.new_endpoint_config} served all traffic for its bake until {done.bake_until}")
