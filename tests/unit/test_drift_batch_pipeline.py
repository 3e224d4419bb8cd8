"""The drift batch pipeline: its definition (three Processing steps, the counting one sharded by
S3 key over a manifest, every request valid for CreateProcessingJob), the setting that turns it
on, and the stack: a scheduled pipeline in place of the drift function's schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from local_aws.api_constraints import refusal
from local_aws.pipeline_expressions import RunContext, resolve
from stacks.project_config import DriftBatch, load_projects
from tests.unit.test_pipeline_definition import KEY_ARN, target

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = {"PROJECT": "demo", "ENDPOINT_NAME": "mlops-dev-demo", "DRIFT_P_VALUE": "0.05"}


def _batch_project(env: str = "dev", **batch):
    demo = load_projects(ROOT)["demo"][env]
    drift = demo.drift.model_copy(update={"batch": DriftBatch(enabled=True, **batch)})
    return demo.model_copy(update={"drift": drift})


def test_definition_lists_counts_on_shards_and_merges():
    from pipelines.definition import drift_batch_definition

    definition = json.loads(drift_batch_definition(_batch_project(instance_count=3), target(),
                                                   "mlops-dev-demo-drift", ENVIRONMENT))
    steps = {s["Name"]: s for s in definition["Steps"]}
    assert list(steps) == ["ListDriftWindow", "CountDriftShard", "MergeDriftShards"]
    params = {p["Name"]: p for p in definition["Parameters"]}
    assert params["DriftInstanceCount"] == {"Name": "DriftInstanceCount", "Type": "Integer",
                                            "DefaultValue": 3}
    context = RunContext(
        parameters={"WindowEnd": "", "DriftInstanceCount": 3, "DriftInstanceType": "ml.m5.xlarge"},
        execution={"PipelineExecutionId": "abc123", "PipelineExecutionArn": "arn",
                   "StartDateTime": "2026-11-23T10:00:07Z"})
    requests = {}
    for name, step in steps.items():
        request = resolve(step["Arguments"], context, name)
        job = {**request, "ProcessingJobName": f"drift-{name}"}
        assert refusal("sagemaker", "CreateProcessingJob", job) is None
        assert request["Environment"]["ENDPOINT_NAME"] == "mlops-dev-demo"  # the Lambda's settings
        assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KEY_ARN
        requests[name] = request
        outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
        context.steps[name] = {"ProcessingOutputConfig": {"Outputs": outputs}}
    clusters = {n: r["ProcessingResources"]["ClusterConfig"]["InstanceCount"] for n, r in requests.items()}
    assert clusters == {"ListDriftWindow": 1, "CountDriftShard": 3, "MergeDriftShards": 1}
    (capture,) = [i["S3Input"] for i in requests["CountDriftShard"]["ProcessingInputs"]
                  if i["InputName"] == "capture"]
    assert (capture["S3DataType"], capture["S3DataDistributionType"]) == ("ManifestFile", "ShardedByS3Key")
    assert capture["S3Uri"] == ("s3://mlops-dev-artifacts-111111111111/demo/runs/abc123/drift/window/"
                                "manifest.json")
    merge_inputs = {i["InputName"]: i["S3Input"]["S3Uri"]
                    for i in requests["MergeDriftShards"]["ProcessingInputs"]}
    assert merge_inputs["partials"].endswith("/runs/abc123/drift/partials")
    for request in requests.values():  # every step computes the same window from the same values
        arguments = request["AppSpecification"]["ContainerArguments"]
        assert arguments[1:5] == ["--window-end", "", "--started", "2026-11-23T10:00:07Z"]


def test_the_setting_is_checked():
    assert DriftBatch().enabled is False and DriftBatch().instance_count == 1
    with pytest.raises(ValidationError, match="instance_count"):
        DriftBatch(instance_count=0)
    with pytest.raises(ValidationError, match="instance_type"):
        DriftBatch(instance_type="m5.large")


def test_the_stack_schedules_the_batch_pipeline_instead_of_the_function(synth_all, environments, tmp_path):
    from stacks.app import synth  # the binding is loaded already (synth_all)

    # Off by default: no pipeline, the function's schedule runs.
    default = synth_all.json("project-demo-dev")["resource"]
    assert "drift_pipeline" not in default["aws_sagemaker_pipeline"]
    (lambda_rule,) = [r for r in default["aws_cloudwatch_event_rule"].values()
                      if r["name"] == "mlops-dev-demo-drift"]
    assert "state" not in lambda_rule

    infos = synth({"dev": environments["dev"]}, tmp_path / "out", tmp_path / "state",
                  {"demo": {"dev": _batch_project(instance_count=2)}})
    stack = next(i for i in infos if i.name == "project-demo-dev")
    r = json.loads((stack.dir / "cdk.tf.json").read_text())["resource"]
    pipeline = r["aws_sagemaker_pipeline"]["drift_pipeline"]
    assert pipeline["pipeline_name"] == "mlops-dev-demo-drift"
    body = json.loads(pipeline["pipeline_definition"])
    assert [s["Name"] for s in body["Steps"]] == ["ListDriftWindow", "CountDriftShard", "MergeDriftShards"]
    env = body["Steps"][0]["Arguments"]["Environment"]
    function = next(f for f in r["aws_lambda_function"].values()
                    if f["function_name"] == "mlops-dev-demo-drift")
    variables = {k: v for k, v in function["environment"]["variables"].items()
                 if not k.startswith("POWERTOOLS_")}
    assert {k: v for k, v in env.items() if k in variables} == variables  # the function's settings
    rules = {x["name"]: x for x in r["aws_cloudwatch_event_rule"].values() if "-demo-drift" in x["name"]}
    # the function's rule is kept but disabled: one check per window
    assert rules["mlops-dev-demo-drift"]["state"] == "DISABLED"
    batch_rule = rules["mlops-dev-demo-drift-batch"]
    assert "state" not in batch_rule and batch_rule["schedule_expression"] == "rate(1 hour)"
    (target_,) = [t for t in r["aws_cloudwatch_event_target"].values()
                  if t["arn"] == "${aws_sagemaker_pipeline.drift_pipeline.arn}"]
    role = r["aws_iam_role"][target_["role_arn"].split(".")[1]]
    assert json.loads(role["assume_role_policy"])["Statement"][0]["Condition"]["ArnEquals"][
        "aws:SourceArn"].endswith(":rule/mlops-dev-demo-drift-batch")
    # The merge step publishes the drift function's MLOps/Drift metrics as the project's
    # execution role, which may then (and only then) publish in that namespace.
    def published(resources: dict) -> list[str]:
        (role_id,) = [k for k, role in resources["aws_iam_role"].items()
                      if role["name"] == "mlops-dev-demo-execution"]
        (policy,) = [p for p in resources["aws_iam_role_policy"].values()
                     if p["role"] == f"${{aws_iam_role.{role_id}.name}}"]
        return [ns for st in json.loads(policy["policy"])["Statement"] if st.get("Sid") == "PublishMetrics"
                for ns in st["Condition"]["StringLike"]["cloudwatch:namespace"]]

    assert "MLOps/Drift" in published(r) and "MLOps/Drift" not in published(default)
