"""The commands a person runs, as a person runs them (subprocesses of the installed CLIs).

One local environment is brought up for the module (a real `terraform apply` of the platform and
the demo project against a moto server the CLI starts), used by every test here, and brought down
at the end: deploying takes minutes, so the tests share it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from local_aws.control_plane import stepping
from local_aws.lifecycle import LocalAws, ServerRecord, _is_our_moto
from tests.cli_checkout import fresh_checkout, mlops

ROOT = Path(__file__).resolve().parents[2]
# 63 + the audit bucket's Object Lock configuration + the budget + the trail's log group, role
# (+ its policy) and delivery topic (+ its policy) + the inference repository's policy (localprod
# promotes from local: its ML engineer reads the image digest, stacks/promotion_grants.py)
PLATFORM_RESOURCES = 71
METRICS = {"accuracy", "precision", "recall", "f1", "roc_auc"}

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh checkout's configuration in a folder of its own (its own .mlops and cdktf.out)."""
    root = fresh_checkout(tmp_path_factory.mktemp("checkout"))
    yield root
    # Whatever happened, the server this module's CLI started is stopped (by its recorded pid).
    LocalAws(root / ".mlops" / "local").stop()


@pytest.fixture(scope="module")
def local_env(project) -> dict:
    up = mlops(project, "local", "up", "--json")
    result = json.loads(up.stdout)  # stdout is only the JSON; progress went to stderr
    result["stderr"] = up.stderr
    return result


@pytest.fixture(scope="module")
def server(project, local_env) -> ServerRecord:
    record = LocalAws(project / ".mlops" / "local").running()
    assert record is not None
    return record


def test_local_up_creates_platform_and_project(project, local_env):
    assert local_env["endpoint_url"].startswith("https://127.0.0.1:")
    assert f"Apply complete! Resources: {PLATFORM_RESOURCES} added" in local_env["stderr"]
    # Terraform's own progress goes to a log file per stack; the screen gets its outcome line.
    assert "Creating..." not in local_env["stderr"]
    log = project / ".mlops" / "logs" / "platform-local.log"
    assert "aws_s3_bucket.datasets" in log.read_text() and str(log) in local_env["stderr"]
    # The project stack did not wait for the platform's bucket lifecycle rules to settle.
    assert "every resource the project stacks read exists" in local_env["stderr"]
    stacks = {s["name"]: s for s in local_env["stacks"]}
    assert list(stacks) == ["platform-local", "project-demo-local"]
    assert stacks["platform-local"]["resources"] == PLATFORM_RESOURCES
    assert stacks["platform-local"]["outputs"]["datasets_bucket"] == "mlops-local-datasets-123456789012"
    assert stacks["project-demo-local"]["outputs"]["pipeline_name"] == "mlops-local-demo-training"

    status = json.loads(mlops(project, "local", "status", "--json").stdout)
    assert status["endpoint_url"] == local_env["endpoint_url"]
    assert status["region"] == "us-east-1"
    assert status["stacks"] == [{"name": s["name"], "dir": s["dir"]} for s in local_env["stacks"]]
    assert _is_our_moto(status["pid"])

    # A person's own `terraform plan` in each stack folder sees no changes.
    assert_no_changes(local_env["stacks"])


def assert_no_changes(stacks: list[dict]) -> None:
    """`terraform plan -detailed-exitcode` in every stack folder at once: exit 0, nothing to do."""
    def plan(stack: dict) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["terraform", "plan", "-detailed-exitcode", "-no-color", "-input=false"],
            cwd=stack["dir"], capture_output=True, text=True, timeout=600,
        )

    with ThreadPoolExecutor(max_workers=len(stacks)) as pool:
        for stack, proc in zip(stacks, pool.map(plan, stacks), strict=True):
            assert proc.returncode == 0, stack["name"] + proc.stdout[-3000:] + proc.stderr


def test_the_platform_resources_carry_their_secure_settings(server, local_env):
    outputs = {s["name"]: s for s in local_env["stacks"]}["platform-local"]["outputs"]
    s3 = server.client("s3")
    names = {outputs[k] for k in ("datasets_bucket", "artifacts_bucket", "capture_bucket",
                                  "audit_bucket", "access_logs_bucket")}
    assert names <= {b["Name"] for b in s3.list_buckets()["Buckets"]}
    for bucket in names:
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()), bucket
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        assert any(st["Sid"] == "DenyInsecureTransport" for st in policy["Statement"])
        rule = s3.get_bucket_encryption(Bucket=bucket)[
            "ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
        expected = "AES256" if bucket == outputs["access_logs_bucket"] else "aws:kms"
        assert rule["SSEAlgorithm"] == expected, bucket
    datasets_logging = s3.get_bucket_logging(Bucket=outputs["datasets_bucket"])["LoggingEnabled"]
    assert datasets_logging["TargetBucket"] == outputs["access_logs_bucket"]

    assert server.client("kms").get_key_rotation_status(KeyId=outputs["kms_key_arn"])[
        "KeyRotationEnabled"] is True
    (trail,) = server.client("cloudtrail").describe_trails(trailNameList=["mlops-local-audit"])[
        "trailList"]
    assert trail["LogFileValidationEnabled"] is True
    assert trail["S3BucketName"] == outputs["audit_bucket"]
    assert trail["CloudWatchLogsLogGroupArn"].endswith(":log-group:/mlops-local/cloudtrail:*")
    assert trail["SnsTopicARN"].endswith(":mlops-local-audit-deliveries")
    role = server.client("iam").get_role(RoleName="mlops-local-data-scientist")["Role"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == outputs["permissions_boundary_arn"]
    (repo,) = server.client("ecr").describe_repositories(repositoryNames=["mlops-local-training"])[
        "repositories"]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    groups = server.client("sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert "mlops-local-models" in {g["ModelPackageGroupName"] for g in groups}

    # The audit bucket keeps every object version audit_days in GOVERNANCE mode locally.
    lock = s3.get_object_lock_configuration(Bucket=outputs["audit_bucket"])["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    retention = lock["Rule"]["DefaultRetention"]
    assert (retention["Mode"], retention["Days"]) == ("GOVERNANCE", 30)  # (moto adds "Years": 0)

    budgets = server.client("budgets")
    budget = budgets.describe_budget(AccountId="123456789012",
                                     BudgetName="mlops-local-monthly-cost")["Budget"]
    limit = budget["BudgetLimit"]
    assert (float(limit["Amount"]), limit["Unit"], budget["TimeUnit"]) == (100.0, "USD", "MONTHLY")
    notices = budgets.describe_notifications_for_budget(
        AccountId="123456789012", BudgetName="mlops-local-monthly-cost")["Notifications"]
    assert sorted((n["NotificationType"], n["Threshold"]) for n in notices) == [
        ("ACTUAL", 80.0), ("ACTUAL", 100.0), ("FORECASTED", 100.0)]


def run_pipeline(project: Path, *extra: str, check: bool = True) -> tuple[dict, subprocess.CompletedProcess]:
    proc = mlops(project, "pipeline", "run", "--env", "local", "--project", "demo", "--json", *extra,
                 check=check)
    return json.loads(proc.stdout), proc


def packages(server: ServerRecord) -> list[dict]:
    sagemaker = server.client("sagemaker")
    summaries = sagemaker.list_model_packages(ModelPackageGroupName="mlops-local-demo")[
        "ModelPackageSummaryList"]
    return [sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries]


def mlflow_metrics(project: Path, run_id: str) -> dict[str, float]:
    db = project / ".mlops" / "local" / "mlflow" / "mlflow.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT key, value FROM latest_metrics WHERE run_uuid = ?", (run_id,))
        return dict(rows.fetchall())


@pytest.fixture(scope="module")
def first_run(project, local_env):
    summary, proc = run_pipeline(project)
    return summary, proc


def test_pipeline_run_registers_a_model_and_tracks_it(project, server, first_run):
    summary, proc = first_run
    assert summary["status"] == "Succeeded", summary
    for step in ("ValidateData", "Preprocess", "Train", "Evaluate", "CheckGate", "RegisterModel"):
        assert f"{step} (" in proc.stderr  # progress per step
    assert set(summary["metrics"]) >= METRICS
    (package,) = packages(server)
    assert package["ModelPackageArn"] == summary["model_package_arn"]
    # Registered PendingManualApproval; the local control plane then ran the loop as AWS would:
    # the gate approved the first model (no production model yet) and the deploy handler put it
    # on the endpoint.
    assert package["ModelApprovalStatus"] == summary["approval_status"] == "Approved"
    assert "no production model (first deployment)" in summary["approval_description"]
    # (The deploy handler also takes the endpoint's state change events, the bootstrap endpoint's
    # creation among them: how many of those the run's own loop delivered, and whether one came
    # before the gate's, depends on timing. The deploy of the approved model comes after it.)
    deliveries = summary["control_loop"]["deliveries"]
    gate = "mlops-local-demo-gate: 1 processed, 0 failed"
    assert deliveries.count(gate) == 1, deliveries
    others = [d for d in deliveries if d != gate]
    assert others and all(d.startswith("mlops-local-demo-deploy: ") and d.endswith(" 0 failed")
                          for d in others)
    assert any(d.startswith("mlops-local-demo-deploy: ") for d in deliveries[deliveries.index(gate) + 1:])
    assert serving(server) == config_of(server, summary["model_package_arn"])
    meta = package["CustomerMetadataProperties"]
    assert meta["pipeline_run_id"] == summary["pipeline_execution_id"]
    assert meta["mlflow_run_id"] == summary["mlflow_run_id"]
    # The package's metrics and the MLflow run's metrics are the evaluation report's.
    tracked = mlflow_metrics(project, summary["mlflow_run_id"])
    for name, value in summary["metrics"].items():
        assert float(meta[name]) == pytest.approx(value, abs=1e-6), name
        assert tracked[name] == pytest.approx(value, abs=1e-9), name
    evaluation_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    bucket, key = evaluation_uri.removeprefix("s3://").split("/", 1)
    report = json.loads(server.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert report["metrics"] == summary["metrics"]


def test_the_deployed_model_answers_invoke_endpoint_row_for_row(project, server, first_run, tmp_path):
    """A plain boto3 sagemaker-runtime client against the local AWS gets the served model's own
    predict_proba; the endpoint's model server is listed by `local status`."""
    import io
    import tarfile

    import joblib
    import pandas as pd

    summary, _ = first_run
    status = json.loads(mlops(project, "local", "status", "--json").stdout)
    (served,) = [e for e in status["endpoints"] if e["name"] == "mlops-local-demo"]
    assert served["config"] == summary["endpoint"]["config"] == serving(server)
    assert served["variant"] == "primary" and served["port"] > 0 and served["pid"] > 0

    package = server.client("sagemaker").describe_model_package(ModelPackageName=summary["model_package_arn"])
    bucket, key = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"][5:].split("/", 1)
    archive = server.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp_path, filter="data")
    meta = json.loads((tmp_path / "model_meta.json").read_text())
    from pipelines.dataset import breast_cancer_frame

    rows = breast_cancer_frame()[meta["features"]].sample(10, random_state=7)
    expected = joblib.load(tmp_path / "model.joblib").predict_proba(rows)[:, 1].tolist()
    runtime = server.client("sagemaker-runtime")
    got = [float(runtime.invoke_endpoint(EndpointName="mlops-local-demo", ContentType="text/csv",
                                         Body=pd.DataFrame([row]).to_csv(header=False, index=False))
                 ["Body"].read())
           for row in rows.to_numpy().tolist()]
    assert got == expected

    # The same through the CLI, as a person checks an endpoint, then sends traffic.
    two = rows.head(2).to_csv(header=False, index=False).strip().replace("\n", ";")
    invoked = json.loads(mlops(project, "endpoint", "invoke", "--env", "local", "--project", "demo",
                               "--rows", two, "--json").stdout)
    assert invoked["predictions"] == expected[:2] and invoked["variant"] == "primary"
    proc = mlops(project, "traffic", "--env", "local", "--project", "demo", "--requests", "30",
                 "--malformed", "10", "--json")
    traffic = json.loads(proc.stdout)
    assert (traffic["requests"], traffic["ok"], traffic["errors"]) == (30, 27, {"400": 3})
    assert "30/30" in proc.stderr  # the progress bar
    refused = mlops(project, "traffic", "--env", "local", "--project", "demo", "--requests", "1",
                    "--drift", "radius=1", check=False)
    assert refused.returncode == 2 and "--drift: no feature radius" in refused.stderr

    # Labels for the traffic, as Model Monitor takes ground truth, then the model-quality check
    # joins them with the captured predictions by inference id.
    labelled = json.loads(mlops(project, "traffic", "--env", "local", "--project", "demo", "--requests", "60",
                                "--labels", "--json").stdout)
    assert labelled["labels"]["written"] == 60 and labelled["labels"]["flipped"] == 0
    assert "/demo/ground-truth/" in labelled["labels"]["uri"]
    for _ in range(40):  # until the capture writer's buffer has reached S3
        quality = json.loads(mlops(project, "quality", "check", "--env", "local", "--project", "demo",
                                   "--json").stdout)
        if quality["counts"]["LabelledRecords"] == 60:
            break
        time.sleep(0.5)
    assert quality["counts"]["LabelledRecords"] == 60 and quality["status"] == "ok", quality
    assert quality["model_package_arn"] == summary["model_package_arn"]
    assert quality["metrics"]["accuracy"] > 0.9 and quality["drop_percent"] < 10


def test_same_seed_and_data_give_the_same_metrics(project, server, first_run):
    first, _ = first_run
    second, _ = run_pipeline(project)
    assert second["status"] == "Succeeded"
    assert second["pipeline_execution_id"] != first["pipeline_execution_id"]
    assert second["metrics"] == first["metrics"]
    assert len(packages(server)) == 2
    # Same metrics: no regression against production, so the second model is approved and served.
    assert second["approval_status"] == "Approved"
    assert serving(server) == config_of(server, second["model_package_arn"])


def serving(server: ServerRecord) -> str:
    return server.client("sagemaker").describe_endpoint(EndpointName="mlops-local-demo")["EndpointConfigName"]


def config_of(server: ServerRecord, arn: str) -> str:
    from lambdas.shared.control.history import resource_name

    version = server.client("sagemaker").describe_model_package(ModelPackageName=arn)["ModelPackageVersion"]
    return resource_name("mlops-local-demo", arn, version)


def test_worse_model_is_rejected_with_reasons_and_a_drill_rolls_back(project, server, first_run):
    """Issue 6 on the local AWS, driven by the CLI: a worse model is rejected by the gate, then
    the rollback drill's faulty copy trips the error-rate alarm while its canary bakes and the
    endpoint goes back to the model it served."""
    sagemaker, s3 = server.client("sagemaker"), server.client("s3")
    served = serving(server)
    newest = max(packages(server), key=lambda p: p["ModelPackageVersion"])
    # A pipeline execution that evaluated a worse model: its report where its Evaluate step
    # writes it, its package registered as the register step does, by a session of the pipeline's
    # role (the gate trusts nothing else: lambdas/shared/control/provenance.py).
    run = newest["CustomerMetadataProperties"]["pipeline_run_id"]
    bucket, key = newest["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].removeprefix(
        "s3://").split("/", 1)
    assert key == f"demo/runs/{run}/evaluation/evaluation.json"
    report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    report["metrics"] = {name: value - 0.2 for name, value in report["metrics"].items()}
    worse_key = key.replace(run, "worse0run")
    s3.put_object(Bucket=bucket, Key=worse_key, Body=json.dumps(report).encode())
    pipeline_role = newest["CreatedBy"]["IamIdentity"]["Arn"]
    assert pipeline_role.endswith(":assumed-role/mlops-local-demo-execution/SageMaker")
    pipeline = server.session_client_factory(
        f"arn:aws:iam::{server.client('sts').get_caller_identity()['Account']}:role/mlops-local/"
        "mlops-local-demo-execution", "SageMaker")("sagemaker")
    # The local AWS's background control plane is paused so that `local loop` is the one that
    # delivers (and counts) it.
    # Its model among its own outputs, as the Train step of that execution would have put it.
    spec = json.loads(json.dumps(newest["InferenceSpecification"], default=str))
    for container in spec["Containers"]:
        source = container["ModelDataUrl"].removeprefix("s3://").split("/", 1)
        copied = source[1].replace(f"/runs/{run}/", "/runs/worse0run/")
        s3.copy_object(Bucket=source[0], Key=copied, CopySource={"Bucket": source[0], "Key": source[1]})
        container["ModelDataUrl"] = f"s3://{source[0]}/{copied}"
        for field in ("ImageDigest", "ModelDataETag"):  # set by SageMaker, not by a create
            container.pop(field, None)
    with stepping(project / ".mlops" / "local"):
        worse = pipeline.create_model_package(
            ModelPackageGroupName="mlops-local-demo",
            InferenceSpecification=spec,
            ModelApprovalStatus="PendingManualApproval",
            ModelMetrics={"ModelQuality": {"Statistics": {
                "ContentType": "application/json", "S3Uri": f"s3://{bucket}/{worse_key}"}}},
            CustomerMetadataProperties={**newest["CustomerMetadataProperties"],
                                        "pipeline_run_id": "worse0run"},
        )["ModelPackageArn"]
        loop = json.loads(mlops(project, "local", "loop", "--json").stdout)
    assert "mlops-local-demo-gate: 1 processed, 0 failed" in loop["deliveries"] and not loop["failures"]
    rejected = sagemaker.describe_model_package(ModelPackageName=worse)
    assert rejected["ModelApprovalStatus"] == "Rejected"
    why = rejected["ApprovalDescription"]
    assert "accuracy" in why and "below the minimum" in why
    assert serving(server) == served  # nothing deployed

    # The drill deploys a copy of the served model whose server fails requests, through the gate
    # and the deploy handler; its own traffic trips the error-rate alarm (10 s periods locally)
    # on the AWS/SageMaker metrics while the 16 s canary bakes; SageMaker's guardrails put the
    # served model back.
    proc = mlops(project, "drill", "rollback", "--env", "local", "--project", "demo", "--json")
    drill = json.loads(proc.stdout)
    assert drill["restored"] is True and drill["decision"] == "guardrails-rolled-back", drill
    assert drill["seconds"] is not None and 0 <= drill["seconds"] < 30, drill
    assert drill["known_good_config"] == served == drill["to_config"] == serving(server)
    assert drill["from_config"] == config_of(server, drill["drill_model_package_arn"])
    assert drill["fault"]["setting"] == "MLOPS_FAULT_ERROR_PERCENT=100"
    assert drill["fault"]["bake_seconds"] == 16
    assert "canary 10% of traffic x 100% failing" in proc.stderr
    assert "trips the alarm during the 16 s bake: the guardrails roll it back" in proc.stderr
    assert drill["traffic"]["by_status"].get("500", 0) > 0
    assert sagemaker.describe_model_package(ModelPackageName=drill["drill_model_package_arn"])[
        "ModelApprovalStatus"] == "Rejected"
    assert sagemaker.describe_model_package(ModelPackageName=newest["ModelPackageArn"])[
        "ModelApprovalStatus"] == "Approved"
    assert drill["alarm_restored"] is True
    alarm = server.client("cloudwatch").describe_alarms(AlarmNames=[drill["alarm"]])["MetricAlarms"][0]
    assert alarm["StateValue"] == "OK"
    assert "OK -> ALARM" in proc.stderr
    # Only the services write AWS/ metrics, as in AWS.
    with pytest.raises(ClientError, match="The value AWS/SageMaker for parameter Namespace is invalid"):
        server.client("cloudwatch").put_metric_data(Namespace="AWS/SageMaker", MetricData=[
            {"MetricName": "Invocations", "Value": 1.0}])


def test_corrupt_data_fails_validation_and_registers_nothing(project, server, first_run):
    import pandas as pd

    from pipelines.dataset import breast_cancer_frame

    frame = breast_cancer_frame().drop(columns=["mean_area"])
    frame["mean_radius"] = frame["mean_radius"].astype(object)
    frame.loc[3, "mean_radius"] = "abc"
    frame.loc[frame.index[::2], "mean_texture"] = pd.NA
    s3 = server.client("s3")
    s3.put_object(Bucket="mlops-local-datasets-123456789012", Key="demo/corrupt.csv",
                  Body=frame.to_csv(index=False).encode())
    before = len(packages(server))
    summary, proc = run_pipeline(
        project, "--parameter", "InputDataUri=s3://mlops-local-datasets-123456789012/demo/corrupt.csv",
        check=False)
    assert proc.returncode == 1
    assert summary["status"] == "Failed" and summary["failed_step"] == "ValidateData"
    for check in ("mean_area", "mean_radius", "mean_texture"):
        assert check in summary["reason"], summary["reason"]
    assert "ValidateData failed" in proc.stderr
    assert summary["model_package_arn"] is None
    assert len(packages(server)) == before


def test_new_project_is_provisioned_and_everything_converges(project, server, local_env, first_run):
    new = json.loads(
        mlops(project, "project", "new", "fraud", "--team", "risk-ml", "--env", "local", "--json").stdout
    )
    assert new["stacks"] == ["project-fraud-local"]
    # From here on every call is checked against IAM (the next test proves the RBAC by calls):
    # the deployer's plan and apply, the loop and `local down` must work under it too.
    again = mlops(project, "local", "up", "--enforce-iam", "--json")
    assert json.loads(again.stdout)["iam_enforced"] is True
    assert "using the local AWS" in again.stderr
    # The existing stacks are unchanged; only the new project's stack is created.
    assert again.stderr.count("Apply complete! Resources: 0 added, 0 changed, 0 destroyed.") == 2
    stacks = {s["name"]: s for s in json.loads(again.stdout)["stacks"]}
    assert list(stacks) == ["platform-local", "project-demo-local", "project-fraud-local"]
    assert stacks["project-fraud-local"]["outputs"]["endpoint_name"] == "mlops-local-fraud"
    sagemaker = server.client("sagemaker")
    assert sagemaker.describe_pipeline(PipelineName="mlops-local-fraud-training")["PipelineStatus"]
    assert sagemaker.describe_endpoint(EndpointName="mlops-local-fraud")["EndpointStatus"]
    # A second plan shows no changes anywhere: `mlops plan` plans every stack of the environment.
    plan = mlops(project, "plan", "local", "--detailed-exitcode", "--json")
    assert "are up to date (no input changed" in plan.stderr  # the up's synth, not a second one
    planned = json.loads(plan.stdout)
    assert planned["changes"] is False, plan.stderr
    assert [(s["name"], s["changes"]) for s in planned["stacks"]] == [
        (name, False) for name in stacks]
    assert all(s["summary"].startswith("No changes.") for s in planned["stacks"]), planned


def test_rbac_is_proven_by_real_calls_under_iam_enforcement(project, server, first_run):
    """With every call checked: each persona's key assumes its role and nothing else, and the
    matrix of real calls gives each persona what the README's RBAC table says."""
    assert json.loads(mlops(project, "local", "status", "--json").stdout)["iam_enforced"] is True
    credentials = json.loads(mlops(project, "local", "credentials", "data_scientist", "--json").stdout)
    assert set(credentials) == {"AccessKeyId", "SecretAccessKey", "RoleArn"}
    assert credentials["RoleArn"] == "arn:aws:iam::123456789012:role/mlops-local/mlops-local-data-scientist"
    key = {"AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
           "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"]}
    with pytest.raises(ClientError, match="AccessDenied"):  # the user's key alone reads nothing
        server.client("s3", credentials=key).get_object(Bucket="mlops-local-datasets-123456789012",
                                                        Key="demo/corrupt.csv")
    served = serving(server)

    proc = mlops(project, "rbac", "check", "--env", "local", "--project", "demo", "--json", check=False)
    result = json.loads(proc.stdout)
    got = {(r["persona"], r["check"]): r["got"] for r in result["rows"]}
    assert got[("data_scientist", "update the endpoint")] == "denied"
    assert got[("ml_engineer", "approve a package")] == "allowed"
    assert got[("platform_admin", "put a policy on a persona role")] == "denied"
    assert {got[(p, "delete an audit object")] for p in
            ("data_scientist", "ml_engineer", "platform_admin", "auditor")} == {"denied"}
    assert {got[(p, "read datasets")] for p in ("data_scientist", "ml_engineer", "platform_admin")} == {
        "allowed"} and got[("auditor", "read datasets")] == "denied"
    assert len(result["rows"]) == 4 * 12 and result["failed"] == 0 and proc.returncode == 0, proc.stderr
    # Probes leave nothing behind: the endpoint serves what it served.
    assert serving(server) == served


def test_down_cleans_up(project, server, local_env, first_run):
    pid = json.loads(mlops(project, "local", "status", "--json").stdout)["pid"]
    down = mlops(project, "local", "down", "--json")
    destroyed = json.loads(down.stdout)
    assert destroyed["server_stopped"] is True
    assert destroyed["destroyed"][-1] == "platform-local"
    assert {"project-demo-local", "project-fraud-local", "platform-local"} == set(destroyed["destroyed"])
    # Every stack was destroyed before the server stopped: nothing was left in any state.
    for name in destroyed["destroyed"]:
        assert f"[{name}] Destroy complete!" in down.stderr
    assert not _is_our_moto(pid)
    after = json.loads(mlops(project, "local", "status", "--json").stdout)
    assert after["running"] is False and after["stacks"] == []
    assert not (project / ".mlops" / "local" / "mlflow").exists()


def test_npm_cdktf_synth_matches_mlops_synth(synth_all, tmp_path):
    """`npx cdktf synth` (the npm CLI reading cdktf.json) writes the same stacks."""
    npx = shutil.which("npx")
    assert npx, "npx (Node.js) is needed for the cdktf CLI"
    out = tmp_path / "npm-out"
    proc = subprocess.run(
        [npx, "--no-install", "cdktf", "synth", "--output", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "CHECKPOINT_DISABLE": "1", "CI": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in (out / "stacks").iterdir()) == sorted(synth_all.stacks)
    for name in ("platform-prod", "platform-local", "project-demo-prod"):
        ours = synth_all.json(name)
        theirs = json.loads((out / "stacks" / name / "cdk.tf.json").read_text())
        assert theirs["resource"] == ours["resource"], name
        assert theirs["provider"] == ours["provider"], name
