"""`mlops drill rollback`: the fault it deploys (share, package request), and what it refuses
before touching anything. The drill itself runs end to end in tests/e2e/test_cli.py."""

from __future__ import annotations

from pathlib import Path

import botocore.session
import pytest
from botocore.validate import validate_parameters

from mlops.cli import main
from mlops.drill_fault import FAULT_SETTING, FaultPlan, fault_plan, faulty_copy_request
from stacks.project_config import load_project

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = {
    "ModelPackageGroupName": "mlops-dev-demo",
    "ModelPackageArn": "arn:aws:sagemaker:eu-west-1:111111111111:model-package/mlops-dev-demo/3",
    "ModelPackageVersion": 3,
    "ModelApprovalStatus": "Approved",
    "InferenceSpecification": {
        "Containers": [{
            "Image": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/mlops-dev-inference:abc",
            "ImageDigest": "sha256:0123", "ModelDataETag": "etag",
            "ModelDataUrl": "s3://mlops-dev-artifacts/demo/training/run/model.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py",
                            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"},
        }],
        "SupportedContentTypes": ["text/csv", "application/json"],
        "SupportedResponseMIMETypes": ["text/csv"],
    },
    "ModelMetrics": {"ModelQuality": {"Statistics": {
        "ContentType": "application/json", "S3Uri": "s3://mlops-dev-artifacts/demo/eval/evaluation.json"}}},
    "CustomerMetadataProperties": {"accuracy": "0.98", "pipeline_run_id": "run-1"},
}


@pytest.fixture(scope="module")
def demo():
    return load_project(ROOT / "environments" / "projects" / "demo.yaml", "dev", ROOT)


def test_the_fault_share_makes_the_diluted_canary_twice_the_threshold(demo):
    plan = fault_plan(demo, threshold_percent=5.0)  # canary 10%
    assert (plan.fault_percent, plan.canary_percent) == (100, 10.0)
    assert plan.failing_percent == 10.0 and plan.trips_during_bake
    assert "canary 10% of traffic x 100% failing = 10% of all requests vs the 5% threshold" in plan.explain()
    assert plan.bake_s == 300 and "during the 300 s bake: the guardrails roll it back" in plan.explain()
    unbaked = FaultPlan(100, 10.0, 5.0, bake_s=0)  # the local demo: no bake, the handler acts
    assert not unbaked.trips_during_bake and "the bake is 0 s" in unbaked.explain()
    deployment = demo.serving.deployment.model_copy(update={"strategy": "linear", "step_percent": 40})
    linear = demo.model_copy(update={"serving": demo.serving.model_copy(update={"deployment": deployment})})
    assert fault_plan(linear, 5.0).fault_percent == 25  # 40% x 25% = 10% = 2 x 5%
    weak = FaultPlan(100, 5.0, 5.0)  # a 5% canary cannot exceed a 5% threshold
    assert not weak.trips_during_bake and "the rollback handler acts" in weak.explain()


def test_the_faulty_copy_is_a_valid_create_model_package_request():
    request = faulty_copy_request(PACKAGE, FaultPlan(100, 10.0, 5.0))
    model = botocore.session.get_session().get_service_model("sagemaker")
    validate_parameters(request, model.operation_model("CreateModelPackage").input_shape)
    (container,) = request["InferenceSpecification"]["Containers"]
    assert container["Environment"][FAULT_SETTING] == "100"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert "ImageDigest" not in container and "ModelDataETag" not in container  # set by SageMaker only
    assert request["ModelApprovalStatus"] == "PendingManualApproval"  # the gate decides
    assert request["ModelMetrics"] == PACKAGE["ModelMetrics"]
    meta = request["CustomerMetadataProperties"]
    assert meta["accuracy"] == "0.98" and meta["mlops_drill"] == "rollback"  # the gate reads the metrics
    # ... but the copy does not pass for the pipeline run's package (nor for a promoted one).
    assert "pipeline_run_id" not in meta and meta["mlops_drill_source_pipeline_run_id"] == "run-1"
    assert meta["mlops_drill_copy_of"] == PACKAGE["ModelPackageArn"]
    assert PACKAGE["InferenceSpecification"]["Containers"][0]["Environment"].get(FAULT_SETTING) is None


def test_refusals_before_anything_is_touched(capsys):
    assert main(["drill", "rollback", "--env", "prod", "--project", "demo", "--json"]) == 2
    assert "--yes-prod" in capsys.readouterr().err
    assert main(["drill", "rollback", "--env", "dev", "--project", "nope"]) == 2
    assert "no such project" in capsys.readouterr().err
    assert main(["drill", "rollback", "--env", "local", "--project", "demo", "--timeout", "0"]) == 2
    assert main(["drill", "rollback", "--env", "local", "--project", "demo", "--rate", "-1"]) == 2
    assert "--rate must be > 0" in capsys.readouterr().err
    # Only the local AWS can break a serving instance: AWS has no such switch for endpoints.
    assert main(["drill", "rollback", "--env", "dev", "--project", "demo", "--via", "outage"]) == 2
    assert "only the local AWS can do" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:  # writing AWS/ metrics is no longer a way
        main(["drill", "rollback", "--env", "local", "--project", "demo", "--via", "metric"])
    assert refused.value.code == 2
