"""Shadow tests in the deploy handler (lambdas/shared/control/shadow.py): where an approved
package goes, the shadow config it gets (checked against botocore's own validation and the
service model's constraints), and how a shadow test's records weigh in rollback decisions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from botocore.stub import Stubber

from lambdas.shared.control import history, shadow
from lambdas.shared.control.serving import SageMaker
from lambdas.shared.control.settings import dummy_environment, load_settings
from local_aws.api_constraints import refusal

ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-dev-demo"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_an_approved_package_is_shadowed_only_when_on_with_a_production_to_shadow():
    assert shadow.serving_mode(0, True, {}).mode == "production"
    assert shadow.serving_mode(20, False, {}).mode == "production"  # nothing serves yet
    on = shadow.serving_mode(20, True, {})
    assert on.mode == "shadow" and "20%" in on.reason
    promoted = shadow.serving_mode(20, True, {shadow.PASSED_KEY: "s3://a/demo/shadow/ep/x/report.json"})
    assert promoted.mode == "production" and "s3://a/demo/shadow/ep/x/report.json" in promoted.reason


def test_the_shadow_weight_is_its_share_of_productions_weight():
    assert shadow.shadow_weight({"InitialVariantWeight": 1.0}, 20) == 0.2
    assert shadow.shadow_weight({"InitialVariantWeight": 2.0}, 25) == 0.5
    assert shadow.shadow_weight({}, 100) == 1.0


def test_a_shadow_config_name_is_deterministic_and_new_when_production_changes():
    name = shadow.config_name("mlops-dev-demo", f"{ARN}/3", 3, "mlops-dev-demo-v2-abcdef")
    assert name == shadow.config_name("mlops-dev-demo", f"{ARN}/3", 3, "mlops-dev-demo-v2-abcdef")
    assert name.startswith("mlops-dev-demo-v3-s") and len(name) <= history.NAME_MAX
    assert name != shadow.config_name("mlops-dev-demo", f"{ARN}/3", 3, "mlops-dev-demo-v1-123456")
    assert name != history.resource_name("mlops-dev-demo", f"{ARN}/3", 3)
    assert len(shadow.config_name("e" * 63, f"{ARN}/123456", 123456, "m")) <= history.NAME_MAX


def test_the_shadow_config_request_is_one_sagemaker_takes():
    """build_shadow's CreateEndpointConfig: production as the served config has it, the new
    model as the one shadow variant; botocore's validation (Stubber) and the service model's
    constraints (api_constraints) both accept it."""
    import boto3

    settings = load_settings(dummy_environment(SHADOW_SAMPLING_PERCENT="20"))
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x")
    production = {"VariantName": "primary", "ModelName": "mlops-dev-demo-v2-abcdef",
                  "InstanceType": "ml.m5.large", "InitialInstanceCount": 2, "InitialVariantWeight": 1.0}
    name = shadow.config_name(settings.endpoint_name, f"{ARN}/3", 3, production["ModelName"])
    model = history.resource_name(settings.endpoint_name, f"{ARN}/3", 3)
    sent: dict = {}
    with Stubber(client) as stub:
        stub.add_response("describe_model", {"ModelName": model, "ModelArn": f"arn:model/{model}",
                                             "CreationTime": T0})
        stub.add_client_error("describe_endpoint_config", "ValidationException",
                              "Could not find endpoint config")
        client.meta.events.register("provide-client-params.sagemaker.CreateEndpointConfig",
                                    lambda params, **_: sent.update(params))
        stub.add_response("create_endpoint_config", {"EndpointConfigArn": f"arn:config/{name}"})
        SageMaker(client, settings).build_shadow(name, model, f"{ARN}/3", production)
        stub.assert_no_pending_responses()
    assert sent["ProductionVariants"] == [production]
    assert sent["ShadowProductionVariants"] == [{
        "VariantName": "shadow", "ModelName": model, "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1, "InitialVariantWeight": 0.2}]
    assert refusal("sagemaker", "CreateEndpointConfig", sent) is None


def record(n: int, *, previous: str | None, minute: int, kind: str = "deploy", **kw) -> history.Deployment:
    name = f"ep-v{n}" if kind != "shadow" else f"ep-v{n}-s"
    at = history.iso(T0.replace(minute=minute))
    return history.Deployment(endpoint_name="ep", deployment_id=f"{kind}#{minute}#{name}", kind=kind,
                              status=kw.pop("status", history.SERVING), model_package_arn=f"{ARN}/{n}",
                              new_endpoint_config=name, previous_endpoint_config=previous,
                              event_time=at, started_at=at, traffic_at=at, known_good_at=at, **kw)


def test_an_alarm_during_a_shadow_test_is_about_production_never_the_shadow():
    v1 = record(1, previous="ep-bootstrap", minute=10)
    v2 = record(2, previous="ep-v1", minute=20)
    s3 = record(3, previous="ep-v2", minute=30, kind="shadow")
    s4 = record(4, previous="ep-v3-s", minute=40, kind="shadow")  # a newer candidate replaced s3
    for served in (s3, s4):
        plan = history.rollback_decision([v1, v2, s3, s4], served.new_endpoint_config, history.iso(
            T0.replace(minute=50)))
        # Production behind the test is v2: it is blamed, v1 restored (the test ends with it).
        assert (plan.action, plan.bad, plan.target) == ("rollback", v2, v1)
    # A shadow test's record is never a rollback target.
    assert history.rollback_decision([s3], "ep-bootstrap", history.iso(T0.replace(minute=50))).target is None


def test_a_shadow_update_in_flight_is_left_to_the_guardrails():
    v1 = record(1, previous="ep-bootstrap", minute=10)
    s2 = replace(record(2, previous="ep-v1", minute=20, kind="shadow"), status=history.BAKING,
                 known_good_at=None)
    plan = history.rollback_decision([v1, s2], "ep-v1", history.iso(T0.replace(minute=25)))
    assert plan.action == "left-to-guardrails" and plan.bad == s2


def test_an_accuracy_drop_during_a_shadow_test_is_judged_on_production():
    """Production measured healthy before the test began: the drop is the data's (retrain), not
    a reason to roll back a model that did not change."""
    v1 = record(1, previous="ep-bootstrap", minute=0)
    s2 = record(2, previous="ep-v1", minute=50, kind="shadow")
    healthy = [history.iso(T0.replace(hour=11, minute=10))]  # v1's window 10:10-11:10
    cause = history.accuracy_drop_cause([v1, s2], history.iso(T0.replace(hour=11, minute=30)), healthy)
    assert cause.cause == "concept-drift" and cause.deployment == v1
