"""Every parser of outside input, fed thousands of generated inputs (hypothesis): the shipped
files and sample events with one field replaced or removed, and arbitrary text. None may raise
anything but its own error, each rejection names what was wrong, and nothing is lost silently.
(The model server's request parsing is fuzzed with a trained model in test_pipeline_steps.py.)"""

from __future__ import annotations

import copy
import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdas.shared.control import events
from lambdas.shared.control.errors import MalformedEventError
from lambdas.shared.drift.capture import CaptureSchema, parse_capture_lines
from lambdas.shared.quality.labels import Malformed, parse_label, parse_prediction
from lambdas.shared.scheduled_window import MalformedEventError as MalformedScheduleError
from lambdas.shared.scheduled_window import scheduled_event_time
from stacks.config import ConfigError, load_environment
from stacks.project_config import load_project_all

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "tests" / "fixtures" / "events"
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REMOVE = object()  # replace a field by nothing: the key is deleted

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON-like document, containers included."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def mutated(document: Any) -> st.SearchStrategy[Any]:
    """The document with one field (anywhere, at any depth) replaced by a generated value or removed."""
    every = paths(document)

    def apply(path: tuple, value: Any) -> Any:
        doc = copy.deepcopy(document)
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        if value is REMOVE:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        return doc

    return st.builds(apply, st.sampled_from(every), json_values | st.just(REMOVE))


# --- configuration files --------------------------------------------------------------------------

ENV_FILE = yaml.safe_load((ROOT / "environments" / "dev.yaml").read_text())
PROJECT_FILE = yaml.safe_load((ROOT / "environments" / "projects" / "demo.yaml").read_text())


def loaded(loader: Callable[[Path], Any], name: str, text: str) -> None:
    """The loader either accepts the file or raises ConfigError, every line `file: field: reason`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8")
        try:
            loader(path)
        except ConfigError as exc:
            assert exc.problems, "a ConfigError names at least one problem"
            for file, field, reason in exc.problems:
                assert file.endswith(name) and field and reason.strip(), exc.problems
            assert str(exc).count("\n") == len(exc.problems) - 1


@FUZZ
@given(mutated(ENV_FILE))
def test_environment_files_with_a_wrong_field(document):
    loaded(load_environment, "dev.yaml", yaml.safe_dump(document))


@FUZZ
@given(mutated(PROJECT_FILE))
def test_project_files_with_a_wrong_field(document):
    loaded(load_project_all, "demo.yaml", yaml.safe_dump(document))


@FUZZ
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_config_files_that_are_not_yaml_mappings(text):
    loaded(load_environment, "dev.yaml", text)
    loaded(load_project_all, "demo.yaml", text)


# --- events ---------------------------------------------------------------------------------------

SCHEDULED = {"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
             "source": "aws.events", "account": "123456789012", "time": "2026-12-01T12:00:00Z",
             "region": "us-east-1", "detail": {},
             "resources": ["arn:aws:events:us-east-1:123456789012:rule/mlops-dev-demo"]}
SAMPLES = {path.stem: json.loads(path.read_text()) for path in sorted(EVENTS.glob("*.json"))}
SAMPLES["scheduled"] = SCHEDULED


def accept(body: str) -> Any:
    """Each handler's parse of an SQS body, then what its decisions read of the event."""
    found = []
    for parse in (
        lambda: events.package_event("m-1", body, "mlops-dev-demo", "Approved"),
        lambda: events.package_event("m-1", body, "mlops-dev-demo", "PendingManualApproval"),
        lambda: events.alarm_event("m-1", body, frozenset({"mlops-dev-demo-errors"})),
        lambda: events.endpoint_event("m-1", body, "mlops-dev-demo"),
        lambda: events.scheduled_event("m-1", body),
    ):
        try:
            event = parse()
        except MalformedEventError as exc:
            assert str(exc).startswith("SQS message m-1: "), exc
            continue
        if event is None:
            continue
        found.append(event)
        event.changed_at  # noqa: B018 - every decision reads it
        if isinstance(event, events.EndpointStateChange):
            event.change(event.changed_at.isoformat())
            events.endpoint_identity(event)
        elif isinstance(event, events.ModelPackageStateChange):
            events.package_identity(event)
            assert event.package.arn
        elif isinstance(event, events.AlarmStateChange):
            events.alarm_identity(event)
        else:
            events.scheduled_identity(event)
    try:
        scheduled_event_time(body)
    except MalformedScheduleError as exc:
        assert str(exc), exc
    return found


def test_every_sample_event_is_accepted_as_it_is():
    kinds = {"SageMaker Model Package State Change": events.ModelPackageStateChange,
             "CloudWatch Alarm State Change": events.AlarmStateChange,
             "SageMaker Endpoint State Change": events.EndpointStateChange,
             "SageMaker Endpoint Deployment State Change": events.EndpointDeploymentStateChange,
             "Scheduled Event": events.ScheduledEvent}
    for name, sample in SAMPLES.items():
        assert isinstance(events.parse_body("m-1", json.dumps(sample), kinds[sample["detail-type"]]),
                          kinds[sample["detail-type"]]), name
    assert len(accept(json.dumps(SAMPLES["model_package_approved"]))) == 1


@FUZZ
@given(st.sampled_from(sorted(SAMPLES)).flatmap(lambda name: mutated(SAMPLES[name])))
def test_sample_events_with_a_wrong_field(event):
    accept(json.dumps(event))


@FUZZ
@given(json_values.map(json.dumps) | st.text(max_size=100))
def test_bodies_that_are_not_events(body):
    accept(body)


# --- capture and ground truth ---------------------------------------------------------------------

SCHEMA = CaptureSchema(columns=("radius", "texture", "colour"), numeric=("radius", "texture"),
                       categorical=("colour",), prediction_kind="numeric")
T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
CAPTURE = {
    "captureData": {
        "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": "14.1,20.3,red",
                          "encoding": "CSV"},
        "endpointOutput": {"observedContentType": "text/csv; charset=utf-8", "mode": "OUTPUT",
                           "data": "0.93\n", "encoding": "CSV"}},
    "eventMetadata": {"eventId": "3f6b8a52-0a1c-4d8e-9d6b-0f4c1d2e3a4b", "inferenceId": "traffic-1-0",
                      "inferenceTime": "2026-12-01T10:05:00.000Z"},
    "eventVersion": "0",
}
LABEL = {"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "traffic-1-0"},
         "eventVersion": "0"}
lines = mutated(CAPTURE).map(json.dumps) | st.text(max_size=80) | json_values.map(json.dumps)


@FUZZ
@given(st.lists(lines, min_size=1, max_size=8))
def test_capture_lines_are_parsed_or_counted_never_lost(batch):
    since, until = T0, T0 + timedelta(hours=1)
    window = parse_capture_lines(batch, SCHEMA, since=since, until=until)
    nonblank = [line for line in batch if line.strip()]
    # Each line shows somewhere: rows taken (with a bad output or bad rows also counted
    # malformed), malformed, or outside the window.
    for line in nonblank:
        alone = parse_capture_lines([line], SCHEMA, since=since, until=until)
        assert alone.n_records + alone.n_malformed + alone.n_out_of_window >= 1, line
    assert window.n_records + window.n_out_of_window <= len(nonblank)
    assert window.n_rows == sum(len(c) for c in window.columns.values()) / len(window.columns)


@FUZZ
@given(mutated(LABEL).map(json.dumps) | mutated(CAPTURE).map(json.dumps) | st.text(max_size=80)
       | json_values.map(json.dumps))
def test_label_and_prediction_lines_are_read_or_refused_with_a_reason(line):
    for parse in (parse_label, parse_prediction):
        try:
            parse(line)
        except Malformed as bad:
            assert bad.reason, line
