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
