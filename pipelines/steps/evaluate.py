"""Evaluate step: score the trained model on the test split, per group and for latency; track it.

    python3 evaluate.py --model DIR --test DIR --config DIR --lineage DIR --validation DIR --output DIR

--model holds the training job's model.tar.gz (or its unpacked files). Writes OUTPUT/evaluation.json:
SageMaker's model-quality format (binary_classification_metrics or regression_metrics, which the
model registry shows) plus flat blocks the gate reads: `metrics` (rounded, byte-identical across
reruns), `latency_ms`, `fairness`. With MLFLOW_TRACKING_URI set it logs one MLflow run (params,
metrics, the model, the step reports) and writes its id to OUTPUT/tracking.json.
"""

from __future__ import annotations

import argparse
import os
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

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
from inference import LoadedModel, labels, model_fn, predict_scores
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

ARTIFACT = "model.tar.gz"
LATENCY_CALLS, LATENCY_WARMUP = 200, 20
GROUP_METRICS = {
    "accuracy": accuracy_score,
    "precision": precision_score,
    "recall": recall_score,
    "f1": f1_score,
}
TRACKING_ENV = "MLFLOW_TRACKING_URI"


def parse_args() -> argparse.Namespace:
    parser = argument_parser(__doc__)
    parser.add_argument("--model", default="/opt/ml/processing/model", help="folder with model.tar.gz")
    parser.add_argument("--test", default="/opt/ml/processing/test", help="folder with the test CSV")
    parser.add_argument("--config", default="/opt/ml/processing/config", help="folder with project.json")
    parser.add_argument("--lineage", default="/opt/ml/processing/lineage", help="folder with lineage.json")
    parser.add_argument(
        "--validation", default="/opt/ml/processing/validation", help="folder with validation_report.json"
    )
    parser.add_argument("--output", default="/opt/ml/processing/evaluation", help="report folder")
    return parser.parse_args()


def r6(value: float) -> float:
    # Six decimals: stable across reruns and platforms, far below any gate's resolution.
    return round(float(value), 6)


def unpack(model_dir: Path, scratch: Path) -> Path:
    """The folder holding model.joblib: `model_dir` itself, or the tarball extracted to `scratch`."""
    artifact = model_dir / ARTIFACT
    if not artifact.is_file():
        if not (model_dir / "model.joblib").is_file():
            raise StepFailure(f"no {ARTIFACT} or model.joblib in {model_dir}")
        return model_dir
    try:
        with tarfile.open(artifact) as tar:
            tar.extractall(scratch, filter="data")  # refuses absolute paths, ../ escapes, devices
    except (OSError, tarfile.TarError) as exc:
        raise StepFailure(f"cannot extract {artifact}: {exc}") from exc
    return scratch


def classification_metrics(y: pd.Series, scores: np.ndarray, classes: list[Any]) -> tuple[dict, dict]:
    """(SageMaker's binary_classification_metrics block, flat metrics)."""
    negative, positive = classes
    if y.nunique() < 2:
        raise StepFailure(f"the test split holds only class {y.iloc[0]!r}: roc_auc is undefined")
    predicted = labels(scores, classes)
    flat = {
        "accuracy": r6(accuracy_score(y, predicted)),
        "precision": r6(precision_score(y, predicted, pos_label=positive, zero_division=0)),
        "recall": r6(recall_score(y, predicted, pos_label=positive, zero_division=0)),
        "f1": r6(f1_score(y, predicted, pos_label=positive, zero_division=0)),
        "roc_auc": r6(roc_auc_score(y == positive, scores)),
    }
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, predicted, labels=[negative, positive]).ravel())
    fpr, tpr, _ = roc_curve(y == positive, scores)
    neg, pos = str(negative), str(positive)
    block = {
        **{name: _value(flat[name]) for name in ("accuracy", "precision", "recall", "f1")},
        "auc": _value(flat["roc_auc"]),
        "confusion_matrix": {neg: {neg: tn, pos: fp}, pos: {neg: fn, pos: tp}},
        "receiver_operating_characteristic_curve": {
            "false_positive_rates": [r6(v) for v in fpr],
            "true_positive_rates": [r6(v) for v in tpr],
        },
    }
    return {"binary_classification_metrics": block}, flat


def regression_metrics(y: pd.Series, predicted: np.ndarray) -> tuple[dict, dict]:
    """(SageMaker's regression_metrics block, flat metrics)."""
    mse = float(mean_squared_error(y, predicted))
    flat = {
        "mae": r6(mean_absolute_error(y, predicted)),
        "rmse": r6(np.sqrt(mse)),
        "r2": r6(r2_score(y, predicted)),
        "mape": r6(mean_absolute_percentage_error(y, predicted)),
    }
    block = {name: _value(value) for name, value in {**flat, "mse": r6(mse)}.items()}
    return {"regression_metrics": block}, flat


def _value(value: float) -> dict[str, Any]:
    return {"value": value, "standard_deviation": "NaN"}  # SageMaker's format; no bootstrap here


def group_labels(column: pd.Series, threshold: float | None) -> pd.Series:
    """A numeric attribute split at the threshold, or the attribute's own values."""
    if threshold is not None and pd.api.types.is_numeric_dtype(column):
        labels = np.where(column <= threshold, f"<= {threshold}", f"> {threshold}")
        return pd.Series(labels, index=column.index).where(column.notna(), "missing")
    return column.astype(str).where(column.notna(), "missing")


def group_metrics(y: pd.Series, predicted: np.ndarray, positive: Any) -> dict[str, Any]:
    metrics: dict[str, Any] = {"n": len(y), "n_positive": int((y == positive).sum())}
    for name, score in GROUP_METRICS.items():
        options = {} if name == "accuracy" else {"pos_label": positive, "zero_division": np.nan}
        value = float(score(y, predicted, **options))
        # Undefined (e.g. recall of a group without positives) is null, not a misleading 0.
        metrics[name] = None if np.isnan(value) else r6(value)
    return metrics


def fairness(
    settings: dict[str, Any] | None, test: pd.DataFrame, y: pd.Series, scores: np.ndarray, classes: list[Any]
) -> dict[str, Any] | None:
    """Per-group metrics and the gap (max - min) of the configured metric across groups."""
    if not settings:
        return None
    attribute, metric = settings["attribute"], settings["metric"]
    if attribute not in test.columns:
        raise StepFailure(f"fairness attribute '{attribute}' is not a column of the test data")
    predicted = labels(scores, classes)
    groups_of = group_labels(test[attribute], settings.get("threshold"))
    groups = {}
    for group in sorted(groups_of.unique()):
        mask = (groups_of == group).to_numpy()
        groups[str(group)] = group_metrics(y[mask], predicted[mask], classes[1])
    defined = [g[metric] for g in groups.values() if g[metric] is not None]
    gap = r6(max(defined) - min(defined)) if len(defined) >= 2 else 0.0
    result = {
        "attribute": attribute,
        "threshold": settings.get("threshold"),
        "metric": metric,
        "groups": groups,
        "gap": gap,
        "max_gap": settings["max_gap"],
        "within_bounds": gap <= settings["max_gap"],
    }
    if len(defined) < 2:
        result["note"] = f"fewer than two groups with a defined {metric}: no gap to measure"
    return result


def latency(model: LoadedModel, x: pd.DataFrame) -> dict[str, Any]:
    """p50/p95 of single-row calls, in process: the model's own cost, without the network."""
    if x.empty:
        return {"p50": None, "p95": None, "n": 0}
    call = (
        model.estimator.predict_proba if model.meta["task"] == "classification" else model.estimator.predict
    )
    rows = [x.iloc[[i % len(x)]] for i in range(LATENCY_CALLS)]  # cycles a small test split
    for row in rows[:LATENCY_WARMUP]:
        call(row)
    timings = []
    for row in rows:
        start = time.perf_counter()
        call(row)
        timings.append((time.perf_counter() - start) * 1000.0)
    p50, p95 = np.percentile(timings, [50, 95])
    return {"p50": round(float(p50), 3), "p95": round(float(p95), 3), "n": len(timings)}


def evaluate(model: LoadedModel, test: pd.DataFrame, project: dict[str, Any]) -> dict[str, Any]:
    meta = model.meta
    if meta["target"] not in test.columns:
        raise StepFailure(f"target column '{meta['target']}' is not in the test data")
    missing = [f for f in meta["features"] if f not in test.columns]
    if missing:
        raise StepFailure(f"the test data lacks the model's features {missing}")
    x, y = test[meta["features"]], test[meta["target"]]
    scores = predict_scores(model.estimator, x, meta["task"])
    if meta["task"] == "classification":
        block, flat = classification_metrics(y, scores, meta["classes"])
        groups = fairness(project.get("fairness"), test, y, scores, meta["classes"])
    else:
        block, flat = regression_metrics(y, scores)
        groups = None
    return {
        **block,
        "task": meta["task"],
        "n_test": len(test),
        "metrics": flat,
        "latency_ms": latency(model, x),
        "fairness": groups,
        "model": {k: meta[k] for k in ("algorithm", "hyperparameters", "seed")},
    }


def load_model(model_dir: Path) -> LoadedModel:
    try:
        return model_fn(str(model_dir))
    except (OSError, ValueError, KeyError) as exc:
        raise StepFailure(f"cannot load the model from {model_dir}: {exc}") from exc


def main() -> None:
    args = parse_args()
    output = ensure_dir(args.output)
    project = read_project(args.config)
    test = read_csv(args.test)
    if test.empty:
        raise StepFailure(f"the test split in {args.test} has no rows")
    with tempfile.TemporaryDirectory(prefix="model-") as scratch:
        model_dir = unpack(Path(args.model), Path(scratch))
        model = load_model(model_dir)
        evaluation = evaluate(model, test, project)
        write_json(output / "evaluation.json", evaluation)
        log(f"{evaluation['metrics']} latency {evaluation['latency_ms']}")
        reports = [
            output / "evaluation.json",
            Path(args.validation) / "validation_report.json",
            model_dir / "reference_stats.json",
        ]
        sample = test[model.features].head(5)  # the logged model's signature
        tracking = track(project, evaluation, model, sample, Path(args.lineage) / "lineage.json", reports)
    write_json(output / "tracking.json", tracking)


def track(
    project: dict[str, Any],
    evaluation: dict[str, Any],
    model: LoadedModel,
    sample: pd.DataFrame,
    lineage_file: Path,
    reports: list[Path],
) -> dict[str, Any]:
    """One MLflow run when MLFLOW_TRACKING_URI is set; mlflow is not even imported otherwise."""
    uri = os.environ.get(TRACKING_ENV)
    if not uri:
        return {"mlflow_run_id": None, "reason": f"{TRACKING_ENV} not set"}
    lineage = read_json(lineage_file, "lineage record") if lineage_file.is_file() else {}
    artifacts = [path for path in [*reports, lineage_file] if path.is_file()]
    for path in sorted({*reports, lineage_file} - set(artifacts)):
        log(f"{path} not found: the MLflow run goes without it")
    import _tracking  # imports mlflow, which only this path needs

    try:
        return _tracking.log_run(uri, project, evaluation, model, lineage, artifacts, sample)
    except _tracking.TrackingError as exc:
        raise StepFailure(f"MLflow tracking at {uri} failed: {exc}") from exc


if __name__ == "__main__":
    run(main)
