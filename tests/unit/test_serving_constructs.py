"""The serving and monitoring constructs, read from the synthesized JSON of one small test app
(tests/serving_app.py) with an AWS stack (dev) and a local one."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil

import pytest

from stacks import moto_gaps

ENVS = ("dev", "local")
REF = re.compile(r"^\$\{(aws_[a-z0-9_]+)\.([A-Za-z0-9_]+)\.([a-z_]+)\}$")


def resources(doc: dict, rtype: str) -> dict[str, dict]:
    return doc.get("resource", {}).get(rtype, {})


def ref(value: str) -> tuple[str, str, str]:
    """(type, name, attribute) of a Terraform reference like ${aws_sqs_queue.q.arn}."""
    match = REF.fullmatch(value)
    assert match, f"not a resource reference: {value}"
    return match.group(1), match.group(2), match.group(3)


def referenced(doc: dict, value: str, rtype: str) -> dict:
    kind, name, _attr = ref(value)
    assert kind == rtype, value
    return resources(doc, rtype)[name]


@pytest.fixture(scope="module")
def docs(serving_synth) -> dict[str, dict]:
    return {
        env: json.loads((serving_synth.stacks[env] / "cdk.tf.json").read_text()) for env in ENVS
    }


@pytest.fixture(params=ENVS)
def doc(request, docs) -> dict:
    return docs[request.param]


# Endpoints.
def test_endpoint_captures_inputs_and_outputs_encrypted(doc):
    configs = resources(doc, "aws_sagemaker_endpoint_configuration")
    assert len(configs) == 2
    (key_id,) = resources(doc, "aws_kms_key")
    key_ref = "${aws_kms_key." + key_id + ".arn}"
    sampling = {}
    for config in configs.values():
        capture = config["data_capture_config"]
        assert capture["enable_capture"] is True
        assert [o["capture_mode"] for o in capture["capture_options"]] == ["Input", "Output"]
        assert capture["kms_key_id"] == key_ref
        assert re.fullmatch(r"s3://mlops-\w+-capture-\d{12}/datacapture/\w+/",
                            capture["destination_s3_uri"])
        assert capture["capture_content_type_header"] == {
            "csv_content_types": ["text/csv"], "json_content_types": ["application/json"]}
        assert config["kms_key_arn"] == key_ref  # the instances' storage volumes
        sampling[config["name"]] = capture["initial_sampling_percentage"]
    assert sorted(sampling.values()) == [50, 100]


def test_models_are_network_isolated(doc):
    for model in resources(doc, "aws_sagemaker_model").values():
        assert model["enable_network_isolation"] is True
        assert model["primary_container"]["model_data_url"].startswith("s3://")


def test_shadow_variant_only_when_enabled(doc):
    configs = {c["name"]: c for c in resources(doc, "aws_sagemaker_endpoint_configuration").values()}
    canary = next(c for n, c in configs.items() if "canary" in n)
    linear = next(c for n, c in configs.items() if "linear" in n)
    (shadow,) = canary["shadow_production_variants"]
    assert shadow["variant_name"] == "shadow" and shadow["initial_variant_weight"] == 0.25
    assert "shadow_production_variants" not in linear
    for config in configs.values():
        (variant,) = config["production_variants"]
        assert variant["variant_name"] == "primary" and variant["initial_variant_weight"] == 1


@pytest.mark.parametrize(("strategy", "kind", "size_field", "step"), [
    ("canary", "CANARY", "canary_size", 10),
    ("linear", "LINEAR", "linear_step_size", 20),
])
def test_blue_green_traffic_shifting(doc, strategy, kind, size_field, step):
    endpoint = next(e for e in resources(doc, "aws_sagemaker_endpoint").values()
                    if e["name"].endswith(f"-test-{strategy}"))
    policy = endpoint["deployment_config"]["blue_green_update_policy"]
    routing = policy["traffic_routing_configuration"]
    assert routing["type"] == kind
    assert routing[size_field] == {"type": "CAPACITY_PERCENT", "value": step}
    (other,) = {"canary_size", "linear_step_size"} - {size_field}
    assert other not in routing
    assert routing["wait_interval_in_seconds"] == 120
    assert policy["termination_wait_in_seconds"] == 120
    assert policy["maximum_execution_timeout_in_seconds"] == 3600


def test_auto_rollback_alarms_exist_in_the_same_stack(doc):
    for endpoint in resources(doc, "aws_sagemaker_endpoint").values():
        alarms = endpoint["deployment_config"]["auto_rollback_configuration"]["alarms"]
        names = []
        for entry in alarms:
            alarm = referenced(doc, entry["alarm_name"], "aws_cloudwatch_metric_alarm")
            assert alarm["alarm_name"].startswith(endpoint["name"] + "-critical-")
            names.append(alarm["alarm_name"].removeprefix(endpoint["name"] + "-critical-"))
        # Only what a deployment causes within minutes (see endpoint_alarms.DEPLOYMENT_GUARDRAILS).
        assert names == ["error-rate", "latency-p95"]


def test_handlers_get_the_endpoint_settings_terraform_uses(doc):
    fn = next(f for f in resources(doc, "aws_lambda_function").values()
              if f["function_name"].endswith("-test-rollback"))
    env = fn["environment"]["variables"]
    endpoint = next(e for e in resources(doc, "aws_sagemaker_endpoint").values()
                    if e["name"] == env["ENDPOINT_NAME"])
    config = referenced(doc, endpoint["endpoint_config_name"], "aws_sagemaker_endpoint_configuration")
    (variant,) = config["production_variants"]
    capture = config["data_capture_config"]
    assert env["VARIANT_NAME"] == variant["variant_name"]
    assert env["INSTANCE_TYPE"] == variant["instance_type"]
    assert env["INITIAL_INSTANCE_COUNT"] == str(variant["initial_instance_count"])
    assert env["CAPTURE_S3_URI"] == capture["destination_s3_uri"]
    assert env["CAPTURE_SAMPLING_PERCENT"] == str(capture["initial_sampling_percentage"])
    assert env["KMS_KEY_ARN"] == config["kms_key_arn"] and env["NETWORK_ISOLATION"] == "true"
    shadows = config.get("shadow_production_variants") or []
    percent = round(shadows[0]["initial_variant_weight"] * 100) if shadows else 0
    assert env["SHADOW_SAMPLING_PERCENT"] == str(percent)
    api = json.loads(env["DEPLOYMENT_CONFIG"])
    tf = endpoint["deployment_config"]
    routing = tf["blue_green_update_policy"]["traffic_routing_configuration"]
    assert api["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": routing["type"], "WaitIntervalInSeconds": routing["wait_interval_in_seconds"],
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": routing["canary_size"]["value"]}}
    assert api["AutoRollbackConfiguration"]["Alarms"] == [
        {"AlarmName": a["alarm_name"]} for a in tf["auto_rollback_configuration"]["alarms"]]
    rollback = [referenced(doc, n, "aws_cloudwatch_metric_alarm")["alarm_name"]
                for n in json.loads(env["ROLLBACK_ALARMS"])]
    retrain = [referenced(doc, n, "aws_cloudwatch_metric_alarm")["alarm_name"]
               for n in json.loads(env["RETRAIN_ALARMS"])]
    # Drift never rolls back; an accuracy drop goes to both (each handler acts on its half).
    assert [n.split("-canary-")[1] for n in rollback] == [
        "critical-error-rate", "critical-latency-p95", "critical-accuracy-drop"]
    assert [n.split("-canary-")[1] for n in retrain] == [
        "critical-accuracy-drop", "warning-drift", "warning-feature-drift",
        "warning-attribution-drift"]


def test_endpoint_serves_the_bootstrap_config_until_the_handlers_take_over(docs):
    for env, doc in docs.items():
        for endpoint in resources(doc, "aws_sagemaker_endpoint").values():
            config = referenced(doc, endpoint["endpoint_config_name"],
                                "aws_sagemaker_endpoint_configuration")
            assert config["name"] == endpoint["name"] + "-bootstrap"
            ignored = endpoint["lifecycle"]["ignore_changes"]
            assert ignored[0] == "endpoint_config_name"
            if env == "dev":
                assert ignored == ["endpoint_config_name"]


def test_autoscaling_in_aws_not_locally(docs):
    dev = docs["dev"]
    targets = resources(dev, "aws_appautoscaling_target")
    policies = resources(dev, "aws_appautoscaling_policy")
    assert len(targets) == len(policies) == 2
    endpoints = {e["name"] for e in resources(dev, "aws_sagemaker_endpoint").values()}
    for target in targets.values():
        match = re.fullmatch(r"endpoint/\$\{aws_sagemaker_endpoint\.(\w+)\.name\}/variant/primary",
                             target["resource_id"])
        assert match and resources(dev, "aws_sagemaker_endpoint")[match.group(1)]["name"] in endpoints
        assert target["scalable_dimension"] == "sagemaker:variant:DesiredInstanceCount"
        assert (target["min_capacity"], target["max_capacity"]) == (1, 3)
    for policy in policies.values():
        assert policy["policy_type"] == "TargetTrackingScaling"
        tracking = policy["target_tracking_scaling_policy_configuration"]
        assert tracking["predefined_metric_specification"] == {
            "predefined_metric_type": "SageMakerVariantInvocationsPerInstance"}
        assert (tracking["target_value"], tracking["scale_in_cooldown"],
                tracking["scale_out_cooldown"]) == (100, 300, 60)
        referenced(dev, policy["resource_id"], "aws_appautoscaling_target")
    # moto cannot create scalable targets (moto_gaps.MotoGaps.autoscaling).
    assert not resources(docs["local"], "aws_appautoscaling_target")


# Resource types of the platform stack only, checked there (tests/unit/test_synthesized_stacks.py).
PLATFORM_ONLY = ("aws_cloudtrail",)


def test_moto_gaps_are_ignored_locally_and_only_there(docs):
    for env, doc in docs.items():
        for rtype, attributes in moto_gaps.UNREAD_ATTRIBUTES.items():
            if rtype in PLATFORM_ONLY:
                continue
            items = resources(doc, rtype)
            assert items, rtype
            for body in items.values():
                ignored = set(body.get("lifecycle", {}).get("ignore_changes", []))
                assert (set(attributes) <= ignored) == (env == "local"), (env, rtype, ignored)


# Alarms.
def topic_kind(doc: dict, arn_ref: str) -> str:
    topic = referenced(doc, arn_ref, "aws_sns_topic")
    return topic["name"].rsplit("-", 1)[1]


def test_every_alarm_notifies_an_sns_topic(doc):
    alarms = resources(doc, "aws_cloudwatch_metric_alarm")
    assert len(alarms) == 2 * 8 + 2  # eight per endpoint, one per DLQ
    for alarm in alarms.values():
        assert alarm["alarm_actions"] and alarm["ok_actions"] == alarm["alarm_actions"]
        for action in alarm["alarm_actions"]:
            topic_kind(doc, action)
        assert alarm["treat_missing_data"] == "notBreaching"


def test_critical_and_warning_alarms_go_to_their_topics(doc):
    seen = {"critical": set(), "warning": set()}
    for alarm in resources(doc, "aws_cloudwatch_metric_alarm").values():
        name = alarm["alarm_name"]
        (action,) = alarm["alarm_actions"]
        severity = "critical" if "-critical-" in name else "warning"
        assert topic_kind(doc, action) == severity, name
        if name.endswith("-dlq-not-empty"):
            continue
        seen[severity].add(re.sub(r"^.*-(critical|warning)-", "", name))
    assert seen == {"critical": {"error-rate", "latency-p95", "accuracy-drop"},
                    "warning": {"drift", "feature-drift", "attribution-drift", "cpu", "memory"}}


def test_alarm_thresholds_follow_the_config(doc, environments):
    alarms = {a["alarm_name"].split("-test-canary-")[-1]: a
              for a in resources(doc, "aws_cloudwatch_metric_alarm").values()
              if "-test-canary-" in a["alarm_name"]}
    rate = alarms["critical-error-rate"]
    assert rate["threshold"] == 5
    expression = next(q for q in rate["metric_query"] if q.get("return_data"))["expression"]
    # Server faults only: a malformed request (the container's 400, in InvocationModelErrors and
    # Invocation4XXErrors) must not count towards a rollback.
    assert expression == "100*FILL(errors_5xx,0)/invocations"
    metrics = {q["id"]: q["metric"]["metric_name"] for q in rate["metric_query"] if "metric" in q}
    assert metrics == {"errors_5xx": "Invocation5XXErrors", "invocations": "Invocations"}
    latency = alarms["critical-latency-p95"]
    # p95 over the published baseline, 2x: the threshold is the multiplier; until a baseline is
    # measured, the configured 40 ms, in microseconds (ModelLatency's unit).
    assert latency["threshold"] == 2
    ratio = next(q for q in latency["metric_query"] if q.get("return_data"))
    assert ratio["expression"] == (
        "IF(latency_n>=20,latency_p95,IF(latency_n>=5,latency_p50))/FILL(baseline_p95,40000)")
    queried = {q["id"]: q["metric"] for q in latency["metric_query"] if "metric" in q}
    assert (queried["latency_p95"]["metric_name"], queried["latency_p95"]["stat"]) == ("ModelLatency", "p95")
    # The p95 where a period has alarms.latency_min_invocations requests, else the median.
    assert [(queried[q]["metric_name"], queried[q]["stat"]) for q in ("latency_n", "latency_p50")] == [
        ("ModelLatency", "SampleCount"), ("ModelLatency", "p50")]
    assert (queried["baseline_p95"]["namespace"], queried["baseline_p95"]["metric_name"],
            queried["baseline_p95"]["stat"]) == ("MLOps/ControlLoop", "LatencyBaselineP95", "Maximum")
    for metric in queried.values():
        assert metric["dimensions"]["VariantName"] == "primary"
        assert metric["period"] == 60
    accuracy = alarms["critical-accuracy-drop"]
    assert (accuracy["namespace"], accuracy["metric_name"], accuracy["threshold"]) == (
        "MLOps/ModelQuality", "AccuracyDropPercent", 10)
    drift = alarms["warning-drift"]
    assert (drift["namespace"], drift["metric_name"], drift["comparison_operator"],
            drift["threshold"]) == ("MLOps/Drift", "DriftedFeatureShare",
                                    "GreaterThanOrEqualToThreshold", 0.3)
    feature = alarms["warning-feature-drift"]
    assert (feature["metric_name"], feature["threshold"]) == ("MaxPSI", 0.2)
    for key in ("critical-accuracy-drop", "warning-drift", "warning-feature-drift"):
        assert alarms[key]["dimensions"] == {"EndpointName": alarms[key]["alarm_name"].split(
            "-critical-")[0].split("-warning-")[0]}
    memory = alarms["warning-memory"]
    assert (memory["namespace"], memory["threshold"]) == ("/aws/sagemaker/Endpoints", 80)
    # CPUUtilization sums the vCPUs: 80% of each of an ml.*.large/medium's two.
    assert alarms["warning-cpu"]["threshold"] == 160


def test_dashboard_per_endpoint(doc):
    dashboards = resources(doc, "aws_cloudwatch_dashboard")
    endpoints = {e["name"] for e in resources(doc, "aws_sagemaker_endpoint").values()}
    assert {d["dashboard_name"] for d in dashboards.values()} == endpoints
    for dash in dashboards.values():
        body = dash["dashboard_body"]
        assert body == json.dumps(json.loads(body), separators=(",", ":"))  # as jsonencode writes
        widgets = json.loads(body)["widgets"]
        titles = {w["properties"]["title"] for w in widgets}
        assert {"Model latency (ms)", "Invocations and errors", "Error rate (%)", "Drift",
                "PSI per feature", "Utilization (%)", "Alarms"} <= titles
        text = json.dumps(widgets)
        for stat in ("p50", "p95", "p99"):
            assert f'"stat": "{stat}"' in text
        for metric in ("MaxPSI", "DriftedFeatureShare", "PredictionPSI", "PredictionDrift",
                       "MalformedRecords", "FeaturePSI", "CPUUtilization", "MemoryUtilization"):
            assert metric in text


# Event wiring.
def test_every_rule_targets_a_queue_with_a_dlq(doc):
    rules = resources(doc, "aws_cloudwatch_event_rule")
    targets = resources(doc, "aws_cloudwatch_event_target")
    assert len(rules) == 4
    targeted = set()
    for target in targets.values():
        rule = referenced(doc, target["rule"], "aws_cloudwatch_event_rule")
        targeted.add(rule["name"])
        queue = referenced(doc, target["arn"], "aws_sqs_queue")
        redrive = json.loads(queue["redrive_policy"])
        dlq = referenced(doc, redrive["deadLetterTargetArn"], "aws_sqs_queue")
        assert dlq["name"] == queue["name"] + "-dlq"
        assert dlq["message_retention_seconds"] == 14 * 24 * 3600
        assert referenced(doc, target["dead_letter_config"]["arn"], "aws_sqs_queue") is dlq
        assert queue["redrive_policy"] == json.dumps(redrive, separators=(",", ":"))
    assert targeted == {r["name"] for r in rules.values()}
    kinds = {("schedule" if "schedule_expression" in r else "pattern") for r in rules.values()}
    assert kinds == {"schedule", "pattern"}


def test_queues_accept_only_their_rules(doc):
    rules = resources(doc, "aws_cloudwatch_event_rule")
    targets = resources(doc, "aws_cloudwatch_event_target").values()
    for qid, queue in resources(doc, "aws_sqs_queue").items():
        assert queue["kms_master_key_id"].startswith("${aws_kms_key.")
        policy = json.loads(queue["policy"])
        allow = next(s for s in policy["Statement"] if s["Effect"] == "Allow")
        assert allow["Principal"] == {"Service": "events.amazonaws.com"}
        assert allow["Action"] == "sqs:SendMessage"
        assert allow["Resource"].endswith(":" + queue["name"])
        sources = allow["Condition"]["ArnEquals"]["aws:SourceArn"]
        if queue["name"].endswith("-dlq"):
            continue
        sending = {ref(t["rule"])[1] for t in targets if ref(t["arn"])[1] == qid}
        assert {ref(s)[1] for s in sources} == sending
        assert sending <= set(rules)


def test_rollback_rule_matches_exactly_the_critical_alarms(doc):
    for rule in resources(doc, "aws_cloudwatch_event_rule").values():
        if "critical-alarm" not in rule["name"]:
            continue
        pattern = json.loads(rule["event_pattern"])
        assert pattern["detail-type"] == ["CloudWatch Alarm State Change"]
        assert pattern["detail"]["state"] == {"value": ["ALARM"]}
        names = [referenced(doc, n, "aws_cloudwatch_metric_alarm")["alarm_name"]
                 for n in pattern["detail"]["alarmName"]]
        strategy = rule["name"].split("-test-")[1].split("-")[0]
        assert [n.rsplit("-critical-", 1)[1] for n in names] == [
            "error-rate", "latency-p95", "accuracy-drop"]  # drift warns: never a rollback
        assert all(f"-test-{strategy}-critical-" in n for n in names)


def test_every_queue_feeds_a_function(doc):
    functions = resources(doc, "aws_lambda_function")
    mappings = resources(doc, "aws_lambda_event_source_mapping")
    queues = {qid: q for qid, q in resources(doc, "aws_sqs_queue").items()
              if not q["name"].endswith("-dlq")}
    fed = {}
    for mapping in mappings.values():
        kind, qid, _ = ref(mapping["event_source_arn"])
        assert kind == "aws_sqs_queue"
        fn = referenced(doc, mapping["function_name"], "aws_lambda_function")
        fed[qid] = fn
        assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
        # AWS's guidance: at least 6x the function's timeout.
        assert queues[qid]["visibility_timeout_seconds"] >= 6 * fn["timeout"]
        assert any(d.startswith("aws_iam_role_policy.") for d in mapping["depends_on"])
    assert set(fed) == set(queues)
    assert {f["function_name"] for f in fed.values()} == {
        f["function_name"] for f in functions.values()}


def test_consumer_role_gets_exactly_its_queue(doc):
    policies = resources(doc, "aws_iam_role_policy")
    queues = resources(doc, "aws_sqs_queue")
    for queue_id, queue in queues.items():
        if queue["name"].endswith("-dlq"):
            continue
        (policy,) = [p for p in policies.values() if p["name"].endswith(f"-consume-{queue['name']}")]
        statements = json.loads(policy["policy"])["Statement"]
        assert statements == [
            {"Sid": "ConsumeQueue", "Effect": "Allow",
             "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
             "Resource": f"${{aws_sqs_queue.{queue_id}.arn}}"},
            {"Sid": "DecryptMessages", "Effect": "Allow", "Action": "kms:Decrypt",
             "Resource": queue["kms_master_key_id"]},
        ]


# Lambda functions.
def test_functions_are_encrypted_traced_and_logged(doc, serving_synth):
    for fn in resources(doc, "aws_lambda_function").values():
        assert fn["runtime"] == "python3.12"
        assert fn["handler"] == "lambdas.echo.handler.handler"
        assert fn["tracing_config"] == {"mode": "Active"}
        assert fn["kms_key_arn"].startswith("${aws_kms_key.")
        assert fn["reserved_concurrent_executions"] == 5
        assert fn["environment"]["variables"]["POWERTOOLS_SERVICE_NAME"] == "echo"
        (lg,) = [g for g in resources(doc, "aws_cloudwatch_log_group").values()
                 if g["name"] == f"/aws/lambda/{fn['function_name']}"]
        assert lg["kms_key_id"] == fn["kms_key_arn"] and lg["retention_in_days"] in (7, 30)
        assert any(d.startswith("aws_cloudwatch_log_group.") for d in fn["depends_on"])
        role = referenced(doc, fn["role"], "aws_iam_role")
        assert role["permissions_boundary"].endswith("-test-boundary")
        assert json.loads(role["assume_role_policy"])["Statement"][0]["Principal"] == {
            "Service": "lambda.amazonaws.com"}
        # The zip sits in the stack folder, referenced relatively, with its hash.
        assert not fn["filename"].startswith("/")
        env = "dev" if "-dev-" in fn["function_name"] else "local"
        package = (serving_synth.stacks[env] / fn["filename"]).read_bytes()
        assert fn["source_code_hash"] == base64.b64encode(hashlib.sha256(package).digest()).decode()


def test_function_log_statement_is_derived_from_its_own_log_group(doc):
    roles = resources(doc, "aws_iam_role")
    groups = resources(doc, "aws_cloudwatch_log_group")
    for policy in resources(doc, "aws_iam_role_policy").values():
        if not policy["name"].endswith("-permissions"):
            continue
        role = roles[ref(policy["role"])[1]]
        if "lambda.amazonaws.com" not in role["assume_role_policy"]:
            continue
        stmt = next(s for s in json.loads(policy["policy"])["Statement"] if s["Sid"] == "WriteOwnLogs")
        kind, gid, attr = ref(stmt["Resource"][0])
        assert (kind, attr) == ("aws_cloudwatch_log_group", "arn")
        assert groups[gid]["name"] == f"/aws/lambda/{role['name']}"
        assert stmt["Resource"][1] == stmt["Resource"][0] + ":*"


def test_package_is_reproducible_and_follows_edits(tmp_path, serving_synth):
    from stacks.lambda_package import build_package, package_files, package_hash
    from tests.serving_app import FIXTURE_LAMBDAS

    first = build_package(FIXTURE_LAMBDAS, "echo")
    copy = tmp_path / "lambdas"
    shutil.copytree(FIXTURE_LAMBDAS, copy)
    # Different mtimes, bytecode and a cache folder must not change a byte.
    (copy / "echo" / "__pycache__").mkdir(exist_ok=True)
    (copy / "echo" / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"junk")
    (copy / "echo" / "handler.py").touch()
    assert build_package(copy, "echo") == first
    names = [name for name, _ in package_files(copy, "echo")]
    assert names == sorted(names) and "lambdas/__init__.py" in names
    assert "lambdas/shared/records.py" in names and "lambdas/echo/handler.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    # What the synthesized stack references is this very build.
    dev_fn = next(iter(json.loads((serving_synth.stacks["dev"] / "cdk.tf.json").read_text())
                       ["resource"]["aws_lambda_function"].values()))
    assert dev_fn["source_code_hash"] == package_hash(first)

    handler = copy / "echo" / "handler.py"
    handler.write_text(handler.read_text() + "\n# edited\n")
    assert package_hash(build_package(copy, "echo")) != package_hash(first)
    shared = copy / "shared" / "records.py"
    handler.write_text((FIXTURE_LAMBDAS / "echo" / "handler.py").read_text())
    assert build_package(copy, "echo") == first
    shared.write_text(shared.read_text() + "\n")
    assert build_package(copy, "echo") != first


# IAM.
POLICY_FIELDS = {
    "aws_iam_policy": "policy", "aws_iam_role_policy": "policy",
    "aws_iam_role": "assume_role_policy", "aws_kms_key": "policy",
    "aws_sns_topic_policy": "policy", "aws_sqs_queue": "policy",
}


def test_no_statement_allows_any_action_on_any_resource(doc):
    checked = 0
    for rtype, field in POLICY_FIELDS.items():
        for rid, body in resources(doc, rtype).items():
            for st in json.loads(body[field])["Statement"]:
                checked += 1
                if st["Effect"] != "Allow":
                    continue
                actions = [st["Action"]] if isinstance(st["Action"], str) else st["Action"]
                res = st.get("Resource", [])
                res = [res] if isinstance(res, str) else res
                assert not any(a in ("*", "*:*") for a in actions), (rtype, rid, st)
                grants = "Principal" not in st and rtype != "aws_iam_policy"
                if "*" in res and grants:
                    assert all(not a.endswith(":*") for a in actions), (rtype, rid, st)
    assert checked > 40


def test_endpoint_operators_get_derived_least_privilege(doc):
    policies = [p for p in resources(doc, "aws_iam_role_policy").values()
                if "-operate-" in p["name"]]
    assert len(policies) == 2
    for policy in policies:
        strategy = policy["name"].rsplit("-", 1)[1]
        statements = {s["Sid"]: s for s in json.loads(policy["policy"])["Statement"]}
        manage = statements["ManageEndpointModelsAndConfigs"]["Resource"]
        assert all(r.endswith(f"-test-{strategy}-*") for r in manage)
        assert statements["UpdateEndpoint"]["Resource"].endswith(f"endpoint/mlops-{_env(policy)}"
                                                                 f"-test-{strategy}")
        assert statements["PassExecutionRole"]["Condition"] == {
            "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
        assert all(r.startswith("${aws_cloudwatch_metric_alarm.")
                   for r in statements["ReadAlarms"]["Resource"])
        assert statements["GrantKeyToEndpointVolumes"]["Condition"] == {
            "Bool": {"kms:GrantIsForAWSResource": "true"}}


def _env(policy: dict) -> str:
    return policy["name"].split("-")[1]


# EKS.
def test_eks_cluster_is_private_encrypted_and_logged(doc):
    (cluster,) = resources(doc, "aws_eks_cluster").values()
    assert cluster["encryption_config"]["resources"] == ["secrets"]
    assert cluster["encryption_config"]["provider"]["key_arn"].startswith("${aws_kms_key.")
    assert cluster["enabled_cluster_log_types"] == [
        "api", "audit", "authenticator", "controllerManager", "scheduler"]
    vpc = cluster["vpc_config"]
    assert vpc["endpoint_private_access"] is True and vpc["endpoint_public_access"] is False
    assert "public_access_cidrs" not in vpc
    assert len(vpc["subnet_ids"]) == 2
    assert cluster["access_config"]["authentication_mode"] == "API"
    (log_group,) = [g for g in resources(doc, "aws_cloudwatch_log_group").values()
                    if g["name"] == f"/aws/eks/{cluster['name']}/cluster"]
    assert log_group["kms_key_id"].startswith("${aws_kms_key.")
    assert any(d.startswith("aws_cloudwatch_log_group.") for d in cluster["depends_on"])


def test_eks_network_has_no_internet_path(doc):
    assert not resources(doc, "aws_internet_gateway") and not resources(doc, "aws_nat_gateway")
    for subnet in resources(doc, "aws_subnet").values():
        assert subnet["map_public_ip_on_launch"] is False
    (default_sg,) = resources(doc, "aws_default_security_group").values()
    assert "ingress" not in default_sg and "egress" not in default_sg
    services = {e["service_name"].rsplit(".", 1)[-1] if "ecr" not in e["service_name"]
                else e["service_name"].split(".", 3)[-1]
                for e in resources(doc, "aws_vpc_endpoint").values()}
    assert services == {"s3", "ec2", "ecr.api", "ecr.dkr", "sts", "logs"}


def test_eks_nodes_require_imdsv2_and_encrypt_disks(doc):
    (template,) = resources(doc, "aws_launch_template").values()
    assert template["metadata_options"] == {
        "http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 1}
    assert template["block_device_mappings"][0]["ebs"]["encrypted"] == "true"
    (group,) = resources(doc, "aws_eks_node_group").values()
    assert referenced(doc, group["launch_template"]["id"], "aws_launch_template") is template
    assert "scaling_config[0].desired_size" in group["lifecycle"]["ignore_changes"]


def test_irsa_role_trusts_only_the_serving_service_account(doc):
    (oidc_id, oidc), = resources(doc, "aws_iam_openid_connect_provider").items()
    assert oidc["client_id_list"] == ["sts.amazonaws.com"]
    assert oidc["thumbprint_list"] == ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]
    (role,) = [r for r in resources(doc, "aws_iam_role").values()
               if r["name"].endswith("-model-server")]
    assert role["permissions_boundary"].endswith("-test-boundary")
    (trust,) = json.loads(role["assume_role_policy"])["Statement"]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Principal"] == {"Federated": f"${{aws_iam_openid_connect_provider.{oidc_id}.arn}}"}
    issuer = f"${{aws_iam_openid_connect_provider.{oidc_id}.url}}"
    assert trust["Condition"] == {"StringEquals": {
        f"{issuer}:sub": "system:serviceaccount:model-serving:model-server",
        f"{issuer}:aud": "sts.amazonaws.com"}}
    (policy,) = [p for p in resources(doc, "aws_iam_role_policy").values()
                 if p["name"].endswith("-model-server-permissions")]
    statements = {s["Sid"]: s for s in json.loads(policy["policy"])["Statement"]}
    assert set(statements) == {"ReadModelArtifacts", "DecryptModelArtifacts"}
    assert statements["ReadModelArtifacts"]["Action"] == "s3:GetObject"
    assert statements["ReadModelArtifacts"]["Resource"].endswith("-artifacts-" + _account(doc)
                                                                 + "/models/*")


def test_eks_service_roles_get_managed_policies_in_aws_only(docs):
    attached = {env: sorted(a["policy_arn"].rsplit("/", 1)[1]
                            for a in resources(doc, "aws_iam_role_policy_attachment").values())
                for env, doc in docs.items()}
    assert attached["dev"] == ["AmazonEC2ContainerRegistryReadOnly", "AmazonEKSClusterPolicy",
                               "AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy"]
    assert attached["local"] == []  # moto_gaps.MotoGaps.aws_managed_policies


def _account(doc: dict) -> str:
    (provider,) = doc["provider"]["aws"]
    return provider.get("allowed_account_ids", ["123456789012"])[0]
