"""`mlops project new NAME --team T`: a new ML project file with secure defaults.

The file is written only after it validates exactly as synth will read it, so the next `mlops
synth` / `mlops deploy ENV` provisions the project in every environment it lists. It starts on the
sample dataset and its schema so it deploys and trains at once; the team then points
`dataset.source` and `dataset.schema_file` at its own data.
"""

from __future__ import annotations

import re
from pathlib import Path

from stacks.config import ConfigError
from stacks.project_config import PROJECT_NAME_PATTERN, PROJECTS_DIR, load_project_all

TEAM_PATTERN = r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$"

TEMPLATE = """\
# {name}: created by `mlops project new {name} --team {team}`. Validated like every project file
# (stacks/project_config.py); `mlops deploy ENV` provisions it in each environment below.
name: {name}
team: {team}
description: >-
  {description}
task: classification
environments: [{environments}]

# Starts on the sample dataset so the pipeline runs at once: point these at the team's own data
# (an s3:// CSV) and its schema (see pipelines/schemas/breast_cancer.json for the format).
dataset:
  source: "sklearn:breast_cancer"
  target: malignant
  schema_file: pipelines/schemas/breast_cancer.json

training:
  algorithm: gradient_boosting
  hyperparameters: {{n_estimators: 100, max_depth: 3, learning_rate: 0.1}}
  seed: 42
  split: {{train: 0.70, validation: 0.15, test: 0.15}}

# A model below these is never registered; the gate handler also refuses regressions against
# the model in production.
gate:
  thresholds: {{accuracy: 0.90, f1: 0.88, roc_auc: 0.95}}
  max_regression: 0.01
  max_latency_p95_ms: 100

serving:
  initial_instance_count: 1
  capture_sampling_percent: 100   # every request and response is kept for drift and audits
  autoscaling: {{min_instances: 1, max_instances: 2, target_invocations_per_instance: 100}}
  deployment: {{strategy: canary, step_percent: 10, wait_seconds: 300}}

# The practice guides' defaults: 5% errors, 2x baseline p95 latency, 10% accuracy drop, PSI 0.2.
alarms: {{error_rate_percent: 5, latency_multiplier: 2.0, accuracy_drop_percent: 10,
         utilization_percent: 80}}
drift: {{schedule: rate(1 hour), psi_threshold: 0.2, p_value: 0.05}}
retrain: {{cooldown_minutes: 360}}
"""


class ProjectNewError(ValueError):
    """The name or team cannot be used (the message says why)."""


def new_project(root: Path, name: str, team: str, environments: list[str],
                description: str | None = None) -> Path:
    if not re.fullmatch(PROJECT_NAME_PATTERN, name):
        raise ProjectNewError(
            f"project name {name!r} is invalid: 3-16 characters, lowercase letters, digits and '-', "
            "starting with a letter (it becomes part of every resource name)"
        )
    if not re.fullmatch(TEAM_PATTERN, team):
        raise ProjectNewError(f"team {team!r} is invalid: lowercase letters, digits and '-'")
    folder = root / PROJECTS_DIR
    path = folder / f"{name}.yaml"
    if path.exists():
        raise ProjectNewError(f"project {name!r} is taken: {PROJECTS_DIR / path.name} exists")
    if not environments:
        raise ProjectNewError("no environments to provision the project in")
    text = TEMPLATE.format(
        name=name, team=team, environments=", ".join(environments),
        description=description or f"{name}: owned by {team}. Describe the intended use here.",
    )
    folder.mkdir(parents=True, exist_ok=True)
    # Validate before the file appears: a template that does not validate is our bug, and must
    # not leave a broken file that would stop every later synth.
    staging = folder / f".{name}.yaml.new"
    staging.write_text(text)
    try:
        load_project_all(staging.rename(path), root)
    except ConfigError:
        path.unlink()
        raise
    return path
