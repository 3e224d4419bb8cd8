"""The local AWS's accounts, without Terraform: a second account is reached through its access
role, listed by the server, and the control plane acts in it (a model package state change in
account 111122223333 goes to that account's bus and its rule's queue, not the default account's)."""

from __future__ import annotations

import json

import pytest

from local_aws.control_plane import LocalControlPlane
from stacks import moto_gaps

pytestmark = pytest.mark.integration

OTHER = "111122223333"
RULE = {"source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Package State Change"]}


def _listening_queue(clients, name: str) -> str:
    """A queue in the clients' account hearing its bus's package state changes."""
    sqs, events = clients("sqs"), clients("events")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=name, EventPattern=json.dumps(RULE))
    events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": arn}])
    return url


def test_the_control_plane_acts_in_each_account_through_its_access_role(moto_server, tmp_path):
    other = lambda service: moto_server.account_client(service, OTHER)  # noqa: E731
    assert other("sts").get_caller_identity()["Account"] == OTHER
    assert other("sts").get_caller_identity()["Arn"].startswith(
        f"arn:aws:sts::{OTHER}:assumed-role/{moto_gaps.ACCOUNT_ACCESS_ROLE}/")
    theirs = _listening_queue(other, "packages")
    ours = _listening_queue(moto_server.client, "packages")
    other("sagemaker").create_model_package_group(ModelPackageGroupName="mlops-localprod-demo")
    arn = other("sagemaker").create_model_package(
        ModelPackageGroupName="mlops-localprod-demo", ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/m:1"}],
                                "SupportedContentTypes": ["text/csv"],
                                "SupportedResponseMIMETypes": ["text/csv"]},
    )["ModelPackageArn"]
    assert arn.split(":")[4] == OTHER
    assert moto_server.accounts() == [moto_gaps.DEFAULT_ACCOUNT, OTHER]

    with LocalControlPlane.for_server(moto_server, tmp_path) as plane:
        result = plane.package_events({"packages": {}})
    assert result.events == [
        "SageMaker Model Package State Change: mlops-localprod-demo/1 PendingManualApproval"]
    (message,) = other("sqs").receive_message(QueueUrl=theirs, WaitTimeSeconds=1)["Messages"]
    event = json.loads(message["Body"])
    assert event["account"] == OTHER and event["resources"] == [arn]
    assert event["detail"]["ModelPackageGroupName"] == "mlops-localprod-demo"
    assert "Messages" not in moto_server.client("sqs").receive_message(QueueUrl=ours, WaitTimeSeconds=0)
