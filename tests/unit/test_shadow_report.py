"""The shadow report's math and its pass/fail contract (lambdas/shared/shadow/report.py): the
join by request id, agreement per task, the drift engine's distances (equal to scipy's), the
latency ratio, and every reason a report fails."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from lambdas.shared.shadow.report import Thresholds, compare, verdict

P95 = {"production": 4000.0, "shadow": 5000.0}  # microseconds


def scores(n: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {f"id-{i}": float(v) for i, v in enumerate(rng.random(n))}


def test_rows_are_joined_by_request_id_and_the_unmatched_counted():
    production = {"a": 0.9, "b": 0.2, "c": 0.7}
    shadow = {"b": 0.3, "c": 0.4, "d": 0.1}
    report = compare(production, shadow, "classification", Thresholds(), P95)
    assert (report["rows"], report["production_only"], report["shadow_only"]) == (2, 1, 1)
    # b: both negative (agree); c: 0.7 positive, 0.4 negative (disagree).
    assert report["agreement_rate"] == 0.5
    assert report["mean_abs_difference"] == pytest.approx(0.2)


def test_classification_agrees_on_the_class_at_the_decision_threshold():
    production = {"a": 0.5, "b": 0.51, "c": 0.99}
    shadow = {"a": 0.0, "b": 0.9, "c": 0.5}  # a 0.5 tie is negative, as the inference code labels it
    def agreement(thresholds: Thresholds) -> float:
        return compare(production, shadow, "classification", thresholds, P95)["agreement_rate"]

    assert agreement(Thresholds()) == pytest.approx(2 / 3)  # c: positive against a tie
    assert agreement(Thresholds(decision_threshold=0.6)) == pytest.approx(1 / 3)  # b and c differ


def test_regression_agrees_within_the_tolerance():
    production = {"a": 10.0, "b": 20.0, "c": 30.0}
    shadow = {"a": 10.005, "b": 20.5, "c": 29.999}
    assert compare(production, shadow, "regression", Thresholds(tolerance=0.01), P95)["agreement_rate"] == \
        pytest.approx(2 / 3)
    assert compare(production, shadow, "regression", Thresholds(tolerance=1.0), P95)["agreement_rate"] == 1.0


def test_the_score_distance_is_the_drift_engines_and_equals_scipy():
    production, shadow = scores(400, 1), scores(400, 2)
    shadow = {k: v ** 2 for k, v in shadow.items()}  # another distribution
    report = compare(production, shadow, "classification", Thresholds(), P95)
    keys = sorted(production)
    expected = stats.ks_2samp([production[k] for k in keys], [shadow[k] for k in keys])
    assert report["score_distance"]["ks"] == pytest.approx(expected.statistic, abs=1e-12)
    assert report["score_distance"]["ks_p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert 0 < report["score_distance"]["js"] <= 1
    same = compare(production, production, "classification", Thresholds(), P95)
    assert same["score_distance"]["ks"] == 0 and same["score_distance"]["js"] == 0
    assert same["agreement_rate"] == 1.0


def test_latency_is_reported_in_milliseconds_with_the_shadows_ratio():
    report = compare({"a": 1.0}, {"a": 1.0}, "regression", Thresholds(), P95)
    assert report["latency_p95_ms"] == {"production": 4.0, "shadow": 5.0, "ratio": 1.25}
    unmeasured = compare({"a": 1.0}, {"a": 1.0}, "regression", Thresholds(), {"production": 4000.0,
                                                                              "shadow": None})
    assert unmeasured["latency_p95_ms"]["ratio"] is None


def test_a_report_passes_only_with_enough_rows_agreement_and_latency():
    production = scores(200, 3)
    good = compare(production, dict(production), "classification", Thresholds(), P95)
    passed = verdict(good, Thresholds())
    assert passed.passed and "agreement 1.0000 >= 0.95 over 200 requests" in passed.reasons[0]

    few = verdict(good, Thresholds(min_rows=500))
    assert not few.passed and few.reasons == ["200 joined requests, fewer than the 500 a verdict needs"]
    flipped = {k: 1 - v for k, v in production.items()}
    disagreeing = verdict(compare(production, flipped, "classification", Thresholds(), P95), Thresholds())
    assert not disagreeing.passed and disagreeing.reasons[0].startswith("agreement 0.0")
    slow = verdict(compare(production, production, "classification", Thresholds(),
                           {"production": 1000.0, "shadow": 2000.0}), Thresholds())
    assert slow.reasons == ["shadow p95 latency is 2.00x production's, over 1.5x"]
    empty = verdict(compare({}, {}, "classification", Thresholds(), {}), Thresholds())
    assert not empty.passed and len(empty.reasons) == 3  # rows, agreement, latency


def test_the_command_refuses_bad_arguments_and_reads_the_projects_thresholds(capsys):
    from mlops.cli import main
    from mlops.project import Project
    from mlops.shadow_report import settings_for

    assert main(["shadow", "report", "--env", "local", "--project", "demo", "--since", "soon"]) == 2
    assert "--since/--until: 'soon' is neither an ISO-8601 time" in capsys.readouterr().err
    assert main(["shadow", "report", "--env", "local", "--project", "demo", "--since", "1h",
                 "--until", "2h"]) == 2
    assert "is not before its end" in capsys.readouterr().err
    assert main(["shadow", "report", "--env", "dev", "--project", "nope"]) == 2
    settings = settings_for(Project.discover(), "dev", "demo")
    assert settings.endpoint_name.endswith("-demo") and settings.capture_s3_uri.startswith("s3://")
    assert settings.thresholds == Thresholds()  # the demo keeps the defaults
