"""The explainability step against the local AWS: the served package's model (trained by the real
train step, whose archive carries the attribution reference) explained on captured traffic, the
nDCG published in MLOps/Explainability and the report written; a window where the model's most
important feature stops varying (a stuck upstream sensor) ranks the features otherwise and falls
below Clarify's 0.9."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from local_aws.data_capture import CaptureConfig, capture_record
from tests.step_runner import ROOT, ok, run_step, step_env

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
CAPTURE, ARTIFACTS = "mlops-local-capture-ex", "mlops-local-artifacts-ex"
ENDPOINT = "mlops-local-demo"
CAPTURE_CONFIG = CaptureConfig.from_api({
    "EnableCapture": True, "InitialSamplingPercentage": 100, "DestinationS3Uri": f"s3://{CAPTURE}/demo",
    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]}})


def _serve(server, archive: bytes) -> None:
    s3, sm = server.client("s3"), server.client("sagemaker")
    s3.put_object(Bucket=ARTIFACTS, Key="demo/runs/r1/model/model.tar.gz", Body=archive)
    sm.create_model_package_group(ModelPackageGroupName=ENDPOINT)
    package = sm.create_model_package(
        ModelPackageGroupName=ENDPOINT, ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{
            "Image": f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/mlops-local-inference:1",
            "ModelDataUrl": f"s3://{ARTIFACTS}/demo/runs/r1/model/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
    )["ModelPackageArn"]
    name = f"{ENDPOINT}-v1"
    sm.create_model(ModelName=name, PrimaryContainer={"ModelPackageName": package},
                    ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/mlops-local-demo-execution")
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "primary", "ModelName": name, "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=name)


def _capture(server, rows: pd.DataFrame, at: datetime, name: str) -> None:
    lines = []
    for n, (_, row) in enumerate(rows.iterrows()):
        body = (",".join(repr(float(v)) for v in row) + "\n").encode()
        # Half the callers pass no inference id: their traffic is explained all the same.
        lines.append(json.dumps(capture_record(
            CAPTURE_CONFIG, request_type="text/csv", request=body, response_type="text/csv",
            response=b"0.5\n", inference_id=f"{name}-{n}" if n % 2 else None, at=at)))
    lines.append('{"captureData": {"endpointInput": ')  # a line cut short by a crash: counted
    key = f"demo/{ENDPOINT}/primary/{at:%Y/%m/%d/%H}/{name}.jsonl"
    server.client("s3").put_object(Bucket=CAPTURE, Key=key, Body="\n".join(lines).encode())


def _check(server, tmp_path, end: datetime, *extra: str) -> dict:
    env = step_env(tmp_path, **server.client_env(), PYTHONPATH=str(ROOT))
    out = tmp_path / f"out-{end:%H%M}"
    result = ok(run_step("explainability", *extra, env=env, endpoint=ENDPOINT,
                         capture_uri=f"s3://{CAPTURE}/demo/{ENDPOINT}/",
                         reports_uri=f"s3://{ARTIFACTS}/demo/explainability",
                         window_end=end.isoformat(), window_minutes=60, lag_minutes=0, output=out))
    report = json.loads((out / "analysis.json").read_text())
    assert report["report_uri"] in result.stderr + result.stdout, result.stderr
    return report


def _ndcg_metric(server, at: datetime) -> float | None:
    points = server.client("cloudwatch").get_metric_statistics(
        Namespace="MLOps/Explainability", MetricName="FeatureAttributionNDCG",
        Dimensions=[{"Name": "EndpointName", "Value": ENDPOINT}], StartTime=at - timedelta(minutes=1),
        EndTime=at + timedelta(minutes=1), Period=60, Statistics=["Minimum", "SampleCount"])["Datapoints"]
    assert len(points) <= 1 and all(p["SampleCount"] == 1 for p in points), points
    return points[0]["Minimum"] if points else None


def test_served_traffic_is_explained_and_a_stuck_top_feature_shifts_the_ranking(moto_server, demo_model,
                                                                                 tmp_path):
    for bucket in (CAPTURE, ARTIFACTS):
        moto_server.client("s3").create_bucket(Bucket=bucket)
    # Nothing served yet: a report saying so, no metric, no failure (a retry could not help).
    quiet_end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    assert _check(moto_server, tmp_path, quiet_end)["status"] == "nothing_served"

    _serve(moto_server, demo_model.archive.read_bytes())
    test = pd.read_csv(demo_model.test_csv)[demo_model.features]
    healthy_end = quiet_end + timedelta(hours=1)
    twice = pd.concat([test, test], ignore_index=True)
    _capture(moto_server, twice, healthy_end - timedelta(minutes=20), "a")
    healthy = _check(moto_server, tmp_path, healthy_end)
    assert healthy["status"] == "checked", healthy
    assert healthy["rows"] == 2 * len(test) and healthy["skipped"] == {"unreadable_capture": 1}
    assert healthy["ndcg"] > 0.95 and not healthy["drifted"], healthy
    assert _ndcg_metric(moto_server, healthy_end) == pytest.approx(healthy["ndcg"])
    key = f"demo/explainability/{ENDPOINT}/{healthy_end:%Y-%m-%dT%H-%M-%SZ}/analysis.json"
    stored = json.loads(moto_server.client("s3").get_object(Bucket=ARTIFACTS, Key=key)["Body"].read())
    shap = stored["analysis"]["explanations"]["kernel_shap"]["label0"]["global_shap_values"]
    assert set(shap) == set(demo_model.features)

    # The model's most important feature stuck at its reference median: it explains nothing now.
    top = healthy["reference_top"][0]
    stuck = twice.copy()
    stuck[top] = stored["analysis"]["baseline"][top]
    shifted_end = healthy_end + timedelta(hours=1)
    _capture(moto_server, stuck, shifted_end - timedelta(minutes=20), "b")
    shifted = _check(moto_server, tmp_path, shifted_end)
    assert shifted["drifted"] and shifted["ndcg"] < 0.9, shifted
    assert top not in shifted["current_top"]
    assert _ndcg_metric(moto_server, shifted_end) == pytest.approx(shifted["ndcg"])

    # Too few rows for a verdict: counted, no nDCG (the alarm sees missing data, not a breach).
    few = _check(moto_server, tmp_path, shifted_end, "--min-rows", str(10 * len(test)))
    assert few["status"] == "too_few_rows" and "ndcg" not in few
    assert few["metrics"] == ["AttributionRows"]

    # A re-check of a window older than CloudWatch takes datapoints for: the report, no metric.
    old = _check(moto_server, tmp_path, quiet_end - timedelta(days=20))
    assert old["status"] == "too_few_rows" and old["metrics"].startswith("not published"), old
