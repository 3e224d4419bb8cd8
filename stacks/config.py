"""Environment configuration: one YAML file per environment, validated before anything is synthesized.

A bad file stops the run with one line per problem, `FILE: FIELD.PATH: reason`, so nothing is
half-deployed. The models forbid unknown keys: a typo in a setting is an error, not a silent default.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stacks import moto_gaps

# The shipped environments, in the order commands list them. An environment is any
# environments/<name>.yaml: what it is (local or in AWS, production or not) is in its settings, not
# in its name, so a second local environment can stand in for prod (environments/localprod.yaml).
ENVIRONMENT_NAMES = ("local", "dev", "staging", "prod")
# No hyphen: every resource name starts with a prefix whose hyphen-separated parts hold the name.
EnvironmentName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9]{1,15}$")]

# CloudWatch Logs accepts only these retention periods; anything else fails at apply time, so it is
# refused here instead.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)

AccountId = Annotated[str, StringConstraints(pattern=r"^\d{12}$")]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")]
# Who may assume a persona role: an IAM user or role (SSO permission-set roles included).
PrincipalArn = Annotated[
    str,
    StringConstraints(
        max_length=600, pattern=r"^arn:aws(-[a-z]+)*:iam::\d{12}:(user|role)/[A-Za-z0-9_+=,.@/-]+$"
    ),
]
SageMakerInstanceType = Annotated[str, StringConstraints(pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")]
TagKey = Annotated[str, StringConstraints(max_length=128, pattern=r"^[A-Za-z0-9_ .:/=+@-]+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class LocalState(Strict):
    """Terraform state in a file under .mlops/state (the local environment, and bootstrap stacks)."""

    kind: Literal["local"]


class S3State(Strict):
    """Remote state in S3 with Terraform's native lock file (no DynamoDB table needed, TF >= 1.10).

    The bucket is created by the account's bootstrap stack (`mlops bootstrap ENV`)."""

    kind: Literal["s3"]
    bucket: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    key_prefix: Annotated[str, StringConstraints(pattern=r"^[\w./-]{1,200}$")] = "mlops"
    region: Region | None = None


class InstanceTypes(Strict):
    training: SageMakerInstanceType
    processing: SageMakerInstanceType
    inference: SageMakerInstanceType


class Retention(Strict):
    log_days: int = Field(description="CloudWatch log groups")
    capture_days: int = Field(ge=1, le=3650, description="endpoint data capture objects")
    noncurrent_version_days: int = Field(ge=1, le=3650, description="old object versions")
    audit_days: int = Field(ge=1, le=3650, description="CloudTrail and access logs")

    @field_validator("log_days")
    @classmethod
    def _log_days_allowed(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"must be one of CloudWatch's retention periods {LOG_RETENTION_DAYS}")
        return value


class DataProtection(Strict):
    # prevent_destroy makes Terraform refuse any plan that would delete a data bucket.
    prevent_destroy: bool
    # force_destroy lets Terraform delete non-empty buckets and repositories: for throwaway
    # environments only.
    force_destroy: bool

    @model_validator(mode="after")
    def _not_both(self) -> DataProtection:
        if self.prevent_destroy and self.force_destroy:
            raise ValueError("prevent_destroy and force_destroy cannot both be true")
        return self


class Personas(Strict):
    """Principals allowed to assume each persona role in this environment."""

    data_scientist: list[PrincipalArn] = Field(min_length=1)
    ml_engineer: list[PrincipalArn] = Field(min_length=1)
    platform_admin: list[PrincipalArn] = Field(min_length=1)
    auditor: list[PrincipalArn] = Field(min_length=1)
    # Adds aws:MultiFactorAuthPresent to every persona trust policy.
    require_mfa: bool = False


class Audit(Strict):
    multi_region_trail: bool = True
    # S3 Object Lock on the audit bucket, each object kept `retention.audit_days`: GOVERNANCE may
    # be lifted by a principal allowed s3:BypassGovernanceRetention (a throwaway environment's
    # teardown), COMPLIANCE by nobody, root included. Default: COMPLIANCE in prod (required there),
    # GOVERNANCE elsewhere.
    object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] | None = None


class Budget(Strict):
    """A monthly AWS Budgets cost budget: the warning topic hears when the month's actual cost
    passes each of `alert_at_percent` of the limit, and when the forecast passes
    `forecast_at_percent`. It covers the environment's account (each environment has its own in
    the shipped files); where environments share an account, activate the `environment`
    cost-allocation tag and set `filter_by_environment_tag`."""

    monthly_limit_usd: Annotated[float, Field(gt=0)]
    alert_at_percent: list[Annotated[int, Field(ge=1, le=1000)]] = Field(default_factory=lambda: [80, 100])
    forecast_at_percent: Annotated[int, Field(ge=1, le=1000)] | None = 100
    filter_by_environment_tag: bool = False

    @field_validator("alert_at_percent")
    @classmethod
    def _distinct_and_few(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("lists a percentage twice")
        if not 1 <= len(value) <= 9:  # AWS Budgets: ten notifications a budget, the forecast's included
            raise ValueError("1 to 9 percentages (AWS Budgets takes ten notifications a budget)")
        return sorted(value)


# EKS serving (optional per environment). Kubernetes names are DNS labels.
KubernetesVersion = Annotated[str, StringConstraints(pattern=r"^1\.\d{2}$")]
Ec2InstanceType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")]
SubnetId = Annotated[str, StringConstraints(pattern=r"^subnet-[0-9a-f]{8,17}$")]
AvailabilityZone = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$")]
Cidr = Annotated[str, StringConstraints(pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")]
def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise ValueError(f"{cidr!r} is not a network address: {exc}") from None


def _vpc_cidr(cidr: str) -> str:
    if not 16 <= _network(cidr).prefixlen <= 24:
        raise ValueError("must be between /16 and /24 (AWS's VPC limits, room for subnets)")
    return cidr


# A VPC's own range.
VpcCidr = Annotated[Cidr, AfterValidator(_vpc_cidr)]
DnsLabel = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
CertThumbprint = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")]

# SHA-1 thumbprint of the root CA of the EKS OIDC issuers (the value the AWS documentation and
# eksctl use). IAM no longer checks it for EKS issuers, but the API still requires one; the tls
# provider that would fetch it is not available here.
EKS_OIDC_THUMBPRINT = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"


class EksNodes(Strict):
    instance_types: list[Ec2InstanceType] = Field(default_factory=lambda: ["m5.large"], min_length=1)
    min_size: int = Field(default=1, ge=1, le=100)
    desired_size: int = Field(default=2, ge=1, le=100)
    max_size: int = Field(default=3, ge=1, le=100)
    disk_gb: int = Field(default=50, ge=20, le=1000)

    @model_validator(mode="after")
    def _sizes_ordered(self) -> EksNodes:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError("needs min_size <= desired_size <= max_size")
        return self


class Ci(Strict):
    """GitHub Actions reaching this environment by OIDC, never with stored keys: the bootstrap
    stack makes the account's OIDC provider and this environment's two CI roles."""

    # owner/name of the repository whose workflow (.github/workflows/mlops.yml) may assume them.
    github_repository: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")]
    # An account has one OIDC provider per issuer: where one exists already, name it here and the
    # bootstrap stack uses it instead of creating one (which would fail with EntityAlreadyExists).
    existing_oidc_provider_arn: Annotated[str, StringConstraints(
        pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/token\.actions\.githubusercontent\.com$"
    )] | None = None


class Eks(Strict):
    """Serving models from an EKS cluster as well as from SageMaker endpoints (off by default)."""

    enabled: bool = False
    kubernetes_version: KubernetesVersion = "1.33"
    # The API server always has a private endpoint in the VPC. A public one is opened only when
    # this is set, and only to the networks listed in public_access_cidrs.
    public_endpoint: bool = False
    public_access_cidrs: list[Cidr] = Field(default_factory=list)
    # Either existing private subnets (>= 2 availability zones), or a VPC created with one private
    # subnet per availability zone and VPC endpoints instead of internet access.
    subnet_ids: list[SubnetId] = Field(default_factory=list)
    vpc_cidr: VpcCidr = "10.40.0.0/16"
    availability_zones: list[AvailabilityZone] = Field(default_factory=list)
    nodes: EksNodes = EksNodes()
    serving_namespace: DnsLabel = "model-serving"
    serving_service_account: DnsLabel = "model-server"
    oidc_thumbprint: CertThumbprint = EKS_OIDC_THUMBPRINT

    @field_validator("public_access_cidrs")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            if _network(cidr).prefixlen == 0:
                raise ValueError("0.0.0.0/0 opens the API server to the internet; name your networks")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Eks:
        if self.public_endpoint and not self.public_access_cidrs:
            raise ValueError("public_endpoint needs public_access_cidrs (the networks allowed in)")
        if self.public_access_cidrs and not self.public_endpoint:
            raise ValueError("public_access_cidrs is set but public_endpoint is false")
        if self.subnet_ids and self.availability_zones:
            raise ValueError("give subnet_ids (existing subnets) or availability_zones (new VPC), not both")
        if self.enabled and len(self.subnet_ids or self.availability_zones) < 2:
            raise ValueError("EKS needs subnets in at least 2 availability zones "
                             "(subnet_ids or availability_zones)")
        if len(set(self.availability_zones)) != len(self.availability_zones):
            raise ValueError("availability_zones lists a zone twice")
        return self


class Studio(Strict):
    """A SageMaker Studio domain per environment: VPC only (no internet from the apps; AWS is
    reached through VPC endpoints) in a private network of its own, IAM authentication, storage
    encrypted with the platform key, one user profile per persona principal running as that
    persona's role. The local AWS has none (stacks/moto_gaps.py: `studio`)."""

    enabled: bool = True
    vpc_cidr: VpcCidr = "10.50.0.0/16"
    # One private subnet per zone; SageMaker recommends 2-4 IP addresses per user.
    availability_zones: list[AvailabilityZone] = Field(default_factory=list)

    @model_validator(mode="after")
    def _zones(self) -> Studio:
        if len(set(self.availability_zones)) != len(self.availability_zones):
            raise ValueError("availability_zones lists a zone twice")
        return self


class Promotion(Strict):
    """Where this environment's models come from: a package Approved in the `source` environment is
    copied into this one's registry by `mlops model promote` (artifact, image, lineage), and the
    deploy handler here serves only packages promoted from the source's group."""

    source: EnvironmentName
    # `mlops model promote` refuses a package whose shadow report (`mlops shadow report` in the
    # source environment) is missing or failed.
    require_shadow_report: bool = False


class Replication(Strict):
    """S3 cross-region replication of the environment's buckets (datasets, artifacts, capture,
    audit, access logs) into replica buckets in `region`, encrypted there with a replica key of
    that region: the replica stack (`replica-<env>`) holds them, the platform stack the replication
    rules and their role. Off where the data is reproducible or thrown away."""

    region: Region


class Environment(Strict):
    name: EnvironmentName
    # The embedded local AWS (a moto server on 127.0.0.1): local Terraform state, no CI roles, no
    # Studio, sub-minute alarm periods allowed.
    local: bool = False
    # Production rules: served packages must be promoted from `promotion.source` and approved by
    # the approver persona (the gate only reviews); the audit bucket locks in COMPLIANCE mode;
    # endpoints serve around the clock; drills need --yes-prod.
    production: bool = False
    account_id: AccountId
    region: Region
    prefix: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$")]
    tags: dict[TagKey, Annotated[str, StringConstraints(max_length=256)]] = Field(
        default_factory=dict
    )
    state: LocalState | S3State = Field(discriminator="kind")
    instance_types: InstanceTypes
    retention: Retention
    data_protection: DataProtection
    personas: Personas
    audit: Audit = Audit()
    eks: Eks = Eks()
    studio: Studio = Studio()
    budget: Budget | None = None
    ci: Ci | None = None
    promotion: Promotion | None = None
    replication: Replication | None = None
    # Lambda code signing: every function and layer deploys from a zip the environment's AWS Signer
    # profile signed, under an Enforce code-signing config that refuses anything else
    # (stacks/constructs/code_signing.py). The local AWS cannot sign (moto has no signing jobs, no
    # code-signing configs): local environments set it false (stacks/moto_gaps.py).
    lambda_code_signing: bool = True
    # AWS keeps a canceled Signer profile, and its name, for the signature validity plus six
    # months; `mlops destroy` cancels the environment's. The next deploy needs a new name: the
    # generation (2, 3, ...) becomes its suffix (stacks/naming.py, mlops/signing_profile.py).
    lambda_signing_profile_generation: Annotated[int, Field(ge=1, le=99)] = 1

    # Field validators (not a model validator) so an error names the field it is about.
    @field_validator("prefix")
    @classmethod
    def _names_carry_the_environment(cls, prefix: str, info: ValidationInfo) -> str:
        # Every resource name starts with the prefix, so the prefix must say which environment
        # a resource belongs to (and two environments in one account never collide).
        name = info.data.get("name")
        if name and name not in prefix.split("-"):
            raise ValueError(f"'{prefix}' must contain the environment name '{name}'")
        return prefix

    @field_validator("state")
    @classmethod
    def _state_fits_environment(cls, state: LocalState | S3State, info: ValidationInfo):
        local = info.data.get("local")
        if local and state.kind != "local":
            raise ValueError("a local environment keeps local state (kind: local)")
        if local is False and state.kind != "s3":
            raise ValueError("environments in AWS keep remote state (kind: s3); "
                             "set `local: true` for one on the local AWS")
        return state

    @field_validator("ci")
    @classmethod
    def _ci_reaches_aws_only(cls, ci: Ci | None, info: ValidationInfo) -> Ci | None:
        if ci is not None and info.data.get("local"):
            raise ValueError("a local environment has no CI roles (CI runs `make test` against it)")
        return ci

    @field_validator("audit")
    @classmethod
    def _prod_audit_is_compliance_locked(cls, audit: Audit, info: ValidationInfo) -> Audit:
        if info.data.get("production") and audit.object_lock_mode == "GOVERNANCE":
            raise ValueError("object_lock_mode: a production audit bucket locks in COMPLIANCE mode "
                             "(GOVERNANCE retention can be lifted)")
        return audit

    @property
    def audit_lock_mode(self) -> Literal["GOVERNANCE", "COMPLIANCE"]:
        return self.audit.object_lock_mode or ("COMPLIANCE" if self.production else "GOVERNANCE")

    @field_validator("eks", "studio")
    @classmethod
    def _zones_in_region(cls, settings: Eks | Studio, info: ValidationInfo) -> Eks | Studio:
        region = info.data.get("region")
        outside = [z for z in settings.availability_zones if region and z[:-1] != region]
        if outside:
            raise ValueError(f"availability_zones {outside} are not in the region {region}")
        return settings

    @field_validator("studio")
    @classmethod
    def _studio_has_subnets(cls, studio: Studio, info: ValidationInfo) -> Studio:
        if studio.enabled and info.data.get("local") is False and not studio.availability_zones:
            raise ValueError("availability_zones: a Studio domain needs private subnets in at least "
                             "one availability zone (or set enabled: false)")
        return studio

    @field_validator("promotion")
    @classmethod
    def _promoted_from_elsewhere(cls, promotion: Promotion | None, info: ValidationInfo) -> Promotion | None:
        if promotion is not None and promotion.source == info.data.get("name"):
            raise ValueError("source: an environment cannot promote from itself")
        return promotion

    @field_validator("replication")
    @classmethod
    def _replicated_elsewhere(cls, replication: Replication | None,
                              info: ValidationInfo) -> Replication | None:
        if replication is None:
            return None
        if info.data.get("local"):
            raise ValueError("a local environment has one region (the local AWS): no replication")
        if replication.region == info.data.get("region"):
            raise ValueError(f"region: the replica region must differ from the environment's "
                             f"({replication.region}): cross-region replication")
        return replication

    @field_validator("lambda_code_signing")
    @classmethod
    def _signing_needs_signer(cls, signing: bool, info: ValidationInfo) -> bool:
        if signing and info.data.get("local") and not moto_gaps.LOCAL.code_signing:
            raise ValueError("the local AWS cannot sign Lambda code (moto has no Signer signing "
                             "jobs and no Lambda code-signing configs): a local environment sets "
                             "lambda_code_signing: false")
        return signing

    @model_validator(mode="after")
    def _production_is_promoted(self) -> Environment:
        if self.production and self.promotion is None:
            raise ValueError("promotion: a production environment serves only promoted models; "
                             "name the environment they come from (promotion.source)")
        return self

    @property
    def is_local(self) -> bool:
        """True for the embedded local AWS (a moto server on 127.0.0.1)."""
        return self.local

    @property
    def state_region(self) -> str:
        if isinstance(self.state, S3State) and self.state.region:
            return self.state.region
        return self.region


class ConfigError(Exception):
    """A configuration file is wrong. `str()` is one line per problem: `file: field: reason`."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        # One line each, whatever a parser's message or a file's key holds.
        self.problems = [(_one_line(f), _one_line(field), _one_line(reason)) for f, field, reason in problems]
        super().__init__("\n".join(f"{f}: {field}: {reason}" for f, field, reason in self.problems))


def _one_line(text: object) -> str:
    return " ".join(str(text).split()) or repr(text)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys: PyYAML would silently keep the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def read_yaml(path: Path, display: str) -> dict[str, Any]:
    """Parse a YAML mapping, turning syntax errors into a ConfigError with line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([(display, "(file)", exc.strerror or str(exc))]) from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        reason = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise ConfigError([(display, where, f"invalid YAML: {reason}")]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([(display, "(file)", f"invalid YAML: {exc}")]) from exc
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise ConfigError([(display, "(top level)", f"must be a mapping of settings, got {kind}")])
    return data


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in ("local", "s3") and parts and parts[-1] == "state":
            continue  # pydantic names the union branch; the user only wrote `state:`
        else:
            # A key only a typo or a generator writes (blank, a newline, a dot) is shown quoted.
            name = str(item) if re.fullmatch(r"[\w-]+", str(item)) else json.dumps(str(item))
            parts.append(("." if parts else "") + name)
    return "".join(parts) or "(top level)"


def _reason(error: dict[str, Any]) -> str:
    msg = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown setting (not allowed here; check the spelling)"
    if error["type"] == "string_pattern_mismatch":
        return f"{error['input']!r} does not match {error['ctx']['pattern']}"
    if error["type"] == "missing":
        return "required setting is missing"
    return msg


def validation_problems(exc: ValidationError, display: str) -> list[tuple[str, str, str]]:
    return [(display, _field_path(e["loc"]), _reason(e)) for e in exc.errors()]


def load_environment(path: Path, root: Path | None = None) -> Environment:
    display = _display(path, root)
    data = read_yaml(path, display)
    try:
        env = Environment.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, display)) from exc
    if env.name != path.stem:
        raise ConfigError([(display, "name", f"'{env.name}' must match the file name '{path.stem}'")])
    return env


def load_environments(root: Path, names: list[str] | None = None) -> dict[str, Environment]:
    """Load and validate environments/<name>.yaml for each name (all known ones by default).

    Every file is checked before any error is raised, so one run reports every broken file."""
    env_dir = root / "environments"
    known = environment_names(root)
    wanted = names or known
    problems: list[tuple[str, str, str]] = []
    loaded: dict[str, Environment] = {}
    for name in wanted:
        path = env_dir / f"{name}.yaml"
        if name not in known:
            problems.append((_display(path, root), "(file)",
                             f"no such environment; known: {', '.join(known) or 'none'}"))
            continue
        try:
            loaded[name] = load_environment(path, root)
        except ConfigError as exc:
            problems.extend(exc.problems)
    for env in loaded.values():
        problems.extend(_promotion_problems(root, env, known))
    problems.extend(_prefix_problems(root, list(loaded.values())))
    if not loaded and not problems:
        problems.append((_display(env_dir, root), "(directory)", "no environment files found"))
    if problems:
        raise ConfigError(problems)
    return loaded


def environment_names(root: Path) -> list[str]:
    """The environments of a checkout (environments/*.yaml), the shipped ones in their order first."""
    stems = [p.stem for p in (root / "environments").glob("*.yaml")]
    order = {name: i for i, name in enumerate(ENVIRONMENT_NAMES)}
    return sorted(stems, key=lambda n: (order.get(n, len(order)), n))


def _prefix_problems(root: Path, envs: list[Environment]) -> list[tuple[str, str, str]]:
    """Policies scope an environment by `<prefix>-*` (buckets, roles, functions, its permissions
    boundary's deny of other accounts' buckets), so no prefix may be another's plus a suffix, nor
    equal to it: one environment's grants and denies would reach the other's resources."""
    problems = []
    for env in envs:
        for other in envs:
            if other is env:
                continue
            if env.prefix == other.prefix or env.prefix.startswith(f"{other.prefix}-"):
                display = _display(root / "environments" / f"{env.name}.yaml", root)
                problems.append((display, "prefix", f"'{env.prefix}' falls under '{other.prefix}-*', the "
                                 f"names of environment {other.name}: its policies would reach this "
                                 "environment's resources; choose a prefix that does not start with it"))
    return problems


def _promotion_problems(root: Path, env: Environment, known: list[str]) -> list[tuple[str, str, str]]:
    """A promotion source must exist and live on the same side (local AWS or AWS)."""
    if env.promotion is None:
        return []
    display = _display(root / "environments" / f"{env.name}.yaml", root)
    source = env.promotion.source
    if source not in known:
        return [(display, "promotion.source", f"no environment '{source}'; known: {', '.join(known)}")]
    try:
        origin = load_environment(root / "environments" / f"{source}.yaml", root)
    except ConfigError:
        return []  # its own problems are reported with its file
    if origin.local != env.local:
        side = "the local AWS" if env.local else "AWS"
        return [(display, "promotion.source", f"'{source}' is not on {side} as this environment is")]
    if origin.production:
        return [(display, "promotion.source", f"'{source}' is a production environment itself")]
    return []


def _display(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)

