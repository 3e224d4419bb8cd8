"""EventBridge rules -> one SQS queue (with a DLQ) -> a Lambda function: how every control-loop
event travels, so nothing is lost and a poison message ends in the DLQ after a few tries.

- Each rule is an event pattern or a schedule; every rule targets the queue (and, should
  EventBridge itself fail to deliver, the DLQ).
- The queue is KMS-encrypted; its policy lets only these rules send (aws:SourceArn).
- Redrive to the DLQ after `max_receive_count` receives; the DLQ keeps messages 14 days and a
  warning alarm fires as soon as it holds one.
- The visibility timeout is 6x the function's timeout (AWS's guidance for Lambda consumers), so a
  message is not redelivered while a slow batch is still being processed.
- The event source mapping reports partial batch failures: one bad message does not send its
  whole batch back. The function's role gets exactly what consuming this queue needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stacks import moto_gaps
from stacks.binding import Construct, aws, cdktf
from stacks.constructs.lambda_function import LambdaFunction
from stacks.policy import Statement, document, statement

DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # SQS's maximum: two weeks to look at a poison message
VISIBILITY_PER_FUNCTION_TIMEOUT = 6


@dataclass(frozen=True)
class EventRule:
    """An EventBridge rule on the default bus: exactly one of event_pattern and schedule."""

    name: str
    description: str
    event_pattern: Mapping[str, Any] | None = None
    schedule: str | None = None  # rate(...) or cron(...)
    enabled: bool = True  # a disabled rule is kept (and can be switched on) but matches nothing

    def __post_init__(self) -> None:
        if (self.event_pattern is None) == (self.schedule is None):
            raise ValueError(f"rule {self.name}: give an event_pattern or a schedule, not both")
        if self.schedule is not None and not re.fullmatch(r"(rate|cron)\(.+\)", self.schedule):
            raise ValueError(f"rule {self.name}: schedule must be rate(...) or cron(...)")
        if not re.fullmatch(r"[\w.-]{1,64}", self.name):
            raise ValueError(f"rule {self.name}: names are 1-64 of [A-Za-z0-9_.-]")


@dataclass(frozen=True)
class EventQueueProps:
    name: str  # the queue; the DLQ is <name>-dlq
    rules: tuple[EventRule, ...]
    kms_key_arn: str
    alarm_topic_arn: str  # where "the DLQ holds a message" goes (the warning topic)
    account_id: str
    region: str
    max_receive_count: int = 5
    batch_size: int = 10
    max_batching_window_seconds: int = 0
    # Upper bound of concurrent invocations this queue drives (2..1000); None: Lambda's default.
    max_concurrency: int | None = None
    message_retention_seconds: int = 4 * 24 * 3600
    gaps: moto_gaps.MotoGaps = moto_gaps.AWS

    def __post_init__(self) -> None:
        if not self.rules:
            raise ValueError(f"queue {self.name}: a queue nothing sends to is a mistake")
        if len({r.name for r in self.rules}) != len(self.rules):
            raise ValueError(f"queue {self.name}: rule names repeat")
        if not 1 <= self.max_receive_count <= 1000:
            raise ValueError(f"queue {self.name}: max_receive_count must be 1..1000")
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError(f"queue {self.name}: batch_size must be 1..10000")
        if self.batch_size > 10 and self.max_batching_window_seconds < 1:
            raise ValueError(f"queue {self.name}: batches over 10 need a batching window")
        if self.max_concurrency is not None and not 2 <= self.max_concurrency <= 1000:
            raise ValueError(f"queue {self.name}: max_concurrency must be 2..1000")

    def queue_arn(self, name: str) -> str:
        # Known before the queue exists, so the policy is part of the queue itself: a separate
        # aws_sqs_queue_policy would add the provider's ~25 s attribute-propagation wait.
        return f"arn:aws:sqs:{self.region}:{self.account_id}:{name}"


class EventQueue(Construct):
    def __init__(
        self, scope: Construct, id_: str, props: EventQueueProps, function: LambdaFunction
    ):
        super().__init__(scope, id_)
        self.props = props
        self.function = function
        ev = aws.cloudwatch_event_rule
        self.rules = [
            ev.CloudwatchEventRule(
                self,
                f"rule_{i}",
                name=rule.name,
                description=rule.description,
                event_pattern=_compact(rule.event_pattern) if rule.event_pattern else None,
                schedule_expression=rule.schedule,
                state=None if rule.enabled else "DISABLED",
            )
            for i, rule in enumerate(props.rules)
        ]
        rule_arns = [r.arn for r in self.rules]
        dlq_name = f"{props.name}-dlq"
        self.dlq = aws.sqs_queue.SqsQueue(
            self,
            "dlq",
            name=dlq_name,
            kms_master_key_id=props.kms_key_arn,
            kms_data_key_reuse_period_seconds=300,
            message_retention_seconds=DLQ_RETENTION_SECONDS,
            # EventBridge's own dead letters (events it could not deliver to the queue) land here.
            policy=self._send_policy(props.queue_arn(dlq_name), rule_arns),
            lifecycle=_ignore(props.gaps, "aws_sqs_queue"),
        )
        visibility = VISIBILITY_PER_FUNCTION_TIMEOUT * function.timeout_seconds
        self.queue = aws.sqs_queue.SqsQueue(
            self,
            "queue",
            name=props.name,
            kms_master_key_id=props.kms_key_arn,
            kms_data_key_reuse_period_seconds=300,
            visibility_timeout_seconds=visibility,
            message_retention_seconds=props.message_retention_seconds,
            redrive_policy=_compact(
                {"deadLetterTargetArn": self.dlq.arn, "maxReceiveCount": props.max_receive_count}
            ),
            policy=self._send_policy(props.queue_arn(props.name), rule_arns),
            lifecycle=_ignore(props.gaps, "aws_sqs_queue"),
        )
        tg = aws.cloudwatch_event_target
        for i, rule in enumerate(self.rules):
            tg.CloudwatchEventTarget(
                self,
                f"target_{i}",
                rule=rule.name,
                target_id="queue",
                arn=self.queue.arn,
                dead_letter_config=tg.CloudwatchEventTargetDeadLetterConfig(arn=self.dlq.arn),
            )

        consume = function.grant(f"consume-{props.name}", self.consume_statements())
        esm = aws.lambda_event_source_mapping
        self.mapping = esm.LambdaEventSourceMapping(
            self,
            "mapping",
            event_source_arn=self.queue.arn,
            function_name=function.arn,
            batch_size=props.batch_size,
            maximum_batching_window_in_seconds=props.max_batching_window_seconds,
            function_response_types=["ReportBatchItemFailures"],
            scaling_config=esm.LambdaEventSourceMappingScalingConfig(
                maximum_concurrency=props.max_concurrency
            ) if props.max_concurrency else None,
            # Lambda checks the role can read the queue when the mapping is created.
            depends_on=[consume],
        )
        self.dlq_alarm = aws.cloudwatch_metric_alarm.CloudwatchMetricAlarm(
            self,
            "dlq_alarm",
            alarm_name=f"{dlq_name}-not-empty",
            alarm_description=f"A message to {function.props.name} failed {props.max_receive_count} "
            f"times (or could not be delivered) and waits in {dlq_name}",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": dlq_name},
            statistic="Maximum",
            period=300,
            evaluation_periods=1,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[props.alarm_topic_arn],
            ok_actions=[props.alarm_topic_arn],
        )

    @property
    def arn(self) -> str:
        return self.queue.arn

    @property
    def url(self) -> str:
        return self.queue.url

    @property
    def dlq_arn(self) -> str:
        return self.dlq.arn

    @property
    def dlq_url(self) -> str:
        return self.dlq.url

    @property
    def rule_arns(self) -> list[str]:
        return [r.arn for r in self.rules]

    def consume_statements(self) -> list[Statement]:
        """What a Lambda event source mapping needs to consume this queue: receive, delete and
        read attributes, and decrypt the messages."""
        return [
            statement(
                "ConsumeQueue",
                ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                [self.queue.arn],
            ),
            statement("DecryptMessages", ["kms:Decrypt"], [self.props.kms_key_arn]),
        ]

    def send_statement(self, sid: str) -> Statement:
        """For a local delivery worker or a replay tool that puts messages on the queue."""
        return statement(sid, ["sqs:SendMessage"], [self.queue.arn])

    def _send_policy(self, queue_arn: str, rule_arns: list[str]) -> str:
        return document(
            [
                statement(
                    "AllowTheseRulesOnly",
                    ["sqs:SendMessage"],
                    [queue_arn],
                    principals={"Service": "events.amazonaws.com"},
                    conditions={"ArnEquals": {"aws:SourceArn": rule_arns}},
                ),
                statement(
                    "DenyInsecureTransport",
                    ["sqs:*"],
                    [queue_arn],
                    effect="Deny",
                    principals={"AWS": "*"},
                    conditions={"Bool": {"aws:SecureTransport": "false"}},
                ),
            ]
        )


def _compact(value: Mapping[str, Any]) -> str:
    # What jsonencode produces; AWS returns these strings compact, so plans stay clean.
    return json.dumps(value, separators=(",", ":"))


def _ignore(gaps: moto_gaps.MotoGaps, resource_type: str) -> cdktf.TerraformResourceLifecycle | None:
    ignored = gaps.ignore_changes(resource_type)
    return cdktf.TerraformResourceLifecycle(ignore_changes=ignored) if ignored else None
