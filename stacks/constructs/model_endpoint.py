"""A SageMaker real-time endpoint with data capture, deployment guardrails and autoscaling.

Terraform creates the endpoint once, serving a bootstrap model (`image_uri` + `model_data_url`,
given as props). From then on the control loop owns what it serves: the deploy handler creates a
model and an endpoint config per approved model package and calls UpdateEndpoint; the rollback
handler points it back at the last known-good config. Terraform keeps owning the rest (the
blue/green policy, the rollback alarms, autoscaling) and ignores which config is live.

Every config the handlers create must keep this construct's variant name (deployment guardrails
require the same variant name across updates, and autoscaling is registered on it) and its data
capture settings (see `capture_uri`).

- Model: network isolation by default (the container gets no network; SageMaker still fetches
  the model data), optional VPC.
- Endpoint config: production variant; data capture of inputs and outputs at the configured
  sampling percent into s3://<capture bucket>/<prefix>/, KMS-encrypted; the KMS key also encrypts
  the instances' storage volumes (use an instance type without NVMe instance storage, which
  SageMaker encrypts with its own key and refuses a KMS key for); optional shadow variant that
  receives a copy of a share of live traffic and whose answers are discarded.
- Endpoint: blue/green updates with CANARY or LINEAR traffic shifting, a baking wait, and
  automatic rollback when one of the given alarms goes off during the update.
- Autoscaling: target tracking on invocations per instance between min and max instances; with
  `off_hours`, scheduled actions that lower the maximum to the minimum outside working hours.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from stacks import moto_gaps
from stacks.binding import Construct, aws, cdktf
from stacks.policy import Statement, statement
from stacks.project_config import Autoscaling, Deployment

SM = aws.sagemaker_endpoint
CFG = aws.sagemaker_endpoint_configuration
# SageMaker names: alphanumerics and hyphens, 63 at most; "-bootstrap" is appended for the model.
NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,52}$"


@dataclass(frozen=True)
class ModelEndpointProps:
    name: str
    account_id: str
    region: str
    execution_role_arn: str
    # The bootstrap model the endpoint starts with; the deploy handler replaces it.
    image_uri: str
    model_data_url: str
    instance_type: str
    kms_key_arn: str
    capture_bucket: str
    # The alarms SageMaker watches during a blue/green update (EndpointAlarms.deployment_alarm_names).
    rollback_alarm_names: tuple[str, ...]
    capture_prefix: str = "datacapture"
    initial_instance_count: int = 1
    capture_sampling_percent: int = 100
    deployment: Deployment = field(default_factory=Deployment)
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    shadow: bool = False
    shadow_sampling_percent: int = 20
    variant_name: str = "primary"
    network_isolation: bool = True
    subnet_ids: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    gaps: moto_gaps.MotoGaps = moto_gaps.AWS
    # The endpoint's own tags (SageMaker Studio's project tags), besides the provider's defaults.
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(NAME_PATTERN, self.name):
            raise ValueError(f"endpoint {self.name}: must match {NAME_PATTERN}")
        if not self.model_data_url.startswith("s3://"):
            raise ValueError(f"endpoint {self.name}: model_data_url must be an s3:// URI")
        if not re.fullmatch(r"^ml\.[a-z0-9]+\.[a-z0-9]+$", self.instance_type):
            raise ValueError(f"endpoint {self.name}: instance_type must be an ml.* type")
        if not self.rollback_alarm_names:
            raise ValueError(f"endpoint {self.name}: auto-rollback needs at least one alarm")
        if not 1 <= self.capture_sampling_percent <= 100:
            raise ValueError(f"endpoint {self.name}: capture_sampling_percent must be 1..100")
        if not 1 <= self.shadow_sampling_percent <= 100:
            raise ValueError(f"endpoint {self.name}: shadow_sampling_percent must be 1..100")
        scaling = self.autoscaling
        if not scaling.min_instances <= self.initial_instance_count <= scaling.max_instances:
            raise ValueError(f"endpoint {self.name}: initial_instance_count must lie within "
                             "autoscaling min_instances..max_instances")
        if bool(self.subnet_ids) != bool(self.security_group_ids):
            raise ValueError(f"endpoint {self.name}: a VPC needs subnet_ids and security_group_ids")
        if self.capture_prefix.startswith("/") or self.capture_prefix.endswith("/"):
            raise ValueError(f"endpoint {self.name}: capture_prefix without leading/trailing /")

    @property
    def capture_uri(self) -> str:
        # SageMaker appends <endpoint>/<variant>/yyyy/mm/dd/hh/ itself.
        return f"s3://{self.capture_bucket}/{self.capture_prefix}/"

    def sagemaker_arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{kind}/{name.lower()}"


class ModelEndpoint(Construct):
    def __init__(self, scope: Construct, id_: str, props: ModelEndpointProps):
        super().__init__(scope, id_)
        self.props = props
        p, gaps = props, props.gaps
        bootstrap = f"{p.name}-bootstrap"
        mdl = aws.sagemaker_model
        self.model = mdl.SagemakerModel(
            self,
            "model",
            name=bootstrap,
            execution_role_arn=p.execution_role_arn,
            primary_container=mdl.SagemakerModelPrimaryContainer(
                image=p.image_uri, model_data_url=p.model_data_url
            ),
            enable_network_isolation=p.network_isolation,
            vpc_config=mdl.SagemakerModelVpcConfig(
                subnets=list(p.subnet_ids), security_group_ids=list(p.security_group_ids)
            ) if p.subnet_ids else None,
            lifecycle=_lifecycle(gaps, "aws_sagemaker_model"),
        )

        def variant(cls: type, name: str, weight: float) -> object:
            return cls(
                variant_name=name,
                model_name=self.model.name,
                instance_type=p.instance_type,
                initial_instance_count=p.initial_instance_count,
                initial_variant_weight=weight,
            )

        self.config = CFG.SagemakerEndpointConfiguration(
            self,
            "config",
            name=bootstrap,
            kms_key_arn=p.kms_key_arn,
            production_variants=[variant(CFG.SagemakerEndpointConfigurationProductionVariants,
                                         p.variant_name, 1.0)],
            # A shadow variant's weight relative to the production variant's 1.0 is the share of
            # requests copied to it.
            shadow_production_variants=[variant(
                CFG.SagemakerEndpointConfigurationShadowProductionVariants, "shadow",
                p.shadow_sampling_percent / 100,
            )] if p.shadow else None,
            data_capture_config=CFG.SagemakerEndpointConfigurationDataCaptureConfig(
                enable_capture=True,
                initial_sampling_percentage=p.capture_sampling_percent,
                destination_s3_uri=p.capture_uri,
                kms_key_id=p.kms_key_arn,
                capture_options=[
                    CFG.SagemakerEndpointConfigurationDataCaptureConfigCaptureOptions(
                        capture_mode=mode
                    )
                    for mode in ("Input", "Output")
                ],
                capture_content_type_header=(
                    CFG.SagemakerEndpointConfigurationDataCaptureConfigCaptureContentTypeHeader(
                        csv_content_types=["text/csv"], json_content_types=["application/json"]
                    )
                ),
            ),
            lifecycle=_lifecycle(gaps, "aws_sagemaker_endpoint_configuration"),
        )
        self.endpoint = SM.SagemakerEndpoint(
            self,
            "endpoint",
            name=p.name,
            endpoint_config_name=self.config.name,
            deployment_config=SM.SagemakerEndpointDeploymentConfig(
                blue_green_update_policy=self._blue_green(),
                auto_rollback_configuration=SM.SagemakerEndpointDeploymentConfigAutoRollbackConfiguration(
                    alarms=[
                        SM.SagemakerEndpointDeploymentConfigAutoRollbackConfigurationAlarms(
                            alarm_name=name
                        )
                        for name in p.rollback_alarm_names
                    ]
                ),
            ),
            # The deploy and rollback handlers switch the endpoint to other configs at run time;
            # Terraform sets the bootstrap config on creation only, or every apply would roll
            # production back to the bootstrap model. Terraform still owns deployment_config: a
            # change to it is sent (UpdateEndpoint) with the config the endpoint serves now.
            lifecycle=_lifecycle(gaps, "aws_sagemaker_endpoint", "endpoint_config_name"),
            tags=p.tags or None,
        )
        if gaps.autoscaling:
            self._autoscaling()

    def _blue_green(self) -> SM.SagemakerEndpointDeploymentConfigBlueGreenUpdatePolicy:
        d = self.props.deployment
        routing = SM.SagemakerEndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfiguration
        size = SM.SagemakerEndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfigurationCanarySize
        step = SM.SagemakerEndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfigurationLinearStepSize  # noqa: E501
        canary = d.strategy == "canary"
        return SM.SagemakerEndpointDeploymentConfigBlueGreenUpdatePolicy(
            traffic_routing_configuration=routing(
                type="CANARY" if canary else "LINEAR",
                wait_interval_in_seconds=d.wait_seconds,
                canary_size=size(type="CAPACITY_PERCENT", value=d.step_percent) if canary else None,
                linear_step_size=None if canary else step(type="CAPACITY_PERCENT",
                                                          value=d.step_percent),
            ),
            termination_wait_in_seconds=d.termination_wait_seconds,
            maximum_execution_timeout_in_seconds=d.max_execution_timeout_seconds,
        )

    def _autoscaling(self) -> None:
        s = self.props.autoscaling
        self.scaling_target = aws.appautoscaling_target.AppautoscalingTarget(
            self,
            "scaling_target",
            service_namespace="sagemaker",
            resource_id=f"endpoint/{self.endpoint.name}/variant/{self.props.variant_name}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=s.min_instances,
            max_capacity=s.max_instances,
        )
        if s.off_hours is not None:
            self._off_hours(s)
        pol = aws.appautoscaling_policy
        self.scaling_policy = pol.AppautoscalingPolicy(
            self,
            "scaling_policy",
            name=f"{self.props.name}-invocations-per-instance",
            policy_type="TargetTrackingScaling",
            service_namespace=self.scaling_target.service_namespace,
            resource_id=self.scaling_target.resource_id,
            scalable_dimension=self.scaling_target.scalable_dimension,
            target_tracking_scaling_policy_configuration=(
                pol.AppautoscalingPolicyTargetTrackingScalingPolicyConfiguration(
                    target_value=s.target_invocations_per_instance,
                    scale_in_cooldown=s.scale_in_cooldown_seconds,
                    scale_out_cooldown=s.scale_out_cooldown_seconds,
                    predefined_metric_specification=(
                        pol.AppautoscalingPolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecification(
                            predefined_metric_type="SageMakerVariantInvocationsPerInstance"
                        )
                    ),
                )
            ),
        )

    def _off_hours(self, s: Autoscaling) -> None:
        """Scheduled actions on the scalable target: its maximum down to the minimum at
        `scale_down`, back at `scale_up` (target tracking keeps working within the bounds)."""
        sched = aws.appautoscaling_scheduled_action
        hours = s.off_hours
        for id_, schedule, maximum in (("off_hours", hours.scale_down, s.min_instances),
                                       ("working_hours", hours.scale_up, s.max_instances)):
            sched.AppautoscalingScheduledAction(
                self, id_, name=f"{self.props.name}-{id_.replace('_', '-')}",
                service_namespace=self.scaling_target.service_namespace,
                resource_id=self.scaling_target.resource_id,
                scalable_dimension=self.scaling_target.scalable_dimension,
                schedule=schedule, timezone=hours.timezone,
                scalable_target_action=sched.AppautoscalingScheduledActionScalableTargetAction(
                    min_capacity=str(s.min_instances), max_capacity=str(maximum)),
            )

    @property
    def name(self) -> str:
        return self.endpoint.name

    @property
    def arn(self) -> str:
        return self.endpoint.arn

    @property
    def variant_name(self) -> str:
        return self.props.variant_name

    def deployment_config(self) -> dict[str, Any]:
        """The same deployment config in SageMaker's API shape, for the handlers' UpdateEndpoint
        calls: one source for Terraform and the control loop."""
        d = self.props.deployment
        size_key = "CanarySize" if d.strategy == "canary" else "LinearStepSize"
        return {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": d.strategy.upper(),
                    "WaitIntervalInSeconds": d.wait_seconds,
                    size_key: {"Type": "CAPACITY_PERCENT", "Value": d.step_percent},
                },
                "TerminationWaitInSeconds": d.termination_wait_seconds,
                "MaximumExecutionTimeoutInSeconds": d.max_execution_timeout_seconds,
            },
            "AutoRollbackConfiguration": {
                "Alarms": [{"AlarmName": name} for name in self.props.rollback_alarm_names]
            },
        }

    def handler_environment(self) -> dict[str, str]:
        """What the deploy and rollback handlers need to create configs like the bootstrap one
        (the variables of lambdas/shared/control/settings.py this endpoint defines)."""
        p = self.props
        return {
            "ENDPOINT_NAME": p.name,
            "VARIANT_NAME": p.variant_name,
            "EXECUTION_ROLE_ARN": p.execution_role_arn,
            "INSTANCE_TYPE": p.instance_type,
            "INITIAL_INSTANCE_COUNT": str(p.initial_instance_count),
            "CAPTURE_S3_URI": p.capture_uri,
            "CAPTURE_SAMPLING_PERCENT": str(p.capture_sampling_percent),
            "KMS_KEY_ARN": p.kms_key_arn,
            "NETWORK_ISOLATION": str(p.network_isolation).lower(),
            "DEPLOYMENT_CONFIG": json.dumps(self.deployment_config(), separators=(",", ":")),
            # serving.shadow: approved packages go to the shadow variant until promoted (0: off).
            "SHADOW_SAMPLING_PERCENT": str(p.shadow_sampling_percent if p.shadow else 0),
            # A first deployment (CreateEndpoint) has no blue/green bake: it is known-good after
            # as long with all traffic as an update's termination wait.
            "BAKE_SECONDS": str(p.deployment.termination_wait_seconds),
        }

    def deploy_statements(self) -> list[Statement]:
        """What the deploy and rollback handlers need to change what this endpoint serves:
        create models and configs named <endpoint>-*, update the endpoint, pass the execution
        role to SageMaker, let SageMaker use the key. (Add EndpointAlarms.describe_statement:
        SageMaker checks the caller may read the rollback alarms.)"""
        p = self.props
        own = f"{p.name}-*"
        return [
            statement(
                "ManageEndpointModelsAndConfigs",
                # Models and configs are kept (a rollback returns to one): nothing deletes them.
                ["sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:CreateEndpointConfig",
                 "sagemaker:DescribeEndpointConfig", "sagemaker:AddTags"],
                [p.sagemaker_arn("model", own), p.sagemaker_arn("endpoint-config", own)],
            ),
            statement(
                "UpdateEndpoint",
                ["sagemaker:UpdateEndpoint", "sagemaker:DescribeEndpoint"],
                [p.sagemaker_arn("endpoint", p.name)],
            ),
            statement(
                "PassExecutionRole",
                ["iam:PassRole"],
                [p.execution_role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            # An endpoint config with a KMS key makes SageMaker take a grant on it in the
            # caller's name (for the instances' volumes); only grants for AWS resources.
            statement(
                "GrantKeyToEndpointVolumes",
                ["kms:CreateGrant"],
                [p.kms_key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            ),
            statement("DescribeKey", ["kms:DescribeKey"], [p.kms_key_arn]),
        ]

    def invoke_statement(self, sid: str) -> Statement:
        return statement(sid, ["sagemaker:InvokeEndpoint"],
                         [self.props.sagemaker_arn("endpoint", self.props.name)])


def _lifecycle(
    gaps: moto_gaps.MotoGaps, resource_type: str, *always: str
) -> cdktf.TerraformResourceLifecycle | None:
    ignored = gaps.ignore_changes(resource_type, *always)
    return cdktf.TerraformResourceLifecycle(ignore_changes=ignored) if ignored else None
