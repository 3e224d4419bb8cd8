"""Retrain: start the training pipeline when a drift or accuracy alarm fires, at most once per cooldown.

Event: "CloudWatch Alarm State Change" to ALARM of an alarm in RETRAIN_ALARMS (others are
ignored). Idempotency key: alarm name + the ALARM transition's state timestamp.

0. The accuracy-drop alarm (ACCURACY_ALARM) starts a retrain only when it is concept drift (the
   served model was measured healthy: history.accuracy_drop_cause); a drop the newest
   deployment caused is the rollback handler's, audited here as `left-to-rollback`.
1. Take the pipeline's cooldown item in the LOCKS table with a conditional write (expires after
   RETRAIN_COOLDOWN_MINUTES, also its TTL). Held -> a run started within the cooldown: audited
   as suppressed, nothing started. Of a storm of alarms, concurrent or not, exactly one wins.
2. StartPipelineExecution with a display name and description saying which alarm, a client
   token derived from the transition (SageMaker drops a repeated start too), and parameters that
   give the run new data (retrain.retrain_parameters): the served package's training data plus
   the production records labelled since it was registered. If the start fails,
   the cooldown item is released so the retry can start the run.
3. Audit record; summary to the warning topic.
"""

from __future__ import annotations

import time
from typing import Any

from lambdas.shared.control import events, retrain
from lambdas.shared.control.errors import LeaseHeldError
from lambdas.shared.control.history import digest
from lambdas.shared.control.settings import load_settings
from lambdas.shared.control.shell import ControlLoop, Invocation
from lambdas.shared.served_model import NothingServed, served_package

loop = ControlLoop("retrain", load_settings())
settings = loop.settings


def act(event: events.AlarmStateChange, invocation: Invocation) -> dict[str, Any]:
    alarm = event.alarm
    identity = events.alarm_identity(event)
    common = {
        "action": "retrain",
        "subject": settings.pipeline_name,
        "changed_at": event.changed_at,
        "identity": identity,
    }
    request = retrain.retrain_request(alarm.alarm_name, alarm.state.timestamp, alarm.state.reason)
    lock_id = retrain.cooldown_lock_id(settings.pipeline_name)
    owner = digest(*identity.values(), length=16)
    expires_at = retrain.cooldown_expires_at(time.time(), settings.retrain_cooldown_minutes)
    inputs: dict[str, Any] = {
        "alarm": alarm.alarm_name,
        "alarm_timestamp": alarm.state.timestamp,
        "alarm_reason": alarm.state.reason,
        "event_id": event.get_id,
        "cooldown_minutes": settings.retrain_cooldown_minutes,
    }
    if alarm.alarm_name == settings.accuracy_alarm:
        drop = loop.accuracy_drop_cause(event.changed_at)
        inputs.update(drop_cause=drop.cause, drop_reason=drop.reason)
        if drop.cause == "model-changed":
            return loop.decide(**common, decision="left-to-rollback", reasons=[drop.reason], inputs=inputs,
                               summary=f"{alarm.alarm_name}: {drop.reason}; the rollback handler answers it",
                               topic=None)
    try:
        loop.leases.acquire(lock_id, owner, expires_at, f"retrain after {alarm.alarm_name}")
    except LeaseHeldError as exc:
        return loop.decide(
            **common,
            decision="suppressed",
            summary=f"{alarm.alarm_name}: a retrain started within the cooldown ({exc})",
            reasons=[f"cooldown: {exc}"],
            inputs=inputs,
            topic=None,
        )
    try:
        try:
            served = served_package(loop.client("sagemaker"), settings.endpoint_name)
        except NothingServed:
            served = None
        parameters = retrain.retrain_parameters(served)
        execution = loop.client("sagemaker").start_pipeline_execution(
            PipelineName=settings.pipeline_name,
            PipelineExecutionDisplayName=request.display_name,
            PipelineExecutionDescription=request.description,
            ClientRequestToken=request.client_token,
            **({"PipelineParameters": parameters} if parameters else {}),
        )["PipelineExecutionArn"]
    except Exception:
        loop.leases.release(lock_id, owner)
        raise
    inputs.update(
        pipeline_execution_arn=execution, display_name=request.display_name, cooldown_until=expires_at,
        pipeline_parameters=parameters,
    )
    return loop.decide(
        **common,
        decision="started",
        summary=f"{alarm.alarm_name}: started {settings.pipeline_name} ({execution})",
        reasons=[request.description],
        inputs=inputs,
        topic=settings.warning_topic_arn,
    )


handler = loop.lambda_handler(
    accept=lambda message_id, body: events.alarm_event(message_id, body, settings.retrain_alarms),
    identity=events.alarm_identity,
    act=act,
)
