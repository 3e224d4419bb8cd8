"""Names and ARNs of an environment's resources, derived from its prefix in one place.

Every name starts with the environment's prefix (which contains the environment name), so names
carry the environment, IAM can be scoped by prefix, and two environments never collide.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from stacks.config import Environment

# SageMaker's longest user profile name.
STUDIO_PROFILE_MAX = 63


@dataclass(frozen=True)
class Naming:
    prefix: str
    account_id: str
    region: str
    signing_generation: int = 1  # Environment.lambda_signing_profile_generation

    @classmethod
    def of(cls, env: Environment) -> Naming:
        return cls(env.prefix, env.account_id, env.region, env.lambda_signing_profile_generation)

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    @property
    def signing_profile(self) -> str:
        """The environment's AWS Signer profile for its Lambda code (Signer allows only
        [A-Za-z0-9_] in a profile name, 2-64 characters). A canceled profile keeps its name for
        years, so each generation after the first has its own (`<prefix>_lambda_2`, ...)."""
        name = f"{self.prefix.replace('-', '_')}_lambda"
        return name if self.signing_generation == 1 else f"{name}_{self.signing_generation}"

    @property
    def signing_profile_arn(self) -> str:
        return self.arn("signer", f"/signing-profiles/{self.signing_profile}")

    @property
    def signing_profiles_arn_pattern(self) -> str:
        """The environment's profile of every generation: a deployer policy attached once still
        reaches the profile after the generation is raised."""
        return self.arn("signer", f"/signing-profiles/{self.prefix.replace('-', '_')}_lambda*")

    @property
    def secrets_arn_pattern(self) -> str:
        """Every secret of the environment (named `<prefix>/...`)."""
        return self.arn("secretsmanager", f"secret:{self.prefix}/*")

    def persona_role_name(self, persona: str) -> str:
        """`ml_engineer` -> `<prefix>-ml-engineer` (stacks/personas.py)."""
        return self.name(persona.replace("_", "-"))

    @property
    def mlflow_tracking_server(self) -> str:
        """The environment's managed MLflow tracking server (none locally)."""
        return self.name("mlflow")

    @property
    def studio_domain(self) -> str:
        return self.name("studio")

    @staticmethod
    def studio_profile_prefix(persona: str) -> str:
        """Every Studio user profile of a persona starts with this (`data-scientist-`)."""
        return persona.replace("_", "-") + "-"

    @classmethod
    def studio_profile(cls, persona: str, principal_arn: str) -> str:
        """The Studio user profile of one persona principal: the persona, then the principal's
        name (`data-scientist-awsreservedsso-datascientist-0123456789abcdef`), within
        SageMaker's pattern `[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`. A name too long keeps its start and
        ends in a hash of the whole ARN, so it stays unique and the same on every synth."""
        name = re.sub(r"[^a-z0-9]+", "-", principal_arn.rsplit("/", 1)[-1].lower()).strip("-")
        profile = cls.studio_profile_prefix(persona) + (name or "principal")
        if len(profile) > STUDIO_PROFILE_MAX:
            digest = hashlib.sha256(principal_arn.encode()).hexdigest()[:8]
            profile = f"{profile[:STUDIO_PROFILE_MAX - 9].rstrip('-')}-{digest}"
        return profile

    def role_arn(self, name: str) -> str:
        """A role of this environment (on its role path)."""
        return f"arn:aws:iam::{self.account_id}:role{self.role_path}{name}"

    def persona_role_arn(self, persona: str) -> str:
        return self.role_arn(self.persona_role_name(persona))

    def bucket(self, purpose: str) -> str:
        # Bucket names are global across all AWS accounts: the account id keeps them unique.
        return f"{self.prefix}-{purpose}-{self.account_id}"

    # ARN patterns that cover everything this environment owns, for scoping IAM.
    @property
    def all_buckets_arn(self) -> str:
        return f"arn:aws:s3:::{self.prefix}-*"

    def sagemaker_arn(self, resource_type: str, name: str | None = None) -> str:
        return (
            f"arn:aws:sagemaker:{self.region}:{self.account_id}:{resource_type}/"
            f"{name or self.prefix + '-*'}"
        )

    def arn(self, service: str, resource: str, *, region: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if region else ''}:{self.account_id}:{resource}"

    @property
    def role_path(self) -> str:
        return f"/{self.prefix}/"

    # The CI roles live outside role_path, where the roles the deploy role manages live: the
    # deploy role can never rewrite its own trust or permissions.
    CI_ROLE_PATH = "/ci/"

    def ci_role_name(self, kind: str) -> str:
        """`plan` (pull requests, read-only) or `deploy` (the environment's GitHub environment)."""
        return self.name(f"github-{kind}")

    def ci_role_arn(self, kind: str) -> str:
        return f"arn:aws:iam::{self.account_id}:role{self.CI_ROLE_PATH}{self.ci_role_name(kind)}"

    @property
    def eks_cluster(self) -> str:
        """The serving cluster's name (its cluster and node roles are `<this>-cluster|node`)."""
        return self.name("serving")

    @property
    def boundary_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:policy{self.role_path}{self.name('permissions-boundary')}"


def project_stack_name(project: str, env_name: str) -> str:
    return f"project-{project}-{env_name}"


class ProjectNames:
    """Names of one project's resources in one environment (all under the environment prefix)."""

    def __init__(self, naming: Naming, project: str):
        self.naming, self.project = naming, project
        self.base = naming.name(project)  # e.g. mlops-local-demo
        self.model_package_group = self.base
        self.pipeline = f"{self.base}-training"
        self.explainability_pipeline = f"{self.base}-explainability"  # one step, on a schedule
        self.drift_pipeline = f"{self.base}-drift"  # the sharded drift batch job (drift.batch)
        self.endpoint = self.base  # the project's real-time endpoint
        self.execution_role = f"{self.base}-execution"
        self.datasets_bucket = naming.bucket("datasets")
        self.artifacts_bucket = naming.bucket("artifacts")
        self.capture_bucket = naming.bucket("capture")
        # Data capture of the project's endpoint, and where its ground-truth labels arrive
        # (SageMaker Model Monitor's yyyy/mm/dd/hh/*.jsonl layout below it).
        self.capture_uri = f"s3://{self.capture_bucket}/{project}/"
        self.ground_truth_uri = f"s3://{self.capture_bucket}/{project}/ground-truth/"
        self.key_alias = f"alias/{naming.name('platform')}"
        self.boundary_arn = naming.boundary_arn
        self.role_arn = naming.role_arn(self.execution_role)
        self.mlflow_tracking_server = naming.mlflow_tracking_server
        # The IRSA role of the project's model server on the environment's EKS cluster.
        self.eks_serving_role = f"{self.base}-eks-serving"

    @property
    def model_package_group_arn(self) -> str:
        return self.naming.sagemaker_arn("model-package-group", self.model_package_group)

    def promoted_prefix(self, source_group: str, version: int | str) -> str:
        """Where `mlops model promote` copies a source package's files in this environment's
        artifacts bucket: `<project>/promoted/<source group>/<version>/` (the production deploy
        handler serves a promoted package only from there: provenance.Trust.promoted_uri)."""
        return f"{self.project}/promoted/{source_group}/{version}/"

    def package_arn(self, version: int | str) -> str:
        """Version N of the project's model package group."""
        return self.naming.sagemaker_arn("model-package", f"{self.model_package_group}/{version}")

    @property
    def model_key_patterns(self) -> tuple[str, ...]:
        """Where the project's model archives are in the artifacts bucket: the training jobs'
        output (pipelines/definition.py, run_uri("model")) and the bootstrap model (the project
        stack's), and the archives promoted from another environment (mlops/promotion.py).
        Nothing else of the project (code bundle, reports), nor any other project's."""
        return (f"{self.project}/runs/*/model/*", f"{self.project}/bootstrap/*",
                f"{self.project}/promoted/*.tar.gz")

    @property
    def sagemaker_project_tags(self) -> dict[str, str]:
        """The tags SageMaker Studio groups a project's resources by (the sagemaker SDK sets the
        same keys on what it creates in a Studio project). The id is the project's own name in
        this environment: there is no SageMaker project resource behind it (README, "From Studio
        to the pipeline")."""
        return {"sagemaker:project-name": self.project, "sagemaker:project-id": self.base}

    def function_name(self, handler: str) -> str:
        """A control-loop function (`gate` -> `mlops-local-demo-gate`); its role has the same name."""
        return f"{self.base}-{handler}"

    def function_role_arn(self, handler: str) -> str:
        return self.naming.role_arn(self.function_name(handler))

    def topic_arn(self, severity: str) -> str:
        """The platform's alert topics (critical, warning)."""
        return self.naming.arn("sns", self.naming.name(f"alerts-{severity}"))

    def repository_url(self, purpose: str) -> str:
        n = self.naming
        return f"{n.account_id}.dkr.ecr.{n.region}.amazonaws.com/{n.name(purpose)}"

    def repository_arn(self, purpose: str) -> str:
        return self.naming.arn("ecr", f"repository/{self.naming.name(purpose)}")

    @property
    def mlflow_tracking_server_arn(self) -> str:
        return self.naming.sagemaker_arn("mlflow-tracking-server", self.mlflow_tracking_server)
