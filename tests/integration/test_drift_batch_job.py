"""The drift batch pipeline on the local AWS: its definition, as synthesized, run by the local
pipeline runner with two instances for the counting step (two processes, each given its share of
the window's capture files by ShardedByS3Key over the manifest, each seeing its own
resourceconfig.json), then the merge; its report equals the one-process check's (the drift
Lambda's code path, `run_drift_check`) bit for bit, and its metrics reach CloudWatch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from lambdas.shared.drift import build_reference
from lambdas.shared.drift.job import DriftSettings, Window, run_drift_check
from local_aws.data_capture import CaptureConfig, capture_record
from local_aws.pipeline_runner import LocalPipelineRunner
from pipelines.bundle import CODE, step_scripts
from stacks.project_config import DriftBatch, load_projects
from tests.unit.test_pipeline_definition import target

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CAPTURE, ARTIFACTS = "mlops-local-capture-dj", "mlops-local-artifacts-dj"
ENDPOINT = "mlops-local-demo"
BUNDLE = "demo/pipeline/batchtest"
CAPTURE_CONFIG = CaptureConfig.from_api({
    "EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": f"s3://{CAPTURE}/demo",
    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]}})
COLUMNS = ["radius", "texture", "grade", "colour"]


def _rows(rng: np.random.Generator, n: int, shift: float) -> list[list]:
    radius = np.round(rng.normal(14 + shift, 3, n), 2)  # rounded: ties across shards
    texture = rng.normal(19, 4, n)
    grade = np.floor(rng.gamma(2.0, 2.0, n))
    colour = rng.choice(["red", "green", "blue", "mauve" if shift else "red"], n)
    return [[float(a), float(b), float(c), d]
            for a, b, c, d in zip(radius, texture, grade, colour, strict=True)]


def _setup(server, end: datetime) -> dict[str, str]:
    s3 = server.client("s3")
    for bucket in (CAPTURE, ARTIFACTS):
        s3.create_bucket(Bucket=bucket)
    rng = np.random.default_rng(3)
    train = _rows(rng, 2000, 0.0)
    columns = {c: np.array([r[i] for r in train]) for i, c in enumerate(COLUMNS)}
    reference = build_reference(columns, categorical=["colour"], prediction=rng.uniform(0, 1, 2000))
    s3.put_object(Bucket=ARTIFACTS, Key="demo/reference/reference_stats.json", Body=json.dumps(reference))
    for name, content in step_scripts().items():  # what Terraform uploads as the step bundle
        s3.put_object(Bucket=ARTIFACTS, Key=f"{BUNDLE}/{CODE}/{name}", Body=content)
    # Seven capture files over two hours of the window, some records outside it, one broken line.
    for f in range(7):
        at = end - timedelta(minutes=10 + 9 * f)
        lines = []
        for n, row in enumerate(_rows(rng, 120 + 10 * f, 0.8)):
            body = (",".join(str(v) for v in row) + "\n").encode()
            when = at - timedelta(hours=2) if n % 37 == 0 else at  # out of the window: skipped
            lines.append(json.dumps(capture_record(
                CAPTURE_CONFIG, request_type="text/csv", request=body, response_type="text/csv",
                response=f"{rng.uniform(0.1, 1):.6f}\n".encode(), inference_id=None, at=when)))
        lines.append('{"captureData": ')
        key = f"demo/{ENDPOINT}/primary/{at:%Y/%m/%d/%H}/part-{f}.jsonl"
        s3.put_object(Bucket=CAPTURE, Key=key, Body="\n".join(lines).encode())
    return {
        "PROJECT": "demo", "ENDPOINT_NAME": ENDPOINT, "CAPTURE_S3_URI": f"s3://{CAPTURE}/demo/",
        "ARTIFACTS_BUCKET": ARTIFACTS, "REFERENCE_URI": f"s3://{ARTIFACTS}/demo/reference/reference_stats.json",
        "DRIFT_PSI_THRESHOLD": "0.2", "DRIFT_P_VALUE": "0.05", "WINDOW_MINUTES": "90", "DRIFT_MIN_ROWS": "50",
        "CAPTURE_LAG_MINUTES": "0", "METRICS_NAMESPACE": "MLOps/Drift",
    }


def _report(server, end: datetime) -> dict:
    key = f"demo/drift/{ENDPOINT}/{end:%Y-%m-%dT%H-%M-%SZ}/report.json"
    report = json.loads(server.client("s3").get_object(Bucket=ARTIFACTS, Key=key)["Body"].read())
    report.pop("generated_at")
    return report


def test_two_instances_merge_to_the_one_process_result(moto_server, tmp_path):
    from pipelines.definition import drift_batch_definition

    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    environment = _setup(moto_server, end)
    demo = load_projects(ROOT)["demo"]["local"]
    project = demo.model_copy(update={"drift": demo.drift.model_copy(
        update={"batch": DriftBatch(enabled=True, instance_count=2)})})
    definition = json.loads(drift_batch_definition(
        project, target(artifacts_bucket=ARTIFACTS, bundle_prefix=BUNDLE, region=moto_server.region),
        "mlops-local-demo-drift", environment))

    said: list[str] = []
    runner = LocalPipelineRunner(definition, moto_server.client("s3"), tmp_path / "run",
                                 moto_server.client_env(), said.append, {"WindowEnd": end.isoformat()})
    result = runner.run("exec1", "mlops-local-demo-drift")
    assert result.status == "Succeeded", (result.reason, said)
    assert [s.name for s in result.steps] == ["ListDriftWindow", "CountDriftShard", "MergeDriftShards"]
    assert result.steps[1].detail == "2 instances"

    # Each instance had its own share of the files and its own host name.
    shards = {}
    for host in ("algo-1", "algo-2"):
        sandbox = tmp_path / "run" / "CountDriftShard" / host
        config = json.loads((sandbox / "opt/ml/config/resourceconfig.json").read_text())
        assert config == {"current_host": host, "hosts": ["algo-1", "algo-2"]}
        shards[host] = sorted(p.name for p in (sandbox / "opt/ml/processing/input/capture").rglob("*.jsonl"))
    assert len(shards["algo-1"]) == 4 and len(shards["algo-2"]) == 3
    assert not set(shards["algo-1"]) & set(shards["algo-2"])
    listed = moto_server.client("s3").list_objects_v2(Bucket=ARTIFACTS,
                                                      Prefix="demo/runs/exec1/drift/partials/")
    assert sorted(o["Key"].rsplit("/", 1)[1] for o in listed["Contents"]) == ["partial-algo-1.npz",
                                                                            "partial-algo-2.npz"]
    merged = _report(moto_server, end)
    points = moto_server.client("cloudwatch").get_metric_statistics(
        Namespace="MLOps/Drift", MetricName="CurrentRows",
        Dimensions=[{"Name": "EndpointName", "Value": ENDPOINT}],
        StartTime=end - timedelta(minutes=1), EndTime=end + timedelta(minutes=1), Period=60,
        Statistics=["Maximum"])["Datapoints"]
    assert [p["Maximum"] for p in points] == [merged["capture"]["rows"]]

    # The one-process check of the same window (the drift Lambda's code) writes the same report.
    run_drift_check(DriftSettings.from_env(environment), Window.ending_at(end, 90),
                    s3=moto_server.client("s3"), sagemaker=moto_server.client("sagemaker"),
                    cloudwatch=moto_server.client("cloudwatch"), publish=False)
    one_process = _report(moto_server, end)
    assert merged == one_process  # JSON floats round-trip: equal means equal bits
    _an_empty_window_too(moto_server, definition, environment, end - timedelta(hours=5), tmp_path)
    assert merged["capture"]["objects"] == 7 and merged["malformed"] == {"invalid_json": 7}
    assert merged["summary"]["n_drifted"] >= 1
    assert merged["features"]["colour"]["unseen_categories"] == ["mauve"]


def _an_empty_window_too(server, definition: dict, environment: dict, end: datetime,
                           tmp_path: Path) -> None:
    """A window without capture files: the manifest names the list step's empty placeholder, one
    instance gets it and the other nothing, and the report says insufficient data, as the
    one-process check's does."""
    runner = LocalPipelineRunner(definition, server.client("s3"), tmp_path / "empty", server.client_env(),
                                 lambda _: None, {"WindowEnd": end.isoformat()})
    result = runner.run("exec2", "mlops-local-demo-drift")
    assert result.status == "Succeeded", result.reason
    merged = _report(server, end)
    run_drift_check(DriftSettings.from_env(environment), Window.ending_at(end, 90), s3=server.client("s3"),
                    sagemaker=server.client("sagemaker"), cloudwatch=server.client("cloudwatch"),
                    publish=False)
    assert merged == _report(server, end)
    assert merged["summary"]["status"] == "insufficient_data" and merged["capture"]["objects"] == 0
