"""`mlops traffic` without an endpoint: its arguments, the rows it replays, the share it sends
malformed, and the shift of `--drift`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mlops.traffic import (
    Plan,
    TrafficError,
    bodies,
    held_out_rows,
    parse_drift,
    parse_skew,
    percentile,
    shifted,
    skewed,
)
from pipelines.dataset import TARGET, breast_cancer_frame
from stacks.project_config import load_project

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config():
    return load_project(ROOT / "environments" / "projects" / "demo.yaml", "local", ROOT)


@pytest.fixture(scope="module")
def frame():
    return breast_cancer_frame()


def test_held_out_rows_are_the_pipelines_test_split(config, frame, demo_model):
    rows = held_out_rows(config, frame)
    assert TARGET not in rows.columns and list(rows.columns) == [c for c in frame.columns if c != TARGET]
    # What the preprocess step wrote as the test split, row for row.
    written = pd.read_csv(demo_model.test_csv).drop(columns=[TARGET])
    assert rows.to_numpy().tolist() == written.to_numpy().tolist()


@pytest.mark.parametrize(("items", "message"), [
    (["mean_radius"], "expected FEATURE=SHIFT"),
    (["=2"], "expected FEATURE=SHIFT"),
    (["mean_radius=lots"], "expected FEATURE=SHIFT"),
])
def test_bad_drift_arguments_are_named(items, message):
    with pytest.raises(TrafficError, match=message):
        parse_drift(items)


def test_drift_shifts_a_feature_by_its_standard_deviations(config, frame):
    rows = held_out_rows(config, frame)
    moved = shifted(rows, frame, parse_drift(["mean_radius=2", "mean_texture=-0.5"]))
    assert (moved["mean_radius"] - rows["mean_radius"]).round(9).unique().tolist() == [
        round(2 * frame["mean_radius"].std(), 9)]
    assert moved["mean_area"].equals(rows["mean_area"])
    with pytest.raises(TrafficError, match="no feature radius; the features are mean_radius, "):
        shifted(rows, frame, {"radius": 1.0})


def test_the_malformed_share_is_exact_and_each_kind_is_refusable(config, frame):
    rows = held_out_rows(config, frame)
    sent = list(bodies(rows, Plan(requests=200, malformed_percent=10)))
    assert len(sent) == 200 and sum(bad for _, bad in sent) == 20
    width = rows.shape[1]
    for body, bad in sent:
        cells = body.decode().strip().split(",")
        if not bad:
            assert len(cells) == width and all(float(c) == float(c) for c in cells)
        else:
            assert len(cells) == width - 1 or cells[0] == "not-a-number"
    # More requests than rows: the rows come round again.
    assert len(list(bodies(rows, Plan(requests=len(rows) + 3)))) == len(rows) + 3


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"requests": 0}, "--requests 0"), ({"requests": 1, "rate": 0}, "--rate 0"),
    ({"requests": 1, "malformed_percent": 120}, "--malformed 120"),
    ({"requests": 1, "concurrency": 0}, "--concurrency 0"),
])
def test_bad_plans_are_refused_with_the_flag_named(kwargs, message):
    with pytest.raises(TrafficError, match=message):
        Plan(**kwargs)


def test_percentiles_are_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile(list(map(float, range(1, 101))), 95) == 95.0


def test_drift_takes_several_features_after_one_flag_or_repeated():
    from mlops.cli import build_parser

    args = build_parser().parse_args([
        "traffic", "--env", "local", "--project", "demo", "--requests", "3",
        "--drift", "mean_radius=1", "mean_area=-2", "--drift", "mean_texture=0.5"])
    assert parse_drift(args.drift) == {"mean_radius": 1.0, "mean_area": -2.0, "mean_texture": 0.5}


def test_labels_follow_the_answered_requests_and_flip_an_exact_share(config, frame):
    from mlops.traffic import ground_truth, held_out_labels

    labels = held_out_labels(config, frame)
    assert len(labels) == len(held_out_rows(config, frame)) and set(labels) <= {0.0, 1.0}
    answered = [n for n in range(100) if n % 10 != 3]  # a tenth were refused: no label for them
    body, flipped = ground_truth("run1", answered, labels, 30, "classification")
    lines = [json.loads(line) for line in body.splitlines()]
    assert len(lines) == 90 and flipped == 27
    assert {tuple(line) for line in lines} == {("groundTruthData", "eventMetadata", "eventVersion")}
    by_id = {line["eventMetadata"]["eventId"]: line["groundTruthData"] for line in lines}
    assert "traffic-run1-3" not in by_id
    wrong = sum(float(by_id[f"traffic-run1-{n}"]["data"]) != labels[n % len(labels)] for n in answered)
    assert wrong == 27 and all(v["encoding"] == "CSV" for v in by_id.values())
    with pytest.raises(TrafficError, match="--flip-labels needs --labels"):
        Plan(10, flip_labels_percent=30)


@pytest.mark.parametrize(("items", "message"), [
    (["mean_radius"], "expected FEATURE=QUANTILE"),
    (["mean_radius=1.5"], "0 < QUANTILE < 1"),
    (["mean_radius=0"], "0 < QUANTILE < 1"),
    (["mean_radius=big"], "expected FEATURE=QUANTILE"),
])
def test_bad_skew_arguments_are_named(items, message):
    with pytest.raises(TrafficError, match=message):
        parse_skew(items)


def test_skew_keeps_the_rows_above_the_quantile_within_the_data_range(config, frame):
    rows = held_out_rows(config, frame)
    keep = skewed(rows, parse_skew(["mean_texture=0.66"]))
    kept = rows[keep]
    assert 0.3 * len(rows) <= len(kept) <= 0.36 * len(rows)
    assert kept["mean_texture"].min() >= rows["mean_texture"].quantile(0.66)
    # A population shift, not new values: every kept row is a held-out row as it was.
    assert kept["mean_texture"].max() == rows["mean_texture"].max()
    assert skewed(rows, {}).all()
    with pytest.raises(TrafficError, match="--skew: no feature radius"):
        skewed(rows, {"radius": 0.5})
