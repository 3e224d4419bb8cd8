"""Train step: the SageMaker training job's entry point (sagemaker_program = train.py).

    python3 train.py [--key value ...]   (hyperparameters as arguments are ignored: SM_HPS rules)

Reads the training environment SageMaker sets up (defaults are the container paths):
  SM_CHANNEL_TRAIN, SM_CHANNEL_VALIDATION, SM_CHANNEL_CONFIG   /opt/ml/input/data/<channel>
  SM_MODEL_DIR        /opt/ml/model              the model artifact (tarred to model.tar.gz)
  SM_OUTPUT_DATA_DIR  /opt/ml/output/data        training_summary.json
  SM_HPS              JSON hyperparameters; else SM_INPUT_CONFIG_DIR/hyperparameters.json
                      (/opt/ml/input/config); else the project config's training block
Hyperparameters are `algorithm`, `seed` and the estimator's own parameters. Writes model.joblib,
model_meta.json, reference_stats.json (the drift reference: the features of the train split, the
predictions on the validation split, which the model never saw, as served traffic is),
explainability_reference.json (the model's global SHAP values on the validation split against
the train split's medians, in Clarify's analysis.json layout: what the explainability check
compares served traffic's attributions with, see attribution.py) and code/inference.py (the
serving entry point) into the model directory.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from _common import (
    StepFailure,
    argument_parser,
    ensure_dir,
    log,
    read_csv,
    read_json,
    read_project,
    run,
    write_json,
)
from attribution import baseline_row, explain
from inference import REFERENCE_FILE, LoadedModel, as_features, labels, predict_scores
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

HYPERPARAMETERS_FILE = "hyperparameters.json"  # in SM_INPUT_CONFIG_DIR
# The attribution reference's rows: a seeded sample of the split bounds the training job's cost
# (rows x orders x (features + 1) scores) whatever the data's size.
REFERENCE_MAX_ROWS = 2000
ALGORITHMS: dict[str, dict[str, type]] = {
    "gradient_boosting": {
        "classification": GradientBoostingClassifier,
        "regression": GradientBoostingRegressor,
    },
    "random_forest": {"classification": RandomForestClassifier, "regression": RandomForestRegressor},
    "logistic_regression": {"classification": LogisticRegression},
}
# Linear models need comparable feature scales; trees do not.
SCALED = {"logistic_regression"}
REFERENCE_FORMAT = "mlops-drift-reference/v1"
MAX_REFERENCE_VALUES = 100_000


def env_path(name: str, default: str) -> Path:
    return Path(os.environ.get(name) or default)


def channel(name: str) -> Path:
    return env_path(f"SM_CHANNEL_{name.upper()}", f"/opt/ml/input/data/{name}")


def coerce(value: Any) -> Any:
    """SageMaker passes every hyperparameter as a string ("150", "0.1", "true", '"gb"')."""
    if not isinstance(value, str):
        return value
    if value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if parsed is None or isinstance(parsed, (str, int, float, bool)) else value


def raw_hyperparameters(project: dict[str, Any]) -> dict[str, Any]:
    if os.environ.get("SM_HPS"):
        try:
            return json.loads(os.environ["SM_HPS"])
        except json.JSONDecodeError as exc:
            raise StepFailure(f"SM_HPS is not JSON: {exc}") from exc
    file = env_path("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config") / HYPERPARAMETERS_FILE
    if file.is_file():
        return read_json(file, "hyperparameters")
    log("no SM_HPS or hyperparameters.json: using the project config's training block")
    return dict(project["training"].get("hyperparameters") or {})


def hyperparameters(project: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
    """(algorithm, seed, estimator parameters); algorithm and seed default to the project's."""
    params = {
        key: coerce(value)
        for key, value in raw_hyperparameters(project).items()
        if not key.startswith("sagemaker_")  # the SDK's own settings (program, submit dir, ...)
    }
    algorithm = str(params.pop("algorithm", project["training"]["algorithm"]))
    try:
        seed = int(params.pop("seed", project["training"]["seed"]))
    except (TypeError, ValueError) as exc:
        raise StepFailure(f"hyperparameter 'seed' must be an integer: {exc}") from exc
    if "random_state" in params:
        raise StepFailure("hyperparameter 'random_state' is set by 'seed'; set 'seed' instead")
    return algorithm, seed, params


def estimator(algorithm: str, task: str, seed: int, params: dict[str, Any]) -> Any:
    """The configured estimator; unknown algorithms and parameters fail naming themselves."""
    if algorithm not in ALGORITHMS:
        raise StepFailure(f"unknown algorithm '{algorithm}'; one of {sorted(ALGORITHMS)}")
    if task not in ALGORITHMS[algorithm]:
        raise StepFailure(f"algorithm '{algorithm}' does not support the {task} task")
    model = ALGORITHMS[algorithm][task](random_state=seed)
    known = model.get_params(deep=False)
    for name in params:
        if name not in known:
            raise StepFailure(
                f"unknown hyperparameter '{name}' for {algorithm} ({type(model).__name__}); "
                f"known: {', '.join(sorted(known))}"
            )
    return model.set_params(**params)


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    return [
        c
        for c in frame.columns
        if not pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])
    ]


def pipeline(model: Any, algorithm: str, features: list[str], categorical: list[str]) -> Any:
    """The estimator behind the preprocessing it needs (none for numeric features and trees)."""
    if not categorical and algorithm not in SCALED:
        return model
    numeric = [c for c in features if c not in categorical]
    steps = [("numeric", StandardScaler() if algorithm in SCALED else "passthrough", numeric)]
    if categorical:
        steps.append(("categorical", OneHotEncoder(handle_unknown="ignore"), categorical))
    return Pipeline([("preprocess", ColumnTransformer(steps)), ("model", model)])


def split_xy(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    if target not in frame.columns:
        raise StepFailure(f"target column '{target}' is not in the training data")
    return frame.drop(columns=[target]), frame[target]


def check_target(y: pd.Series, task: str) -> list[Any] | None:
    """The sorted class labels (classification must be binary: metrics score the larger label)."""
    if y.isna().any():
        raise StepFailure(f"target '{y.name}' has {int(y.isna().sum())} null values")
    if task != "classification":
        return None
    classes = sorted(y.unique().tolist())
    if len(classes) != 2:
        raise StepFailure(f"classification needs exactly two target classes, found {classes}")
    return classes


def numeric_reference(values: pd.Series, seed: int) -> dict[str, Any]:
    array = values.dropna().to_numpy(dtype=float)
    if len(array) > MAX_REFERENCE_VALUES:  # a uniform, seeded subsample keeps the file bounded
        array = np.random.default_rng(seed).choice(array, MAX_REFERENCE_VALUES, replace=False)
    return {"kind": "numeric", "values": np.sort(array).tolist()}


def reference_stats(x: pd.DataFrame, scores: np.ndarray, categorical: list[str], seed: int,
                    prediction_source: str = "validation") -> dict[str, Any]:
    """The drift reference (mlops-drift-reference/v1): the features of `x` (the train split) and
    the prediction scores of `prediction_source`. Scores on the train split are the model's on
    data it fitted (more confident than on anything it serves): a prediction reference from them
    would flag every healthy window as drifted."""
    features = {}
    for name in x.columns:
        if name in categorical:
            counts = x[name].dropna().astype(str).value_counts()
            features[name] = {"kind": "categorical", "counts": {str(k): int(v) for k, v in counts.items()}}
        else:
            features[name] = numeric_reference(x[name], seed)
    return {
        "format": REFERENCE_FORMAT,
        "n_rows": len(x),
        "columns": list(x.columns),
        "features": features,
        "prediction": numeric_reference(pd.Series(scores), seed),
        "prediction_source": prediction_source,
    }


def validation_metrics(model: Any, x: pd.DataFrame, y: pd.Series, task: str) -> dict[str, float]:
    """A quick score on the validation split, logged for SageMaker's metric definitions."""
    if x.empty:
        return {}
    scores = predict_scores(model, x, task)
    if task != "classification":
        return {"validation_r2": round(float(r2_score(y, scores)), 6)}
    classes = list(model.classes_)
    metrics = {"validation_accuracy": round(float(accuracy_score(y, labels(scores, classes))), 6)}
    if y.nunique() == 2:
        metrics["validation_roc_auc"] = round(float(roc_auc_score(y == classes[1], scores)), 6)
    return metrics


def fit(model: Any, x: pd.DataFrame, y: pd.Series, algorithm: str) -> None:
    try:
        model.fit(x, y)
    except (ValueError, TypeError) as exc:  # sklearn's InvalidParameterError is both
        raise StepFailure(f"training {algorithm} failed: {exc}") from exc


def write_model(model_dir: Path, model: Any, x: pd.DataFrame, meta: dict[str, Any],
                validation_x: pd.DataFrame | None = None) -> None:
    """The model artifact: estimator, its metadata, the drift reference and the serving code."""
    joblib.dump(model, model_dir / "model.joblib")
    write_json(model_dir / "model_meta.json", meta)
    held_out = validation_x is not None and not validation_x.empty
    scored = validation_x if held_out else x
    if not held_out:
        log("no validation rows: the prediction reference comes from the train split's scores")
    scores = predict_scores(model, scored, meta["task"])
    write_json(
        model_dir / "reference_stats.json",
        reference_stats(x, scores, meta["categorical_features"], meta["seed"],
                        "validation" if held_out else "train"),
    )
    write_json(model_dir / REFERENCE_FILE, attribution_reference(model, meta, x, scored,
                                                                 "validation" if held_out else "train"))
    ensure_dir(model_dir / "code")
    shutil.copyfile(Path(__file__).with_name("inference.py"), model_dir / "code" / "inference.py")


def attribution_reference(model: Any, meta: dict[str, Any], train_x: pd.DataFrame, scored: pd.DataFrame,
                          source: str) -> dict[str, Any]:
    """The model's global SHAP values on (a sample of) `scored` against the train split's
    medians and modes, on rows typed as the serving path types requests (as_features): the
    explainability check measures served traffic the same way, with the same baseline row."""
    served = LoadedModel(model, meta)
    if len(scored) > REFERENCE_MAX_ROWS:
        scored = scored.sample(REFERENCE_MAX_ROWS, random_state=meta["seed"])
    rows = as_features(scored[served.features], served)
    baseline = baseline_row(as_features(train_x[served.features], served), meta["categorical_features"])
    return explain(lambda frame: predict_scores(model, frame, meta["task"]), rows, baseline,
                   seed=meta["seed"], source=source)


def main() -> None:
    _, ignored = argument_parser(__doc__).parse_known_args()
    if ignored:
        log(f"ignoring command-line arguments (hyperparameters come from SM_HPS): {' '.join(ignored)}")
    project = read_project(channel("config"))
    task, target = project["task"], project["dataset"]["target"]
    algorithm, seed, params = hyperparameters(project)
    x, y = split_xy(read_csv(channel("train")), target)
    classes = check_target(y, task)
    features, categorical = list(x.columns), categorical_columns(x)
    model = pipeline(estimator(algorithm, task, seed, params), algorithm, features, categorical)
    fit(model, x, y, algorithm)
    meta = {
        "features": features,
        "categorical_features": categorical,
        "target": target,
        "task": task,
        "algorithm": algorithm,
        "hyperparameters": params,
        "seed": seed,
        "classes": classes,
    }
    validation = read_validation(target)
    write_model(ensure_dir(env_path("SM_MODEL_DIR", "/opt/ml/model")), model, x, meta,
                validation[0] if validation else None)
    summary = {"n_train": len(x), **validation_split_metrics(model, validation, task)}
    write_json(env_path("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data") / "training_summary.json", summary)
    log(f"trained {algorithm} on {len(x)} rows x {len(features)} features; {summary}")


def read_validation(target: str) -> tuple[pd.DataFrame, pd.Series] | None:
    directory = channel("validation")
    if not directory.is_dir():
        log(f"no validation channel at {directory}: skipping validation metrics")
        return None
    return split_xy(read_csv(directory), target)


def validation_split_metrics(model: Any, validation: tuple[pd.DataFrame, pd.Series] | None,
                             task: str) -> dict[str, Any]:
    if validation is None:
        return {"n_validation": 0}
    x, y = validation
    return {"n_validation": len(x), **validation_metrics(model, x, y, task)}


if __name__ == "__main__":
    run(main)
