"""ML project configuration: environments/projects/<name>.yaml, validated like the environments.

A project file says what one ML team's model needs in every environment it runs in: the dataset
and its schema, how to train it, the quality gate, how to serve it and when to raise alarms.
Per-environment differences go under `overrides.<env>` and are merged over the base before
validation, so an override is checked exactly like the base settings.

Defaults follow the practice guides (AWS SageMaker deployment guardrails, Google's "rules of ML"
monitoring advice): 5% error rate, 2x baseline p95 latency, 10% accuracy drop, PSI 0.2.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationError, field_validator, model_validator

from stacks.config import (
    ENVIRONMENT_NAMES,
    ConfigError,
    EnvironmentName,
    SageMakerInstanceType,
    Strict,
    _display,
    environment_names,
    load_environment,
    read_yaml,
    validation_problems,
)

PROJECTS_DIR = Path("environments") / "projects"

# Short: the name goes into every resource name after the environment prefix, and SageMaker
# endpoint/model names are limited to 63 characters.
PROJECT_NAME_PATTERN = r"^[a-z][a-z0-9-]{1,14}[a-z0-9]$"
ProjectName = Annotated[str, StringConstraints(pattern=PROJECT_NAME_PATTERN)]
TeamName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")]
ColumnName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
HyperValue = int | float | str | bool

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION_METRICS = ("mae", "rmse", "r2", "mape")
# Metrics where lower is better: a gate threshold on them is a maximum, not a minimum.
LOWER_IS_BETTER = ("mae", "rmse", "mape")
# SageMaker's endpoint metrics (AWS/SageMaker) are one-minute metrics.
SAGEMAKER_METRIC_PERIOD = 60


class Dataset(Strict):
    # The sample dataset shipped with scikit-learn (no download), or an S3 URI of a CSV.
    source: Literal["sklearn:breast_cancer"] | Annotated[str, StringConstraints(pattern=r"^s3://.+\.csv$")]
    target: ColumnName
    # JSON schema for the validate step, relative to the repository root.
    schema_file: Annotated[str, StringConstraints(pattern=r"^[\w./-]+\.json$")]


class Split(Strict):
    train: Fraction = 0.70
    validation: Fraction = 0.15
    test: Fraction = 0.15

    @model_validator(mode="after")
    def _sums_to_one(self) -> Split:
        if abs(self.train + self.validation + self.test - 1.0) > 1e-9:
            raise ValueError("train + validation + test must add up to 1.0")
        return self


class Training(Strict):
    algorithm: Literal["gradient_boosting", "random_forest", "logistic_regression"]
    hyperparameters: dict[ColumnName, HyperValue] = Field(default_factory=dict)
    seed: int = Field(default=42, ge=0, le=2**31 - 1)
    split: Split = Split()
    instance_type: SageMakerInstanceType | None = None  # default: the environment's


class Fairness(Strict):
    """Groups for per-group metrics: a categorical column's values, or a numeric column split at
    `threshold` (`<= threshold` vs `> threshold`)."""

    attribute: ColumnName
    threshold: float | None = None
    metric: Literal["recall", "precision", "accuracy", "f1"] = "recall"
    max_gap: Fraction = 0.10


class Gate(Strict):
    """What a model must reach to be registered (pipeline condition) and approved (gate handler)."""

    # metric -> threshold: a minimum, or a maximum for lower-is-better metrics (mae, rmse, mape).
    thresholds: dict[str, float] = Field(min_length=1)
    # Largest allowed drop against the model in production, in the metric's own units.
    max_regression: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    max_latency_p95_ms: Annotated[float, Field(gt=0)] = 100.0


# Application Auto Scaling's cron: cron(minutes hours day-of-month month day-of-week year).
ScalingCron = Annotated[str, StringConstraints(pattern=r"^cron\(\S+( \S+){5}\)$")]
TimeZone = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$")]


class OffHours(Strict):
    """Outside working hours a non-prod endpoint keeps only its minimum instance count (its
    maximum lowered to it, so no scale-out runs up a bill at night); at `scale_up` the maximum
    comes back. SageMaker real-time endpoints cannot go to zero: the minimum is >= 1."""

    scale_down: ScalingCron = "cron(0 19 ? * MON-FRI *)"
    scale_up: ScalingCron = "cron(0 7 ? * MON-FRI *)"
    timezone: TimeZone = "UTC"


class Autoscaling(Strict):
    min_instances: Annotated[int, Field(ge=1, le=100)] = 1
    max_instances: Annotated[int, Field(ge=1, le=100)] = 2
    target_invocations_per_instance: Annotated[int, Field(ge=1)] = 100
    scale_in_cooldown_seconds: Annotated[int, Field(ge=0, le=3600)] = 300
    scale_out_cooldown_seconds: Annotated[int, Field(ge=0, le=3600)] = 60
    off_hours: OffHours | None = None

    @model_validator(mode="after")
    def _min_le_max(self) -> Autoscaling:
        if self.min_instances > self.max_instances:
            raise ValueError("min_instances must not exceed max_instances")
        return self


class Deployment(Strict):
    """Blue/green traffic shifting with automatic rollback on the endpoint's critical alarms."""

    strategy: Literal["canary", "linear"] = "canary"
    # canary: this share goes to the new fleet first; linear: the share moved at each step.
    step_percent: Annotated[int, Field(ge=1, le=50)] = 10
    wait_seconds: Annotated[int, Field(ge=0, le=3600)] = 300
    termination_wait_seconds: Annotated[int, Field(ge=0, le=3600)] = 120
    max_execution_timeout_seconds: Annotated[int, Field(ge=600, le=14400)] = 3600


class Serving(Strict):
    instance_type: SageMakerInstanceType | None = None  # default: the environment's
    initial_instance_count: Annotated[int, Field(ge=1, le=100)] = 1
    capture_sampling_percent: Annotated[int, Field(ge=1, le=100)] = 100
    autoscaling: Autoscaling = Autoscaling()
    deployment: Deployment = Deployment()
    # Mirror a share of live traffic to a candidate variant whose responses are discarded.
    shadow: bool = False
    shadow_sampling_percent: Annotated[int, Field(ge=1, le=100)] = 20
    # What `mlops shadow report` must show for a shadow to pass (and `mlops model promote` to
    # take it): the share of requests on which it agrees with production (the same class at the
    # decision threshold; regression: within shadow_tolerance), at most this p95 latency ratio
    # to production's, over at least shadow_min_rows joined requests.
    shadow_min_agreement: Fraction = 0.95
    shadow_max_p95_ratio: Annotated[float, Field(gt=0)] = 1.5
    shadow_min_rows: Annotated[int, Field(ge=1)] = 100
    shadow_tolerance: Annotated[float, Field(ge=0)] = 0.01
    # Serve from EKS as well (the environment must enable EKS).
    eks: bool = False

    @model_validator(mode="after")
    def _initial_count_within_autoscaling(self) -> Serving:
        scaling = self.autoscaling
        if not scaling.min_instances <= self.initial_instance_count <= scaling.max_instances:
            raise ValueError(
                f"initial_instance_count {self.initial_instance_count} must lie within autoscaling "
                f"min_instances..max_instances ({scaling.min_instances}..{scaling.max_instances})"
            )
        return self


class Alarms(Strict):
    error_rate_percent: Annotated[float, Field(gt=0, le=100)] = 5.0
    latency_multiplier: Annotated[float, Field(gt=1.0, le=100.0)] = 2.0
    # The p95 latency baseline until the known-good model's is measured over its bake.
    baseline_latency_ms: Annotated[float, Field(gt=0)] = 50.0
    # A bake's p95 is a baseline only when it rests on at least this many invocations.
    baseline_min_invocations: Annotated[int, Field(ge=1)] = 100
    # The latency alarm judges a period's p95 only when it rests on at least this many invocations,
    # and a thinner period's median (from 5 requests on): under 20 the nearest-rank p95 is the
    # slowest request, and a container's first, cold answers alone would page. CloudWatch's own
    # rule for a significant p95 is 200 (EvaluateLowSampleCountPercentile).
    latency_min_invocations: Annotated[int, Field(ge=1)] = 20
    # A measured baseline below this counts as this: under a few milliseconds a p95 measures the
    # scheduler more than the model, and twice 2 ms is not a regression worth a page.
    baseline_floor_ms: Annotated[float, Field(gt=0)] = 5.0
    accuracy_drop_percent: Annotated[float, Field(gt=0, le=100)] = 10.0
    utilization_percent: Annotated[float, Field(gt=0, le=100)] = 80.0
    evaluation_periods: Annotated[int, Field(ge=1, le=60)] = 3
    # The endpoint alarms' metric period. SageMaker publishes endpoint metrics per minute, so 60
    # is the floor in AWS; 10 and 30 (CloudWatch's high-resolution alarm periods) are for the
    # local environment only, whose endpoint runtime publishes a datapoint per request
    # (load_project_all refuses them elsewhere).
    period_seconds: Literal[10, 30, 60, 300, 900, 3600] = 60


class DriftBatch(Strict):
    """The drift check as a sharded SageMaker Processing job (lambdas/shared/drift/batch.py), for
    windows the drift Lambda cannot read in 15 minutes and 10 GB (roughly beyond 10-20 million
    captured rows): a pipeline `<prefix>-<project>-drift` on the drift schedule, in place of the
    Lambda's schedule. Off: the Lambda checks every window."""

    enabled: bool = False
    # Instances of the counting step; capture files are spread over them (ShardedByS3Key) and
    # their counts merged exactly. More instances than files leaves some idle.
    instance_count: Annotated[int, Field(ge=1, le=100)] = 1
    instance_type: SageMakerInstanceType | None = None  # default: the environment's processing instance type


class Drift(Strict):
    schedule: Annotated[str, StringConstraints(pattern=r"^(rate|cron)\(.+\)$")] = "rate(1 hour)"
    psi_threshold: Annotated[float, Field(gt=0)] = 0.2
    p_value: Annotated[float, Field(gt=0, lt=1)] = 0.05
    # The drift alarm fires when this share of features drifts at once.
    critical_feature_share: Fraction = 0.3
    # Fewer captured rows in a window: its counts are published, no drift verdict. PSI on decile
    # bins has a sampling floor of about 9 / rows: at 100 rows a healthy window's largest PSI
    # passes 0.2 half of the time, at 200 in under 1% (benchmarks/drift_false_alarms.py).
    min_rows: Annotated[int, Field(ge=1)] = 200
    # SageMaker buffers data capture and writes its files minutes after the requests: each window
    # is checked this long after it ends.
    capture_lag_minutes: Annotated[int, Field(ge=0, le=1440)] = 10
    batch: DriftBatch = DriftBatch()

    @property
    def window_minutes(self) -> int:
        """The capture window each check covers (the drift function's WINDOW_MINUTES)."""
        return schedule_minutes(self.schedule)


def schedule_minutes(schedule: str) -> int:
    """The time between two runs of a schedule: N units for rate(N unit); 60 for cron(...), whose
    interval is not one number."""
    m = re.fullmatch(r"rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)", schedule.strip())
    if not m:
        return 60
    per_unit = {"minute": 1, "hour": 60, "day": 1440}
    return int(m.group(1)) * per_unit[m.group(2).rstrip("s")]


class Quality(Strict):
    """The scheduled model-quality check: captured predictions joined with ground-truth labels."""

    schedule: Annotated[str, StringConstraints(pattern=r"^(rate|cron)\(.+\)$")] = "rate(1 hour)"
    # How long after a window its labels (and SageMaker's buffered capture files) are waited for.
    label_lag_minutes: Annotated[int, Field(ge=0, le=10080)] = 60
    # Fewer labelled predictions in a window: counts only, no metrics, no accuracy drop.
    min_labelled_rows: Annotated[int, Field(ge=1)] = 50

    @property
    def window_minutes(self) -> int:
        return schedule_minutes(self.schedule)


class Explainability(Strict):
    """The scheduled feature-attribution check (pipelines/steps/explainability.py): the served
    model's SHAP values on captured traffic against those on its validation split, by nDCG."""

    schedule: Annotated[str, StringConstraints(pattern=r"^(rate|cron)\(.+\)$")] = "rate(1 hour)"
    capture_lag_minutes: Annotated[int, Field(ge=0, le=1440)] = 10
    # The global ranking of a healthy window of 100 rows keeps an nDCG above 0.98 against the
    # reference (tests/unit/test_attribution.py prints the rate): fewer rows, no verdict.
    min_rows: Annotated[int, Field(ge=1)] = 100
    # A uniform, seeded sample of larger windows: the cost is rows x orders x (features + 1) scores.
    max_rows: Annotated[int, Field(ge=1, le=10000)] = 500
    # Clarify's feature-attribution drift monitor alarms below 0.90.
    ndcg_threshold: Annotated[float, Field(gt=0, le=1)] = 0.9

    @model_validator(mode="after")
    def _rows_fit(self) -> Explainability:
        if self.min_rows > self.max_rows:
            raise ValueError(f"min_rows ({self.min_rows}) is above max_rows ({self.max_rows}): no window "
                             "could ever be judged")
        return self

    @property
    def window_minutes(self) -> int:
        return schedule_minutes(self.schedule)


class Retrain(Strict):
    cooldown_minutes: Annotated[int, Field(ge=0, le=10080)] = 360


class ProjectSettings(Strict):
    """Everything that may differ per environment (base settings and `overrides.<env>`)."""

    dataset: Dataset
    training: Training
    gate: Gate
    fairness: Fairness | None = None
    serving: Serving = Serving()
    alarms: Alarms = Alarms()
    drift: Drift = Drift()
    quality: Quality = Quality()
    explainability: Explainability = Explainability()
    retrain: Retrain = Retrain()


class ProjectConfig(ProjectSettings):
    name: ProjectName
    team: TeamName
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    task: Literal["classification", "regression"]
    environments: list[EnvironmentName] = Field(min_length=1)

    @field_validator("environments")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists an environment twice")
        return value

    @model_validator(mode="after")
    def _gate_metrics_fit_task(self) -> ProjectConfig:
        known = CLASSIFICATION_METRICS if self.task == "classification" else REGRESSION_METRICS
        unknown = sorted(set(self.gate.thresholds) - set(known))
        if unknown:
            raise ValueError(
                f"gate.thresholds: {unknown} are not {self.task} metrics; use {list(known)}"
            )
        if self.fairness and self.task != "classification":
            raise ValueError("fairness: per-group metrics are defined for classification only")
        return self

    def metric_is_minimum(self, metric: str) -> bool:
        return metric not in LOWER_IS_BETTER


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_project(path: Path, env_name: str, root: Path | None = None) -> ProjectConfig:
    """The project as it runs in `env_name`: base settings with `overrides.<env_name>` merged in."""
    return load_project_all(path, root)[env_name]


def load_project_all(path: Path, root: Path | None = None) -> dict[str, ProjectConfig]:
    """The project for each environment it lists, every one validated (errors name the file)."""
    display = _display(path, root)
    data = read_yaml(path, display)
    overrides = data.pop("overrides", None) or {}
    # A project file read outside a checkout (no environments/ beside it) is checked against the
    # shipped environments.
    in_checkout = root is not None and (root / "environments").is_dir()
    known = environment_names(root) if in_checkout else list(ENVIRONMENT_NAMES)
    problems: list[tuple[str, str, str]] = []
    if not isinstance(overrides, dict):
        raise ConfigError([(display, "overrides", "must be a mapping of environment -> settings")])
    for env_name, override in overrides.items():
        if env_name not in known:
            problems.append(
                (display, f"overrides.{env_name}", f"no such environment; known: {', '.join(known)}")
            )
        elif override is not None and not isinstance(override, dict):
            problems.append((display, f"overrides.{env_name}",
                             f"must be a mapping of settings, got {type(override).__name__}"))
    try:
        base = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems + validation_problems(exc, display)) from exc
    if base.name != path.stem:
        problems.append((display, "name", f"'{base.name}' must match the file name '{path.stem}'"))
    for env_name in base.environments:
        if env_name not in known:
            problems.append((display, "environments",
                             f"no environment '{env_name}'; known: {', '.join(known)}"))
    projects: dict[str, ProjectConfig] = {}
    for env_name in base.environments:
        override = overrides.get(env_name) or {}
        if not isinstance(override, dict):
            continue  # named above
        for key in ("name", "team", "task", "environments"):
            if key in override:
                problems.append((display, f"overrides.{env_name}.{key}", "cannot differ per environment"))
        try:
            projects[env_name] = ProjectConfig.model_validate(_merge(data, override))
        except ValidationError as exc:
            for file, field, reason in validation_problems(exc, display):
                problems.append((file, f"overrides.{env_name} -> {field}", reason))
            continue
        production, local = _kind(root, env_name)
        if production and projects[env_name].serving.autoscaling.off_hours is not None:
            problems.append((display, "serving.autoscaling.off_hours",
                             "prod endpoints serve around the clock: off-hours scaling is for the "
                             "other environments (set it under overrides.<env>)"))
        period = projects[env_name].alarms.period_seconds
        if period < SAGEMAKER_METRIC_PERIOD and not local:
            alarms = override.get("alarms")
            overridden = isinstance(alarms, dict) and "period_seconds" in alarms
            where = f"overrides.{env_name}.alarms.period_seconds" if overridden else "alarms.period_seconds"
            problems.append((display, where, f"{period} s is below the {SAGEMAKER_METRIC_PERIOD} s at which "
                             f"SageMaker publishes endpoint metrics in {env_name}: sub-minute periods are "
                             "for the local environment only"))
    if problems:
        raise ConfigError(problems)
    return projects


def _kind(root: Path | None, env_name: str) -> tuple[bool, bool]:
    """(production, local) as the environment's file says; a broken or missing file's problems
    are reported with that file, and the project is judged as an AWS non-production one."""
    path = root / "environments" / f"{env_name}.yaml" if root is not None else None
    if path is None or not path.is_file():  # outside a checkout: the shipped environments
        return env_name == "prod", env_name == "local"
    try:
        env = load_environment(path, root)
    except ConfigError:
        return False, False
    return env.production, env.local


def load_projects(root: Path) -> dict[str, dict[str, ProjectConfig]]:
    """Every project file under environments/projects: name -> environment -> ProjectConfig."""
    folder = root / PROJECTS_DIR
    problems: list[tuple[str, str, str]] = []
    loaded: dict[str, dict[str, ProjectConfig]] = {}
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            loaded[path.stem] = load_project_all(path, root)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    _check_eks_serving(root, loaded)
    return loaded


def _check_eks_serving(root: Path, loaded: dict[str, dict[str, ProjectConfig]]) -> None:
    """A project serving from EKS where the environment has no cluster: refused here, before any
    synth, naming the project file and field (the environment files are read only when a project
    asks for EKS at all)."""
    asking = [(name, env_name) for name, per_env in loaded.items() for env_name, config in per_env.items()
              if config.serving.eks]
    if not asking:
        return
    from stacks.config import load_environments

    envs = load_environments(root, sorted({env_name for _, env_name in asking}))
    problems = []
    for name, env_name in asking:
        if not envs[env_name].eks.enabled:
            path = root / PROJECTS_DIR / f"{name}.yaml"
            raw = read_yaml(path, _display(path, root))
            override = ((raw.get("overrides") or {}).get(env_name) or {}).get("serving") or {}
            where = f"overrides.{env_name}.serving.eks" if "eks" in override else "serving.eks"
            problems.append((_display(path, root), where,
                             f"EKS serving in {env_name}, whose cluster is off "
                             f"(environments/{env_name}.yaml: eks.enabled is false): enable it there "
                             f"or turn serving.eks off under overrides.{env_name}"))
    if problems:
        raise ConfigError(problems)
