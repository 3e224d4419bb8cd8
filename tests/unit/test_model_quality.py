"""The model-quality check's pure parts: metrics (against scikit-learn's), ground-truth and capture
lines as SageMaker writes them, and the join's counting."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from sklearn import metrics as sk

from lambdas.shared.capture_files import Malformed
from lambdas.shared.quality import metrics
from lambdas.shared.quality.job import QualitySettings, QualitySettingsError, join
from lambdas.shared.quality.labels import Label, parse_label, parse_prediction

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_classification_metrics_match_scikit_learn():
    rng = random.Random(7)
    labels = [rng.randint(0, 1) for _ in range(400)]
    scores = [min(1.0, max(0.0, y * 0.35 + rng.random() * 0.65)) for y in labels]
    scores[:20] = [0.5] * 20  # ties, and a tie at the threshold goes negative
    got = metrics.classification(labels, scores)
    predicted = [1 if s > 0.5 else 0 for s in scores]
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert got["precision"] == pytest.approx(sk.precision_score(labels, predicted))
    assert got["recall"] == pytest.approx(sk.recall_score(labels, predicted))
    assert got["f1"] == pytest.approx(sk.f1_score(labels, predicted))
    assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(labels, scores))
    assert metrics.roc_auc([1, 1], [0.2, 0.9]) is None  # one class: undefined, not 0 or 1


def test_regression_metrics_and_the_drop_match_their_definitions():
    labels, predictions = [3.0, 5.0, 2.5, 7.0], [2.5, 5.0, 4.0, 8.0]
    got = metrics.regression(labels, predictions)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(labels, predictions))
    assert got["rmse"] == pytest.approx(sk.mean_squared_error(labels, predictions) ** 0.5)
    assert got["r2"] == pytest.approx(sk.r2_score(labels, predictions))
    assert metrics.quality_drop_percent("classification", {"accuracy": 0.81}, {"accuracy": 0.9}) == \
        pytest.approx(10.0)
    assert metrics.quality_drop_percent("regression", {"mae": 1.2}, {"mae": 1.0}) == pytest.approx(20.0)
    assert metrics.quality_drop_percent("classification", {"accuracy": 0.9}, {}) is None


def test_ground_truth_lines_in_model_monitors_format():
    line = {"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "id-7"},
            "eventVersion": "0"}
    assert parse_label(json.dumps(line)) == ("id-7", 1.0)
    as_json = {**line, "groundTruthData": {"data": "[0]", "encoding": "JSON"}}
    assert parse_label(json.dumps(as_json)) == ("id-7", 0.0)
    for bad, reason in [("{", "invalid_json"), (json.dumps({"eventVersion": "0"}), "missing_keys"),
                        (json.dumps({**line, "groundTruthData": {"data": "1", "encoding": "BASE64"}}),
                         "unsupported_encoding"),
                        (json.dumps({**line, "groundTruthData": {"data": "yes", "encoding": "CSV"}}),
                         "not_a_label"),
                        (json.dumps({**line, "groundTruthData": {"data": "nan", "encoding": "CSV"}}),
                         "not_a_label")]:
        with pytest.raises(Malformed) as info:
            parse_label(bad)
        assert info.value.reason == reason


def test_captured_predictions_are_named_by_their_inference_id():
    record = {"captureData": {
        "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "1,2",
                          "encoding": "CSV"},
        "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                           "data": "0.93\n", "encoding": "CSV"}},
        "eventMetadata": {"eventId": "e-1", "inferenceId": "traffic-x-1",
                          "inferenceTime": "2026-12-01T10:00:05Z"},
        "eventVersion": "0"}
    assert parse_prediction(json.dumps(record)) == ("traffic-x-1", T0 + timedelta(seconds=5), 0.93)
    two = json.loads(json.dumps(record))
    two["captureData"]["endpointOutput"]["data"] = "0.1\n0.9\n"
    with pytest.raises(Malformed) as info:
        parse_prediction(json.dumps(two))
    assert info.value.reason == "not_one_prediction"  # one id cannot label two predictions


def test_the_join_counts_unlabelled_late_and_unmatched():
    current = {"a": (T0, 0.9), "b": (T0, 0.2), "c": (T0, 0.7)}
    previous = {"p": (T0 - timedelta(minutes=30), 0.4), "q": (T0 - timedelta(minutes=30), 0.4)}
    deadline = T0 - timedelta(minutes=5)
    labels = {"a": Label(1, "k", T0), "b": Label(0, "k", T0),
              "p": Label(0, "k", T0),  # filed after the previous window was judged: late
              "q": Label(0, "k", deadline - timedelta(minutes=1)),  # on time then: used then
              "z": Label(1, "k", T0)}
    joined = join(current, previous, labels, deadline)
    assert sorted(joined.pairs) == [(0, 0.2), (1, 0.9)]
    assert (joined.unlabelled, joined.late, joined.unmatched) == (1, 1, 1)
    # A label of a prediction the next check judges waits for it; an unmatched label in a file an
    # earlier check already read was counted by that check.
    later = {**labels, "n": Label(1, "k", T0), "old": Label(1, "k", T0 - timedelta(hours=2))}
    again = join(current, previous, later, deadline, pending={"n": (T0, 0.5)},
                 new_since=T0 - timedelta(hours=1))
    assert again.unmatched == 1


def test_settings_name_every_bad_variable():
    with pytest.raises(QualitySettingsError) as info:
        QualitySettings.from_env({"PROJECT": "demo", "TASK": "ranking", "CAPTURE_S3_URI": "bucket/x",
                                  "WINDOW_MINUTES": "0"})
    text = str(info.value)
    for name in ("ENDPOINT_NAME", "TASK", "CAPTURE_S3_URI", "GROUND_TRUTH_S3_URI", "ARTIFACTS_BUCKET",
                 "WINDOW_MINUTES"):
        assert name in text
    settings = QualitySettings.from_env({
        "PROJECT": "demo", "ENDPOINT_NAME": "ep", "TASK": "classification",
        "CAPTURE_S3_URI": "s3://cap/demo/", "GROUND_TRUTH_S3_URI": "s3://cap/demo/ground-truth/",
        "ARTIFACTS_BUCKET": "art", "WINDOW_MINUTES": "10", "LABEL_LAG_MINUTES": "5"})
    window = settings.window_for(T0)
    assert (window.since, window.until) == (T0 - timedelta(minutes=15), T0 - timedelta(minutes=5))
