"""Serving entry point for SageMaker's scikit-learn container (SAGEMAKER_PROGRAM=inference.py).

The training step copies this file into the model artifact as code/inference.py; the container
imports it from there, so it depends on nothing but numpy, pandas and joblib. The evaluate and
train steps import it too, so what is measured is what is served.

Requests: text/csv rows without a header, columns in model_meta.json's `features` order, or
application/json {"instances": [[...], ...]} (rows as lists, or as {feature: value} objects).
Responses: one score per row, the positive-class probability for a classifier or the prediction
of a regressor; text/csv one value per line, or application/json {"predictions": [...]}.

A request the model cannot take (wrong column count, a value that is not a number, an empty body,
an unsupported content or accept type) raises BadRequest, whose `status` is the HTTP status the
model server answers with (400, 415 or 406) and whose message is a one-line reason; any other
exception is a fault of the server or the model (500).
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
# The attribution reference the train step writes; its baseline row (medians, modes) is a
# realistic request to warm the model up with.
REFERENCE_FILE = "explainability_reference.json"
WARM_UP_CALLS = 3
CSV, JSON = "text/csv", "application/json"


class BadRequest(ValueError):
    """The request, not the model, is wrong; `status` is the HTTP status to answer with."""

    def __init__(self, reason: str, status: int = 400):
        super().__init__(reason)
        self.status = status


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
    model = LoadedModel(joblib.load(directory / MODEL_FILE), meta)
    warm_up(model, directory / REFERENCE_FILE)
    return model


def warm_up(model: LoadedModel, reference: Path) -> None:
    """A few requests through the whole path before the server reports healthy: the first call
    of a freshly loaded model costs ~10x the next (~30 ms vs ~3 ms for the demo's; lazy imports
    and first-use caches), and SageMaker counts it in ModelLatency, where a new fleet's first
    requests would otherwise look like a latency regression. Without a reference row (models
    trained before it existed), no warm-up."""
    try:
        baseline = json.loads(reference.read_text(encoding="utf-8"))["baseline"]
        row = ",".join(str(baseline[name]) for name in model.features)
    except (OSError, ValueError, KeyError, TypeError):
        return
    try:
        for _ in range(WARM_UP_CALLS):
            output_fn(predict_fn(input_fn(row, CSV), model), CSV)
    except Exception:  # a warm-up never decides whether the model serves: its requests do
        return


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


def _csv_rows(text: str) -> pd.DataFrame:
    """CSV rows as text cells. Rows without quotes (every numeric request) are split directly:
    pd.read_csv costs ~1 ms for one row, a split a few microseconds."""
    if '"' in text:
        try:
            return pd.read_csv(io.StringIO(text), header=None, dtype=str, keep_default_na=False)
        except (ValueError, pd.errors.ParserError) as exc:
            raise BadRequest(f"malformed CSV: {str(exc).strip().splitlines()[-1]}") from None
    rows = [line.split(",") for line in text.splitlines() if line.strip()]
    if not rows:
        raise BadRequest("empty request body: send one CSV row per line")
    width = len(rows[0])
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise BadRequest(f"row {number} has {len(row)} values, row 1 has {width}")
    return pd.DataFrame(np.array(rows, dtype=object))


def input_fn(request_body: str | bytes, request_content_type: str | None) -> pd.DataFrame:
    """The request's rows. CSV cells stay text here: the feature types live with the model, so
    predict_fn converts them (a category like "01" must not become the number 1)."""
    media = _media_type(request_content_type)
    if media not in (CSV, JSON):
        raise BadRequest(f"unsupported content type {request_content_type!r}; use {CSV} or {JSON}",
                         status=415)
    try:
        text = _text(request_body)
    except UnicodeDecodeError:
        raise BadRequest("request body is not UTF-8 text") from None
    if not text.strip():
        raise BadRequest("empty request body")
    if media == CSV:
        return _csv_rows(text)
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    instances = payload.get("instances") if isinstance(payload, dict) else None
    if not isinstance(instances, list) or not instances:
        raise BadRequest('expected a JSON body {"instances": [[...], ...]} with at least one row')
    if not all(isinstance(row, list) for row in instances) and not all(
            isinstance(row, dict) for row in instances):
        raise BadRequest('"instances" must hold rows that are all lists or all objects')
    if isinstance(instances[0], list):
        width = len(instances[0])
        for number, row in enumerate(instances, start=1):
            if len(row) != width:
                raise BadRequest(f"row {number} has {len(row)} values, row 1 has {width}")
    return pd.DataFrame(instances)


def _numeric(values: np.ndarray, columns: list[str]) -> np.ndarray:
    """A block of cells as floats, or BadRequest naming the first cell that is not a number."""
    try:
        numbers = values.astype(float)
    except (TypeError, ValueError):
        numbers = None
    if numbers is not None and np.isfinite(numbers).all():
        return numbers
    for (row, col), cell in np.ndenumerate(values):
        try:
            number = float(cell)
        except (TypeError, ValueError):
            number = None
        if number is None or not np.isfinite(number):
            shown = "empty" if cell is None or (isinstance(cell, str) and not cell.strip()) else repr(cell)
            raise BadRequest(f"row {row + 1}, feature {columns[col]!r}: {shown} is not a finite number")
    raise AssertionError("unreachable: a block that failed to convert has a bad cell")


def as_features(rows: pd.DataFrame, model: LoadedModel) -> pd.DataFrame:
    """Rows named and typed as the model's features: positional rows (CSV, JSON lists) take the
    feature order; named rows (JSON objects) must hold every feature. Numeric features are
    converted as one block (a per-column to_numeric took ~3 ms of a one-row request)."""
    features = model.features
    if list(rows.columns) == list(range(rows.shape[1])):
        if rows.shape[1] != len(features):
            raise BadRequest(f"expected {len(features)} values per row, got {rows.shape[1]}")
        rows = rows.set_axis(features, axis=1)
    missing = [name for name in features if name not in rows.columns]
    if missing:
        raise BadRequest(f"rows lack features {missing}")
    categorical = set(model.meta.get("categorical_features", []))
    numeric = [name for name in features if name not in categorical]
    block = _numeric(rows[numeric].to_numpy(dtype=object), numeric)
    if not categorical:
        return pd.DataFrame(block, columns=features)
    frame = rows[features].copy()
    frame[numeric] = block
    for name in categorical:
        # An empty CSV cell is a missing category, as pd.read_csv would have read it.
        frame[name] = frame[name].map(lambda v: np.nan if pd.isna(v) or v == "" else str(v))
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
    raise BadRequest(f"unsupported accept type {accept!r}; use {CSV} or {JSON}", status=406)


def output_fn(prediction: np.ndarray, accept: str | None) -> tuple[str, str]:
    """(body, content type): the container turns the tuple into the response."""
    values = [float(v) for v in np.asarray(prediction).ravel()]
    media = _accepted(accept)
    if media == JSON:
        return json.dumps({"predictions": values}), JSON
    return "".join(f"{v!r}\n" for v in values), CSV
