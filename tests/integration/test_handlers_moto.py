"""The control-loop handlers against a moto server over HTTP, fed realistic SQS batches of
EventBridge events: the same code and boto3 calls that run in AWS.

Moto gaps, worked around here in the test setup only (the handlers are unchanged):
- moto has no UpdateEndpoint; the local server adds one (local_aws/moto_server.py) that switches the
  endpoint at once, as if the blue/green update had completed (its endpoints are always InService
  and have no PendingDeploymentSummary, so "update in progress" is covered by the unit tests
  only). `UpdateEndpointEmulation` validates each request against botocore's model (the server
  does not check every parameter), records it, and can slow it down to widen the window
  concurrent deliveries race in.
- UpdateModelPackage in moto drops the package's CustomerMetadataProperties (AWS keeps them;
  the local server keeps them too): the gate reads evaluations from the report in S3 anyway.
- moto records no IAM identity in a package's CreatedBy and LastModifiedBy; the local server
  records the caller's. Everyone here calls as AWS would have them call: the register step as a
  session of the pipeline's role, each handler as a session of its function's role, the
  approver as a session of the ML engineer persona's (STS AssumeRole of the local AWS).
- StartPipelineExecution needs the pipeline to exist (created here with the parameters and no steps);
  moto ignores its ClientRequestToken. DynamoDB TTL is not enforced: an expired cooldown is
  written, not waited for.
- moto emits no service events and runs no event source mappings: the tests build the events
  from DescribeModelPackage as SageMaker does, and `drain` plays the SQS -> Lambda mapping.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.validate import validate_parameters

from lambdas.shared.control.history import resource_name
from lambdas.shared.control.settings import dummy_environment
from local_aws.role_sessions import SAGEMAKER_SESSION, RoleSessions
from stacks import control_tables as tables

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"
HANDLERS = ("gate", "deploy", "rollback", "retrain")
ACCOUNT = "123456789012"
GROUP = ENDPOINT = "mlops-dev-demo"
BUCKET = f"mlops-dev-artifacts-{ACCOUNT}"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/mlops-dev/mlops-dev-demo-execution"
ERRORS_ALARM, LATENCY_ALARM = "mlops-dev-demo-errors", "mlops-dev-demo-latency"
DRIFT_ALARM, ACCURACY_ALARM = "mlops-dev-demo-drift", "mlops-dev-demo-accuracy"
BOOTSTRAP = f"{ENDPOINT}-bootstrap"
# The training pipeline's parameters a retrain sets (SageMaker refuses undefined ones), no steps.
PIPELINE_DEFINITION = {"Version": "2020-12-01", "Steps": [], "Parameters": [
    {"Name": "InputDataUri", "Type": "String", "DefaultValue": f"s3://{BUCKET}/demo/data.csv"},
    {"Name": "ProductionDataSince", "Type": "String", "DefaultValue": ""}]}


class FakeContext:
    memory_limit_in_mb = 256
    aws_request_id = "req"

    def __init__(self, name: str):
        self.function_name = f"mlops-dev-demo-{name}"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


class SessionOf:
    """A handler's boto3 session (its service models shared with the others') calling as a
    session of its function's role, as Lambda runs it."""

    def __init__(self, session: Any, credentials: dict[str, str]):
        self._session, self._credentials = session, credentials

    def client(self, service: str, **kwargs: Any) -> Any:
        c = self._credentials
        return self._session.client(service, aws_access_key_id=c["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=c["AWS_SECRET_ACCESS_KEY"],
                                    aws_session_token=c["AWS_SESSION_TOKEN"], **kwargs)


class UpdateEndpointEmulation:
    """A SageMaker client whose update_endpoint is validated, recorded and (optionally) slowed."""

    def __init__(self, client: Any, world: World):
        self._client, self._world = client, world

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        shape = self._client.meta.service_model.operation_model("UpdateEndpoint").input_shape
        validate_parameters(kwargs, shape)  # raises on any parameter AWS would refuse
        time.sleep(self._world.update_delay)  # widens the window concurrent deliveries race in
        answer = self._client.update_endpoint(**kwargs)
        with self._world.lock:
            self._world.updates.append(kwargs)
        return answer


def evaluation_report(
    accuracy: float, recall: float, f1: float, roc_auc: float, p95: float, gap: float
) -> dict[str, Any]:
    """evaluation.json as pipelines/steps/evaluate.py writes it."""

    def value(v: float) -> dict[str, Any]:
        return {"value": v, "standard_deviation": "NaN"}

    return {
        "binary_classification_metrics": {
            "accuracy": value(accuracy),
            "recall": value(recall),
            "f1": value(f1),
            "auc": value(roc_auc),
            "confusion_matrix": {"0": {"0": 52, "1": 2}, "1": {"0": 2, "1": 30}},
        },
        "task": "classification",
        "n_test": 86,
        "metrics": {"accuracy": accuracy, "precision": 0.95, "recall": recall, "f1": f1, "roc_auc": roc_auc},
        "latency_ms": {"p50": round(p95 / 2, 3), "p95": p95, "n": 200},
        "fairness": {
            "attribute": "mean_radius",
            "threshold": 14.0,
            "metric": "recall",
            "groups": {"<= 14.0": {"n": 50, "recall": recall}, "> 14.0": {"n": 36, "recall": recall - gap}},
            "gap": gap,
            "max_gap": 0.25,
            "within_bounds": gap <= 0.25,
        },
        "model": {"algorithm": "gradient_boosting", "hyperparameters": {"n_estimators": 150}, "seed": 42},
    }


GOOD = evaluation_report(0.95, 0.93, 0.94, 0.98, 2.5, 0.05)
BETTER = evaluation_report(0.965, 0.95, 0.955, 0.99, 2.4, 0.04)
WORSE = evaluation_report(0.93, 0.89, 0.91, 0.97, 75.0, 0.31)


def epoch_ms(value: Any) -> Any:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else value


class World:
    """The local AWS with what the stack would provision, and the handlers loaded against it."""

    def __init__(self, server: Any, monkeypatch: pytest.MonkeyPatch, **settings: str):
        self.server, self.lock = server, threading.Lock()
        self.updates: list[dict[str, Any]] = []
        self.update_delay = 0.0
        self.sm, self.ddb, self.s3 = (
            server.client("sagemaker"),
            server.client("dynamodb"),
            server.client("s3"),
        )
        self.sqs, self.sns = server.client("sqs"), server.client("sns")
        self.env = dummy_environment(**settings)
        for key, value in {**server.client_env(), **self.env}.items():
            monkeypatch.setenv(key, value)
        for attribute, schema in tables.TABLES.items():
            name = self.env[attribute.upper()]
            self.ddb.create_table(**tables.create_table_request(schema, name))
            if schema["TimeToLive"]:
                self.ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": schema["TimeToLive"]},
                )
        self.topic_queues = {}
        for topic in ("critical", "warning"):
            arn = self.sns.create_topic(Name=f"mlops-dev-alerts-{topic}")["TopicArn"]
            assert arn == self.env[f"{topic.upper()}_TOPIC_ARN"]
            url = self.sqs.create_queue(QueueName=f"alerts-{topic}")["QueueUrl"]
            queue_arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
            self.sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn["QueueArn"])
            self.topic_queues[topic] = url
        self.s3.create_bucket(Bucket=BUCKET)
        self.sm.create_model_package_group(ModelPackageGroupName=GROUP)
        self.sm.create_pipeline(
            PipelineName=self.env["PIPELINE_NAME"],
            RoleArn=ROLE,
            PipelineDefinition=json.dumps(PIPELINE_DEFINITION),
        )
        self.session = boto3.session.Session()
        self.sessions = RoleSessions(lambda: server.client("sts"))
        self.pipeline = self.client_as(self.env["PIPELINE_ROLE_ARN"], SAGEMAKER_SESSION)
        self.approver = self.client_as(self.env["APPROVER_ROLE_ARN"], "alice")
        self.handlers = {name: self._load(name, monkeypatch) for name in HANDLERS}

    def client_as(self, role_arn: str, session_name: str, service: str = "sagemaker",
                  source_identity: str | None = None) -> Any:
        credentials = self.sessions.credentials(role_arn, session_name, source_identity)
        return self.server.client(service, credentials=credentials)

    def approve(self, arn: str) -> None:
        """The approver persona approves the package (in the console or the CLI)."""
        self.approver.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")

    def _load(self, name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
        # Settings are read at import (cold start): a fresh module per test, as a fresh container.
        module_name = f"lambdas.{name}.handler"
        module = (
            importlib.reload(sys.modules[module_name])
            if module_name in sys.modules
            else importlib.import_module(module_name)
        )
        role = f"arn:aws:iam::{ACCOUNT}:role/mlops-dev/mlops-dev-demo-{name}"
        # One set of service models for all four handlers, each calling as its role's session.
        credentials = self.sessions.credentials(role, f"mlops-dev-demo-{name}")
        module.loop.session = SessionOf(self.session, credentials)
        original = module.loop.client

        def client(service: str) -> Any:
            made = original(service)
            return UpdateEndpointEmulation(made, self) if service == "sagemaker" else made

        monkeypatch.setattr(module.loop, "client", client)
        return module

    # --- what Terraform creates: the endpoint on its bootstrap model --------------------------
    def bootstrap_endpoint(self) -> None:
        self.sm.create_model(
            ModelName=BOOTSTRAP,
            ExecutionRoleArn=ROLE,
            PrimaryContainer={
                "Image": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/mlops-dev-inference:bootstrap",
                "ModelDataUrl": f"s3://{BUCKET}/bootstrap/model.tar.gz",
            },
        )
        self.sm.create_endpoint_config(
            EndpointConfigName=BOOTSTRAP,
            ProductionVariants=[
                {
                    "VariantName": "primary",
                    "ModelName": BOOTSTRAP,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
        self.sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=BOOTSTRAP)

    # --- what the pipeline's register step does ------------------------------------------------
    def register(self, report: dict[str, Any], run: str) -> str:
        """As a job of the pipeline execution `run`: its report where the Evaluate step writes it."""
        key = f"demo/runs/{run}/evaluation/evaluation.json"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(report).encode())
        metadata = {name: str(v) for name, v in report["metrics"].items()}
        metadata.update(
            latency_p95_ms=str(report["latency_ms"]["p95"]),
            fairness_gap=str(report["fairness"]["gap"]),
            pipeline_run_id=run,
            mlflow_run_id="none",
            git_commit="4e1c9b2",
        )
        return self.pipeline.create_model_package(
            ModelPackageGroupName=GROUP,
            ModelPackageDescription=f"demo: gradient_boosting classification model from pipeline run {run}",
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/mlops-dev-inference:1",
                        "ModelDataUrl": f"s3://{BUCKET}/demo/runs/{run}/model/train-{run}/output/model.tar.gz",
                    }
                ],
                "SupportedContentTypes": ["text/csv", "application/json"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            ModelApprovalStatus="PendingManualApproval",
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/{key}"}
                }
            },
            CustomerMetadataProperties=metadata,
        )["ModelPackageArn"]

    # --- the events AWS would emit ----------------------------------------------------------------
    def package_event(self, arn: str) -> dict[str, Any]:
        """The state change event SageMaker sends for the package as it is now."""
        event = json.loads((EVENTS / "model_package_pending.json").read_text())
        described = self.sm.describe_model_package(ModelPackageName=arn)
        described.pop("ResponseMetadata")
        event.update(
            id=str(uuid.uuid4()),
            time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            resources=[arn],
            detail={k: epoch_ms(v) for k, v in described.items()},
        )
        return event

    def endpoint_event(self, pending: str | None = None, stage: str = "Baking",
                       **detail: Any) -> dict[str, Any]:
        """"SageMaker Endpoint State Change" for the endpoint as it is now (as SageMaker sends it:
        the docs' sample filled from DescribeEndpoint), or, with `pending`, the "Deployment State
        Change" of that config's fleet at `stage`."""
        name = "endpoint_deployment_baking.json" if pending else "endpoint_in_service.json"
        event = json.loads((EVENTS / name).read_text())
        described = self.sm.describe_endpoint(EndpointName=ENDPOINT)
        now_ms = int(time.time() * 1000)
        event.update(id=str(uuid.uuid4()), time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     resources=[described["EndpointArn"]], region="us-east-1", account=ACCOUNT)
        event["detail"].update(
            EndpointName=ENDPOINT, EndpointArn=described["EndpointArn"],
            EndpointConfigName=described["EndpointConfigName"], LastModifiedTime=now_ms,
            EndpointStatus="UPDATING" if pending else "IN_SERVICE", **detail)
        if pending:
            summary = event["detail"]["PendingDeploymentSummary"]
            summary["EndpointConfigName"] = pending
            summary["ProductionVariants"][0]["VariantStatus"][0].update(Status=stage, StartTime=now_ms)
        return event

    def bake(self, config: str, before: str | None) -> None:
        """What SageMaker reports of a blue/green update the local server completed at once: the
        new fleet baking with traffic, then InService on `config` (known-good)."""
        if before is not None:
            event = self.endpoint_event(pending=config)
            event["detail"]["EndpointConfigName"] = before
            self.deliver_ok("deploy", event)
        time.sleep(0.002)  # the events' millisecond times stay in order
        self.deliver_ok("deploy", self.endpoint_event())

    def alarm_event(self, alarm: str, at: datetime) -> dict[str, Any]:
        event = json.loads((EVENTS / "alarm_errors_alarm.json").read_text())
        event["id"] = str(uuid.uuid4())
        event["detail"]["alarmName"] = alarm
        event["detail"]["state"]["timestamp"] = at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
        return event

    # --- delivery ---------------------------------------------------------------------------------
    def deliver(self, handler: str, *events: Any) -> list[str]:
        """One SQS batch to `handler`; the message ids it reports as failed."""
        records = [
            {
                "messageId": f"msg-{uuid.uuid4().hex[:12]}",
                "receiptHandle": "rh",
                "body": event if isinstance(event, str) else json.dumps(event),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1772446507000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:{ACCOUNT}:mlops-dev-demo-{handler}",
                "awsRegion": "us-east-1",
            }
            for event in events
        ]
        response = self.handlers[handler].handler({"Records": records}, FakeContext(handler))
        return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]

    def deliver_ok(self, handler: str, *events: Any) -> None:
        assert self.deliver(handler, *events) == []

    def redeliver_until_done(self, handler: str, event: Any, attempts: int = 40) -> int:
        """SQS redelivering a failed record (after its visibility timeout) until it succeeds."""
        for attempt in range(1, attempts + 1):
            if not self.deliver(handler, event):
                return attempt
            time.sleep(0.1)
        raise AssertionError(f"{handler} kept failing")

    # --- what the tests look at -------------------------------------------------------------------
    def serving(self) -> str:
        return self.sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]

    def status(self, arn: str) -> str:
        return self.sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]

    def items(self, table_variable: str) -> list[dict[str, Any]]:
        from lambdas.shared.control.dynamo import from_item

        return [from_item(i) for i in self.ddb.scan(TableName=self.env[table_variable])["Items"]]

    def deployments(self, kind: str | None = None) -> list[dict[str, Any]]:
        records = sorted(self.items("DEPLOYMENTS_TABLE"), key=lambda r: (r["event_time"], r["started_at"]))
        return [r for r in records if kind is None or r["kind"] == kind]

    def audit(self, action: str) -> list[dict[str, Any]]:
        found = self.ddb.query(
            TableName=self.env["AUDIT_TABLE"],
            IndexName="by_action",
            KeyConditionExpression="#a = :a",
            ExpressionAttributeNames={"#a": "action"},
            ExpressionAttributeValues={":a": {"S": action}},
        )["Items"]
        from lambdas.shared.control.dynamo import from_item

        return sorted((from_item(i) for i in found), key=lambda r: r["recorded_at"])

    def notifications(self, topic: str) -> list[dict[str, Any]]:
        messages = []
        while True:
            got = self.sqs.receive_message(QueueUrl=self.topic_queues[topic], MaxNumberOfMessages=10)
            if not got.get("Messages"):
                return messages
            for m in got["Messages"]:
                messages.append(json.loads(json.loads(m["Body"])["Message"]))
                self.sqs.delete_message(QueueUrl=self.topic_queues[topic], ReceiptHandle=m["ReceiptHandle"])

    def executions(self) -> list[dict[str, Any]]:
        return self.sm.list_pipeline_executions(PipelineName=self.env["PIPELINE_NAME"])[
            "PipelineExecutionSummaries"
        ]


@pytest.fixture
def world(moto_server, monkeypatch) -> Iterator[World]:
    yield World(moto_server, monkeypatch)


def name_of(world: World, arn: str) -> str:
    version = world.sm.describe_model_package(ModelPackageName=arn)["ModelPackageVersion"]
    return resource_name(ENDPOINT, arn, version)


def gate_and_deploy(world: World, arn: str, times: int = 1, bake: bool = True) -> dict[str, Any]:
    """Registered -> gate -> (Approved) -> deploy, each event delivered `times` times: once in a
    batch with itself, then in batches of its own; then (`bake`) SageMaker's endpoint events of
    the update, so the deployment is known-good. Returns the Approved event."""
    try:
        before = world.serving()
    except ClientError:
        before = None
    pending = world.package_event(arn)
    world.deliver_ok("gate", *[pending] * times)
    for _ in range(times - 1):
        world.deliver_ok("gate", pending)
    approved = world.package_event(arn)
    assert approved["detail"]["ModelApprovalStatus"] == "Approved"
    world.deliver_ok("deploy", *[approved] * times)
    for _ in range(times - 1):
        world.deliver_ok("deploy", approved)
    if bake:
        world.bake(name_of(world, arn), before)
    return approved


def test_better_model_deploys_worse_is_rejected_alarm_rolls_back(world):
    world.bootstrap_endpoint()
    v1 = world.register(GOOD, "run-1")
    gate_and_deploy(world, v1)
    assert world.serving() == name_of(world, v1)
    first = world.deployments()[0]
    assert (first["previous_endpoint_config"], first["new_endpoint_config"]) == (
        BOOTSTRAP,
        name_of(world, v1),
    )
    assert (
        "no production model (first deployment)"
        in world.sm.describe_model_package(ModelPackageName=v1)["ApprovalDescription"]
    )

    # The model and config the deploy handler made: the package's container, data capture on.
    model = world.sm.describe_model(ModelName=name_of(world, v1))
    assert model["PrimaryContainer"]["ModelPackageName"] == v1
    config = world.sm.describe_endpoint_config(EndpointConfigName=name_of(world, v1))
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] and capture["DestinationS3Uri"] == world.env["CAPTURE_S3_URI"]
    assert capture["CaptureContentTypeHeader"] == {
        "CsvContentTypes": ["text/csv"],
        "JsonContentTypes": ["application/json"],
    }
    assert config["ProductionVariants"][0]["VariantName"] == "primary"
    assert world.updates[0]["DeploymentConfig"] == json.loads(world.env["DEPLOYMENT_CONFIG"])

    v2 = world.register(BETTER, "run-2")
    gate_and_deploy(world, v2)
    assert world.serving() == name_of(world, v2)
    assert (
        f"compared with production model {v1}"
        in world.sm.describe_model_package(ModelPackageName=v2)["ApprovalDescription"]
    )

    v3 = world.register(WORSE, "run-3")
    world.deliver_ok("gate", world.package_event(v3))
    assert world.status(v3) == "Rejected"
    description = world.sm.describe_model_package(ModelPackageName=v3)["ApprovalDescription"]
    for reason in (
        "recall 0.89 is below the minimum 0.9",
        "accuracy 0.93 is 0.035 worse than production's 0.965",
        "fairness gap 0.31 exceeds 0.25",
        "p95 latency 75 ms exceeds 50 ms",
    ):
        assert reason in description
    verdict = world.audit("gate")[-1]
    assert verdict["decision"] == "rejected" and verdict["subject"] == v3
    inputs = json.loads(verdict["inputs"])
    assert inputs["production_package_arn"] == v2 and inputs["candidate"]["latency_p95_ms"] == 75.0
    assert world.serving() == name_of(world, v2)  # a rejected package emits no Approved event

    world.deliver_ok("rollback", world.alarm_event(ERRORS_ALARM, datetime.now(UTC)))
    assert world.serving() == name_of(world, v1)
    assert world.status(v2) == "Rejected"
    assert ERRORS_ALARM in world.sm.describe_model_package(ModelPackageName=v2)["ApprovalDescription"]
    rollback = world.deployments("rollback")
    assert len(rollback) == 1 and rollback[0]["bad_model_package_arn"] == v2
    assert "DeploymentConfig" not in world.updates[-1] and world.updates[-1]["RetainAllVariantProperties"]

    assert [a["decision"] for a in world.audit("gate")] == ["approved", "approved", "rejected"]
    assert [a["decision"] for a in world.audit("deploy")] == ["deployed", "deployed"]
    assert [a["decision"] for a in world.audit("rollback")] == ["rolled-back"]
    critical = world.notifications("critical")
    assert [n["decision"] for n in critical] == ["rolled-back"]
    assert [n["action"] for n in world.notifications("warning")] == [
        "gate",
        "deploy",
        "deployment",  # v1 known-good
        "gate",
        "deploy",
        "deployment",
        "gate",
    ]


def test_every_event_twice_changes_nothing_beyond_once(world):
    world.bootstrap_endpoint()
    v1, v2 = world.register(GOOD, "run-1"), world.register(BETTER, "run-2")
    gate_and_deploy(world, v1, times=2)
    approved_v2 = gate_and_deploy(world, v2, times=2)
    assert world.serving() == name_of(world, v2)
    assert len(world.deployments("deploy")) == 2 and len(world.updates) == 2
    assert len(world.audit("gate")) == 2 and len(world.audit("deploy")) == 2
    alarm = world.alarm_event(ERRORS_ALARM, datetime.now(UTC))
    world.deliver_ok("rollback", alarm, alarm)
    world.deliver_ok("rollback", alarm)
    assert world.serving() == name_of(world, v1)
    assert len(world.deployments("rollback")) == 1 and len(world.updates) == 3
    assert len(world.audit("rollback")) == 1 and len(world.notifications("critical")) == 1

    # v2's Approved event redelivered after the rollback: the first result, no redeployment.
    world.deliver_ok("deploy", approved_v2)
    assert world.serving() == name_of(world, v1) and len(world.updates) == 3
    # Even once its idempotency record has expired: v2 is Rejected now, so it is skipped.
    for item in world.items("IDEMPOTENCY_TABLE"):
        world.ddb.delete_item(TableName=world.env["IDEMPOTENCY_TABLE"], Key={"id": {"S": item["id"]}})
    world.deliver_ok("deploy", approved_v2)
    assert world.serving() == name_of(world, v1) and len(world.updates) == 3
    assert [a["decision"] for a in world.audit("deploy")] == ["deployed", "deployed", "skipped"]

    # A second incident (another alarm, later) on the restored known-good model: reported, no
    # step further back.
    world.deliver_ok("rollback", world.alarm_event(LATENCY_ALARM, datetime.now(UTC) + timedelta(seconds=5)))
    assert world.serving() == name_of(world, v1) and len(world.updates) == 3
    assert [a["decision"] for a in world.audit("rollback")] == ["rolled-back", "keep-known-good"]
    assert [n["decision"] for n in world.notifications("critical")] == ["keep-known-good"]


def test_an_out_of_order_approval_never_brings_an_older_model_back(world):
    world.bootstrap_endpoint()
    v1, v2 = world.register(GOOD, "run-1"), world.register(BETTER, "run-2")
    world.approve(v1)
    old = world.package_event(v1)
    time.sleep(0.01)
    world.approve(v2)
    world.deliver_ok("deploy", world.package_event(v2))
    world.deliver_ok("deploy", old)  # delivered after the newer approval
    assert world.serving() == name_of(world, v2) and len(world.updates) == 1
    assert [a["decision"] for a in world.audit("deploy")] == ["deployed", "superseded"]


def race(world: World, handler: str, event: dict[str, Any]) -> list[int]:
    """Two deliveries of one event at the same moment (two Lambda instances), each redelivered
    until it succeeds; the number of attempts each needed."""
    start, attempts = threading.Barrier(2), []

    def deliver() -> None:
        start.wait()
        attempts.append(world.redeliver_until_done(handler, event))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(attempts)


def test_concurrent_deliveries_have_one_effect(world):
    world.bootstrap_endpoint()
    world.update_delay = 0.5  # the first delivery is still working when the second arrives
    v1, v2 = world.register(GOOD, "run-1"), world.register(BETTER, "run-2")
    world.approve(v1)
    attempts = race(world, "deploy", world.package_event(v1))
    assert attempts[0] == 1 and attempts[1] > 1  # the other was told to retry, then got the result
    assert len(world.updates) == 1 and len(world.deployments()) == 1 and len(world.audit("deploy")) == 1
    world.bake(name_of(world, v1), BOOTSTRAP)

    world.approve(v2)
    world.deliver_ok("deploy", world.package_event(v2))
    world.bake(name_of(world, v2), name_of(world, v1))
    attempts = race(world, "rollback", world.alarm_event(ERRORS_ALARM, datetime.now(UTC)))
    assert attempts[0] == 1 and attempts[1] > 1
    assert world.serving() == name_of(world, v1)
    assert (
        len(world.updates) == 3
        and len(world.deployments("rollback")) == 1
        and len(world.audit("rollback")) == 1
    )
    assert world.items("LOCKS_TABLE") == []  # every lease released


def test_a_held_endpoint_lease_fails_the_record_instead_of_waiting(world):
    world.bootstrap_endpoint()
    v1 = world.register(GOOD, "run-1")
    world.approve(v1)
    lease = {
        "lock_id": {"S": f"endpoint#{ENDPOINT}"},
        "owner": {"S": "rollback-elsewhere"},
        "expires_at": {"N": str(int(time.time()) + 300)},
        "purpose": {"S": "rollback on an alarm"},
    }
    world.ddb.put_item(TableName=world.env["LOCKS_TABLE"], Item=lease)
    approved = world.package_event(v1)
    started = time.monotonic()
    assert len(world.deliver("deploy", approved)) == 1
    assert time.monotonic() - started < 5 and world.serving() == BOOTSTRAP and world.deployments() == []
    assert world.items("IDEMPOTENCY_TABLE") == []  # nothing recorded: the redelivery acts
    world.ddb.delete_item(TableName=world.env["LOCKS_TABLE"], Key={"lock_id": lease["lock_id"]})
    world.deliver_ok("deploy", approved)
    assert world.serving() == name_of(world, v1)


def test_sagemakers_auto_rollback_is_recorded_rejects_the_package_and_pages(world):
    world.bootstrap_endpoint()
    v1, v2 = world.register(GOOD, "run-1"), world.register(BETTER, "run-2")
    gate_and_deploy(world, v1)
    assert [(d["status"], "known_good_at" in d) for d in world.deployments()] == [("SERVING", True)]
    gate_and_deploy(world, v2, bake=False)
    # The canary took traffic, then the guardrails put v1's fleet back (the local server switched
    # at once: the endpoint is pointed back as SageMaker's rollback leaves it).
    canary = world.endpoint_event(pending=name_of(world, v2))
    canary["detail"]["EndpointConfigName"] = name_of(world, v1)
    world.deliver_ok("deploy", canary, canary)
    world.sm.update_endpoint(EndpointName=ENDPOINT, EndpointConfigName=name_of(world, v1))
    reason = f"Deployment of {name_of(world, v2)} rolled back: alarm {ERRORS_ALARM} is in ALARM."
    time.sleep(0.002)
    world.deliver_ok("deploy", world.endpoint_event(FailureReason=reason))
    v2_record = world.deployments()[-1]
    assert v2_record["status"] == "ROLLED_BACK" and v2_record["outcome"] == reason
    assert world.status(v2) == "Rejected"
    assert reason in world.sm.describe_model_package(ModelPackageName=v2)["ApprovalDescription"]
    decisions = [a["decision"] for a in world.audit("deployment")]
    assert decisions == ["baking", "known-good", "baking", "rolled-back"]
    assert [n["decision"] for n in world.notifications("critical")] == ["rolled-back"]
    # A later alarm blames v1 (it serves, and took traffic first) but finds nothing known-good
    # before it: the bootstrap model is never a target.
    world.deliver_ok("rollback", world.alarm_event(ERRORS_ALARM, datetime.now(UTC)))
    assert world.serving() == name_of(world, v1) and world.status(v1) == "Approved"
    assert world.audit("rollback")[-1]["decision"] == "no-known-good"


def test_an_alarm_after_a_clean_bake_restores_the_newest_known_good_before_it(world):
    world.bootstrap_endpoint()
    v1, v2, v3 = (world.register(r, f"run-{i}") for i, r in enumerate((GOOD, BETTER, BETTER), 1))
    gate_and_deploy(world, v1)
    gate_and_deploy(world, v2, bake=False)  # still baking: not known-good
    gate_and_deploy(world, v3)
    world.deliver_ok("rollback", world.alarm_event(ERRORS_ALARM, datetime.now(UTC)))
    assert world.serving() == name_of(world, v1)
    assert [d["status"] for d in world.deployments("deploy")] == ["SERVING", "UPDATING", "ROLLED_BACK"]
    assert world.status(v3) == "Rejected" and world.status(v2) == "Approved"
    inputs = json.loads(world.audit("rollback")[-1]["inputs"])
    assert inputs["bad_model_package_arn"] == v3 and inputs["known_good_package_arn"] == v1
    # The rollback's own InService event: the restored deployment serves.
    world.deliver_ok("deploy", world.endpoint_event())
    assert world.deployments("rollback")[0]["status"] == "SERVING"


def test_a_gone_known_good_config_is_rebuilt_from_its_package(world):
    v1, v2 = world.register(GOOD, "run-1"), world.register(BETTER, "run-2")
    gate_and_deploy(world, v1)  # no endpoint yet: CreateEndpoint
    assert world.serving() == name_of(world, v1) and world.updates == []
    assert "previous_endpoint_config" not in world.deployments()[0]
    gate_and_deploy(world, v2)
    world.sm.delete_endpoint_config(EndpointConfigName=name_of(world, v1))

    world.deliver_ok("rollback", world.alarm_event(ERRORS_ALARM, datetime.now(UTC)))
    assert world.serving() == name_of(world, v1)  # rebuilt under the deploy handler's name
    inputs = json.loads(world.audit("rollback")[-1]["inputs"])
    assert inputs["rebuilt_from"] == v1 and "is gone" in inputs["rebuilt_because"]
    assert world.status(v2) == "Rejected"


def test_a_history_record_naming_a_package_nobody_approved_is_not_rebuilt(world):
    """Records are not evidence of approval: a known-good record whose config is gone and whose
    package the gate rejected (a forged or stale record) changes nothing."""
    v1, v2 = world.register(GOOD, "run-1"), world.register(BETTER, "run-2")
    gate_and_deploy(world, v1)
    gate_and_deploy(world, v2)
    rejected = world.register(WORSE, "run-3")
    world.deliver_ok("gate", world.package_event(rejected))
    assert world.status(rejected) == "Rejected"
    known_good = next(r for r in world.deployments() if r["model_package_arn"] == v1)
    key = {"endpoint_name": {"S": ENDPOINT}, "deployment_id": {"S": known_good["deployment_id"]}}
    world.ddb.update_item(TableName=world.env["DEPLOYMENTS_TABLE"], Key=key,
                          UpdateExpression="SET model_package_arn = :p",
                          ExpressionAttributeValues={":p": {"S": rejected}})
    world.sm.delete_endpoint_config(EndpointConfigName=name_of(world, v1))

    world.deliver_ok("rollback", world.alarm_event(ERRORS_ALARM, datetime.now(UTC)))
    assert world.serving() == name_of(world, v2) and world.status(v2) == "Approved"
    refusal = world.audit("rollback")[-1]
    assert refusal["decision"] == "refused" and refusal["reasons"][0] == "status is Rejected, not Approved"
    assert "refused" in [n["decision"] for n in world.notifications("critical")]


def test_no_known_good_model_leaves_the_endpoint_and_says_so(world):
    v1 = world.register(GOOD, "run-1")
    gate_and_deploy(world, v1)  # the first model: nothing before it
    world.deliver_ok("rollback", world.alarm_event(ERRORS_ALARM, datetime.now(UTC)))
    assert world.serving() == name_of(world, v1) and world.status(v1) == "Approved"
    assert world.audit("rollback")[-1]["decision"] == "no-known-good"
    assert [n["decision"] for n in world.notifications("critical")] == ["no-known-good"]


def drain(world: World, queue_url: str, handler: str, rounds: int) -> None:
    """What a Lambda event source mapping does: receive a batch, invoke, delete what succeeded."""
    queue_arn = world.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    for _ in range(rounds):
        got = world.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])
        messages = got.get("Messages", [])
        if not messages:
            continue
        batch = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m["Attributes"],
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn,
                    "awsRegion": "us-east-1",
                }
                for m in messages
            ]
        }
        failed = {
            f["itemIdentifier"]
            for f in world.handlers[handler].handler(batch, FakeContext(handler))["batchItemFailures"]
        }
        for m in messages:
            if m["MessageId"] not in failed:
                world.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def test_a_malformed_event_fails_alone_reaches_the_dlq_and_changes_nothing(world):
    world.bootstrap_endpoint()
    v1 = world.register(GOOD, "run-1")
    world.approve(v1)
    approved = world.package_event(v1)
    broken = dict(approved, detail={k: v for k, v in approved["detail"].items() if k != "ModelPackageArn"})

    # One batch: the malformed records are named, the valid one is processed.
    failed = world.deliver("deploy", "{not json", broken, approved)
    assert len(failed) == 2
    assert world.serving() == name_of(world, v1)
    assert len(world.items("IDEMPOTENCY_TABLE")) == 1 and len(world.audit("deploy")) == 1

    # Through a real queue with a DLQ (maxReceiveCount 2): retried, then dead-lettered.
    dlq = world.sqs.create_queue(QueueName="deploy-dlq")["QueueUrl"]
    dlq_arn = world.sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue = world.sqs.create_queue(
        QueueName="deploy",
        Attributes={
            "VisibilityTimeout": "0",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
        },
    )["QueueUrl"]
    for body in ("{not json", json.dumps(broken)):
        world.sqs.send_message(QueueUrl=queue, MessageBody=body)
    before = {t: len(world.items(t)) for t in ("IDEMPOTENCY_TABLE", "DEPLOYMENTS_TABLE", "LOCKS_TABLE")}
    drain(world, queue, "deploy", rounds=4)
    dead = world.sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert sorted(m["Body"] for m in dead) == sorted(["{not json", json.dumps(broken)])
    assert world.sqs.receive_message(QueueUrl=queue).get("Messages", []) == []
    assert {t: len(world.items(t)) for t in before} == before
    assert len(world.audit("deploy")) == 1 and len(world.updates) == 1


def test_a_storm_of_retrain_alarms_starts_one_pipeline_run(world):
    now = datetime.now(UTC)
    storm = [
        world.alarm_event(name, now + timedelta(seconds=i))
        for i, name in enumerate([DRIFT_ALARM, ACCURACY_ALARM] * 6)
    ]
    storm.append(world.alarm_event(ERRORS_ALARM, now))  # not a retrain alarm: ignored
    failures: list[str] = []

    def deliver(events: list[dict[str, Any]]) -> None:
        failures.extend(world.deliver("retrain", *events))

    threads = [threading.Thread(target=deliver, args=(storm[i::4] + storm[:2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for event in storm[:2]:  # records told to retry (a duplicate in progress) come back
        world.redeliver_until_done("retrain", event)
    executions = world.executions()
    assert len(executions) == 1
    assert executions[0]["PipelineExecutionDisplayName"].startswith("retrain-mlops-dev-demo-")
    decisions = [a["decision"] for a in world.audit("retrain")]
    assert decisions.count("started") == 1 and decisions.count("suppressed") == 11
    assert [n["decision"] for n in world.notifications("warning")] == ["started"]

    # After the cooldown, the next alarm starts the next run.
    lock = {"lock_id": {"S": f"retrain-cooldown#{world.env['PIPELINE_NAME']}"}}
    world.ddb.update_item(
        TableName=world.env["LOCKS_TABLE"],
        Key=lock,
        UpdateExpression="SET expires_at = :p",
        ExpressionAttributeValues={":p": {"N": str(int(time.time()) - 1)}},
    )
    world.deliver_ok("retrain", world.alarm_event(DRIFT_ALARM, now + timedelta(minutes=10)))
    assert len(world.executions()) == 2


def test_pipeline_start_failure_releases_the_cooldown(world):
    world.sm.delete_pipeline(PipelineName=world.env["PIPELINE_NAME"])
    event = world.alarm_event(DRIFT_ALARM, datetime.now(UTC))
    assert len(world.deliver("retrain", event)) == 1
    assert world.items("LOCKS_TABLE") == [] and world.audit("retrain") == []
    world.sm.create_pipeline(
        PipelineName=world.env["PIPELINE_NAME"],
        RoleArn=ROLE,
        PipelineDefinition=json.dumps(PIPELINE_DEFINITION),
    )
    world.deliver_ok("retrain", event)  # the retry starts it
    assert len(world.executions()) == 1


def test_update_endpoint_emulation_refuses_what_aws_refuses(world):
    world.bootstrap_endpoint()
    client = UpdateEndpointEmulation(world.sm, world)
    with pytest.raises(ClientError):
        client.update_endpoint(EndpointName=ENDPOINT, EndpointConfigName="missing")
    with pytest.raises(Exception, match="Unknown parameter"):
        client.update_endpoint(EndpointName=ENDPOINT, EndpointConfigName=BOOTSTRAP, Bogus=1)


# Powertools metrics are process-wide; a second "cold start" with other settings re-sets them.
@pytest.mark.filterwarnings("ignore:Dimension 'environment' has already been added")
def test_production_serves_only_promoted_packages_the_approver_approved(moto_server, monkeypatch):
    """Production rules come from PRODUCTION, not the name: a second local environment standing
    in for prod (`localprod`), promoting from staging's group in staging's own account."""
    source_account = "210987654321"
    world = World(
        moto_server,
        monkeypatch,
        ENVIRONMENT="localprod",
        PRODUCTION="true",
        APPROVER_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/mlops-prod/mlops-prod-ml-engineer",
        PROMOTION_SOURCE_GROUP=f"arn:aws:sagemaker:us-east-1:{source_account}:model-package-group/"
                               "mlops-staging-demo",
    )
    # Persons are told apart by their sessions' source identity: alice's, as production's persona
    # trust policies require one.
    world.approver = world.client_as(world.env["APPROVER_ROLE_ARN"], "alice", source_identity="alice")
    world.bootstrap_endpoint()
    v1 = world.register(GOOD, "run-1")
    world.deliver_ok("gate", world.package_event(v1))
    assert world.status(v1) == "PendingManualApproval"  # passed; the approver role decides
    assert world.audit("gate")[-1]["decision"] == "passed"
    # Approved by the approver, but not promoted from staging: refused.
    world.approve(v1)
    world.deliver_ok("deploy", world.package_event(v1))
    assert world.serving() == BOOTSTRAP and world.updates == [] and world.deployments() == []
    refusal = world.audit("deploy")[-1]
    assert refusal["decision"] == "refused" and json.loads(refusal["inputs"])["approved_by"].endswith(
        ":assumed-role/mlops-prod-ml-engineer/alice")
    assert refusal["reasons"] == [
        "production packages must carry metadata promoted_from (the source environment's package ARN)"]
    assert [n["decision"] for n in world.notifications("critical")] == ["refused"]
    described = world.sm.describe_model_package(ModelPackageName=v1)
    carol = world.client_as(world.env["APPROVER_ROLE_ARN"], "carol", source_identity="carol")

    def copied_spec(source: str) -> dict:
        """The source's archive where `mlops model promote` copies it: promoted/<group>/<version>/."""
        group, version = source.rsplit("/", 2)[-2:]
        (container,) = described["InferenceSpecification"]["Containers"]
        key = f"demo/promoted/{group}/{version}/model.tar.gz"
        world.s3.put_object(Bucket=BUCKET, Key=key, Body=b"the promoted archive")
        return {**described["InferenceSpecification"],
                "Containers": [{"Image": container["Image"], "ModelDataUrl": f"s3://{BUCKET}/{key}"}]}

    def promote(source: str) -> str:
        """The approver's copy naming the package it was promoted from, approved by another."""
        promoted = world.approver.create_model_package(
            ModelPackageGroupName=GROUP, ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification=copied_spec(source),
            CustomerMetadataProperties={**described["CustomerMetadataProperties"], "promoted_from": source},
        )["ModelPackageArn"]
        carol.update_model_package(ModelPackageArn=promoted, ModelApprovalStatus="Approved")
        world.deliver_ok("deploy", world.package_event(promoted))
        return promoted

    # A group named as staging's in this (the production) account is not the source.
    lookalike = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:model-package/mlops-staging-demo/4"
    promote(lookalike)
    assert world.serving() == BOOTSTRAP
    assert world.audit("deploy")[-1]["reasons"] == [
        f"promoted_from {lookalike} is not a package of the promotion source group "
        f"{world.env['PROMOTION_SOURCE_GROUP']}"]
    # Naming the source but serving another archive (the pipeline's, here) is not the source's model.
    staging = f"arn:aws:sagemaker:us-east-1:{source_account}:model-package/mlops-staging-demo/4"
    elsewhere = world.approver.create_model_package(
        ModelPackageGroupName=GROUP, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification=described["InferenceSpecification"],
        CustomerMetadataProperties={**described["CustomerMetadataProperties"], "promoted_from": staging},
    )["ModelPackageArn"]
    carol.update_model_package(ModelPackageArn=elsewhere, ModelApprovalStatus="Approved")
    world.deliver_ok("deploy", world.package_event(elsewhere))
    assert world.serving() == BOOTSTRAP
    assert "is not the promoted copy of" in world.audit("deploy")[-1]["reasons"][0]
    # Four eyes: alice made it, so alice's approval does not count; carol's does.
    promoted = world.approver.create_model_package(
        ModelPackageGroupName=GROUP, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification=copied_spec(staging),
        CustomerMetadataProperties={**described["CustomerMetadataProperties"], "promoted_from": staging},
    )["ModelPackageArn"]
    world.approve(promoted)
    world.deliver_ok("deploy", world.package_event(promoted))
    assert world.serving() == BOOTSTRAP and "same person" in world.audit("deploy")[-1]["reasons"][0]
    # Nor does alice's under another session name: the same person (her source identity).
    alice_again = world.client_as(world.env["APPROVER_ROLE_ARN"], "not-alice", source_identity="alice")
    alice_again.update_model_package(ModelPackageArn=promoted, ModelApprovalStatus="Approved")
    world.deliver_ok("deploy", world.package_event(promoted))
    assert world.serving() == BOOTSTRAP
    assert world.audit("deploy")[-1]["reasons"] == [
        f"created and approved by the same person (alice, sessions arn:aws:sts::{ACCOUNT}:assumed-role/"
        f"mlops-prod-ml-engineer/alice and arn:aws:sts::{ACCOUNT}:assumed-role/mlops-prod-ml-engineer/"
        "not-alice): production needs another person to approve"]
    # Nor a session that names no person at all.
    nobody = world.client_as(world.env["APPROVER_ROLE_ARN"], "carol")
    nobody.update_model_package(ModelPackageArn=promoted, ModelApprovalStatus="Approved")
    world.deliver_ok("deploy", world.package_event(promoted))
    assert world.serving() == BOOTSTRAP
    assert "its approver (arn:aws:sts::" in world.audit("deploy")[-1]["reasons"][0]
    assert "has no source identity" in world.audit("deploy")[-1]["reasons"][0]
    carol.update_model_package(ModelPackageArn=promoted, ModelApprovalStatus="Approved")
    world.deliver_ok("deploy", world.package_event(promoted))
    assert world.serving() == name_of(world, promoted)


def test_production_gate_judges_a_promoted_package_by_its_copied_report_not_its_metadata(moto_server,
                                                                                        monkeypatch):
    """The promoter writes a promoted package's metadata: the gate reads the evaluation report the
    promotion copied beside the archive (`promoted/<group>/<version>/evaluation.json`), checked
    against `evaluation_sha256`; metadata claiming better metrics changes nothing, and without a
    usable report nothing is measured."""
    source_group = "arn:aws:sagemaker:us-east-1:210987654321:model-package-group/mlops-staging-demo"
    world = World(moto_server, monkeypatch, ENVIRONMENT="localprod", PRODUCTION="true",
                  APPROVER_ROLE_ARN=f"arn:aws:iam::{ACCOUNT}:role/mlops-prod/mlops-prod-ml-engineer",
                  PROMOTION_SOURCE_GROUP=source_group)
    promoter = world.client_as(world.env["APPROVER_ROLE_ARN"], "promoter", source_identity="alice")
    world.bootstrap_endpoint()
    described = world.sm.describe_model_package(ModelPackageName=world.register(GOOD, "run-1"))
    bragging = {name: "0.999" for name in GOOD["metrics"]} | {"latency_p95_ms": "1", "fairness_gap": "0"}

    def promoted(version: int, report: dict | None, recorded: str | None = None) -> str:
        prefix = f"demo/promoted/mlops-staging-demo/{version}/"
        metadata = {**described["CustomerMetadataProperties"], **bragging,
                    "promoted_from": source_group.replace("-group", "") + f"/{version}"}
        if report is not None:
            body = json.dumps(report).encode()
            world.s3.put_object(Bucket=BUCKET, Key=prefix + "evaluation.json", Body=body)
            metadata["evaluation_sha256"] = recorded or hashlib.sha256(body).hexdigest()
        world.s3.put_object(Bucket=BUCKET, Key=prefix + "model.tar.gz", Body=b"archive")
        (container,) = described["InferenceSpecification"]["Containers"]
        arn = promoter.create_model_package(
            ModelPackageGroupName=GROUP, ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={**described["InferenceSpecification"], "Containers": [
                {"Image": container["Image"], "ModelDataUrl": f"s3://{BUCKET}/{prefix}model.tar.gz"}]},
            CustomerMetadataProperties=metadata)["ModelPackageArn"]
        world.deliver_ok("gate", world.package_event(arn))
        return arn

    good = promoted(4, GOOD)
    record = world.audit("gate")[-1]
    assert record["decision"] == "passed" and world.status(good) == "PendingManualApproval"
    assert json.loads(record["inputs"])["candidate"]["metrics"]["accuracy"] == GOOD["metrics"]["accuracy"]
    # A worse model whose metadata brags: the copied report decides.
    worse = promoted(5, WORSE)
    assert world.audit("gate")[-1]["decision"] == "rejected" and world.status(worse) == "Rejected"
    # A report that is not the one the promotion recorded; no report at all: nothing measured.
    for version, report, recorded in ((6, GOOD, "0" * 64), (7, None, None)):
        arn = promoted(version, report, recorded)
        record = world.audit("gate")[-1]
        assert record["decision"] == "rejected" and world.status(arn) == "Rejected"
        inputs = json.loads(record["inputs"])
        assert inputs["candidate"]["metrics"] == {} and inputs["candidate"]["source"] == "none"
        assert inputs["candidate_report_problem"].startswith(
            f"cannot use the promoted evaluation report s3://{BUCKET}/demo/promoted/mlops-staging-demo/"
            f"{version}/evaluation.json: ")
    assert "not the evaluation_sha256 " + "0" * 64 in world.audit("gate")[-2]["inputs"]


def test_packages_nobody_trusted_made_or_approved_are_never_served(world):
    """The routes around the gate: a package registered by someone who may not (a data scientist
    with a stray CreateModelPackage), one approved by someone who may not, and a package whose
    ModelMetrics names a better report than its pipeline execution wrote."""
    world.bootstrap_endpoint()
    scientist_role = f"arn:aws:iam::{ACCOUNT}:role/mlops-dev/mlops-dev-data-scientist"
    scientist = world.client_as(scientist_role, "bob")
    described = world.sm.describe_model_package(ModelPackageName=world.register(GOOD, "run-1"))
    forged = scientist.create_model_package(
        ModelPackageGroupName=GROUP, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification=described["InferenceSpecification"],
        CustomerMetadataProperties=described["CustomerMetadataProperties"],
    )["ModelPackageArn"]
    world.deliver_ok("gate", world.package_event(forged))
    assert world.status(forged) == "Rejected"
    verdict = world.audit("gate")[-1]
    assert verdict["decision"] == "rejected" and verdict["reasons"] == [
        f"created by arn:aws:sts::{ACCOUNT}:assumed-role/mlops-dev-data-scientist/bob, "
        f"not by a pipeline execution of the project ({world.env['PIPELINE_ROLE_ARN']})"]
    # Approved by the scientist anyway: the deploy handler refuses, and says so on the critical topic.
    scientist.update_model_package(ModelPackageArn=forged, ModelApprovalStatus="Approved")
    world.deliver_ok("deploy", world.package_event(forged))
    refusal = world.audit("deploy")[-1]
    assert refusal["decision"] == "refused" and len(refusal["reasons"]) == 2
    assert world.serving() == BOOTSTRAP and world.updates == []

    # A pipeline package self-approved by the scientist: refused too.
    own = world.register(GOOD, "run-2")
    scientist.update_model_package(ModelPackageArn=own, ModelApprovalStatus="Approved")
    world.deliver_ok("deploy", world.package_event(own))
    assert world.audit("deploy")[-1]["reasons"] == [
        f"approved by arn:aws:sts::{ACCOUNT}:assumed-role/mlops-dev-data-scientist/bob, "
        f"not by {world.env['GATE_ROLE_ARN']} or {world.env['APPROVER_ROLE_ARN']}"]
    assert {n["decision"] for n in world.notifications("critical")} == {"rejected", "refused"}

    # ModelMetrics naming a better report than the execution wrote: the gate reads the execution's.
    worse = world.register(WORSE, "run-3")
    world.s3.put_object(Bucket=BUCKET, Key="workspace/better.json", Body=json.dumps(BETTER).encode())
    report = world.sm.describe_model_package(ModelPackageName=worse)["ModelMetrics"]
    assert report["ModelQuality"]["Statistics"]["S3Uri"].endswith("/runs/run-3/evaluation/evaluation.json")
    world.deliver_ok("gate", world.package_event(worse))
    assert world.status(worse) == "Rejected"
    assert json.loads(world.audit("gate")[-1]["inputs"])["candidate"]["metrics"]["accuracy"] == 0.93
    assert world.serving() == BOOTSTRAP


def test_an_accuracy_drop_rolls_back_a_new_model_and_retrains_a_healthy_one(world):
    world.bootstrap_endpoint()
    v1, v2 = world.register(GOOD, "run-1"), world.register(BETTER, "run-2")
    gate_and_deploy(world, v1)
    gate_and_deploy(world, v2)
    # No window of v2 was measured healthy: the drop began under it. Both handlers get the
    # alarm; the rollback handler restores v1, the retrain handler leaves it to that.
    drop = world.alarm_event(ACCURACY_ALARM, datetime.now(UTC))
    world.deliver_ok("retrain", drop)
    world.deliver_ok("rollback", drop)
    assert world.serving() == name_of(world, v1) and world.status(v2) == "Rejected"
    assert [a["decision"] for a in world.audit("retrain")] == ["left-to-rollback"]
    assert world.executions() == []
    assert json.loads(world.audit("rollback")[-1]["inputs"])["drop_cause"] == "model-changed"
    world.deliver_ok("deploy", world.endpoint_event())  # the rollback's InService

    # v1 restored and measured healthy (the model-quality check's datapoint), then the drop:
    # concept drift. Nothing served changes; the retrain starts; the critical topic is told.
    world.notifications("critical")
    time.sleep(1.1)
    world.server.client("cloudwatch").put_metric_data(Namespace="MLOps/ModelQuality", MetricData=[{
        "MetricName": "AccuracyDropPercent", "Value": 1.5, "Timestamp": datetime.now(UTC),
        "Dimensions": [{"Name": "EndpointName", "Value": ENDPOINT}]}])
    later = world.alarm_event(ACCURACY_ALARM, datetime.now(UTC) + timedelta(seconds=2))
    world.deliver_ok("rollback", later)
    world.deliver_ok("retrain", later)
    assert world.serving() == name_of(world, v1) and world.status(v1) == "Approved"
    assert world.audit("rollback")[-1]["decision"] == "concept-drift"
    assert world.audit("retrain")[-1]["decision"] == "started" and len(world.executions()) == 1
    assert [n["decision"] for n in world.notifications("critical")] == ["concept-drift"]


def test_a_drift_alarm_retrains_and_changes_nothing_served(world):
    world.bootstrap_endpoint()
    v1 = world.register(GOOD, "run-1")
    gate_and_deploy(world, v1)
    drift = world.alarm_event(DRIFT_ALARM, datetime.now(UTC))
    world.deliver_ok("rollback", drift)  # not a rollback alarm: ignored
    world.deliver_ok("retrain", drift)
    assert world.serving() == name_of(world, v1) and world.status(v1) == "Approved"
    assert world.audit("rollback") == [] and len(world.executions()) == 1
    # The run gets new data: the served package's training data plus what was labelled since it.
    parameters = json.loads(world.audit("retrain")[-1]["inputs"])["pipeline_parameters"]
    created = world.sm.describe_model_package(ModelPackageName=v1)["CreationTime"]
    assert parameters == [{"Name": "ProductionDataSince", "Value": created.astimezone(UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")}]


def scheduled_event(rule: str) -> dict[str, Any]:
    """A schedule rule's event, as the EventBridge user guide shows it."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": ACCOUNT, "region": "us-east-1",
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "resources": [f"arn:aws:events:us-east-1:{ACCOUNT}:rule/{rule}"], "detail": {}}


def baseline_points(world: World, since: datetime, until: datetime) -> list[dict[str, Any]]:
    got = world.server.client("cloudwatch").get_metric_statistics(
        Namespace="MLOps/ControlLoop", MetricName="LatencyBaselineP95", StartTime=since, EndTime=until,
        Period=60, Statistics=["Maximum"],
        Dimensions=[{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": "primary"}])
    return sorted(got["Datapoints"], key=lambda d: d["Timestamp"])


def test_the_schedule_publishes_the_served_models_latency_baseline_ahead(world):
    world.bootstrap_endpoint()
    v1 = world.register(GOOD, "run-1")
    gate_and_deploy(world, v1)
    (record,) = world.deployments("deploy")
    # No endpoint traffic in this world: the bake measured nothing, the alarm keeps the
    # configured baseline, and the record still became known-good.
    assert record["status"] == "SERVING" and "latency_baseline_us" not in record
    inputs = json.loads(world.audit("deployment")[-1]["inputs"])
    assert inputs["latency_baseline"]["published"] == 0
    assert "0 invocations" in inputs["latency_measurement"]

    # A measured bake (as the local endpoint runtime's traffic gives one): the schedule publishes it.
    world.ddb.update_item(
        TableName=world.env["DEPLOYMENTS_TABLE"],
        Key={"endpoint_name": {"S": ENDPOINT}, "deployment_id": {"S": record["deployment_id"]}},
        UpdateExpression="SET latency_baseline_us = :v, latency_baseline_invocations = :n",
        ExpressionAttributeValues={":v": {"N": "6200.5"}, ":n": {"N": "180"}})
    audited = len(world.items("AUDIT_TABLE"))
    now = datetime.now(UTC)
    world.deliver_ok("deploy", scheduled_event("mlops-dev-demo-deploy-baseline"))
    points = baseline_points(world, now - timedelta(minutes=1), now + timedelta(minutes=16))
    assert {p["Maximum"] for p in points} == {6200.5}  # above the 5 ms floor: as measured
    # Every minute from now to the horizon (15 minutes) ahead.
    assert points[0]["Timestamp"] <= now and points[-1]["Timestamp"] >= now + timedelta(minutes=14)
    assert len(world.items("AUDIT_TABLE")) == audited  # a refresh decides nothing
    # A malformed schedule event fails alone, naming the field.
    bad = scheduled_event("x")
    bad["source"] = "aws.sagemaker"
    assert len(world.deliver("deploy", bad)) == 1


def test_an_audit_record_is_written_once_and_never_overwritten(world):
    from lambdas.shared.control.dynamo import AuditLog

    log = AuditLog(world.ddb, world.env["AUDIT_TABLE"])
    decision = {"subject": ENDPOINT, "action": "rollback", "decision": "rolled-back", "reasons": ["first"],
                "inputs": {"n": 1}, "event_time": datetime(2026, 12, 1, 12, tzinfo=UTC),
                "identity": '{"alarm": "x"}', "context": {"project": "demo"}}
    first = log.write(**decision)
    assert "already_recorded" not in first
    time.sleep(0.002)
    again = log.write(**{**decision, "reasons": ["a retry's other words"]})
    assert again["already_recorded"] is True and again["audit_id"] == first["audit_id"]
    (stored,) = world.audit("rollback")
    assert (stored["reasons"], stored["recorded_at"]) == (["first"], first["recorded_at"])


def test_what_the_handlers_create_carries_the_cost_allocation_tags(world):
    world.bootstrap_endpoint()
    v1 = world.register(GOOD, "run-1")
    gate_and_deploy(world, v1)
    name = name_of(world, v1)
    for arn in (world.sm.describe_model(ModelName=name)["ModelArn"],
                world.sm.describe_endpoint_config(EndpointConfigName=name)["EndpointConfigArn"]):
        tags = {t["Key"]: t["Value"] for t in world.sm.list_tags(ResourceArn=arn)["Tags"]}
        assert {k: tags.get(k) for k in ("project", "team", "environment")} == {
            "project": "demo", "team": "ml-research", "environment": "dev"}, tags
        assert tags["model-package-arn"] == v1


def test_with_shadow_tests_on_a_package_is_shadowed_until_a_passing_report_promotes_it(moto_server,
                                                                                         monkeypatch):
    """serving.shadow: the approved package becomes the shadow variant of what production serves
    (kind `shadow`, production unchanged, a guarded update); the promotion's metadata update
    (PASSED_KEY, by the approver) deploys it to production by the normal guarded update."""
    from lambdas.shared.control import shadow

    world = World(moto_server, monkeypatch, SHADOW_SAMPLING_PERCENT="20")
    world.bootstrap_endpoint()
    v1 = world.register(GOOD, "run-1")
    gate_and_deploy(world, v1, bake=False)
    version = world.sm.describe_model_package(ModelPackageName=v1)["ModelPackageVersion"]
    served = world.serving()
    assert served == shadow.config_name(ENDPOINT, v1, version, BOOTSTRAP)
    config = world.sm.describe_endpoint_config(EndpointConfigName=served)
    production = [(v["VariantName"], v["ModelName"]) for v in config["ProductionVariants"]]
    assert production == [("primary", BOOTSTRAP)]
    (candidate,) = config["ShadowProductionVariants"]
    assert (candidate["VariantName"], candidate["ModelName"], candidate["InitialVariantWeight"]) == (
        "shadow", name_of(world, v1), 0.2)
    described = world.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert [v["VariantName"] for v in described["ShadowProductionVariants"]] == ["shadow"]
    assert world.updates[-1]["DeploymentConfig"] == json.loads(world.env["DEPLOYMENT_CONFIG"])
    world.bake(served, BOOTSTRAP)
    (record,) = world.deployments()
    assert (record["kind"], record["status"], record["model_package_arn"]) == ("shadow", "SERVING", v1)
    assert [a["decision"] for a in world.audit("deploy")] == ["shadowed"]
    assert world.audit("deployment")[-1]["decision"] == "shadowing"

    world.approver.update_model_package(ModelPackageArn=v1, CustomerMetadataProperties={
        shadow.PASSED_KEY: f"s3://{BUCKET}/demo/shadow/{ENDPOINT}/20260302T100000Z/report.json"})
    world.deliver_ok("deploy", world.package_event(v1))
    assert world.serving() == name_of(world, v1)
    promoted = world.sm.describe_endpoint_config(EndpointConfigName=name_of(world, v1))
    assert "ShadowProductionVariants" not in promoted
    assert "ShadowProductionVariants" not in world.sm.describe_endpoint(EndpointName=ENDPOINT)
    assert world.updates[-1]["DeploymentConfig"] == json.loads(world.env["DEPLOYMENT_CONFIG"])
    assert [r["kind"] for r in world.deployments()] == ["shadow", "deploy"]
    assert [a["decision"] for a in world.audit("deploy")] == ["shadowed", "deployed"]
