"""Local endpoints that serve (local_aws/endpoint_runtime.py): a local AWS with its endpoint
runtime on, the demo model trained by the real train step uploaded to its S3, and a plain boto3
`sagemaker-runtime` client, as a user's own code would use it against `endpoint_url`."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import joblib
import pandas as pd
import pytest
from botocore.exceptions import ClientError

from lambdas.shared.drift.capture import CaptureSchema, read_capture_window
from local_aws.lifecycle import LocalAws, ServerRecord

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/mlops-local-demo-execution"
ARTIFACTS, CAPTURE = "mlops-local-artifacts", "mlops-local-capture"
VARIANT = "primary"


class World:
    def __init__(self, server: ServerRecord, local: LocalAws):
        self.server, self.local = server, local
        self.sm, self.s3 = server.client("sagemaker"), server.client("s3")
        self.runtime, self.cw = server.client("sagemaker-runtime"), server.client("cloudwatch")
        self.key_id = server.client("kms").create_key()["KeyMetadata"]["KeyId"]

    def model(self, name: str, data_url: str, **env: str) -> None:
        self.sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={
            "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-local-inference:test",
            "ModelDataUrl": data_url,
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code", **env}})

    def config(self, name: str, model: str, sampling: int = 100) -> None:
        self.sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[{"VariantName": VARIANT, "ModelName": model, "InstanceType": "ml.m5.large",
                                 "InitialInstanceCount": 1, "InitialVariantWeight": 1.0}],
            DataCaptureConfig={
                "EnableCapture": True, "InitialSamplingPercentage": sampling,
                "DestinationS3Uri": f"s3://{CAPTURE}/demo", "KmsKeyId": self.key_id,
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"],
                                             "JsonContentTypes": ["application/json"]}})

    def wait(self, endpoint: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = self.sm.describe_endpoint(EndpointName=endpoint)
            if described["EndpointStatus"] not in ("Creating", "Updating"):
                return described
            time.sleep(0.1)
        pytest.fail(f"{endpoint} still {described['EndpointStatus']} after {timeout} s")

    def invocations(self, endpoint: str, metric: str, since: datetime) -> float:
        got = self.cw.get_metric_data(
            MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": {
                "Namespace": "AWS/SageMaker", "MetricName": metric,
                "Dimensions": [{"Name": "EndpointName", "Value": endpoint},
                               {"Name": "VariantName", "Value": VARIANT}]}, "Period": 3600, "Stat": "Sum"}}],
            StartTime=since, EndTime=datetime.now(UTC) + timedelta(minutes=1))
        return sum(got["MetricDataResults"][0]["Values"])


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_model) -> Iterator[World]:
    # The canary test evaluates the alarm itself: no background control plane here.
    local = LocalAws(tmp_path_factory.mktemp("local"), tls=True, serve_endpoints=True, background=False)
    server, started = local.start(extra_env={"MLOPS_LOCAL_CAPTURE_FLUSH_SECONDS": "0.2"})
    assert started
    try:
        w = World(server, local)
        _seed(w, demo_model.archive.read_bytes())
        w.sm.create_endpoint(EndpointName="demo", EndpointConfigName="demo-1")
        yield w
    finally:
        local.stop()


@pytest.fixture(scope="module")
def rows(demo_model) -> pd.DataFrame:
    return pd.read_csv(demo_model.test_csv)[demo_model.features].head(20)


@pytest.fixture(scope="module")
def estimator(demo_model, tmp_path_factory):
    return joblib.load(demo_model.extract(tmp_path_factory.mktemp("model")) / "model.joblib")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:  # reaped between the signal and the read (ProcessLookupError, FileNotFoundError)
        return False


def test_an_endpoint_is_creating_until_its_server_answers_ping(world):
    described = world.wait("demo")
    assert described["EndpointStatus"] == "InService"
    served = [e for e in world.local.endpoints() if e["name"] == "demo"]
    assert [(e["variant"], e["config"], e["model"]) for e in served] == [(VARIANT, "demo-1", "demo-1")]
    assert _alive(served[0]["pid"]) and served[0]["port"] > 0


def test_invoke_endpoint_returns_the_models_own_scores_row_for_row(world, rows, estimator):
    world.wait("demo")
    expected = estimator.predict_proba(rows)[:, 1].tolist()
    got = []
    for _, row in rows.iterrows():
        answer = world.runtime.invoke_endpoint(EndpointName="demo", ContentType="text/csv",
                                               Body=row.to_frame().T.to_csv(header=False, index=False))
        assert answer["InvokedProductionVariant"] == VARIANT and answer["ContentType"] == "text/csv"
        got.append(float(answer["Body"].read()))
    assert got == expected
    batch = world.runtime.invoke_endpoint(EndpointName="demo", ContentType="application/json",
                                          Accept="application/json",
                                          Body=json.dumps({"instances": rows.to_numpy().tolist()}))
    assert json.loads(batch["Body"].read())["predictions"] == expected


def test_each_request_is_captured_as_sagemaker_writes_it(world, rows):
    world.wait("demo")
    since = datetime.now(UTC) - timedelta(seconds=1)
    ids = [f"capture-{i}" for i in range(5)]
    for i, inference_id in enumerate(ids):
        world.runtime.invoke_endpoint(EndpointName="demo", ContentType="text/csv", InferenceId=inference_id,
                                      Body=rows.iloc[[i]].to_csv(header=False, index=False))
    deadline, lines = time.monotonic() + 10, []
    while time.monotonic() < deadline:
        lines = []
        for page in world.s3.get_paginator("list_objects_v2").paginate(Bucket=CAPTURE, Prefix="demo/demo/"):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                assert key.startswith(f"demo/demo/{VARIANT}/") and key.endswith(".jsonl")
                stamp = key.split("/")[3:7]
                assert [len(part) for part in stamp] == [4, 2, 2, 2]  # yyyy/mm/dd/hh
                head = world.s3.head_object(Bucket=CAPTURE, Key=key)
                assert head["ServerSideEncryption"] == "aws:kms" and world.key_id in head["SSEKMSKeyId"]
                body = world.s3.get_object(Bucket=CAPTURE, Key=key)["Body"].read().decode()
                lines += [json.loads(line) for line in body.splitlines()]
        if {r["eventMetadata"].get("inferenceId") for r in lines} >= set(ids):
            break
        time.sleep(0.2)
    mine = [r for r in lines if r["eventMetadata"].get("inferenceId") in ids]
    assert len(mine) == len(ids)  # one line per request
    record = mine[0]
    assert record["eventVersion"] == "0"
    assert set(record["eventMetadata"]) == {"eventId", "inferenceId", "inferenceTime"}
    assert record["eventMetadata"]["inferenceTime"].endswith("Z")
    assert record["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv", "mode": "INPUT", "encoding": "CSV",
        "data": rows.iloc[[0]].to_csv(header=False, index=False)}
    assert record["captureData"]["endpointOutput"]["mode"] == "OUTPUT"
    assert record["captureData"]["endpointOutput"]["encoding"] == "CSV"
    # The drift job's reader takes these files as they are.
    columns = tuple(rows.columns)
    window = read_capture_window(CAPTURE, "demo", "demo", CaptureSchema(columns, columns, (), "numeric"),
                                 since, datetime.now(UTC) + timedelta(minutes=1), s3_client=world.s3)
    assert window.n_malformed == 0 and window.n_rows >= len(ids)


def test_metrics_count_every_request_and_client_errors_are_not_server_errors(world, rows):
    world.wait("demo")
    since = datetime.now(UTC) - timedelta(minutes=1)
    before = {m: world.invocations("demo", m, since) for m in
              ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "InvocationModelErrors")}
    for i in range(4):
        world.runtime.invoke_endpoint(EndpointName="demo", ContentType="text/csv",
                                      Body=rows.iloc[[i]].to_csv(header=False, index=False))
    with pytest.raises(ClientError) as bad:
        world.runtime.invoke_endpoint(EndpointName="demo", ContentType="text/csv", Body="1.0,2.0\n")
    error = bad.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 400
    assert error["OriginalMessage"] == "expected 30 values per row, got 2"
    assert error["LogStreamArn"].endswith("log-group:/aws/sagemaker/Endpoints/demo")
    after = {m: world.invocations("demo", m, since) for m in before}
    assert after["Invocations"] - before["Invocations"] == 5
    assert after["Invocation4XXErrors"] - before["Invocation4XXErrors"] == 1
    assert after["InvocationModelErrors"] - before["InvocationModelErrors"] == 1
    assert after["Invocation5XXErrors"] - before["Invocation5XXErrors"] == 0
    latency = world.cw.get_metric_statistics(
        Namespace="AWS/SageMaker", MetricName="ModelLatency", StartTime=since,
        EndTime=datetime.now(UTC) + timedelta(minutes=1), Period=3600, Statistics=["Minimum", "Maximum"],
        Dimensions=[{"Name": "EndpointName", "Value": "demo"}, {"Name": "VariantName", "Value": VARIANT}])
    point = latency["Datapoints"][0]
    assert point["Unit"] == "Microseconds" and 100 < point["Minimum"] <= point["Maximum"] < 60_000_000


def test_an_injected_outage_fails_the_serving_fleet_as_server_errors_until_ended(world, rows):
    """The drill switch (`mlops drill rollback --via outage`): the containers of the fleet serving
    now answer 500, which SageMaker counts as Invocation5XXErrors; 0 ends it."""
    from local_aws.lifecycle import LocalAwsError

    served = world.wait("demo")["EndpointConfigName"]
    since = datetime.now(UTC) - timedelta(minutes=1)
    before = world.invocations("demo", "Invocation5XXErrors", since)
    body = rows.iloc[[0]].to_csv(header=False, index=False)
    assert world.server.endpoint_outage("123456789012", "demo", 100) == served
    try:
        for _ in range(3):
            with pytest.raises(ClientError) as failed:
                world.runtime.invoke_endpoint(EndpointName="demo", ContentType="text/csv", Body=body)
            assert failed.value.response["OriginalStatusCode"] == 500
            assert "injected outage" in failed.value.response["OriginalMessage"]
    finally:
        world.server.endpoint_outage("123456789012", "demo", 0)
    assert world.invocations("demo", "Invocation5XXErrors", since) - before == 3
    world.runtime.invoke_endpoint(EndpointName="demo", ContentType="text/csv", Body=body)
    with pytest.raises(LocalAwsError, match="outage on nope: Endpoint nope of account 123456789012"):
        world.server.endpoint_outage("123456789012", "nope", 50)
    with pytest.raises(LocalAwsError, match="not 0 to 100"):
        world.server.endpoint_outage("123456789012", "demo", 150)


def test_an_unknown_endpoint_is_a_validation_error(world):
    with pytest.raises(ClientError) as missing:
        world.runtime.invoke_endpoint(EndpointName="nope", ContentType="text/csv", Body="1")
    assert missing.value.response["Error"]["Code"] == "ValidationError"
    assert "Endpoint nope of account 123456789012 not found" in str(missing.value)


def test_an_update_starts_the_new_fleet_then_stops_the_old(world, rows):
    world.wait("demo")
    old = next(e for e in world.local.endpoints() if e["name"] == "demo")
    world.model("demo-2", f"s3://{ARTIFACTS}/demo/model.tar.gz")
    world.config("demo-2", "demo-2")
    world.sm.update_endpoint(EndpointName="demo", EndpointConfigName="demo-2",
                             RetainAllVariantProperties=True)
    during = world.sm.describe_endpoint(EndpointName="demo")
    assert during["EndpointStatus"] == "Updating"
    assert during["EndpointConfigName"] == "demo-1"
    assert during["PendingDeploymentSummary"]["EndpointConfigName"] == "demo-2"
    with pytest.raises(ClientError, match="Cannot update in-progress endpoint"):
        world.sm.update_endpoint(EndpointName="demo", EndpointConfigName="demo-1")
    # The old fleet answers while the new one starts.
    world.runtime.invoke_endpoint(EndpointName="demo", ContentType="text/csv",
                                  Body=rows.iloc[[0]].to_csv(header=False, index=False))
    after = world.wait("demo")
    assert after["EndpointStatus"] == "InService" and after["EndpointConfigName"] == "demo-2"
    assert "PendingDeploymentSummary" not in after
    new = next(e for e in world.local.endpoints() if e["name"] == "demo")
    assert new["config"] == "demo-2" and new["pid"] != old["pid"]
    deadline = time.monotonic() + 35
    while _alive(old["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(old["pid"])


def test_a_model_that_cannot_start_fails_the_endpoint_with_sagemakers_reason(world):
    world.model("missing", f"s3://{ARTIFACTS}/demo/absent/model.tar.gz")
    world.config("missing", "missing")
    world.sm.create_endpoint(EndpointName="broken", EndpointConfigName="missing")
    described = world.wait("broken")
    assert described["EndpointStatus"] == "Failed"
    assert 'Failed to download model data for container "primary"' in described["FailureReason"]
    world.sm.delete_endpoint(EndpointName="broken")


def test_deleting_an_endpoint_stops_its_servers(world):
    world.sm.create_endpoint(EndpointName="short-lived", EndpointConfigName="demo-1")
    assert world.wait("short-lived")["EndpointStatus"] == "InService"
    pid = next(e["pid"] for e in world.local.endpoints() if e["name"] == "short-lived")
    world.sm.delete_endpoint(EndpointName="short-lived")
    deadline = time.monotonic() + 35
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)
    assert all(e["name"] != "short-lived" for e in world.local.endpoints())


def test_stopping_the_local_aws_stops_every_model_server(tmp_path, demo_model):
    local = LocalAws(tmp_path / "local", serve_endpoints=True)
    server, _ = local.start()
    try:
        w = World(server, local)
        w.s3.create_bucket(Bucket=ARTIFACTS)
        w.s3.put_object(Bucket=ARTIFACTS, Key="m.tar.gz", Body=demo_model.archive.read_bytes())
        w.model("m", f"s3://{ARTIFACTS}/m.tar.gz")
        w.sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[
            {"VariantName": "a", "ModelName": "m", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1},
            {"VariantName": "b", "ModelName": "m", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
        w.sm.create_endpoint(EndpointName="e", EndpointConfigName="c")
        assert w.wait("e")["EndpointStatus"] == "InService"
        pids = [e["pid"] for e in local.endpoints()]
        assert len(pids) == 2  # one server per production variant
    finally:
        local.stop()
    assert not any(_alive(pid) for pid in pids)
    assert local.endpoints() == []


def test_traffic_replays_rows_and_counts_refusals_by_status(world):
    from mlops.traffic import Plan, held_out_rows, send
    from pipelines.dataset import breast_cancer_frame
    from stacks.project_config import load_project

    world.wait("demo")
    root = Path(__file__).resolve().parents[2]
    config = load_project(root / "environments" / "projects" / "demo.yaml", "local", root)
    rows = held_out_rows(config, breast_cancer_frame())
    since = datetime.now(UTC) - timedelta(minutes=1)
    before = world.invocations("demo", "Invocation4XXErrors", since)
    result = send(world.runtime, "demo", rows, Plan(requests=40, malformed_percent=10, concurrency=4))
    assert (result["requests"], result["ok"], result["errors"]) == (40, 36, {"400": 4})
    assert result["variants"] == {VARIANT: 36}
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p95"]
    assert world.invocations("demo", "Invocation4XXErrors", since) - before == 4


def _seed(world: World, archive: bytes) -> None:
    for bucket in (ARTIFACTS, CAPTURE):
        world.s3.create_bucket(Bucket=bucket)
    world.s3.put_object(Bucket=ARTIFACTS, Key="demo/model.tar.gz", Body=archive)
    world.model("demo-1", f"s3://{ARTIFACTS}/demo/model.tar.gz")
    world.config("demo-1", "demo-1")


def _faulty_canary(world: World, endpoint: str, evaluate=None) -> dict:
    """A canary of a model whose server fails every request, under traffic, with the stack's
    error-rate alarm as the auto-rollback alarm. `evaluate` moves the alarm (the test's own
    control plane); None leaves that to the local AWS's background control plane."""
    import threading

    from mlops.traffic import Plan, held_out_rows, send
    from pipelines.dataset import breast_cancer_frame
    from stacks.constructs.endpoint_alarms import ERROR_RATE_EXPRESSION, ERROR_RATE_METRICS
    from stacks.project_config import load_project

    root = Path(__file__).resolve().parents[2]
    config = load_project(root / "environments" / "projects" / "demo.yaml", "local", root)
    rows = held_out_rows(config, breast_cancer_frame())
    alarm = f"{endpoint}-critical-error-rate"
    world.sm.create_endpoint(EndpointName=endpoint, EndpointConfigName="demo-1")
    world.model("faulty", f"s3://{ARTIFACTS}/demo/model.tar.gz", MLOPS_FAULT_ERROR_PERCENT="100")
    world.config("faulty", "faulty")
    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": VARIANT}]

    def query(id_: str, name: str) -> dict:
        metric = {"Namespace": "AWS/SageMaker", "MetricName": name, "Dimensions": dims}
        return {"Id": id_, "ReturnData": False, "MetricStat": {"Metric": metric, "Period": 60, "Stat": "Sum"}}

    world.cw.put_metric_alarm(
        AlarmName=alarm, EvaluationPeriods=1, Threshold=5.0, ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching", Metrics=[
            {"Id": "error_rate", "Expression": ERROR_RATE_EXPRESSION, "ReturnData": True},
            *[query(id_, name) for name, id_ in ERROR_RATE_METRICS.items()]])
    sqs, events = world.server.client("sqs"), world.server.client("events")
    queue = sqs.create_queue(QueueName=f"{endpoint}-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    events.put_rule(Name=f"{endpoint}-sagemaker", EventPattern=json.dumps({
        "source": ["aws.sagemaker"], "detail-type": ["SageMaker Endpoint Deployment State Change",
                                                      "SageMaker Endpoint State Change"]}))
    events.put_targets(Rule=f"{endpoint}-sagemaker", Targets=[{"Id": "q", "Arn": queue_arn}])
    assert world.wait(endpoint)["EndpointStatus"] == "InService"

    statuses: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            result = send(world.runtime, endpoint, rows, Plan(requests=20, rate=40, concurrency=2))
            statuses.extend(["200"] * result["ok"])
            statuses.extend(k for k, n in result["errors"].items() for _ in range(n))

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    changes: list[str] = []
    try:
        time.sleep(1.0)  # healthy traffic on the old fleet first
        world.sm.update_endpoint(EndpointName=endpoint, EndpointConfigName="faulty", DeploymentConfig={
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "CANARY", "WaitIntervalInSeconds": 120,
                                                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}},
                "TerminationWaitInSeconds": 0, "MaximumExecutionTimeoutInSeconds": 600},
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]}})
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if evaluate is not None:
                changes += evaluate()
            described = world.sm.describe_endpoint(EndpointName=endpoint)
            if described["EndpointStatus"] == "InService":
                break
            time.sleep(0.3)
        time.sleep(1.5)  # the batch of requests in flight at the rollback (0.5 s each) has ended
        during = len(statuses)
        time.sleep(1.5)
    finally:
        stop.set()
        sender.join(timeout=30)
    received = []
    while True:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        received += [json.loads(m["Body"]) for m in got]
    return {"described": described, "changes": changes, "statuses": statuses, "during": during,
            "events": [e for e in received if e["detail"]["EndpointName"] == endpoint]}


def test_a_canary_that_fails_is_rolled_back_by_the_guardrails_on_its_own_traffic(world, tmp_path):
    """The issue's bar: an update to a model with the fault setting, under canary, with traffic
    running. The error-rate alarm (the stack's expression) goes to ALARM from the AWS/SageMaker
    metrics of that traffic alone, all traffic returns to the old fleet, the endpoint ends
    InService on the old config, and the deployment state change events say so."""
    from local_aws.control_plane import LocalControlPlane

    world.wait("demo")
    control = LocalControlPlane.for_server(world.server, tmp_path / "control")
    got = _faulty_canary(world, "guarded", lambda: control.evaluate_alarms(control._load()).alarm_changes)
    described, statuses, during = got["described"], got["statuses"], got["during"]
    assert any("OK -> ALARM" in c for c in got["changes"]), got["changes"]  # from the traffic alone
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == "demo-1"
    assert "rolled back: alarm guarded-critical-error-rate is in ALARM" in described["FailureReason"]
    assert described["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"][
        "Type"] == "CANARY"
    failed = statuses[:during].count("500")
    assert 0 < failed < during / 3  # the canary's share failed, diluted by the old fleet
    assert "500" not in statuses[during:]  # all traffic back on the old fleet
    assert [e["config"] for e in world.local.endpoints() if e["name"] == "guarded"] == ["demo-1"]

    deployment = [e["detail"] for e in got["events"]
                  if e["detail-type"] == "SageMaker Endpoint Deployment State Change"]
    phases = [d["PendingDeploymentSummary"]["ProductionVariants"][0]["VariantStatus"][0]["Status"]
              for d in deployment]
    assert phases == ["Creating", "Baking", "Deleting"], phases
    assert all(d["EndpointStatus"] == "UPDATING" and d["PendingDeploymentSummary"]["EndpointConfigName"]
               == "faulty" for d in deployment)
    assert "Rolling back: alarm guarded-critical-error-rate is in ALARM" in deployment[-1][
        "PendingDeploymentSummary"]["ProductionVariants"][0]["VariantStatus"][0]["StatusMessage"]
    final = [e for e in got["events"] if e["detail-type"] == "SageMaker Endpoint State Change"][-1]
    assert final["source"] == "aws.sagemaker" and final["resources"] == [described["EndpointArn"]]
    assert final["detail"]["EndpointStatus"] == "IN_SERVICE"
    assert final["detail"]["EndpointConfigName"] == "demo-1"
    world.sm.delete_endpoint(EndpointName="guarded")

    # The deploy handler's parser takes these events as they are, and its decision on them is
    # SageMaker's rollback: the canary's record ends ROLLED_BACK.
    from lambdas.shared.control import events, history

    parsed_events = [events.endpoint_event("m", json.dumps(raw, default=str), "guarded")
                     for raw in got["events"]]
    update_started = min(e.changed_at for e in parsed_events
                         if isinstance(e, events.EndpointDeploymentStateChange)) - timedelta(milliseconds=1)
    record = history.Deployment(endpoint_name="guarded", deployment_id="d", kind="deploy",
                                status=history.UPDATING, new_endpoint_config="faulty",
                                previous_endpoint_config="demo-1", event_time=history.iso(update_started),
                                started_at=history.iso(update_started))
    for parsed in parsed_events:
        move = history.track_decision([record], parsed.change(history.iso(parsed.changed_at)), 0)
        if move is not None:
            record = dataclasses.replace(record, status=move.status, **move.changes)
    assert record.status == history.ROLLED_BACK and "rolled back" in record.outcome


def test_the_local_aws_runs_by_itself_a_script_that_only_sends_traffic_sees_the_rollback(
        tmp_path, demo_model):
    """No mlops command and no test stepping anything: the local AWS's background control plane
    evaluates the alarm on the traffic's metrics and the guardrails roll the canary back."""
    local = LocalAws(tmp_path / "local", tls=True, serve_endpoints=True, background=True)
    server, _ = local.start()
    try:
        w = World(server, local)
        _seed(w, demo_model.archive.read_bytes())
        got = _faulty_canary(w, "by-itself")
        described = got["described"]
        assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == "demo-1"
        assert "rolled back: alarm by-itself-critical-error-rate is in ALARM" in described["FailureReason"]
        assert "500" not in got["statuses"][got["during"]:]
    finally:
        local.stop()


def test_a_killed_model_server_fails_requests_as_5xx_until_it_is_started_again(world, rows):
    """A container that died answers nothing: SageMaker answers the caller with a server error,
    counted in Invocation5XXErrors (and InvocationModelErrors), and replaces the container; the
    endpoint then serves again without anyone touching it."""
    import signal

    world.sm.create_endpoint(EndpointName="crashy", EndpointConfigName="demo-1")
    assert world.wait("crashy")["EndpointStatus"] == "InService"
    pid = next(e["pid"] for e in world.local.endpoints() if e["name"] == "crashy")
    body = rows.iloc[[0]].to_csv(header=False, index=False)
    since = datetime.now(UTC) - timedelta(minutes=1)
    os.killpg(pid, signal.SIGKILL)  # the container is gone: its server and workers
    with pytest.raises(ClientError) as failed:
        world.runtime.invoke_endpoint(EndpointName="crashy", ContentType="text/csv", Body=body)
    assert failed.value.response["Error"]["Code"] == "ModelError"
    assert failed.value.response["OriginalStatusCode"] == 500
    assert "no answer from the container" in failed.value.response["OriginalMessage"]
    assert world.invocations("crashy", "Invocation5XXErrors", since) == 1
    assert world.invocations("crashy", "InvocationModelErrors", since) == 1
    assert world.invocations("crashy", "Invocation4XXErrors", since) == 0

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        served = [e for e in world.local.endpoints() if e["name"] == "crashy"]
        if served and served[0]["pid"] != pid and _alive(served[0]["pid"]):
            try:
                answer = world.runtime.invoke_endpoint(EndpointName="crashy", ContentType="text/csv",
                                                       Body=body)
                break
            except ClientError:
                pass  # started, not yet answering /invocations
        time.sleep(0.2)
    else:
        pytest.fail("the killed model server was not started again within 60 s")
    assert float(answer["Body"].read()) >= 0
    assert world.sm.describe_endpoint(EndpointName="crashy")["EndpointStatus"] == "InService"
    world.sm.delete_endpoint(EndpointName="crashy")


def test_labels_with_a_third_flipped_send_the_accuracy_alarm_to_alarm(world, tmp_path):
    """The issue's bar: traffic through a served package, its labels written as Model Monitor
    ground truth with 30% flipped, the model-quality check's AccuracyDropPercent, and the
    stack's accuracy alarm (EndpointAlarms' settings) evaluated on it: ALARM."""
    from lambdas.shared.quality.job import QualitySettings, run_quality_check
    from local_aws.control_plane import LocalControlPlane
    from mlops.traffic import Plan, ground_truth, held_out_labels, held_out_rows, send
    from pipelines.dataset import breast_cancer_frame
    from stacks.project_config import load_project

    world.sm.create_model_package_group(ModelPackageGroupName="quality")
    package = world.sm.create_model_package(
        ModelPackageGroupName="quality", ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{
            "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlops-local-inference:test",
            "ModelDataUrl": f"s3://{ARTIFACTS}/demo/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
        CustomerMetadataProperties={"accuracy": "0.95"})["ModelPackageArn"]  # its evaluation's
    world.sm.create_model(ModelName="quality-1", ExecutionRoleArn=ROLE,
                          PrimaryContainer={"ModelPackageName": package})
    world.config("quality-1", "quality-1")
    world.sm.create_endpoint(EndpointName="quality", EndpointConfigName="quality-1")
    assert world.wait("quality")["EndpointStatus"] == "InService"

    root = Path(__file__).resolve().parents[2]
    config = load_project(root / "environments" / "projects" / "demo.yaml", "local", root)
    frame = breast_cancer_frame()
    result = send(world.runtime, "quality", held_out_rows(config, frame), Plan(requests=120, concurrency=4),
                  run_id="q1")
    assert result["ok"] == 120
    body, flipped = ground_truth("q1", result["answered"], held_out_labels(config, frame), 30,
                                 "classification")
    assert flipped == 36
    now = datetime.now(UTC)
    world.s3.put_object(Bucket=CAPTURE, Key=f"demo/ground-truth/{now:%Y/%m/%d/%H}/q1.jsonl",
                        Body=body.encode())
    time.sleep(1.0)  # the capture writer's buffer (0.2 s here) is flushed

    settings = QualitySettings(project="demo", endpoint_name="quality", task="classification",
                               capture_s3_uri=f"s3://{CAPTURE}/demo/",
                               ground_truth_s3_uri=f"s3://{CAPTURE}/demo/ground-truth/",
                               artifacts_bucket=ARTIFACTS, label_lag_minutes=0, min_labelled_rows=30)
    summary = run_quality_check(settings, datetime.now(UTC), s3=world.s3, sagemaker=world.sm,
                                cloudwatch=world.cw)
    assert summary["status"] == "ok" and summary["model_package_arn"] == package
    assert summary["counts"]["LabelledRecords"] == 120 and summary["counts"]["UnlabelledPredictions"] == 0
    # The held-out accuracy is ~0.95; with 30% of the labels flipped the window's is ~0.65.
    assert 0.55 < summary["metrics"]["accuracy"] < 0.75 and summary["drop_percent"] > 20
    report = json.loads(world.s3.get_object(Bucket=ARTIFACTS, Key=summary["report"].split("/", 3)[3])[
        "Body"].read())
    assert report["counts"] == summary["counts"]

    world.cw.put_metric_alarm(
        AlarmName="quality-critical-accuracy-drop", Namespace="MLOps/ModelQuality",
        MetricName="AccuracyDropPercent", Dimensions=[{"Name": "EndpointName", "Value": "quality"}],
        Statistic="Maximum", Period=3600, EvaluationPeriods=1, Threshold=10.0,
        ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching")
    control = LocalControlPlane.for_server(world.server, tmp_path / "control")
    time.sleep(1.1)  # CloudWatch evaluates whole seconds: the datapoint is in the past by then
    alarm = world.cw.describe_alarms(AlarmNames=["quality-critical-accuracy-drop"])["MetricAlarms"][0]
    changes = control.evaluate_alarms(control._load()).alarm_changes
    assert any("quality-critical-accuracy-drop" in c and "-> ALARM" in c for c in changes), (
        changes, control.values(alarm, datetime.now(UTC)), summary["window"])
    world.sm.delete_endpoint(EndpointName="quality")


SHADOW = "shadow"


def _shadowed_endpoint(world: World, endpoint: str, shadow_env: dict[str, str], weight: float = 1.0) -> None:
    world.model(f"{endpoint}-candidate", f"s3://{ARTIFACTS}/demo/model.tar.gz", **shadow_env)
    world.sm.create_endpoint_config(
        EndpointConfigName=endpoint,
        ProductionVariants=[{"VariantName": VARIANT, "ModelName": "demo-1", "InstanceType": "ml.m5.large",
                             "InitialInstanceCount": 1, "InitialVariantWeight": 1.0}],
        ShadowProductionVariants=[{"VariantName": SHADOW, "ModelName": f"{endpoint}-candidate",
                                   "InstanceType": "ml.m5.large", "InitialInstanceCount": 1,
                                   "InitialVariantWeight": weight}],
        DataCaptureConfig={
            "EnableCapture": True, "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{CAPTURE}/demo", "KmsKeyId": world.key_id,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]}})
    world.sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=endpoint)
    assert world.wait(endpoint)["EndpointStatus"] == "InService"


def _captured(world: World, endpoint: str, variant: str, ids: set[str]) -> dict[str, dict]:
    """The capture records of `variant` by inference id, once all of `ids` are written."""
    deadline, found = time.monotonic() + 15, {}
    while time.monotonic() < deadline:
        found = {}
        prefix = f"demo/{endpoint}/{variant}/"
        for page in world.s3.get_paginator("list_objects_v2").paginate(Bucket=CAPTURE, Prefix=prefix):
            for obj in page.get("Contents", []):
                body = world.s3.get_object(Bucket=CAPTURE, Key=obj["Key"])["Body"].read().decode()
                for line in body.splitlines():
                    record = json.loads(line)
                    found[record["eventMetadata"].get("inferenceId")] = record
        if set(found) >= ids:
            break
        time.sleep(0.2)
    return found


def test_a_shadow_variant_gets_a_copy_whose_answer_is_captured_never_returned(world, rows, estimator):
    """The bar of shadow tests: the caller gets production's answer only (and its variant's
    name), the shadow's answer to the same request lands in the shadow variant's capture folder
    with the same eventId and inferenceId, each variant has its own metrics, and the shadow's
    (slowed) answer is not on the caller's path."""
    endpoint = "shadowed"
    _shadowed_endpoint(world, endpoint, {"MLOPS_FAULT_LATENCY_MS": "300"})
    config = world.sm.describe_endpoint_config(EndpointConfigName=endpoint)
    assert [v["VariantName"] for v in config["ShadowProductionVariants"]] == [SHADOW]
    described = world.sm.describe_endpoint(EndpointName=endpoint)
    assert [v["VariantName"] for v in described["ProductionVariants"]] == [VARIANT]
    assert [v["VariantName"] for v in described["ShadowProductionVariants"]] == [SHADOW]
    served = sorted((e["variant"], e["shadow"]) for e in world.local.endpoints() if e["name"] == endpoint)
    assert served == [(VARIANT, False), (SHADOW, True)]

    since = datetime.now(UTC) - timedelta(minutes=1)
    ids = {f"shadow-{i}" for i in range(8)}
    expected = estimator.predict_proba(rows.head(8))[:, 1].tolist()
    for i, inference_id in enumerate(sorted(ids, key=lambda x: int(x.split("-")[1]))):
        answer = world.runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv",
                                               InferenceId=inference_id,
                                               Body=rows.iloc[[i]].to_csv(header=False, index=False))
        assert answer["InvokedProductionVariant"] == VARIANT
        assert float(answer["Body"].read()) == expected[i]
    production = _captured(world, endpoint, VARIANT, ids)
    shadow = _captured(world, endpoint, SHADOW, ids)
    assert set(production) == set(shadow) == ids
    for inference_id in ids:
        mine, theirs = production[inference_id], shadow[inference_id]
        assert mine["eventMetadata"]["eventId"] == theirs["eventMetadata"]["eventId"]
        assert mine["captureData"]["endpointInput"] == theirs["captureData"]["endpointInput"]
        assert theirs["captureData"]["endpointOutput"]["mode"] == "OUTPUT"
    # What drifts, what the labels judge and what a retrain learns from is what callers were
    # served: the window's readers see production's files only, the shadow's when named.
    from lambdas.shared.capture_files import endpoint_capture_keys

    until = datetime.now(UTC) + timedelta(seconds=1)
    read = endpoint_capture_keys(world.s3, CAPTURE, f"demo/{endpoint}/", since, until)
    assert read and all(k.startswith(f"demo/{endpoint}/{VARIANT}/") for k in read)
    named = endpoint_capture_keys(world.s3, CAPTURE, f"demo/{endpoint}/", since, until, variant=SHADOW)
    assert named and all(k.startswith(f"demo/{endpoint}/{SHADOW}/") for k in named)

    def latency(variant: str, metric: str, stat: str) -> float:
        got = world.cw.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName=metric, StartTime=since, Period=3600, Statistics=[stat],
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
            Dimensions=[{"Name": "EndpointName", "Value": endpoint},
                        {"Name": "VariantName", "Value": variant}])
        return got["Datapoints"][0][stat]

    assert latency(SHADOW, "Invocations", "Sum") == latency(VARIANT, "Invocations", "Sum") == len(ids)
    # The shadow's 300 ms are its own ModelLatency; production's request, model and overhead
    # together, never waited for them.
    assert latency(SHADOW, "ModelLatency", "Minimum") >= 300_000
    served_us = latency(VARIANT, "ModelLatency", "Maximum") + latency(VARIANT, "OverheadLatency", "Maximum")
    assert served_us < 300_000

    # The shadow report of that window, from those captures and metrics.
    from lambdas.shared.scheduled_window import Window
    from lambdas.shared.shadow.report import ShadowSettings, Thresholds, run_shadow_report

    settings = ShadowSettings(project="demo", endpoint_name=endpoint, task="classification",
                              capture_s3_uri=f"s3://{CAPTURE}/demo", artifacts_bucket=ARTIFACTS,
                              thresholds=Thresholds(min_rows=len(ids)))
    window = Window(since, datetime.now(UTC) + timedelta(seconds=1))
    report = run_shadow_report(settings, window, s3=world.s3, cloudwatch=world.cw)
    assert (report["rows"], report["production_only"], report["shadow_only"]) == (len(ids), 0, 0)
    assert report["agreement_rate"] == 1.0  # the same model: the same answers
    assert report["score_distance"]["ks"] == 0 and report["score_distance"]["js"] == 0
    latency_ms = report["latency_p95_ms"]
    assert latency_ms["shadow"] >= 300 > latency_ms["production"] and latency_ms["ratio"] > 1.5
    assert not report["passed"] and report["reasons"] == [
        f"shadow p95 latency is {latency_ms['ratio']:.2f}x production's, over 1.5x"]
    key = f"demo/shadow/{endpoint}/{window.label}/report.json"
    assert report["report"] == f"s3://{ARTIFACTS}/{key}"
    written = json.loads(world.s3.get_object(Bucket=ARTIFACTS, Key=key)["Body"].read())
    assert written["passed"] is False and written["rows"] == len(ids)


def test_a_failing_shadow_never_reaches_the_caller(world, rows):
    endpoint = "shadow-fails"
    _shadowed_endpoint(world, endpoint, {"MLOPS_FAULT_ERROR_PERCENT": "100"})
    since = datetime.now(UTC) - timedelta(minutes=1)
    for i in range(3):
        answer = world.runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv",
                                               Body=rows.iloc[[i]].to_csv(header=False, index=False))
        assert answer["InvokedProductionVariant"] == VARIANT
    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": SHADOW}]
    deadline, errors = time.monotonic() + 10, 0.0
    while time.monotonic() < deadline and errors < 3:
        got = world.cw.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors", StartTime=since, Period=3600,
            Statistics=["Sum"], EndTime=datetime.now(UTC) + timedelta(minutes=1), Dimensions=dims)
        errors = sum(p["Sum"] for p in got["Datapoints"])
        time.sleep(0.1)
    assert errors == 3  # counted for the shadow variant, never an error for the caller
    world.sm.delete_endpoint(EndpointName=endpoint)


def test_sagemaker_refuses_a_shadow_beside_two_production_variants(world):
    def variant(name: str) -> dict:
        return {"VariantName": name, "ModelName": "demo-1", "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1}

    with pytest.raises(ClientError, match="exactly one ProductionVariant"):
        world.sm.create_endpoint_config(EndpointConfigName="two-and-shadow",
                                        ProductionVariants=[variant("a"), variant("b")],
                                        ShadowProductionVariants=[variant("s")])
