"""The steps of SageMaker's blue/green traffic shifting, from UpdateEndpoint's DeploymentConfig
as the project stack and the deploy handler send it."""

from __future__ import annotations

from local_aws.deployment_guardrails import Guardrails, problems


def policy(routing: dict, termination: int = 120, alarms: tuple[str, ...] = ("a", "b")) -> dict:
    return {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing,
                                      "TerminationWaitInSeconds": termination,
                                      "MaximumExecutionTimeoutInSeconds": 3600},
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": n} for n in alarms]}}


def test_no_deployment_config_is_all_at_once_without_alarms():
    g = Guardrails.from_api(None)
    assert (g.kind, g.alarms, g.max_execution_s) == ("ALL_AT_ONCE", (), None)
    assert [(s.share, s.bake_s) for s in g.steps] == [(1.0, 0.0)]


def test_canary_bakes_its_share_then_all_traffic_through_the_termination_wait():
    g = Guardrails.from_api(policy({"Type": "CANARY", "WaitIntervalInSeconds": 300,
                                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}}))
    assert [(s.share, s.bake_s) for s in g.steps] == [(0.1, 300.0), (1.0, 120.0)]
    assert g.alarms == ("a", "b") and g.max_execution_s == 3600
    assert "WaitIntervalInSeconds" in g.steps[0].message and "TerminationWaitInSeconds" in g.steps[1].message


def test_linear_moves_a_step_at_a_time():
    g = Guardrails.from_api(policy({"Type": "LINEAR", "WaitIntervalInSeconds": 60,
                                    "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 40}}))
    assert [(round(s.share, 2), s.bake_s) for s in g.steps] == [(0.4, 60.0), (0.8, 60.0), (1.0, 120.0)]


def test_an_instance_count_is_a_share_of_the_capacity():
    g = Guardrails.from_api(policy({"Type": "CANARY", "WaitIntervalInSeconds": 60,
                                    "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1}}), instances=3)
    assert g.steps[0].share == 0.25  # one new instance beside three old ones


def test_all_at_once_bakes_with_full_traffic():
    g = Guardrails.from_api(policy({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 30}, termination=0))
    assert [(s.share, s.bake_s) for s in g.steps] == [(1.0, 30.0), (1.0, 0.0)]


def test_what_update_endpoint_refuses_is_named():
    canary = {"Type": "CANARY", "WaitIntervalInSeconds": 60}
    assert problems(None) == []
    assert problems(policy({**canary, "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}})) == []
    linear = {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 0}}
    assert problems(policy(linear)) == ["LinearStepSize.Value must be at least 1"]
    big = {**canary, "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 60}}
    assert problems(policy(big)) == ["CanarySize.Value 60% is over the 50% a capacity percent may be"]
    assert problems(policy(canary)) == ["CANARY traffic routing needs CanarySize"]
