"""Rollback: put the endpoint back on its last known-good config when a critical alarm fires.

Event: "CloudWatch Alarm State Change" to ALARM of an alarm in ROLLBACK_ALARMS (others are
ignored). Idempotency key: alarm name + the ALARM transition's state timestamp, so one incident
rolls back once however often it is delivered.

Under the endpoint's lease (shared with deploy; held -> the record retries later):
1. DescribeEndpoint; an update in progress is left to SageMaker's own auto-rollback (the record
   retries later and then usually finds the endpoint already restored).
2. history.rollback_decision (pure): the known-good config is the one the newest deployment
   replaced. Already served -> no-op, audited as already restored. After a rollback, a new alarm
   on the restored model is reported, not rolled back further.
3. The known-good config gone (DescribeEndpointConfig) or never recorded -> rebuild one, with the
   deploy handler's naming, from the package it served if still approved, else the newest
   approved package other than the bad one. None -> audited, critical notification, no change.
4. Rollback record, then UpdateEndpoint without a deployment config (all at once: a rollback does
   not wait for a canary), retaining the variant's current instance count.
   The bad package is marked Rejected (the alarm as the reason) just before the switch.
5. Audit record; critical topic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lambdas.shared.control import events, history
from lambdas.shared.control.settings import load_settings
from lambdas.shared.control.shell import ControlLoop, Invocation

loop = ControlLoop("rollback", load_settings())
settings = loop.settings
DESCRIPTION_MAX = 1024


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
    with loop.endpoint_lease(invocation, f"rollback on {alarm.alarm_name}"):
        state = loop.sagemaker.endpoint()
        inputs.update(endpoint_status=state.status, endpoint_config=state.config)
        if state.exists:
            state.require_updatable(settings.endpoint_name)
        plan = history.rollback_decision(loop.history.list(settings.endpoint_name), state.config)
        bad_arn = plan.bad.model_package_arn if plan.bad else None
        inputs.update(
            plan=plan.action,
            plan_reason=plan.reason,
            bad_model_package_arn=bad_arn,
            known_good_config=plan.target_config,
            known_good_package_arn=plan.target_package_arn,
        )
        if not state.exists or plan.action == "nothing-deployed":
            reason = plan.reason if state.exists else f"endpoint {settings.endpoint_name} does not exist"
            return loop.decide(
                **common,
                decision="nothing-to-restore",
                summary=f"{alarm.alarm_name}: {reason}",
                reasons=[reason],
                inputs=inputs,
                topic=settings.critical_topic_arn,
            )
        if plan.action == "already-restored":
            return loop.decide(
                **common,
                decision="already-restored",
                summary=f"{alarm.alarm_name}: {plan.reason}",
                reasons=[plan.reason],
                inputs=inputs,
                topic=None,
            )

        target, target_package = plan.target_config, plan.target_package_arn
        if target is None or not loop.sagemaker.config_exists(target):
            target_package = history.rebuild_package(
                bad_arn, plan.target_package_arn, loop.sagemaker.approved_packages()
            )
            inputs.update(
                rebuilt_because=f"known-good config {target} is gone" if target else plan.reason,
                rebuilt_from=target_package,
            )
            if target_package is None:
                reason = f"no known-good config and no approved package other than {bad_arn} to rebuild one"
                return loop.decide(
                    **common,
                    decision="no-known-good",
                    summary=f"{alarm.alarm_name}: {reason}",
                    reasons=[reason],
                    inputs=inputs,
                    topic=settings.critical_topic_arn,
                )
            version = loop.sagemaker.describe_package(target_package).get("ModelPackageVersion")
            target = history.resource_name(settings.endpoint_name, target_package, version)
            loop.sagemaker.build(target, target_package)
        if target == state.config:
            return loop.decide(
                **common,
                decision="already-restored",
                summary=f"{alarm.alarm_name}: the endpoint already serves {target}",
                reasons=[f"the endpoint already serves {target}"],
                inputs=inputs,
                topic=None,
            )

        record = history.Deployment(
            endpoint_name=settings.endpoint_name,
            deployment_id=history.deployment_id("rollback", target, event.changed_at),
            kind="rollback",
            status=history.STARTING,
            model_package_arn=target_package,
            new_endpoint_config=target,
            previous_endpoint_config=state.config,
            previous_model_package_arn=bad_arn,
            bad_model_package_arn=bad_arn,
            event_time=history.iso(event.changed_at),
            started_at=history.iso(datetime.now(UTC)),
        )
        loop.history.create(record)
        if bad_arn:  # before the switch: a retry after a failed switch marks it again, harmlessly
            why = (
                f"rolled back: alarm {alarm.alarm_name} went to ALARM at {alarm.state.timestamp}: "
                f"{alarm.state.reason}"
            )
            loop.sagemaker.set_approval(bad_arn, "Rejected", why[:DESCRIPTION_MAX])
        loop.history.track(record, lambda: loop.sagemaker.switch(target, state, guarded=False))
    inputs.update(
        deployment_id=record.deployment_id, restored_config=target, restored_package_arn=target_package
    )
    return loop.decide(
        **common,
        decision="rolled-back",
        summary=f"{alarm.alarm_name}: {settings.endpoint_name} {state.config} -> {target}"
        + (f"; {bad_arn} marked Rejected" if bad_arn else ""),
        reasons=[plan.reason],
        inputs=inputs,
        topic=settings.critical_topic_arn,
    )


handler = loop.lambda_handler(
    accept=lambda message_id, body: events.alarm_event(message_id, body, settings.rollback_alarms),
    identity=events.alarm_identity,
    act=act,
)
