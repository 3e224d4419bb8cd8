"""The training pipeline's SageMaker definition (built by the sagemaker SDK) and the project stack
that carries it."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from pipelines.bundle import build_bundle, reproducible_tarball
from stacks.project_config import load_projects

ROOT = Path(__file__).resolve().parents[2]
ENVS = ("local", "dev", "staging", "prod")
KEY_ARN = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def target(**overrides):
    from pipelines.definition import PipelineTarget

    values = dict(
        pipeline_name="mlops-dev-demo-training", region="eu-west-1",
        role_arn="arn:aws:iam::111111111111:role/mlops-dev/mlops-dev-demo-execution",
        artifacts_bucket="mlops-dev-artifacts-111111111111", bundle_prefix="demo/pipeline/0123",
        default_data_uri="s3://mlops-dev-datasets-111111111111/demo/breast_cancer.csv",
        model_package_group="mlops-dev-demo", image_uri="img:1", inference_image_uri="img:2",
        kms_key_arn=KEY_ARN,
        processing_instance_type="ml.m5.large", training_instance_type="ml.m5.xlarge",
        git_commit="abc", mlflow_tracking_uri="arn:aws:sagemaker:eu-west-1:111111111111:"
        "mlflow-tracking-server/mlops-dev-mlflow",
    )
    return PipelineTarget(**{**values, **overrides})


@pytest.fixture(scope="module")
def demo():
    return load_projects(ROOT)["demo"]["dev"]


@pytest.fixture(scope="module")
def definition(demo) -> dict:
    from pipelines.definition import definition as build

    return json.loads(build(demo, target()))


def steps_by_name(definition: dict) -> dict[str, dict]:
    out = {}
    for step in definition["Steps"]:
        out[step["Name"]] = step
        for branch in ("IfSteps", "ElseSteps"):
            for sub in step.get("Arguments", {}).get(branch, []):
                out[sub["Name"]] = sub
    return out


def test_steps_in_dependency_order(definition):
    from local_aws.pipeline_expressions import references

    top = [(s["Name"], s["Type"]) for s in definition["Steps"]]
    assert top == [("DatasetVersion", "Processing"), ("ValidateData", "Processing"),
                   ("Preprocess", "Processing"), ("Train", "Training"), ("Evaluate", "Processing"),
                   ("CheckGate", "Condition")]
    steps = steps_by_name(definition)
    gate = steps["CheckGate"]["Arguments"]
    assert [s["Name"] for s in gate["IfSteps"]] == ["RegisterModel"]
    assert [(s["Name"], s["Type"]) for s in gate["ElseSteps"]] == [("GateFailed", "Fail")]

    def needs(name):
        step = steps[name]
        return set(step.get("DependsOn", [])) | references(step.get("Arguments"))

    assert needs("ValidateData") == {"DatasetVersion"}
    assert needs("Preprocess") == {"ValidateData", "DatasetVersion"}
    assert needs("Train") == {"Preprocess"}
    assert needs("Evaluate") == {"Train", "Preprocess", "ValidateData"}
    assert needs("RegisterModel") == {"Train", "Evaluate", "Preprocess", "DatasetVersion"}


def test_parameters_default_to_the_project_config(definition, demo):
    params = {p["Name"]: p for p in definition["Parameters"]}
    assert params["InputDataUri"]["DefaultValue"].endswith("/demo/breast_cancer.csv")
    assert params["ProcessingInstanceType"]["DefaultValue"] == "ml.m5.large"
    assert params["TrainingInstanceType"]["DefaultValue"] == "ml.m5.xlarge"
    assert params["MinAccuracy"] == {"Name": "MinAccuracy", "Type": "Float",
                                     "DefaultValue": demo.gate.thresholds["accuracy"]}
    assert params["MinRocAuc"]["DefaultValue"] == demo.gate.thresholds["roc_auc"]
    assert params["MaxFairnessGap"]["DefaultValue"] == demo.fairness.max_gap
    # Every threshold in the gate is compared against the evaluation report.
    conditions = steps_by_name(definition)["CheckGate"]["Arguments"]["Conditions"]
    paths = {c["LeftValue"]["Std:JsonGet"]["Path"]: c["RightValue"]["Get"] for c in conditions}
    assert paths == {"metrics.accuracy": "Parameters.MinAccuracy", "metrics.recall": "Parameters.MinRecall",
                     "metrics.f1": "Parameters.MinF1", "metrics.roc_auc": "Parameters.MinRocAuc",
                     "latency_ms.p95": "Parameters.MaxLatencyP95Ms",
                     "fairness.gap": "Parameters.MaxFairnessGap"}


def test_retries_and_caching(definition):
    steps = steps_by_name(definition)
    for name in ("ValidateData", "Preprocess", "Train", "Evaluate", "RegisterModel"):
        kinds = {e for policy in steps[name]["RetryPolicies"] for e in policy["ExceptionType"]}
        assert {"Step.THROTTLING", "SageMaker.CAPACITY_ERROR"} <= kinds, name
    cached = {n for n, s in steps.items() if s.get("CacheConfig", {}).get("Enabled")}
    assert cached == {"ValidateData", "Preprocess"}
    # What the cache keys on: the dataset version's URI (content-addressed) is in the cached steps'
    # arguments and its hash in their output locations, so a new dataset never gets an old split.
    version = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.DatasetVersion.PropertyFiles.DatasetVersion"},
                               "Path": "uri"}}
    for name in ("ValidateData", "Preprocess"):
        args = steps[name]["Arguments"]
        data = next(i for i in args["ProcessingInputs"] if i["InputName"] == "data")
        assert data["S3Input"]["S3Uri"] == version, name
        for output in args["ProcessingOutputConfig"]["Outputs"]:
            joined = output["S3Output"]["S3Uri"]["Std:Join"]["Values"]
            assert {"Std:JsonGet": {**version["Std:JsonGet"], "Path": "sha256"}} in joined, name
    assert steps["DatasetVersion"].get("CacheConfig") is None  # it reads production data: never cached


def test_a_run_trains_only_on_the_projects_data(demo):
    """DatasetVersion gets the data InputDataUri may name: the project's datasets prefix, its
    dataset versions (a retrain's) and the default; the step refuses anything else."""
    from pipelines.definition import definition as build

    built = json.loads(build(demo, target(datasets_uri="s3://mlops-dev-datasets-111111111111/demo/")))
    args = steps_by_name(built)["DatasetVersion"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    allowed = [args[i + 1] for i, a in enumerate(args) if a == "--allowed-data"]
    assert allowed == ["s3://mlops-dev-datasets-111111111111/demo/",
                       "s3://mlops-dev-artifacts-111111111111/demo/datasets/",
                       "s3://mlops-dev-datasets-111111111111/demo/breast_cancer.csv"]


def test_jobs_run_the_bundled_scripts_encrypted_with_the_platform_key(definition):
    steps = steps_by_name(definition)
    for name, script in (("DatasetVersion", "dataset_version.py"), ("ValidateData", "validate.py"),
                         ("Preprocess", "preprocess.py"),
                         ("Evaluate", "evaluate.py"), ("RegisterModel", "register.py")):
        args = steps[name]["Arguments"]
        assert args["AppSpecification"]["ContainerEntrypoint"] == [
            "python3", f"/opt/ml/processing/input/code/{script}"]
        code = next(i for i in args["ProcessingInputs"] if i["InputName"] == "code")
        assert code["S3Input"]["S3Uri"] == "s3://mlops-dev-artifacts-111111111111/demo/pipeline/0123/code/"
        assert args["ProcessingOutputConfig"]["KmsKeyId"] == KEY_ARN
        assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KEY_ARN
    train = steps["Train"]["Arguments"]
    assert train["HyperParameters"]["sagemaker_program"] == "train.py"
    submit = train["HyperParameters"]["sagemaker_submit_directory"]
    assert submit.endswith("/demo/pipeline/0123/sourcedir.tar.gz")
    assert train["HyperParameters"]["n_estimators"] == "150"  # from the project file, as SageMaker strings
    assert train["OutputDataConfig"]["KmsKeyId"] == train["ResourceConfig"]["VolumeKmsKeyId"] == KEY_ARN
    register = steps["RegisterModel"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert register[register.index("--model-package-group") + 1] == "mlops-dev-demo"
    evaluate_env = steps["Evaluate"]["Arguments"]["Environment"]
    assert evaluate_env["MLFLOW_TRACKING_URI"].endswith("mlflow-tracking-server/mlops-dev-mlflow")
    # The experiment's artifacts under the project's prefix, which its role may write (not the
    # tracking server's root, s3://<artifacts>/mlflow).
    assert evaluate_env["MLFLOW_ARTIFACT_LOCATION"] == "s3://mlops-dev-artifacts-111111111111/demo/mlflow"


def test_definition_is_deterministic_and_built_offline(demo, monkeypatch):
    from pipelines.definition import definition as build

    def refuse(self, address):
        raise AssertionError(f"building the definition tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert build(demo, target()) == build(demo, target())


def test_bundle_is_content_addressed(demo):
    schema = ROOT / demo.dataset.schema_file
    a = build_bundle(demo.model_dump(mode="json"), schema)
    b = build_bundle(demo.model_dump(mode="json"), schema)
    assert a.digest == b.digest and a.files == b.files
    assert {"code/validate.py", "code/train.py", "code/dataset_version.py", "sourcedir.tar.gz",
            "config/project.json", "schema/schema.json",
            "code/lambdas/shared/quality/labels.py", "code/lambdas/shared/capture_files.py"} <= set(a.files)
    changed = demo.model_copy(update={"training": demo.training.model_copy(update={"seed": 7})})
    assert build_bundle(changed.model_dump(mode="json"), schema).digest != a.digest
    assert reproducible_tarball({"a.py": b"x"}) == reproducible_tarball({"a.py": b"x"})


@pytest.fixture(scope="module", params=ENVS)
def project_stack(request, synth_all):
    return request.param, synth_all.json(f"project-demo-{request.param}")


def test_project_stack_carries_the_pipeline(project_stack, synth_all):
    env, doc = project_stack
    pipeline = doc["resource"]["aws_sagemaker_pipeline"]["training_pipeline"]
    assert pipeline["pipeline_name"] == f"mlops-{env}-demo-training"
    definition = json.loads(pipeline["pipeline_definition"])
    assert [s["Name"] for s in definition["Steps"]][:5] == ["DatasetVersion", "ValidateData", "Preprocess",
                                                           "Train", "Evaluate"]
    assert pipeline["role_arn"].startswith("${aws_iam_role.execution_role")
    # Every script the definition points at is uploaded by the same stack, with the KMS key.
    objects = doc["resource"]["aws_s3_object"]
    keys = {o["key"] for o in objects.values()}
    code_uri = next(i["S3Input"]["S3Uri"] for i in definition["Steps"][0]["Arguments"]["ProcessingInputs"]
                    if i["InputName"] == "code")
    prefix = code_uri.split("/", 3)[3]
    assert {f"{prefix}validate.py", f"{prefix}train.py", f"{prefix}register.py"} <= keys
    assert all(o["server_side_encryption"] == "aws:kms" for o in objects.values())
    (group,) = doc["resource"]["aws_sagemaker_model_package_group"].values()
    assert group["model_package_group_name"] == f"mlops-{env}-demo"
    # The jobs' keys are the platform key's ARN, which Terraform resolves from the alias: an alias
    # ARN in VolumeKmsKeyId is refused by CreateProcessingJob and CreateTrainingJob.
    text = pipeline["pipeline_definition"]
    assert ":alias/" not in text
    assert set(re.findall(r"\$\{[^}]+\}", text)) == {"${data.aws_kms_alias.platform_key.target_key_arn}"}


def test_project_role_is_scoped_to_the_project(project_stack):
    env, doc = project_stack
    roles = doc["resource"]["aws_iam_role"]
    for role in roles.values():  # the execution role and the handlers' roles
        assert role["permissions_boundary"].endswith(f":policy/mlops-{env}/mlops-{env}-permissions-boundary")
    (role_id,) = [k for k, r in roles.items() if r["name"] == f"mlops-{env}-demo-execution"]
    (policy,) = [p for p in doc["resource"]["aws_iam_role_policy"].values()
                 if p["role"] == f"${{aws_iam_role.{role_id}.name}}"]
    statements = json.loads(policy["policy"])["Statement"]
    for st in statements:
        actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        assert not ("*" in actions and "*" in resources)
        for resource in resources:
            if resource.startswith("arn:aws:s3:::") and "/" in resource:
                assert "/demo/" in resource, resource  # objects only under the project's prefix


@pytest.mark.parametrize("alias", ["arn:aws:kms:eu-west-1:111111111111:alias/mlops-dev-platform",
                                   "alias/mlops-dev-platform"])
def test_an_alias_is_refused_where_the_jobs_need_a_key_arn(alias):
    with pytest.raises(ValueError, match="VolumeKmsKeyId takes a key id or key ARN"):
        target(kms_key_arn=alias)
