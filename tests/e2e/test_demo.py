"""`mlops demo` (what `make demo` runs) on a fresh checkout, and every transition of its story
checked in the local AWS it leaves running: the deployment records, the packages' approval
statuses, the alarms, the dataset version, the audit trail and what the endpoint serves."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lambdas.shared.control.dynamo import DeploymentHistory, from_item
from local_aws.lifecycle import LocalAws, ServerRecord

ROOT = Path(__file__).resolve().parents[2]
MLOPS = str(Path(sys.executable).with_name("mlops"))
PHASES = ["set-up", "local up", "train v1", "gate", "canary deploy", "traffic with labels", "v1 known-good",
          "broken v2", "drifted traffic", "drift warning", "retrain on new data", "v3 gated, deployed, baked",
          "rollback drill on v3"]
ENDPOINT = "mlops-local-demo"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-checkout")
    shutil.copytree(ROOT / "environments", root / "environments")
    shutil.copy(ROOT / "cdktf.json", root / "cdktf.json")
    env = {**os.environ, "MLOPS_ROOT": str(root), "MLOPS_DEMO_STARTED_AT": ""}
    try:
        proc = subprocess.run([MLOPS, "demo", "--json"], env=env, capture_output=True, text=True,
                              timeout=1200)
        yield root, proc
    finally:
        LocalAws(root / ".mlops" / "local").stop()  # the demo leaves its local AWS up; stopped by pid


@pytest.fixture(scope="module")
def story(demo) -> dict:
    _, proc = demo
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def server(demo, story) -> ServerRecord:
    record = LocalAws(demo[0] / ".mlops" / "local").running()
    assert record is not None
    return record


def packages(server: ServerRecord) -> dict[int, dict]:
    sagemaker = server.client("sagemaker")
    summaries = sagemaker.list_model_packages(ModelPackageGroupName=ENDPOINT)["ModelPackageSummaryList"]
    described = [sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries]
    return {p["ModelPackageVersion"]: p for p in described}


def test_every_phase_ran_and_the_screen_shows_phases_not_terraform(demo, story):
    root, proc = demo
    assert [p["phase"] for p in story["phases"]] == PHASES
    assert all(p["ok"] for p in story["phases"]), story
    assert story["ok"] is True and story["error"] is None
    assert all(p["seconds"] >= 0 and p["where"] for p in story["phases"] if p["phase"] != "set-up")
    # Terraform's output is in its log files, the commands' output in the demo's log.
    assert "Creating..." not in proc.stderr and "Apply complete" not in proc.stderr
    logs = root / ".mlops" / "logs"
    assert "Creation complete" in (logs / "platform-local.log").read_text()
    assert "Apply complete!" in (logs / "demo.log").read_text()
    assert story["log"] == str(logs / "demo.log")
    # The summary table, on stderr beside the live lines.
    for phase in PHASES:
        assert phase in proc.stderr
    by_name = {p["phase"]: p for p in story["phases"]}
    assert "SageMaker rolled back" in by_name["broken v2"]["happened"]
    drill = by_name["rollback drill on v3"]["happened"]
    assert drill.startswith("outage: 10% of v3's requests failing") and "critical-error-rate" in drill
    assert "bootstrap" not in drill
    assert "bootstrap" not in by_name["broken v2"]["happened"]


def test_the_story_left_every_transition_in_the_records(server):
    by_version = packages(server)
    assert set(by_version) == {1, 2, 3}
    v1, v2, v3 = by_version[1], by_version[2], by_version[3]
    # v1 gated and served; v2 (the faulty copy) rejected after SageMaker rolled it back; v3 gated,
    # served and then rejected by the rollback handler.
    assert v1["ModelApprovalStatus"] == "Approved"
    assert v2["ModelApprovalStatus"] == "Rejected"
    assert v2["CustomerMetadataProperties"]["mlops_drill_fault"] == "MLOPS_FAULT_ERROR_PERCENT=100"
    assert v3["ModelApprovalStatus"] == "Rejected"

    history = DeploymentHistory(server.client("dynamodb"), f"{ENDPOINT}-deployments").list(ENDPOINT)
    deploys = {r.model_package_arn: r for r in history if r.kind == "deploy"}
    first, broken, third = (deploys[p["ModelPackageArn"]] for p in (v1, v2, v3))
    assert first.known_good_at and first.traffic_at
    # Its bake's p95 is the latency alarm's baseline, published for the alarm to divide by.
    # (the new fleet's own requests: the demo's local override asks for 30)
    assert first.latency_baseline_us and first.latency_baseline_invocations >= 30, first
    published = server.client("cloudwatch").get_metric_statistics(
        Namespace="MLOps/ControlLoop", MetricName="LatencyBaselineP95", Statistics=["Maximum"], Period=60,
        StartTime=first.known_good_at, EndTime=datetime.now(UTC) + timedelta(minutes=5),
        Dimensions=[{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": "primary"}])
    assert published["Datapoints"], "no latency baseline published"
    assert broken.status == "ROLLED_BACK" and broken.known_good_at is None and broken.outcome
    assert third.known_good_at, third  # baked before the drill
    (rollback,) = [r for r in history if r.kind == "rollback"]
    assert rollback.new_endpoint_config == first.new_endpoint_config
    assert rollback.bad_model_package_arn == v3["ModelPackageArn"]
    assert "bootstrap" not in rollback.new_endpoint_config
    endpoint = server.client("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == first.new_endpoint_config

    # The retrain trained on a new dataset version that names its sources.
    meta = v3["CustomerMetadataProperties"]
    assert "/datasets/sha256-" in meta["data_uri"] and meta["data_uri"] != v1["CustomerMetadataProperties"][
        "data_uri"]
    bucket, key = meta["data_uri"].removeprefix("s3://").split("/", 1)
    version = json.loads(server.client("s3").get_object(
        Bucket=bucket, Key=key.rsplit("/", 1)[0] + "/version.json")["Body"].read())
    assert version["production_rows"] > 0
    assert version["rows"] == version["base_rows"] + version["production_rows"]
    assert version["uri"] == meta["data_uri"]
    assert [s["kind"] for s in version["sources"]] == ["training data", "captured inputs", "ground truth"]

    alarms = {a["AlarmName"]: a["StateValue"] for a in server.client("cloudwatch").describe_alarms(
        AlarmNamePrefix=ENDPOINT)["MetricAlarms"]}
    assert "ALARM" in (alarms[f"{ENDPOINT}-warning-drift"], alarms[f"{ENDPOINT}-warning-feature-drift"])
    assert alarms[f"{ENDPOINT}-critical-error-rate"] == "OK"  # the drills put it back

    # The scheduled explainability pipeline compared the served v1's attributions on the window's
    # traffic with its reference, and its alarm says what the report says (the demo's shift moves
    # the ranking a little: nDCG ~0.94 in the runs seen, above the 0.9 threshold).
    account = server.client("sts").get_caller_identity()["Account"]
    s3, bucket = server.client("s3"), f"mlops-local-artifacts-{account}"
    (report_key,) = [o["Key"] for o in s3.list_objects_v2(
        Bucket=bucket, Prefix=f"demo/explainability/{ENDPOINT}/")["Contents"]]
    report = json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())
    assert report["status"] == "checked" and report["model_package_arn"] == v1["ModelPackageArn"], report
    assert report["rows"] >= 100 and 0.0 < report["ndcg"] <= 1.0, report
    assert report["drifted"] == (report["ndcg"] < 0.9)
    assert alarms[f"{ENDPOINT}-warning-attribution-drift"] == ("ALARM" if report["drifted"] else "OK")

    items = server.client("dynamodb").scan(TableName=f"{ENDPOINT}-audit")["Items"]
    actions = {from_item(i)["action"] for i in items}
    assert {"gate", "deploy", "deployment", "retrain", "rollback"} <= actions, actions
