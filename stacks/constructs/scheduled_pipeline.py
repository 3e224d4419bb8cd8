"""A SageMaker pipeline that EventBridge starts on a schedule.

    schedule rule --(role: sagemaker:StartPipelineExecution on this pipeline)--> pipeline execution

EventBridge starts a pipeline, not a processing job (a pipeline target is one of its targets),
so a scheduled job is a pipeline of one step. The role is EventBridge's, trusted only for this
rule (aws:SourceArn), and may start only this pipeline. A start EventBridge cannot make is
retried (up to 5 times, within an hour), then dropped and counted in the rule's
FailedInvocations metric: the next firing starts the next window, and a window that was missed
can be re-checked with the pipeline's parameters. (No dead-letter queue or alarm on failed
starts or failed executions yet: a check that keeps failing publishes nothing, which its alarm
reads as missing data, not as a breach.)
"""

from __future__ import annotations

from dataclasses import dataclass

from stacks.binding import Construct, aws
from stacks.constructs.scoped_role import ScopedRole, ScopedRoleProps
from stacks.policy import statement

RETRY_SECONDS = 3600


@dataclass(frozen=True)
class ScheduledPipelineProps:
    name: str  # the rule's and the role's
    description: str
    schedule: str  # rate(...) or cron(...)
    pipeline_name: str
    pipeline_arn: str
    rule_arn: str  # arn:aws:events:<region>:<account>:rule/<name>: the role's trust condition
    role_path: str
    boundary_arn: str
    parameters: tuple[tuple[str, str], ...] = ()  # static PipelineParameters of each start


class ScheduledPipeline(Construct):
    def __init__(self, scope: Construct, id_: str, props: ScheduledPipelineProps):
        super().__init__(scope, id_)
        self.role = ScopedRole(self, "role", ScopedRoleProps(
            name=f"{props.name}-schedule",
            description=f"EventBridge starts {props.pipeline_name} on its schedule",
            path=props.role_path,
            boundary_arn=props.boundary_arn,
            statements=(statement("StartScheduledPipeline", ["sagemaker:StartPipelineExecution"],
                                  [props.pipeline_arn]),),
            assumed_by_service="events.amazonaws.com",
            service_conditions={"ArnEquals": {"aws:SourceArn": props.rule_arn}},
        ))
        self.rule = aws.cloudwatch_event_rule.CloudwatchEventRule(
            self, "rule", name=props.name, description=props.description,
            schedule_expression=props.schedule,
        )
        tg = aws.cloudwatch_event_target
        self.target = tg.CloudwatchEventTarget(
            self, "target", rule=self.rule.name, target_id="pipeline", arn=props.pipeline_arn,
            role_arn=self.role.arn,
            sagemaker_pipeline_target=tg.CloudwatchEventTargetSagemakerPipelineTarget(
                pipeline_parameter_list=[
                    tg.CloudwatchEventTargetSagemakerPipelineTargetPipelineParameterListStruct(
                        name=name, value=value) for name, value in props.parameters]
            ) if props.parameters else None,
            retry_policy=tg.CloudwatchEventTargetRetryPolicy(
                maximum_event_age_in_seconds=RETRY_SECONDS, maximum_retry_attempts=5),
        )
