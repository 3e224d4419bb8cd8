"""A project stack: one ML project in one environment, on top of that environment's platform stack.

model package group -> execution role scoped to the project's prefixes -> step bundle and dataset
in S3 -> the SageMaker training pipeline (definition from the sagemaker SDK) -> the real-time
endpoint (data capture, autoscaling, blue/green canary or linear updates that roll back on the
critical alarms) -> its CloudWatch alarms (critical and warning topics) and dashboard -> the
control loop (stacks/control_loop.py: gate, deploy, rollback and retrain handlers fed by
EventBridge rules through SQS queues with DLQs, and their DynamoDB tables).

The platform's resources are found by name (naming.py) and, for the key, by its alias, so a
project stack deploys on its own once the platform stack exists.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from pipelines.bundle import REPO_ROOT, Bundle, build_bundle, git_commit
from stacks import moto_gaps
from stacks.binding import Construct, aws, cdktf
from stacks.config import Environment
from stacks.constructs.endpoint_alarms import EndpointAlarms, EndpointAlarmsProps
from stacks.constructs.model_endpoint import ModelEndpoint, ModelEndpointProps
from stacks.constructs.scheduled_pipeline import ScheduledPipeline, ScheduledPipelineProps
from stacks.constructs.scoped_role import ScopedRole, ScopedRoleProps
from stacks.control_loop import DRIFT_NAMESPACE, ControlLoop, ControlLoopProps, drift_environment
from stacks.images import image_tag
from stacks.naming import Naming, ProjectNames, project_stack_name
from stacks.platform_stack import StackPaths, environment_tags
from stacks.policy import document
from stacks.project_config import SAGEMAKER_METRIC_PERIOD, ProjectConfig
from stacks.project_permissions import ProjectRefs, execution_statements
from stacks.promotion_grants import NONE, Promotions
from stacks.provider import configure_backend, configure_provider

SAMPLE_DATASET_KEY = "breast_cancer.csv"


def sample_dataset_csv() -> bytes:
    from pipelines.dataset import breast_cancer_frame

    return breast_cancer_frame().to_csv(index=False).encode()


class ProjectStack(cdktf.TerraformStack):
    def __init__(self, scope: Construct, env: Environment, project: ProjectConfig, paths: StackPaths,
                 promotions: Promotions = NONE, promotion_source: Environment | None = None):
        """`promotions`: who promotes from whom (the grants on this project's group);
        `promotion_source`: the environment `env.promotion.source` names (production only)."""
        name = project_stack_name(project.name, env.name)
        super().__init__(scope, name)
        self.env, self.project = env, project
        tags = {**environment_tags(env, name), "project": project.name, "team": project.team}
        configure_provider(self, env, tags)
        configure_backend(self, env, paths.stack_dir, paths.state_dir)
        n = self.names = ProjectNames(Naming.of(env), project.name)

        key = aws.data_aws_kms_alias.DataAwsKmsAlias(self, "platform_key", name=n.key_alias)
        self.key_arn = key.target_key_arn

        self.model_package_group = aws.sagemaker_model_package_group.SagemakerModelPackageGroup(
            self,
            "model_package_group",
            model_package_group_name=n.model_package_group,
            model_package_group_description=f"{project.name} models ({project.team}) in {env.name}",
            tags=n.sagemaker_project_tags,
        )
        self._promotion_policy(promotions)
        self._execution_role()
        bundle = build_bundle(project.model_dump(mode="json"), REPO_ROOT / project.dataset.schema_file)
        self.bundle_prefix = bundle.prefix(project.name)
        uploads = self._upload_bundle(bundle)
        self.default_data_uri = self._dataset()
        self._pipeline(uploads)
        self._serving()
        self._eks_serving()
        self.control_loop = ControlLoop(self, "control_loop", ControlLoopProps(
            env=env, project=project, names=n, key_arn=self.key_arn, boundary_arn=n.boundary_arn,
            stack_dir=paths.stack_dir, endpoint=self.endpoint, alarms=self.alarms,
            pipeline_arn=self.pipeline.arn, promotion_source=promotion_source,
        ))
        self._outputs()

    def _promotion_policy(self, promotions: Promotions) -> None:
        """The environments promoted from this one read the group's packages (their promoter
        only: stacks/promotion_grants.py)."""
        self.group_policy = None
        statements = promotions.group_statements(self.env.name, self.project.name)
        if not (statements and moto_gaps.for_environment(self.env.is_local).model_package_group_policy):
            return
        self.group_policy = aws.sagemaker_model_package_group_policy.SagemakerModelPackageGroupPolicy(
            self, "model_package_group_policy",
            model_package_group_name=self.model_package_group.model_package_group_name,
            resource_policy=document(statements),
        )

    def _execution_role(self) -> None:
        n, env = self.names, self.env
        refs = ProjectRefs(
            naming=n.naming,
            project=self.project.name,
            key_arn=self.key_arn,
            datasets_bucket=n.datasets_bucket,
            artifacts_bucket=n.artifacts_bucket,
            capture_bucket=n.capture_bucket,
            repository_arns=(n.repository_arn("training"), n.repository_arn("inference")),
            model_package_group=n.model_package_group,
            role_arn=n.role_arn,
            mlflow_tracking_server_arn=None if env.is_local else n.mlflow_tracking_server_arn,
            endpoint_name=n.endpoint,
            drift_namespace=DRIFT_NAMESPACE if self.project.drift.batch.enabled else None,
        )
        self.execution_role = ScopedRole(
            self,
            "execution_role",
            ScopedRoleProps(
                name=n.execution_role,
                description=f"Run-time role of the {self.project.name} pipeline steps and endpoint",
                path=n.naming.role_path,
                boundary_arn=n.boundary_arn,
                statements=tuple(execution_statements(refs)),
                assumed_by_service="sagemaker.amazonaws.com",
            ),
        )

    def _upload_bundle(self, bundle: Bundle) -> list[cdktf.TerraformResource]:
        uploads = []
        for key, content in sorted(bundle.files.items()):
            uploads.append(aws.s3_object.S3Object(
                self,
                f"bundle_{key.replace('/', '_').replace('.', '_')}",
                bucket=self.names.artifacts_bucket,
                key=f"{self.bundle_prefix}/{key}",
                # Binary content travels base64-encoded; the scripts and JSON stay readable.
                **({"content": content.decode()} if _is_text(key)
                   else {"content_base64": base64.b64encode(content).decode()}),
                server_side_encryption="aws:kms",
                kms_key_id=self.key_arn,
            ))
        return uploads

    def _dataset(self) -> str:
        source = self.project.dataset.source
        if source.startswith("s3://"):
            return source
        # The sample dataset ships with scikit-learn; the stack puts it where a real team's data
        # would be, in the versioned datasets bucket, so runs record a real object version.
        key = f"{self.project.name}/{SAMPLE_DATASET_KEY}"
        aws.s3_object.S3Object(
            self,
            "sample_dataset",
            bucket=self.names.datasets_bucket,
            key=key,
            content=sample_dataset_csv().decode(),
            content_type="text/csv",
            server_side_encryption="aws:kms",
            kms_key_id=self.key_arn,
        )
        return f"s3://{self.names.datasets_bucket}/{key}"

    def _pipeline(self, uploads: list) -> None:
        from pipelines.definition import (
            PipelineTarget,
            definition,
            drift_batch_definition,
            explainability_definition,
        )

        n, env, project = self.names, self.env, self.project
        self.image_uri = f"{n.repository_url('training')}:{image_tag()}"
        self.inference_image_uri = f"{n.repository_url('inference')}:{image_tag()}"
        target = PipelineTarget(
            pipeline_name=n.pipeline,
            region=env.region,
            role_arn=n.role_arn,
            artifacts_bucket=n.artifacts_bucket,
            bundle_prefix=self.bundle_prefix,
            default_data_uri=self.default_data_uri,
            model_package_group=n.model_package_group,
            image_uri=self.image_uri,
            inference_image_uri=self.inference_image_uri,
            # The key's ARN (the alias's target, resolved by Terraform inside the definition):
            # VolumeKmsKeyId refuses an alias.
            kms_key_arn=self.key_arn,
            processing_instance_type=env.instance_types.processing,
            training_instance_type=project.training.instance_type or env.instance_types.training,
            git_commit=git_commit(),
            mlflow_tracking_uri=None if env.is_local else n.mlflow_tracking_server_arn,
            capture_uri=f"{n.capture_uri}{n.endpoint}/",
            ground_truth_uri=n.ground_truth_uri,
            datasets_uri=f"s3://{n.datasets_bucket}/{project.name}/",
        )

        def pipeline(id_: str, name: str, description: str, body: str):  # -> SagemakerPipeline
            # Both run the bundle's scripts as the project's execution role.
            return aws.sagemaker_pipeline.SagemakerPipeline(
                self, id_, pipeline_name=name, pipeline_display_name=name, pipeline_description=description,
                role_arn=self.execution_role.arn, pipeline_definition=body, depends_on=uploads,
                tags=n.sagemaker_project_tags)

        self.pipeline = pipeline("training_pipeline", n.pipeline,
                                 f"Train, evaluate, gate and register {project.name} models",
                                 definition(project, target))
        self.explainability_pipeline = pipeline(
            "explainability_pipeline", n.explainability_pipeline,
            f"Feature attributions of the served {project.name} model on its traffic",
            explainability_definition(project, target, n.explainability_pipeline, n.endpoint))
        def scheduled(construct_id: str, rule: str, what: str, schedule: str, name: str, started) -> None:
            """An EventBridge rule `rule` (its own role) starting the pipeline `name` (`started`)."""
            ScheduledPipeline(self, construct_id, ScheduledPipelineProps(
                name=rule, description=f"scheduled {what} ({n.base})", schedule=schedule,
                pipeline_name=name, pipeline_arn=started.arn,
                rule_arn=n.naming.arn("events", f"rule/{rule}"),
                role_path=n.naming.role_path, boundary_arn=n.boundary_arn,
            ))

        scheduled("explainability_schedule", n.explainability_pipeline, "explainability check",
                  project.explainability.schedule, n.explainability_pipeline, self.explainability_pipeline)
        if project.drift.batch.enabled:
            self.drift_pipeline = pipeline(
                "drift_pipeline", n.drift_pipeline,
                f"Sharded drift check of the {project.name} endpoint's captured data",
                drift_batch_definition(project, target, n.drift_pipeline,
                                       drift_environment(project, n, self.key_arn)))
            # The drift function's rule is <base>-drift already (kept, disabled): -batch for this one.
            scheduled("drift_schedule", f"{n.drift_pipeline}-batch", "drift batch check",
                      project.drift.schedule, n.drift_pipeline, self.drift_pipeline)

    def _serving(self) -> None:
        from pipelines.bootstrap_model import bootstrap_artifact

        n, env, project = self.names, self.env, self.project
        serving = project.serving
        instance_type = serving.instance_type or env.instance_types.inference
        if project.alarms.period_seconds < SAGEMAKER_METRIC_PERIOD and not env.is_local:
            # load_project_all refuses it in the file; an app built in code gets the same answer.
            raise ValueError(f"{project.name} in {env.name}: alarms.period_seconds "
                             f"{project.alarms.period_seconds} is below the {SAGEMAKER_METRIC_PERIOD} s "
                             "SageMaker publishes endpoint metrics at")
        self.alarms = EndpointAlarms(self, "alarms", EndpointAlarmsProps(
            endpoint_name=n.endpoint, region=env.region,
            critical_topic_arn=n.topic_arn("critical"), warning_topic_arn=n.topic_arn("warning"),
            instance_type=instance_type, alarms=project.alarms, drift=project.drift,
            explainability=project.explainability,
        ))
        artifact = bootstrap_artifact(REPO_ROOT / project.dataset.schema_file, project.dataset.target,
                                      project.task)
        key = f"{project.name}/bootstrap/{hashlib.sha256(artifact).hexdigest()[:16]}/model.tar.gz"
        bootstrap = aws.s3_object.S3Object(
            self, "bootstrap_model", bucket=n.artifacts_bucket, key=key,
            content_base64=base64.b64encode(artifact).decode(),
            server_side_encryption="aws:kms", kms_key_id=self.key_arn,
        )
        self.endpoint = ModelEndpoint(self, "endpoint", ModelEndpointProps(
            name=n.endpoint, account_id=env.account_id, region=env.region,
            execution_role_arn=self.execution_role.arn,
            image_uri=self.inference_image_uri,
            model_data_url=f"s3://{n.artifacts_bucket}/{key}",
            instance_type=instance_type, kms_key_arn=self.key_arn,
            capture_bucket=n.capture_bucket, capture_prefix=project.name,
            rollback_alarm_names=tuple(self.alarms.deployment_alarm_names),
            initial_instance_count=serving.initial_instance_count,
            capture_sampling_percent=serving.capture_sampling_percent,
            deployment=serving.deployment, autoscaling=serving.autoscaling,
            shadow=serving.shadow, shadow_sampling_percent=serving.shadow_sampling_percent,
            gaps=moto_gaps.for_environment(env.is_local),
            tags=n.sagemaker_project_tags,
        ))
        # The endpoint's first model must be in S3, and its role able to read it, before SageMaker
        # starts it.
        for dependency in (bootstrap, self.execution_role.role, self.execution_role.policy):
            self.endpoint.node.add_dependency(dependency)

    def _eks_serving(self) -> None:
        """The project's IRSA role on the environment's EKS cluster (`serving.eks`); `mlops deploy`
        applies the Kubernetes side (stacks/k8s_manifests.py). The cluster is the platform stack's,
        found by name like every platform resource, and its OIDC provider by the issuer's ARN."""
        self.eks_role = None
        env, project, n = self.env, self.project, self.names
        if not project.serving.eks:
            return
        if not env.eks.enabled:
            # load_projects refuses it in the file; an app built in code gets the same answer.
            raise ValueError(f"{project.name} in {env.name}: serving.eks needs eks.enabled in "
                             f"environments/{env.name}.yaml")
        from stacks.constructs.service_account_role import ServiceAccountRole, ServiceAccountRoleProps
        from stacks.k8s_manifests import service_account_name

        self.eks_cluster = aws.data_aws_eks_cluster.DataAwsEksCluster(
            self, "eks_cluster", name=n.naming.eks_cluster)
        # A local, so the policies reference ${local.eks_oidc_issuer} rather than embed an
        # expression with quotes inside their JSON.
        issuer = cdktf.TerraformLocal(self, "eks_oidc_issuer", cdktf.Fn.replace(
            self.eks_cluster.identity.get(0).oidc.get(0).issuer, "https://", "")).as_string
        self.eks_role = ServiceAccountRole(self, "eks_serving_role", ServiceAccountRoleProps(
            name=n.eks_serving_role, role_path=n.naming.role_path, boundary_arn=n.boundary_arn,
            oidc_provider_arn=f"arn:aws:iam::{env.account_id}:oidc-provider/{issuer}",
            oidc_issuer=issuer, namespace=env.eks.serving_namespace,
            service_account=service_account_name(project.name, env.eks),
            bucket_arn=f"arn:aws:s3:::{n.artifacts_bucket}", object_patterns=n.model_key_patterns,
            kms_key_arn=self.key_arn, region=env.region,
        ))

    def _outputs(self) -> None:
        outputs = {
            "project": self.project.name,
            "environment": self.env.name,
            "model_package_group_name": self.model_package_group.model_package_group_name,
            "pipeline_name": self.pipeline.pipeline_name,
            "pipeline_arn": self.pipeline.arn,
            "execution_role_arn": self.execution_role.arn,
            "bundle_uri": f"s3://{self.names.artifacts_bucket}/{self.bundle_prefix}",
            "default_data_uri": self.default_data_uri,
            "image_uri": self.image_uri,
            "endpoint_name": self.endpoint.name,
            "capture_uri": self.names.capture_uri,
            "critical_alarm_names": ",".join(self.alarms.critical_alarm_names),
            **{f"{name}_queue_url": q.url for name, q in self.control_loop.queues.items()},
            **{f"{name}_function_name": f.name for name, f in self.control_loop.functions.items()},
            **{k: t.name for k, t in self.control_loop.tables.items()},
        }
        if self.eks_role is not None:
            outputs |= {"eks_serving_role_arn": self.eks_role.arn,
                        "eks_namespace": self.eks_role.props.namespace,
                        "eks_service_account": self.eks_role.props.service_account,
                        "inference_image_uri": self.inference_image_uri}
        for key, value in outputs.items():
            cdktf.TerraformOutput(self, key, value=value)


def _is_text(key: str) -> bool:
    return Path(key).suffix in (".py", ".json", ".csv", ".txt")
