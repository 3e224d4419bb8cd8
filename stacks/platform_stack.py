"""The platform stack: everything one environment shares across its ML projects.

KMS key -> buckets (datasets, artifacts, capture, audit, access logs) -> ECR repositories ->
model registry -> alert topics -> secrets -> CloudTrail -> permissions boundary, the Studio
domain and a user profile per persona principal, persona roles and the SageMaker execution role.
Outputs name every resource later stacks and the CLI need.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stacks import moto_gaps, personas
from stacks.binding import Construct, aws, cdktf
from stacks.config import Environment
from stacks.constructs.alert_topic import AlertTopic, AlertTopicProps
from stacks.constructs.audit_trail import AuditTrail, AuditTrailProps
from stacks.constructs.bucket_replication import BucketReplication, platform_replication
from stacks.constructs.code_signing import signing_profile
from stacks.constructs.container_repository import ContainerRepository, ContainerRepositoryProps
from stacks.constructs.cost_budget import CostBudget, CostBudgetProps
from stacks.constructs.encryption_key import EncryptionKey, EncryptionKeyProps
from stacks.constructs.managed_secret import ManagedSecret, ManagedSecretProps
from stacks.constructs.permission_boundary import PermissionBoundary, PermissionBoundaryProps
from stacks.constructs.private_network import FlowLogs
from stacks.constructs.scoped_role import ScopedRole, ScopedRoleProps
from stacks.constructs.secure_bucket import (
    AccessLogs,
    ObjectLock,
    SecureBucket,
    SecureBucketProps,
    log_delivery_statement,
)
from stacks.images import IMAGE_TARGETS
from stacks.naming import Naming
from stacks.promotion_grants import NONE, PROMOTER, Promotions
from stacks.provider import configure_backend, configure_provider
from stacks.replication import ACCESS_LOGS, REPLICATED, ReplicaNames, boundary_statements

DATA_BUCKETS = ("datasets", "artifacts", "capture")


def wait_for(resource: cdktf.TerraformResource, *others: cdktf.TerraformResource) -> None:
    """Terraform's depends_on, for an order no reference shows (a role names its permissions
    boundary by ARN, a string: IAM refuses a role whose boundary does not exist yet).
    `node.add_dependency` writes no depends_on in cdktf."""
    resource.add_override("depends_on", [f"{o.terraform_resource_type}.{o.friendly_unique_id}"
                                         for o in others])


def stack_name(env_name: str) -> str:
    return f"platform-{env_name}"


def environment_tags(env: Environment, stack: str) -> dict[str, str]:
    return {**env.tags, "environment": env.name, "managed-by": "mlops-platform", "stack": stack}


@dataclass(frozen=True)
class StackPaths:
    """Where a stack's Terraform working directory and its local state file live."""

    stack_dir: Path
    state_dir: Path


class PlatformStack(cdktf.TerraformStack):
    def __init__(self, scope: Construct, env: Environment, paths: StackPaths,
                 promotions: Promotions = NONE):
        name = stack_name(env.name)
        super().__init__(scope, name)
        self.env, self.promotions = env, promotions
        n = self.naming = Naming.of(env)
        configure_provider(self, env, environment_tags(env, name))
        configure_backend(self, env, paths.stack_dir, paths.state_dir)
        protection = env.data_protection

        self.key = EncryptionKey(
            self,
            "platform_key",
            EncryptionKeyProps(
                alias=n.name("platform"),
                description=f"Encrypts every {env.name} MLOps bucket, topic, secret, log and image",
                account_id=env.account_id,
                region=env.region,
                deletion_window_days=7 if protection.force_destroy else 30,
                # The environments promoted from this one decrypt their model archives via S3.
                extra_statements=tuple(promotions.key_statements(env.name)),
            ),
        )

        # Server access logs need SSE-S3 on their destination (S3 cannot write them with a KMS
        # key), so they get a bucket of their own and every other bucket keeps the CMK.
        self.access_logs = SecureBucket(
            self,
            "access_logs",
            SecureBucketProps(
                name=n.bucket("access-logs"),
                kms_key_arn=None,
                encryption="s3-managed",
                noncurrent_version_days=env.retention.noncurrent_version_days,
                expire_objects_days=env.retention.audit_days,
                force_destroy=protection.force_destroy,
                prevent_destroy=protection.prevent_destroy,
                extra_policy_statements=(log_delivery_statement(n.bucket("access-logs"), env.account_id,
                                                                 n.prefix),),
            ),
        )

        def log_to(purpose: str) -> AccessLogs:
            return AccessLogs(self.access_logs, f"{purpose}/")

        trail_props = AuditTrailProps(
            name=n.name("audit"),
            kms_key_arn=self.key.arn,
            account_id=env.account_id,
            region=env.region,
            multi_region=env.audit.multi_region_trail,
            data_event_bucket_arns=tuple(f"arn:aws:s3:::{n.bucket(b)}" for b in ("datasets",
                                                                              "artifacts")),
            log_group_name=f"/{n.prefix}/cloudtrail",
            log_retention_days=env.retention.log_days,
        )
        self.audit = SecureBucket(
            self,
            "audit",
            SecureBucketProps(
                name=n.bucket("audit"),
                kms_key_arn=self.key.arn,
                noncurrent_version_days=env.retention.noncurrent_version_days,
                expire_objects_days=env.retention.audit_days,
                access_logs=log_to("audit"),
                force_destroy=protection.force_destroy,
                prevent_destroy=protection.prevent_destroy,
                extra_policy_statements=AuditTrail.bucket_statements(trail_props, n.bucket("audit")),
                # Evidence: no object version deleted or overwritten before it is this old.
                object_lock=ObjectLock(env.audit_lock_mode, env.retention.audit_days),
            ),
        )
        self.data_buckets = {
            purpose: SecureBucket(
                self,
                purpose,
                SecureBucketProps(
                    name=n.bucket(purpose),
                    kms_key_arn=self.key.arn,
                    noncurrent_version_days=env.retention.noncurrent_version_days,
                    expire_objects_days=env.retention.capture_days if purpose == "capture" else None,
                    access_logs=log_to(purpose),
                    force_destroy=protection.force_destroy,
                    prevent_destroy=protection.prevent_destroy,
                    # The environments promoted from this one read its projects' model archives.
                    extra_policy_statements=tuple(promotions.bucket_statements(env.name))
                    if purpose == "artifacts" else (),
                ),
            )
            for purpose in DATA_BUCKETS
        }

        self.repositories = {
            purpose: ContainerRepository(
                self,
                f"{purpose}_repository",
                ContainerRepositoryProps(
                    name=n.name(purpose),
                    kms_key_arn=self.key.arn,
                    force_delete=protection.force_destroy,
                    # The environments promoted from this one compare the served image's digest.
                    policy_statements=tuple(promotions.repository_statements(env.name))
                    if purpose == "inference" else (),
                ),
            )
            for purpose in IMAGE_TARGETS  # one repository per image the project stacks run
        }

        self.model_registry = aws.sagemaker_model_package_group.SagemakerModelPackageGroup(
            self,
            "model_registry",
            model_package_group_name=n.name("models"),
            model_package_group_description=f"Model registry of the {env.name} environment",
        )

        self.topics = {
            severity: AlertTopic(
                self,
                f"{severity}_topic",
                AlertTopicProps(
                    name=n.name(f"alerts-{severity}"),
                    kms_key_arn=self.key.arn,
                    account_id=env.account_id,
                ),
            )
            for severity in ("critical", "warning")
        }

        self.mlflow_secret = ManagedSecret(
            self,
            "mlflow_secret",
            ManagedSecretProps(
                name=f"{n.prefix}/mlflow/database",
                description="MLflow tracking database credentials (value set out of band)",
                kms_key_arn=self.key.arn,
                recovery_window_days=0 if protection.force_destroy else 30,
            ),
        )

        if env.budget is not None:
            self.budget = CostBudget(self, "budget", CostBudgetProps(
                name=n.name("monthly-cost"), account_id=env.account_id,
                monthly_limit_usd=env.budget.monthly_limit_usd,
                alert_at_percent=tuple(env.budget.alert_at_percent),
                forecast_at_percent=env.budget.forecast_at_percent,
                topic_arn=self.topics["warning"].arn,
                tag_filter={"environment": env.name} if env.budget.filter_by_environment_tag else None,
            ))

        if env.lambda_code_signing:
            # The environment's one signer of Lambda code; the project stacks find it by name.
            self.signing_profile = signing_profile(self, "lambda_signing_profile", n.signing_profile)

        self.boundary = PermissionBoundary(
            self,
            "boundary",
            PermissionBoundaryProps.of(n, n.name("permissions-boundary"), trail_props.arn,
                                       key_arn=self.key.arn, audit_bucket_arn=self.audit.arn,
                                       extra_statements=(*promotions.boundary_statements(env.name),
                                                         *boundary_statements(ReplicaNames.of(env)))),
        )
        self.trail = AuditTrail(self, "audit_trail", trail_props, self.audit,
                                role_path=n.role_path, boundary_arn=self.boundary.arn,
                                gaps=moto_gaps.for_environment(env.is_local))
        wait_for(self.trail.logs_role.role, self.boundary.policy)
        self._replication()
        self._studio()
        self._roles()
        self._experiment_tracking()
        self._eks_serving()
        self._outputs()

    def _replication(self) -> None:
        """Cross-region replication of every platform bucket into the replica stack's buckets
        (`replication.region`; none where unset). The replica stack is deployed first."""
        self.replication = None
        names = ReplicaNames.of(self.env)
        if names is None:
            return
        buckets = {**self.data_buckets, "audit": self.audit, ACCESS_LOGS: self.access_logs}
        self.replication = BucketReplication(self, "replication", platform_replication(
            names, {p: buckets[p] for p in REPLICATED}, source_key_arn=self.key.arn,
            role_path=self.naming.role_path, boundary_arn=self.boundary.arn,
        ))
        wait_for(self.replication.role.role, self.boundary.policy)

    def _studio(self) -> None:
        """The environment's Studio domain, a profile per persona principal (`studio` in the
        file). Created before the roles, whose Studio permissions name the domain; its profiles
        wait for the roles they run as."""
        self.studio = None

        env, n = self.env, self.naming
        if not (env.studio.enabled and moto_gaps.for_environment(env.is_local).studio):
            return
        from stacks.constructs.studio_domain import StudioDomain, StudioDomainProps, StudioUser

        self.studio = StudioDomain(self, "studio", StudioDomainProps(
            name=n.studio_domain, settings=env.studio, region=env.region, kms_key_arn=self.key.arn,
            default_execution_role_arn=n.persona_role_arn("data_scientist"),
            users=tuple(StudioUser(persona, principal, n.persona_role_arn(persona))
                        for persona in personas.PERSONAS
                        for principal in getattr(env.personas, persona)),
            retain_home=env.data_protection.prevent_destroy,
            flow_logs=self._flow_logs(),
        ))
        if self.studio.network.flow_logs_role is not None:
            wait_for(self.studio.network.flow_logs_role.role, self.boundary.policy)

    def _flow_logs(self) -> FlowLogs:
        """Where the environment's private networks (EKS, Studio) log their traffic."""
        env, n = self.env, self.naming
        return FlowLogs(account_id=env.account_id, kms_key_arn=self.key.arn,
                        retention_days=env.retention.log_days, role_path=n.role_path,
                        boundary_arn=self.boundary.arn)

    def _studio_users(self, persona: str) -> dict[str, dict[str, str]]:
        """Each principal of a persona may tag its session only with its own profile's name."""
        if self.studio is None:
            return {}
        return {u.principal_arn: {personas.STUDIO_USER_TAG: u.profile_name}
                for u in self.studio.props.users if u.persona == persona}

    def _roles(self) -> None:
        env, n = self.env, self.naming
        execution_role_name = n.name("sagemaker-execution")
        refs = personas.PlatformRefs(
            naming=n,
            key_arn=self.key.arn,
            buckets=personas.BucketRefs(
                datasets=self.data_buckets["datasets"].arn,
                artifacts=self.data_buckets["artifacts"].arn,
                capture=self.data_buckets["capture"].arn,
                audit=self.audit.arn,
                access_logs=self.access_logs.arn,
            ),
            repository_arns=tuple(r.arn for r in self.repositories.values()),
            execution_role_arn=n.role_arn(execution_role_name),
            secret_arn_pattern=n.secrets_arn_pattern,
            protected=env.production,
            studio_domain_id=self.studio.domain_id if self.studio else None,
            # The server _experiment_tracking creates (none locally: MLflow runs embedded there).
            mlflow_tracking_server_arn=None if env.is_local
            else n.sagemaker_arn("mlflow-tracking-server", n.mlflow_tracking_server),
        )
        common = {"path": n.role_path, "boundary_arn": self.boundary.arn}
        self.execution_role = ScopedRole(
            self,
            "sagemaker_execution_role",
            ScopedRoleProps(
                name=execution_role_name,
                description="Run-time role of SageMaker pipeline steps and endpoints",
                statements=tuple(personas.sagemaker_execution(refs)),
                assumed_by_service="sagemaker.amazonaws.com",
                **common,
            ),
        )
        wait_for(self.execution_role.role, self.boundary.policy)
        self.persona_roles: dict[str, ScopedRole] = {}
        for persona, statements_of in personas.PERSONAS.items():
            role = ScopedRole(
                self,
                f"{persona}_role",
                ScopedRoleProps(
                    name=n.persona_role_name(persona),
                    description=f"{persona.replace('_', ' ').title()} persona of {env.name}",
                    statements=(*statements_of(refs), *personas.studio(refs, persona),
                                *personas.read_experiments(refs),
                                *(self.promotions.promoter_statements(env.name)
                                  if persona == PROMOTER else ())),
                    assumed_by_principals=tuple(getattr(env.personas, persona)),
                    require_mfa=env.personas.require_mfa,
                    # Four eyes in production compares persons, not session names (provenance.py).
                    require_source_identity=env.production,
                    session_tags=self._studio_users(persona),
                    # Studio runs the persona's apps as its role; only this account's SageMaker.
                    also_assumed_by_service="sagemaker.amazonaws.com" if self.studio else None,
                    service_conditions={"StringEquals": {"aws:SourceAccount": env.account_id}}
                    if self.studio else None,
                    **common,
                ),
            )
            wait_for(role.role, self.boundary.policy)
            self.persona_roles[persona] = role
        if self.studio is not None:
            # SageMaker checks an execution role when a domain or profile names it. (Terraform
            # sees no reference: the ARNs are the names', so the roles' policies can name the
            # domain without a cycle.)
            wait_for(self.studio.domain, self.persona_roles["data_scientist"].role)
            for user, profile in self.studio.profiles.items():
                wait_for(profile, self.persona_roles[user.persona].role)

    def _experiment_tracking(self) -> None:
        """A managed MLflow tracking server per environment, its artifacts in the artifacts bucket.

        The local environment has none (moto does not implement it): there MLflow runs embedded,
        on a SQLite file with its artifacts in the local artifacts bucket (`mlops pipeline run`).
        """
        self.mlflow = None
        if self.env.is_local:
            return
        self.mlflow = aws.sagemaker_mlflow_tracking_server.SagemakerMlflowTrackingServer(
            self,
            "mlflow",
            tracking_server_name=self.naming.mlflow_tracking_server,
            artifact_store_uri=f"s3://{self.data_buckets['artifacts'].name}/mlflow",
            # The server writes artifacts as the environment's SageMaker execution role.
            role_arn=self.execution_role.arn,
            tracking_server_size="Small",
            automatic_model_registration=False,
        )

    def _eks_serving(self) -> None:
        """Optional EKS serving for the environment (`eks.enabled`; off for local)."""
        self.eks = None
        if not self.env.eks.enabled:
            return
        from stacks.constructs.eks_serving import EksServing, EksServingProps

        env, n = self.env, self.naming
        self.eks = EksServing(self, "eks", EksServingProps(
            name=n.eks_cluster, settings=env.eks, region=env.region, account_id=env.account_id,
            kms_key_arn=self.key.arn, role_path=n.role_path, boundary_arn=self.boundary.arn,
            log_retention_days=env.retention.log_days,
            gaps=moto_gaps.for_environment(env.is_local),
        ))
        if self.eks.network is not None and self.eks.network.flow_logs_role is not None:
            wait_for(self.eks.network.flow_logs_role.role, self.boundary.policy)

    def _outputs(self) -> None:
        outputs: dict[str, str] = {
            "environment": self.env.name,
            "region": self.env.region,
            "kms_key_arn": self.key.arn,
            "audit_bucket": self.audit.name,
            "access_logs_bucket": self.access_logs.name,
            "model_package_group": self.model_registry.model_package_group_name,
            "critical_topic_arn": self.topics["critical"].arn,
            "warning_topic_arn": self.topics["warning"].arn,
            "mlflow_secret_arn": self.mlflow_secret.arn,
            "trail_arn": self.trail.arn,
            "permissions_boundary_arn": self.boundary.arn,
            "sagemaker_execution_role_arn": self.execution_role.arn,
        }
        outputs |= {f"{p}_bucket": b.name for p, b in self.data_buckets.items()}
        outputs |= {f"{p}_repository_url": r.url for p, r in self.repositories.items()}
        outputs |= {f"{p}_role_arn": r.arn for p, r in self.persona_roles.items()}
        if self.replication is not None:
            outputs["replication_role_arn"] = self.replication.role.arn
            outputs["replica_region"] = self.replication.props.region
        if self.mlflow is not None:
            outputs["mlflow_tracking_server_arn"] = self.mlflow.arn
        if self.studio is not None:
            outputs["studio_domain_id"] = self.studio.domain_id
            outputs["studio_user_profiles"] = ",".join(self.studio.profile_names())
        if self.eks is not None:
            outputs["eks_cluster_name"] = self.eks.cluster_name
            # Each project's IRSA role trusts this provider (project stacks find it by the
            # cluster's name: stacks/project_stack.py).
            outputs["eks_oidc_provider_arn"] = self.eks.oidc_provider_arn
            outputs["eks_oidc_issuer"] = self.eks.oidc_issuer
        for key, value in outputs.items():
            cdktf.TerraformOutput(self, key, value=value)

