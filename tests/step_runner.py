"""Run the pipeline's step scripts as SageMaker runs them (`python3 <step>.py ARGS` in a fresh
process, the job's settings in SM_* variables), and train the demo model the same way for the
tests that need a real model artifact (the model server, the local endpoints)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ROOT / "pipelines" / "steps"
# The hyperparameters as SageMaker hands them to a training job: every value a string.
SM_HPS = {
    "algorithm": "gradient_boosting",
    "seed": "42",
    "n_estimators": "150",
    "max_depth": "3",
    "learning_rate": "0.1",
    "subsample": "0.9",
    "sagemaker_program": "train.py",
    "sagemaker_submit_directory": "s3://bucket/code.tar.gz",
}


def step_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any SageMaker/MLflow/pipeline setting that could leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "MLFLOW_", "MLOPS_", "AWS_"))}
    env.update(SM_OUTPUT_DIR=str(tmp / "sm-output"), MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    env.update(extra)
    return env


def run_step(
    step: str, *args: str, env: dict[str, str], python_flags: tuple[str, ...] = (), **options: str | Path
) -> subprocess.CompletedProcess:
    """`python3 <step>.py ARGS --option value ...` (option names: data_uri -> --data-uri)."""
    for name, value in options.items():
        args += (f"--{name.replace('_', '-')}", str(value))
    command = [sys.executable, *python_flags, str(STEPS / f"{step}.py"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, check=False)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-3000:]}"
    return result


@dataclass(frozen=True)
class TrainedModel:
    archive: Path  # model.tar.gz, as the training job uploads it
    test_csv: Path  # the held-out split, with a header and the target column
    features: list[str]

    def extract(self, into: Path) -> Path:
        """The archive extracted as SageMaker does for an endpoint (to /opt/ml/model)."""
        into.mkdir(parents=True, exist_ok=True)
        with tarfile.open(self.archive) as tar:
            tar.extractall(into, filter="data")
        return into


def train_demo_model(root: Path) -> TrainedModel:
    """preprocess -> train of the demo project on the shipped dataset (~5 s)."""
    from pipelines.dataset import write_csv
    from stacks.project_config import load_project

    data, config, splits, model = root / "data", root / "config", root / "splits", root / "model"
    write_csv(data / "breast_cancer.csv")
    config.mkdir(parents=True)
    project = load_project(ROOT / "environments" / "projects" / "demo.yaml", "local", ROOT)
    (config / "project.json").write_text(json.dumps(project.model_dump(mode="json")))
    env = step_env(root)
    ok(run_step("preprocess", data=data, config=config, data_uri=data / "breast_cancer.csv",
                output=splits, env=env))
    ok(run_step("train", env=step_env(
        root, SM_CHANNEL_TRAIN=str(splits / "train"), SM_CHANNEL_VALIDATION=str(splits / "validation"),
        SM_CHANNEL_CONFIG=str(config), SM_MODEL_DIR=str(model), SM_OUTPUT_DATA_DIR=str(root / "output"),
        SM_HPS=json.dumps(SM_HPS))))
    archive = root / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(model)), recursive=False)
    features = json.loads((model / "model_meta.json").read_text())["features"]
    return TrainedModel(archive, splits / "test" / "test.csv", features)
