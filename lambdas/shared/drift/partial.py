"""A window's drift statistics as counts that add up across shards: the sharded batch job.

A window too large for one machine is read by several (a SageMaker Processing job with
InstanceCount > 1 and ShardedByS3Key: each instance gets some of the capture files). Each
instance reduces its rows to a `WindowPartial` against the same reference:

    numeric feature      NumericCounts (numeric.py): per reference rank, how many current values
                         have exactly that many reference values <= them, and < them
    categorical feature  current count per category key, and the missing values
    prediction           likewise, by its kind
    capture              rows, records, objects, malformed reasons, out-of-window records, the
                         first and last inference time

All of these merge by addition (times by min/max), and `compare_partial` turns the merged counts
into the `DriftResult` that `engine.compare` computes on the whole window in one pass, bit for
bit: the KS statistic and the bin counts are read off the same integers (numeric.py explains
why the counts suffice), chi-squared sees the same table. A partial's size depends on the
reference (n_ref + 1 counts per numeric feature, stored sparse), not on the window.

A partial is stored as one .npz (numpy arrays, a JSON header; no pickle).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from lambdas.shared.drift.capture import CaptureWindow, Column
from lambdas.shared.drift.categorical import (
    CategoricalReference,
    categorical_comparison,
    count_categories,
)
from lambdas.shared.drift.engine import (
    Comparison,
    DriftConfig,
    DriftResult,
    as_numeric_column,
    compare_counts,
)
from lambdas.shared.drift.numeric import (
    NumericCounts,
    NumericReference,
    compare_numeric_counts,
    count_numeric,
)
from lambdas.shared.drift.reference import FeatureReference, PreparedReference

FORMAT = "mlops-drift-partial/1"


class PartialFormatError(ValueError):
    """A partial file that is not one, or one computed against another reference."""


@dataclass(frozen=True)
class CategoryCounts:
    counts: dict[str, int]
    n_missing: int

    def __add__(self, other: CategoryCounts) -> CategoryCounts:
        merged = dict(self.counts)
        for key, c in other.counts.items():
            merged[key] = merged.get(key, 0) + c
        return CategoryCounts(merged, self.n_missing + other.n_missing)


Counts = NumericCounts | CategoryCounts


@dataclass(frozen=True)
class CaptureTally:
    """What the capture reader reports about a window, in a form that merges."""

    n_rows: int = 0
    n_records: int = 0
    n_objects: int = 0
    n_out_of_window: int = 0
    malformed: dict[str, int] = field(default_factory=dict)
    first_inference_time: str | None = None
    last_inference_time: str | None = None

    @classmethod
    def of(cls, capture: CaptureWindow) -> CaptureTally:
        return cls(capture.n_rows, capture.n_records, capture.n_objects, capture.n_out_of_window,
                   dict(capture.malformed), capture.first_inference_time, capture.last_inference_time)

    def __add__(self, other: CaptureTally) -> CaptureTally:
        malformed = dict(self.malformed)
        for reason, c in other.malformed.items():
            malformed[reason] = malformed.get(reason, 0) + c
        return CaptureTally(
            self.n_rows + other.n_rows, self.n_records + other.n_records, self.n_objects + other.n_objects,
            self.n_out_of_window + other.n_out_of_window, dict(sorted(malformed.items())),
            _extreme(min, self.first_inference_time, other.first_inference_time),
            _extreme(max, self.last_inference_time, other.last_inference_time),
        )

    def as_window(self) -> CaptureWindow:
        """The tally in the shape the report writer reads (no columns: they were reduced)."""
        return CaptureWindow(columns={}, prediction=None, n_rows=self.n_rows, n_records=self.n_records,
                             malformed=dict(self.malformed), n_out_of_window=self.n_out_of_window,
                             n_objects=self.n_objects, first_inference_time=self.first_inference_time,
                             last_inference_time=self.last_inference_time)


def _extreme(pick: Any, a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a if b is None else b
    return pick(a, b, key=datetime.fromisoformat)


@dataclass(frozen=True)
class WindowPartial:
    features: dict[str, Counts]  # every reference feature, in reference order
    prediction: Counts | None  # None: the window has no prediction column to test
    capture: CaptureTally

    def __add__(self, other: WindowPartial) -> WindowPartial:
        same_shape = list(self.features) == list(other.features)
        if not same_shape or (self.prediction is None) != (other.prediction is None):
            raise PartialFormatError("partials of different references cannot be merged")
        features = {n: _add(c, other.features[n], n) for n, c in self.features.items()}
        prediction = None
        if self.prediction is not None and other.prediction is not None:
            prediction = _add(self.prediction, other.prediction, "prediction")
        return WindowPartial(features, prediction, self.capture + other.capture)


def _add(a: Counts, b: Counts, name: str) -> Counts:
    if type(a) is not type(b):
        raise PartialFormatError(f"{name}: numeric counts in one partial, category counts in another")
    return a + b  # type: ignore[operator]


def _counts(name: str, ref: FeatureReference, values: Column) -> Counts:
    if isinstance(ref, NumericReference):
        return count_numeric(ref, as_numeric_column(name, values))
    counts, missing = count_categories(values, ref.sorted_keys)  # type: ignore[arg-type]
    return CategoryCounts(counts, missing)


def partial_of_window(prepared: PreparedReference, capture: CaptureWindow) -> WindowPartial:
    """One shard's (or a whole window's) partial."""
    features = {n: _counts(n, ref, capture.columns[n]) for n, ref in prepared.features.items()}
    prediction = None
    if capture.prediction is not None and prepared.prediction is not None:
        prediction = _counts("prediction", prepared.prediction, capture.prediction)
    return WindowPartial(features, prediction, CaptureTally.of(capture))


def merge(partials: Iterable[WindowPartial]) -> WindowPartial:
    merged: WindowPartial | None = None
    for p in partials:
        merged = p if merged is None else merged + p
    if merged is None:
        raise PartialFormatError("no partials to merge")
    return merged


def _comparison(ref: FeatureReference, counts: Counts, cfg: DriftConfig, name: str) -> Comparison:
    if isinstance(ref, NumericReference):
        if not isinstance(counts, NumericCounts) or counts.le.size != ref.n + 1:
            raise PartialFormatError(f"{name}: the partial was not counted against this reference")
        return compare_numeric_counts(ref, counts)
    if not isinstance(counts, CategoryCounts) or not isinstance(ref, CategoricalReference):
        raise PartialFormatError(f"{name}: categorical in the reference, numeric counts in the partial")
    return categorical_comparison(ref, counts.counts, counts.n_missing, cfg.yates_correction)


def compare_partial(
    prepared: PreparedReference, partial: WindowPartial, config: DriftConfig | None = None
) -> DriftResult:
    """`engine.compare` of the window the (merged) partial describes."""
    cfg = config or DriftConfig()
    features = {}
    for name, ref in prepared.features.items():
        if name not in partial.features:
            raise PartialFormatError(f"the partial lacks reference feature {name}")
        features[name] = _comparison(ref, partial.features[name], cfg, name)
    prediction = None
    if partial.prediction is not None and prepared.prediction is not None:
        prediction = _comparison(prepared.prediction, partial.prediction, cfg, "prediction")
    return compare_counts(prepared, features, prediction, partial.capture.n_rows, cfg)


# ------------------------------------------------------------------------------------- files


def _sparse(name: str, counts: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
    at = np.flatnonzero(counts)
    arrays[f"{name}.at"] = at.astype(np.int64)
    arrays[f"{name}.n"] = counts[at].astype(np.int64)


def _dense(name: str, size: int, arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    at, n = arrays[f"{name}.at"], arrays[f"{name}.n"]
    if at.size and (int(at.min()) < 0 or int(at.max()) >= size):
        raise PartialFormatError(f"{name}: a count lies outside the reference ({size - 1} values)")
    out = np.zeros(size, dtype=np.int64)
    out[at] = n
    return out


def _entry(key: str, counts: Counts, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if isinstance(counts, NumericCounts):
        _sparse(f"{key}.le", counts.le, arrays)
        _sparse(f"{key}.lt", counts.lt, arrays)
        return {"kind": "numeric", "size": int(counts.le.size), "n_missing": counts.n_missing}
    return {"kind": "categorical", "counts": counts.counts, "n_missing": counts.n_missing}


def _read_entry(key: str, entry: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Counts:
    if entry["kind"] == "numeric":
        size = int(entry["size"])
        return NumericCounts(_dense(f"{key}.le", size, arrays), _dense(f"{key}.lt", size, arrays),
                             int(entry["n_missing"]))
    return CategoryCounts({str(k): int(v) for k, v in entry["counts"].items()}, int(entry["n_missing"]))


def dumps(partial: WindowPartial) -> bytes:
    arrays: dict[str, np.ndarray] = {}
    header = {
        "format": FORMAT,
        "features": {n: _entry(f"f{i}", c, arrays) for i, (n, c) in enumerate(partial.features.items())},
        "prediction": _entry("p", partial.prediction, arrays) if partial.prediction is not None else None,
        "capture": partial.capture.__dict__,
    }
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def loads(data: bytes, source: str = "partial") -> WindowPartial:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        header = json.loads(arrays.pop("header").tobytes())
        if header.get("format") != FORMAT:
            raise PartialFormatError(f"{source}: not a {FORMAT} file")
        features = {n: _read_entry(f"f{i}", e, arrays) for i, (n, e) in enumerate(header["features"].items())}
        prediction = _read_entry("p", header["prediction"], arrays) if header["prediction"] else None
        return WindowPartial(features, prediction, replace(CaptureTally(), **header["capture"]))
    except PartialFormatError:
        raise
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise PartialFormatError(f"{source}: unreadable partial ({type(exc).__name__}: {exc})") from None
