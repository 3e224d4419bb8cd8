"""Deploy: serve every model package approved in the project's group, and follow each deployment
until it is known-good, rolled back or failed.

Events:
- "SageMaker Model Package State Change", ModelApprovalStatus Approved, our group. Idempotency
  key: package ARN + status + the change's time (a later re-approval is a new deployment).
- "SageMaker Endpoint Deployment State Change" / "SageMaker Endpoint State Change" of our
  endpoint: the deployment record follows them (history.track_decision): BAKING when the new
  fleet takes traffic, SERVING (known-good) when SageMaker made it the endpoint's config after the
  termination wait (a first deployment: BAKE_SECONDS after InService), ROLLED_BACK when
  SageMaker's auto-rollback put the old fleet back (the package is marked Rejected with
  SageMaker's reason; audit record and critical topic), FAILED when the endpoint failed.
  Idempotency key: endpoint + event type + status + config + stage + the change's time.
  On SERVING the record also gets its latency baseline: the p95 ModelLatency of its fleet over
  its bake (latency_baseline.py), published at once for the p95 alarm to divide by.
- "Scheduled Event" of the deploy handler's baseline rule: measure again the bakes measured
  before all their datapoints had arrived (then final), and publish the latency baseline of what
  the endpoint serves again, a horizon ahead (no decision, no audit record).

Approved packages:

1. DescribeModelPackage: a package no longer Approved (rolled back, rejected since) is skipped.
2. Its provenance (provenance.py): created by a pipeline execution of the project (or the
   approver persona), approved by the gate or the approver persona; in a production environment
   approved by the approver and promoted from the source environment's group
   (PROMOTION_SOURCE_GROUP). A refusal is audited and sent to the critical topic.
3. Under the endpoint's lease (LOCKS table; held elsewhere -> the record retries later):
   - history.deploy_decision: nothing to do if the endpoint serves or is switching to this
     package's config; skipped as superseded if a newer state change (a later approval, a
     rollback) already decided what it serves: an out-of-order Approved event never brings an
     older model back;
   - the deployment record first (previous config = what the endpoint serves now), then the
     model and endpoint config `<endpoint>-v<version>-<hash>` (reused if they exist), then
     UpdateEndpoint with DEPLOYMENT_CONFIG (blue/green canary/linear, auto-rollback alarms), or
     CreateEndpoint if there is no endpoint. A failed call marks the record FAILED.
4. Audit record; summary to the warning topic.
With `serving.shadow` on (SHADOW_SAMPLING_PERCENT > 0) step 3 deploys the package as the shadow
variant of what production serves (lambdas/shared/control/shadow.py: kind `shadow`, config
`<endpoint>-v<version>-s<hash>`), until a passing shadow report promotes it.
The handler does not wait for the blue/green update: SageMaker shifts traffic and rolls back by
itself on the auto-rollback alarms, and its endpoint events move the record on.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.shared.control import events, history, latency_baseline, provenance, shadow
from lambdas.shared.control.errors import RetryLaterError
from lambdas.shared.control.settings import load_settings
from lambdas.shared.control.shell import ControlLoop, Invocation

loop = ControlLoop("deploy", load_settings())
settings = loop.settings


def act(event: events.ModelPackageStateChange, invocation: Invocation) -> dict[str, Any]:
    arn = event.package.arn
    common = {
        "action": "deploy",
        "subject": settings.endpoint_name,
        "changed_at": event.changed_at,
        "identity": events.package_identity(event),
    }
    package = loop.sagemaker.describe_package(arn)
    status = package.get("ModelApprovalStatus")
    version = package.get("ModelPackageVersion") or event.package.version
    inputs: dict[str, Any] = {
        "model_package_arn": arn,
        "model_package_version": version,
        "status": status,
        "event_id": event.get_id,
        "event_changed_at": event.changed_at.isoformat(),
    }
    if status != "Approved":
        return loop.decide(
            **common,
            decision="skipped",
            summary=f"{arn} is {status} now: not deploying it",
            reasons=[f"status is {status}"],
            inputs=inputs,
            topic=None,
        )
    problems = provenance.provenance_problems(
        settings.production, package, settings.trust, settings.promotion_source_group
    )
    if problems:
        return loop.decide(
            **common,
            decision="refused",
            summary=f"refused to deploy {arn}: {'; '.join(problems)}",
            reasons=problems,
            inputs={
                **inputs,
                "metadata": package.get("CustomerMetadataProperties") or {},
                "created_by": provenance.identity(package, "CreatedBy"),
                "approved_by": provenance.identity(package, "LastModifiedBy"),
            },
            topic=settings.critical_topic_arn,
        )

    model = history.resource_name(settings.endpoint_name, arn, version)
    with loop.endpoint_lease(invocation, f"deploy {arn}"):
        state = loop.sagemaker.endpoint()
        mode = shadow.serving_mode(settings.shadow_sampling_percent, state.exists,
                                   package.get("CustomerMetadataProperties") or {})
        production_variant = (loop.sagemaker.production_variant(state.config)
                              if mode.mode == "shadow" else None)
        name = (shadow.config_name(settings.endpoint_name, arn, version, production_variant["ModelName"])
                if production_variant else model)
        kind = "shadow" if production_variant else "deploy"
        record_id = history.deployment_id(kind, name, event.changed_at)
        records = loop.history.list(settings.endpoint_name)
        plan = history.deploy_decision(
            records, record_id, name, history.iso(event.changed_at), state.config, state.pending_config
        )
        inputs.update(
            endpoint_status=state.status,
            endpoint_config=state.config,
            pending_config=state.pending_config,
            new_endpoint_config=name,
            serving_mode=mode.mode,
            serving_mode_reason=mode.reason,
        )
        if plan.action != "deploy":
            return loop.decide(
                **common,
                decision=plan.action,
                summary=f"{arn}: {plan.reason}",
                reasons=[plan.reason],
                inputs=inputs,
                topic=None,
            )
        if state.exists:
            state.require_updatable(settings.endpoint_name)
        serving = history.serving_deployment(records, state.config)
        record = plan.existing or history.Deployment(
            endpoint_name=settings.endpoint_name,
            deployment_id=record_id,
            kind=kind,
            status=history.STARTING,
            model_package_arn=arn,
            model_package_version=version,
            new_endpoint_config=name,
            previous_endpoint_config=state.config,
            previous_model_package_arn=serving.model_package_arn if serving else None,
            event_time=history.iso(event.changed_at),
            started_at=history.iso(datetime.now(UTC)),
        )
        loop.history.create(record)

        def build_and_switch() -> str:
            if production_variant is not None:
                loop.sagemaker.build_shadow(name, model, arn, production_variant)
            else:
                loop.sagemaker.build(name, arn)
            return loop.sagemaker.switch(name, state, guarded=True)

        outcome = loop.history.track(record, build_and_switch)
    inputs.update(
        deployment_id=record.deployment_id,
        previous_endpoint_config=record.previous_endpoint_config,
        previous_model_package_arn=record.previous_model_package_arn,
        deployment_config=settings.deployment_config if outcome == history.UPDATING else None,
    )
    where = "as the shadow variant" if kind == "shadow" else "to production"
    return loop.decide(
        **common,
        decision="shadowed" if kind == "shadow" else "deployed",
        summary=f"{arn} -> {settings.endpoint_name} {where}: {outcome}, "
                f"{record.previous_endpoint_config} -> {name}",
        reasons=[plan.reason],
        inputs=inputs,
        topic=settings.warning_topic_arn,
    )


def track(event: events.EndpointStateChange, invocation: Invocation) -> dict[str, Any]:
    change = event.change(history.iso(event.changed_at))
    common = {
        "action": "deployment",
        "subject": settings.endpoint_name,
        "changed_at": event.changed_at,
        "identity": events.endpoint_identity(event),
    }
    records = loop.history.list(settings.endpoint_name)
    move = history.track_decision(records, change, settings.bake_seconds)
    inputs: dict[str, Any] = {"event_id": event.get_id, "event": event.detail_type, **vars(change)}
    if move is None:
        loop.count("UntrackedEndpointEvents")
        return {"action": "deployment", "decision": "no-change", "subject": settings.endpoint_name}
    record = move.record
    changes = dict(move.changes)
    measured = measure_bake(replace(record, **changes)) if move.status == history.SERVING else None
    if measured is not None:
        changes.update(measured.as_changes())
    if not loop.history.set_status(
        record.endpoint_name, record.deployment_id, move.status, expected=record.status, **changes
    ):
        raise RetryLaterError(f"deployment {record.deployment_id} changed while this event was read")
    if move.status == history.SERVING:
        inputs["latency_baseline"] = publish_baseline(
            [replace(r, status=move.status, **changes) if r.deployment_id == record.deployment_id else r
             for r in records], record.new_endpoint_config)
        if measured is not None:
            inputs["latency_measurement"] = measured.describe(settings.latency_baseline_min_invocations)
    inputs.update(
        deployment_id=record.deployment_id,
        kind=record.kind,
        from_status=record.status,
        model_package_arn=record.model_package_arn,
        new_endpoint_config=record.new_endpoint_config,
        previous_endpoint_config=record.previous_endpoint_config,
        **changes,
    )
    if move.status == history.ROLLED_BACK and record.model_package_arn:
        why = f"rolled back by SageMaker at {change.at}: {move.changes['outcome']}"
        loop.sagemaker.set_approval(record.model_package_arn, "Rejected", why)
    topic = {
        history.BAKING: None,
        history.SERVING: settings.warning_topic_arn,
        history.ROLLED_BACK: settings.critical_topic_arn,
        history.FAILED: settings.critical_topic_arn,
    }[move.status]
    # A shadow record that serves means its test runs; it is no known-good production model.
    serving = "shadowing" if record.kind == "shadow" else "known-good"
    decision = {history.SERVING: serving}.get(move.status, move.status.lower().replace("_", "-"))
    return loop.decide(
        **common,
        decision=decision,
        summary=f"{record.deployment_id}: {record.status} -> {move.status}: {move.reason}",
        reasons=[move.reason],
        inputs=inputs,
        topic=topic,
    )


def measure_bake(record: history.Deployment) -> latency_baseline.Measurement | None:
    """The record's p95 ModelLatency over its bake; None when it cannot be read (the record still
    becomes known-good: a missing baseline must not hold a deployment back)."""
    window = latency_baseline.bake_window(record)
    if window is None:
        return None
    try:
        return latency_baseline.measure(
            loop.client("cloudwatch"), settings.endpoint_name, settings.variant_name, *window,
            settings.latency_baseline_min_invocations, latency_baseline.fleet_config(record))
    except (ClientError, BotoCoreError):
        loop.logger.exception("latency baseline not measured", extra={"deployment_id": record.deployment_id})
        loop.count("LatencyBaselineFailures")
        return None


def publish_baseline(records: list[history.Deployment], current_config: str | None) -> dict[str, Any]:
    """Publish the baseline for what the endpoint serves from now to the horizon ahead. A failure
    is logged and counted: the next scheduled refresh publishes again."""
    source = latency_baseline.baseline_for(records, current_config)
    if source is None or source.latency_baseline_us is None:
        return {"published": 0, "reason": "no deployment has a measured latency baseline: the alarm "
                                          "uses the configured one"}
    horizon = timedelta(minutes=settings.latency_baseline_horizon_minutes)
    value = latency_baseline.published_value(source.latency_baseline_us, settings.latency_baseline_floor_ms)
    data = latency_baseline.datapoints(settings.endpoint_name, settings.variant_name, value,
                                       datetime.now(UTC), settings.latency_baseline_period_seconds, horizon)
    try:
        published = latency_baseline.publish(loop.client("cloudwatch"), data)
    except (ClientError, BotoCoreError):
        loop.logger.exception("latency baseline not published", extra={"deployment_id": source.deployment_id})
        loop.count("LatencyBaselineFailures")
        published = 0
    return {"published": published, "value_us": value, "measured_p95_us": source.latency_baseline_us,
            "from": source.deployment_id, "config": source.new_endpoint_config}


def final_measurements(records: list[history.Deployment]) -> list[history.Deployment]:
    """Known-good records whose bake was measured before all its datapoints had arrived,
    measured again and marked final; the records as they are now."""
    now, updated = datetime.now(UTC), []
    for record in records:
        measured = measure_bake(record) if latency_baseline.needs_final_measurement(record, now) else None
        changes = measured.as_changes(final=True) if measured is not None else {}
        if changes and loop.history.set_status(record.endpoint_name, record.deployment_id, history.SERVING,
                                               expected=history.SERVING, **changes):
            loop.logger.info(measured.describe(settings.latency_baseline_min_invocations),
                             extra={"deployment_id": record.deployment_id})
            record = replace(record, **changes)
        updated.append(record)
    return updated


def refresh(event: events.ScheduledEvent, invocation: Invocation) -> dict[str, Any]:
    """The schedule's refresh of the latency baseline: no decision, so no audit record."""
    state = loop.sagemaker.endpoint()
    records = final_measurements(loop.history.list(settings.endpoint_name))
    result = publish_baseline(records, state.config)
    loop.logger.info("latency baseline refreshed", extra={"latency_baseline": result})
    return {"action": "latency-baseline", "decision": "refreshed", "subject": settings.endpoint_name,
            **result}


def accept(message_id: str, body: str | None) -> Any:
    kind = events.detail_type(message_id, body)
    if kind == events.ScheduledEvent.DETAIL_TYPE:
        return events.scheduled_event(message_id, body)
    if kind in events.ENDPOINT_EVENTS:
        return events.endpoint_event(message_id, body, settings.endpoint_name)
    return events.package_event(message_id, body, settings.model_package_group, "Approved")


def identity(event: Any) -> dict[str, str]:
    if isinstance(event, events.ScheduledEvent):
        return events.scheduled_identity(event)
    if isinstance(event, events.EndpointStateChange):
        return events.endpoint_identity(event)
    return events.package_identity(event)


def act_on(event: Any, invocation: Invocation) -> dict[str, Any]:
    if isinstance(event, events.ScheduledEvent):
        return refresh(event, invocation)
    if isinstance(event, events.EndpointStateChange):
        return track(event, invocation)
    return act(event, invocation)


handler = loop.lambda_handler(accept=accept, identity=identity, act=act_on)
