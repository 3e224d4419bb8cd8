"""The local evaluation of pipeline-definition expressions (no AWS: property files come from a dict)."""

from __future__ import annotations

import pytest

from local_aws.pipeline_expressions import (
    ExpressionError,
    RunContext,
    evaluate_condition,
    property_path,
    references,
    resolve,
)

PROCESSING = {
    "ProcessingOutputConfig": {"Outputs": [
        {"OutputName": "train", "S3Output": {"S3Uri": "s3://b/train"}},
        {"OutputName": "evaluation", "S3Output": {"S3Uri": "s3://b/runs/x/evaluation"}},
    ]},
}


def context(**files) -> RunContext:
    return RunContext(
        parameters={"MinAccuracy": 0.9, "InputDataUri": "s3://d/demo.csv"},
        execution={"PipelineExecutionId": "abc123"},
        steps={"Prep": PROCESSING, "Train": {"ModelArtifacts": {"S3ModelArtifacts": "s3://b/m.tar.gz"}}},
        property_files={"Prep": {"Report": ("evaluation", "evaluation.json")}},
        read_json=lambda uri: files[uri],
    )


def test_get_parameters_execution_and_step_properties():
    ctx = context()
    assert resolve({"Get": "Parameters.InputDataUri"}, ctx) == "s3://d/demo.csv"
    assert resolve({"Get": "Execution.PipelineExecutionId"}, ctx) == "abc123"
    assert resolve({"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"},
                   ctx) == "s3://b/train"
    assert resolve({"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}, ctx) == "s3://b/m.tar.gz"


def test_join_and_nested_structures():
    ctx = context()
    value = {"Args": ["--data", {"Std:Join": {"On": "/", "Values": [
        "s3://b/runs", {"Get": "Execution.PipelineExecutionId"}, "model"]}}]}
    assert resolve(value, ctx) == {"Args": ["--data", "s3://b/runs/abc123/model"]}


def test_json_get_reads_the_property_file_of_the_named_output():
    ctx = context(**{"s3://b/runs/x/evaluation/evaluation.json": {"metrics": {"accuracy": 0.95}}})
    spec = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Prep.PropertyFiles.Report"},
                            "Path": "metrics.accuracy"}}
    assert resolve(spec, ctx) == 0.95
    condition = {"Type": "GreaterThanOrEqualTo", "LeftValue": spec,
                 "RightValue": {"Get": "Parameters.MinAccuracy"}}
    assert evaluate_condition(condition, ctx, "Gate") is True
    ctx.parameters["MinAccuracy"] = 0.99
    assert evaluate_condition(condition, ctx, "Gate") is False
    assert evaluate_condition({"Type": "Not", "Condition": condition}, ctx, "Gate") is True


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ({"Get": "Parameters.Nope"}, "unknown pipeline parameter 'Nope'"),
        ({"Get": "Steps.Later.ModelArtifacts"}, "step 'Later' has not run"),
        ({"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['nope'].S3Output.S3Uri"},
         "no item named 'nope'"),
        ({"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Prep.PropertyFiles.Report"},
                          "Path": "metrics.f1"}}, "has no 'metrics.f1'"),
    ],
)
def test_errors_name_the_reference(expr, message):
    ctx = context(**{"s3://b/runs/x/evaluation/evaluation.json": {"metrics": {}}})
    with pytest.raises(ExpressionError, match=message) as err:
        resolve(expr, ctx, where="StepX")
    assert str(err.value).startswith("StepX: ")


def test_references_are_the_implicit_dependencies():
    args = {"In": [{"Get": "Steps.A.X"}, {"Std:Join": {"On": "", "Values": [{"Get": "Steps.B.Y"}]}}],
            "P": {"Get": "Parameters.Z"}}
    assert references(args) == {"A", "B"}


def test_property_path_by_index_and_missing_key():
    assert property_path({"A": [{"B": 1}, {"B": 2}]}, "A[1].B", "w") == 2
    with pytest.raises(ExpressionError, match="no property 'C'"):
        property_path({"A": {}}, "A.C", "w")
