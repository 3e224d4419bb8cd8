"""The drift engine's statistics equal scipy's, and the engine, reference and reports around them."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2_contingency, distributions, false_discovery_control, ks_2samp

from lambdas.shared.drift import (
    CategoricalCodes,
    DriftConfig,
    DriftInputError,
    InvalidReferenceError,
    benjamini_hochberg,
    build_reference,
    chi2_two_by_k,
    compare,
    jensen_shannon_distance,
    load_reference_json,
    population_stability_index,
    prepare_reference,
    validate_reference,
)
from lambdas.shared.drift.categorical import compare_categorical, count_categories, prepare_categorical
from lambdas.shared.drift.kolmogorov import kstwo_sf
from lambdas.shared.drift.numeric import (
    _WIDE_SPAN,
    COARSE_MARK_STEP,
    MARK_STEP,
    REF_STEP,
    Ramps,
    _dense_extremes,
    _ks_extremes,
    compare_numeric,
    prepare_numeric,
)
from lambdas.shared.drift.report import (
    chunk_datums,
    json_report,
    metric_datums,
    put_metric_data_requests,
    render_html,
)

TOL = 1e-12


def _ks_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(20261123)
    normal = rng.normal(size=400)
    cases = [
        # small samples: scipy takes the exact distribution
        ("exact-small", rng.normal(size=7), rng.normal(size=5)),
        ("exact-equal-n", rng.normal(size=40), rng.normal(0.8, size=40)),
        ("exact-different-n", rng.normal(size=300), rng.normal(0.2, 1.3, size=451)),
        ("exact-ties", rng.integers(0, 4, 60).astype(float), rng.integers(0, 5, 75).astype(float)),
        ("exact-one-value", np.array([1.0]), np.array([2.0, 3.0])),
        ("identical", normal, normal.copy()),
        ("constant", np.full(50, 3.0), np.full(20, 3.0)),
        ("disjoint", rng.normal(size=200), rng.normal(10, size=150)),
        ("infinities", np.array([-np.inf, 0.0, 1.0, 2.0, np.inf]), np.array([np.inf, 0.5, 1.0, -np.inf])),
        # large samples: asymptotic kstwo, including the band where scipy sums smirnov()
        ("asymp-no-shift", rng.normal(size=12_000), rng.normal(size=15_000)),
        ("asymp-small-shift", rng.normal(size=30_000), rng.normal(0.03, size=30_000)),
        ("asymp-shift", rng.normal(size=25_000), rng.normal(0.06, size=40_000)),
        ("asymp-big-shift", rng.normal(size=20_000), rng.normal(1.0, size=20_000)),
        ("asymp-ties", rng.integers(0, 30, 20_000).astype(float), rng.integers(0, 31, 24_000).astype(float)),
        ("asymp-rounded", np.round(rng.normal(size=11_000), 2), np.round(rng.normal(0.02, size=13_000), 2)),
        ("asymp-scale", rng.normal(size=50_000), rng.normal(0, 1.02, size=50_000)),
    ]
    return cases


@pytest.mark.parametrize(("name", "ref", "cur"), _ks_cases(), ids=[c[0] for c in _ks_cases()])
def test_ks_equals_scipy(name: str, ref: np.ndarray, cur: np.ndarray) -> None:
    ours = compare_numeric(prepare_numeric(ref), cur)
    theirs = ks_2samp(ref, cur)
    assert abs(ours.ks - theirs.statistic) <= TOL, name
    assert abs(ours.p_value - theirs.pvalue) <= TOL, name
    assert ours.n_ref == ref.size and ours.n_cur == cur.size


def _block_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(20261206)
    n = 4 * COARSE_MARK_STEP  # the smallest window the block pass takes
    base = rng.normal(size=3000)
    return [
        ("smallest-window", rng.normal(size=900), rng.normal(0.1, size=n)),
        ("partial-blocks", rng.normal(size=10 * REF_STEP + 7),
         rng.normal(size=7 * COARSE_MARK_STEP + 3 * MARK_STEP + 5)),
        ("tiny-reference", rng.normal(size=3), rng.normal(size=5000)),
        ("identical", base, base.copy()),
        ("subsample", base, base[::2].copy()),
        ("ties", rng.integers(0, 12, 5000).astype(float), rng.integers(0, 13, 7000).astype(float)),
        # runs of ties longer than _WIDE_SPAN: those blocks are searched in views, the rest gathered
        ("wide-tie-runs", np.repeat([1.0, 2.0, 3.0], 3 * _WIDE_SPAN),
         np.concatenate([np.repeat([1.0, 2.0, 3.0], [5000, 900, 3000]), rng.normal(2, 1, 4000)])),
        ("one-value-each", np.full(2000, 1.0), np.full(3000, 1.0)),
        ("disjoint-below", rng.normal(size=2000), rng.normal(-9, size=2000)),
        ("disjoint-above", rng.normal(size=2000), rng.normal(9, size=2000)),
        ("interleaved", np.arange(0, 8000, 2.0), np.arange(1, 8001, 2.0)),
        ("current-on-reference-values", base, rng.choice(base, 4000)),
        ("infinities", np.concatenate([[-np.inf] * 40, base, [np.inf] * 30]),
         np.concatenate([[np.inf] * 50, rng.normal(0.2, size=2000), [-np.inf] * 10])),
        ("big-shift", rng.normal(size=20_000), rng.normal(0.5, size=30_000)),
        ("scale", rng.normal(size=20_000), rng.normal(0, 1.1, size=25_000)),
    ]  # fmt: skip


@pytest.mark.parametrize(("name", "ref", "cur"), _block_cases(), ids=[c[0] for c in _block_cases()])
def test_block_pass_equals_dense_pass_bit_for_bit(
    name: str, ref: np.ndarray, cur: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the KS extremes from the two levels of bounds are those of the dense pass,
    # also where the block pass would hand over to the dense one (nearly identical windows)
    monkeypatch.setattr("lambdas.shared.drift.numeric._DENSE_SHARE", 2.0)
    prepared = prepare_numeric(ref)
    cur_sorted = np.sort(cur)
    assert _ks_extremes(prepared, cur_sorted, Ramps()) == _dense_extremes(prepared, cur_sorted, Ramps()), name
    assert compare_numeric(prepared, cur).ks == ks_2samp(ref, cur).statistic, name


def test_block_pass_equals_dense_pass_on_random_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    # both levels of bounds and both ways of counting a kept block (gathered, or a view for a run
    # of ties) over shifts, discrete data, resampled reference values and rounding
    monkeypatch.setattr("lambdas.shared.drift.numeric._DENSE_SHARE", 2.0)
    rng = np.random.default_rng(20261207)
    for case in range(400):
        n1, n2 = int(rng.integers(1, 5000)), int(rng.integers(4 * COARSE_MARK_STEP, 9000))
        kind = case % 4
        if kind == 0:
            ref, cur = rng.normal(size=n1), rng.normal(0.1 * rng.normal(), 1, size=n2)
        elif kind == 1:
            ref = rng.integers(0, rng.integers(1, 50), n1).astype(float)
            cur = rng.integers(0, rng.integers(1, 50), n2).astype(float)
        elif kind == 2:
            ref = rng.normal(size=n1)
            cur = rng.choice(ref, n2)
        else:
            ref, cur = np.round(rng.normal(size=n1), 1), np.round(rng.normal(0.05, 1, size=n2), 1)
        prepared, cur_sorted = prepare_numeric(ref), np.sort(cur)
        got = _ks_extremes(prepared, cur_sorted, Ramps())
        assert got == _dense_extremes(prepared, cur_sorted, Ramps()), (case, n1, n2)


def test_ks_drops_nan_from_current_and_counts_it() -> None:
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(size=500), rng.normal(0.1, size=600)
    cur_nan = cur.copy()
    cur_nan[::7] = np.nan
    ours = compare_numeric(prepare_numeric(ref), cur_nan)
    theirs = ks_2samp(ref, cur_nan[~np.isnan(cur_nan)])
    assert ours.n_missing == int(np.isnan(cur_nan).sum())
    assert ours.n_cur == cur.size - ours.n_missing
    assert abs(ours.ks - theirs.statistic) <= TOL and abs(ours.p_value - theirs.pvalue) <= TOL


@pytest.mark.parametrize("n", [15_000, 60_000])
@pytest.mark.parametrize("nx2", [2.2, 2.5, 6.0, 30.0, 150.0, 369.0])
def test_fast_kstwo_tail_matches_scipy(n: int, nx2: float) -> None:
    # the band scipy evaluates with its O(n) smirnov loop, which we vectorise
    d = math.sqrt(nx2 / n) * 1.0001
    expected = float(distributions.kstwo.sf(d, n))
    got = kstwo_sf(d, float(n))
    assert abs(got - expected) <= TOL
    if expected > 1e-290:
        assert abs(got - expected) <= 1e-10 * expected


@pytest.mark.parametrize("n", [50, 141, 9_000, 100_001, 500_000])
@pytest.mark.parametrize("nx2", [0.0, 1e-9, 0.3, 1.5, 2.19, 400.0])
def test_kstwo_outside_the_fast_band_is_scipys_bit_for_bit(n: int, nx2: float) -> None:
    # scipy's own series, called without the distribution machinery around it
    for d in (math.sqrt(nx2 / n), 0.7, 1.0, 1.0 / n, 0.6 / n):
        assert kstwo_sf(d, float(n)) == float(distributions.kstwo.sf(d, float(n)))


def test_numeric_bins_are_right_closed_reference_deciles() -> None:
    rng = np.random.default_rng(2)
    ref = rng.integers(0, 20, 1000).astype(float)
    cur = rng.integers(0, 25, 700).astype(float)
    prepared = prepare_numeric(ref)
    edges = prepared.bins.edges
    assert np.all(np.isin(edges, ref))  # edges are reference values
    assert list(edges) == sorted(set(np.quantile(ref, np.arange(1, 10) / 10, method="inverted_cdf")))
    full = np.concatenate([[-np.inf], edges, [np.inf]])
    expected_cur = [int(((cur > lo) & (cur <= hi)).sum()) for lo, hi in itertools.pairwise(full)]
    expected_ref = [int(((ref > lo) & (ref <= hi)).sum()) for lo, hi in itertools.pairwise(full)]
    assert compare_numeric(prepared, cur).cur_bin_counts.tolist() == expected_cur
    assert prepared.bins.ref_counts.tolist() == expected_ref


# ------------------------------------------------------------------------- categorical, PSI, JS, BH


@pytest.mark.parametrize("width", range(1, 10))
def test_string_counts_equal_counter_at_every_width(width: int) -> None:
    # keys read through an overlapping view of the packed bytes: uint32 up to 4 characters,
    # uint64 up to 8 (the next string's bytes masked off), strings beyond that the slow way
    rng = np.random.default_rng(width)
    lengths = rng.integers(0, width + 1, 40)
    names = ["".join(chr(int(c)) for c in rng.integers(1, 256, k)) for k in lengths]
    values = np.array([*names, "\xff" * width])[rng.integers(0, 41, 3000)]
    expected = {k: c for k, c in Counter(values.tolist()).items() if k}
    assert count_categories(values) == (expected, int(np.count_nonzero(values == "")))


@pytest.mark.parametrize("n_categories", [1, 3, 64, 65, 500])
def test_short_string_counts_equal_counter(n_categories: int) -> None:
    # the packed-key path: runs found by binary search, then (past 64) by one pass
    rng = np.random.default_rng(n_categories)
    names = np.array([f"{i:03d}" for i in range(n_categories)] + ["", "\xe9t\xe9"])
    values = names[rng.integers(0, names.size, 5000)]
    expected = {k: c for k, c in Counter(values.tolist()).items() if k}
    assert count_categories(values) == (expected, int(np.count_nonzero(values == "")))


@pytest.mark.parametrize("correction", [True, False])
@pytest.mark.parametrize(
    ("ref_counts", "cur_counts"),
    [
        ([120, 80], [90, 110]),  # 2 x 2: Yates applies when correction=True
        ([500, 300, 200], [450, 330, 220]),
        ([10, 0, 40, 7], [12, 3, 0, 9]),
        ([1000], [20]),  # one category: dof 0, chi2 0, p 1
    ],
)
def test_chi2_equals_chi2_contingency(ref_counts: list[int], cur_counts: list[int], correction: bool) -> None:
    ours = chi2_two_by_k(np.array(ref_counts), np.array(cur_counts), correction=correction)
    theirs = chi2_contingency(np.array([ref_counts, cur_counts]), correction=correction)
    assert ours.dof == theirs.dof
    assert abs(ours.statistic - theirs.statistic) <= TOL * max(1.0, theirs.statistic)
    assert abs(ours.p_value - theirs.pvalue) <= TOL


def test_categorical_with_unseen_category_equals_chi2_contingency() -> None:
    rng = np.random.default_rng(3)
    ref_values = rng.choice(["red", "green", "blue"], size=900, p=[0.5, 0.3, 0.2])
    cur_values = rng.choice(["red", "green", "blue", "purple"], size=700, p=[0.4, 0.3, 0.2, 0.1])
    counts, missing = count_categories(ref_values)
    assert missing == 0
    result = compare_categorical(prepare_categorical(counts), cur_values)
    assert result.unseen == ("purple",)
    labels = ["red", "green", "blue", "purple"]
    table = [
        [int((ref_values == c).sum()) for c in labels],
        [int((cur_values == c).sum()) for c in labels],
    ]
    theirs = chi2_contingency(np.array(table))
    assert result.chi2 is not None
    assert abs(result.chi2.statistic - theirs.statistic) <= TOL * theirs.statistic
    assert abs(result.chi2.p_value - theirs.pvalue) <= TOL
    assert dict(zip(result.labels, result.cur_counts.tolist(), strict=True)) == dict(
        zip(labels, table[1], strict=True)
    )


def test_category_keys_and_missing_values() -> None:
    values = np.array([1, 1.0, "1", None, float("nan"), "", "a", np.int64(2)], dtype=object)
    assert count_categories(values) == ({"1": 3, "a": 1, "2": 1}, 3)
    assert count_categories(np.array(["x", "", "yy", "x"])) == ({"x": 2, "yy": 1}, 1)
    long = np.array(["a_rather_long_category", "ünïcødé", "", "a_rather_long_category"])
    known = np.array(sorted(["a_rather_long_category"]))
    assert count_categories(long, known) == ({"a_rather_long_category": 2, "ünïcødé": 1}, 1)
    codes = CategoricalCodes(np.array([0, 1, -1, 0], dtype=np.int32), ("x", "y"))
    assert count_categories(codes) == ({"x": 2, "y": 1}, 1)


def test_psi_hand_checked() -> None:
    # p = [.5, .3, .2], q = [.4, .4, .2]:
    # (0.4-0.5)*ln(0.4/0.5) + (0.4-0.3)*ln(0.4/0.3) + 0 = 0.0223143551 + 0.0287682072 = 0.0510825624
    assert population_stability_index(np.array([50, 30, 20]), np.array([40, 40, 20])) == pytest.approx(
        0.0510825624, abs=1e-10
    )
    # an empty reference bin takes the epsilon share 1e-4:
    # (0.5-1)*ln(0.5/1) + (0.5-1e-4)*ln(0.5/1e-4) = 0.3465735903 + 4.2577448758 = 4.6043184661
    assert population_stability_index(np.array([100, 0]), np.array([50, 50])) == pytest.approx(
        4.6043184661, abs=1e-9
    )
    assert population_stability_index(np.array([3, 3]), np.array([0, 0])) != population_stability_index(
        np.array([3, 3]), np.array([3, 3])
    )  # nan for an empty current side


@pytest.mark.parametrize(
    ("p", "q"), [([50, 30, 20], [40, 40, 20]), ([100, 0, 5], [50, 50, 0]), ([1, 2, 3, 4], [4, 3, 2, 1])]
)
def test_js_equals_scipy(p: list[int], q: list[int]) -> None:
    assert abs(jensen_shannon_distance(np.array(p), np.array(q)) - jensenshannon(p, q, base=2)) <= TOL


def test_benjamini_hochberg_equals_scipy_and_hand_computation() -> None:
    ps = np.array([0.01, 0.04, 0.03, 0.2, 0.5, 0.001, 0.04])
    assert np.allclose(benjamini_hochberg(ps), false_discovery_control(ps), rtol=0, atol=TOL)
    # by hand, m = 3: sorted 0.01, 0.02, 0.04 -> 0.03, 0.03, 0.04 (cumulative min from the top)
    assert benjamini_hochberg(np.array([0.04, 0.01, 0.02])).tolist() == pytest.approx([0.04, 0.03, 0.03])
    with_nan = benjamini_hochberg(np.array([0.01, np.nan, 0.02]))
    assert math.isnan(with_nan[1]) and with_nan[[0, 2]].tolist() == pytest.approx([0.02, 0.02])


# ------------------------------------------------------------------------------ reference, engine


def _training(n: int = 2000, seed: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "age": rng.normal(40, 10, n),
        "income": rng.lognormal(10, 1, n),
        "score": rng.normal(0, 1, n),
        "colour": rng.choice(["red", "green", "blue"], n),
    }


def test_reference_round_trips_through_json_and_validates() -> None:
    data = _training()
    pred = np.random.default_rng(6).random(2000)
    doc = build_reference(data, categorical=["colour"], prediction=pred, max_values=500)
    assert doc["format"] == "mlops-drift-reference/v1" and doc["n_rows"] == 2000
    assert doc["columns"] == ["age", "income", "score", "colour"]
    assert len(doc["features"]["age"]["values"]) == 500  # uniform subsample, sorted
    assert doc["features"]["age"]["values"] == sorted(doc["features"]["age"]["values"])
    assert sum(doc["features"]["colour"]["counts"].values()) == 2000
    loaded = load_reference_json(json.dumps(doc))
    prepared = prepare_reference(loaded)
    assert prepared.numeric == ("age", "income", "score") and prepared.categorical == ("colour",)
    assert prepared.prediction_kind == "numeric"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="v0"), "format"),
        (lambda d: d.update(n_rows=-1), "n_rows"),
        (lambda d: d.update(columns=[]), "columns"),
        (lambda d: d["features"].update(ghost={"kind": "numeric", "values": [1.0]}), "not in columns: ghost"),
        (lambda d: d["features"]["age"].update(values=[1.0, float("nan")]), "features.age.values"),
        (lambda d: d["features"]["age"].update(values="abc"), "features.age.values"),
        (lambda d: d["features"]["age"].update(kind="ordinal"), "features.age.kind"),
        (lambda d: d["features"]["colour"].update(counts={"red": -1}), "features.colour.counts.red"),
        (lambda d: d["features"]["colour"].update(counts={}), "features.colour.counts"),
        (lambda d: d.update(prediction={"kind": "numeric"}), "prediction.values"),
    ],
)
def test_reference_validator_names_the_problem(mutate, message: str) -> None:
    doc = build_reference(_training(100), categorical=["colour"])
    mutate(doc)
    with pytest.raises(InvalidReferenceError, match=message.replace(".", r"\.")):
        validate_reference(doc)
    with pytest.raises(InvalidReferenceError, match="not valid JSON"):
        load_reference_json("{nope")


def test_compare_verdicts_use_adjusted_p_and_min_psi() -> None:
    rng = np.random.default_rng(7)
    n = 20_000
    ref = {"same": rng.normal(size=n), "tiny": rng.normal(size=n), "big": rng.normal(size=n)}
    cur = {
        "same": rng.normal(size=n),
        "tiny": rng.normal(0.05, size=n),  # significant at this size, but PSI ~ 0.003
        "big": rng.normal(0.8, size=n),
        "extra": rng.normal(size=n),
    }
    prepared = prepare_reference(build_reference(ref))
    result = compare(prepared, cur)
    tiny, big = result.features["tiny"], result.features["big"]
    assert tiny.p_adjusted < 0.05 and tiny.psi < 0.1 and not tiny.drifted
    assert big.drifted and big.p_adjusted < 0.05 and big.psi >= 0.1
    assert not result.features["same"].drifted
    assert result.summary.n_drifted == 1 and result.summary.drifted_share == pytest.approx(1 / 3)
    assert result.summary.max_psi_feature == "big" and result.ignored_columns == ("extra",)
    loose = compare(prepared, cur, config=DriftConfig(min_psi=0.0))
    assert loose.features["tiny"].drifted
    # BH over the three features equals scipy's adjustment of the raw p-values
    raw = np.array([result.features[k].p_value for k in ("same", "tiny", "big")])
    adjusted = [result.features[k].p_adjusted for k in ("same", "tiny", "big")]
    assert np.allclose(adjusted, false_discovery_control(raw), rtol=0, atol=TOL)
    threaded = compare(prepared, cur, config=DriftConfig(workers=2))
    assert threaded.features == result.features


def test_compare_prediction_drift_and_categorical_codes() -> None:
    rng = np.random.default_rng(8)
    n = 5000
    ref = {"x": rng.normal(size=n), "c": rng.choice(["a", "b"], n)}
    doc = build_reference(ref, categorical=["c"], prediction=rng.choice(["yes", "no"], n, p=[0.3, 0.7]))
    prepared = prepare_reference(doc)
    assert prepared.prediction_kind == "categorical"
    codes = CategoricalCodes(rng.integers(0, 2, n).astype(np.int32), ("a", "b"))
    result = compare(
        prepared, {"x": rng.normal(size=n), "c": codes}, prediction=rng.choice(["yes", "no"], n, p=[0.6, 0.4])
    )
    assert result.prediction is not None and result.prediction.drifted
    assert result.summary.prediction_drift is True and result.summary.prediction_psi > 0.1
    assert result.features["c"].chi2 is not None and result.features["c"].dof == 1


def test_empty_window_is_insufficient_data_not_a_crash() -> None:
    prepared = prepare_reference(build_reference(_training(300), categorical=["colour"]))
    empty = {
        "age": np.array([]),
        "income": np.array([]),
        "score": np.array([]),
        "colour": np.array([], dtype=str),
    }
    result = compare(prepared, empty)
    assert result.summary.status == "insufficient_data" and result.summary.n_tested == 0
    assert all(f.status == "insufficient_data" and not f.drifted for f in result.features.values())
    all_nan = {**{k: np.full(5, np.nan) for k in ("age", "income", "score")}, "colour": np.array(["red"] * 5)}
    partial = compare(prepared, all_nan)
    assert partial.features["age"].status == "insufficient_data" and partial.features["age"].n_missing == 5
    assert partial.features["colour"].status == "ok"
    with pytest.raises(DriftInputError, match="lacks reference features: score"):
        compare(prepared, {"age": np.ones(3), "income": np.ones(3), "colour": np.array(["a"] * 3)})
    with pytest.raises(DriftInputError, match="different lengths"):
        compare(
            prepared,
            {**{k: np.ones(3) for k in ("age", "income")}, "score": np.ones(2), "colour": empty["colour"]},
        )


# -------------------------------------------------------------------------------------- reports


def _result():
    rng = np.random.default_rng(9)
    n = 3000
    ref = {"<b>x</b>": rng.normal(size=n), "colour": rng.choice(["red", "<i>blue</i>"], n)}
    cur = {"<b>x</b>": rng.normal(1.0, size=n), "colour": rng.choice(["red", "<i>blue</i>", "new&"], n)}
    prepared = prepare_reference(build_reference(ref, categorical=["colour"], prediction=rng.random(n)))
    return compare(prepared, cur, prediction=rng.random(n) ** 2)


def test_json_report_is_plain_json() -> None:
    result = _result()
    report = json_report(result, window={"since": "a", "until": "b"}, malformed={"invalid_json": 2})
    text = json.dumps(report, allow_nan=False)
    back = json.loads(text)
    feature = back["features"]["<b>x</b>"]
    assert {
        "kind",
        "ks",
        "p_value",
        "p_adjusted",
        "psi",
        "js",
        "chi2",
        "drifted",
        "n_ref",
        "n_cur",
        "nan_count",
    } <= set(feature)
    assert back["features"]["colour"]["unseen_categories"] == ["new&"]
    assert back["summary"]["malformed_records"] == 2 and back["prediction"]["kind"] == "numeric"
    assert back["window"] == {"since": "a", "until": "b"}


def test_html_report_is_self_contained_and_escaped() -> None:
    page = render_html(_result(), title="t <x>", malformed={"bad<>": 1})
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<style>" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<i>blue</i>" not in page and "new&amp;" in page and "bad&lt;&gt;" in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert 'class="verdict drift"' in page


def test_metric_datums_and_chunks() -> None:
    result = _result()
    datums = metric_datums(result, {"EndpointName": "ep"}, malformed_records=3)
    by_name = {d["MetricName"]: d for d in datums if d["MetricName"] != "FeaturePSI"}
    assert {"MaxPSI", "DriftedFeatureShare", "PredictionPSI", "PredictionDrift", "MalformedRecords"} <= set(
        by_name
    )
    assert by_name["MalformedRecords"]["Value"] == 3.0
    assert by_name["PredictionDrift"]["Value"] in (0.0, 1.0)
    psi = [d for d in datums if d["MetricName"] == "FeaturePSI"]
    assert {tuple(x["Name"] for x in d["Dimensions"]) for d in psi} == {("EndpointName", "Feature")}
    assert all(isinstance(d["Value"], float) and math.isfinite(d["Value"]) for d in datums)
    many = [dict(d) for d in psi for _ in range(1200)]
    chunks = chunk_datums(many)
    assert [len(c) for c in chunks] == [1000, 1000, 400]
    requests = put_metric_data_requests("MLOps/Drift", many)
    assert len(requests) == 3 and requests[0]["Namespace"] == "MLOps/Drift"
