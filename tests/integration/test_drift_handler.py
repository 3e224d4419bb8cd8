"""The drift handler and `mlops drift check` against a moto server over HTTP: a real reference
(the demo data's train split, inside a model.tar.gz of an Approved model package), SageMaker
data-capture JSONL objects as the endpoint writes them, EventBridge scheduled events delivered as
an SQS batch, and the metrics read back from CloudWatch.

Moto gaps: the handler's calls (ListModelPackages filtered by ModelApprovalStatus, streamed
GetObject, SSE-KMS PutObject, PutMetricData with timestamps) behave as in AWS; ListMetrics lists a
metric once per datapoint (AWS: once), so the test compares sets. moto runs no Lambda and no
schedule: the test builds the events and calls the handler, as the SQS event source mapping would.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from lambdas.shared.drift import build_reference
from mlops.drift_check import add_check_arguments, run_check_command
from mlops.project import Project
from pipelines.bundle import reproducible_tarball
from pipelines.dataset import breast_cancer_frame
from tests.deployed_functions import deploy_function

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
PROJECT = "demo"
VARIANT = "primary"
TARGET = "malignant"
ROWS_PER_FILE = 150


class FakeContext:
    memory_limit_in_mb = 1024
    aws_request_id = "req"
    function_name = "mlops-dev-demo-drift"
    invoked_function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:mlops-dev-demo-drift"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@dataclass
class Data:
    """The demo data split as the pipeline would: a train split (the reference) and the rest."""

    columns: list[str]
    train: np.ndarray
    everything: np.ndarray
    mean: float
    std: float

    def score(self, rows: np.ndarray) -> np.ndarray:
        """A stand-in classifier: malignancy probability rises with mean_radius."""
        z = (rows[:, self.columns.index("mean_radius")] - self.mean) / self.std
        return 1 / (1 + np.exp(-2 * z))

    def sample(self, n: int, seed: int, radius_factor: float = 1.0) -> np.ndarray:
        rows = self.everything[np.random.default_rng(seed).integers(0, len(self.everything), n)].copy()
        rows[:, self.columns.index("mean_radius")] *= radius_factor
        return rows


@pytest.fixture(scope="module")
def data() -> Data:
    frame = breast_cancer_frame()
    columns = [c for c in frame.columns if c != TARGET]
    values = frame[columns].to_numpy(dtype=float)
    train = values[np.random.default_rng(42).permutation(len(values))[: int(0.7 * len(values))]]
    radius = train[:, columns.index("mean_radius")]
    return Data(columns, train, values, float(radius.mean()), float(radius.std()))


def capture_line(row: np.ndarray, score: float, at: datetime, base64_encoded: bool) -> str:
    csv = ",".join(repr(float(v)) for v in row)
    data, encoding = (base64.b64encode(csv.encode()).decode(), "BASE64") if base64_encoded else (csv, "CSV")
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "text/csv",
                    "mode": "INPUT",
                    "data": data,
                    "encoding": encoding,
                },
                "endpointOutput": {
                    "observedContentType": "text/csv; charset=utf-8",
                    "mode": "OUTPUT",
                    "data": f"{float(score)!r}\n",
                    "encoding": "CSV",
                },
            },
            "eventMetadata": {
                "eventId": str(uuid.uuid4()),
                "inferenceTime": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            },
            "eventVersion": "0",
        }
    )


# Broken lines the reader skips and counts. A line without a readable inferenceTime cannot be
# placed in a window, so it counts in every window whose listing reaches its file (the capture
# reader also lists the hour before a window, for files opened then); the test puts such lines
# in the last window only, so that each window's count is its own.
DATED = ("wrong_column_count", "non_numeric_value")
UNDATED = ("invalid_json", "missing_keys")


def malformed_line(reason: str, row: np.ndarray, at: datetime) -> str:
    if reason == "invalid_json":
        return capture_line(row, 0.5, at, False)[:57]  # a torn line
    record = json.loads(capture_line(row, 0.5, at, False))
    block = record["captureData"]["endpointInput"]
    if reason == "missing_keys":
        del record["captureData"]
    elif reason == "wrong_column_count":
        block["data"] = ",".join(block["data"].split(",")[:3])
    elif reason == "non_numeric_value":
        block["data"] = ",".join(["17.2", "abc", *block["data"].split(",")[2:]])
    return json.dumps(record)


class World:
    """What the platform and project stacks provision for one environment prefix, plus the
    model package a training run registered and approved."""

    def __init__(self, server: Any, prefix: str, data: Data):
        self.prefix, self.data = prefix, data
        self.endpoint = self.group = f"{prefix}-{PROJECT}"
        self.capture_bucket = f"{prefix}-capture-{ACCOUNT}"
        self.artifacts_bucket = f"{prefix}-artifacts-{ACCOUNT}"
        self.s3, self.sm, self.cw = (
            server.client("s3"),
            server.client("sagemaker"),
            server.client("cloudwatch"),
        )
        self.key_arn = server.client("kms").create_key(Description="platform")["KeyMetadata"]["Arn"]
        for bucket in (self.capture_bucket, self.artifacts_bucket):
            self.s3.create_bucket(Bucket=bucket)
        self.sm.create_model_package_group(ModelPackageGroupName=self.group)
        reference = build_reference(
            dict(zip(data.columns, data.train.T, strict=True)), prediction=data.score(data.train)
        )
        self.approved = self.register("run-1", reference, "Approved")
        # Newer and approved, but not served (its deployment has not happened, or was rolled
        # back), without a reference: the check must not pick it.
        self.register("run-2", None, "Approved")
        self.serve(self.approved)

    def serve(self, package: str) -> None:
        """The endpoint on `package`, as the deploy handler leaves it."""
        name = f"{self.endpoint}-v1"
        self.sm.create_model(ModelName=name, PrimaryContainer={"ModelPackageName": package},
                             ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/{self.prefix}-execution")
        self.sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
            "VariantName": "primary", "ModelName": name, "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1}])
        self.sm.create_endpoint(EndpointName=self.endpoint, EndpointConfigName=name)

    def register(self, run: str, reference: dict[str, Any] | None, status: str) -> str:
        files = {
            "model.joblib": np.random.default_rng(0).bytes(300_000),
            "model_meta.json": json.dumps({"features": self.data.columns, "task": "classification"}).encode(),
            "code/inference.py": b"# the serving code\n",
        }
        if reference is not None:
            files["reference_stats.json"] = json.dumps(reference).encode()
        key = f"{PROJECT}/training/{run}/output/model.tar.gz"
        self.s3.put_object(Bucket=self.artifacts_bucket, Key=key, Body=reproducible_tarball(files))
        return self.sm.create_model_package(
            ModelPackageGroupName=self.group,
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/{self.prefix}-inference:1",
                        "ModelDataUrl": f"s3://{self.artifacts_bucket}/{key}",
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            ModelApprovalStatus=status,
        )["ModelPackageArn"]

    def capture(
        self, rows: np.ndarray, start: datetime, end: datetime, malformed: tuple[str, ...] = ()
    ) -> None:
        """Requests spread over [start, end), in files of ROWS_PER_FILE named by the hour of their
        first request, as SageMaker lays them out; one broken line per `malformed` reason goes
        into the first file."""
        step = (end - start) / len(rows)
        times = [start + i * step for i in range(len(rows))]
        lines = [
            capture_line(row, score, at, i % 7 == 0)
            for i, (row, score, at) in enumerate(zip(rows, self.data.score(rows), times, strict=True))
        ]
        broken = [malformed_line(reason, rows[0], start) for reason in malformed]
        for first in range(0, len(lines), ROWS_PER_FILE):
            at = times[first]
            body = lines[first : first + ROWS_PER_FILE] + (broken if first == 0 else [])
            key = (
                f"{PROJECT}/{self.endpoint}/{VARIANT}/{at:%Y/%m/%d/%H}/{at:%M-%S-%f}"[:-3]
                + f"-{uuid.uuid4()}.jsonl"
            )
            self.s3.put_object(Bucket=self.capture_bucket, Key=key, Body="\n".join(body).encode() + b"\n")

    def metric(self, name: str, at: datetime) -> float | None:
        points = self.cw.get_metric_statistics(
            Namespace="MLOps/Drift",
            MetricName=name,
            Dimensions=[{"Name": "EndpointName", "Value": self.endpoint}],
            StartTime=at - timedelta(minutes=1),
            EndTime=at + timedelta(minutes=1),
            Period=60,
            Statistics=["Maximum", "SampleCount"],
        )["Datapoints"]
        assert len(points) <= 1 and all(p["SampleCount"] == 1 for p in points), points
        return points[0]["Maximum"] if points else None

    def report(self, at: datetime, kind: str) -> tuple[bytes, dict[str, Any]]:
        key = f"{PROJECT}/drift/{self.endpoint}/{at:%Y-%m-%dT%H-%M-%SZ}/report.{kind}"
        obj = self.s3.get_object(Bucket=self.artifacts_bucket, Key=key)
        return obj["Body"].read(), obj


def scheduled_event(at: datetime, rule: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:{ACCOUNT}:rule/{rule}"],
        "detail": {},
    }


def sqs_batch(bodies: list[str], queue: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"msg-{i}",
                "receiptHandle": "rh",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1772446507000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:{ACCOUNT}:{queue}",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def load_handler(server: Any, world: World, monkeypatch: pytest.MonkeyPatch) -> Any:
    env = {
        **server.client_env(),
        "PROJECT": PROJECT,
        "ENDPOINT_NAME": world.endpoint,
        "CAPTURE_S3_URI": f"s3://{world.capture_bucket}/{PROJECT}/",
        "ARTIFACTS_BUCKET": world.artifacts_bucket,
        "MODEL_PACKAGE_GROUP": world.group,
        "KMS_KEY_ARN": world.key_arn,
        "DRIFT_PSI_THRESHOLD": "0.2",
        "DRIFT_P_VALUE": "0.05",
        "WINDOW_MINUTES": "60",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # Settings are read at import (cold start): a fresh module, as a fresh container.
    name = "lambdas.drift.handler"
    return importlib.reload(sys.modules[name]) if name in sys.modules else importlib.import_module(name)


def test_scheduled_checks_publish_drift_metrics_and_reports(moto_server, monkeypatch, data):
    world = World(moto_server, "mlops-dev", data)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    shifted_end = now - timedelta(minutes=5)
    unshifted_end = shifted_end - timedelta(hours=1)
    empty_end = unshifted_end - timedelta(hours=1)
    handler = load_handler(moto_server, world, monkeypatch)
    rule = f"{world.endpoint}-drift"

    def deliver(*bodies: str) -> list[str]:
        """One SQS batch; the ids of the records reported as failed."""
        response = handler.handler(sqs_batch(list(bodies), rule), FakeContext())
        return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]

    def tick(at: datetime) -> str:
        return json.dumps(scheduled_event(at, rule))

    # Data is captured before the check of its window runs, as in time: two ticks queued, then one.
    world.capture(data.sample(450, seed=1), unshifted_end - timedelta(hours=1), unshifted_end, DATED)
    assert deliver(tick(empty_end), tick(unshifted_end)) == []
    world.capture(data.sample(450, seed=2, radius_factor=1.5), unshifted_end, shifted_end, DATED + UNDATED)
    assert deliver(tick(shifted_end), "this is no event") == ["msg-1"]  # only the non-event fails
    assert (handler.references.misses, handler.references.hits) == (1, 2)  # one download, warm reuse

    # Shifted mean_radius: the feature, the predictions and the summary say drift.
    assert world.metric("DriftedFeatureShare", shifted_end) > 0
    assert world.metric("DriftedFeatures", shifted_end) >= 1
    assert world.metric("MaxPSI", shifted_end) > 0.2
    assert world.metric("PredictionDrift", shifted_end) == 1.0
    assert world.metric("PredictionPSI", shifted_end) > 0.2
    assert world.metric("MalformedRecords", shifted_end) == len(DATED + UNDATED)
    assert world.metric("CurrentRows", shifted_end) == 450
    feature_metrics = world.cw.list_metrics(Namespace="MLOps/Drift", MetricName="FeaturePSI")["Metrics"]
    # (a set: moto lists a metric once per datapoint, AWS once)
    features = {(tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"]))) for m in feature_metrics}
    assert features == {(("EndpointName", world.endpoint), ("Feature", c)) for c in data.columns}

    # The same population: quiet.
    assert world.metric("DriftedFeatureShare", unshifted_end) == 0
    assert world.metric("MaxPSI", unshifted_end) < 0.2
    assert world.metric("PredictionDrift", unshifted_end) == 0.0
    assert world.metric("MalformedRecords", unshifted_end) == len(DATED)
    assert world.metric("CurrentRows", unshifted_end) == 450

    # Nothing captured: counts only, and a report that says so.
    assert world.metric("CurrentRows", empty_end) == 0
    assert world.metric("MalformedRecords", empty_end) == 0
    assert world.metric("MaxPSI", empty_end) is None
    empty_report = json.loads(world.report(empty_end, "json")[0])
    assert empty_report["summary"]["status"] == "insufficient_data"
    assert "insufficient data" in world.report(empty_end, "html")[0].decode()

    html, html_object = world.report(shifted_end, "html")
    assert '<div class="feature drifted" id="f-mean_radius">' in html.decode()
    assert html_object["ContentType"].startswith("text/html")
    assert html_object["ServerSideEncryption"] == "aws:kms" and html_object["SSEKMSKeyId"] == world.key_arn
    report = json.loads(world.report(shifted_end, "json")[0])
    assert report["drifted"] and report["features"]["mean_radius"]["drifted"]
    assert report["window"]["model_package_arn"] == world.approved
    assert report["malformed"] == dict.fromkeys(sorted(DATED + UNDATED), 1)
    assert not json.loads(world.report(unshifted_end, "json")[0])["drifted"]


@dataclass(frozen=True)
class Checkout(Project):
    """This repository's configuration, with local working state in a temporary folder."""

    scratch: Path = Path()

    @property
    def local_dir(self) -> Path:
        return self.scratch


def test_drift_check_cli_runs_the_same_check_on_the_local_aws(
    moto_server, monkeypatch, data, tmp_path, capsys
):
    world = World(moto_server, "mlops-local", data)
    now = datetime.now(UTC)
    world.capture(
        data.sample(300, seed=3, radius_factor=1.5), now - timedelta(minutes=50), now - timedelta(minutes=2)
    )

    class LocalDeployer:  # the local AWS `mlops local up` would have started
        def __init__(self, checkout: Project):
            self.local = SimpleNamespace(require=lambda: moto_server)

    monkeypatch.setattr("mlops.deploy.Deployer", LocalDeployer)
    parser = argparse.ArgumentParser()
    add_check_arguments(parser)
    args = parser.parse_args(["--env", "local", "--project", PROJECT, "--since", "1h", "--json"])
    assert run_check_command(args, Checkout(ROOT, scratch=tmp_path)) == 0

    out = capsys.readouterr()
    result = json.loads(out.out)
    assert result["drifted"] and "mean_radius" in result["drifted_features"]
    assert result["endpoint"] == "mlops-local-demo" and result["n_rows"] == 300
    assert result["report_html"].startswith(
        f"s3://{world.artifacts_bucket}/{PROJECT}/drift/mlops-local-demo/"
    )
    local = Path(result["report_html_local"])
    assert (
        local.is_relative_to(tmp_path / "drift" / "mlops-local-demo") and "mean_radius" in local.read_text()
    )
    assert "==> reading capture" in out.err and "report" in out.err
    assert result["metrics_published"] > 0 and world.cw.list_metrics(Namespace="MLOps/Drift")["Metrics"]

    quiet = parser.parse_args(["--env", "local", "--project", PROJECT, "--since", "1h", "--no-metrics"])
    assert run_check_command(quiet, Checkout(ROOT, scratch=tmp_path)) == 0
    human = capsys.readouterr().out
    assert "verdict: DRIFT; drifted features" in human and "mean_radius" in human
    assert f"open:   {tmp_path}" in human and "metrics: none published" in human


def wire_drift_check(server: Any, world: World) -> dict[str, str]:
    """What the project stack creates for the drift check, as Terraform would (the alarm
    settings are EndpointAlarms'): the function, its queue and schedule rule, the mapping, and
    the drift alarm (a warning) with its topic. Returns the alarm and rule names."""
    iam, lam, sqs, events = (server.client(s) for s in ("iam", "lambda", "sqs", "events"))
    role = iam.create_role(
        RoleName=f"{world.endpoint}-drift",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole"}]}),
    )["Role"]["Arn"]
    # The drift function's own package and layers: the control plane runs what was deployed.
    function = deploy_function(
        server, name=f"{world.endpoint}-drift", handler="drift", role_arn=role, bucket=world.artifacts_bucket,
        timeout=300, memory_mb=2048,
        environment={
            "PROJECT": PROJECT, "ENDPOINT_NAME": world.endpoint,
            "CAPTURE_S3_URI": f"s3://{world.capture_bucket}/{PROJECT}/",
            "ARTIFACTS_BUCKET": world.artifacts_bucket, "MODEL_PACKAGE_GROUP": world.group,
            "KMS_KEY_ARN": world.key_arn, "DRIFT_PSI_THRESHOLD": "0.2", "DRIFT_P_VALUE": "0.05",
            "WINDOW_MINUTES": "60",
        },
    )
    dlq_url = sqs.create_queue(QueueName=f"{world.endpoint}-drift-dlq")["QueueUrl"]
    dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    # A short visibility timeout: a failed record comes back after it, as SQS redelivers to Lambda.
    url = sqs.create_queue(QueueName=f"{world.endpoint}-drift", Attributes={
        "VisibilityTimeout": "1",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq, "maxReceiveCount": 3})})["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = f"{world.endpoint}-drift"
    events.put_rule(Name=rule, ScheduleExpression="rate(1 hour)")
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue}])
    lam.create_event_source_mapping(EventSourceArn=queue, FunctionName=function, BatchSize=1,
                                    FunctionResponseTypes=["ReportBatchItemFailures"])
    topic = server.client("sns").create_topic(Name=f"{world.prefix}-alerts-warning")["TopicArn"]
    alarm = f"{world.endpoint}-warning-drift"
    world.cw.put_metric_alarm(
        AlarmName=alarm, Namespace="MLOps/Drift", MetricName="DriftedFeatureShare",
        Dimensions=[{"Name": "EndpointName", "Value": world.endpoint}], Statistic="Maximum",
        Period=3600, EvaluationPeriods=1, Threshold=0.01,
        ComparisonOperator="GreaterThanOrEqualToThreshold", TreatMissingData="notBreaching",
        AlarmActions=[topic], OKActions=[topic],
    )
    return {"alarm": alarm, "rule": rule, "queue": url, "dlq": dlq_url}


def test_local_control_plane_runs_the_scheduled_check_and_the_drift_alarm_fires(
    moto_server, data, tmp_path, request
):
    """Issue 5 end to end on the local AWS: schedule -> queue -> drift handler (the local control
    plane playing EventBridge and Lambda) -> metrics -> alarm evaluation -> ALARM; an endpoint
    whose traffic looks like the training data stays OK."""
    from local_aws.control_plane import LocalControlPlane

    now = datetime.now(UTC)
    drifting, steady = World(moto_server, "mlops-dev", data), World(moto_server, "mlops-staging", data)
    drifting.capture(data.sample(300, seed=4, radius_factor=1.5), now - timedelta(minutes=50),
                     now - timedelta(minutes=2))
    steady.capture(data.sample(300, seed=5), now - timedelta(minutes=50), now - timedelta(minutes=2))
    wired = {w.prefix: wire_drift_check(moto_server, w) for w in (drifting, steady)}
    plane = LocalControlPlane.for_server(moto_server, tmp_path)
    request.addfinalizer(plane.close)  # the functions' execution environments, stopped by pid

    first = plane.tick()  # schedules are seen (not due yet), alarms settle on no data
    assert not first.deliveries and not first.failures
    sqs = moto_server.client("sqs")
    sqs.send_message(QueueUrl=wired["mlops-dev"]["queue"], MessageBody="this is no event")  # poison
    for rule in plane.schedules():
        plane.fire_schedule(rule, now)
    done = plane.run_until_idle()
    # The poison message is retried only after each visibility timeout (1 s), until the DLQ.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not sqs.receive_message(
            QueueUrl=wired["mlops-dev"]["dlq"], VisibilityTimeout=0).get("Messages"):
        time.sleep(0.5)
        done.merge(plane.tick())
    assert done.failures == []
    # The poison message failed alone, three times (maxReceiveCount), then moved to the DLQ.
    assert done.deliveries.count("mlops-dev-demo-drift: 0 processed, 1 failed") == 3
    assert sorted(set(done.deliveries) - {"mlops-dev-demo-drift: 0 processed, 1 failed"}) == [
        "mlops-dev-demo-drift: 1 processed, 0 failed", "mlops-staging-demo-drift: 1 processed, 0 failed"]
    (dead,) = sqs.receive_message(QueueUrl=wired["mlops-dev"]["dlq"])["Messages"]
    assert dead["Body"] == "this is no event"

    states = {a["AlarmName"]: a["StateValue"] for a in plane.alarms()}
    assert states == {wired["mlops-dev"]["alarm"]: "ALARM", wired["mlops-staging"]["alarm"]: "OK"}
    assert f"alarm {wired['mlops-dev']['alarm']}: OK -> ALARM" in done.alarm_changes
    # The HTML report of the drifting endpoint's window, in its artifacts bucket.
    listed = drifting.s3.list_objects_v2(Bucket=drifting.artifacts_bucket,
                                         Prefix=f"{PROJECT}/drift/{drifting.endpoint}/")["Contents"]
    html = [o["Key"] for o in listed if o["Key"].endswith("report.html")]
    assert len(html) == 1
    body = drifting.s3.get_object(Bucket=drifting.artifacts_bucket, Key=html[0])["Body"].read().decode()
    assert '<div class="feature drifted" id="f-mean_radius">' in body
    # The handler's output went to the function's log, from its own process.
    assert "drift" in (tmp_path / "logs" / "mlops-dev-demo-drift.log").read_text()
    pids = [p.proc.pid for p in plane.lambdas.processes.values()]
    assert len(pids) == 2 and os.getpid() not in pids  # one execution environment per function

    # Nothing new: the next tick has nothing to do, and nothing fires twice.
    assert not plane.tick().busy


def test_batch_job_runs_the_same_check_for_a_large_window(moto_server, data, tmp_path):
    """`python -m lambdas.shared.drift` (the Processing job's entrypoint) as a process of its own,
    configured like the Lambda, over a window longer than the schedule's."""
    import subprocess

    world = World(moto_server, "mlops-dev", data)
    now = datetime.now(UTC).replace(microsecond=0)
    shifted = data.sample(400, seed=6, radius_factor=1.5)
    world.capture(shifted, now - timedelta(hours=5), now - timedelta(hours=1))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        **moto_server.client_env(),
        "PROJECT": PROJECT, "ENDPOINT_NAME": world.endpoint,
        "CAPTURE_S3_URI": f"s3://{world.capture_bucket}/{PROJECT}/",
        "ARTIFACTS_BUCKET": world.artifacts_bucket, "MODEL_PACKAGE_GROUP": world.group,
        "KMS_KEY_ARN": world.key_arn, "DRIFT_PSI_THRESHOLD": "0.2", "DRIFT_P_VALUE": "0.05",
    }
    since, until = (now - timedelta(hours=6)).isoformat(), now.isoformat()
    job = subprocess.run(
        [sys.executable, "-m", "lambdas.shared.drift", "--since", since, "--until", until,
         "--output", str(tmp_path / "out")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert job.returncode == 0, job.stderr
    summary = json.loads(job.stdout)
    assert summary == json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["drifted"] and summary["n_rows"] == 400
    assert "capture:" in job.stderr and "[drift-job]" in job.stderr
    bucket, key = summary["report_html"].removeprefix("s3://").split("/", 1)
    assert "mean_radius" in world.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()

    del env["ENDPOINT_NAME"]
    broken = subprocess.run([sys.executable, "-m", "lambdas.shared.drift"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1 and "ENDPOINT_NAME" in broken.stderr
