"""Terraform's output goes to a log file per stack; what reaches the screen is its outcome, and
the apply's progress can be followed (the local deploy starts the project stacks from it)."""

from __future__ import annotations

import json

import pytest

from mlops.terraform import Terraform, TerraformError, created_resource, managed_resources


def test_created_resources_are_read_from_the_apply_progress():
    assert created_resource("aws_s3_bucket.datasets_bucket_81909430: Creation complete after 0s [id=b]") == \
        "aws_s3_bucket.datasets_bucket_81909430"
    assert created_resource("  aws_sqs_queue.q[0]: Creation complete after 25s [id=u]") == "aws_sqs_queue.q"
    assert created_resource("aws_sqs_queue.q: Still creating... [20s elapsed]") is None
    assert created_resource("Apply complete! Resources: 1 added, 0 changed, 0 destroyed.") is None


def test_managed_resources_are_the_synthesized_stacks(tmp_path):
    (tmp_path / "cdk.tf.json").write_text(json.dumps({
        "data": {"aws_kms_alias": {"key": {}}},
        "resource": {"aws_s3_bucket": {"a": {}, "b": {}}, "aws_sqs_queue": {"q": {}}}}))
    assert managed_resources(tmp_path) == {"aws_s3_bucket.a", "aws_s3_bucket.b", "aws_sqs_queue.q"}


def test_the_log_keeps_everything_and_the_screen_only_the_outcome(tmp_path, capsys):
    log = tmp_path / "logs" / "stack.log"
    tf = Terraform(tmp_path, "stack", tmp_path / "terraformrc", echo=False, log=log)
    (tmp_path / "terraformrc").write_text("")
    tf.run("version")
    assert "Terraform v" in log.read_text() and "$ terraform version" in log.read_text()
    assert capsys.readouterr().err == ""  # no outcome line in `version`
    with pytest.raises(TerraformError, match=f"whole output: {log}"):
        tf.run("plan", "-no-such-flag")
    assert "-no-such-flag" in log.read_text()


def test_creates_the_provider_repeated_are_found_in_the_apply_output():
    """As a loaded CI machine printed it: the first CreateTable succeeded, its response came too
    late, the provider sent it again. Other errors, and types imported by something else than
    their name, are left to fail."""
    from mlops.terraform import repeated_creates

    output = """
aws_iam_role_policy.grant: Creation complete after 0s [id=x]
Error: creating AWS DynamoDB Table (mlops-local-fraud-locks): operation error DynamoDB: CreateTable, https \
response error StatusCode: 400, RequestID: 4ZS2, ResourceInUseException: Table already exists: \
mlops-local-fraud-locks

  with aws_dynamodb_table.control_loop_locks_table_CC5FFB78,
  on cdk.tf.json line 1023, in resource.aws_dynamodb_table.control_loop_locks_table_CC5FFB78:
1023:       }

│ Error: creating Lambda Function (mlops-local-demo-gate): operation error Lambda: CreateFunction, \
https response error StatusCode: 409, ResourceConflictException: Function already exist: mlops-local-demo-gate
│
│   with aws_lambda_function.control_loop_gate_function_1A2B,
│   on cdk.tf.json line 88, in resource.aws_lambda_function.control_loop_gate_function_1A2B:

Error: creating SQS Queue (mlops-local-demo-deploy): QueueAlreadyExists: already exists

  with aws_sqs_queue.control_loop_deploy_queue_5DA1,

Error: creating IAM Role (mlops-local-demo-x): operation error IAM: CreateRole, AccessDenied: not allowed

  with aws_iam_role.x,
"""
    assert repeated_creates(output) == [
        ("aws_dynamodb_table.control_loop_locks_table_CC5FFB78", "mlops-local-fraud-locks"),
        ("aws_lambda_function.control_loop_gate_function_1A2B", "mlops-local-demo-gate")]
    assert repeated_creates("Error: reading S3 Bucket (b): timeout\n\n  with aws_s3_bucket.b,\n") == []
