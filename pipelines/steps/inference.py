"""Serving entry point for SageMaker's scikit-learn container (SAGEMAKER_PROGRAM=inference.py).

The training step copies this file into the model artifact as code/inference.py; the container
imports it from there, so it depends on nothing but numpy, pandas and joblib. The evaluate and
train steps import it too, so what is measured is what is served.

Requests: text/csv rows without a header, columns in model_meta.json's `features` order, or
application/json {"instances": [[...], ...]} (rows as lists, or as {feature: value} objects).
Responses: one score per row, the positive-class probability for a classifier or the prediction
of a regressor; text/csv one value per line, or application/json {"predictions": [...]}.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

MODEL_FILE = "model.joblib"
META_FILE = "model_meta.json"
CSV, JSON = "text/csv", "application/json"


@dataclass(frozen=True)
class LoadedModel:
    estimator: Any
    meta: dict[str, Any]

    @property
    def features(self) -> list[str]:
        return list(self.meta["features"])


def model_fn(model_dir: str) -> LoadedModel:
    directory = Path(model_dir)
    meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    return LoadedModel(joblib.load(directory / MODEL_FILE), meta)


def predict_scores(estimator: Any, frame: pd.DataFrame, task: str) -> np.ndarray:
    """Positive-class probability (the larger of the two labels) or the regression prediction."""
    if task == "classification":
        return np.asarray(estimator.predict_proba(frame))[:, 1]
    return np.asarray(estimator.predict(frame), dtype=float)


def labels(scores: np.ndarray, classes: list[Any]) -> np.ndarray:
    """Class labels from positive-class scores, as predict() does (a 0.5 tie goes negative)."""
    return np.where(scores > 0.5, classes[1], classes[0])


def _text(body: str | bytes | bytearray) -> str:
    return body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def input_fn(request_body: str | bytes, request_content_type: str | None) -> pd.DataFrame:
    """The request's rows. CSV cells stay text here: the feature types live with the model, so
    predict_fn converts them (a category like "01" must not become the number 1)."""
    media = _media_type(request_content_type)
    text = _text(request_body)
    if media == CSV:
        return pd.read_csv(io.StringIO(text), header=None, dtype=str)
    if media == JSON:
        payload = json.loads(text)
        instances = payload.get("instances") if isinstance(payload, dict) else None
        if not isinstance(instances, list):
            raise ValueError('expected a JSON body {"instances": [[...], ...]}')
        return pd.DataFrame(instances)
    raise ValueError(f"unsupported content type {request_content_type!r}; use {CSV} or {JSON}")


def as_features(rows: pd.DataFrame, model: LoadedModel) -> pd.DataFrame:
    """Rows named and typed as the model's features: positional rows (CSV, JSON lists) take the
    feature order; named rows (JSON objects) must hold every feature."""
    features = model.features
    if list(rows.columns) == list(range(rows.shape[1])):
        if rows.shape[1] != len(features):
            raise ValueError(f"expected {len(features)} values per row, got {rows.shape[1]}")
        rows = rows.set_axis(features, axis=1)
    missing = [name for name in features if name not in rows.columns]
    if missing:
        raise ValueError(f"rows lack features {missing}")
    frame = rows[features].copy()
    categorical = set(model.meta.get("categorical_features", []))
    for name in features:
        if name in categorical:
            frame[name] = frame[name].map(lambda v: np.nan if pd.isna(v) else str(v))
        else:
            frame[name] = pd.to_numeric(frame[name])
    return frame


def predict_fn(input_data: pd.DataFrame, model: LoadedModel) -> np.ndarray:
    return predict_scores(model.estimator, as_features(input_data, model), model.meta["task"])


def _accepted(accept: str | None) -> str:
    for part in (accept or "").split(","):
        media = _media_type(part)
        if media in (CSV, JSON):
            return media
        if media in ("", "*/*", "text/*"):
            return CSV
    raise ValueError(f"unsupported accept type {accept!r}; use {CSV} or {JSON}")


def output_fn(prediction: np.ndarray, accept: str | None) -> tuple[str, str]:
    """(body, content type): the container turns the tuple into the response."""
    values = [float(v) for v in np.asarray(prediction).ravel()]
    media = _accepted(accept)
    if media == JSON:
        return json.dumps({"predictions": values}), JSON
    return "".join(f"{v!r}\n" for v in values), CSV
