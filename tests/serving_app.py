"""A small test app that uses every serving construct, for an AWS environment (dev) and the
local one: the unit tests read its JSON, the integration test applies the local stack to moto.

Imported only from the session fixture `serving_synth` (it imports the cdktf binding).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stacks import moto_gaps
from stacks.binding import Construct, cdktf
from stacks.config import Eks, Environment
from stacks.constructs.alert_topic import AlertTopic, AlertTopicProps
from stacks.constructs.eks_serving import EksServing, EksServingProps
from stacks.constructs.encryption_key import EncryptionKey, EncryptionKeyProps
from stacks.constructs.endpoint_alarms import EndpointAlarms, EndpointAlarmsProps
from stacks.constructs.event_queue import EventQueue, EventQueueProps, EventRule
from stacks.constructs.lambda_function import LambdaFunction, LambdaFunctionProps
from stacks.constructs.model_endpoint import ModelEndpoint, ModelEndpointProps
from stacks.constructs.permission_boundary import PermissionBoundary, PermissionBoundaryProps
from stacks.constructs.scoped_role import ScopedRole, ScopedRoleProps
from stacks.constructs.service_account_role import ServiceAccountRole, ServiceAccountRoleProps
from stacks.naming import Naming
from stacks.platform_stack import environment_tags
from stacks.policy import statement
from stacks.project_config import Alarms, Autoscaling, Deployment, Drift
from stacks.provider import configure_backend, configure_provider

FIXTURE_LAMBDAS = Path(__file__).resolve().parent / "fixtures" / "lambdas"
MODEL_PACKAGE_STATE_CHANGE = {
    "source": ["aws.sagemaker"],
    "detail-type": ["SageMaker Model Package State Change"],
}


def stack_name(env_name: str) -> str:
    return f"serving-test-{env_name}"


@dataclass(frozen=True)
class ServingSynth:
    outdir: Path
    state_dir: Path
    stacks: dict[str, Path]  # env name -> stack folder


class ServingTestStack(cdktf.TerraformStack):
    def __init__(self, scope: Construct, env: Environment, stack_dir: Path, state_dir: Path):
        name = stack_name(env.name)
        super().__init__(scope, name)
        n = Naming.of(env)
        gaps = moto_gaps.for_environment(env.is_local)
        configure_provider(self, env, environment_tags(env, name))
        configure_backend(self, env if env.is_local else None, stack_dir, state_dir)

        key = EncryptionKey(self, "key", EncryptionKeyProps(
            alias=n.name("serving-test"), description="serving construct tests",
            account_id=env.account_id, region=env.region, deletion_window_days=7))
        topics = {
            severity: AlertTopic(self, f"{severity}_topic", AlertTopicProps(
                name=n.name(f"test-alerts-{severity}"), kms_key_arn=key.arn,
                account_id=env.account_id))
            for severity in ("critical", "warning")
        }
        boundary = PermissionBoundary(self, "boundary", PermissionBoundaryProps.of(
            n, n.name("test-boundary"), n.arn("cloudtrail", f"trail/{n.name('audit')}"), key_arn=key.arn,
            audit_bucket_arn=f"arn:aws:s3:::{n.bucket('audit')}"))
        capture_bucket = n.bucket("capture")
        execution_role = ScopedRole(self, "execution_role", ScopedRoleProps(
            name=n.name("test-endpoint-execution"), description="test endpoints",
            path=n.role_path, boundary_arn=boundary.arn, assumed_by_service="sagemaker.amazonaws.com",
            statements=(
                statement("WriteCapture", ["s3:PutObject"], [f"arn:aws:s3:::{capture_bucket}/*"]),
                key.use_statement("UsePlatformKey"),
            )))
        execution_role.role.node.add_dependency(boundary.policy)

        # Two endpoints: a canary one with a shadow variant, and a linear one.
        self.endpoints: dict[str, ModelEndpoint] = {}
        self.alarms: dict[str, EndpointAlarms] = {}
        for strategy, shadow, step in (("canary", True, 10), ("linear", False, 20)):
            endpoint_name = n.name(f"test-{strategy}")
            alarms = EndpointAlarms(self, f"{strategy}_alarms", EndpointAlarmsProps(
                endpoint_name=endpoint_name, region=env.region,
                critical_topic_arn=topics["critical"].arn, warning_topic_arn=topics["warning"].arn,
                instance_type=env.instance_types.inference,
                alarms=Alarms(), drift=Drift(), baseline_latency_ms=40.0))
            self.alarms[strategy] = alarms
            self.endpoints[strategy] = ModelEndpoint(self, f"{strategy}_endpoint", ModelEndpointProps(
                name=endpoint_name, account_id=env.account_id, region=env.region,
                execution_role_arn=execution_role.arn,
                image_uri=f"{env.account_id}.dkr.ecr.{env.region}.amazonaws.com/"
                f"{n.name('inference')}:bootstrap",
                model_data_url=f"s3://{n.bucket('artifacts')}/bootstrap/model.tar.gz",
                instance_type=env.instance_types.inference, kms_key_arn=key.arn,
                capture_bucket=capture_bucket, capture_prefix=f"datacapture/{strategy}",
                rollback_alarm_names=tuple(alarms.deployment_alarm_names),
                capture_sampling_percent=50 if shadow else 100,
                deployment=Deployment(strategy=strategy, step_percent=step, wait_seconds=120),
                autoscaling=Autoscaling(min_instances=1, max_instances=3),
                shadow=shadow, shadow_sampling_percent=25, gaps=gaps))

        def function(id_: str, purpose: str, timeout: int, environment: dict) -> LambdaFunction:
            fn = LambdaFunction(self, id_, LambdaFunctionProps(
                name=n.name(f"test-{purpose}"), handler="echo", description=f"test {purpose}",
                stack_dir=stack_dir, kms_key_arn=key.arn, role_path=n.role_path,
                boundary_arn=boundary.arn, timeout_seconds=timeout,
                environment={"CRITICAL_TOPIC_ARN": topics["critical"].arn, **environment},
                statements=(topics["critical"].publish_statement("NotifyCritical"),),
                log_retention_days=env.retention.log_days, lambdas_dir=FIXTURE_LAMBDAS))
            fn.role.role.node.add_dependency(boundary.policy)
            return fn

        # The rollback function acts on the canary endpoint, as the control loop's handlers will.
        operated = {**self.endpoints["canary"].handler_environment(),
                    **self.alarms["canary"].handler_environment()}
        self.functions = {"rollback": function("rollback_fn", "rollback", 60, operated),
                          "drift": function("drift_fn", "drift", 120, {})}
        rollback = self.functions["rollback"]
        for strategy, endpoint in self.endpoints.items():
            rollback.grant(f"operate-{strategy}", [
                *endpoint.deploy_statements(),
                self.alarms[strategy].describe_statement("ReadAlarms"),
            ])
        common = {"kms_key_arn": key.arn, "alarm_topic_arn": topics["warning"].arn,
                  "account_id": env.account_id, "region": env.region, "gaps": gaps}
        self.queues = {
            "rollback": EventQueue(self, "rollback_queue", EventQueueProps(
                name=n.name("test-rollback"), max_receive_count=3, batch_size=1,
                rules=tuple(
                    EventRule(name=n.name(f"test-{strategy}-critical-alarm"),
                              description=f"a critical alarm of the {strategy} endpoint fired",
                              event_pattern=alarms.rollback_event_pattern())
                    for strategy, alarms in self.alarms.items()
                ), **common), rollback),
            "drift": EventQueue(self, "drift_queue", EventQueueProps(
                name=n.name("test-drift"), max_concurrency=2,
                rules=(
                    EventRule(name=n.name("test-drift-schedule"), description="hourly drift run",
                              schedule="rate(1 hour)"),
                    EventRule(name=n.name("test-model-package-change"),
                              description="a model package changed state",
                              event_pattern=MODEL_PACKAGE_STATE_CHANGE),
                ), **common), self.functions["drift"]),
        }

        # EKS: the dev file enables it; for the local stack the test enables it explicitly.
        eks = env.eks if env.eks.enabled else Eks(
            enabled=True, availability_zones=[f"{env.region}a", f"{env.region}b"])
        self.eks = EksServing(self, "eks", EksServingProps(
            name=n.name("test-serving"), settings=eks, region=env.region, account_id=env.account_id,
            kms_key_arn=key.arn, role_path=n.role_path, boundary_arn=boundary.arn,
            log_retention_days=env.retention.log_days, gaps=gaps))
        self.serving_role = ServiceAccountRole(self, "serving_role", ServiceAccountRoleProps(
            name=n.name("test-model-server"), role_path=n.role_path, boundary_arn=boundary.arn,
            oidc_provider_arn=self.eks.oidc_provider_arn, oidc_issuer=self.eks.oidc_issuer,
            namespace=eks.serving_namespace, service_account=eks.serving_service_account,
            bucket_arn=f"arn:aws:s3:::{n.bucket('artifacts')}", object_patterns=("models/*",),
            kms_key_arn=key.arn, region=env.region))
        self.serving_role.role.node.add_dependency(boundary.policy)

        outputs = {
            "canary_endpoint_name": self.endpoints["canary"].name,
            "linear_endpoint_name": self.endpoints["linear"].name,
            "rollback_queue_url": self.queues["rollback"].url,
            "rollback_dlq_url": self.queues["rollback"].dlq_url,
            "drift_queue_url": self.queues["drift"].url,
            "rollback_function_name": rollback.name,
            "eks_cluster_name": self.eks.cluster_name,
            "serving_role_arn": self.serving_role.arn,
        }
        for output, value in outputs.items():
            cdktf.TerraformOutput(self, output, value=value)


def synth(envs: dict[str, Environment], base: Path) -> ServingSynth:
    outdir, state_dir = base / "cdktf.out", base / "state"
    outdir.mkdir(parents=True, exist_ok=True)
    app = cdktf.App(outdir=str(outdir), skip_validation=False)
    stacks = {}
    for env in envs.values():
        stack_dir = outdir / "stacks" / stack_name(env.name)
        ServingTestStack(app, env, stack_dir, state_dir)
        stacks[env.name] = stack_dir
    app.synth()
    return ServingSynth(outdir, state_dir, stacks)
