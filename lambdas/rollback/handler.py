"""Rollback: put the endpoint back on its newest known-good deployment when a critical alarm fires.

Event: "CloudWatch Alarm State Change" to ALARM of an alarm in ROLLBACK_ALARMS (others are
ignored). Idempotency key: alarm name + the ALARM transition's state timestamp, so one incident
rolls back once however often it is delivered.

The accuracy-drop alarm (ACCURACY_ALARM) rolls back only when the model changed: the drop began
under the newest deployment (history.accuracy_drop_cause); under a model measured healthy it is
concept drift, left to the retrain handler, and the critical topic is told either way.

Under the endpoint's lease (shared with deploy; held -> the record retries later):
1. DescribeEndpoint; an update in progress is left to SageMaker's own auto-rollback (the record
   retries later and then usually finds the endpoint already restored).
2. history.rollback_decision (pure): a blue/green update of another config under way when the
   alarm fired (started, not yet known-good) is SageMaker's guardrails' to answer when they watch
   the alarm (`left-to-guardrails`, or `already-restored` once they ended it): what served before
   it is not blamed. An alarm they do not watch (the accuracy drop) is judged on what serves.
   Otherwise it blames the deployment the endpoint serves only if it took traffic before the
   alarm's transition, and restores the newest known-good deployment before it
   (one that served all traffic through its bake: history.known_good). Never the bootstrap
   model, which no deployment record names. None -> no change, `no-known-good` on the critical
   topic. An alarm on a known-good model restored by an earlier rollback is reported, not rolled
   back further.
3. The known-good config gone (DescribeEndpointConfig) -> rebuilt, with the deploy handler's
   naming, from the known-good deployment's package, if that package is still one the deploy
   handler would serve (Approved, trusted origin: provenance.servable_problems); else `refused`
   on the critical topic and no change (a history record is not evidence of an approval).
4. The blamed record is marked ROLLED_BACK and its package Rejected (the alarm as the reason),
   then a rollback record and UpdateEndpoint without a deployment config (all at once: a
   rollback does not wait for a canary), retaining the variant's current instance count.
5. Audit record; critical topic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lambdas.shared.control import events, history, provenance
from lambdas.shared.control.settings import load_settings
from lambdas.shared.control.shell import ControlLoop, Invocation

loop = ControlLoop("rollback", load_settings())
settings = loop.settings


def guardrail_alarms() -> frozenset[str]:
    """The alarms SageMaker's auto-rollback watches during a blue/green update."""
    watched = settings.deployment_config.get("AutoRollbackConfiguration", {}).get("Alarms", [])
    return frozenset(a["AlarmName"] for a in watched)


def act(event: events.AlarmStateChange, invocation: Invocation) -> dict[str, Any]:
    alarm = event.alarm
    common = {
        "action": "rollback",
        "subject": settings.endpoint_name,
        "changed_at": event.changed_at,
        "identity": events.alarm_identity(event),
    }
    inputs: dict[str, Any] = {
        "alarm": alarm.alarm_name,
        "alarm_timestamp": alarm.state.timestamp,
        "alarm_reason": alarm.state.reason,
        "event_id": event.get_id,
    }
    alarm_at = history.iso(event.changed_at)
    if alarm.alarm_name == settings.accuracy_alarm:
        drop = loop.accuracy_drop_cause(event.changed_at)
        inputs.update(drop_cause=drop.cause, drop_reason=drop.reason)
        if drop.cause == "concept-drift":  # the retrain handler answers it; a person is told
            return loop.decide(**common, decision="concept-drift", reasons=[drop.reason], inputs=inputs,
                               summary=f"{alarm.alarm_name}: {drop.reason}; retrain, no rollback",
                               topic=settings.critical_topic_arn)
    with loop.endpoint_lease(invocation, f"rollback on {alarm.alarm_name}"):
        state = loop.sagemaker.endpoint()
        inputs.update(endpoint_status=state.status, endpoint_config=state.config)
        if not state.exists:
            reason = f"endpoint {settings.endpoint_name} does not exist"
            return loop.decide(**common, decision="nothing-to-restore", reasons=[reason], inputs=inputs,
                               summary=f"{alarm.alarm_name}: {reason}", topic=settings.critical_topic_arn)
        state.require_updatable(settings.endpoint_name)
        plan = history.rollback_decision(loop.history.list(settings.endpoint_name), state.config, alarm_at,
                                         guarded=alarm.alarm_name in guardrail_alarms())
        bad = plan.bad
        inputs.update(
            plan=plan.action,
            plan_reason=plan.reason,
            bad_deployment_id=bad.deployment_id if bad else None,
            bad_model_package_arn=bad.model_package_arn if bad else None,
            known_good_deployment_id=plan.target.deployment_id if plan.target else None,
            known_good_config=plan.target_config,
            known_good_package_arn=plan.target_package_arn,
        )
        if plan.action != "rollback" or plan.target is None:
            quiet = plan.action == "already-restored"  # the same incident, already handled
            return loop.decide(
                **common,
                decision=plan.action,
                summary=f"{alarm.alarm_name}: {plan.reason}",
                reasons=[plan.reason],
                inputs=inputs,
                topic=None if quiet else settings.critical_topic_arn,
            )

        target, target_package = plan.target.new_endpoint_config, plan.target.model_package_arn
        if not loop.sagemaker.config_exists(target):
            if target_package is None:
                raise RuntimeError(f"known-good deployment {plan.target.deployment_id} names no package")
            inputs.update(rebuilt_because=f"known-good config {target} is gone", rebuilt_from=target_package)
            described = loop.sagemaker.describe_package(target_package)
            # A history record names the package, and records are not evidence of approval: the
            # package must still be one the deploy handler would serve.
            refused = provenance.servable_problems(settings.production, described, settings.trust,
                                                   settings.promotion_source_group)
            if refused:
                return loop.decide(
                    **common, decision="refused", reasons=refused, inputs=inputs,
                    summary=f"{alarm.alarm_name}: not rebuilding {target_package}: {'; '.join(refused)}",
                    topic=settings.critical_topic_arn)
            version = described.get("ModelPackageVersion")
            target = history.resource_name(settings.endpoint_name, target_package, version)
            loop.sagemaker.build(target, target_package)

        bad_arn = bad.model_package_arn if bad else None
        why = f"alarm {alarm.alarm_name} went to ALARM at {alarm.state.timestamp}: {alarm.state.reason}"
        if bad is not None:  # before the switch: a retry after a failed switch marks it again, harmlessly
            loop.history.set_status(bad.endpoint_name, bad.deployment_id, history.ROLLED_BACK,
                                    outcome=why[:1000], ended_at=history.iso(datetime.now(UTC)))
            if bad_arn:
                loop.sagemaker.set_approval(bad_arn, "Rejected", f"rolled back: {why}")
        record = history.Deployment(
            endpoint_name=settings.endpoint_name,
            deployment_id=history.deployment_id("rollback", target, event.changed_at),
            kind="rollback",
            status=history.STARTING,
            model_package_arn=target_package,
            model_package_version=plan.target.model_package_version,
            new_endpoint_config=target,
            previous_endpoint_config=state.config,
            previous_model_package_arn=bad_arn,
            bad_model_package_arn=bad_arn,
            event_time=alarm_at,
            started_at=history.iso(datetime.now(UTC)),
        )
        loop.history.create(record)
        loop.history.track(record, lambda: loop.sagemaker.switch(target, state, guarded=False))
    inputs.update(
        deployment_id=record.deployment_id, restored_config=target, restored_package_arn=target_package
    )
    return loop.decide(
        **common,
        decision="rolled-back",
        summary=f"{alarm.alarm_name}: {settings.endpoint_name} {state.config} -> {target} (known-good "
        f"{plan.target.deployment_id})" + (f"; {bad_arn} marked Rejected" if bad_arn else ""),
        reasons=[plan.reason],
        inputs=inputs,
        topic=settings.critical_topic_arn,
    )


handler = loop.lambda_handler(
    accept=lambda message_id, body: events.alarm_event(message_id, body, settings.rollback_alarms),
    identity=events.alarm_identity,
    act=act,
)
