"""Real `terraform apply` of the local platform stack against a moto server started by the test:
apply -> the resources exist with their secure settings -> a second plan shows no changes ->
destroy leaves nothing behind."""

from __future__ import annotations

import json

import boto3
import pytest

from mlops.terraform import Terraform, write_tfvars
from stacks import moto_gaps
from stacks.provider import ENDPOINT_VARIABLE

pytestmark = pytest.mark.integration


def client(service: str, endpoint_url: str):
    return boto3.client(
        service, endpoint_url=endpoint_url, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )


def test_apply_converge_destroy(synth_all, tf_cli_config, moto_server):
    url = moto_server.endpoint_url
    stack_dir = synth_all.stacks["platform-local"]
    write_tfvars(stack_dir, {ENDPOINT_VARIABLE: url})
    tf = Terraform(stack_dir, "platform-local", tf_cli_config, echo=False)
    tf.init()
    tf.apply()
    outputs = tf.outputs()

    s3 = client("s3", url)
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {outputs[k] for k in ("datasets_bucket", "artifacts_bucket", "capture_bucket",
                                  "audit_bucket", "access_logs_bucket")} == names
    for bucket in names:
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()), bucket
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        assert any(st["Sid"] == "DenyInsecureTransport" for st in policy["Statement"])
        rule = s3.get_bucket_encryption(Bucket=bucket)[
            "ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
        expected = "AES256" if bucket == outputs["access_logs_bucket"] else "aws:kms"
        assert rule["SSEAlgorithm"] == expected, bucket
    datasets_logging = s3.get_bucket_logging(Bucket=outputs["datasets_bucket"])["LoggingEnabled"]
    assert datasets_logging["TargetBucket"] == outputs["access_logs_bucket"]

    key = client("kms", url).get_key_rotation_status(KeyId=outputs["kms_key_arn"])
    assert key["KeyRotationEnabled"] is True
    trail = client("cloudtrail", url).describe_trails(trailNameList=["mlops-local-audit"])[
        "trailList"][0]
    assert trail["LogFileValidationEnabled"] is True
    assert trail["S3BucketName"] == outputs["audit_bucket"]
    iam = client("iam", url)
    role = iam.get_role(RoleName="mlops-local-data-scientist")["Role"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == outputs[
        "permissions_boundary_arn"]
    repo = client("ecr", url).describe_repositories(repositoryNames=["mlops-local-training"])[
        "repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    groups = client("sagemaker", url).list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in groups] == ["mlops-local-models"]

    # The audit bucket keeps every object version audit_days in GOVERNANCE mode locally.
    lock = s3.get_object_lock_configuration(Bucket=outputs["audit_bucket"])["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    retention = lock["Rule"]["DefaultRetention"]
    assert (retention["Mode"], retention["Days"]) == ("GOVERNANCE", 30)  # (moto adds "Years": 0)

    budgets = client("budgets", url)
    budget = budgets.describe_budget(AccountId="123456789012",
                                     BudgetName="mlops-local-monthly-cost")["Budget"]
    limit = budget["BudgetLimit"]
    assert (float(limit["Amount"]), limit["Unit"], budget["TimeUnit"]) == (100.0, "USD", "MONTHLY")
    notices = budgets.describe_notifications_for_budget(
        AccountId="123456789012", BudgetName="mlops-local-monthly-cost")["Notifications"]
    assert sorted((n["NotificationType"], n["Threshold"]) for n in notices) == [
        ("ACTUAL", 80.0), ("ACTUAL", 100.0), ("FORECASTED", 100.0)]

    changes, plan = tf.plan_changes()
    assert not changes, plan

    tf.forget(moto_gaps.undeletable(tf.resources()))
    tf.destroy()
    assert s3.list_buckets()["Buckets"] == []
    assert tf.resources() == []
