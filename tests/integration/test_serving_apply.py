"""Real `terraform apply` of the local serving test stack (tests/serving_app.py: endpoints with
blue/green deployment config and data capture, alarms, dashboards, event rules -> queues with
DLQs -> Lambda functions, EKS with IRSA) against a moto server started by the test:
apply -> everything exists as configured -> a second plan shows no changes -> destroy."""

from __future__ import annotations

import json

import pytest

from mlops.terraform import Terraform, write_tfvars
from stacks.provider import ENDPOINT_VARIABLE

pytestmark = pytest.mark.integration

# Terraform's default. 30 shortened the SQS waits, but beside the end-to-end worker (make test
# runs two) a burst of 30 creates on the one moto worker once delayed a CreateSubnet answer past
# the provider's patience: it sent the create again and failed on "conflicts with another subnet".
PARALLELISM = 10


def test_aws_serving_stack_validates(serving_synth, tf_cli_config):
    """The AWS-only parts (autoscaling, managed-policy attachments) are checked by the provider's
    schema too, though nothing applies them here."""
    tf = Terraform(serving_synth.stacks["dev"], "serving-test-dev", tf_cli_config, echo=False)
    tf.init("-backend=false")
    tf.validate()


def test_serving_stack_applies_converges_and_destroys(serving_synth, tf_cli_config, moto_server):
    stack_dir = serving_synth.stacks["local"]
    write_tfvars(stack_dir, {ENDPOINT_VARIABLE: moto_server.endpoint_url})
    tf = Terraform(stack_dir, "serving-test-local", tf_cli_config, echo=False)
    tf.init()
    # Most of the apply is the provider waiting (SQS attribute propagation, ~25 s a queue):
    # more parallel operations shorten it without more CPU.
    tf.run("apply", "-input=false", "-auto-approve", f"-parallelism={PARALLELISM}")
    out = tf.outputs()

    sm = moto_server.client("sagemaker")
    for strategy in ("canary", "linear"):
        endpoint = sm.describe_endpoint(EndpointName=out[f"{strategy}_endpoint_name"])
        assert endpoint["EndpointConfigName"] == f"{out[f'{strategy}_endpoint_name']}-bootstrap"
        config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        capture = config["DataCaptureConfig"]
        assert capture["EnableCapture"] is True
        assert [o["CaptureMode"] for o in capture["CaptureOptions"]] == ["Input", "Output"]
        assert capture["KmsKeyId"] == config["KmsKeyId"]

    cw = moto_server.client("cloudwatch")
    alarms = cw.describe_alarms(AlarmNamePrefix="mlops-local-test-")["MetricAlarms"]
    assert len(alarms) == 18  # eight per endpoint, one per DLQ
    assert all(a["AlarmActions"] and a["OKActions"] for a in alarms)
    dashboards = {d["DashboardName"] for d in cw.list_dashboards()["DashboardEntries"]}
    assert dashboards == {out["canary_endpoint_name"], out["linear_endpoint_name"]}

    sqs = moto_server.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=out["rollback_queue_url"],
                                          AttributeNames=["All"])["Attributes"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=out["rollback_dlq_url"],
                                       AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn,
                                                       "maxReceiveCount": 3}
    assert attributes["KmsMasterKeyId"].startswith("arn:aws:kms:")
    assert int(attributes["VisibilityTimeout"]) == 6 * 60

    events = moto_server.client("events")
    rules = events.list_rules(NamePrefix="mlops-local-test-")["Rules"]
    assert len(rules) == 4
    for rule in rules:
        (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert target["Arn"].startswith("arn:aws:sqs:")

    lam = moto_server.client("lambda")
    function = lam.get_function_configuration(FunctionName=out["rollback_function_name"])
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert function["Handler"] == "lambdas.echo.handler.handler"
    mappings = lam.list_event_source_mappings()["EventSourceMappings"]
    (mapping,) = [m for m in mappings if m["EventSourceArn"] == attributes["QueueArn"]]
    assert mapping["FunctionArn"] == function["FunctionArn"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]

    cluster = moto_server.client("eks").describe_cluster(name=out["eks_cluster_name"])["cluster"]
    assert cluster["encryptionConfig"][0]["resources"] == ["secrets"]
    assert cluster["resourcesVpcConfig"]["endpointPrivateAccess"] is True
    assert cluster["resourcesVpcConfig"]["endpointPublicAccess"] is False
    iam = moto_server.client("iam")
    (provider,) = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    role = iam.get_role(RoleName=out["serving_role_arn"].rsplit("/", 1)[1])["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Principal"] == {"Federated": provider["Arn"]}

    changes, plan = tf.plan_changes()
    assert not changes, plan

    # Nothing outside Terraform changed since the plan above: skip the refresh.
    tf.run("destroy", "-input=false", "-auto-approve", "-refresh=false",
           f"-parallelism={PARALLELISM}")
    assert tf.resources() == []
    assert sm.list_endpoints()["Endpoints"] == []
