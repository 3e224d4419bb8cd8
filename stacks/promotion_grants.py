"""Who promotes from whom, and exactly what that lets the promoter do across accounts.

`mlops model promote --project P --from S --to T` runs as T's ML engineer persona and copies an
Approved package of S into T (environments/<T>.yaml: `promotion.source: S`). It reads S's package
and its group, the package's model archive and evaluation report in S's artifacts bucket (SSE-KMS
under S's platform key), S's shadow reports when a shadow pass is required (listing only their
folder), and the inference image's digest in S's ECR, then writes the archive under
`<project>/promoted/<S group>/<version>/` in T's artifacts bucket and registers the package in T's
project group. Cross-account, each read needs both sides: a resource policy in S naming T's ML
engineer, and an identity statement on T's ML engineer (and its permissions boundary) naming S's
resources. Both sides are computed here, from the same pair, so they cannot drift apart.

The writes into T need nothing new: T's ML engineer already writes T's artifacts bucket outside
the pipeline's keys (`ReadWriteArtifacts`, `<project>/promoted/` is not a pipeline key; there
create-only, `PromotedCopiesAreCreateOnly`: the promote command writes with If-None-Match), uses T's
key (`UsePlatformKey`), registers packages into T's groups (`RegisterDrillPackages`) and reads
them (`DescribeSageMakerResources`); it gains `ecr:DescribeImages` on T's inference repository
(`FindInferenceImages`, with S's) to check the image reached T.

The resource policies name T's account as the principal and T's ML engineer role by
`aws:PrincipalArn`: a policy naming the role itself is refused while the role does not exist
(S is deployed before T), and silently stops matching when the role is recreated (AWS stores the
role's unique id). The condition grants exactly that role, and survives both.

Pure (no cdktf): the platform and project stacks render these statements.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from stacks.config import Environment
from stacks.naming import Naming, ProjectNames
from stacks.policy import Statement, statement

PROMOTER = "ml_engineer"

# What the promote command reads in S, per resource: nothing more crosses accounts.
GROUP_ACTIONS = ("sagemaker:DescribeModelPackageGroup", "sagemaker:ListModelPackages")
PACKAGE_ACTIONS = ("sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages")
MODEL_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
KEY_ACTIONS = ("kms:Decrypt",)
IMAGE_ACTIONS = ("ecr:DescribeImages",)
LIST_ACTIONS = ("s3:ListBucket",)
# What it reads in S's artifacts bucket, under each project: the pipeline's model archives and
# evaluation reports (pipelines/definition.py run_uri), and the shadow reports (mlops shadow
# report) a required shadow pass is judged from; it lists only the shadow reports' folder.
SOURCE_KEYS = ("runs/*/model/*", "runs/*/evaluation/*", "shadow/*/report.json")
LISTED_PREFIX = "shadow/*"


@dataclass(frozen=True)
class Request:
    """One authorization a promotion or approval takes: action, resource, and whether the
    resource is the source environment's (then its resource policy must allow it too)."""

    action: str
    resource: str
    in_source: bool = False


# T's platform key, whose ARN (its random id) only the synthesized stack knows: a test resolves it.
TARGET_KEY = "<target platform key>"


@dataclass(frozen=True)
class PromotionPair:
    """T promotes from S (T's `promotion.source`), for the projects that run in both."""

    source: Environment
    target: Environment
    projects: tuple[str, ...]

    @property
    def promoter_arn(self) -> str:
        return Naming.of(self.target).persona_role_arn(PROMOTER)

    @property
    def sid(self) -> str:
        """`PromoteToProd`: S's statements for this target (S may have several)."""
        return f"PromoteTo{self.target.name.capitalize()}"

    def _only_the_promoter(self) -> dict:
        return {"principals": {"AWS": f"arn:aws:iam::{self.target.account_id}:root"},
                "conditions": {"ArnEquals": {"aws:PrincipalArn": self.promoter_arn}}}

    # What the promoter reads in S.
    @property
    def source_bucket_arn(self) -> str:
        return f"arn:aws:s3:::{Naming.of(self.source).bucket('artifacts')}"

    @property
    def model_object_arns(self) -> list[str]:
        """The objects of S's artifacts bucket the promoter reads (SOURCE_KEYS), nothing else."""
        return [f"{self.source_bucket_arn}/{project}/{keys}" for project in self.projects
                for keys in SOURCE_KEYS]

    @property
    def listed_prefixes(self) -> dict:
        """The one listing it makes in S: the shadow reports of each project's endpoint."""
        return {"StringLike": {"s3:prefix": [f"{project}/{LISTED_PREFIX}" for project in self.projects]}}

    def group_arn(self, project: str) -> str:
        return ProjectNames(Naming.of(self.source), project).model_package_group_arn

    def package_arns(self, project: str) -> str:
        return ProjectNames(Naming.of(self.source), project).package_arn("*")

    @property
    def source_repository_arn(self) -> str:
        return _inference_repository_arn(self.source)

    @property
    def source_key_arns(self) -> str:
        # A key's ARN is its random id, unknown to T's stack; S's key policy (key_statements) is
        # the one that names the key, so only S's platform key honours this.
        s = self.source
        return f"arn:aws:kms:{s.region}:{s.account_id}:key/*"

    @property
    def via_s3(self) -> dict:
        return {"StringEquals": {"kms:ViaService": f"s3.{self.source.region}.amazonaws.com"}}

    def promote_requests(self, project: str, version: int = 1) -> list[Request]:
        """What `mlops model promote --project P --from S --to T` is authorized for, in order:
        S's group and package, the archive (SageMaker's training output layout) and its key,
        both images, then T's archive, key and group."""
        s, t = ProjectNames(Naming.of(self.source), project), ProjectNames(Naming.of(self.target), project)
        archive = f"{project}/runs/execution-1/model/pipelines-train-1/output/model.tar.gz"
        return [
            Request("sagemaker:DescribeModelPackageGroup", self.group_arn(project), True),
            Request("sagemaker:ListModelPackages", self.group_arn(project), True),
            Request("sagemaker:DescribeModelPackage", s.package_arn(version), True),
            Request("s3:GetObject", f"{self.source_bucket_arn}/{archive}", True),
            Request("s3:GetObject", f"{self.source_bucket_arn}/{project}/runs/execution-1/evaluation/"
                    "evaluation.json", True),
            Request("kms:Decrypt", f"arn:aws:kms:{s.naming.region}:{s.naming.account_id}:key/"
                    "00000000-0000-0000-0000-000000000000", True),
            Request("ecr:DescribeImages", self.source_repository_arn, True),
            Request("ecr:DescribeImages", _inference_repository_arn(self.target)),
            Request("s3:PutObject", f"arn:aws:s3:::{t.artifacts_bucket}/"
                    f"{t.promoted_prefix(s.model_package_group, version)}model.tar.gz"),
            Request("kms:GenerateDataKey", TARGET_KEY),
            Request("sagemaker:DescribeModelPackageGroup", t.model_package_group_arn),
            Request("sagemaker:CreateModelPackage", t.model_package_group_arn),
        ]

    def approve_requests(self, project: str, version: int = 1) -> list[Request]:
        """Approving the promoted package in T (what the deploy handler then serves)."""
        package = ProjectNames(Naming.of(self.target), project).package_arn(version)
        return [Request("sagemaker:UpdateModelPackage", package)]

    # S's side: statements of S's resource policies.
    def bucket_statements(self) -> list[Statement]:
        """S's artifacts bucket: the projects' model archives, read-only."""
        only = self._only_the_promoter()
        return [statement(f"{self.sid}ReadModels", list(MODEL_ACTIONS), self.model_object_arns, **only),
                statement(f"{self.sid}ListShadowReports", list(LIST_ACTIONS), [self.source_bucket_arn],
                          principals=only["principals"],
                          conditions={**only["conditions"], **self.listed_prefixes})]

    def key_statements(self) -> list[Statement]:
        """S's platform key: decrypt, only through S3 and only for S's artifacts bucket (its
        objects carry the bucket's ARN as encryption context under the bucket key, an object's
        own ARN without one). A key-policy statement, not an aws_kms_grant: a grant's grantee
        must exist when S is applied (T's role may not yet), a grant takes no kms:ViaService
        condition, and it is invisible in the key policy the auditor reads."""
        only = self._only_the_promoter()
        return [statement(
            f"{self.sid}DecryptModels", list(KEY_ACTIONS), ["*"], principals=only["principals"],
            conditions={**only["conditions"], **self.via_s3,
                        "StringLike": {"kms:EncryptionContext:aws:s3:arn":
                                       [self.source_bucket_arn, *self.model_object_arns]}},
        )]

    def group_statements(self, project: str) -> list[Statement]:
        """S's project group (aws_sagemaker_model_package_group_policy): list and describe its
        packages and the group. ListModelPackages is authorized on the group (the request names
        it) and on its packages (the documented cross-account example); both are granted."""
        return [
            statement(f"{self.sid}DescribeGroup", list(GROUP_ACTIONS), [self.group_arn(project)],
                      **self._only_the_promoter()),
            statement(f"{self.sid}ReadPackages", list(PACKAGE_ACTIONS), [self.package_arns(project)],
                      **self._only_the_promoter()),
        ]

    def repository_statements(self) -> list[Statement]:
        """S's inference repository: read the image's digest (the image itself reaches T by
        `mlops image push --env T` from the same checkout, not by a cross-account pull)."""
        return [statement(f"{self.sid}DescribeImages", list(IMAGE_ACTIONS), **self._only_the_promoter())]

    # T's side: the promoter's identity statements, and what T's permissions boundary lets through.
    def promoter_statements(self) -> list[Statement]:
        return [
            statement("ReadSourceModelPackages",
                      ["sagemaker:DescribeModelPackageGroup", "sagemaker:DescribeModelPackage"],
                      [arn for p in self.projects for arn in (self.group_arn(p), self.package_arns(p))]),
            statement("ReadSourceModels", list(MODEL_ACTIONS), self.model_object_arns),
            statement("ListSourceShadowReports", list(LIST_ACTIONS), [self.source_bucket_arn],
                      conditions=self.listed_prefixes),
            statement("DecryptSourceModels", list(KEY_ACTIONS), [self.source_key_arns],
                      conditions=self.via_s3),
            statement("FindInferenceImages", list(IMAGE_ACTIONS),
                      [self.source_repository_arn, _inference_repository_arn(self.target)]),
        ]

    def boundary_statements(self) -> list[Statement]:
        """T's boundary lets bounded roles reach T's own data and key only: these two reads of S
        get through too (only the promoter is granted them, by its policy and S's)."""
        return [
            statement("AllowPromotionSourceModels", list(MODEL_ACTIONS), self.model_object_arns),
            statement("AllowPromotionSourceListing", list(LIST_ACTIONS), [self.source_bucket_arn],
                      conditions=self.listed_prefixes),
            statement("AllowPromotionSourceKey", list(KEY_ACTIONS), [self.source_key_arns],
                      conditions=self.via_s3),
        ]


def _inference_repository_arn(env: Environment) -> str:
    n = Naming.of(env)
    return n.arn("ecr", f"repository/{n.name('inference')}")


@dataclass(frozen=True)
class Promotions:
    """Every promotion pair among the known environments."""

    pairs: tuple[PromotionPair, ...]

    @classmethod
    def of(cls, envs: Mapping[str, Environment],
           project_environments: Mapping[str, Collection[str]]) -> Promotions:
        """envs: every environment (not only those synthesized: a source must know its targets,
        a target its source); project_environments: project -> the environments it runs in."""
        pairs = []
        for target in envs.values():
            if target.promotion is None:
                continue
            source = envs.get(target.promotion.source)
            if source is None:
                raise ValueError(f"{target.name}: promotion.source '{target.promotion.source}' is not "
                                 f"among the environments given ({', '.join(sorted(envs))}): pass every "
                                 "environment, so both sides of a promotion get their grants")
            projects = tuple(sorted(p for p, names in project_environments.items()
                                    if source.name in names and target.name in names))
            pairs.append(PromotionPair(source, target, projects))
        return cls(tuple(pairs))

    def targets_of(self, env_name: str) -> tuple[PromotionPair, ...]:
        """The pairs where env_name is the source (its resource policies grant the targets); a
        pair with no project in common grants nothing."""
        return tuple(p for p in self.pairs if p.source.name == env_name and p.projects)

    def source_of(self, env_name: str) -> PromotionPair | None:
        """The pair where env_name is the target (its promoter reads the source)."""
        return next((p for p in self.pairs if p.target.name == env_name and p.projects), None)

    def bucket_statements(self, env_name: str) -> list[Statement]:
        return [s for p in self.targets_of(env_name) for s in p.bucket_statements()]

    def key_statements(self, env_name: str) -> list[Statement]:
        return [s for p in self.targets_of(env_name) for s in p.key_statements()]

    def repository_statements(self, env_name: str) -> list[Statement]:
        return [s for p in self.targets_of(env_name) for s in p.repository_statements()]

    def group_statements(self, env_name: str, project: str) -> list[Statement]:
        return [s for p in self.targets_of(env_name) if project in p.projects
                for s in p.group_statements(project)]

    def promoter_statements(self, env_name: str) -> list[Statement]:
        pair = self.source_of(env_name)
        return pair.promoter_statements() if pair else []

    def boundary_statements(self, env_name: str) -> list[Statement]:
        pair = self.source_of(env_name)
        return pair.boundary_statements() if pair else []


NONE = Promotions(())
