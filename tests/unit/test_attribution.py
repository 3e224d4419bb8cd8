"""Feature attributions (pipelines/steps/attribution.py), the explainability pipeline's definition
and its schedule, alarm and permissions in the synthesized project stack."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "pipelines" / "steps"))  # the step scripts import siblings by name

import attribution  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    from sklearn.ensemble import GradientBoostingClassifier

    from pipelines.dataset import TARGET, breast_cancer_frame

    frame = breast_cancer_frame()
    x, y = frame.drop(columns=[TARGET]), frame[TARGET]
    model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0).fit(x[:400], y[:400])
    return x, (lambda rows: model.predict_proba(rows)[:, 1]), attribution.baseline_row(x[:400], [])


def test_shap_values_add_up_to_the_score_change_from_the_baseline(fitted):
    x, score, baseline = fitted
    rows = x.iloc[400:440]
    values = attribution.shap_values(score, rows, baseline)
    base = score(pd.DataFrame([baseline], columns=list(x.columns)))[0]
    np.testing.assert_allclose(values.sum(axis=1), score(rows) - base, atol=1e-9)
    # A feature the model never splits on gets nothing; the baseline row itself explains nothing.
    assert np.abs(attribution.shap_values(score, pd.DataFrame([baseline]), baseline)).max() == 0


def test_shap_values_are_exact_for_an_additive_model():
    """For f(x) = sum w_i x_i every order credits w_i (x_i - b_i): the Shapley value itself."""
    x = pd.DataFrame({"a": [1.0, 3.0], "b": [2.0, -1.0], "c": [0.0, 5.0]})
    weights = np.array([2.0, -1.0, 0.5])
    baseline = {"a": 1.0, "b": 0.0, "c": 1.0}
    values = attribution.shap_values(lambda f: f.to_numpy() @ weights, x, baseline, permutations=3)
    np.testing.assert_allclose(values, (x.to_numpy() - [1.0, 0.0, 1.0]) * weights)


def test_integer_features_keep_a_fractional_baseline():
    """Rows are typed as served requests are (numbers as floats): an integer column's median of
    2.5 stays 2.5 in every walk, for the reference and the window alike."""
    x = pd.DataFrame({"visits": [1, 4, 2, 3]})
    baseline = attribution.baseline_row(x, [])
    assert baseline == {"visits": 2.5}
    values = attribution.shap_values(lambda f: f["visits"].to_numpy() * 2.0, x, baseline, permutations=2)
    np.testing.assert_allclose(values[:, 0], (x["visits"].to_numpy() - 2.5) * 2.0)


def test_windows_that_could_never_be_judged_are_refused():
    from pydantic import ValidationError

    from stacks.project_config import Explainability

    with pytest.raises(ValidationError, match=r"min_rows \(600\) is above max_rows \(500\)"):
        Explainability(min_rows=600, max_rows=500)


def test_categorical_features_take_the_baseline_mode():
    x = pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0], "colour": ["red", "blue", "red", "green"]})
    baseline = attribution.baseline_row(x, ["colour"])
    assert baseline == {"size": 2.5, "colour": "red"}

    def score(frame: pd.DataFrame) -> np.ndarray:
        return frame["size"].to_numpy() + (frame["colour"] == "blue").to_numpy() * 10.0

    values = attribution.shap_values(score, x, baseline)
    np.testing.assert_allclose(values[:, 1], [0.0, 10.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="'empty' has no values"):
        attribution.baseline_row(pd.DataFrame({"empty": [None, None]}), [])


def test_ndcg_is_clarifys():
    reference = {"a": 0.5, "b": 0.3, "c": 0.2}
    assert attribution.ndcg(reference, {"a": 9.0, "b": 2.0, "c": 1.0}) == 1.0  # the ranking, not the scale
    swapped = attribution.ndcg(reference, {"a": 0.1, "b": 0.3, "c": 0.2})
    ideal = 0.5 + 0.3 / math.log2(3) + 0.2 / 2
    assert swapped == pytest.approx((0.3 + 0.2 / math.log2(3) + 0.5 / 2) / ideal)
    assert attribution.ndcg({"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 0.0}) == 1.0
    with pytest.raises(ValueError, match="share no feature"):
        attribution.ndcg({"a": 1.0}, {"z": 1.0})


def test_reference_documents_are_read_or_refused_by_name():
    document = attribution.analysis({"a": 0.2}, 0.4, {"a": 1.0}, rows=10, permutations=8, seed=0)
    assert attribution.read_global(document, "ref") == {"a": 0.2}
    for broken, reason in (({}, "no explanations.kernel_shap.label0"),
                           ({"explanations": {"kernel_shap": {"label0": {"global_shap_values": {}}}}},
                            "not a non-empty object"),
                           ({"explanations": {"kernel_shap": {"label0": {"global_shap_values": {"a": "x"}}}}},
                            "not a number")):
        with pytest.raises(ValueError, match=reason):
            attribution.read_global(broken, "model.tar.gz")


def test_healthy_windows_keep_their_ranking(fitted):
    """Windows drawn from the model's own population: the false-alarm rate at Clarify's 0.9, and
    at the configured minimum window of 100 rows, is printed (0 of 100 here, the lowest ~0.99)."""
    x, score, baseline = fitted
    reference = attribution.global_attributions(attribution.shap_values(score, x.iloc[400:], baseline),
                                                list(x.columns))
    rng = np.random.default_rng(7)
    scores = [attribution.ndcg(reference, attribution.global_attributions(
        attribution.shap_values(score, x.iloc[rng.choice(len(x), 100)], baseline), list(x.columns)))
        for _ in range(100)]
    rate = float(np.mean(np.array(scores) < 0.9))
    print(f"attribution nDCG on 100 healthy 100-row windows: min {min(scores):.4f}, "
          f"mean {np.mean(scores):.4f}, false alarms at 0.9: {rate:.1%}")
    assert rate <= 0.01


def test_explainability_pipeline_is_one_step_that_validates_as_sagemaker_would():
    from local_aws.api_constraints import refusal
    from local_aws.pipeline_expressions import RunContext, resolve
    from pipelines.definition import explainability_definition
    from stacks.project_config import load_projects
    from tests.unit.test_pipeline_definition import KEY_ARN, target

    demo = load_projects(ROOT)["demo"]["dev"]
    definition = json.loads(explainability_definition(
        demo, target(capture_uri="s3://mlops-dev-capture-111111111111/demo/mlops-dev-demo/"),
        "mlops-dev-demo-explainability", "mlops-dev-demo"))
    (step,) = definition["Steps"]
    assert step["Name"] == "ExplainServedModel" and step["Type"] == "Processing"
    assert {p["Name"] for p in definition["Parameters"]} == {"WindowEnd", "ProcessingInstanceType"}
    request = resolve(step["Arguments"], RunContext(
        parameters={"WindowEnd": "", "ProcessingInstanceType": "ml.m5.large"},
        execution={"PipelineExecutionId": "abc123", "PipelineExecutionArn": "arn"}))
    job = {**request, "ProcessingJobName": "demo-explain-1"}
    assert refusal("sagemaker", "CreateProcessingJob", job) is None
    assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == KEY_ARN
    arguments = request["AppSpecification"]["ContainerArguments"]
    settings = dict(zip(arguments[::2], arguments[1::2], strict=True))
    assert settings["--endpoint"] == "mlops-dev-demo"
    assert settings["--capture-uri"] == "s3://mlops-dev-capture-111111111111/demo/mlops-dev-demo/"
    assert settings["--threshold"] == str(demo.explainability.ndcg_threshold)
    assert settings["--namespace"] == "MLOps/Explainability"


@pytest.mark.parametrize("env", ["local", "prod"])
def test_the_stack_schedules_the_pipeline_and_alarms_on_its_metric(synth_all, env):
    doc = synth_all.json(f"project-demo-{env}")
    r = doc["resource"]
    pipeline = r["aws_sagemaker_pipeline"]["explainability_pipeline"]
    assert pipeline["pipeline_name"] == f"mlops-{env}-demo-explainability"
    (rule,) = [x for x in r["aws_cloudwatch_event_rule"].values() if x["name"] == pipeline["pipeline_name"]]
    assert rule["schedule_expression"] == "rate(1 hour)"
    (target,) = [t for t in r["aws_cloudwatch_event_target"].values()
                 if t["arn"] == "${aws_sagemaker_pipeline.explainability_pipeline.arn}"]
    role_id = target["role_arn"].split(".")[1]
    role = r["aws_iam_role"][role_id]
    trust = json.loads(role["assume_role_policy"])["Statement"]
    assert trust[0]["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust[0]["Condition"]["ArnEquals"]["aws:SourceArn"].endswith(f":rule/{rule['name']}")
    (policy,) = [p for p in r["aws_iam_role_policy"].values()
                 if p["role"] == f"${{aws_iam_role.{role_id}.name}}"]
    (allowed,) = json.loads(policy["policy"])["Statement"]
    assert allowed["Action"] in ("sagemaker:StartPipelineExecution", ["sagemaker:StartPipelineExecution"])
    assert allowed["Resource"] in (pipeline_arn := "${aws_sagemaker_pipeline.explainability_pipeline.arn}",
                                   [pipeline_arn])
    (alarm,) = [a for a in r["aws_cloudwatch_metric_alarm"].values()
                if a["alarm_name"] == f"mlops-{env}-demo-warning-attribution-drift"]
    assert (alarm["namespace"], alarm["metric_name"], alarm["comparison_operator"], alarm["threshold"]) == (
        "MLOps/Explainability", "FeatureAttributionNDCG", "LessThanThreshold", 0.9)
    retrain = json.loads(next(f for f in r["aws_lambda_function"].values()
                              if f["function_name"].endswith("-retrain"))["environment"]["variables"]
                         ["RETRAIN_ALARMS"])
    assert any("attribution_drift" in name for name in retrain)
    # The job's role may find what the endpoint serves, and only for this project's endpoint.
    execution = json.loads(next(p["policy"] for k, p in r["aws_iam_role_policy"].items()
                                if k.startswith("execution_role")))
    (served,) = [s for s in execution["Statement"] if s["Sid"] == "FindServedModel"]
    assert served["Resource"][0].endswith(f":endpoint/mlops-{env}-demo")
