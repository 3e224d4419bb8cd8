"""The reference document: what the training step writes, what every drift check reads.

Format `mlops-drift-reference/v1` (JSON):

    {"format": "mlops-drift-reference/v1",
     "n_rows": 398,                                   # rows of the training data it summarises
     "columns": ["mean_radius", ...],                 # the model's input order (CSV capture has no header)
     "features": {"mean_radius": {"kind": "numeric", "values": [sorted floats]},
                  "colour": {"kind": "categorical", "counts": {"red": 10, "blue": 3}}},
     "prediction": {"kind": "numeric", "values": [...]}}   # or categorical counts; optional

Numeric `values` are the full sample or, above `max_values` (100,000 by default), a uniform random
subsample: the KS test is then exact for that sample, and 100,000 values pin every quantile to
within about 0.3 percentage points. NaN and infinities are left out (JSON has neither; they are
counted in the optional "n_missing"). Every feature must be one of `columns`; columns without a
feature entry (identifiers, free text) are parsed from the capture and ignored.

`build_reference` writes the document from numpy arrays, `validate_reference` explains what is
wrong with one, and `prepare_reference` turns a valid one into the sorted arrays, bins and counts
that `engine.compare` reads, once per reference rather than once per window.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from lambdas.shared.drift.categorical import (
    CategoricalCodes,
    CategoricalReference,
    count_categories,
    prepare_categorical,
)
from lambdas.shared.drift.numeric import DEFAULT_QUANTILES, NumericReference, Ramps, prepare_numeric

FORMAT = "mlops-drift-reference/v1"
DEFAULT_MAX_VALUES = 100_000
Kind = Literal["numeric", "categorical"]
KINDS: tuple[str, ...] = ("numeric", "categorical")


class InvalidReferenceError(ValueError):
    """The reference document is malformed; the message names the field and the reason."""


# ---------------------------------------------------------------------------------------- build


def _numeric_entry(
    values: Any, max_values: int | None, rng: np.random.Generator, as_lists: bool
) -> dict[str, Any]:
    v = np.asarray(values, dtype=np.float64).ravel()
    finite = v[np.isfinite(v)]
    if max_values is not None and finite.size > max_values:
        finite = rng.choice(finite, size=max_values, replace=False)
    finite = np.sort(finite)
    entry: dict[str, Any] = {"kind": "numeric", "values": finite.tolist() if as_lists else finite}
    if finite.size != v.size:
        entry["n_missing"] = int(v.size - finite.size)
    return entry


def _categorical_entry(values: Any) -> dict[str, Any]:
    arr = values if isinstance(values, CategoricalCodes) else np.asarray(values)
    counts, missing = count_categories(arr)
    ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    entry: dict[str, Any] = {"kind": "categorical", "counts": ordered}
    if missing:
        entry["n_missing"] = missing
    return entry


def _is_numeric_array(values: Any) -> bool:
    if isinstance(values, CategoricalCodes):
        return False
    return np.asarray(values).dtype.kind in "iuf"


def build_reference(
    columns: Mapping[str, Any],
    *,
    categorical: Iterable[str] = (),
    column_order: Sequence[str] | None = None,
    prediction: Any = None,
    prediction_kind: Kind | None = None,
    max_values: int | None = DEFAULT_MAX_VALUES,
    seed: int = 0,
    as_lists: bool = True,
) -> dict[str, Any]:
    """The reference document for the training data `columns` (name -> 1-D array, equal lengths).

    `categorical` names the categorical features; every other column must be numeric.
    `column_order` is the model's input order (default: the order of `columns`); a name in it
    that is not in `columns` is kept in the order but gets no feature entry. `prediction_kind`
    defaults to numeric for numeric arrays, categorical otherwise. `max_values=None` keeps the
    whole sample; `as_lists=False` keeps numpy arrays (for callers that prepare the document in
    the same process instead of writing JSON).
    """
    categorical = set(categorical)
    unknown = sorted(categorical - set(columns))
    if unknown:
        raise ValueError(f"categorical columns not in the data: {', '.join(unknown)}")
    lengths = {name: len(v) for name, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns have different lengths: {lengths}")
    rng = np.random.default_rng(seed)
    features: dict[str, Any] = {}
    for name, values in columns.items():
        if name in categorical:
            features[name] = _categorical_entry(values)
            if not features[name]["counts"]:
                raise ValueError(f"column {name!r} has only missing values")
        elif _is_numeric_array(values):
            features[name] = _numeric_entry(values, max_values, rng, as_lists)
            if len(features[name]["values"]) == 0:
                raise ValueError(f"column {name!r} has no finite values")
        else:
            raise ValueError(f"column {name!r} is not numeric; list it in `categorical`")
    doc: dict[str, Any] = {
        "format": FORMAT,
        "n_rows": next(iter(lengths.values()), 0),
        "columns": list(column_order) if column_order is not None else list(columns),
        "features": features,
    }
    missing_order = sorted(set(columns) - set(doc["columns"]))
    if missing_order:
        raise ValueError(f"columns missing from column_order: {', '.join(missing_order)}")
    if prediction is not None:
        kind = prediction_kind or ("numeric" if _is_numeric_array(prediction) else "categorical")
        doc["prediction"] = (
            _numeric_entry(prediction, max_values, rng, as_lists)
            if kind == "numeric"
            else _categorical_entry(prediction)
        )
    return doc


# ------------------------------------------------------------------------------------- validate


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)


def _check_entry(path: str, entry: Any) -> None:
    if not isinstance(entry, Mapping):
        raise InvalidReferenceError(f"{path}: must be an object with 'kind'")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise InvalidReferenceError(f"{path}.kind: must be 'numeric' or 'categorical', got {kind!r}")
    if kind == "numeric":
        values = entry.get("values")
        if values is None or isinstance(values, str | bytes | Mapping):
            raise InvalidReferenceError(f"{path}.values: must be a list of numbers")
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidReferenceError(f"{path}.values: must be a list of numbers") from None
        if arr.ndim != 1 or arr.size == 0:
            raise InvalidReferenceError(f"{path}.values: must be a non-empty flat list of numbers")
        if not np.all(np.isfinite(arr)):
            raise InvalidReferenceError(f"{path}.values: NaN or infinite values are not allowed")
    else:
        counts = entry.get("counts")
        if not isinstance(counts, Mapping) or not counts:
            raise InvalidReferenceError(f"{path}.counts: must be a non-empty object of category: count")
        for cat, c in counts.items():
            if not isinstance(cat, str) or not cat:
                raise InvalidReferenceError(f"{path}.counts: category names must be non-empty strings")
            if not _is_int(c) or c < 0:
                raise InvalidReferenceError(f"{path}.counts.{cat}: must be a non-negative integer, got {c!r}")
        if sum(counts.values()) <= 0:
            raise InvalidReferenceError(f"{path}.counts: all counts are zero")


def validate_reference(doc: Any) -> None:
    """Raise InvalidReferenceError naming the first problem; return None for a valid document."""
    if not isinstance(doc, Mapping):
        raise InvalidReferenceError("reference: must be a JSON object")
    if doc.get("format") != FORMAT:
        raise InvalidReferenceError(f"format: expected {FORMAT!r}, got {doc.get('format')!r}")
    n_rows = doc.get("n_rows")
    if not _is_int(n_rows) or n_rows < 0:
        raise InvalidReferenceError(f"n_rows: must be a non-negative integer, got {n_rows!r}")
    columns = doc.get("columns")
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns):
        raise InvalidReferenceError("columns: must be a non-empty list of column names")
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise InvalidReferenceError(f"columns: duplicate names {', '.join(duplicates)}")
    features = doc.get("features")
    if not isinstance(features, Mapping) or not features:
        raise InvalidReferenceError("features: must be a non-empty object of name: feature")
    stray = sorted(set(features) - set(columns))
    if stray:
        raise InvalidReferenceError(f"features: not in columns: {', '.join(stray)}")
    for name, entry in features.items():
        _check_entry(f"features.{name}", entry)
    if doc.get("prediction") is not None:
        _check_entry("prediction", doc["prediction"])


def load_reference_json(text: str | bytes) -> dict[str, Any]:
    """Parse a reference document, turning JSON errors into InvalidReferenceError."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InvalidReferenceError(f"reference: not valid JSON ({exc})") from None
    validate_reference(doc)
    return doc


# -------------------------------------------------------------------------------------- prepare

FeatureReference = NumericReference | CategoricalReference


@dataclass(frozen=True)
class PreparedReference:
    """A validated reference, ready for `engine.compare` (sorted arrays, bins, counts)."""

    columns: tuple[str, ...]  # model input order
    n_rows: int
    features: dict[str, FeatureReference]  # in column order
    prediction: FeatureReference | None

    def kind(self, name: str) -> Kind:
        return "numeric" if isinstance(self.features[name], NumericReference) else "categorical"

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(n for n, f in self.features.items() if isinstance(f, NumericReference))

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(n for n, f in self.features.items() if isinstance(f, CategoricalReference))

    @property
    def prediction_kind(self) -> Kind | None:
        if self.prediction is None:
            return None
        return "numeric" if isinstance(self.prediction, NumericReference) else "categorical"


def _prepare_entry(entry: Mapping[str, Any], quantiles: tuple[float, ...], ramps: Ramps) -> FeatureReference:
    if entry["kind"] == "numeric":
        return prepare_numeric(np.asarray(entry["values"], dtype=np.float64), quantiles, ramps)
    return prepare_categorical(entry["counts"])


def prepare_reference(
    doc: Mapping[str, Any], quantiles: tuple[float, ...] = DEFAULT_QUANTILES
) -> PreparedReference:
    """Validate `doc` and precompute everything a comparison needs. Not on the hot path."""
    validate_reference(doc)
    if not quantiles or any(not (0.0 < q < 1.0) or math.isnan(q) for q in quantiles):
        raise ValueError("quantiles must lie strictly between 0 and 1")
    ramps = Ramps()
    features = {
        name: _prepare_entry(doc["features"][name], quantiles, ramps)
        for name in doc["columns"]
        if name in doc["features"]
    }
    prediction = doc.get("prediction")
    return PreparedReference(
        columns=tuple(doc["columns"]),
        n_rows=int(doc["n_rows"]),
        features=features,
        prediction=_prepare_entry(prediction, quantiles, ramps) if prediction is not None else None,
    )
