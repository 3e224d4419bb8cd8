"""The static call extractor behind the permission table (mlops/aws_calls.py)."""

from __future__ import annotations

import textwrap

import pytest

from mlops.aws_calls import ExtractionError, action_of, extract, known_actions, stale_annotations


def write(root, path: str, source: str) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(textwrap.dedent(source))


def test_operations_become_iam_actions():
    assert action_of("sagemaker-runtime", "invoke_endpoint") == ("sagemaker:InvokeEndpoint",)
    assert action_of("cloudwatch", "put_metric_data") == ("cloudwatch:PutMetricData",)
    assert action_of("s3", "list_objects_v2") == ("s3:ListBucket",)
    assert action_of("s3", "upload_file") == ("s3:PutObject", "s3:AbortMultipartUpload")
    assert action_of("sts", "get_caller_identity") == ()
    with pytest.raises(ExtractionError, match="no operation of s3"):
        action_of("s3", "get_objects")


def test_calls_reached_from_the_entry_and_only_those(tmp_path):
    write(tmp_path, "app/handler.py", """
        import boto3
        from app import helpers

        def handler(event, context):
            s3 = boto3.client("s3")
            s3.get_paginator("list_objects_v2").paginate(Bucket="b")
            boto3.client("sagemaker").get_waiter("endpoint_in_service").wait(EndpointName="e")
            helpers.publish(boto3.client("cloudwatch"))
            return helpers.Store(boto3.client("dynamodb")).read()
    """)
    # An entry file runs whole; of an imported module, what running code names.
    write(tmp_path, "app/helpers.py", """
        class Store:
            def __init__(self, client):
                self.client = client

            def read(self):
                return self.client.get_item(TableName="t", Key={})

            def wipe(self):
                return self.client.delete_table(TableName="t")

        def publish(cloudwatch):
            cloudwatch.put_metric_data(Namespace="N", MetricData=[])

        def never_called(sns):
            sns.publish(TopicArn="t", Message="m")
    """)
    annotations = {"app/helpers.py": {"self.client": "dynamodb"}}
    found = extract(["app/handler.py"], ("app/",), root=tmp_path, annotations=annotations)
    assert found.actions == {"s3:ListBucket", "sagemaker:DescribeEndpoint", "cloudwatch:PutMetricData",
                             "dynamodb:GetItem"}
    assert stale_annotations([found], {**annotations, "app/handler.py": {"self.x": "s3"}}) == \
        ["app/handler.py: self.x"]


def test_a_call_on_an_untyped_object_is_an_error(tmp_path):
    write(tmp_path, "app/handler.py", """
        def handler(event, context, wrapped):
            wrapped.describe_endpoint(EndpointName="e")
    """)
    with pytest.raises(ExtractionError, match="cannot type"):
        extract(["app/handler.py"], ("app/",), root=tmp_path, annotations={})


def test_wildcards_expand_to_the_services_operations():
    assert "sagemaker:DescribeEndpoint" in known_actions("sagemaker:Describe*")
    assert "sagemaker:InvokeEndpoint" in known_actions("sagemaker:Invoke*")  # sagemaker-runtime's
    assert {"cloudwatch:PutMetricData", "cloudwatch:PutMetricAlarm"} <= known_actions("cloudwatch:PutMetric*")
    assert not any(a.startswith("cloudwatch:Get") for a in known_actions("cloudwatch:PutMetric*"))
