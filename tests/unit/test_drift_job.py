"""The drift check's pure parts (settings, windows, events, the reference inside a model tarball,
report keys, progress) and its orchestration over in-memory stand-ins for S3, SageMaker and
CloudWatch; plus the `drift check` CLI's time arguments. AWS itself: tests/integration/
test_drift_handler.py."""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lambdas.shared.drift import build_reference, prepare_reference
from lambdas.shared.drift.job import (
    DriftSettings,
    DriftSettingsError,
    MalformedEventError,
    Progress,
    ReferenceCache,
    ReferenceUnavailableError,
    Window,
    reference_from_tar,
    report_keys,
    run_drift_check,
    scheduled_event_time,
    throttled,
)
from local_aws.lifecycle import LocalAws
from mlops.drift_check import add_check_arguments, parse_when, run_check_command
from mlops.project import Project
from pipelines.bundle import reproducible_tarball

END = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ENV = {
    "PROJECT": "demo",
    "ENDPOINT_NAME": "mlops-dev-demo",
    "CAPTURE_S3_URI": "s3://mlops-dev-capture-123456789012/demo/",
    "ARTIFACTS_BUCKET": "mlops-dev-artifacts-123456789012",
    "MODEL_PACKAGE_GROUP": "mlops-dev-demo",
    "DRIFT_PSI_THRESHOLD": "0.2",
    "DRIFT_P_VALUE": "0.05",
}


def reference_doc(n: int = 300, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return build_reference(
        {"radius": rng.normal(14, 3, n), "texture": rng.normal(19, 4, n)},
        prediction=rng.uniform(0, 1, n),
    )


# ----------------------------------------------------------------------------------- settings


def test_settings_from_env_convert_and_default():
    s = DriftSettings.from_env(
        {**ENV, "WINDOW_MINUTES": "30", "KMS_KEY_ARN": "arn:aws:kms:us-east-1:1:key/k"}
    )
    assert (s.window_minutes, s.psi_threshold, s.p_value) == (30, 0.2, 0.05)
    assert (s.namespace, s.min_rows, s.reference_uri) == ("MLOps/Drift", 200, None)
    config = s.drift_config()
    assert (config.alpha, config.min_psi, config.min_rows) == (0.05, 0.2, 200)


def test_settings_name_every_bad_variable_at_once():
    env = {**ENV, "DRIFT_P_VALUE": "1.5", "WINDOW_MINUTES": "1h", "ENDPOINT_NAME": "bad_name", "PROJECT": ""}
    del env["CAPTURE_S3_URI"]
    with pytest.raises(DriftSettingsError) as err:
        DriftSettings.from_env(env)
    message = str(err.value)
    for expected in (
        "PROJECT: required",
        "CAPTURE_S3_URI: required",
        "DRIFT_P_VALUE: must lie strictly",
        "WINDOW_MINUTES: must be a whole number",
        "ENDPOINT_NAME: not a SageMaker endpoint",
    ):
        assert expected in message


def test_the_reference_is_the_served_models_unless_pinned():
    env = {k: v for k, v in ENV.items() if k != "MODEL_PACKAGE_GROUP"}
    assert DriftSettings.from_env(env).reference_uri is None  # the served package's, at run time
    pinned = DriftSettings.from_env({**env, "REFERENCE_URI": "s3://b/demo/model.tar.gz"})
    assert pinned.model_package_group is None
    with pytest.raises(DriftSettingsError, match="REFERENCE_URI: not an s3:// URI"):
        DriftSettings.from_env({**env, "REFERENCE_URI": "/tmp/model.tar.gz"})


def test_settings_built_in_code_are_checked_too():
    s = DriftSettings.from_env(ENV)
    with pytest.raises(DriftSettingsError, match="DRIFT_PSI_THRESHOLD: must be > 0"):
        DriftSettings(**{**s.__dict__, "psi_threshold": 0.0})


@pytest.mark.parametrize(
    ("schedule", "minutes"),
    [
        ("rate(1 hour)", 60),
        ("rate(30 minutes)", 30),
        ("rate(2 hours)", 120),
        ("rate(1 day)", 1440),
        ("cron(0 * * * ? *)", 60),
    ],
)
def test_window_follows_the_schedule(schedule, minutes):
    from stacks.project_config import Drift

    assert Drift(schedule=schedule).window_minutes == minutes


# ------------------------------------------------------------------------------ window, event


def test_window_ends_at_the_event_and_labels_its_end():
    w = Window.ending_at(END, 60)
    assert (w.since, w.until) == (END - timedelta(hours=1), END)
    assert w.label == "2026-11-23T10-00-00Z"
    assert w.as_dict() == {
        "since": "2026-11-23T09:00:00+00:00",
        "until": "2026-11-23T10:00:00+00:00",
        "minutes": 60.0,
    }
    local = Window.ending_at(datetime(2026, 11, 23, 11, 0, tzinfo=timezone(timedelta(hours=1))), 60)
    assert local == w  # normalised to UTC


def test_window_refuses_naive_and_empty_ranges():
    with pytest.raises(ValueError, match="timezone-aware"):
        Window(datetime(2026, 1, 1), datetime(2026, 1, 2))
    with pytest.raises(ValueError, match="not before"):
        Window(END, END)


def test_scheduled_event_time():
    event = {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-23T10:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/mlops-dev-demo-drift"],
        "detail": {},
    }
    assert scheduled_event_time(json.dumps(event)) == END


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "with a 'time'"),
        ('{"detail": {}}', "with a 'time'"),
        ('{"time": "yesterday"}', "not ISO-8601"),
    ],
)
def test_malformed_events_say_why(body, reason):
    with pytest.raises(MalformedEventError, match=reason):
        scheduled_event_time(body)


# ---------------------------------------------------------------------------------- reference


class OneWayStream:
    """read() only, as a network body: no seek, no tell."""

    def __init__(self, data: bytes):
        self._buffer = io.BytesIO(data)
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._buffer.read(size)
        self.bytes_read += len(chunk)
        return chunk


def model_tarball(
    reference: dict[str, Any] | None, *, name: str = "reference_stats.json", model_bytes: int = 64
) -> bytes:
    files = {"model.joblib": bytes(model_bytes), "model_meta.json": b"{}", "code/inference.py": b"# serve\n"}
    if reference is not None:
        files[name] = json.dumps(reference).encode()
    return reproducible_tarball(files)


def test_reference_is_read_from_a_tar_stream():
    doc = reference_doc()
    stream = OneWayStream(model_tarball(doc))
    assert reference_from_tar(stream) == doc


def test_reference_stops_reading_at_its_member():
    doc = reference_doc(n=50)
    raw = io.BytesIO()  # reference first, then a large incompressible model
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in (
            ("./reference_stats.json", json.dumps(doc).encode()),
            ("model.joblib", np.random.default_rng(1).bytes(2_000_000)),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    stream = OneWayStream(raw.getvalue())
    assert reference_from_tar(stream) == doc  # "./" prefix as `tar -C dir .` writes it
    assert stream.bytes_read < 500_000


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (model_tarball(None), "has no reference_stats.json"),
        (model_tarball(reference_doc(), name="code/reference_stats.json"), "has no reference_stats.json"),
        (b"definitely not a tarball", "not a readable tar archive"),
        (model_tarball({"format": "other"}), "reference_stats.json is invalid: format"),
    ],
)
def test_unusable_artifacts_are_named(data, reason):
    with pytest.raises(ReferenceUnavailableError, match=reason):
        reference_from_tar(OneWayStream(data), "s3://b/model.tar.gz")


def test_reference_cache_prepares_once_per_uri_and_evicts_the_oldest():
    cache, loads = ReferenceCache(max_entries=2), []
    prepared = prepare_reference(reference_doc())

    def loader(uri: str):
        def load():
            loads.append(uri)
            return prepared

        return load

    for uri in ("a", "b", "a", "c", "a", "b"):
        assert cache.get(uri, loader(uri)) is prepared
    assert loads == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came
    assert (cache.hits, cache.misses) == (2, 4)


def test_report_keys():
    s = DriftSettings.from_env(ENV)
    assert report_keys(s, Window.ending_at(END, 60)) == (
        "demo/drift/mlops-dev-demo/2026-11-23T10-00-00Z/report.json",
        "demo/drift/mlops-dev-demo/2026-11-23T10-00-00Z/report.html",
    )


def test_throttled_progress_passes_stage_changes_and_spaces_capture_counts():
    seen, clock = [], iter([0.0, 0.1, 0.2, 0.5, 1.3, 1.4, 1.5])
    emit = throttled(seen.append, 1.0, clock=lambda: next(clock))
    events = [
        Progress("reference", "r"),
        Progress("capture", "start"),
        Progress("capture", "1", 1, 10),
        Progress("capture", "2", 2, 20),
        Progress("capture", "3", 3, 30),
        Progress("capture", "4", 4, 40),
        Progress("compare", "c"),
    ]
    for e in events:
        emit(e)
    assert [e.message for e in seen] == ["r", "start", "3", "c"]


# ------------------------------------------------------------------- orchestration, in memory


class Body:
    def __init__(self, data: bytes):
        self._stream, self.closed = io.BytesIO(data), False

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def iter_lines(self) -> Iterator[bytes]:
        yield from self._stream.read().splitlines()

    def close(self) -> None:
        self.closed = True


class MemoryS3:
    """get/put object and list_objects_v2 pagination (one page), enough for the drift job."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **extra: Any) -> dict:
        self.objects[(Bucket, Key)] = {"Body": Body, **extra}
        return {}

    def get_object(self, *, Bucket: str, Key: str) -> dict:
        return {"Body": Body(self.objects[(Bucket, Key)]["Body"])}

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        s3 = self

        class Paginator:
            def paginate(self, *, Bucket: str, Prefix: str, Delimiter: str | None = None):
                keys = sorted(k for b, k in s3.objects if b == Bucket and k.startswith(Prefix))
                if Delimiter:
                    common = sorted(
                        {
                            Prefix + k[len(Prefix) :].split(Delimiter)[0] + Delimiter
                            for k in keys
                            if Delimiter in k[len(Prefix) :]
                        }
                    )
                    yield {"CommonPrefixes": [{"Prefix": p} for p in common]}
                else:
                    yield {"Contents": [{"Key": k} for k in keys]}

        return Paginator()


class MemoryCloudWatch:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def put_metric_data(self, **request: Any) -> None:
        self.requests.append(request)

    def values(self) -> dict[str, float]:
        return {
            d["MetricName"]: d["Value"]
            for r in self.requests
            for d in r["MetricData"]
            if len(d["Dimensions"]) == 1
        }


class NoSageMaker:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"sagemaker.{name} called although the reference is pinned")


class BootstrapServed:
    """An endpoint still on the model Terraform started it with: no package behind it."""

    def describe_endpoint(self, EndpointName: str) -> dict:
        return {"EndpointConfigName": f"{EndpointName}-bootstrap"}

    def describe_endpoint_config(self, EndpointConfigName: str) -> dict:
        return {"ProductionVariants": [{"ModelName": EndpointConfigName}]}

    def describe_model(self, ModelName: str) -> dict:
        return {"PrimaryContainer": {"Image": "bootstrap", "ModelDataUrl": "s3://b/bootstrap.tar.gz"}}


def capture_line(values: list[float], score: float, at: datetime) -> str:
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "text/csv",
                    "mode": "INPUT",
                    "data": ",".join(repr(float(v)) for v in values),
                    "encoding": "CSV",
                },
                "endpointOutput": {
                    "observedContentType": "text/csv; charset=utf-8",
                    "mode": "OUTPUT",
                    "data": f"{score!r}\n",
                    "encoding": "CSV",
                },
            },
            "eventMetadata": {"eventId": "e", "inferenceTime": at.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "eventVersion": "0",
        }
    )


@pytest.fixture
def pinned() -> tuple[DriftSettings, MemoryS3]:
    s3 = MemoryS3()
    s3.put_object(Bucket="models", Key="demo/run1/model.tar.gz", Body=model_tarball(reference_doc()))
    settings = DriftSettings.from_env(
        {
            **ENV,
            "REFERENCE_URI": "s3://models/demo/run1/model.tar.gz",
            "KMS_KEY_ARN": "arn:aws:kms:us-east-1:123456789012:key/k",
        }
    )
    return settings, s3


def test_an_empty_window_reports_insufficient_data_and_publishes_counts(pinned):
    settings, s3 = pinned
    s3.put_object(
        Bucket="mlops-dev-capture-123456789012",
        Key="demo/mlops-dev-demo/primary/2026/11/23/09/a.jsonl",
        Body=b"{broken\n",
    )
    cloudwatch, events = MemoryCloudWatch(), []
    summary = run_drift_check(
        settings,
        Window.ending_at(END, 60),
        s3=s3,
        sagemaker=NoSageMaker(),
        cloudwatch=cloudwatch,
        progress=events.append,
        now=END,
    )
    assert summary["status"] == "insufficient_data" and summary["drifted"] is False
    assert (summary["n_rows"], summary["malformed_records"]) == (0, 1)
    assert cloudwatch.values() == {"CurrentRows": 0.0, "MalformedRecords": 1.0}
    assert cloudwatch.requests[0]["Namespace"] == "MLOps/Drift"
    html = s3.objects[
        ("mlops-dev-artifacts-123456789012", "demo/drift/mlops-dev-demo/2026-11-23T10-00-00Z/report.html")
    ]
    assert "insufficient data" in html["Body"].decode()
    assert html["SSEKMSKeyId"].endswith("key/k") and html["ServerSideEncryption"] == "aws:kms"
    assert summary["report_html"].endswith("2026-11-23T10-00-00Z/report.html")
    assert [e.stage for e in events][-1] == "done"
    assert any(e.stage == "capture" and e.files == 1 and e.records == 1 for e in events)


def test_a_shifted_window_drifts_and_old_windows_publish_no_metrics(pinned):
    settings, s3 = pinned
    rng = np.random.default_rng(3)
    lines = [
        capture_line([r * 1.5, t], 0.5, END - timedelta(minutes=30))
        for r, t in zip(rng.normal(14, 3, 200), rng.normal(19, 4, 200), strict=True)
    ]
    s3.put_object(
        Bucket="mlops-dev-capture-123456789012",
        Key="demo/mlops-dev-demo/primary/2026/11/23/09/b.jsonl",
        Body="\n".join(lines).encode(),
    )
    cloudwatch = MemoryCloudWatch()
    later = END + timedelta(days=15)
    summary = run_drift_check(
        settings, Window.ending_at(END, 60), s3=s3, sagemaker=NoSageMaker(), cloudwatch=cloudwatch, now=later
    )
    assert summary["drifted"] and "radius" in summary["drifted_features"]
    assert summary["metrics_published"] == 0 and "14 days" in summary["metrics_skipped"]
    assert cloudwatch.requests == []
    report = json.loads(
        s3.objects[
            ("mlops-dev-artifacts-123456789012", "demo/drift/mlops-dev-demo/2026-11-23T10-00-00Z/report.json")
        ]["Body"]
    )
    assert report["features"]["radius"]["drifted"] and not report["features"]["texture"]["drifted"]
    assert report["capture"]["rows"] == 200 and report["window"]["reference"].endswith("model.tar.gz")


def test_an_endpoint_on_its_bootstrap_model_has_no_reference():
    with pytest.raises(ReferenceUnavailableError, match="made from no model package"):
        run_drift_check(
            DriftSettings.from_env(ENV),
            Window.ending_at(END, 60),
            s3=MemoryS3(),
            sagemaker=BootstrapServed(),
            cloudwatch=MemoryCloudWatch(),
        )


# ------------------------------------------------------------------------ CLI time arguments

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("2h", NOW - timedelta(hours=2)),
        ("1d", NOW - timedelta(days=1)),
        ("2026-11-23T10:00:00Z", END),
        ("2026-11-23T10:00", END),  # naive: UTC
        ("2026-11-23T11:00:00+01:00", END),
        ("2026-11-23", datetime(2026, 11, 23, tzinfo=UTC)),
    ],
)
def test_since_accepts_iso_and_relative_times(text, expected):
    assert parse_when(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [("2 hours", "neither an ISO-8601"), ("0h", "at least 1h"), ("-2h", "neither"), ("", "neither")],
)
def test_since_refuses_other_forms(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_when(text, NOW)


def check_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_check_arguments(parser)
    return parser.parse_args(["--env", "local", "--project", "demo", *argv])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "yesterday"], "--since/--until: 'yesterday' is neither"),
        (["--since", "1h", "--until", "2h"], "--since 1h is not before --until 2h"),
    ],
)
def test_bad_times_exit_2_before_touching_aws(argv, message, capsys):
    assert run_check_command(check_args(*argv), checkout=None) == 2  # type: ignore[arg-type]
    assert message in capsys.readouterr().err


def test_a_check_without_the_local_aws_says_how_to_start_it(monkeypatch, capsys, tmp_path):
    class StoppedLocalAws:
        def __init__(self, checkout: Project):
            self.local = LocalAws(tmp_path / "local")  # nothing ever started there

    monkeypatch.setattr("mlops.deploy.Deployer", StoppedLocalAws)
    root = Path(__file__).resolve().parents[2]
    assert run_check_command(check_args("--since", "2h"), Project(root)) == 1
    assert "the local AWS is not running: start it with `mlops local up`" in capsys.readouterr().err
