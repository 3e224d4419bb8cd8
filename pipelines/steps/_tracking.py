"""MLflow experiment tracking for the evaluate step: one run per evaluation.

Imported only when MLFLOW_TRACKING_URI is set (mlflow takes seconds to import). Environment:
  MLFLOW_EXPERIMENT_NAME    the experiment (default: the project name)
  MLFLOW_ARTIFACT_LOCATION  where a newly created experiment keeps its artifacts
  MLOPS_RUN_ID              the pipeline run id: the run's name and a tag
  MLOPS_GIT_COMMIT          the code's commit: a tag
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import cloudpickle  # installed with mlflow, which serializes the logged model with it
import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import sklearn
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError
from inference import LoadedModel, predict_scores
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from requests.exceptions import RequestException


class TrackingError(Exception):
    pass


# What a tracking server, its auth plugin (sagemaker-mlflow signs each request with the role's
# credentials) or the artifact store can fail with: the step fails with the reason, not a traceback.
TRACKING_FAILURES: tuple[type[BaseException], ...] = (
    MlflowException, OSError, BotoCoreError, ClientError, S3UploadFailedError, RequestException)


def experiment_id(name: str) -> str:
    """The experiment's id, created (with MLFLOW_ARTIFACT_LOCATION) when it does not exist yet.

    An existing experiment of that name that keeps its artifacts elsewhere (one an earlier run
    created at the tracking server's root, where the project's role may not write) or that was
    deleted (MLflow's delete is soft: the name stays taken) is renamed `<name>-legacy-<id>`, runs
    and all, and a new one takes the name: the run's artifacts then go where the role may write,
    instead of failing half-way through the run."""
    location = os.environ.get("MLFLOW_ARTIFACT_LOCATION") or None
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        moved = location and existing.artifact_location.rstrip("/") != location.rstrip("/")
        if not moved and existing.lifecycle_stage != "deleted":
            return existing.experiment_id
        legacy = f"{name}-legacy-{existing.experiment_id}"
        MlflowClient().rename_experiment(existing.experiment_id, legacy)
        print(f"experiment {name!r} ({existing.lifecycle_stage}, artifacts at {existing.artifact_location}) "
              f"renamed {legacy!r}; a new one keeps its artifacts at {location}", file=sys.stderr)
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except MlflowException:
        # Another run may have created it in between; if not, the original error stands.
        existing = mlflow.get_experiment_by_name(name)
        if existing is None:
            raise
        return existing.experiment_id


def params(evaluation: dict[str, Any], lineage: dict[str, Any]) -> dict[str, Any]:
    model = evaluation["model"]
    return {
        **model["hyperparameters"],
        "algorithm": model["algorithm"],
        "seed": model["seed"],
        "dataset_sha256": lineage.get("sha256"),
        "data_uri": lineage.get("data_uri"),
    }


def metrics(evaluation: dict[str, Any]) -> dict[str, float]:
    """The flat metrics as evaluation.json has them, plus latency and the fairness gap."""
    values = dict(evaluation["metrics"])
    latency = evaluation["latency_ms"]
    if latency["p50"] is not None:
        values.update(latency_p50_ms=latency["p50"], latency_p95_ms=latency["p95"])
    if evaluation.get("fairness"):
        values["fairness_gap"] = evaluation["fairness"]["gap"]
    return values


def tags(project: dict[str, Any]) -> dict[str, str]:
    found = {
        "project": project["name"],
        "git_commit": os.environ.get("MLOPS_GIT_COMMIT"),
        "mlflow.source.git.commit": os.environ.get("MLOPS_GIT_COMMIT"),  # shown by the MLflow UI
        "pipeline_run_id": os.environ.get("MLOPS_RUN_ID"),
    }
    return {key: value for key, value in found.items() if value}


def log_model(model: LoadedModel, sample: pd.DataFrame) -> None:
    scores = predict_scores(model.estimator, sample, model.meta["task"])
    mlflow.sklearn.log_model(
        model.estimator,
        name="model",
        signature=infer_signature(sample, np.asarray(scores)),
        # Pickle-based like model.joblib. MLflow's default, skops, would need the model's own tree
        # types allow-listed in the MLmodel file, and MLflow gates loading every format behind
        # MLFLOW_ALLOW_PICKLE_DESERIALIZATION anyway; skops also doubles the save time.
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        # Pinned explicitly: inferring requirements starts a subprocess that imports the model.
        pip_requirements=[
            f"scikit-learn=={sklearn.__version__}",
            f"pandas=={pd.__version__}",
            f"numpy=={np.__version__}",
            f"cloudpickle=={cloudpickle.__version__}",
        ],
    )


def log_run(
    uri: str,
    project: dict[str, Any],
    evaluation: dict[str, Any],
    model: LoadedModel,
    lineage: dict[str, Any],
    artifacts: list[Path],
    sample: pd.DataFrame,
) -> dict[str, Any]:
    """Log the run; returns tracking.json's content."""
    try:
        mlflow.set_tracking_uri(uri)
        experiment = experiment_id(os.environ.get("MLFLOW_EXPERIMENT_NAME") or project["name"])
        with mlflow.start_run(
            experiment_id=experiment, run_name=os.environ.get("MLOPS_RUN_ID") or None, tags=tags(project)
        ) as run:
            mlflow.log_params({k: v for k, v in params(evaluation, lineage).items() if v is not None})
            mlflow.log_metrics(metrics(evaluation))
            log_model(model, sample)
            for path in artifacts:
                mlflow.log_artifact(str(path))
    except TRACKING_FAILURES as exc:
        raise TrackingError(one_line(exc)) from exc
    return {"mlflow_run_id": run.info.run_id, "experiment_id": experiment, "tracking_uri": uri}


def one_line(exc: BaseException) -> str:
    """What went wrong, in one line (MLflow's REST errors carry the server's whole reply)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:400]}{'...' if len(text) > 400 else ''}"
