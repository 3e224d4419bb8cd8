"""The demo project's serving in every environment: endpoint with data capture, autoscaling and
blue/green canary or linear updates whose auto-rollback alarms live in the same stack; every
alarm notifies SNS."""

from __future__ import annotations

import re

import pytest

from stacks.project_config import load_projects

ENVS = ("local", "dev", "staging", "prod")


@pytest.fixture(scope="module", params=ENVS)
def project(request, synth_all, environments):
    from tests.unit.test_project_config import ROOT

    env = request.param
    config = load_projects(ROOT)["demo"][env]
    return env, synth_all.json(f"project-demo-{env}"), config, environments[env].account_id


def test_endpoint_captures_data_and_shifts_traffic_with_rollback_alarms(project):
    env, doc, config, account = project
    resources = doc["resource"]
    (endpoint,) = resources["aws_sagemaker_endpoint"].values()
    assert endpoint["name"] == f"mlops-{env}-demo"
    (endpoint_config,) = resources["aws_sagemaker_endpoint_configuration"].values()
    capture = endpoint_config["data_capture_config"]
    assert capture["enable_capture"] is True
    assert capture["initial_sampling_percentage"] == config.serving.capture_sampling_percent
    assert {o["capture_mode"] for o in capture["capture_options"]} == {"Input", "Output"}
    assert capture["destination_s3_uri"] == f"s3://mlops-{env}-capture-{account}/demo/"
    assert capture["kms_key_id"] and endpoint_config["kms_key_arn"]

    policy = endpoint["deployment_config"]["blue_green_update_policy"]
    routing = policy["traffic_routing_configuration"]
    assert routing["type"] == config.serving.deployment.strategy.upper()
    alarms = resources["aws_cloudwatch_metric_alarm"]
    rollback = endpoint["deployment_config"]["auto_rollback_configuration"]["alarms"]
    assert rollback
    for ref in rollback:  # references to alarms of this very stack
        match = re.fullmatch(r"\$\{aws_cloudwatch_metric_alarm\.([^.]+)\.alarm_name\}", ref["alarm_name"])
        assert match and match.group(1) in alarms, ref
        assert "critical" in alarms[match.group(1)]["alarm_name"]


def test_autoscaling_follows_the_config_outside_local(project):
    env, doc, config, _ = project
    targets = doc["resource"].get("aws_appautoscaling_target", {})
    if env == "local":
        assert not targets  # moto lacks ListTagsForResource (stacks/moto_gaps.py)
        return
    (target,) = targets.values()
    assert target["min_capacity"] == config.serving.autoscaling.min_instances
    assert target["max_capacity"] == config.serving.autoscaling.max_instances
    (policy,) = doc["resource"]["aws_appautoscaling_policy"].values()
    spec = policy["target_tracking_scaling_policy_configuration"]
    assert spec["predefined_metric_specification"]["predefined_metric_type"] == (
        "SageMakerVariantInvocationsPerInstance")
    # Off hours (dev, staging): the maximum down to the minimum at night, back in the morning.
    actions = doc["resource"].get("aws_appautoscaling_scheduled_action", {})
    hours = config.serving.autoscaling.off_hours
    assert bool(actions) == (hours is not None) and (env != "prod" or not actions)
    if hours is not None:
        scaling = config.serving.autoscaling
        got = {a["schedule"]: (int(a["scalable_target_action"]["min_capacity"]),
                               int(a["scalable_target_action"]["max_capacity"]), a["timezone"])
               for a in actions.values()}
        assert got == {hours.scale_down: (scaling.min_instances, scaling.min_instances, hours.timezone),
                       hours.scale_up: (scaling.min_instances, scaling.max_instances, hours.timezone)}
        for action in actions.values():  # on the scalable target (a reference: created after it)
            assert action["resource_id"].startswith("${aws_appautoscaling_target.")


def test_every_alarm_notifies_the_platform_topics(project):
    env, doc, _, _ = project
    alarms = doc["resource"]["aws_cloudwatch_metric_alarm"].values()
    assert alarms
    for alarm in alarms:
        assert alarm["alarm_actions"], alarm["alarm_name"]
        for action in alarm["alarm_actions"]:
            assert action.endswith((f":mlops-{env}-alerts-critical", f":mlops-{env}-alerts-warning"))
    assert doc["resource"]["aws_cloudwatch_dashboard"]


def test_endpoint_starts_from_a_bootstrap_model_in_the_stack(project):
    _, doc, _, _ = project
    objects = doc["resource"]["aws_s3_object"]
    bootstrap = objects["bootstrap_model"]
    (model,) = doc["resource"]["aws_sagemaker_model"].values()
    assert model["primary_container"]["model_data_url"] == f"s3://{bootstrap['bucket']}/{bootstrap['key']}"


def test_every_rule_feeds_a_queue_with_a_dlq_and_every_queue_a_function(project):
    _, doc, _, _ = project
    r = doc["resource"]
    queues = r["aws_sqs_queue"]
    targets = r["aws_cloudwatch_event_target"].values()
    rules = r["aws_cloudwatch_event_rule"]
    assert len(rules) >= 4
    targeted_rules = {t["rule"] for t in targets}
    for rule_id in rules:
        assert any(rule_id in ref for ref in targeted_rules), rule_id
    for target in targets:
        if target["arn"].startswith("${aws_sagemaker_pipeline."):
            # A scheduled pipeline: EventBridge starts it with its own role and retries a start.
            assert target["role_arn"].startswith("${aws_iam_role.") and target["retry_policy"], target
            continue
        match = re.fullmatch(r"\$\{aws_sqs_queue\.([^.]+)\.arn\}", target["arn"])
        assert match, target["arn"]
        assert "redrive_policy" in queues[match.group(1)], match.group(1)
    fed = {m["event_source_arn"] for m in r["aws_lambda_event_source_mapping"].values()}
    with_dlq = {f"${{aws_sqs_queue.{q}.arn}}" for q, body in queues.items() if "redrive_policy" in body}
    assert with_dlq == fed


def test_handlers_accept_the_settings_the_stack_gives_them(project, environments):
    """The environment Terraform sets is exactly what the handlers' settings models parse."""
    from lambdas.shared.control.settings import load_settings
    from lambdas.shared.drift.job import DriftSettings
    from lambdas.shared.quality.job import QualitySettings

    env, doc, config, _ = project
    functions = {f["function_name"].removeprefix(f"mlops-{env}-demo-"): f
                 for f in doc["resource"]["aws_lambda_function"].values()}
    assert set(functions) == {"gate", "deploy", "rollback", "retrain", "drift", "quality"}
    for name, function in functions.items():
        variables = function["environment"]["variables"]
        resolved = {k: re.sub(r"\$\{[^}]+\}", "arn:aws:resolved:at:apply", v) for k, v in variables.items()}
        if name == "drift":
            drift = DriftSettings.from_env(resolved)
            assert drift.endpoint_name == f"mlops-{env}-demo"
            continue
        if name == "quality":
            quality = QualitySettings.from_env(resolved)
            assert quality.task == config.task
            assert quality.label_lag_minutes == config.quality.label_lag_minutes
            assert quality.ground_truth_s3_uri.endswith("/demo/ground-truth/")
            continue
        settings = load_settings(resolved)
        assert settings.endpoint_name == f"mlops-{env}-demo"
        assert settings.gate.thresholds == config.gate.thresholds
        assert settings.retrain_cooldown_minutes == config.retrain.cooldown_minutes
        assert settings.bake_seconds == config.serving.deployment.termination_wait_seconds
        assert settings.accuracy_alarm in settings.rollback_alarms & settings.retrain_alarms
        # Production rules from the environment's setting; the source group by its ARN, in the
        # source environment's account and region.
        assert settings.production is environments[env].production
        if settings.production:
            source = environments[environments[env].promotion.source]
            assert settings.promotion_source_group == (
                f"arn:aws:sagemaker:{source.region}:{source.account_id}:model-package-group/{source.prefix}-demo")
        else:
            assert settings.promotion_source_group is None
        # Powertools comes from the project's own layer, in every environment.
        assert any("powertools_layer_version" in layer for layer in function["layers"])


def test_control_tables_are_encrypted_and_recoverable(project):
    env, doc, _, _ = project
    tables = doc["resource"]["aws_dynamodb_table"].values()
    assert {t["name"] for t in tables} == {
        f"mlops-{env}-demo-{p}" for p in ("deployments", "audit", "idempotency", "locks")
    }
    for table in tables:
        assert table["server_side_encryption"]["enabled"] is True
        assert table["point_in_time_recovery"]["enabled"] is True
        assert table.get("deletion_protection_enabled", False) == (env == "prod")


def test_a_production_environment_is_synthesized_with_its_promotion_source(synth_all, environments):
    from stacks.app import promotion_source

    prod = environments["prod"]
    assert promotion_source(prod, environments) is environments[prod.promotion.source]
    assert promotion_source(environments["staging"], {}) is None
    with pytest.raises(ValueError, match="prod promotes from staging: synthesize it with that environment"):
        promotion_source(prod, {"prod": prod})
