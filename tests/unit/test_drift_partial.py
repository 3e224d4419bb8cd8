"""The sharded drift job's math: a window split into shards, each reduced to a partial, the
partials merged (through their file format) and compared, equals `engine.compare` on the whole
window bit for bit (every float of the report the same, NaN where it is NaN)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdas.shared.drift import CategoricalCodes, build_reference, compare, prepare_reference
from lambdas.shared.drift.capture import CaptureWindow
from lambdas.shared.drift.engine import DriftConfig, DriftResult
from lambdas.shared.drift.numeric import (
    compare_numeric,
    compare_numeric_counts,
    count_numeric,
    prepare_numeric,
)
from lambdas.shared.drift.partial import (
    CaptureTally,
    PartialFormatError,
    compare_partial,
    dumps,
    loads,
    merge,
    partial_of_window,
)
from lambdas.shared.drift.report import json_report

AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _report(result: DriftResult) -> str:
    # repr-exact floats: equal strings mean equal bits
    return json.dumps(json_report(result, generated_at=AT), sort_keys=True)


def _sample(rng: np.random.Generator, n: int, kind: int) -> np.ndarray:
    if kind == 0:
        return rng.normal(0, 1, n)
    if kind == 1:
        return np.floor(rng.gamma(2.0, 3.0, n))  # heavy ties
    return np.round(rng.normal(0.2, 1.1, n), 1)


def _window(rng: np.random.Generator, n: int, cats: list[str]) -> tuple[dict, np.ndarray]:
    columns = {
        "a": _sample(rng, n, 0) + 0.05,
        "b": _sample(rng, n, 1),
        "c": _sample(rng, n, 2),
        "colour": CategoricalCodes(rng.integers(-1, len(cats), n).astype(np.int32), tuple(cats)),
    }
    if n:
        columns["a"][rng.integers(0, n, max(1, n // 50))] = np.nan
    return columns, rng.uniform(0, 1, n) ** 1.3


def _shard(columns: dict, prediction: np.ndarray, rows: slice, index: int) -> CaptureWindow:
    cols = {k: (CategoricalCodes(v.codes[rows], v.categories) if isinstance(v, CategoricalCodes) else v[rows])
            for k, v in columns.items()}
    n = len(prediction[rows])
    return CaptureWindow(columns=cols, prediction=prediction[rows], n_rows=n, n_records=n,
                         malformed={"invalid_json": index}, n_objects=1,
                         first_inference_time=f"2026-11-23T09:0{index}:00+00:00",
                         last_inference_time=f"2026-11-23T09:5{index}:00+00:00")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_ref=st.integers(1, 400), n_cur=st.integers(0, 600),
       shards=st.integers(1, 4), min_rows=st.sampled_from([1, 50]))
def test_merged_shards_equal_the_one_pass_comparison(seed: int, n_ref: int, n_cur: int, shards: int,
                                                     min_rows: int) -> None:
    rng = np.random.default_rng(seed)
    training = {"a": _sample(rng, n_ref, 0), "b": _sample(rng, n_ref, 1), "c": _sample(rng, n_ref, 2),
                "colour": rng.choice(["red", "green", "blue"], n_ref)}
    prepared = prepare_reference(
        build_reference(training, categorical=["colour"], prediction=rng.uniform(0, 1, n_ref)))
    columns, prediction = _window(rng, n_cur, ["red", "green", "mauve", ""])
    cfg = DriftConfig(min_rows=min_rows)
    one_pass = compare(prepared, columns, prediction, cfg)

    cuts = np.sort(rng.integers(0, n_cur + 1, shards - 1))
    bounds = [0, *cuts.tolist(), n_cur]
    partials = [loads(dumps(partial_of_window(prepared, _shard(columns, prediction, slice(lo, hi), i))))
                for i, (lo, hi) in enumerate(itertools.pairwise(bounds))]
    merged = merge(partials)
    assert _report(compare_partial(prepared, merged, cfg)) == _report(one_pass)
    assert merged.capture.n_rows == n_cur
    assert merged.capture.malformed == {"invalid_json": sum(range(shards))}
    assert merged.capture.first_inference_time == "2026-11-23T09:00:00+00:00"


@settings(max_examples=60, deadline=None)
@given(ref=st.lists(st.sampled_from([-np.inf, -1.0, -0.0, 0.0, 0.5, 1.0, 2.0, np.inf]), min_size=1,
                    max_size=30),
       cur=st.lists(st.sampled_from([-np.inf, -2.0, -1.0, 0.0, 0.25, 0.5, 1.0, 3.0, np.inf, np.nan]),
                    max_size=40),
       cut=st.integers(0, 40))
def test_numeric_counts_equal_the_sorted_pass_with_ties_and_infinities(ref: list[float], cur: list[float],
                                                                      cut: int) -> None:
    prepared = prepare_numeric(np.array(ref))
    values = np.array(cur, dtype=np.float64)
    a = compare_numeric(prepared, values)
    counts = count_numeric(prepared, values[:cut]) + count_numeric(prepared, values[cut:])
    b = compare_numeric_counts(prepared, counts)
    assert np.array_equal([a.ks, a.p_value], [b.ks, b.p_value], equal_nan=True)
    assert (a.n_cur, a.n_missing) == (b.n_cur, b.n_missing)
    assert a.cur_bin_counts.tolist() == b.cur_bin_counts.tolist()


def test_large_window_with_asymptotic_p_values_merges_exactly() -> None:
    rng = np.random.default_rng(7)
    n = 60_000
    prepared = prepare_reference(build_reference(
        {"a": rng.normal(0, 1, n), "b": np.floor(rng.gamma(2.0, 3.0, n)), "c": rng.normal(0, 1, n),
         "colour": rng.choice(["red", "green", "blue"], n)},
        categorical=["colour"], prediction=rng.uniform(0, 1, n)))
    columns, prediction = _window(rng, 80_000, ["red", "green", "blue"])
    one_pass = compare(prepared, columns, prediction)
    partials = [partial_of_window(prepared, _shard(columns, prediction, slice(lo, lo + 20_000), 0))
                for lo in range(0, 80_000, 20_000)]
    assert _report(compare_partial(prepared, merge(partials))) == _report(one_pass)
    assert one_pass.features["a"].p_value < 1e-3  # the shifted feature is in the asymptotic band


def test_partials_of_another_reference_are_refused() -> None:
    rng = np.random.default_rng(1)
    small = prepare_reference(build_reference({"a": rng.normal(0, 1, 10)}))
    large = prepare_reference(build_reference({"a": rng.normal(0, 1, 20)}))
    window = CaptureWindow(columns={"a": rng.normal(0, 1, 5)}, prediction=None, n_rows=5, n_records=5,
                           malformed={})
    partial = partial_of_window(small, window)
    with pytest.raises(PartialFormatError, match="a: the partial was not counted against this reference"):
        compare_partial(large, partial)
    with pytest.raises(PartialFormatError, match=r"s3://b/partial-algo-1.npz: unreadable partial"):
        loads(b"not an npz", "s3://b/partial-algo-1.npz")


def test_capture_tally_merges_reasons_and_times() -> None:
    a = CaptureTally(3, 2, 1, 0, {"invalid_json": 1}, "2026-11-23T09:10:00+00:00",
                     "2026-11-23T09:20:00+00:00")
    b = CaptureTally(4, 4, 2, 5, {"bad_output": 2, "invalid_json": 1}, "2026-11-23T09:05:00+00:00", None)
    assert a + b == CaptureTally(7, 6, 3, 5, {"bad_output": 2, "invalid_json": 2},
                                 "2026-11-23T09:05:00+00:00", "2026-11-23T09:20:00+00:00")
